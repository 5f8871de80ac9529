"""The rater-governance benchmark behind ``prefgate bench``: the full pass at scale, and prefgate against the
reference libraries side by side.

    python -m benchmarks.governance --full 10000000      # the full pass in this process; prints a JSON line
    python -m benchmarks.governance --compare 1000000    # the side-by-side rows at one size

**Input.** Everything starts from the issue's seeded generator, :func:`prefgate.synth.generate_labels` (2,000
raters, 3-5 labels per item over a/b/tie, planted normal / drifting / spamming / always-first / too-fast raters,
30 days), with ``seed=0``: the same frame for both sides of every comparison and for every size.

**Full pass** (:func:`full_pass`). A fresh interpreter (``python -m benchmarks.governance --full N``) generates the
labels (timed and reported, not counted in the pass), resets the kernel's RSS high-water mark (``clear_refs``) and
then times, with the label frame resident:

* ``agreement``: :func:`prefgate.agreement.agreement_report` with ``n_boot=200`` (alpha and its percentile
  interval), ``n_raters=3`` (Fleiss' kappa on the items with exactly 3 labels), percent agreement and
  ``cohen_min_overlap=1`` (pairwise Cohen's kappa for every rater pair sharing an item), all from one encoding;
* ``score``, ``drift``, ``rater_quality``: :func:`prefgate.drift.score_labels`, :func:`prefgate.drift.detect_drift`
  and :func:`prefgate.rater_quality.rater_quality` sharing the scored labels (as ``governance.audit_raters`` does);
* ``dawid_skene``: :class:`prefgate.consensus.DawidSkene` with its defaults (``n_iter=100``, ``tol=1e-5``) fitted
  to convergence.

Results stay referenced until the end (the scored labels are dropped after ``rater_quality``, as they are when
``audit_raters`` returns). ``pass_peak_rss_gib`` is ``VmHWM`` after the pass (input frame included);
``process_peak_rss_gib`` also covers generation. ``total_s`` is the pass's wall clock.

**Comparison** (:func:`compare`). One run at one size: both sides get the same long Polars frame (``pair_id``,
``rater_id``, ``choice``, strings). prefgate's functions take it as is (their encoding is inside the clock). A
reference's clock covers the conversion a user would have to write to get that frame into the reference's input
form, then the reference call; the conversion's share is reported (``convert_s``). Reference imports happen
before any clock. Each side is warmed up once on a 5,000-label slice; a measurement that takes under 2 s is
repeated (best of ``repeat``), the same rule for both sides. ``ratio`` = reference seconds / prefgate seconds.
Dawid-Skene runs in fresh processes, one per implementation (as ``bench_consensus``), each generating the same
labels. A reference that would need more than ``REF_MEMORY_LIMIT`` bytes or more than ``REF_TIME_LIMIT_S``
seconds (estimated from a pilot where the cost is predictable) is not run: its row has ``reference_s`` None and
``skipped`` gives why, with ``estimated_s`` / ``estimated_ratio`` where a pilot gave an estimate.

This reuses ``bench_consensus``'s RSS helpers but not ``bench_agreement.run`` / ``bench_consensus.run``: those time
the references on prebuilt native inputs (conversion untimed) on their own generators, which favours the
references; here the issue's generator and timed conversions are used.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.bench_consensus import _peak_rss_mb, _reset_peak_rss, _status_mb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REF_TIME_LIMIT_S = 120.0
REF_MEMORY_LIMIT = 8 * 2**30
N_BOOT = 200
FLEISS_PANEL = 3
WARMUP_LABELS = 5_000
SKLEARN_PILOT_PAIRS = 1_000
STAGES = ("agreement", "score", "drift", "rater_quality", "dawid_skene")
# Reference name -> the modules it needs (all in the project's ``dev`` extras).
REFERENCE_MODULES: dict[str, tuple[str, ...]] = {
    "krippendorff": ("krippendorff",),
    "krippendorff-dense": ("krippendorff",),
    "crowdkit-alpha": ("crowdkit", "pandas"),
    "statsmodels": ("statsmodels",),
    "statsmodels-raters": ("statsmodels",),
    "sklearn": ("sklearn",),
    "crowdkit-ds": ("crowdkit", "pandas"),
}
REFERENCES = tuple(REFERENCE_MODULES)
_RESULT = "BENCH-RESULT "

Measure = Callable[[pl.DataFrame], tuple[Any, float]]  # frame -> (value, seconds of input conversion)


def _gib(mib: float | None) -> float:
    return float("nan") if mib is None else mib / 1024


def _labels(n_labels: int, seed: int) -> pl.DataFrame:
    from prefgate.synth import generate_labels

    return generate_labels(n_labels, seed=seed)[0]


# ------------------------------------------------------------------------------------------------------------
# Children (fresh processes)
# ------------------------------------------------------------------------------------------------------------


def run_full_pass(n_labels: int, seed: int = 0) -> dict[str, Any]:
    """The full governance pass in *this* process (meant to be a fresh one; see :func:`full_pass`)."""
    from prefgate.agreement import agreement_report
    from prefgate.consensus import DawidSkene
    from prefgate.drift import detect_drift, score_labels
    from prefgate.rater_quality import rater_quality

    t0 = time.perf_counter()
    labels = _labels(n_labels, seed)
    generate_s = time.perf_counter() - t0
    gc.collect()
    generate_peak = _peak_rss_mb()
    input_rss = _reset_peak_rss()
    hwm = _status_mb("VmHWM")
    peak_reset = hwm is not None and hwm <= input_rss + 1.0

    seconds: dict[str, float] = {}
    stage_peak: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - t
        stage_peak[name] = _gib(_peak_rss_mb())

    start = time.perf_counter()
    with stage("agreement"):
        report = agreement_report(labels, n_raters=FLEISS_PANEL, n_boot=N_BOOT, cohen_min_overlap=1)
    with stage("score"):
        scored = score_labels(labels)
    with stage("drift"):
        drift = detect_drift(labels, scored=scored)
    with stage("rater_quality"):
        quality = rater_quality(labels, drift_report=drift, scored=scored)
    del scored
    model = DawidSkene()
    with stage("dawid_skene"):
        model.fit(labels)
    total_s = time.perf_counter() - start
    pass_peak = _peak_rss_mb()
    flags = ("spammer", "biased", "too_fast", "drifting")
    return {
        "n_labels": labels.height,
        "seed": seed,
        "generate_s": generate_s,
        "seconds": seconds,
        "total_s": total_s,
        "input_rss_gib": _gib(input_rss),
        "generate_peak_rss_gib": _gib(generate_peak),
        "pass_peak_rss_gib": _gib(pass_peak),
        "process_peak_rss_gib": max(_gib(generate_peak), _gib(pass_peak)),
        "peak_reset": peak_reset,
        "stage_peak_rss_gib": stage_peak,
        "alpha": report.alpha,
        "alpha_ci": [report.alpha_low, report.alpha_high],
        "fleiss_kappa": report.fleiss_kappa,
        "fleiss_n_items": report.fleiss_n_items,
        "cohen_pairs": None if report.pairwise is None else report.pairwise.height,
        "n_raters": quality.height,
        "flagged": {f: int(quality[f].sum()) for f in flags},
        "change_points": drift.change_points.height,
        "ds_n_iter": model.n_iter_,
        "ds_converged": model.n_iter_ < model.n_iter,
    }


def run_dawid_skene(impl: str, n_labels: int, seed: int = 0, labels_out: str | None = None) -> dict[str, Any]:
    """Dawid-Skene by ``impl`` ("prefgate" or "crowd-kit") in *this* process, timed from the long Polars frame.

    crowd-kit's clock includes ``to_pandas()`` (``convert_s``). The RSS high-water mark is reset just before the
    clock starts (input frame resident). With ``labels_out`` the verdicts (pair_id, label) go to that parquet file.
    """
    labels = _labels(n_labels, seed).select("pair_id", "rater_id", "choice")
    gc.collect()
    if impl == "prefgate":
        from prefgate.consensus import DawidSkene

        base = _reset_peak_rss()
        start = time.perf_counter()
        model = DawidSkene().fit(labels)
        seconds = time.perf_counter() - start
        convert_s = 0.0
        n_iter = model.n_iter_
        cap = model.n_iter
        verdicts = model.labels_.select("pair_id", "label")
    elif impl == "crowd-kit":
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

        ck = CrowdKitDawidSkene()
        base = _reset_peak_rss()
        start = time.perf_counter()
        data = labels.select(task="pair_id", worker="rater_id", label="choice").to_pandas()
        convert_s = time.perf_counter() - start
        ck.fit(data)
        seconds = time.perf_counter() - start
        n_iter = len(ck.loss_history_)
        cap = ck.n_iter
        verdicts = pl.DataFrame({"pair_id": ck.labels_.index.to_numpy(), "label": ck.labels_.to_numpy()}).cast(
            pl.String
        )
    else:
        raise ValueError(f"unknown Dawid-Skene implementation {impl!r}")
    peak = _peak_rss_mb()
    if labels_out:
        verdicts.write_parquet(labels_out)
    return {
        "impl": impl,
        "n_labels": labels.height,
        "seconds": seconds,
        "convert_s": convert_s,
        "n_iter": n_iter,
        "converged": n_iter < cap,
        "base_rss_gib": _gib(base),
        "peak_rss_gib": _gib(peak),
    }


def _child(args: Sequence[str], timeout_s: float | None) -> tuple[dict[str, Any] | None, float]:
    """Run ``python -m benchmarks.governance ARGS`` in a fresh interpreter; (its JSON result or None on timeout,
    wall seconds)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "benchmarks.governance", *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(_RESULT) :]), wall


