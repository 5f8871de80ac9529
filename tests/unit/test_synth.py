"""The synthetic label generator: shape, determinism, and the planted behaviour it promises."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from prefgate.synth import RATER_TYPES, SynthTruth, generate_labels

COLUMNS = {
    "label_id": pl.String,
    "pair_id": pl.String,
    "rater_id": pl.String,
    "choice": pl.String,
    "shown_first": pl.String,
    "seconds": pl.Float64,
    "batch_date": pl.Date,
    "labeled_at": pl.Datetime("us"),
}


@pytest.fixture(scope="module")
def synth() -> tuple[pl.DataFrame, SynthTruth]:
    return generate_labels(200_000, n_raters=400, days=30, seed=11)


def test_columns_size_and_values(synth: tuple[pl.DataFrame, SynthTruth]) -> None:
    labels, _ = synth
    assert dict(labels.schema) == COLUMNS
    assert labels.height == 200_000
    assert labels["label_id"].n_unique() == labels.height
    assert set(labels["choice"].unique()) == {"a", "b", "tie"}
    assert set(labels["shown_first"].unique()) == {"a", "b"}
    assert labels["shown_first"].eq("a").mean() == pytest.approx(0.5, abs=0.01)
    assert labels["seconds"].null_count() / labels.height == pytest.approx(0.01, abs=0.003)
    assert (labels["seconds"].drop_nulls() > 0).all()
    assert labels["batch_date"].min() == date(2026, 1, 1) and labels["batch_date"].max() == date(2026, 1, 30)
    assert (labels["labeled_at"].dt.date() == labels["batch_date"]).all()
    for name in ("pair_id", "rater_id", "choice", "shown_first", "batch_date", "labeled_at"):
        assert labels[name].null_count() == 0


def test_items_get_three_to_five_distinct_raters(synth: tuple[pl.DataFrame, SynthTruth]) -> None:
    labels, truth = synth
    per_item = labels.group_by("pair_id", maintain_order=True).agg(
        pl.len().alias("n"), pl.col("rater_id").n_unique().alias("raters")
    )
    assert (per_item["n"] == per_item["raters"]).all()
    assert per_item["n"].head(per_item.height - 1).is_between(3, 5).all()  # the last item may be short
    assert per_item.height == truth.items.height
    assert per_item["n"].mean() == pytest.approx(4.0, abs=0.05)
    # item-major rows: each pair's labels are adjacent
    assert labels["pair_id"].rle_id().max() + 1 == per_item.height


def test_same_seed_same_frames_other_seed_differs() -> None:
    a, ta = generate_labels(5_000, n_raters=50, seed=3)
    b, tb = generate_labels(5_000, n_raters=50, seed=3)
    c, _ = generate_labels(5_000, n_raters=50, seed=4)
    assert a.equals(b) and ta.raters.equals(tb.raters) and ta.items.equals(tb.items)
    assert not a.equals(c)


def test_planted_pools_and_behaviour(synth: tuple[pl.DataFrame, SynthTruth]) -> None:
    labels, truth = synth
    raters = truth.raters
    counts = dict(raters.group_by("rater_type").len().rows())
    assert counts == {"normal": 300, "drifter": 40, "spammer": 20, "always_first": 20, "too_fast": 20}
    assert set(counts) == set(RATER_TYPES)
    typed = labels.join(raters, on="rater_id").join(truth.items.select("pair_id", "truth"), on="pair_id")
    # always-first raters pick what was shown first, never tie
    af = typed.filter(pl.col("rater_type") == "always_first")
    assert (af["choice"] == af["shown_first"]).all()
    # spammers are uniform over a/b/tie
    spam = typed.filter(pl.col("rater_type") == "spammer")["choice"].value_counts(normalize=True)
    assert spam["proportion"].to_list() == pytest.approx([1 / 3] * 3, abs=0.02)
    # normal raters hit the truth at their planted accuracy (Beta(8, 2): mean 0.8)
    normal = typed.filter(pl.col("rater_type") == "normal")
    assert (normal["choice"] == normal["truth"]).mean() == pytest.approx(normal["accuracy"].mean(), abs=0.01)
    assert raters.filter(pl.col("rater_type") == "normal")["accuracy"].mean() == pytest.approx(0.8, abs=0.03)
    # drifters: accurate before their change day, near chance from it
    drift = typed.filter(pl.col("rater_type") == "drifter").with_columns(
        after=pl.col("batch_date") >= pl.col("change_day"), hit=pl.col("choice") == pl.col("truth")
    )
    before, after = (drift.filter(pl.col("after") == flag)["hit"].mean() for flag in (False, True))
    assert before > 0.7 and after < 0.45
    days = raters.filter(pl.col("rater_type") == "drifter")["change_day_index"]
    assert days.min() >= 9 and days.max() <= 21  # drift_window (0.3, 0.7) of 30 days
    assert raters.filter(pl.col("rater_type") != "drifter")["change_day"].null_count() == 360
    # too-fast raters take about 1.5 s, the others about 20 s
    med = typed.group_by("rater_type").agg(pl.col("seconds").median())
    med_by_type = dict(med.rows())
    assert med_by_type["too_fast"] < 2.5 and med_by_type["normal"] > 12


def test_bradley_terry_truth_follows_strengths(synth: tuple[pl.DataFrame, SynthTruth]) -> None:
    _, truth = synth
    items = truth.items
    s = truth.model_strengths
    diff = s[items["model_a"].to_numpy()] - s[items["model_b"].to_numpy()]
    decided = items["truth"].to_numpy() != "tie"
    a_wins = items["truth"].to_numpy()[decided] == "a"
    predicted = 1 / (1 + np.exp(-diff[decided]))
    assert a_wins.mean() == pytest.approx(predicted.mean(), abs=0.02)
    assert np.corrcoef(a_wins, predicted)[0, 1] > 0.3
    assert (items["truth"] == "tie").mean() == pytest.approx(0.15, abs=0.05)
    assert (items["model_a"] != items["model_b"]).all()


def test_rubric_change_and_shuffle() -> None:
    labels, truth = generate_labels(20_000, n_raters=100, days=10, seed=5, rubric_change_day=4)
    assert labels["rubric_version"].to_list() == [
        "v2" if d >= date(2026, 1, 5) else "v1" for d in labels["batch_date"].to_list()
    ]
    assert truth.rubric_change_day == date(2026, 1, 5)
    ties = labels.group_by(pl.col("rubric_version")).agg((pl.col("choice") == "tie").mean()).sort("rubric_version")
    assert ties["choice"][1] > ties["choice"][0] + 0.1  # the v2 rubric asks for more ties
    shuffled, _ = generate_labels(20_000, n_raters=100, days=10, seed=5, rubric_change_day=4, shuffle=True)
    assert shuffled.sort("label_id").equals(labels.sort("label_id"))
    assert not shuffled["label_id"].equals(labels["label_id"])


def test_small_and_invalid_arguments() -> None:
    empty, truth = generate_labels(0, n_raters=10)
    assert empty.height == 0 and dict(empty.schema) == COLUMNS and truth.items.height == 0
    tiny, _ = generate_labels(7, n_raters=3, seed=1)  # fewer raters than labels_per_item's top: capped
    assert tiny.height == 7
    assert tiny.group_by("pair_id").agg(pl.col("rater_id").n_unique() == pl.len())["rater_id"].all()
    with pytest.raises(ValueError, match="shares"):
        generate_labels(10, spammer_share=0.6, always_first_share=0.6)
    with pytest.raises(ValueError, match="rubric_change_day"):
        generate_labels(10, days=5, rubric_change_day=5)
    with pytest.raises(ValueError, match="unknown rater type"):
        generate_labels(10, n_raters=5)[1].raters_of_type("robot")
