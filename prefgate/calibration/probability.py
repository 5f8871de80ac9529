"""Probability calibration of judges: map a judge's confidence in its own verdict to P(humans agree with it).

For each judge, ``x`` = its confidence in its verdict (``probability_a`` when it chose ``a``, ``1 - probability_a``
when it chose ``b``) and ``y`` = 1 when the human consensus equals its verdict. Labels with no usable confidence get
one of two constants, because a judge's strict and tie verdicts are right at different rates (GPT-4 on MT-Bench):

* ``fallback`` -- strict (``a`` / ``b``) verdicts without a probability (recorded judges):
  P(human verdict == judge verdict | strict verdict, no probability);
* ``fallback_tie`` -- ``tie`` verdicts (with or without a probability): P(human says tie | judge says tie).

Each is the judge's agreement rate on its own kind of label; a kind the judge has no labels of takes the judge's
overall agreement rate on all its labels instead (0.5 for a judge without labels).

* ``isotonic``: pool-adjacent-violators (``scipy.optimize.isotonic_regression``) on the confidences, ties in ``x``
  pooled first, linear interpolation between knots, clipped outside them -- scikit-learn's ``IsotonicRegression(
  out_of_bounds="clip")``.
* ``platt``: ``sigmoid(a + b * logit(x))`` by maximum likelihood (Platt 1999, without target smoothing); a
  degenerate fit (one class, separation) falls back to the constant rate.

Cross-validation by pair (both orders of a pair stay in one fold) gives out-of-fold predictions, hence ECE and Brier
before (raw confidence) and after; the map returned is refitted on all rows. Out of fold, the curve and both
constants are estimated without the held-out fold (a constant whose kind has no labels in the other folds takes the
other folds' overall agreement rate).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.optimize import isotonic_regression

from prefgate.calibration.encode import dense_codes
from prefgate.calibration.overlap import validate_overlap
from prefgate.calibration.stats import FloatArray, IntArray, logistic_fit_segments
from prefgate.plots import reliability_plot

Method = Literal["isotonic", "platt"]
METHODS: tuple[Method, ...] = ("isotonic", "platt")
_EPS = 1e-9
BoolArray = npt.NDArray[np.bool_]
__all__ = ["CalibrationMap", "JudgeCalibration", "fit_calibration", "reliability_bins", "reliability_plot"]


def _logit(conf: FloatArray) -> FloatArray:
    c = np.clip(conf, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(c) - np.log1p(-c), dtype=np.float64)


def ece_score(pred: FloatArray, outcome: FloatArray, n_bins: int = 10) -> float:
    """Expected calibration error: ``sum_b n_b / n * |mean pred_b - mean outcome_b|`` over equal-width bins
    (scikit-learn ``calibration_curve(strategy="uniform")`` binning). NaN on empty input."""
    if pred.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    ids = np.searchsorted(edges, pred)
    diff = np.bincount(ids, weights=pred, minlength=n_bins) - np.bincount(ids, weights=outcome, minlength=n_bins)
    return float(np.abs(diff).sum() / pred.size)


def _brier(pred: FloatArray, outcome: FloatArray) -> float:
    return float(np.mean((pred - outcome) ** 2)) if pred.size else float("nan")


@dataclass(frozen=True)
class JudgeCalibration:
    """One judge's fitted map: isotonic knots (``knots_x`` -> ``knots_y``) or Platt ``coef = (a, b)``, plus the
    constants ``fallback`` (strict verdicts without a probability) and ``fallback_tie`` (tie verdicts) -- see the
    module docstring -- and the cross-validated ``metrics``."""

    judge_id: str
    method: Method
    fallback: float
    fallback_tie: float
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    coef: tuple[float, float] | None = None
    constant: float | None = None  # the scored part's mean when no curve could be fitted
    n_labels: int = 0
    n_scored: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)

    def predict(self, confidence: npt.ArrayLike, tie: npt.ArrayLike | None = None) -> FloatArray:
        """P(humans agree) for confidences in the judge's own verdict. NaN confidence -> ``fallback_tie`` where
        ``tie`` (a boolean mask: the verdict is ``tie``) is true, ``fallback`` elsewhere; ``tie=None`` = no ties."""
        conf = np.asarray(confidence, dtype=np.float64)
        out = np.full(conf.shape, self.fallback, dtype=np.float64)
        if tie is not None:
            out[np.broadcast_to(np.asarray(tie, dtype=bool), conf.shape)] = self.fallback_tie
        scored = ~np.isnan(conf)
        if self.constant is not None:
            out[scored] = self.constant
        elif self.coef is not None:
            a, b = self.coef
            out[scored] = 1.0 / (1.0 + np.exp(-(a + b * _logit(conf[scored]))))
        elif self.knots_x:
            out[scored] = np.interp(conf[scored], np.asarray(self.knots_x), np.asarray(self.knots_y))
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "judge_id": self.judge_id,
            "method": self.method,
            "fallback": self.fallback,
            "fallback_tie": self.fallback_tie,
            "knots_x": list(self.knots_x),
            "knots_y": list(self.knots_y),
            "coef": None if self.coef is None else list(self.coef),
            "constant": self.constant,
            "n_labels": self.n_labels,
            "n_scored": self.n_scored,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> JudgeCalibration:
        """Inverse of :meth:`to_dict`; a dict from before ``fallback_tie`` existed gets ``fallback`` for it."""
        coef = cast("list[float] | None", d.get("coef"))
        method = str(d["method"])
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        fallback = float(cast(float, d["fallback"]))
        tie = d.get("fallback_tie")
        return cls(
            judge_id=str(d["judge_id"]),
            method=method,
            fallback=fallback,
            fallback_tie=fallback if tie is None else float(cast(float, tie)),
            knots_x=tuple(float(v) for v in cast("list[float]", d.get("knots_x", []))),
            knots_y=tuple(float(v) for v in cast("list[float]", d.get("knots_y", []))),
            coef=None if coef is None else (float(coef[0]), float(coef[1])),
            constant=None if d.get("constant") is None else float(cast(float, d["constant"])),
            n_labels=int(cast(int, d.get("n_labels", 0))),
            n_scored=int(cast(int, d.get("n_scored", 0))),
            metrics=dict(cast("dict[str, float | None]", d.get("metrics", {}))),
        )


def _isotonic_knots(x_sorted: FloatArray, y_sorted: FloatArray) -> tuple[FloatArray, FloatArray]:
    """PAV fit on rows already sorted by ``x``: pool tied x (mean y, weight = count), then keep only the knots
    where the fitted step function changes (as scikit-learn trims them)."""
    new = np.empty(x_sorted.size, dtype=bool)
    new[:1] = True
    np.not_equal(x_sorted[1:], x_sorted[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    xu = x_sorted[starts]
    w = np.diff(np.append(starts, x_sorted.size)).astype(np.float64)
    yu = np.add.reduceat(y_sorted, starts) / w
    fit = isotonic_regression(yu, weights=w, increasing=True).x
    if fit.size > 2:
        keep = np.ones(fit.size, dtype=bool)
        keep[1:-1] = (fit[1:-1] != fit[:-2]) | (fit[1:-1] != fit[2:])
        xu, fit = xu[keep], fit[keep]
    return xu, np.asarray(fit, dtype=np.float64)


_KINDS = 3  # rows of the agreement sums: all labels, strict verdicts without a probability, tie verdicts


def _kind_sums(agree: FloatArray, strict_unscored: BoolArray, tie: BoolArray, fold: IntArray, k: int) -> FloatArray:
    """Agreement counts and label counts per kind (rows: all, strict unscored, tie) and fold: shape (2, 3, k).
    Sums of 0/1 values are exact, so subtracting a fold's column from the total is exact too. The two masks are
    disjoint (a tie verdict has no confidence), so one bincount per sum over a 3-way kind code does."""
    code = (strict_unscored.astype(np.intp) + 2 * tie.astype(np.intp)) * k + fold
    by_kind = np.stack([np.bincount(code, weights=agree, minlength=3 * k), np.bincount(code, minlength=3 * k)])
    by_kind = by_kind.reshape(2, 3, k)
    out = np.empty((2, _KINDS, k), dtype=np.float64)
    out[:, 0] = by_kind.sum(axis=1)
    out[:, 1:] = by_kind[:, 1:]
    return out


def _fallbacks(sums: FloatArray) -> tuple[float, float]:
    """``(fallback, fallback_tie)`` from agreement / label counts per kind (shape (2, 3)): each kind's agreement
    rate, the overall rate for a kind without labels, 0.5 without any label."""
    agree, n = sums
    overall = float(agree[0] / n[0]) if n[0] else 0.5
    strict = float(agree[1] / n[1]) if n[1] else overall
    tie = float(agree[2] / n[2]) if n[2] else overall
    return strict, tie


def _fit_one(
    judge_id: str, method: Method, x: FloatArray, y: FloatArray, fallbacks: tuple[float, float], n_labels: int
) -> JudgeCalibration:
    """Fit one judge's map on its scored rows ``x`` (confidences, sorted ascending) and ``y`` (agreement)."""
    common = {
        "judge_id": judge_id,
        "method": method,
        "fallback": fallbacks[0],
        "fallback_tie": fallbacks[1],
        "n_labels": n_labels,
        "n_scored": x.size,
    }
    if x.size == 0:
        return JudgeCalibration(**common)  # type: ignore[arg-type]
    if y.min() == y.max() or x[0] == x[-1]:
        return JudgeCalibration(**common, constant=float(y.mean()))  # type: ignore[arg-type]
    if method == "platt":
        b0, b1, ok = logistic_fit_segments(_logit(x), y, np.zeros(1, dtype=np.int64))
        if not ok[0]:
            return JudgeCalibration(**common, constant=float(y.mean()))  # type: ignore[arg-type]
        return JudgeCalibration(**common, coef=(float(b0[0]), float(b1[0])))  # type: ignore[arg-type]
    kx, ky = _isotonic_knots(x, y)
    return JudgeCalibration(**common, knots_x=tuple(kx.tolist()), knots_y=tuple(ky.tolist()))  # type: ignore[arg-type]