def full_pass(n_labels: int, seed: int = 0, timeout_s: float = 1800.0) -> dict[str, Any]:
    """The full governance pass on ``n_labels`` generated labels, in a fresh interpreter (see module docstring).

    Returns per-stage ``seconds``, ``total_s`` (pass wall clock), ``generate_s``, peak RSS fields (GiB),
    ``process_wall_s`` (the child's whole life: interpreter start, imports, generation, pass) and sanity values.
    """
    result, wall = _child(["--full", str(n_labels), "--seed", str(seed)], timeout_s)
    if result is None:
        raise RuntimeError(f"full pass on {n_labels} labels did not finish in {timeout_s:.0f} s")
    result["process_wall_s"] = wall
    return result


# ------------------------------------------------------------------------------------------------------------
# Side by side (one process, except Dawid-Skene)
# ------------------------------------------------------------------------------------------------------------


def _best(fn: Measure, frame: pl.DataFrame, repeat: int) -> tuple[float, float, Any]:
    """(seconds, conversion seconds, value) of the fastest of up to ``repeat`` runs (one run if it takes >= 2 s)."""
    runs = []
    for _ in range(max(1, repeat)):
        gc.collect()
        t = time.perf_counter()
        value, convert_s = fn(frame)
        seconds = time.perf_counter() - t
        runs.append((seconds, convert_s, value))
        if seconds >= 2.0:
            break
    return min(runs, key=lambda r: r[0])


