"""prefgate.calibration on tiny hand-made frames: definitions, edge cases, the map and its serialisation."""

import json
from typing import cast

import numpy as np
import polars as pl
import pytest

from prefgate.calibration import (
    TABLE_SCHEMA,
    CalibrationMap,
    build_overlap,
    calibration_table,
    ensemble_rows,
    fit_calibration,
    model_family,
    reliability_bins,
    reliability_plot,
)
from prefgate.calibration.stats import logistic_fit_segments
from prefgate.calibration.table import NO_BOTH_ORDERS


def overlap(**overrides: list[object]) -> pl.DataFrame:
    """Six labels of judge j1 on five pairs (p1 labelled twice, both orders) and two of j2."""
    cols: dict[str, list[object]] = {
        "judge_id": ["j1", "j1", "j1", "j1", "j1", "j1", "j2", "j2"],
        "pair_id": ["p1", "p1", "p2", "p3", "p4", "p5", "p1", "p2"],
        "choice": ["a", "a", "b", "tie", "a", "b", "b", "a"],
        "human": ["a", "a", "a", "tie", "b", "b", "a", "a"],
        "shown_first": ["a", "b", "b", "a", "a", "a", "b", "a"],
        "probability_a": [0.9, 0.8, 0.3, 0.5, 0.6, None, None, None],
        "position_consistent": [True, True, False, None, True, None, None, None],
        "len_a": [100, 100, 10, 5, 50, 20, 100, 10],
        "len_b": [10, 10, 20, 5, 60, 20, 10, 20],
        "self_side": ["a", "a", None, None, "b", None, None, None],
        "category": ["x", "x", "y", "y", None, "x", "x", "y"],
    }
    cols.update(overrides)
    return pl.DataFrame(cols, schema_overrides={"probability_a": pl.Float64, "position_consistent": pl.Boolean})


def row(table: pl.DataFrame, judge: str, slice_: str = "all", value: str = "all") -> dict[str, object]:
    sel = table.filter((pl.col("judge_id") == judge) & (pl.col("slice") == slice_) & (pl.col("slice_value") == value))
    assert sel.height == 1
    return sel.row(0, named=True)


def test_definitions_by_hand() -> None:
    table = calibration_table(overlap(), ["category"])
    assert table.schema == pl.Schema(TABLE_SCHEMA)
    r = row(table, "j1")
    assert (r["n_labels"], r["n_pairs"]) == (6, 5)
    assert r["agree_ties"] == pytest.approx(4 / 6)  # p1 twice, p3 tie, p5
    # strict = both sides a/b: rows 0, 1, 2, 4, 5; agreeing 0, 1, 5
    assert (r["n_strict"], r["agree_strict"]) == (5, pytest.approx(3 / 5))
    # checked pairs: p1 (labelled in both orders, a and a: consistent), p2 (flag False), p4 (flag True)
    assert (r["n_position_checked"], r["position_consistency"]) == (3, pytest.approx(2 / 3))
    assert r["position_consistency_reason"] is None
    # picks the shown-first side on strict rows: row 0 (a/a) yes, 1 (a, first b) no, 2 (b/b) yes, 4 yes, 5 no
    assert (r["n_first"], r["p_first"]) == (5, pytest.approx(3 / 5))
    assert r["human_p_first"] == pytest.approx(1 / 5)  # humans a,a,a,b,b vs first a,b,b,a,a
    # longer on strict rows with different lengths: rows 0,1 (a longer, pick a), 2 (b longer, pick b), 4 (b, pick a)
    assert (r["n_longer"], r["p_longer"], r["human_p_longer"]) == (4, pytest.approx(3 / 4), pytest.approx(3 / 4))
    # self side: rows 0, 1 (a, picks a), 4 (b, picks a)
    assert (r["n_self"], r["self_preference"], r["human_self_preference"]) == (3, pytest.approx(2 / 3), 1.0)
    # probability rows with a strict human: 0 (0.9, y=1), 1 (0.8, 1), 2 (0.3, 1), 4 (0.6, y=0)
    assert r["n_prob"] == 4
    assert r["brier"] == pytest.approx((0.01 + 0.04 + 0.49 + 0.36) / 4)
    # bins: 0.3 -> [0.2, 0.3] (right-closed, as calibration_curve), 0.6 -> bin 5, 0.8 -> bin 7, 0.9 -> bin 8
    assert r["ece"] == pytest.approx((0.7 + 0.6 + 0.2 + 0.1) / 4)
    lo, hi = r["agree_ties_lo"], r["agree_ties_hi"]
    assert isinstance(lo, float) and isinstance(hi, float) and lo < 4 / 6 < hi
    assert row(table, "j1", "category", "unknown")["n_labels"] == 1  # null slice value -> "unknown"
    assert row(table, "j1", "category", "x")["n_pairs"] == 2
    j2 = row(table, "j2")
    assert (j2["n_prob"], j2["ece"], j2["brier"], j2["position_consistency"]) == (0, None, None, None)
    assert (j2["n_position_checked"], j2["position_consistency_reason"]) == (0, NO_BOTH_ORDERS)  # p1 b, p2 a only


