"""prefgate.calibration against scikit-learn and statsmodels on a seeded synthetic overlap, group by group."""

import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from prefgate.calibration import calibration_table, fit_calibration, wilson_interval

TOL = 1e-12


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    n = 4000
    n_pairs = 1500
    pair = rng.integers(0, n_pairs, n)
    truth = rng.choice(["a", "b", "tie"], n_pairs, p=[0.45, 0.4, 0.15])
    len_a = rng.integers(1, 2000, n_pairs)
    len_b = rng.integers(1, 2000, n_pairs)
    judge = rng.choice(["j1", "j2", "j3"], n)
    human = truth[pair]
    x = np.log(len_a[pair] / len_b[pair])
    lean_a = rng.random(n) < 1 / (1 + np.exp(-(0.2 + 0.7 * x)))  # length-biased verdicts
    choice = np.where(rng.random(n) < 0.55, human, np.where(lean_a, "a", "b"))
    choice = np.where(rng.random(n) < 0.08, "tie", choice)
    conf = rng.uniform(0.5, 1.0, n).round(2)  # rounded: ties in x exercise the isotonic pooling
    prob = np.where(choice == "a", conf, np.where(choice == "b", 1 - conf, 0.5))
    has_prob = judge != "j3"
    return pl.DataFrame(
        {
            "judge_id": judge,
            "pair_id": [f"p{i}" for i in pair],
            "choice": choice,
            "human": human,
            "shown_first": rng.choice(["a", "b"], n),
            "probability_a": pl.Series(prob).set(pl.Series(~has_prob), None),
            "position_consistent": pl.Series(rng.random(n) < 0.85).set(pl.Series(~has_prob), None),
            "len_a": len_a[pair],
            "len_b": len_b[pair],
            "self_side": pl.Series(rng.choice(["a", "b", "-"], n)).replace("-", None),
            "category": rng.choice(["chat", "code", "math"], n_pairs)[pair],
            "language": rng.choice(["en", "de"], n_pairs)[pair],
        }
    )


def _groups(frame: pl.DataFrame) -> list[tuple[str, str, str, pl.DataFrame]]:
    out = [(j, "all", "all", part) for (j,), part in frame.group_by("judge_id")]
    for s in ("category", "language"):
        out += [(j, s, v, part) for (j, v), part in frame.group_by("judge_id", s)]
    return out


def test_table_against_references(frame: pl.DataFrame) -> None:
    table = calibration_table(frame, ["category", "language"], confidence=0.95)
    groups = _groups(frame)
    assert table.height == len(groups)
    z_alpha = 0.05  # statsmodels cohens_kappa reports 95% limits
    for judge, s, v, part in groups:
        r = table.filter((pl.col("judge_id") == judge) & (pl.col("slice") == s) & (pl.col("slice_value") == v)).row(
            0, named=True
        )
        pdf = part.to_pandas()
        assert r["n_pairs"] == pdf["pair_id"].nunique()
        choice, human = pdf["choice"].to_numpy(), pdf["human"].to_numpy()
        n = len(pdf)
        k = int((choice == human).sum())
        assert r["agree_ties"] == pytest.approx(k / n, abs=TOL)
        lo, hi = proportion_confint(k, n, alpha=z_alpha, method="wilson")
        assert (r["agree_ties_lo"], r["agree_ties_hi"]) == (pytest.approx(lo, abs=TOL), pytest.approx(hi, abs=TOL))
        strict = (choice != "tie") & (human != "tie")
        ks = int((choice[strict] == human[strict]).sum())
        lo, hi = proportion_confint(ks, int(strict.sum()), alpha=z_alpha, method="wilson")
        assert r["agree_strict_lo"] == pytest.approx(lo, abs=TOL) and r["agree_strict_hi"] == pytest.approx(hi, abs=TOL)
        labels = ["a", "b", "tie"]
        assert r["kappa"] == pytest.approx(cohen_kappa_score(choice, human, labels=labels), abs=TOL)
        cont = np.array([[np.sum((choice == a) & (human == b)) for b in labels] for a in labels], dtype=float)
        res = cohens_kappa(cont)
        assert r["kappa_se"] == pytest.approx(res.std_kappa, abs=TOL)
        assert r["kappa_lo"] == pytest.approx(res.kappa_low, abs=TOL)
        assert r["kappa_hi"] == pytest.approx(res.kappa_upp, abs=TOL)
        first = strict
        k_first = int((choice[first] == pdf["shown_first"].to_numpy()[first]).sum())
        lo, hi = proportion_confint(k_first, int(first.sum()), alpha=z_alpha, method="wilson")
        assert r["p_first"] == pytest.approx(k_first / first.sum(), abs=TOL)
        assert (r["p_first_lo"], r["p_first_hi"]) == (pytest.approx(lo, abs=TOL), pytest.approx(hi, abs=TOL))
        # length slope: statsmodels Logit of P(choose a) on log(len_a / len_b), strict labels
        xs = np.log(pdf["len_a"].to_numpy()[strict] / pdf["len_b"].to_numpy()[strict])
        ys = (choice[strict] == "a").astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.Logit(ys, sm.add_constant(xs)).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
        assert r["length_slope"] == pytest.approx(fit.params[1], rel=1e-9, abs=1e-10)
        # probability calibration columns: strict human, with a probability
        scored = pdf[pdf["probability_a"].notna() & (pdf["human"] != "tie")]
        if judge == "j3":
            assert (r["n_prob"], r["ece"], r["brier"]) == (0, None, None)
            continue
        y = (scored["human"] == "a").to_numpy()
        p = scored["probability_a"].to_numpy()
        assert r["brier"] == pytest.approx(brier_score_loss(y, p), abs=TOL)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
        ece = float(np.sum(np.abs(prob_true - prob_pred) * counts[counts > 0]) / len(p))
        assert r["ece"] == pytest.approx(ece, abs=TOL)


