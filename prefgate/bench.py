"""``prefgate bench``: the rater-governance benchmark table, with the issue's targets marked met or missed.

    prefgate bench [--sizes 100000 1000000] [--full 10000000] [--markdown] [--references NAME ...]

For each ``--sizes`` value it runs ``benchmarks.governance.compare`` (prefgate against krippendorff, crowd-kit,
statsmodels, scikit-learn, side by side in one run) and prints one table; for each ``--full`` value it runs
``benchmarks.governance.full_pass`` (alpha with a 200-resample interval, Fleiss, pairwise Cohen, rater quality,
drift and Dawid-Skene to convergence, in a fresh process) and prints its stages, wall clock and peak RSS. A last
table checks the targets: the full pass on 10M labels under 30 s and 3 GiB, and at 1M labels alpha, pairwise
Cohen and Dawid-Skene at least 10x faster than every reference path measured, Fleiss at least 1x.

The ``benchmarks`` package sits in the project root and is not installed; it is imported from
:data:`prefgate.home.PROJECT_ROOT`. The reference libraries come with the ``dev`` extras. ``--sizes`` or ``--full``
with no value skips that part. Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from types import ModuleType
from typing import Any, TextIO

from prefgate.home import PROJECT_ROOT

DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_FULL = (10_000_000,)
TARGET_FULL_LABELS = 10_000_000
TARGET_WALL_S = 30.0
TARGET_PEAK_GIB = 3.0
TARGET_RATIO_LABELS = 1_000_000
TARGET_RATIOS = {"alpha": 10.0, "cohen": 10.0, "dawid_skene": 10.0, "fleiss": 1.0}
STAGE_LABELS = {
    "agreement": "agreement (alpha+CI, Fleiss, Cohen)",
    "score": "score",
    "drift": "drift",
    "rater_quality": "rater quality",
    "dawid_skene": "Dawid-Skene",
}
VERSIONS = ("polars", "numpy", "krippendorff", "crowd-kit", "statsmodels", "scikit-learn", "pandas")


class BenchError(RuntimeError):
    """The benchmark cannot run here (no ``benchmarks`` package, missing reference libraries)."""


def load_benchmarks() -> ModuleType:
    """``benchmarks.governance``, imported from the project root."""
    if not (PROJECT_ROOT / "benchmarks" / "governance.py").is_file():
        raise BenchError(
            f"no benchmarks/governance.py under {PROJECT_ROOT}: `prefgate bench` needs the project checkout "
            "(pip install -e '.[dev]'), not an installed wheel"
        )
    root = str(PROJECT_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("benchmarks.governance")


def check_references(gov: ModuleType, references: Sequence[str]) -> None:
    """Raise :class:`BenchError` naming the reference libraries that are not installed."""
    unknown = sorted(set(references) - set(gov.REFERENCES))
    if unknown:
        raise BenchError(f"unknown references {unknown}; choose from {list(gov.REFERENCES)}")
    modules = sorted({m for r in references for m in gov.REFERENCE_MODULES[r]})
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BenchError(
            f"reference libraries not installed: {', '.join(missing)}. They are in the dev extras: "
            "pip install -e '.[dev]' (or `make test`)"
        )


# ------------------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------------------


def _seconds(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if x < 0.1:
        return f"{x:.3f}"
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def _ratio(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """A Markdown pipe table, or plain columns aligned on their widest cell."""
    if markdown:

        def cells(values: Sequence[str]) -> str:
            return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

        return "\n".join([cells(headers), "|" + "|".join("---" for _ in headers) + "|", *map(cells, rows)])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def compare_table(rows: Sequence[dict[str, Any]], markdown: bool) -> str:
    headers = ["statistic", "prefgate (s)", "reference", "reference (s)", "ratio", "note"]
    body = []
    for r in rows:
        if r["reference_s"] is None:
            est = r.get("estimated_s")
            ref_s = "skipped" + (f" (est. {_seconds(est)})" if est is not None else "")
            ratio = f"~{_ratio(r['estimated_ratio'])} (est.)" if r.get("estimated_ratio") is not None else "-"
        else:
            ref_s, ratio = _seconds(r["reference_s"]), _ratio(r["ratio"])
        body.append([r["statistic"], _seconds(r["prefgate_s"]), r["reference"], ref_s, ratio, r["note"]])
    return render_table(headers, body, markdown)


def full_table(results: Sequence[dict[str, Any]], markdown: bool) -> str:
    stages = list(STAGE_LABELS)
    headers = [
        "labels",
        "generate (s, not in pass)",
        *[f"{STAGE_LABELS[s]} (s)" for s in stages],
        "pass wall (s)",
        "peak RSS (GiB)",
        f"wall < {TARGET_WALL_S:.0f} s",
        f"RSS < {TARGET_PEAK_GIB:.0f} GiB",
    ]
    body = []
    for r in results:
        cells = [f"{r['n_labels']:,}", _seconds(r["generate_s"])]
        for s in stages:
            cell = _seconds(r["seconds"][s])
            if s == "dawid_skene":
                cell += f" ({r['ds_n_iter']} it{'' if r['ds_converged'] else ', NOT converged'})"
            cells.append(cell)
        peak = _peak(r)
        cells += [
            _seconds(r["total_s"]),
            f"{peak:.2f}",
            "yes" if r["total_s"] < TARGET_WALL_S else "NO",
            "yes" if peak < TARGET_PEAK_GIB else "NO",
        ]
        body.append(cells)
    return render_table(headers, body, markdown)


def _peak(result: dict[str, Any]) -> float:
    """The RSS judged against the target: the child's whole-life high-water mark (generation included)."""
    return float(result["process_peak_rss_gib"])