def test_planted_biases_reach_one() -> None:
    rng = np.random.default_rng(1)
    n = 400
    la, lb = rng.integers(1, 500, n), rng.integers(1, 500, n)
    first = rng.choice(["a", "b"], n)
    base = {
        "pair_id": [f"p{i}" for i in range(n)],
        "human": rng.choice(["a", "b", "tie"], n),
        "shown_first": first,
        "len_a": la,
        "len_b": lb,
    }
    longer = np.where(la > lb, "a", np.where(lb > la, "b", "tie"))
    frame = pl.concat(
        [
            pl.DataFrame({"judge_id": ["first"] * n, "choice": first, **base}),
            pl.DataFrame({"judge_id": ["longer"] * n, "choice": longer, **base}),
        ]
    )
    table = calibration_table(frame)
    assert row(table, "first")["p_first"] == 1.0
    assert row(table, "longer")["p_longer"] == 1.0
    assert row(table, "longer")["length_slope"] is None  # perfectly separated: no finite MLE


def test_kappa_and_slope_edges() -> None:
    # a judge that always says "a" against humans who always say "a": chance agreement 1, kappa undefined
    frame = overlap(choice=["a"] * 8, human=["a"] * 8)
    r = row(calibration_table(frame), "j1")
    assert r["agree_ties"] == 1.0 and r["kappa"] is None and r["length_slope"] is None


def test_logistic_segments_groups_and_degenerate() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    y = (rng.random(600) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    # three segments, the first two forming group 0, the third group 1 (constant y -> degenerate)
    y[400:] = 1.0
    b0, b1, ok = logistic_fit_segments(x, y, np.array([0, 200, 400]), group_of_segment=np.array([0, 0, 1]), n_groups=2)
    one = logistic_fit_segments(x[:400], y[:400], np.array([0]))
    assert ok.tolist() == [True, False]
    assert (b0[0], b1[0]) == (pytest.approx(one[0][0], abs=1e-9), pytest.approx(one[1][0], abs=1e-9))
    assert np.isnan(b0[1]) and np.isnan(b1[1])


def test_validation_errors_and_empty() -> None:
    with pytest.raises(ValueError, match="choice"):
        calibration_table(overlap(choice=["a", "x", "b", "tie", "a", "b", "b", "a"]))
    with pytest.raises(ValueError, match="lacks"):
        calibration_table(overlap().drop("human"))
    with pytest.raises(ValueError, match="reserved"):
        calibration_table(overlap().with_columns(pl.lit("v").alias("all")), ["all"])
    empty = calibration_table(overlap().head(0), ["category"])
    assert empty.height == 0 and empty.schema == pl.Schema(TABLE_SCHEMA)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4o-mini", "gpt"),
        ("gpt-3.5-turbo", "gpt"),
        ("openai:gpt-4o", "gpt"),
        ("recorded:gpt-4:mt-bench-pair", "gpt"),
        ("claude-v1", "claude"),
        ("llama-13b", "llama"),
        ("meta-llama/Llama-2-7b-chat-hf", "llama"),
        ("vicuna-13b-v1.2", "vicuna"),
        ("alpaca-13b", "alpaca"),
        ("recorded:pandalm-7b:pandalm-prompt", "pandalm"),
        ("transformers:SmolLM2-135M-Instruct:pairwise-v1:abc123", "smollm"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
        ("programmatic:rules:a52a77ac:33941ed6", None),
        ("98", None),
        (None, None),
    ],
)
def test_model_family(name: str | None, family: str | None) -> None:
    assert model_family(name) == family


