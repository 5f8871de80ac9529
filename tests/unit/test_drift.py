"""Drift: leave-one-out scoring, factorisation, the one-sided CUSUM change test, PSI, and planted drifters."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from prefgate import drift as drift_mod
from prefgate.drift import (
    DriftThresholds,
    cusum_drop_test,
    detect_drift,
    factorize,
    loo_consensus,
    psi,
    score_labels,
)
from prefgate.synth import generate_labels

D0 = date(2026, 3, 1)


def frame(rows: list[tuple[str, str, str, str, int]]) -> pl.DataFrame:
    """Rows of (pair_id, rater_id, choice, shown_first, day offset) as a label table."""
    return pl.DataFrame(
        {
            "label_id": [f"l{i}" for i in range(len(rows))],
            "pair_id": [r[0] for r in rows],
            "rater_id": [r[1] for r in rows],
            "choice": [r[2] for r in rows],
            "shown_first": [r[3] for r in rows],
            "seconds": [10.0] * len(rows),
            "batch_date": [D0 + timedelta(days=r[4]) for r in rows],
        },
        schema_overrides={"seconds": pl.Float64},
    )


# --- leave-one-out consensus -----------------------------------------------------------------------------------


def test_loo_consensus_by_hand() -> None:
    # p1: a, a, b   -> for each a-label the rest is {a, b}: tie of the remainder -> unscored;
    #                  for the b-label the rest is {a, a}: consensus a, disagrees.
    # p2: a, a, a   -> every label's rest is {a, a}: agrees.
    # p3: tie, b    -> rest of tie is {b}: disagrees; rest of b is {tie}: disagrees.
    # p4: a         -> nobody else: unscored.
    labels = frame(
        [
            ("p1", "r1", "a", "a", 0),
            ("p1", "r2", "a", "a", 0),
            ("p1", "r3", "b", "a", 0),
            ("p2", "r1", "a", "a", 0),
            ("p2", "r2", "a", "b", 0),
            ("p2", "r3", "a", "a", 0),
            ("p3", "r1", "tie", "a", 0),
            ("p3", "r2", "b", "b", 0),
            ("p4", "r3", "a", "a", 0),
        ]
    )
    sc = score_labels(labels)
    assert sc.scored.tolist() == [False, False, True, True, True, True, True, True, False]
    assert sc.agree.tolist() == [False, False, False, True, True, True, False, False, False]
    out = sc.to_frame()
    assert out["agree"].to_list() == [None, None, False, True, True, True, False, False, None]
    # picked_first: choice equals shown_first, never for ties
    assert sc.picked_first.tolist() == [True, True, False, True, False, True, False, True, True]


def test_loo_consensus_arrays_and_strict_plurality() -> None:
    pair = np.array([0, 0, 0, 0, 1, 1], dtype=np.uint32)
    choice = np.array([0, 0, 1, 2, 2, 2], dtype=np.int8)
    scored, agree, consensus = loo_consensus(pair, choice, 2)
    # pair 0 = a, a, b, tie. Without an a: {a, b, tie} -> no strict plurality. Without b: {a, a, tie} -> a.
    assert consensus.tolist() == [-1, -1, 0, 0, 2, 2]
    assert scored.tolist() == [False, False, True, True, True, True]
    assert agree.tolist() == [False, False, False, False, True, True]


# --- factorisation ---------------------------------------------------------------------------------------------


def _check_codes(values: pl.Series) -> None:
    codes, rep = factorize(values)
    assert codes.dtype == np.uint32
    assert len(rep) == values.n_unique()
    assert codes.max() == len(rep) - 1
    # every code maps back to exactly one value, every value to one code
    restored = values.gather(rep).gather(codes)
    assert (restored == values).all()
    pairs = pl.DataFrame({"v": values, "c": codes}).unique()
    assert pairs.height == values.n_unique()


def test_factorize_contiguous_small_and_large_paths() -> None:
    rng = np.random.default_rng(0)
    contiguous = pl.Series([f"p{i // 3}" for i in range(3000)])  # runs of 3: the run path
    _check_codes(contiguous)
    repeated = pl.Series(["x", "x", "y", "y", "x", "x"])  # runs, but "x" recurs: not the run path
    _check_codes(repeated)
    few = pl.Series([f"r{i}" for i in rng.integers(0, 50, 5000)])  # few distinct: the hash-map path
    _check_codes(few)
    many = pl.Series([f"q{i}" for i in rng.permutation(150_000)])  # > 65,536 distinct: the sort path
    _check_codes(many)
    _check_codes(pl.Series([7, 3, 7, 9, 3], dtype=pl.Int64))  # integer ids too


def test_factorize_collision_fallback_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the verifying hash disagrees (a collision), the exact dense rank is used."""
    values = pl.Series([f"r{i}" for i in np.random.default_rng(1).integers(0, 40, 2000)])
    real_hash = pl.Series.hash

    def fake_hash(self: pl.Series, seed: int = 0) -> pl.Series:
        out = real_hash(self, seed)
        return out + 1 if seed == drift_mod._SEED_2 and len(self) > 40 else out  # rows never match their reps

    ranked: list[int] = []
    real_rank = pl.Series.rank

    def counting_rank(self: pl.Series, *args: object, **kwargs: object) -> pl.Series:
        ranked.append(len(self))
        return real_rank(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.Series, "hash", fake_hash)
    monkeypatch.setattr(pl.Series, "rank", counting_rank)
    _check_codes(values)
    assert ranked == [len(values)]  # the exact path ran


