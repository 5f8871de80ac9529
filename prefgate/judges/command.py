"""``prefgate judge``: run judges over the warehouse's response pairs, both orders, through the durable cache.

    prefgate [--home H] judge [--judge NAME ...] [--base-url URL] [--limit N] [--batch YYYY-MM-DD]
                              [--cache PATH] [--policy PATH] [--no-progress] [--json]

* Pairs: ``prefgate.response_pairs`` from the home's warehouse, sorted by ``pair_id``; with ``--batch``, only
  the pairs humans labelled in that batch (``prefgate.human_labels``). The warehouse is opened read-only and
  closed before any judging starts (a writer holding the file is waited for, up to ``LOCK_WAIT_S``).
* How many: ``--limit N`` judges the first N pairs (by ``pair_id``) with every judge. Without it, ``--batch``
  applies each judge's ``limit_per_batch`` from ``config/judges.yaml`` through ``registry.batch_sample`` (the
  batch's shortest pairs) -- the same pairs the ``judge_labels`` asset judges for that batch, so the two share
  cache keys -- and without ``--batch`` every pair is judged.
* Judges: names from ``config/judges.yaml`` (default: its ``default`` list); ``--base-url`` replaces the
  ``base_url`` of every selected ``openai``-backend judge. Settings come from the policy's ``judges`` section
  (``--policy``, else ``$PREFGATE_POLICY``, else ``config/policy.yaml``): PII policy, attempts (HTTP retries and
  judging rounds), timeout, concurrency, batch size.
* Cache: ``<home>/judge_cache.sqlite`` unless ``--cache``; keys already judged ok are not judged again, so an
  interrupted run resumes where it stopped.
* Report, per judge: judgments ok / failed (by parse status), what this run did (views sent to the judge, judge
  calls, keys answered from the cache), position consistency and first-shown win rate, tokens, latency p50/p95,
  cost, and agreement with the human consensus (``prefgate.human_consensus`` verdicts a/b) on the pairs where
  the judge's two orders agree: accuracy and Cohen's kappa (:func:`prefgate.agreement.pairwise_cohen`). A
  table on stdout, or one JSON object with ``--json``; the progress bar goes to stderr.

Exit status: 0 when the judges ran (failed judgments are data, reported, not errors); 1 when the warehouse
cannot be read (no warehouse, no ``response_pairs`` table, or locked by a writer); 2 on bad arguments, an
unknown judge, or an invalid judges / policy / constitution file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from prefgate.home import PROJECT_ROOT, Home
from prefgate.judges.base import ORDERS, Judge, Judgment, PairView
from prefgate.judges.cache import CacheKey, JudgmentCache

SCHEMA = "prefgate"
CACHE_FILE = "judge_cache.sqlite"  # file name of Home.judge_cache (shown in --help)
LOCK_WAIT_S = 30.0
PAIR_COLUMNS = ("pair_id", "prompt", "response_a", "response_b", "category")


class CommandError(Exception):
    """The command cannot run; ``code`` is its exit status (1: the warehouse, 2: the arguments or config)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _batch_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``judge`` subcommand's options."""
    parser.add_argument(
        "--judge", dest="judges", action="append", metavar="NAME",
        help="a judge from config/judges.yaml (repeatable; default: the file's default list)",
    )  # fmt: skip
    parser.add_argument("--base-url", help="base URL for the selected openai-backend judges (e.g. a local server)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="judge only the first N pairs by pair_id")
    parser.add_argument(
        "--batch", type=_batch_date, metavar="YYYY-MM-DD", help="judge the pairs humans labelled in this batch"
    )
    parser.add_argument("--cache", type=Path, metavar="PATH", help=f"judgment cache (default: <home>/{CACHE_FILE})")
    parser.add_argument("--policy", type=Path, metavar="PATH", help="policy file (default: config/policy.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


# ----------------------------------------------------------------------------------------------- warehouse


def _connect(path: Path) -> Any:
    """A read-only DuckDB connection, waiting up to ``LOCK_WAIT_S`` while a writer holds the file."""
    import duckdb

    if not path.exists():
        raise CommandError(f"no warehouse at {path}: run `prefgate run` (or the ingest job) first", 1)
    deadline = time.monotonic() + LOCK_WAIT_S
    delay = 0.1
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if time.monotonic() >= deadline:
                raise CommandError(f"cannot open {path} read-only (is a job writing it?): {exc}", 1) from exc
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def _tables(con: Any) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]).fetchall()
    return {str(r[0]) for r in rows}