def test_build_overlap_from_warehouse_tables() -> None:
    judge_labels = pl.DataFrame(
        {
            "judge_id": ["transformers:SmolLM2-135M-Instruct:t:c"] * 3 + ["recorded:gpt-4:x", "recorded:gpt-4:x"],
            "pair_id": ["p1", "p1", "p2", "p1", "p3"],
            "choice": ["a", "b", None, "a", "b"],
            "status": ["ok", "ok", "failed", "ok", "ok"],
            "shown_first": ["a", "b", "a", "a", "a"],
            "probability_a": [0.7, 0.4, None, None, None],
            "position_consistent": [False, False, None, None, None],
            "order": ["ab", "ba", "ab", None, None],
        }
    )
    consensus = pl.DataFrame({"pair_id": ["p1", "p2", "p3"], "verdict": ["a", "b", "no_majority"]})
    pairs = pl.DataFrame(
        {
            "pair_id": ["p1", "p2", "p3"],
            "response_a": ["aaaa", "bb", "c"],
            "response_b": ["bb", "cccc", "dd"],
            "model_a": ["SmolLM2-360M", "gpt-4", "x"],
            "model_b": ["gpt-3.5-turbo", None, "y"],
            "category": ["chat", None, "code"],
        }
    )
    out = build_overlap(judge_labels, consensus, pairs, ["category"]).sort("judge_id", "shown_first")
    # the failed judgment and the pair without a human majority drop out; both orders of p1 stay
    assert out.height == 3
    assert out["human"].to_list() == ["a", "a", "a"]
    assert out.select("len_a", "len_b").rows() == [(4, 2)] * 3
    assert out["self_side"].to_list() == ["b", "a", "a"]  # gpt-4 judge: side b (gpt-3.5); SmolLM judge: side a
    assert out["position_consistent"].to_list() == [None, False, False]


def test_ensemble_rows() -> None:
    frame = overlap()
    ens = ensemble_rows(frame).sort("pair_id")
    assert ens["judge_id"].unique().to_list() == ["ensemble"]
    # p1: mean of 0.9, 0.8 -> a; p2: mean 0.3 -> b; p3: 0.5 -> tie; p5: no probability, one vote b
    got = dict(zip(ens["pair_id"].to_list(), ens["choice"].to_list(), strict=True))
    assert got == {"p1": "a", "p2": "b", "p3": "tie", "p4": "a", "p5": "b"}
    split = ensemble_rows(overlap(probability_a=[None] * 8), ["j1", "j2"]).sort("pair_id")
    assert split.filter(pl.col("pair_id") == "p2")["choice"].item() == "tie"  # j1 b vs j2 a: split
    assert split.filter(pl.col("pair_id") == "p1")["choice"].item() == "a"  # a, a, b
    table = calibration_table(pl.concat([frame, ens], how="diagonal_relaxed"), ["category"])
    assert row(table, "ensemble")["n_labels"] == 5 and row(table, "ensemble")["n_first"] == 0