@dataclass
class CalibrationMap:
    """Per-judge calibration maps. ``oof`` (not serialised) has one row per overlap row (``row`` = its index):
    ``confidence`` (null without one), ``raw`` (the confidence, or the fallback rate of its kind), out-of-fold
    ``calibrated``, ``agree`` and ``fold``."""

    method: Method
    judges: dict[str, JudgeCalibration]
    folds: int = 5
    seed: int = 0
    oof: pl.DataFrame | None = field(default=None, compare=False, repr=False)

    def apply(
        self, judge_id: str, choice: str | Sequence[str], probability_a: float | Sequence[float | None] | None
    ) -> float | FloatArray:
        """Calibrated P(humans agree with this verdict) for one label (scalars) or many labels of one judge; a
        ``tie`` verdict gets ``fallback_tie``, a strict one without a probability ``fallback``."""
        if judge_id not in self.judges:
            raise KeyError(f"no calibration for judge {judge_id!r}")
        scalar = isinstance(choice, str)
        choices = np.asarray([choice] if scalar else list(choice), dtype=object)
        probs = (
            [probability_a] if scalar or probability_a is None else list(cast("Sequence[float | None]", probability_a))
        )
        if len(probs) == 1 and choices.size != 1:
            probs = probs * choices.size
        p = np.asarray([np.nan if v is None else v for v in probs], dtype=np.float64)
        out = self.judges[judge_id].predict(_confidence(choices, p), choices == "tie")
        return float(out[0]) if scalar else out

    def apply_frame(self, labels: pl.DataFrame) -> pl.Series:
        """Calibrated P(humans agree) per row of a frame with ``judge_id``, ``choice``, ``probability_a``; null for
        judges without a map."""
        out = np.full(labels.height, np.nan)
        judge = labels["judge_id"].to_numpy()
        choice = labels["choice"].to_numpy().astype(object)
        prob = labels["probability_a"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        for jid, cal in self.judges.items():
            m = judge == jid
            if m.any():
                out[m] = cal.predict(_confidence(choice[m], prob[m]), choice[m] == "tie")
        return pl.Series("calibrated", out).fill_nan(None)

    def metrics(self) -> pl.DataFrame:
        """One row per judge: label counts, the two fallback rates and the cross-validated ECE / Brier before and
        after."""
        rows = [
            {
                "judge_id": j,
                "method": c.method,
                "n_labels": c.n_labels,
                "n_scored": c.n_scored,
                "fallback": c.fallback,
                "fallback_tie": c.fallback_tie,
            }
            | c.metrics
            for j, c in sorted(self.judges.items())
        ]
        return pl.DataFrame(rows, infer_schema_length=None)

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "folds": self.folds,
            "seed": self.seed,
            "judges": {j: c.to_dict() for j, c in sorted(self.judges.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CalibrationMap:
        judges = cast("dict[str, dict[str, object]]", d["judges"])
        method = str(d["method"])
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        return cls(
            method=method,
            judges={j: JudgeCalibration.from_dict(c) for j, c in judges.items()},
            folds=int(cast(int, d.get("folds", 5))),
            seed=int(cast(int, d.get("seed", 0))),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CalibrationMap:
        return cls.from_dict(json.loads(text))


def _confidence(choice: npt.NDArray[np.object_], prob_a: FloatArray) -> FloatArray:
    """The judge's confidence in its own verdict; NaN for ties, unknown choices and missing probabilities."""
    out = np.full(prob_a.shape, np.nan)
    a = choice == "a"
    b = choice == "b"
    out[a] = prob_a[a]
    out[b] = 1.0 - prob_a[b]
    return out


def _metrics(conf: FloatArray, agree: FloatArray, oof: FloatArray) -> dict[str, float | None]:
    scored = ~np.isnan(conf)
    x, y, cal = conf[scored], agree[scored], oof[scored]

    def clean(v: float) -> float | None:
        return None if np.isnan(v) else v

    return {
        "agreement": clean(float(agree.mean()) if agree.size else float("nan")),
        "ece_before": clean(ece_score(x, y)),
        "ece_after": clean(ece_score(cal, y)),
        "brier_before": clean(_brier(x, y)),
        "brier_after": clean(_brier(cal, y)),
        "brier_after_all": clean(_brier(oof, agree)),
    }


def fit_calibration(
    overlap: pl.DataFrame, method: Method = "isotonic", folds: int = 5, seed: int = 0
) -> CalibrationMap:
    """Fit a calibration map per judge of ``overlap`` (see the module docstring), with ``folds``-fold
    cross-validated ECE / Brier before and after (folds by ``pair_id`` hash with ``seed``; ``folds < 2`` skips it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    df = validate_overlap(overlap)
    k = max(int(folds), 1)
    judge_names, judge_code = dense_codes(df["judge_id"])
    cols = df.select(
        (pl.col("choice") == pl.col("human")).alias("agree"),
        pl.when(pl.col("choice") == "a")
        .then(pl.col("probability_a"))
        .when(pl.col("choice") == "b")
        .then(1.0 - pl.col("probability_a"))
        .otherwise(None)
        .fill_null(float("nan"))
        .alias("confidence"),
        (pl.col("pair_id").hash(seed=seed) % k).cast(pl.Int16).alias("fold"),
        (pl.col("choice") == "tie").alias("tie"),
    )
    conf_all = cols["confidence"].to_numpy().astype(np.float64, copy=False)
    agree_all = cols["agree"].to_numpy()  # narrow dtypes (bool / int16): the per-judge gather moves fewer bytes
    fold_all = cols["fold"].to_numpy()
    tie_all = cols["tie"].to_numpy()
    # rows grouped by judge once (radix sort on the judge code); each judge is then a contiguous slice, and its
    # scored rows are sorted by confidence within that slice
    by_judge = np.argsort(judge_code.astype(np.uint16) if len(judge_names) < 2**16 else judge_code, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(judge_code, minlength=len(judge_names)))])
    conf_s, agree_s, fold_s, tie_s = conf_all[by_judge], agree_all[by_judge], fold_all[by_judge], tie_all[by_judge]
    judges: dict[str, JudgeCalibration] = {}
    oof_s = np.full(df.height, np.nan)
    fallback = np.full((len(judge_names), 2), 0.5)  # per judge: strict fallback, tie fallback
    for j, judge_id in enumerate(judge_names):
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        conf, fold, tie = conf_s[lo:hi], fold_s[lo:hi].astype(np.intp), tie_s[lo:hi]
        agree = agree_s[lo:hi].astype(np.float64)
        unscored_mask = np.isnan(conf)
        scored_idx = np.flatnonzero(~unscored_mask)
        scored = scored_idx[np.argsort(conf[scored_idx])]  # ties in x are pooled, so their order is immaterial
        xs, ys, fs = conf[scored], agree[scored], fold[scored]
        sums = _kind_sums(agree, unscored_mask & ~tie, tie, fold, k)
        total = sums.sum(axis=2)
        oof = oof_s[lo:hi]
        if k >= 2:
            n_fold = sums[1, 0]  # labels per fold
            for f in range(k):
                if n_fold[f] == 0 or n_fold[f] == conf.size:
                    continue
                test = fold == f
                train = fs != f
                fb = _fallbacks(total - sums[:, :, f])  # constants without the held-out fold, per kind
                fitted = _fit_one(judge_id, method, xs[train], ys[train], fb, int(conf.size - n_fold[f]))
                oof[test] = fitted.predict(conf[test], tie[test])
        cal = _fit_one(judge_id, method, xs, ys, _fallbacks(total), conf.size)
        judges[judge_id] = replace(cal, metrics=_metrics(conf, agree, oof) if k >= 2 else {})
        fallback[j] = cal.fallback, cal.fallback_tie
    oof_all = np.empty(df.height)
    oof_all[by_judge] = oof_s
    unscored_all = np.isnan(conf_all)
    raw_all = np.where(unscored_all, fallback.ravel()[judge_code * 2 + tie_all], conf_all)
    oof_frame = pl.DataFrame(
        {
            "row": np.arange(df.height, dtype=np.int64),
            "judge_id": df["judge_id"],
            "confidence": conf_all,
            "raw": raw_all,
            "calibrated": oof_all,
            "agree": cols["agree"].cast(pl.Float64),
            "fold": cols["fold"].cast(pl.Int64),
        }
    ).with_columns(pl.col("confidence", "calibrated").fill_nan(None))
    return CalibrationMap(method=method, judges=judges, folds=k, seed=seed, oof=oof_frame if k >= 2 else None)


def reliability_bins(
    frame: pl.DataFrame,
    prediction: str = "calibrated",
    outcome: str = "agree",
    by: str = "judge_id",
    n_bins: int = 10,
) -> pl.DataFrame:
    """Reliability-diagram table: per ``by`` group and equal-width bin of ``prediction`` (rows with one), the count,
    mean prediction and observed rate of ``outcome``; ``gap`` = observed - predicted.

    Typical input: ``CalibrationMap.oof`` with ``prediction="raw"`` (before) or ``"calibrated"`` (out-of-fold after).
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = frame.select(
        pl.col(by).cast(pl.String).alias("group"), pl.col(prediction).cast(pl.Float64), pl.col(outcome).cast(pl.Float64)
    ).drop_nulls()
    rows = rows.filter(pl.col(prediction).is_not_nan())
    ids = np.searchsorted(edges[1:-1], rows[prediction].to_numpy())
    return (
        rows.with_columns(pl.Series("bin", ids, dtype=pl.Int64))
        .group_by("group", "bin")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col(prediction).mean().alias("mean_prediction"),
            pl.col(outcome).mean().alias("observed"),
        )
        .with_columns(
            pl.col("bin").map_elements(lambda b: float(edges[b]), return_dtype=pl.Float64).alias("bin_lo"),
            pl.col("bin").map_elements(lambda b: float(edges[b + 1]), return_dtype=pl.Float64).alias("bin_hi"),
            (pl.col("observed") - pl.col("mean_prediction")).alias("gap"),
        )
        .rename({"group": by})
        .select(by, "bin", "bin_lo", "bin_hi", "n", "mean_prediction", "observed", "gap")
        .sort(by, "bin")
    )
