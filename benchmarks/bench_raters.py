"""Time synthetic generation, rater quality and drift at a given size, and report peak memory.

    python -m benchmarks.bench_raters 1000000
    python -m benchmarks.bench_raters 10000000 --raters 2000 --shuffle

Run each size in a fresh process: peak RSS (``resource.getrusage(...).ru_maxrss``) is a high-water mark of the
whole process. Stages: ``generate`` (:func:`prefgate.synth.generate_labels`), ``score`` (validation, codes and
leave-one-out agreement, shared by the next two), ``drift`` (:func:`prefgate.drift.detect_drift`) and
``rater_quality`` (:func:`prefgate.rater_quality.rater_quality` given the drift report).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

from prefgate.drift import detect_drift, score_labels
from prefgate.rater_quality import rater_quality
from prefgate.synth import generate_labels


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run(n_labels: int, n_raters: int = 2000, days: int = 30, seed: int = 0, shuffle: bool = False) -> dict[str, Any]:
    """Generate ``n_labels`` labels and run scoring, drift and rater quality; return timings (s) and peak RSS."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    labels, truth = generate_labels(n_labels, n_raters=n_raters, days=days, seed=seed, shuffle=shuffle)
    t1 = time.perf_counter()
    timings["generate"] = t1 - t0
    scored = score_labels(labels)
    t2 = time.perf_counter()
    timings["score"] = t2 - t1
    report = detect_drift(labels, scored=scored)
    t3 = time.perf_counter()
    timings["drift"] = t3 - t2
    quality = rater_quality(labels, drift_report=report, scored=scored)
    t4 = time.perf_counter()
    timings["rater_quality"] = t4 - t3
    timings["analysis_total"] = t4 - t1
    timings["total"] = t4 - t0
    flags = {f: int(quality[f].sum()) for f in ("spammer", "biased", "too_fast", "drifting")}
    return {
        "n_labels": labels.height,
        "n_raters": quality.height,
        "seconds": timings,
        "peak_rss_mib": peak_rss_mib(),
        "flagged": flags,
        "change_points": report.change_points.height,
        "planted_drifters": len(truth.raters_of_type("drifter")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n_labels", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--raters", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffle", action="store_true", help="shuffle rows (no pair-contiguous fast path)")
    args = parser.parse_args(argv)
    result = run(args.n_labels, args.raters, args.days, args.seed, args.shuffle)
    secs = result["seconds"]
    print(f"labels={result['n_labels']:,} raters={result['n_raters']:,} shuffle={args.shuffle}")
    for stage in ("generate", "score", "drift", "rater_quality", "analysis_total", "total"):
        print(f"  {stage:<15} {secs[stage]:7.2f} s")
    print(f"  peak RSS        {result['peak_rss_mib']:7.0f} MiB")
    print(f"  flagged         {result['flagged']}  change points {result['change_points']}")


if __name__ == "__main__":
    main()
