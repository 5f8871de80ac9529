"""Vectorised statistics over many groups at once: Wilson intervals, Cohen's kappa with its asymptotic standard
error, and a grouped 1-D logistic regression (Newton-Raphson), all from per-group sums.

Each function takes arrays with one entry (or one 3x3 table, or one segment of rows) per group, so a calibration
table over every judge and every slice value costs a handful of NumPy passes instead of a Python loop per group.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def z_value(confidence: float) -> float:
    """Two-sided normal critical value for ``confidence`` (0.95 -> 1.959964...)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def wilson_interval(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for ``successes / n`` (Wilson 1927), clipped to [0, 1]; NaN where ``n == 0``.

    Same formula as ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    z = z_value(confidence)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        q = k / m
        denom = 1.0 + z2 / m
        center = (q + z2 / (2.0 * m)) / denom
        dist = z * np.sqrt(q * (1.0 - q) / m + z2 / (4.0 * m * m)) / denom
    return np.clip(center - dist, 0.0, 1.0), np.clip(center + dist, 0.0, 1.0)


def cohen_kappa_tables(tables: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Cohen's kappa and its asymptotic standard error for a stack of square contingency tables ``(G, k, k)``.

    Rows are one rater (the judge), columns the other (the humans). The variance is the large-sample formula of
    Fleiss, Cohen & Everitt (1969) exactly as ``statsmodels.stats.inter_rater.cohens_kappa`` computes it
    (``std_kappa``), so intervals ``kappa +- z * se`` equal its ``kappa_low`` / ``kappa_upp``. NaN where a table
    is empty or chance agreement is 1 (kappa undefined).
    """
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(f"tables must have shape (groups, k, k), got {t.shape}")
    k = t.shape[1]
    nobs = t.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = t / nobs[:, None, None]
        freq_row = probs.sum(axis=2)  # (G, k): judge marginals
        freq_col = probs.sum(axis=1)  # (G, k): human marginals
        diag = np.diagonal(probs, axis1=1, axis2=2)
        agree = diag.sum(axis=1)
        agree_exp = (freq_row * freq_col).sum(axis=1)
        kappa = (agree - agree_exp) / (1.0 - agree_exp)
        one_minus = 1.0 - kappa
        term_a = (diag * (1.0 - (freq_row + freq_col) * one_minus[:, None]) ** 2).sum(axis=1)
        # statsmodels weights cell (i, j) by (freq_col[i] + freq_row[j])^2, off the diagonal only
        weight = (freq_col[:, :, None] + freq_row[:, None, :]) ** 2
        off = ~np.eye(k, dtype=bool)
        term_b = one_minus**2 * (probs * weight)[:, off].sum(axis=1)
        term_c = (kappa - agree_exp * one_minus) ** 2
        var = (term_a + term_b - term_c) / (1.0 - agree_exp) ** 2 / nobs
    bad = (nobs <= 0) | ~np.isfinite(kappa) | (agree_exp >= 1.0)
    kappa = np.where(bad, np.nan, kappa)
    se = np.where(bad, np.nan, np.sqrt(np.clip(var, 0.0, None)))
    return kappa, se


def logistic_fit_segments(
    x: FloatArray,
    y: FloatArray,
    starts: IntArray,
    *,
    group_of_segment: IntArray | None = None,
    n_groups: int | None = None,
    init: tuple[FloatArray, FloatArray] | None = None,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Maximum-likelihood ``P(y=1) = sigmoid(b0 + b1 * x)`` fitted separately per group of rows.

    Rows come in contiguous segments: segment ``s`` spans ``x[starts[s]:starts[s+1]]`` (the last runs to the end;
    empty segments allowed). Each segment belongs to group ``group_of_segment[s]`` (default: its own group), so one
    sort of the rows by a fine key serves every coarser grouping. Newton-Raphson with all groups stepping together:
    per iteration one pass over the rows, sums per segment by ``np.add.reduceat``, per group by a small bincount.
    A group stops once its step is below ``sqrt(tol)`` relative (quadratic convergence leaves an error of about
    the step squared). Returns ``(b0, b1, ok)`` per group; ``ok`` is False (both coefficients NaN) where the fit is
    degenerate: fewer than 3 rows, constant ``x`` or ``y``, (quasi-)separation (|b1| past 1e3, no convergence).
    """
    n_rows = x.shape[0]
    n_seg = starts.shape[0]
    seg_group = np.arange(n_seg, dtype=np.int64) if group_of_segment is None else group_of_segment
    g_count = n_seg if n_groups is None else n_groups
    sizes = np.diff(np.append(starts, n_rows)).astype(np.int64)
    nonempty = sizes > 0
    seg_starts = starts[nonempty]

    def group_sum(v: FloatArray) -> FloatArray:
        per_seg = np.zeros(n_seg, dtype=np.float64)
        if seg_starts.size:
            per_seg[nonempty] = np.add.reduceat(v, seg_starts)
        return np.asarray(np.bincount(seg_group, weights=per_seg, minlength=g_count), dtype=np.float64)

    n = np.bincount(seg_group, weights=sizes.astype(np.float64), minlength=g_count)
    sy = group_sum(y)
    sx = group_sum(x)
    sxx = group_sum(x * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = sxx / n - (sx / n) ** 2
        scale = np.maximum(sxx / n, 1.0)
    ok = (n >= 3) & (sy > 0) & (sy < n) & (var_x > 1e-12 * scale)
    if init is None:
        b0 = np.zeros(g_count)
        b1 = np.zeros(g_count)
    else:
        b0 = np.where(np.isfinite(init[0]), init[0], 0.0)
        b1 = np.where(np.isfinite(init[1]), init[1], 0.0)
    converged = ~ok
    tmp = np.empty(n_rows)  # preallocated buffer: in-place passes avoid page-faulting fresh arrays every iteration
    step_tol = np.sqrt(tol)
    for _ in range(max_iter):
        # per-row coefficients by repeating each segment's value (cheaper than gathering through a row index)
        np.multiply(np.repeat(b1[seg_group], sizes), x, out=tmp)
        p = np.repeat(b0[seg_group], sizes)
        p += tmp  # eta
        np.negative(p, out=p)
        with np.errstate(over="ignore"):  # exp overflow -> inf -> p = 0, the right limit
            np.exp(p, out=p)
        p += 1.0
        np.reciprocal(p, out=p)  # p = sigmoid(eta)
        np.subtract(1.0, p, out=tmp)
        tmp *= p  # w = p (1 - p)
        sw = group_sum(tmp)
        tmp *= x
        swx = group_sum(tmp)
        tmp *= x
        swxx = group_sum(tmp)
        np.subtract(y, p, out=p)  # r = y - p
        sr = group_sum(p)
        p *= x
        srx = group_sum(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            det = sw * swxx - swx * swx
            d0 = (swxx * sr - swx * srx) / det
            d1 = (sw * srx - swx * sr) / det
        active = ok & ~converged
        finite = np.isfinite(d0) & np.isfinite(d1)
        ok &= ~(active & ~finite)
        step = active & finite
        b0 = np.where(step, b0 + d0, b0)
        b1 = np.where(step, b1 + d1, b1)
        ok &= np.abs(b1) < 1e3
        done = np.abs(d0) <= step_tol * (1.0 + np.abs(b0))
        done &= np.abs(d1) <= step_tol * (1.0 + np.abs(b1))
        converged |= step & done
        if bool(np.all(converged | ~ok)):
            break
    ok &= converged
    return np.where(ok, b0, np.nan), np.where(ok, b1, np.nan), ok