# --- the change test -------------------------------------------------------------------------------------------


def test_cusum_toy_series_with_known_shift() -> None:
    n = np.full(20, 20.0)
    k = np.concatenate([np.full(10, 18.0), np.full(10, 8.0)])  # 0.9 for 10 days, then 0.4
    test = cusum_drop_test(k, n, min_side_labels=20, min_side_days=2)
    assert test.tau.tolist() == [10]
    assert test.before[0] == pytest.approx(0.9)
    assert test.after[0] == pytest.approx(0.4)
    assert (test.n_before[0], test.n_after[0]) == (200, 200)
    p = 260 / 400
    z = 0.5 / math.sqrt(p * (1 - p) * (1 / 200 + 1 / 200))
    assert test.statistic[0] == pytest.approx(z)  # 10.48
    # a rise is not a fall: the one-sided statistic is negative everywhere
    rise = cusum_drop_test(k[::-1], n)
    assert rise.statistic[0] < 0


def test_cusum_edges_are_defined() -> None:
    # constant agreement of 1: pooled p(1-p) = 0 -> Z = 0, not NaN
    flat = cusum_drop_test(np.full((1, 10), 5.0), np.full((1, 10), 5.0), min_side_labels=5)
    assert flat.statistic[0] == 0.0
    # too few labels on either side: no admissible split
    few = cusum_drop_test(np.ones((1, 10)), np.ones((1, 10)), min_side_labels=20)
    assert few.tau[0] == -1 and few.statistic[0] == -np.inf and np.isnan(few.before[0])
    # one period only
    one = cusum_drop_test([[3.0]], [[5.0]])
    assert one.tau[0] == -1
    with pytest.raises(ValueError, match="same shape"):
        cusum_drop_test(np.ones((2, 3)), np.ones((2, 4)))


def test_cusum_false_alarms_are_rare_on_stable_raters() -> None:
    """Calibration: stable binomial raters (seeded) almost never reach the default threshold."""
    th = DriftThresholds()
    rng = np.random.default_rng(7)
    for lam in (3, 13, 60):
        n = rng.poisson(lam, size=(20_000, 30)).astype(float)
        k = rng.binomial(n.astype(int), rng.uniform(0.35, 0.95, size=(20_000, 1))).astype(float)
        test = cusum_drop_test(k, n, th.min_side_labels, th.min_side_days)
        alarms = (test.statistic >= th.z) & (test.before - test.after >= th.min_drop)
        assert alarms.mean() <= 0.0005, lam  # <= 1 in 2,000 (measured: about 1 in 14,000)