# ------------------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------------------


def evaluate_targets(compared: dict[int, list[dict[str, Any]]], full: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per target: ``target``, ``measured``, ``result`` (met / MISSED / not run; "(estimate)" when it rests
    on a reference's pilot estimate)."""
    out: list[dict[str, str]] = []
    at_10m = [r for r in full if r["n_labels"] == TARGET_FULL_LABELS]
    wall_target = f"full pass on {TARGET_FULL_LABELS:,} labels under {TARGET_WALL_S:.0f} s wall"
    rss_target = f"full pass on {TARGET_FULL_LABELS:,} labels under {TARGET_PEAK_GIB:.0f} GiB peak RSS"
    if not at_10m:
        out += [{"target": t, "measured": "-", "result": "not run"} for t in (wall_target, rss_target)]
    for r in at_10m:
        out.append(
            {
                "target": wall_target,
                "measured": f"{r['total_s']:.1f} s (generation {r['generate_s']:.1f} s not counted)",
                "result": "met" if r["total_s"] < TARGET_WALL_S else "MISSED",
            }
        )
        out.append(
            {
                "target": rss_target,
                "measured": f"{_peak(r):.2f} GiB (whole child process, input frame and generation included)",
                "result": "met" if _peak(r) < TARGET_PEAK_GIB else "MISSED",
            }
        )
    rows = compared.get(TARGET_RATIO_LABELS)
    slower: list[str] = []
    for stat, need in TARGET_RATIOS.items():
        target = f"{stat} at {TARGET_RATIO_LABELS:,} labels: >= {need:g}x every reference path"
        cands = []
        for r in rows or []:
            if r["statistic"] != stat:
                continue
            if r["ratio"] is not None:
                cands.append((float(r["ratio"]), r["reference"], False))
            elif r.get("estimated_ratio") is not None:
                cands.append((float(r["estimated_ratio"]), r["reference"], True))
        if not cands:
            out.append({"target": target, "measured": "-", "result": "not run"})
            continue
        parts = [f"{_ratio(x)}{' (est.)' if est else ''} vs {ref}" for x, ref, est in sorted(cands)]
        worst, worst_ref, worst_est = min(cands)
        ok = worst >= need
        if worst < 1.0:
            slower.append(f"{stat} ({_ratio(worst)} vs {worst_ref})")
        result = ("met" if ok else "MISSED") + (" (estimate)" if worst_est else "")
        out.append({"target": target, "measured": "; ".join(parts), "result": result})
    if rows is not None:
        out.append(
            {
                "target": f"nothing slower than its peer at {TARGET_RATIO_LABELS:,} labels",
                "measured": "slower: " + ", ".join(slower) if slower else "every ratio >= 1x",
                "result": "MISSED" if slower else "met",
            }
        )
    return out


def targets_table(targets: Sequence[dict[str, str]], markdown: bool) -> str:
    return render_table(
        ["target", "measured", "result"], [[t["target"], t["measured"], t["result"]] for t in targets], markdown
    )


# ------------------------------------------------------------------------------------------------------------
# Environment and the command
# ------------------------------------------------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment() -> dict[str, str]:
    """Date (UTC), CPU, cores, memory, Python and library versions."""
    mem = _proc_field("/proc/meminfo", "MemTotal")
    versions = []
    for dist in VERSIONS:
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem.split()[0]) / 2**20:.1f} GiB" if mem else "?",
        "python": platform.python_version(),
        "versions": ", ".join(versions),
    }