@dataclass
class Inputs:
    pairs: pl.DataFrame  # PAIR_COLUMNS, sorted by pair_id
    consensus: pl.DataFrame | None  # pair_id, verdict (a/b only); None when there is no human_consensus table


def read_inputs(warehouse: Path, batch: dt.date | None) -> Inputs:
    """The pairs to judge and the human consensus, read in one short read-only session."""
    con = _connect(warehouse)
    try:
        tables = _tables(con)
        if "response_pairs" not in tables:
            raise CommandError(f"{warehouse} has no {SCHEMA}.response_pairs table: run the ingest job first", 1)
        cols = ", ".join(PAIR_COLUMNS)
        if batch is None:
            pairs = con.execute(f"SELECT {cols} FROM {SCHEMA}.response_pairs ORDER BY pair_id").pl()
        else:
            if "human_labels" not in tables:
                raise CommandError(f"{warehouse} has no {SCHEMA}.human_labels table: run the labels job first", 1)
            pairs = con.execute(
                f"SELECT {cols} FROM {SCHEMA}.response_pairs WHERE pair_id IN "
                f"(SELECT pair_id FROM {SCHEMA}.human_labels WHERE batch_date = ?) ORDER BY pair_id",
                [batch],
            ).pl()
        consensus = None
        if "human_consensus" in tables:
            consensus = con.execute(
                f"SELECT pair_id, verdict FROM {SCHEMA}.human_consensus WHERE verdict IN ('a', 'b')"
            ).pl()
    finally:
        con.close()
    return Inputs(pairs, consensus)


# -------------------------------------------------------------------------------------------------- judges


class CountingJudge:
    """Delegates to a judge and counts the calls and views that reached it (a resumed run adds only the rest)."""

    def __init__(self, inner: Judge) -> None:
        self.inner = inner
        self.judge_id = inner.judge_id
        self.local = inner.local
        self.constitution_hash = str(getattr(inner, "constitution_hash", ""))
        self.template_hash = str(getattr(inner, "template_hash", ""))
        self.calls = 0  # judge() calls
        self.views = 0  # views sent, retry rounds included
        self.keys: set[tuple[str, str]] = set()  # distinct (pair_id, order) sent

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        self.calls += 1
        self.views += len(views)
        self.keys.update((v.pair_id, v.order) for v in views)
        return await self.inner.judge(views)


@dataclass
class JudgeRun:
    """One judge's run: its name, what it judged, and what came back."""

    name: str
    judge: CountingJudge
    n_pairs: int
    cached_ok: int
    judgments: list[Judgment] = field(default_factory=list)
    elapsed_s: float = 0.0