# --- PSI -------------------------------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    current, reference = [50, 30, 20], [40, 40, 20]
    by_hand = 0.1 * math.log(0.5 / 0.4) + (-0.1) * math.log(0.3 / 0.4)  # 0.051082
    assert psi(current, reference, epsilon=0.0)[0] == pytest.approx(by_hand)
    assert psi(current, reference)[0] == pytest.approx(by_hand, rel=1e-3)
    assert psi(reference, reference)[0] == 0.0
    # an empty category stays finite with smoothing: (share + e) / (1 + 3e)
    e = 1e-4
    p = np.array([0.6, 0.4, 0.0])
    q = np.array([0.4, 0.4, 0.2])
    ps, qs = (p + e) / (1 + 3 * e), (q + e) / (1 + 3 * e)
    assert psi([60, 40, 0], [40, 40, 20], e)[0] == pytest.approx(float(((ps - qs) * np.log(ps / qs)).sum()))
    assert np.isfinite(psi([60, 40, 0], [40, 40, 20], e)[0])


# --- detect_drift on data --------------------------------------------------------------------------------------


def test_planted_drifters_detected_near_their_change_day() -> None:
    labels, truth = generate_labels(400_000, n_raters=500, seed=0)
    report = detect_drift(labels)
    tests = report.rater_tests.join(truth.raters, on="rater_id", suffix="_true")
    detected = tests.filter("detected")
    drifters = truth.raters_of_type("drifter")
    hits = detected.filter(pl.col("rater_id").is_in(drifters))
    precision = hits.height / detected.height
    recall = hits.height / len(drifters)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    off = (hits["change_day"] - hits["change_day_true"]).dt.total_days().abs()
    assert (off <= 2).mean() >= 0.8
    assert report.change_points.height == detected.height
    assert set(report.change_points.columns) >= {"rater_id", "change_day", "before", "after", "statistic"}
    assert (report.change_points["before"] - report.change_points["after"] >= 0.15).all()
    # the population's label distribution is stable: no day shifted
    assert report.population_daily["psi"].max() < 0.01
    assert report.population_changes.height == 0
    # daily series: one row per rater-day with labels; agreement null only where nothing was scored
    daily = report.rater_daily
    assert daily["n_labels"].sum() == labels.height
    assert daily.filter(pl.col("agreement").is_null())["n_scored"].eq(0).all()


def test_rubric_change_is_a_population_change_point() -> None:
    labels, _ = generate_labels(120_000, n_raters=300, days=20, seed=2, rubric_change_day=10)
    report = detect_drift(labels)
    changes = report.population_changes
    rubric = changes.filter(pl.col("kind") == "rubric_version")
    assert rubric["change_day"].to_list() == [D0.replace(month=1, day=11)]
    assert rubric["applies_to"].to_list() == ["all raters"]
    assert "v1 -> v2" in rubric["detail"][0]
    # the new rubric asks for more ties: the label distribution shifts the same day
    shift = changes.filter(pl.col("kind") == "label_distribution")
    assert shift["change_day"].to_list() == rubric["change_day"].to_list()
    assert shift["statistic"][0] >= 0.1
    daily = report.population_daily
    assert not daily.filter(pl.col("batch_date") < rubric["change_day"][0])["shifted"].any()


def test_short_history_and_single_day_give_defined_results() -> None:
    labels = frame([("p1", "r1", "a", "a", 0), ("p1", "r2", "a", "b", 0), ("p2", "r1", "b", "a", 0)])
    report = detect_drift(labels)
    assert report.change_points.height == 0
    tests = report.rater_tests
    assert tests["statistic"].null_count() == tests.height  # no admissible split: null, not NaN
    assert not tests["detected"].any()
    assert report.population_daily["psi"].to_list() == [0.0]
    for df in (report.rater_daily, report.rater_tests, report.population_daily):
        floats = [c for c, t in df.schema.items() if t == pl.Float64]
        assert not df.select(pl.any_horizontal(pl.col(floats).is_nan()).any()).item()


def test_invalid_input_raises_clear_errors() -> None:
    good = frame([("p1", "r1", "a", "a", 0), ("p1", "r2", "b", "b", 0)])
    with pytest.raises(ValueError, match="empty"):
        detect_drift(good.clear())
    with pytest.raises(ValueError, match="lacks column"):
        detect_drift(good.drop("shown_first"))
    with pytest.raises(ValueError, match="choice must be one of"):
        detect_drift(good.with_columns(choice=pl.lit("first")))
    with pytest.raises(ValueError, match="shown_first must be one of"):
        detect_drift(good.with_columns(shown_first=pl.lit("tie")))
    with pytest.raises(ValueError, match="rater_id has 1 null"):
        detect_drift(good.with_columns(rater_id=pl.Series(["r1", None])))