def test_wilson_vector_matches_statsmodels() -> None:
    k = np.array([0, 1, 5, 50, 99, 100])
    n = np.array([10, 10, 10, 100, 100, 100])
    lo, hi = wilson_interval(k, n, 0.95)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=TOL)
    np.testing.assert_allclose(hi, ref_hi, atol=TOL)


def _judge_xy(frame: pl.DataFrame, judge: str) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    part = frame.with_row_index("row").filter(pl.col("judge_id") == judge)
    conf = np.where(part["choice"] == "a", part["probability_a"], 1 - part["probability_a"].to_numpy())
    scored = (part["choice"] != "tie").to_numpy()
    agree = (part["choice"] == part["human"]).to_numpy().astype(float)
    return conf[scored], agree[scored], part


def test_isotonic_map_matches_sklearn(frame: pl.DataFrame) -> None:
    cmap = fit_calibration(frame, "isotonic", folds=5, seed=3)
    grid = np.linspace(0.3, 1.05, 200)
    for judge in ("j1", "j2"):
        x, y, part = _judge_xy(frame, judge)
        ref = IsotonicRegression(out_of_bounds="clip").fit(x, y)
        np.testing.assert_allclose(cmap.judges[judge].predict(grid), ref.predict(grid), atol=TOL)
        # out-of-fold predictions equal sklearn fitted on the other folds
        assert cmap.oof is not None
        oof = cmap.oof.filter(pl.col("judge_id") == judge).sort("row")
        scored = oof.filter(pl.col("confidence").is_not_null())
        for f in range(5):
            train = scored.filter(pl.col("fold") != f)
            test = scored.filter(pl.col("fold") == f)
            model = IsotonicRegression(out_of_bounds="clip").fit(train["confidence"], train["agree"])
            np.testing.assert_allclose(test["calibrated"].to_numpy(), model.predict(test["confidence"]), atol=TOL)
        assert part.height == oof.height
    # the judge without probabilities maps a strict verdict to its strict agreement rate, a tie to its tie rate
    j3 = frame.filter(pl.col("judge_id") == "j3").with_columns(tie=pl.col("choice") == "tie")
    for tie, part in j3.group_by("tie"):
        want = (part["choice"] == part["human"]).mean()
        assert cmap.apply("j3", "tie" if tie[0] else "a", None) == pytest.approx(want, abs=TOL)
    # out of fold, unscored labels get their kind's agreement rate on the other folds
    assert cmap.oof is not None
    oof = cmap.oof.with_columns(tie=frame["choice"] == "tie")
    for judge in ("j1", "j2", "j3"):
        rows = oof.filter((pl.col("judge_id") == judge) & pl.col("confidence").is_null())
        for (tie, f), test in rows.group_by("tie", "fold"):
            train = rows.filter((pl.col("tie") == tie) & (pl.col("fold") != f))
            np.testing.assert_allclose(test["calibrated"].to_numpy(), train["agree"].to_numpy().mean(), atol=TOL)


def test_platt_map_matches_statsmodels_logit(frame: pl.DataFrame) -> None:
    cmap = fit_calibration(frame, "platt", folds=2)
    for judge in ("j1", "j2"):
        x, y, _ = _judge_xy(frame, judge)
        xc = np.clip(x, 1e-9, 1 - 1e-9)  # prefgate clips confidences of exactly 0 or 1 the same way
        logit = np.log(xc) - np.log1p(-xc)
        fit = sm.Logit(y, sm.add_constant(logit)).fit(disp=0, method="newton", tol=1e-14)
        coef = cmap.judges[judge].coef
        assert coef is not None
        np.testing.assert_allclose(coef, fit.params, rtol=1e-9, atol=1e-10)
        grid = np.linspace(0.51, 0.99, 25)
        np.testing.assert_allclose(
            cmap.judges[judge].predict(grid), fit.predict(sm.add_constant(np.log(grid / (1 - grid)))), atol=1e-10
        )
