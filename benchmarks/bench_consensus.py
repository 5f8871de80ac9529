"""Dawid-Skene to convergence: prefgate's vectorised EM against crowd-kit's, side by side.

Seeded synthetic labels: 2,000 raters (accuracy ~ Beta(8, 2), 5% uniform spammers), 3-5 labels per pair over
a/b/tie, pairs in contiguous runs as the label table has them. Both implementations run with their defaults
(``n_iter=100``, ``tol=1e-5``; they stop after the same iteration). Each runs in a fresh process, so its memory is
its own: ``base_rss_mb`` is the process RSS just before ``fit`` (interpreter, libraries, input frame) and
``peak_rss_mb`` the high-water mark during ``fit`` (reset before it where Linux allows). ``seconds`` times ``fit``
only -- for prefgate that includes encoding the string ids; the pandas frame crowd-kit needs is built before its
clock starts. ``ratio`` is seconds over prefgate's seconds.

    python -m benchmarks.bench_consensus 100000 [1000000 ...] [--prefgate-only]
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

import numpy as np
import polars as pl

N_RATERS = 2_000
CLASSES = np.array(["a", "b", "tie"])


def synthetic_labels(n_labels: int, seed: int = 0, n_raters: int = N_RATERS) -> tuple[pl.DataFrame, np.ndarray]:
    """About ``n_labels`` labels (pair_id, rater_id, choice) with a planted truth per pair; returns (labels, truth)."""
    rng = np.random.default_rng(seed)
    n_pairs = max(1, n_labels // 4)
    per_pair = rng.integers(3, 6, n_pairs)
    truth = rng.choice(3, size=n_pairs, p=[0.45, 0.45, 0.10])
    accuracy = rng.beta(8, 2, n_raters)
    spammer = rng.random(n_raters) < 0.05
    pair = np.repeat(np.arange(n_pairs), per_pair)
    rater = rng.integers(0, n_raters, pair.size)
    correct = rng.random(pair.size) < accuracy[rater]
    wrong = (truth[pair] + rng.integers(1, 3, pair.size)) % 3  # one of the two other classes
    choice = np.where(correct, truth[pair], wrong)
    choice = np.where(spammer[rater], rng.integers(0, 3, pair.size), choice)
    df = pl.DataFrame(
        {
            "pair_id": pl.Series(pair).cast(pl.String).str.zfill(16),
            "rater_id": pl.Series(rater).cast(pl.String).str.zfill(5),
            "choice": CLASSES[choice],
        }
    )
    return df, truth


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> float:
    """RSS now, after resetting the kernel's high-water mark (Linux); the peak then covers the fit alone."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    now = _status_mb("VmRSS")
    return now if now is not None else _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(impl: str, n_labels: int, queue: Any) -> None:
    df, _ = synthetic_labels(n_labels)
    if impl == "prefgate":
        from prefgate.consensus import DawidSkene

        base = _reset_peak_rss()
        start = time.perf_counter()
        model = DawidSkene().fit(df)
        seconds = time.perf_counter() - start
        n_iter = model.n_iter_
    else:
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

        data = df.rename({"pair_id": "task", "rater_id": "worker", "choice": "label"}).to_pandas()
        del df
        base = _reset_peak_rss()
        start = time.perf_counter()
        ck = CrowdKitDawidSkene().fit(data)
        seconds = time.perf_counter() - start
        n_iter = len(ck.loss_history_)
    queue.put({"seconds": seconds, "n_iter": n_iter, "base_rss_mb": base, "peak_rss_mb": _peak_rss_mb()})


def _measure(impl: str, n_labels: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(impl, n_labels, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def run(n_labels: int, impls: tuple[str, ...] = ("prefgate", "crowd-kit")) -> list[dict[str, Any]]:
    """Rows {impl, n_labels, seconds, ratio, n_iter, base_rss_mb, peak_rss_mb}, prefgate first."""
    rows = []
    for impl in impls:
        m = _measure(impl, n_labels)
        rows.append({"impl": impl, "n_labels": n_labels, **m})
    ref = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = row["seconds"] / ref
    return [
        {k: row[k] for k in ("impl", "n_labels", "seconds", "ratio", "n_iter", "base_rss_mb", "peak_rss_mb")}
        for row in rows
    ]


def main(argv: list[str]) -> None:
    impls = ("prefgate",) if "--prefgate-only" in argv else ("prefgate", "crowd-kit")
    sizes = [int(a) for a in argv if not a.startswith("--")] or [100_000]
    with pl.Config(tbl_rows=50, float_precision=3):
        for n in sizes:
            print(pl.DataFrame(run(n, impls)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