class _Bar:
    """A tqdm bar over all judges' keys on stderr (or nothing)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        self._offset = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="judgment", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def start(self, name: str) -> None:
        if self._bar is not None:
            self._offset = int(self._bar.n)
            self._bar.set_description(name)

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.n = self._offset + done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _policy_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("PREFGATE_POLICY")
    return Path(env) if env else PROJECT_ROOT / "config" / "policy.yaml"


def run_judges(args: argparse.Namespace, home: Home) -> tuple[list[JudgeRun], Path, pl.DataFrame | None]:
    """Select, build and run the judges; the runs, the cache path and the human consensus (a/b verdicts)."""
    from prefgate.judges.constitution import ConstitutionError, load_constitution
    from prefgate.judges.http import JudgeConfigError
    from prefgate.judges.registry import JudgeRegistryError, batch_sample, load_registry
    from prefgate.judges.runner import judge_pairs
    from prefgate.policy import PolicyError, load_policy

    try:
        registry = load_registry()
        names = registry.select(args.judges)
        policy = load_policy(_policy_path(args.policy)).judges
        constitution = load_constitution()
    except (JudgeRegistryError, PolicyError, ConstitutionError) as exc:
        raise CommandError(str(exc), 2) from exc
    if not names:
        raise CommandError("no judge selected", 2)
    if args.base_url is not None:
        remote = [n for n in names if registry.specs[n].backend == "openai"]
        if not remote:
            raise CommandError(f"--base-url applies to openai-backend judges; none of {names} is one", 2)
        for name in remote:
            registry.specs[name] = registry.specs[name].model_copy(update={"base_url": args.base_url})

    inputs = read_inputs(home.warehouse, args.batch)
    cache_path = args.cache if args.cache is not None else home.judge_cache
    plan: list[tuple[str, pl.DataFrame]] = []
    for name in names:
        per_batch = registry.specs[name].limit_per_batch
        if args.limit is not None:
            plan.append((name, inputs.pairs.head(args.limit)))
        elif args.batch is not None and per_batch:
            plan.append((name, batch_sample(inputs.pairs, per_batch)))
        else:
            plan.append((name, inputs.pairs))

    judges: list[CountingJudge] = []
    for name in names:  # every judge is built (a missing API key found) before any of them runs
        try:
            inner = registry.build(
                name, constitution, concurrency=policy.concurrency, timeout_s=policy.timeout_s,
                max_attempts=policy.max_attempts,
            )  # fmt: skip
        except (JudgeRegistryError, JudgeConfigError) as exc:
            raise CommandError(f"judge {name!r}: {exc}", 2) from exc
        judges.append(CountingJudge(inner))

    runs: list[JudgeRun] = []
    bar = _Bar(sum(p.height * len(ORDERS) for _, p in plan), enabled=not args.no_progress)
    try:
        with JudgmentCache(cache_path) as cache:
            for (name, pairs), judge in zip(plan, judges, strict=True):
                keys: list[CacheKey] = [(judge.judge_id, pid, o) for pid in pairs["pair_id"] for o in ORDERS]
                run = JudgeRun(name, judge, pairs.height, len(cache.ok_keys(keys)))
                bar.start(name)
                t0 = time.perf_counter()
                run.judgments = judge_pairs(
                    pairs, [judge], cache, pii_policy=policy.pii, max_retries=policy.max_retries,
                    batch_size=policy.batch_size, progress=bar.update,
                )  # fmt: skip
                run.elapsed_s = time.perf_counter() - t0
                runs.append(run)
    finally:
        bar.close()
    return runs, cache_path, inputs.consensus


# -------------------------------------------------------------------------------------------------- report


def _quantile(values: pl.Series, q: float) -> float | None:
    value = values.quantile(q, interpolation="linear") if values.len() else None
    return None if value is None else float(value)


def _int_sum(frame: pl.DataFrame, column: str) -> int | None:
    values = frame.get_column(column)
    return None if values.null_count() == values.len() else int(values.sum())


def human_agreement(frame: pl.DataFrame, consensus: pl.DataFrame | None) -> dict[str, object]:
    """Agreement of the judge's position-consistent choices with the human consensus (verdicts a/b).

    ``n_pairs``: judged pairs that have a human a/b verdict; ``n_consistent``: those where the judge's two
    orders agree (the pairs scored); ``accuracy``: share of those where the judge's choice is the human verdict
    (a judge's tie counts as a miss); ``kappa``: Cohen's kappa between the two on those pairs (None when it is
    undefined: fewer than one pair, or both sides always give the same single answer).
    """
    from prefgate.agreement import pairwise_cohen
    from prefgate.judges.runner import position_consistency

    out: dict[str, object] = {"n_pairs": 0, "n_consistent": 0, "accuracy": None, "kappa": None}
    if consensus is None:
        out["note"] = "no human_consensus table (run the refresh job)"
        return out
    pc = position_consistency(frame).join(consensus.rename({"verdict": "human"}), on="pair_id", how="inner")
    scored = pc.filter(pl.col("consistent"))
    out["n_pairs"], out["n_consistent"] = pc.height, scored.height
    if scored.is_empty():
        return out
    out["accuracy"] = float(scored.select((pl.col("choice") == pl.col("human")).mean()).item())
    long = pl.concat(
        [
            scored.select("pair_id", pl.lit("judge").alias("rater_id"), "choice"),
            scored.select("pair_id", pl.lit("human").alias("rater_id"), pl.col("human").alias("choice")),
        ]
    )
    kappa = pairwise_cohen(long)["kappa"]
    out["kappa"] = None if kappa.is_empty() or kappa[0] is None else float(kappa[0])
    return out


def summarize(run: JudgeRun, consensus: pl.DataFrame | None) -> dict[str, object]:
    """One judge's figures (the ``--json`` record)."""
    from prefgate.judges.runner import consistency_summary, judgments_frame

    frame = judgments_frame(run.judgments)
    n_ok = int((frame["status"] == "ok").sum())
    by_parse = {
        str(row["parse_status"]): int(row["len"])
        for row in frame.group_by("status", "parse_status").len().sort("status", "parse_status").iter_rows(named=True)
    }
    failed_by = {
        str(r["parse_status"]): int(r["len"])
        for r in frame.filter(pl.col("status") == "failed").group_by("parse_status").len().sort("parse_status")
        .iter_rows(named=True)
    }  # fmt: skip
    cons = consistency_summary(frame)
    row = cons.row(0, named=True) if cons.height else {}
    sent = frame.filter(pl.col("parse_status") != "skipped_pii")
    cost = frame["cost_usd"]
    return {
        "name": run.name,
        "judge_id": run.judge.judge_id,
        "pairs": run.n_pairs,
        "judgments": frame.height,
        "ok": n_ok,
        "failed": frame.height - n_ok,
        "parse_status": by_parse,
        "failed_by": failed_by,
        "cached_ok": run.cached_ok,
        "judged_keys": len(run.judge.keys),
        "judged_views": run.judge.views,
        "judge_calls": run.judge.calls,
        "elapsed_s": round(run.elapsed_s, 3),
        "n_complete": int(row.get("n_complete") or 0),
        "n_consistent": int(row.get("n_consistent") or 0),
        "consistency_rate": row.get("consistency_rate"),
        "first_win_rate": row.get("first_win_rate"),
        "prompt_tokens": _int_sum(frame, "prompt_tokens"),
        "completion_tokens": _int_sum(frame, "completion_tokens"),
        "tokens": _int_sum(frame, "tokens"),
        "latency_p50_s": _quantile(sent["latency_s"], 0.5),
        "latency_p95_s": _quantile(sent["latency_s"], 0.95),
        "cost_usd": None if cost.null_count() == cost.len() else float(frame.select(pl.col("cost_usd").sum()).item()),
        "human": human_agreement(frame, consensus),
    }


def _fmt(value: object, spec: str = ".3f", none: str = "n/a") -> str:
    if value is None:
        return none
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def print_table(report: dict[str, Any], out: TextIO) -> None:
    """The human-readable report."""
    print(f"prefgate judge: {report['pairs']} pairs x 2 orders; cache {report['cache']}", file=out)
    for j in report["judges"]:
        failed = ", ".join(f"{k} {v}" for k, v in j["failed_by"].items())
        h = j["human"]
        lines = [
            f"{j['name']}  ({j['judge_id']})",
            f"  judgments      {j['judgments']}: ok {j['ok']}, failed {j['failed']}"
            + (f" ({failed})" if failed else ""),
            f"  this run       {j['judged_keys']} keys judged ({j['judged_views']} views in {j['judge_calls']} calls), "
            f"{j['cached_ok']} keys already in the cache, {j['elapsed_s']:.1f} s",
            f"  position       consistency {_fmt(j['consistency_rate'])} ({j['n_consistent']}/{j['n_complete']} "
            f"complete pairs), first-shown win rate {_fmt(j['first_win_rate'])}",
            f"  tokens         {_fmt(j['tokens'])} (prompt {_fmt(j['prompt_tokens'])}, "
            f"completion {_fmt(j['completion_tokens'])})",
            f"  latency        p50 {_fmt(j['latency_p50_s'])} s, p95 {_fmt(j['latency_p95_s'])} s",
            f"  cost           {_fmt(j['cost_usd'], '.4f', 'n/a (unpriced)')}"
            + (" USD" if j["cost_usd"] is not None else ""),
            f"  vs humans      accuracy {_fmt(h['accuracy'])}, kappa {_fmt(h['kappa'])} on {h['n_consistent']} "
            f"consistent of {h['n_pairs']} pairs with a human a/b verdict" + (f" ({h['note']})" if "note" in h else ""),
        ]
        print("\n".join(lines), file=out)


def main(args: argparse.Namespace, home: Home, out: TextIO | None = None) -> int:
    """Run the command; the exit status."""
    out = out or sys.stdout
    t0 = time.perf_counter()
    try:
        runs, cache_path, consensus = run_judges(args, home)
    except CommandError as exc:
        print(f"prefgate judge: {exc}", file=sys.stderr)
        return exc.code
    report: dict[str, Any] = {
        "pairs": max((r.n_pairs for r in runs), default=0),
        "batch": None if args.batch is None else args.batch.isoformat(),
        "cache": str(cache_path),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "judges": [summarize(r, consensus) for r in runs],
    }
    if args.json:
        print(json.dumps(report, sort_keys=True), file=out)
    else:
        print_table(report, out)
    return 0
