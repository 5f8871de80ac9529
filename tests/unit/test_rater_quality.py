"""Rater quality: hand-computed metrics, scipy cross-checks, planted-truth precision/recall, and edge cases."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from prefgate.rater_quality import FLAGS, RaterThresholds, _sci, binomial_two_sided_p, rater_quality
from prefgate.synth import generate_labels

D0 = date(2026, 3, 1)
SCHEMA = {
    "label_id": pl.String,
    "pair_id": pl.String,
    "rater_id": pl.String,
    "choice": pl.String,
    "shown_first": pl.String,
    "seconds": pl.Float64,
    "batch_date": pl.Date,
}


def frame(rows: list[tuple[str, str, str, str]], seconds: list[float | None] | None = None) -> pl.DataFrame:
    """Rows of (pair_id, rater_id, choice, shown_first), all on one day."""
    return pl.DataFrame(
        {
            "label_id": [f"l{i}" for i in range(len(rows))],
            "pair_id": [r[0] for r in rows],
            "rater_id": [r[1] for r in rows],
            "choice": [r[2] for r in rows],
            "shown_first": [r[3] for r in rows],
            "seconds": seconds if seconds is not None else [12.0] * len(rows),
            "batch_date": [D0] * len(rows),
        },
        schema=SCHEMA,
    )


def row_of(df: pl.DataFrame, rater: str) -> dict[str, object]:
    return df.filter(pl.col("rater_id") == rater).row(0, named=True)


def assert_no_nan(df: pl.DataFrame) -> None:
    floats = [c for c, t in df.schema.items() if t == pl.Float64]
    assert not df.select(pl.any_horizontal(pl.col(floats).is_nan()).any()).item()
    assert df.select(pl.col(*FLAGS).null_count().sum()).sum_horizontal().item() == 0


# --- hand-computed metrics -------------------------------------------------------------------------------------


def test_loo_agreement_by_hand() -> None:
    labels = frame(
        [
            ("p1", "r1", "a", "a"),  # rest {a, b}: split -> unscored
            ("p1", "r2", "a", "a"),  # rest {a, b}: unscored
            ("p1", "r3", "b", "a"),  # rest {a, a}: disagrees
            ("p2", "r1", "a", "a"),  # rest {a, a}: agrees (all three)
            ("p2", "r2", "a", "b"),
            ("p2", "r3", "a", "a"),
            ("p3", "r1", "tie", "a"),  # rest {b}: disagrees
            ("p3", "r2", "b", "b"),  # rest {tie}: disagrees
            ("p5", "r1", "a", "a"),  # rest {b, b}: disagrees
            ("p5", "r2", "b", "a"),  # rest {a, b}: unscored
            ("p5", "r3", "b", "b"),  # rest {a, b}: unscored
        ]
    )
    out = rater_quality(labels)
    assert out["rater_id"].to_list() == ["r1", "r2", "r3"]
    assert out["n_labels"].to_list() == [4, 4, 3]
    assert out["n_scored"].to_list() == [3, 2, 2]
    assert out["agreement"].to_list() == pytest.approx([1 / 3, 1 / 2, 1 / 2])
    assert_no_nan(out)


def _position_rows(rater: str, first: int, second: int, ties: int) -> list[tuple[str, str, str, str]]:
    """A rater's labels on pairs nobody else labels: ``first`` picks of the first-shown response, ``second`` of
    the other, ``ties`` ties (shown_first alternates so canonical a/b stay balanced)."""
    rows = []
    for i in range(first + second + ties):
        shown = "a" if i % 2 else "b"
        other = "b" if shown == "a" else "a"
        choice = shown if i < first else other if i < first + second else "tie"
        rows.append((f"{rater}-p{i}", rater, choice, shown))
    return rows


def test_position_bias_share_and_p_value_match_scipy() -> None:
    plan = {"ra": (18, 2, 5), "rb": (10, 10, 0), "rc": (3, 22, 1), "rd": (40, 0, 0), "re": (0, 0, 7)}
    rows = [r for rater, (f, s, t) in plan.items() for r in _position_rows(rater, f, s, t)]
    out = rater_quality(frame(rows), thresholds=RaterThresholds(min_labels=5))
    for rater, (first, second, _) in plan.items():
        got = row_of(out, rater)
        assert got["n_non_tie"] == first + second
        if first + second == 0:
            assert got["first_share"] is None and got["position_p"] is None
            assert "first_share and position_p null: only tie labels" in str(got["notes"])
            continue
        assert got["first_share"] == pytest.approx(first / (first + second))
        assert got["position_p"] == pytest.approx(stats.binomtest(first, first + second).pvalue, rel=1e-9)
    assert row_of(out, "ra")["biased"] is False  # 90% of 20: p = 4e-4 > 1e-6
    assert row_of(out, "rd")["biased"] is True  # 40 of 40: p = 1.8e-12
    assert row_of(out, "rc")["biased"] is False  # 12% first-shown of 25, p = 1.6e-4: not below 1e-6
    reason = str(row_of(out, "rd")["flag_reasons"])
    assert reason.startswith("biased: picks the first-shown response in 100% of 40 non-tie labels (binomial p=2e-12)")


@pytest.mark.parametrize("n", [1, 2, 7, 20, 51, 300])
def test_binomial_p_values_match_scipy_everywhere(n: int) -> None:
    ks = np.arange(n + 1)
    ours = binomial_two_sided_p(ks, np.full(n + 1, n))
    theirs = [stats.binomtest(int(k), n).pvalue for k in ks]
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)
    assert np.isnan(binomial_two_sided_p([0], [0])[0])


def test_tie_rate_z_seconds_and_runs_by_hand() -> None:
    rows = [(f"x{i}", "r1", c, "a") for i, c in enumerate(["tie", "tie", "a", "b"])]
    rows += [(f"y{i}", "r2", c, "a") for i, c in enumerate(["a", "a", "a", "b", "a", "a", "tie", "b"])]
    seconds = [1.0, 2.0, 3.0, None, 10.0, 2.0, 30.0, 40.0, float("nan"), -1.0, 50.0, 60.0]
    out = rater_quality(frame(rows, seconds), thresholds=RaterThresholds(min_labels=1))
    t = 3 / 12  # population tie rate
    r1, r2 = row_of(out, "r1"), row_of(out, "r2")
    assert r1["tie_rate"] == pytest.approx(0.5)
    assert r1["tie_rate_z"] == pytest.approx((0.5 - t) / math.sqrt(t * (1 - t) / 4))
    assert r2["tie_rate_z"] == pytest.approx((1 / 8 - t) / math.sqrt(t * (1 - t) / 8))
    # seconds: null, NaN and negative are untimed
    assert (r1["n_timed"], r1["median_seconds"], r1["too_fast_share"]) == (3, pytest.approx(2.0), 1.0)
    assert (r2["n_timed"], r2["median_seconds"]) == (6, pytest.approx(35.0))
    assert r2["too_fast_share"] == pytest.approx(1 / 6)
    # runs in row order (no labeled_at, one day): r2 = a a a b a a tie b -> 3 a's
    assert (r2["longest_run"], r2["longest_run_choice"]) == (3, "a")
    assert (r2["modal_choice"], r2["modal_share"]) == ("a", pytest.approx(5 / 8))
    assert_no_nan(out)


def test_runs_follow_labeled_at_not_row_order() -> None:
    choices = ["a", "a", "a", "a", "b", "a", "tie", "tie"]
    times = [datetime(2026, 3, 1, 9, m) for m in range(len(choices))]
    perm = [5, 2, 7, 0, 3, 6, 1, 4]
    rows = [(f"p{i}", "r1", choices[i], "a") for i in perm]
    labels = frame(rows).with_columns(
        labeled_at=pl.Series([times[i] for i in perm], dtype=pl.Datetime("us")),
        batch_date=pl.lit(D0),
    )
    out = rater_quality(labels, thresholds=RaterThresholds(min_labels=1))
    assert (out["longest_run"][0], out["longest_run_choice"][0]) == (4, "a")
    # a null labeled_at counts as the start of its batch day: the "b" (row l7) moves first -> b a a a a a tie tie
    early = labels.with_columns(
        labeled_at=pl.when(pl.col("label_id") == "l7").then(None).otherwise(pl.col("labeled_at"))
    )
    out = rater_quality(early, thresholds=RaterThresholds(min_labels=1))
    assert out["longest_run"][0] == 5


def test_gold_accuracy_and_gold_errors() -> None:
    rows = [("g1", "r1", "a", "a"), ("g2", "r1", "b", "a"), ("g3", "r1", "tie", "a"), ("g1", "r2", "b", "b")]
    rows += [("n1", "r1", "a", "a"), ("n1", "r2", "a", "a")]
    gold = pl.DataFrame({"pair_id": ["g1", "g2", "g3", "g9"], "choice": ["a", "b", "b", "a"]})
    out = rater_quality(frame(rows), gold=gold, thresholds=RaterThresholds(min_labels=1))
    assert (row_of(out, "r1")["n_gold"], row_of(out, "r1")["gold_accuracy"]) == (3, pytest.approx(2 / 3))
    assert (row_of(out, "r2")["n_gold"], row_of(out, "r2")["gold_accuracy"]) == (1, 0.0)
    no_gold = rater_quality(frame(rows[4:]), gold=gold)
    assert no_gold["gold_accuracy"].null_count() == 2
    assert no_gold["notes"].str.contains("gold_accuracy null: no labels on gold pairs").all()
    with pytest.raises(ValueError, match="conflicting"):
        rater_quality(frame(rows), gold=pl.DataFrame({"pair_id": ["g1", "g1"], "choice": ["a", "b"]}))
    with pytest.raises(ValueError, match="gold choices"):
        rater_quality(frame(rows), gold=pl.DataFrame({"pair_id": ["g1"], "choice": ["left"]}))
    with pytest.raises(ValueError, match="gold lacks"):
        rater_quality(frame(rows), gold=pl.DataFrame({"pair_id": ["g1"]}))


def test_p_value_words() -> None:
    ps = pl.DataFrame({"p": [1e-20, 0.0123456, 0.0, 9.96e-5, 3.4e-9, 1.0]})
    assert ps.select(_sci("p")).to_series().to_list() == ["1e-20", "0.0123", "<1e-300", "1e-4", "3e-9", "1.0"]


# --- planted truth ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[0, 1])
def planted(request: pytest.FixtureRequest) -> pl.DataFrame:
    """400k labels from 500 raters (about 800 labels each, 27 a day) with planted types."""
    labels, truth = generate_labels(400_000, n_raters=500, seed=request.param)
    return rater_quality(labels).join(truth.raters, on="rater_id", suffix="_true")


@pytest.mark.parametrize(
    ("flag", "planted_type"),
    [("spammer", "spammer"), ("biased", "always_first"), ("too_fast", "too_fast"), ("drifting", "drifter")],
)
def test_flags_recover_planted_types(planted: pl.DataFrame, flag: str, planted_type: str) -> None:
    flagged = planted.filter(pl.col(flag))
    planted_raters = planted.filter(pl.col("rater_type") == planted_type)
    true_pos = flagged.filter(pl.col("rater_type") == planted_type).height
    precision = true_pos / flagged.height
    recall = true_pos / planted_raters.height
    assert precision >= 0.9, (flag, precision, flagged.group_by("rater_type").len().rows())
    assert recall >= 0.9, (flag, recall)


def test_detected_change_days_match_planted_ones(planted: pl.DataFrame) -> None:
    hits = planted.filter(pl.col("drifting") & (pl.col("rater_type") == "drifter"))
    off = (hits["change_day"] - hits["change_day_true"]).dt.total_days().abs()
    assert (off <= 2).mean() >= 0.8


def test_flag_reasons_state_the_numbers(planted: pl.DataFrame) -> None:
    biased = planted.filter(pl.col("biased") & (pl.col("rater_type") == "always_first"))["flag_reasons"]
    assert biased.str.contains(
        r"^biased: picks the first-shown response in 100% of \d+ non-tie labels \(binomial p=\de-\d+\)"
    ).all()
    spam = planted.filter(pl.col("spammer"))["flag_reasons"]
    assert spam.str.contains(r"spammer: agrees with the leave-one-out consensus on \d+% of \d+ scored labels").all()
    fast = planted.filter(pl.col("too_fast"))["flag_reasons"]
    assert fast.str.contains(r"too_fast: \d+% of \d+ timed labels under 5 s \(median [\d.]+ s\)").all()
    drift = planted.filter(pl.col("drifting"))["flag_reasons"]
    assert drift.str.contains(r"drifting: agreement fell from \d+% to \d+% from \d{4}-\d\d-\d\d \(CUSUM z=").all()
    clean = planted.filter(~pl.any_horizontal(pl.col(*FLAGS)))
    assert (clean["flag_reasons"] == "").all()
    assert_no_nan(planted)


def test_straightliner_is_flagged() -> None:
    labels, _ = generate_labels(60_000, n_raters=200, seed=4)
    labels = labels.with_columns(choice=pl.when(pl.col("rater_id") == "r000").then(pl.lit("a")).otherwise("choice"))
    out = rater_quality(labels)
    r = row_of(out, "r000")
    assert r["straightlining"] is True and r["modal_share"] == 1.0 and r["longest_run"] == r["n_labels"]
    assert "straightlining: " in str(r["flag_reasons"]) and "'a' choices in a row" in str(r["flag_reasons"])
    assert out.filter(pl.col("rater_id") != "r000")["straightlining"].sum() <= 2


# --- edge cases ------------------------------------------------------------------------------------------------


def test_empty_and_malformed_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        rater_quality(frame([]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['rater_id'\]"):
        rater_quality(frame([("p1", "r1", "a", "a")]).drop("rater_id"))
    with pytest.raises(ValueError, match="choice must be one of"):
        rater_quality(frame([("p1", "r1", "A", "a")]))


def test_one_rater() -> None:
    out = rater_quality(frame([(f"p{i}", "solo", "ab"[i % 2], "a") for i in range(40)]))
    assert out.height == 1
    r = out.row(0, named=True)
    assert r["agreement"] is None and r["n_scored"] == 0
    assert "agreement null" in r["notes"] and "drift not testable" in r["notes"]
    assert r["tie_rate_z"] == 0.0 and "tie_rate_z 0" in r["notes"]  # the population's tie rate is 0
    assert not any(r[f] for f in FLAGS)
    assert_no_nan(out)


def test_rater_with_one_label_is_reported_not_flagged() -> None:
    rows = [(f"p{i}", "busy", "a", "a") for i in range(40)] + [("p0", "once", "b", "b")]
    out = rater_quality(frame(rows))
    once = row_of(out, "once")
    assert once["n_labels"] == 1 and once["assessed"] is False
    assert once["agreement"] == 0.0  # its one label disagrees with the other label on p0
    assert "not assessed: 1 label(s), fewer than min_labels=30" in str(once["notes"])
    assert not any(once[f] for f in FLAGS)
    assert_no_nan(out)


def test_all_ties() -> None:
    rows = [(f"p{i // 3}", f"r{i % 3}", "tie", "ab"[i % 2]) for i in range(150)]
    out = rater_quality(frame(rows))
    assert out["agreement"].to_list() == [1.0, 1.0, 1.0]
    assert out["first_share"].null_count() == 3 and out["position_p"].null_count() == 3
    assert out["tie_rate"].to_list() == [1.0, 1.0, 1.0] and out["tie_rate_z"].to_list() == [0.0, 0.0, 0.0]
    assert out["longest_run"].to_list() == [50, 50, 50]
    assert not out.select(pl.any_horizontal(pl.col(*FLAGS)).any()).item()  # everyone says tie: no straightlining
    assert out["notes"].str.contains("only tie labels").all()
    assert_no_nan(out)


def test_no_overlap_between_raters() -> None:
    rows = [(f"{r}-{i}", r, "abt"[i % 3].replace("t", "tie"), "a") for r in ("r1", "r2") for i in range(60)]
    out = rater_quality(frame(rows))
    assert out["agreement"].null_count() == 2 and out["n_scored"].to_list() == [0, 0]
    assert out["notes"].str.contains("agreement null: no label has a leave-one-out consensus").all()
    assert not out["spammer"].any()
    assert_no_nan(out)


def test_without_optional_columns() -> None:
    rows = [(f"p{i // 2}", f"r{i % 2}", "a", "a") for i in range(80)]
    out = rater_quality(frame(rows).drop("seconds", "label_id"))
    assert out["median_seconds"].null_count() == 2 and out["too_fast_share"].null_count() == 2
    assert out["notes"].str.contains("median_seconds and too_fast_share null").all()
    assert not out["too_fast"].any()
    assert_no_nan(out)


def test_batch_dates_over_a_long_span_and_categorical_ids() -> None:
    rows = [(f"p{i // 2}", f"r{i % 2}", "ab"[i % 2], "a") for i in range(60)]
    labels = frame(rows).with_columns(
        batch_date=pl.Series([D0 + timedelta(days=400 * (i % 3)) for i in range(60)]),
        rater_id=pl.col("rater_id").cast(pl.Categorical),
    )
    out = rater_quality(labels)
    assert out["rater_id"].dtype == pl.String and out.height == 2
    assert_no_nan(out)


def test_thresholds_from_policy_overrides() -> None:
    th = RaterThresholds.from_overrides({"min_labels": 50.0, "spammer_agreement_max": 0.35}, {"z": 5, "min_drop": 0.2})
    assert th.min_labels == 50 and isinstance(th.min_labels, int) and th.spammer_agreement_max == 0.35
    assert th.drift.z == 5.0 and th.drift.min_drop == 0.2 and th.drift.min_side_labels == 20
    assert RaterThresholds.from_overrides() == RaterThresholds()
    with pytest.raises(ValueError, match="unknown rater threshold 'min_lables'"):
        RaterThresholds.from_overrides({"min_lables": 3})
    with pytest.raises(ValueError, match="unknown rater threshold 'drift'"):
        RaterThresholds.from_overrides({"drift": 1})
    with pytest.raises(ValueError, match="must be an integer"):
        RaterThresholds.from_overrides({"min_labels": 30.5})
    with pytest.raises(ValueError, match="unknown drift threshold"):
        RaterThresholds.from_overrides(drift={"zz": 1})
