"""Benchmark prefgate.agreement against the reference implementations, side by side in one run.

    python -m benchmarks.bench_agreement 100000 [1000000 ...]

Synthetic, seeded long-format labels: 2,000 raters in 100 pools of 20 (an item goes to one pool, as in batched
crowd work), 3-5 distinct raters per item, labels a/b/tie from a per-item truth (a 40%, b 40%, tie 20%) and a
per-rater accuracy in [0.55, 0.95]; rows are shuffled, ids are strings.

Timings:
* prefgate rows start from the long Polars frame (encoding included).
* Reference rows time only the reference call on its native input, which is built beforehand and not timed
  (raters x items matrix for ``krippendorff``, item x category counts for its ``value_counts=`` mode, a pandas
  frame for crowd-kit, an items x raters matrix for statsmodels, per-pair label arrays for sklearn).
  This favours the references.
* ``ratio`` = seconds / prefgate seconds for the same coefficient (> 1: the reference is slower).
* A reference that would need more than ``REF_MEMORY_LIMIT`` bytes, or that a pilot run predicts to take more than
  ``REF_TIME_LIMIT_S`` seconds, is skipped (``seconds``/``ratio`` None, ``skipped`` gives why).
Every row also carries the coefficient it computed (``value``) so agreement between implementations is visible.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from prefgate.agreement import agreement_report, fleiss_kappa, krippendorff_alpha, pairwise_cohen

N_RATERS = 2_000
POOL = 20
CATEGORIES = ("a", "b", "tie")
FLEISS_PANEL = 4  # Fleiss' kappa on the items with exactly 4 labels
REF_TIME_LIMIT_S = 60.0
REF_MEMORY_LIMIT = 3 * 2**30


def make_labels(n_labels: int, seed: int = 0) -> pl.DataFrame:
    """Seeded synthetic long label frame with ``n_labels`` rows: ``pair_id``, ``rater_id``, ``choice`` (strings)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 6, size=n_labels // 3 + 1)
    n_items = int(np.searchsorted(np.cumsum(sizes), n_labels)) + 1
    sizes = sizes[:n_items]
    sizes[-1] -= int(sizes.sum()) - n_labels  # trim the last item so the total is exact (it may end with 1-2)
    item = np.repeat(np.arange(n_items), sizes)
    pos = np.arange(n_labels) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pool = rng.integers(0, N_RATERS // POOL, size=n_items)
    start = rng.integers(0, POOL, size=n_items)
    step = rng.choice(np.array([1, 3, 7, 9, 11, 13, 17, 19]), size=n_items)  # coprime with 20: distinct raters
    rater = np.repeat(pool * POOL, sizes) + (np.repeat(start, sizes) + pos * np.repeat(step, sizes)) % POOL
    accuracy = rng.uniform(0.55, 0.95, size=N_RATERS)
    truth = np.repeat(rng.choice(3, size=n_items, p=[0.4, 0.4, 0.2]), sizes)
    wrong = (truth + 1 + rng.integers(0, 2, size=n_labels)) % 3
    label = np.where(rng.random(n_labels) < accuracy[rater], truth, wrong)
    order = rng.permutation(n_labels)
    return pl.DataFrame({"i": item[order], "r": rater[order], "c": label[order]}).select(
        pl.col("i").hash(seed=7).cast(pl.String).alias("pair_id"),
        pl.format("r{}", pl.col("r")).alias("rater_id"),
        pl.col("c").replace_strict(list(range(3)), list(CATEGORIES), return_dtype=pl.String).alias("choice"),
    )


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


class _Codes:
    """Dense codes of the frame for building the references' inputs (not timed)."""

    def __init__(self, df: pl.DataFrame) -> None:
        coded = df.select(
            pl.col("pair_id").rank("dense").cast(pl.Int64) - 1,
            pl.col("rater_id").rank("dense").cast(pl.Int64) - 1,
            pl.col("choice").cast(pl.Enum(list(CATEGORIES))).to_physical().cast(pl.Int64),
        ).sort("pair_id", "rater_id")
        self.item = coded.get_column("pair_id").to_numpy()
        self.rater = coded.get_column("rater_id").to_numpy()
        self.label = coded.get_column("choice").to_numpy()
        self.n_items = int(self.item.max()) + 1
        self.n_raters = int(self.rater.max()) + 1
        v = len(CATEGORIES)
        self.counts = np.bincount(self.item * v + self.label, minlength=self.n_items * v).reshape(self.n_items, v)


def run(n_labels: int) -> list[dict[str, Any]]:
    """Time prefgate and the references on ``n_labels`` synthetic labels; one row per (coefficient, impl)."""
    import krippendorff
    import pandas as pd
    from crowdkit.metrics.data import alpha_krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    df = make_labels(n_labels)
    codes = _Codes(df)
    rows: list[dict[str, Any]] = []

    def add(name: str, impl: str, seconds: float | None, value: Any, base: float | None, **extra: Any) -> None:
        ratio = None if seconds is None or base is None else seconds / base
        rows.append(
            {
                "name": name,
                "impl": impl,
                "n_labels": n_labels,
                "seconds": seconds,
                "ratio": ratio,
                "value": value,
                **extra,
            }
        )

    # ---- Krippendorff's alpha (nominal)
    base, value = _time(lambda: krippendorff_alpha(df))
    add("alpha", "prefgate", base, value, base)

    cells = codes.n_raters * codes.n_items
    need = cells * (8 + 1 + 1 + len(CATEGORIES))
    if need > REF_MEMORY_LIMIT:
        add(
            "alpha",
            "krippendorff.alpha(reliability_data)",
            None,
            None,
            base,
            skipped=f"{codes.n_raters} x {codes.n_items} raters x items matrix needs ~{need / 2**30:.1f} GiB",
        )
    else:
        matrix = np.full((codes.n_raters, codes.n_items), np.nan)
        matrix[codes.rater, codes.item] = codes.label
        sec, value = _time(lambda: krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
        add("alpha", "krippendorff.alpha(reliability_data)", sec, float(value), base)
        del matrix
    sec, value = _time(lambda: krippendorff.alpha(value_counts=codes.counts, level_of_measurement="nominal"))
    add(
        "alpha",
        "krippendorff.alpha(value_counts)",
        sec,
        float(value),
        base,
        note="input is the item x category count matrix, i.e. prefgate's own intermediate",
    )

    answers = pd.DataFrame({"task": codes.item, "worker": codes.rater, "label": codes.label})
    pilot_items = max(50, min(codes.n_items, 2_000))
    pilot = answers[answers["task"] < pilot_items]
    pilot_sec, _ = _time(lambda: alpha_krippendorff(pilot))
    predicted = pilot_sec * len(answers) / max(1, len(pilot))
    if predicted > REF_TIME_LIMIT_S and len(pilot) < len(answers):
        add(
            "alpha",
            "crowdkit alpha_krippendorff",
            None,
            None,
            base,
            skipped=f"predicted ~{predicted:.0f} s from a {len(pilot)}-label pilot ({pilot_sec:.2f} s)",
        )
    else:
        sec, value = _time(lambda: alpha_krippendorff(answers))
        add("alpha", "crowdkit alpha_krippendorff", sec, float(value), base)

    # ---- Fleiss' kappa (items with exactly FLEISS_PANEL labels)
    base, value = _time(lambda: fleiss_kappa(df, n_raters=FLEISS_PANEL))
    add("fleiss", "prefgate", base, value, base)
    sizes = np.bincount(codes.item, minlength=codes.n_items)
    keep = sizes[codes.item] == FLEISS_PANEL
    wide = codes.label[keep].reshape(-1, FLEISS_PANEL)  # labels sorted by item: one row per item
    sec, value = _time(lambda: sm_fleiss(aggregate_raters(wide, n_cat=len(CATEGORIES))[0], method="fleiss"))
    add("fleiss", "statsmodels aggregate_raters+fleiss_kappa", sec, float(value), base)

    # ---- Pairwise Cohen's kappa (every pair sharing >= 1 item)
    base, table = _time(lambda: pairwise_cohen(df, min_overlap=1))
    add("cohen", "prefgate", base, f"{table.height} pairs", base)
    pairs = _pair_label_arrays(codes)
    pilot_n = min(len(pairs), 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pilot_sec, _ = _time(lambda: [cohen_kappa_score(a, b) for a, b in pairs[:pilot_n]])
        predicted = pilot_sec * len(pairs) / max(1, pilot_n)
        if predicted > REF_TIME_LIMIT_S:
            add(
                "cohen",
                "sklearn cohen_kappa_score per pair",
                None,
                None,
                base,
                skipped=f"predicted ~{predicted:.0f} s for {len(pairs)} pairs from a {pilot_n}-pair pilot",
            )
        else:
            sec, ref = _time(lambda: [cohen_kappa_score(a, b) for a, b in pairs])
            ours = table["kappa"].fill_null(float("nan")).to_numpy()
            diff = np.nanmax(np.abs(ours - np.array(ref))) if len(ref) == ours.size else float("nan")
            add("cohen", "sklearn cohen_kappa_score per pair", sec, f"{len(pairs)} pairs, max |diff| {diff:.1e}", base)

    # ---- The whole pass from the long frame, one encoding: alpha + 1,000-resample CI, Fleiss, percent agreement
    # and the pairwise Cohen table
    sec, report = _time(lambda: agreement_report(df, n_raters=FLEISS_PANEL, n_boot=1000, cohen_min_overlap=1))
    add("report", "prefgate agreement_report(n_boot=1000, +cohen)", sec, round(report.alpha or float("nan"), 6), sec)
    return rows


def _pair_label_arrays(codes: _Codes) -> list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """(labels of a, labels of b) on their shared items for every rater pair, in order (not timed)."""
    starts = np.flatnonzero(np.r_[True, codes.item[1:] != codes.item[:-1]])
    sizes = np.diff(np.r_[starts, codes.item.size])
    remaining = np.repeat(starts + sizes, sizes) - np.arange(codes.item.size) - 1
    left, right = [], []
    active = np.flatnonzero(remaining >= 1)
    k = 1
    while active.size:
        left.append(active)
        right.append(active + k)
        k += 1
        active = active[remaining[active] >= k]
    a = np.concatenate(left)
    b = np.concatenate(right)
    key = codes.rater[a] * codes.n_raters + codes.rater[b]
    order = np.argsort(key, kind="stable")
    key, a, b = key[order], a[order], b[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    la = np.split(codes.label[a], cuts)
    lb = np.split(codes.label[b], cuts)
    return list(zip(la, lb, strict=True))


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'n_labels':>10}  {'coef':<7} {'impl':<48} {'seconds':>9} {'ratio':>8}  value / note")
    for r in rows:
        sec = "-" if r["seconds"] is None else f"{r['seconds']:.3f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3g}x"
        tail = f"skipped: {r['skipped']}" if r.get("skipped") else r["value"]
        print(f"{r['n_labels']:>10}  {r['name']:<7} {r['impl']:<48} {sec:>9} {ratio:>8}  {tail}")


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [100_000]
    for n in sizes:
        _print(run(n))


if __name__ == "__main__":
    main(sys.argv[1:])