def _prob_overlap(n: int = 3000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    agree = rng.random(n) < 0.3 + 0.6 * (conf - 0.5) * 2 * 0.8  # better than chance, overconfident
    choice = rng.choice(["a", "b"], n)
    other = np.where(choice == "a", "b", "a")
    human = np.where(agree, choice, other)
    prob_a = np.where(choice == "a", conf, 1 - conf)
    ties = rng.random(n) < 0.1
    return pl.DataFrame(
        {
            "judge_id": rng.choice(["j1", "j2"], n),
            "pair_id": [f"p{i // 2}" for i in range(n)],
            "choice": np.where(ties, "tie", choice),
            "human": human,
            "probability_a": prob_a,
        }
    )


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_fit_calibration_map(method: str) -> None:
    frame = _prob_overlap()
    cmap = fit_calibration(frame, method, folds=5, seed=0)  # type: ignore[arg-type]
    assert set(cmap.judges) == {"j1", "j2"}
    metrics = cmap.metrics()
    assert (metrics["ece_after"] < metrics["ece_before"]).all()
    assert (metrics["brier_after"] < metrics["brier_before"]).all()
    cal = cmap.judges["j1"]
    j1 = frame.filter(pl.col("judge_id") == "j1")
    ties = j1.filter(pl.col("choice") == "tie")
    assert cal.fallback_tie == pytest.approx((ties["choice"] == ties["human"]).mean())
    # every strict verdict carries a probability: the strict constant is the judge's overall agreement rate
    assert cal.fallback == pytest.approx((j1["choice"] == j1["human"]).mean())
    assert cmap.apply("j1", "tie", 0.5) == pytest.approx(cal.fallback_tie)
    assert cmap.apply("j1", "b", None) == pytest.approx(cal.fallback)
    # confidence in a "b" verdict is 1 - p_a: both views of the same label agree
    assert cmap.apply("j1", "a", 0.8) == pytest.approx(cmap.apply("j1", "b", 0.2))
    curve = cmap.apply("j1", ["a"] * 5, [0.5, 0.6, 0.7, 0.8, 0.99])
    assert isinstance(curve, np.ndarray) and np.all(np.diff(curve) >= 0)
    back = CalibrationMap.from_json(cmap.to_json())
    assert back == cmap and json.loads(cmap.to_json())["method"] == method
    assert back.apply("j2", "a", 0.77) == cmap.apply("j2", "a", 0.77)
    series = cmap.apply_frame(frame.head(50).vstack(frame.head(1).with_columns(pl.lit("zz").alias("judge_id"))))
    assert series.null_count() == 1 and series.len() == 51
    with pytest.raises(KeyError):
        cmap.apply("nobody", "a", 0.9)


def test_reliability_bins_and_plot() -> None:
    cmap = fit_calibration(_prob_overlap(), "isotonic")
    assert cmap.oof is not None
    bins = reliability_bins(cmap.oof, prediction="raw")
    assert bins["n"].sum() == cmap.oof.height
    assert bins.filter(pl.col("judge_id") == "j1")["bin"].is_unique().all()
    png = reliability_plot(reliability_bins(cmap.oof))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _fallback_overlap() -> pl.DataFrame:
    """Judge g (recorded, no probabilities): strict verdicts agree 3 of 4, ties 1 of 3 (overall 4 of 7).
    Judge s: every strict verdict scored, two ties, one agreeing (strict constant = overall 3 of 4).
    Judge t: never says tie; its one unscored strict verdict agrees (strict 1), tie constant = overall 2 of 3."""
    rows = [
        ("g", "p0", "a", "a", None),
        ("g", "p1", "b", "b", None),
        ("g", "p2", "a", "a", None),
        ("g", "p3", "b", "tie", None),
        ("g", "p4", "tie", "tie", None),
        ("g", "p5", "tie", "a", None),
        ("g", "p6", "tie", "b", None),
        ("s", "p0", "a", "a", 0.9),
        ("s", "p1", "b", "b", 0.2),
        ("s", "p2", "tie", "tie", None),
        ("s", "p3", "tie", "a", 0.5),
        ("t", "p4", "a", "a", 0.8),
        ("t", "p5", "b", "a", 0.4),
        ("t", "p6", "a", "a", None),
    ]
    schema = {"judge_id": pl.String, "pair_id": pl.String, "choice": pl.String, "human": pl.String}
    return pl.DataFrame(rows, schema={**schema, "probability_a": pl.Float64}, orient="row")


def test_strict_and_tie_fallbacks_by_hand() -> None:
    frame = _fallback_overlap()
    cmap = fit_calibration(frame, "isotonic", folds=2)
    g, s, t = cmap.judges["g"], cmap.judges["s"], cmap.judges["t"]
    assert (g.fallback, g.fallback_tie) == (3 / 4, 1 / 3)
    assert (s.fallback, s.fallback_tie) == (3 / 4, 1 / 2)
    assert (t.fallback, t.fallback_tie) == (1.0, 2 / 3)
    assert cmap.apply("g", "a", None) == 3 / 4 and cmap.apply("g", "tie", None) == 1 / 3
    assert cmap.apply("s", "tie", 0.5) == 1 / 2  # a tie's probability is no confidence in a side
    got = cmap.apply("g", ["tie", "b", "a"], None)
    assert isinstance(got, np.ndarray) and got.tolist() == [1 / 3, 3 / 4, 3 / 4]
    assert cmap.apply_frame(frame.filter(pl.col("judge_id") == "g")).to_list() == [3 / 4] * 4 + [1 / 3] * 3
    m = cmap.metrics()
    assert m.select("fallback", "fallback_tie").rows() == [(3 / 4, 1 / 3), (3 / 4, 1 / 2), (1.0, 2 / 3)]
    assert cmap.oof is not None
    assert cmap.oof.filter(pl.col("judge_id") == "g")["raw"].to_list() == [3 / 4] * 4 + [1 / 3] * 3
    back = CalibrationMap.from_json(cmap.to_json())
    assert back == cmap and back.judges["g"].fallback_tie == 1 / 3
    # a map written before fallback_tie existed reads back with the strict constant for ties
    old = cmap.to_dict()
    for judge in cast("dict[str, dict[str, object]]", old["judges"]).values():
        del judge["fallback_tie"]
    legacy = CalibrationMap.from_dict(old)
    assert all(c.fallback_tie == c.fallback for c in legacy.judges.values())
    assert legacy.apply("g", "tie", None) == 3 / 4


def test_oof_fallbacks_exclude_the_held_out_fold() -> None:
    """Each unscored label's out-of-fold value is its kind's agreement rate on the other folds' labels (the other
    folds' overall rate when they hold none of its kind), recomputed here in plain Python."""
    base = _fallback_overlap()
    frame = pl.concat([base.with_columns(pl.col("pair_id") + f"-{r}") for r in range(6)])
    cmap = fit_calibration(frame, "isotonic", folds=3, seed=1)
    assert cmap.oof is not None
    rows = [
        (r["judge_id"], r["fold"], r["agree"], "scored" if r["confidence"] is not None else c)
        for r, c in zip(cmap.oof.rows(named=True), frame["choice"].to_list(), strict=True)
    ]
    kinds = {"a": "strict", "b": "strict", "tie": "tie", "scored": "scored"}
    full = {j: (c.fallback, c.fallback_tie) for j, c in cmap.judges.items()}
    checked = leaky = 0
    for (judge, fold, _, kind), got in zip(rows, cmap.oof["calibrated"].to_list(), strict=True):
        if kind == "scored":
            continue
        train = [(k, y) for j, f, y, k in rows if j == judge and f != fold]
        same = [y for k, y in train if kinds[k] == kinds[kind]]
        want = sum(same) / len(same) if same else sum(y for _, y in train) / len(train)
        assert got == pytest.approx(want, abs=1e-15)
        leaky += got != full[judge][kind == "tie"]
        checked += 1
    assert checked == 6 * 10  # per copy: g's seven labels, s's two ties, t's unscored strict verdict
    assert leaky > 0  # held-out-free constants are not the full-data ones