def _heading(text: str, markdown: bool) -> str:
    return f"### {text}" if markdown else f"{text}\n{'=' * len(text)}"


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    full: Sequence[int] = DEFAULT_FULL,
    *,
    markdown: bool = False,
    references: Sequence[str] | None = None,
    seed: int = 0,
    out: TextIO | None = None,
    log: TextIO | None = None,
) -> dict[str, Any]:
    """Run the comparisons and full passes, print the tables, return ``{"compare", "full", "targets"}``."""
    stdout = out or sys.stdout
    stderr = log or sys.stderr
    gov = load_benchmarks()
    refs = list(gov.REFERENCES if references is None else references)
    if sizes:
        check_references(gov, refs)

    def emit(text: str = "") -> None:
        print(text, file=stdout, flush=True)

    def progress(msg: str) -> None:
        print(f"prefgate bench: {msg}", file=stderr, flush=True)

    env = environment()
    emit(_heading("prefgate bench", markdown))
    emit()
    for key, value in env.items():
        emit(f"- {key}: {value}" if markdown else f"{key:<9} {value}")
    emit()
    compared: dict[int, list[dict[str, Any]]] = {}
    for n in sizes:
        progress(f"side by side at {n:,} labels")
        compared[n] = gov.compare(n, seed, refs, log=progress)
        emit(_heading(f"Side by side at {n:,} labels (seconds; ratio = reference / prefgate)", markdown))
        emit()
        emit(compare_table(compared[n], markdown))
        emit()
    results = []
    for n in full:
        progress(f"full pass at {n:,} labels (fresh process)")
        results.append(gov.full_pass(n, seed))
    if results:
        emit(_heading("Full governance pass (fresh process; seconds)", markdown))
        emit()
        emit(full_table(results, markdown))
        emit()
    targets = evaluate_targets(compared, results)
    emit(_heading("Targets", markdown))
    emit()
    emit(targets_table(targets, markdown))
    return {"compare": compared, "full": results, "targets": targets}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options (shared by ``prefgate bench`` and ``python -m prefgate.bench``)."""
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES), metavar="N", help="side-by-side sizes"
    )
    parser.add_argument("--full", type=int, nargs="*", default=list(DEFAULT_FULL), metavar="N", help="full-pass sizes")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--references", nargs="+", metavar="NAME", help="only these references (default: all; see benchmarks/)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")


def run_from_args(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run with parsed ``bench`` options; 2 (with a message on stderr) when the benchmark cannot run."""
    stderr = err or sys.stderr
    try:
        run(args.sizes, args.full, markdown=args.markdown, references=args.references, seed=args.seed, out=out, log=err)
    except BenchError as exc:
        print(f"prefgate bench: {exc}", file=stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefgate bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv), out, err)


if __name__ == "__main__":
    raise SystemExit(main())