def _categories(frame: pl.DataFrame) -> list[str]:
    return sorted(frame.get_column("choice").unique().to_list())


def _category_sums(frame: pl.DataFrame, cats: list[str]) -> list[pl.Expr]:
    return [(pl.col("choice") == c).sum().cast(pl.Float64).alias(f"n_{c}") for c in cats]


def _krippendorff_counts(frame: pl.DataFrame) -> tuple[float, float]:
    """krippendorff.alpha(value_counts=...): items x categories counts (float64) from one Polars group_by."""
    import krippendorff

    t = time.perf_counter()
    cats = _categories(frame)
    counts = frame.group_by("pair_id").agg(_category_sums(frame, cats)).drop("pair_id").to_numpy()
    convert_s = time.perf_counter() - t
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")), convert_s


def _dense_codes(frame: pl.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    cats = _categories(frame)
    coded = frame.select(
        pl.col("rater_id").rank("dense").cast(pl.Int64) - 1,
        pl.col("pair_id").rank("dense").cast(pl.Int64) - 1,
        pl.col("choice").replace_strict(cats, list(range(len(cats))), return_dtype=pl.Float64),
    )
    return tuple(coded.get_column(c).to_numpy() for c in coded.columns)  # type: ignore[return-value]


def _krippendorff_dense(frame: pl.DataFrame) -> tuple[float, float]:
    """krippendorff.alpha(reliability_data=...): a raters x items float matrix, NaN where there is no label."""
    import krippendorff

    t = time.perf_counter()
    rater, item, label = _dense_codes(frame)
    matrix = np.full((int(rater.max()) + 1, int(item.max()) + 1), np.nan)
    matrix[rater, item] = label
    convert_s = time.perf_counter() - t
    value = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    return value, convert_s


def _crowdkit_alpha(frame: pl.DataFrame) -> tuple[float, float]:
    """crowdkit.metrics.data.alpha_krippendorff on a pandas (task, worker, label) frame from ``to_pandas()``."""
    from crowdkit.metrics.data import alpha_krippendorff

    t = time.perf_counter()
    data = frame.select(task="pair_id", worker="rater_id", label="choice").to_pandas()
    convert_s = time.perf_counter() - t
    return float(alpha_krippendorff(data)), convert_s


def _statsmodels_counts(frame: pl.DataFrame) -> tuple[float, float]:
    """statsmodels fleiss_kappa on the items x categories table of the items with exactly 3 labels."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    t = time.perf_counter()
    cats = _categories(frame)
    table = (
        frame.group_by("pair_id")
        .agg(pl.len().alias("_n"), *_category_sums(frame, cats))
        .filter(pl.col("_n") == FLEISS_PANEL)
        .drop("pair_id", "_n")
        .to_numpy()
    )
    convert_s = time.perf_counter() - t
    return float(fleiss_kappa(table, method="fleiss")), convert_s


def _statsmodels_raters(frame: pl.DataFrame) -> tuple[float, float]:
    """statsmodels aggregate_raters + fleiss_kappa on an items x raters matrix (items with exactly 3 labels)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    t = time.perf_counter()
    cats = _categories(frame)
    wide = (
        frame.filter(pl.len().over("pair_id") == FLEISS_PANEL)
        .sort("pair_id")
        .get_column("choice")
        .replace_strict(cats, list(range(len(cats))), return_dtype=pl.Int64)
        .to_numpy()
        .reshape(-1, FLEISS_PANEL)
    )
    convert_s = time.perf_counter() - t
    return float(fleiss_kappa(aggregate_raters(wide, n_cat=len(cats))[0], method="fleiss")), convert_s


def _sklearn_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Per rater pair (rater_id < rater_id_b): the two raters' labels on their shared items (Polars self-join)."""
    labels = frame.select("pair_id", "rater_id", "choice")
    return (
        labels.join(labels, on="pair_id", suffix="_b")
        .filter(pl.col("rater_id") < pl.col("rater_id_b"))
        .group_by("rater_id", "rater_id_b")
        .agg("choice", "choice_b")
    )


def _sklearn_kappas(pairs: pl.DataFrame) -> list[float]:
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-item pairs: sklearn warns and returns NaN where p_e = 1
        return [float(cohen_kappa_score(a, b)) for a, b in zip(pairs["choice"], pairs["choice_b"], strict=True)]


def _max_abs_diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(a - b)


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"


def _row(
    n_labels: int,
    statistic: str,
    prefgate_call: str,
    prefgate_s: float,
    reference: str,
    note: str,
    *,
    reference_s: float | None = None,
    convert_s: float | None = None,
    prefgate_value: Any = None,
    reference_value: Any = None,
    abs_diff: float | None = None,
    skipped: str | None = None,
    estimated_s: float | None = None,
) -> dict[str, Any]:
    return {
        "n_labels": n_labels,
        "statistic": statistic,
        "prefgate": prefgate_call,
        "prefgate_s": prefgate_s,
        "reference": reference,
        "reference_s": reference_s,
        "convert_s": convert_s,
        "ratio": None if reference_s is None else reference_s / prefgate_s,
        "estimated_s": estimated_s,
        "estimated_ratio": None if estimated_s is None else estimated_s / prefgate_s,
        "skipped": skipped,
        "prefgate_value": prefgate_value,
        "reference_value": reference_value,
        "abs_diff": abs_diff,
        "note": note,
    }


def _diff_note(diff: float | None) -> str:
    return "values differ by -" if diff is None else f"values differ by {diff:.1e}"


def compare(
    n_labels: int,
    seed: int = 0,
    references: Sequence[str] = REFERENCES,
    *,
    repeat: int = 3,
    time_limit_s: float = REF_TIME_LIMIT_S,
    memory_limit: int = REF_MEMORY_LIMIT,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """prefgate and the selected references side by side at one size, in one run (see the module docstring).

    Returns one row per (statistic, reference): ``statistic``, ``prefgate_s``, ``reference``, ``reference_s``,
    ``ratio`` (reference_s / prefgate_s), ``note`` (input forms, conversion share, agreement of the values), plus
    ``n_labels``, ``prefgate`` (the call timed), ``convert_s``, ``skipped``, ``estimated_s``, ``estimated_ratio``,
    ``prefgate_value``, ``reference_value``, ``abs_diff``.
    """
    from prefgate.agreement import fleiss_kappa, krippendorff_alpha, pairwise_cohen

    unknown = sorted(set(references) - set(REFERENCES))
    if unknown:
        raise ValueError(f"unknown references {unknown}; choose from {list(REFERENCES)}")
    say = log or (lambda _msg: None)
    df = _labels(n_labels, seed).select("pair_id", "rater_id", "choice")
    warm = df.head(WARMUP_LABELS)
    rows: list[dict[str, Any]] = []
    prefgate_in = "prefgate got the long Polars frame (its encoding and validation are inside the clock)"

    def timed(fn: Measure, frame: pl.DataFrame = df) -> tuple[float, float, Any]:
        fn(warm)
        return _best(fn, frame, repeat)

    # ---- Krippendorff's alpha (nominal)
    if {"krippendorff", "krippendorff-dense", "crowdkit-alpha"} & set(references):
        say(f"[{n_labels:,}] alpha")
        pg_s, _, pg_alpha = timed(lambda f: (krippendorff_alpha(f), 0.0))
        call = "krippendorff_alpha(df)"
        if "krippendorff" in references:
            s, conv, v = timed(_krippendorff_counts)
            diff = _max_abs_diff(pg_alpha, v)
            note = (
                f"krippendorff's fastest input: an items x categories count matrix (float64) built from the long "
                f"frame with one Polars group_by, timed ({_fmt_s(conv)} of it); it checks no duplicate (item, rater) "
                f"labels. {prefgate_in}. {_diff_note(diff)}"
            )
            rows.append(
                _row(
                    n_labels,
                    "alpha",
                    call,
                    pg_s,
                    "krippendorff.alpha(value_counts)",
                    note,
                    reference_s=s,
                    convert_s=conv,
                    prefgate_value=pg_alpha,
                    reference_value=v,
                    abs_diff=diff,
                )
            )
        if "krippendorff-dense" in references:
            rows.append(_dense_row(df, n_labels, pg_s, pg_alpha, call, time_limit_s, memory_limit, repeat))
        if "crowdkit-alpha" in references:
            s, conv, v = timed(_crowdkit_alpha)
            diff = _max_abs_diff(pg_alpha, v)
            note = (
                f"crowd-kit got a pandas (task, worker, label) frame from Polars to_pandas(), timed "
                f"({_fmt_s(conv)} of it). {_diff_note(diff)}"
            )
            rows.append(
                _row(
                    n_labels,
                    "alpha",
                    call,
                    pg_s,
                    "crowdkit alpha_krippendorff",
                    note,
                    reference_s=s,
                    convert_s=conv,
                    prefgate_value=pg_alpha,
                    reference_value=v,
                    abs_diff=diff,
                )
            )

    # ---- Fleiss' kappa on the items with exactly FLEISS_PANEL labels
    if {"statsmodels", "statsmodels-raters"} & set(references):
        say(f"[{n_labels:,}] fleiss")
        pg_s, _, pg_k = timed(lambda f: (fleiss_kappa(f, n_raters=FLEISS_PANEL), 0.0))
        call = f"fleiss_kappa(df, n_raters={FLEISS_PANEL})"
        if "statsmodels" in references:
            s, conv, v = timed(_statsmodels_counts)
            diff = _max_abs_diff(pg_k, v)
            note = (
                f"statsmodels' fastest input: the items x categories table of the items with {FLEISS_PANEL} "
                f"labels, one Polars group_by + filter, timed ({_fmt_s(conv)} of it). {_diff_note(diff)}"
            )
            rows.append(
                _row(
                    n_labels,
                    "fleiss",
                    call,
                    pg_s,
                    "statsmodels fleiss_kappa(table)",
                    note,
                    reference_s=s,
                    convert_s=conv,
                    prefgate_value=pg_k,
                    reference_value=v,
                    abs_diff=diff,
                )
            )
        if "statsmodels-raters" in references:
            s, conv, v = timed(_statsmodels_raters)
            diff = _max_abs_diff(pg_k, v)
            note = (
                f"the documented path: items x raters codes (items with {FLEISS_PANEL} labels, sorted by item) -> "
                f"aggregate_raters -> fleiss_kappa; conversion timed ({_fmt_s(conv)} of it). {_diff_note(diff)}"
            )
            rows.append(
                _row(
                    n_labels,
                    "fleiss",
                    call,
                    pg_s,
                    "statsmodels aggregate_raters+fleiss_kappa",
                    note,
                    reference_s=s,
                    convert_s=conv,
                    prefgate_value=pg_k,
                    reference_value=v,
                    abs_diff=diff,
                )
            )

    # ---- Pairwise Cohen's kappa, every rater pair sharing >= 1 item
    if "sklearn" in references:
        say(f"[{n_labels:,}] cohen")
        pg_s, _, table = timed(lambda f: (pairwise_cohen(f, min_overlap=1), 0.0))
        rows.append(_sklearn_row(df, warm, n_labels, pg_s, table, time_limit_s, seed))

    # ---- Dawid-Skene, each implementation in a fresh process
    if "crowdkit-ds" in references:
        say(f"[{n_labels:,}] dawid-skene (fresh processes)")
        rows.append(_dawid_skene_row(n_labels, seed, time_limit_s))
    return rows


def _dense_row(
    df: pl.DataFrame,
    n_labels: int,
    pg_s: float,
    pg_alpha: float,
    call: str,
    time_limit_s: float,
    memory_limit: int,
    repeat: int,
) -> dict[str, Any]:
    name = "krippendorff.alpha(reliability_data)"
    n_items = df.get_column("pair_id").n_unique()
    n_raters = df.get_column("rater_id").n_unique()
    cells = n_items * n_raters
    need = cells * (8 + 2 + 3)  # float64 matrix, isnan mask, (cells x categories) boolean comparison inside
    form = f"a {n_raters:,} raters x {n_items:,} items float matrix (NaN = no label)"
    if need > memory_limit:
        return _row(
            n_labels,
            "alpha",
            call,
            pg_s,
            name,
            f"skipped: {form} needs ~{need / 2**30:.1f} GiB",
            skipped=f"needs ~{need / 2**30:.1f} GiB",
        )
    # Pilot on the first items (all their raters): time grows with matrix cells.
    items = df.get_column("pair_id").unique(maintain_order=True)
    take = max(50, n_items // 20)
    pilot = df.filter(pl.col("pair_id").is_in(items.head(take).implode()))
    _krippendorff_dense(pilot.head(WARMUP_LABELS))
    t = time.perf_counter()
    _krippendorff_dense(pilot)
    pilot_s = time.perf_counter() - t
    pilot_cells = pilot.get_column("pair_id").n_unique() * pilot.get_column("rater_id").n_unique()
    predicted = pilot_s * cells / max(1, pilot_cells)
    if predicted > time_limit_s:
        reason = f"estimated {_fmt_s(predicted)} from a {take:,}-item pilot"
        return _row(
            n_labels, "alpha", call, pg_s, name, f"skipped: {form}; {reason}", skipped=reason, estimated_s=predicted
        )
    s, conv, v = _best(_krippendorff_dense, df, repeat)
    diff = _max_abs_diff(pg_alpha, v)
    note = (
        f"the input form krippendorff's docs lead with: {form} (~{need / 2**30:.1f} GiB with its temporaries), "
        f"built from the long frame (dense ranks + NumPy scatter), timed ({_fmt_s(conv)} of it). {_diff_note(diff)}"
    )
    return _row(
        n_labels,
        "alpha",
        call,
        pg_s,
        name,
        note,
        reference_s=s,
        convert_s=conv,
        prefgate_value=pg_alpha,
        reference_value=v,
        abs_diff=diff,
    )


def _sklearn_row(
    df: pl.DataFrame,
    warm: pl.DataFrame,
    n_labels: int,
    pg_s: float,
    table: pl.DataFrame,
    time_limit_s: float,
    seed: int,
) -> dict[str, Any]:
    name = "sklearn cohen_kappa_score per pair"
    call = "pairwise_cohen(df, min_overlap=1)"
    _sklearn_kappas(_sklearn_pairs(warm).head(20))  # warm-up
    gc.collect()
    t = time.perf_counter()
    pairs = _sklearn_pairs(df)
    convert_s = time.perf_counter() - t
    n_pairs = pairs.height
    sample = pairs.sample(n=min(SKLEARN_PILOT_PAIRS, n_pairs), seed=seed)
    t = time.perf_counter()
    pilot = _sklearn_kappas(sample)
    per_pair = (time.perf_counter() - t) / max(1, sample.height)
    predicted = convert_s + per_pair * n_pairs
    ours = (
        sample.select(rater_a="rater_id", rater_b="rater_id_b")
        .with_columns(ref=pl.Series(pilot, dtype=pl.Float64))
        .join(table.select("rater_a", "rater_b", "kappa"), on=["rater_a", "rater_b"], how="left")
    )
    both = ours.filter(pl.col("ref").is_not_nan() & pl.col("kappa").is_not_null())
    diff = float((both["ref"] - both["kappa"]).abs().max()) if both.height else None  # type: ignore[arg-type]
    unmatched = int(ours["kappa"].is_null().sum() - ours["ref"].is_nan().sum())
    form = (
        f"per rater pair label lists from a Polars self-join on pair_id + group_by, timed ({_fmt_s(convert_s)}), "
        f"then cohen_kappa_score in a Python loop over {n_pairs:,} pairs ({per_pair * 1e3:.2f} ms a pair)"
    )
    check = f"on {sample.height:,} sampled pairs: {_diff_note(diff)}" + (
        f", {unmatched} undefined-kappa mismatches" if unmatched else ""
    )
    if predicted > time_limit_s:
        reason = f"estimated {_fmt_s(predicted)} from a {sample.height:,}-pair pilot"
        return _row(
            n_labels,
            "cohen",
            call,
            pg_s,
            name,
            f"skipped: {form}; {reason}; {check}",
            skipped=reason,
            estimated_s=predicted,
            prefgate_value=table.height,
            abs_diff=diff,
        )
    t = time.perf_counter()
    _sklearn_kappas(pairs)
    seconds = convert_s + time.perf_counter() - t
    return _row(
        n_labels,
        "cohen",
        call,
        pg_s,
        name,
        f"{form}; {check}",
        reference_s=seconds,
        convert_s=convert_s,
        prefgate_value=table.height,
        reference_value=n_pairs,
        abs_diff=diff,
    )


def _dawid_skene_row(n_labels: int, seed: int, time_limit_s: float) -> dict[str, Any]:
    name = "crowd-kit DawidSkene().fit"
    call = "DawidSkene().fit(df)"
    with tempfile.TemporaryDirectory(prefix="prefgate-bench-") as tmp:
        out = {impl: str(Path(tmp) / f"{impl}.parquet") for impl in ("prefgate", "crowd-kit")}
        pg, _ = _child(["--ds", "prefgate", str(n_labels), "--seed", str(seed), "--labels-out", out["prefgate"]], None)
        assert pg is not None
        # The child also generates the labels and starts an interpreter: allow for that beyond the reference limit.
        ck, _ = _child(
            ["--ds", "crowd-kit", str(n_labels), "--seed", str(seed), "--labels-out", out["crowd-kit"]],
            time_limit_s + 60.0,
        )
        if ck is None:
            reason = f"did not finish within {time_limit_s:.0f} s (+60 s for start-up and generation)"
            return _row(n_labels, "dawid_skene", call, pg["seconds"], name, f"skipped: {reason}", skipped=reason)
        verdicts = pl.read_parquet(out["prefgate"]).join(
            pl.read_parquet(out["crowd-kit"]), on="pair_id", suffix="_ck", how="full", coalesce=True
        )
    same = float((verdicts["label"] == verdicts["label_ck"]).fill_null(False).mean())  # type: ignore[arg-type]
    iters = (
        f"both stopped after {pg['n_iter']} iterations"
        if pg["n_iter"] == ck["n_iter"]
        else f"prefgate stopped after {pg['n_iter']} iterations, crowd-kit after {ck['n_iter']}"
    )
    note = (
        f"each in a fresh process with its defaults (n_iter=100, tol=1e-5), {iters}; prefgate fit the long frame; "
        f"crowd-kit got to_pandas() inside its clock ({_fmt_s(ck['convert_s'])} of it); verdicts identical on "
        f"{same:.4%} of pairs; peak RSS during the fit (input resident): prefgate {pg['peak_rss_gib']:.2f} GiB, "
        f"crowd-kit {ck['peak_rss_gib']:.2f} GiB"
    )
    return _row(
        n_labels,
        "dawid_skene",
        call,
        pg["seconds"],
        name,
        note,
        reference_s=ck["seconds"],
        convert_s=ck["convert_s"],
        prefgate_value=pg["n_iter"],
        reference_value=ck["n_iter"],
        abs_diff=1.0 - same,
    )


# ------------------------------------------------------------------------------------------------------------
# Command line (also the children's entry point)
# ------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--full", type=int, metavar="N", help="run the full pass in this process")
    what.add_argument("--compare", type=int, metavar="N", help="run the side-by-side comparison at N labels")
    what.add_argument("--ds", nargs=2, metavar=("IMPL", "N"), help="Dawid-Skene by IMPL (prefgate | crowd-kit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels-out", help="(--ds) write the verdicts to this parquet file")
    parser.add_argument("--references", nargs="+", default=list(REFERENCES), choices=REFERENCES)
    args = parser.parse_args(argv)
    if args.full is not None:
        result = run_full_pass(args.full, args.seed)
    elif args.ds is not None:
        result = run_dawid_skene(args.ds[0], int(args.ds[1]), args.seed, args.labels_out)
    else:
        rows = compare(args.compare, args.seed, args.references, log=lambda m: print(m, file=sys.stderr))
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    print(_RESULT + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
