"""The ``prefgate`` command.

    prefgate init            create the home (warehouse, Dagster home, landing, exports) and dagster.yaml
    prefgate land DIR        copy a folder of landing files (same layout as data/sample/landing) into landing/
    prefgate run             the main job: init, land the bundled sample, ingest, every label batch, refresh
    prefgate tables          row counts of every warehouse table
    prefgate bench           the rater-governance benchmark table (see benchmarks/README.md)
    prefgate judge           run AI judges over the warehouse's pairs, both orders, cached (prefgate.judges.command)
    prefgate lineage         audit versions, models, raters, judges, examples; diff; retract (prefgate.lineage.command)
    prefgate report          governance tables in the terminal: raters, judges, gates, set (prefgate.report.command)
    prefgate review land F   land a Label Studio JSON export of the review queue as human labels (closes the loop)
    prefgate sources check   dry-run config/sources.yaml against the landing folder (prefgate.ingest.check)

The main job goes through the same landing folder and the same Dagster jobs a user's files take, recorded in
the project's Dagster instance, so its runs show up in ``dagster dev`` afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from prefgate.home import PROJECT_ROOT, Home

SAMPLE_LANDING = PROJECT_ROOT / "data" / "sample" / "landing"

DAGSTER_YAML = """\
# Written by `prefgate init`. DuckDB allows one writer: runs are queued one at a time and every asset that
# writes the warehouse shares the 'duckdb' pool with a limit of 1.
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: 1
# A run whose process died keeps its slot until it is found dead: `prefgate run` and the stale_run_reaper sensor
# mark such runs failed and free their slots; the daemon also frees slots of finished runs after 60 s.
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
telemetry:
  enabled: false
"""
HEADER = DAGSTER_YAML.splitlines()[0]


def init_home(home: Home) -> Home:
    """Create the home directories and a dagster.yaml (a user's own is kept; one an older prefgate wrote is
    brought up to date)."""
    home.ensure()
    cfg = home.dagster_home / "dagster.yaml"
    if not cfg.exists() or (cfg.read_text().startswith(HEADER) and cfg.read_text() != DAGSTER_YAML):
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    return home


def land_folder(src: Path, home: Home) -> list[str]:
    """Copy files from a landing-shaped folder; files whose bytes are already there are not copied again."""
    copied = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        dest = home.landing / rel
        if dest.exists() and dest.read_bytes() == path.read_bytes():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        copied.append(rel.as_posix())
    return copied


def run_main(home: Home, sample: bool = True, train: bool = True, judges: list[str] | None = None) -> int:
    """Run ingest, each label batch present in landing/, then the refresh job; 0 when every run succeeded.

    One ``prefgate run`` at a time per home (a file lock the kernel drops if the process dies); before each job,
    runs left behind by a killed process are marked failed and their pool slots freed (pipelines.recovery).
    A failed job prints one line per failed step or check; every event with its stack trace goes to
    ``<home>/logs/run-<time>.log``.
    """
    init_home(home)
    with home_lock(home, "prefgate run"):
        return _run_locked(home, sample, train, judges)


def _run_locked(home: Home, sample: bool, train: bool, judges: list[str] | None) -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")  # model-loading bars would flood the run summary
    if sample:
        print(f"landing sample data: {len(land_folder(SAMPLE_LANDING, home))} new files -> {home.landing}")
    import datetime as dt

    import dagster as dg

    from assets.partitions import register_batches
    from pipelines.definitions import build_definitions
    from pipelines.recovery import describe, recover, worker_tags
    from pipelines.summary import failure_lines, write_log
    from prefgate.ingest.landing import batches, invalid_batches, unread_files

    defs = build_definitions(home)
    instance = dg.DagsterInstance.get()
    log_path = home.root / "logs" / f"run-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
    plan: list[tuple[str, str | None]] = [("ingest_job", None)]
    keys = sorted(set(batches(home.landing, "human_labels")) | set(batches(home.landing, "judge_labels")))
    plan += [("labels_job", k) for k in keys]
    register_batches(instance, keys)
    plan.append(("refresh_job", None))
    if train:
        plan.append(("train_job", None))
    from pipelines.resources import PrefgateResource

    for kind in ("human_labels", "judge_labels"):
        for _folder, reason in invalid_batches(home.landing, kind):
            print(f"warning: {reason}")
    for unread in unread_files(home.landing, PrefgateResource(home=str(home.root)).sources()):
        print(f"warning: landing/{unread.path}: {unread.reason}")
    labels_config = {"ops": {"judge_labels": {"config": {"judges": judges}}}} if judges is not None else {}
    ok = True
    for job_name, partition in plan:
        for line in describe(recover(instance)):
            print(line)
        t0 = time.perf_counter()
        run_config: dict[str, object] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
        if job_name == "labels_job":
            run_config |= labels_config
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            partition_key=partition,
            raise_on_error=False,
            run_config=run_config,
            tags={"prefgate/trigger": "prefgate run", **worker_tags()},
        )
        label = job_name + (f"[{partition}]" if partition else "")
        write_log(result, label, log_path)
        print(f"{label:<26} {'ok' if result.success else 'FAILED'}  {time.perf_counter() - t0:6.1f}s")
        problems = failure_lines(result)
        for line in problems:
            print(line)
        ok &= result.success and not any("blocking check" in line for line in problems)
        if job_name == "refresh_job":
            for ev in result.get_asset_check_evaluations():
                name = f"{ev.asset_key.to_user_string()}.{ev.check_name}"
                print(f"  check {name:<45} {'passed' if ev.passed else 'FAILED'}")
            done = {str(e.asset_key.to_user_string()) for e in result.get_asset_materialization_events() if e.asset_key}
            if "preference_set_export" not in done:
                print("  preference_set_export NOT written (see the failures above)")
        if job_name == "train_job":
            for e in result.get_asset_materialization_events():
                meta = e.materialization.metadata
                shown = {
                    k: getattr(meta[k], "value", meta[k]) for k in ("final_loss", "wall_time_s", "reused") if k in meta
                }
                if "headline" in meta:
                    shown = dict(meta["headline"].value)  # type: ignore[arg-type]
                print(f"  {e.asset_key.to_user_string() if e.asset_key else '?':<14} {shown}")
    print_tables(home)
    if not ok:
        print(f"full log with stack traces: {log_path}")
    print(f"exports: {home.exports}\nDagster UI: DAGSTER_HOME={home.dagster_home} dagster dev  (see README)")
    return 0 if ok else 1


@contextlib.contextmanager
def home_lock(home: Home, what: str) -> Iterator[None]:
    """Hold the home's run lock; wait (saying so, once) while another process holds it.

    An flock is dropped by the kernel when its holder dies, so a killed run never leaves it held. It also
    serialises two first runs on an empty home, which would otherwise race to create the instance's SQLite
    schema (``UNIQUE constraint failed: alembic_version``).
    """
    import fcntl

    path = home.root / ".run.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            print(f"waiting: {holder} holds {path}", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{what} (pid {os.getpid()})")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def register_landed_batches(home: Home) -> list[str]:
    """Make every batch folder in landing/ a partition of the label assets (the UI can then materialize it)."""
    import dagster as dg

    from assets.partitions import register_batches
    from prefgate.ingest.landing import batches

    keys = sorted(set(batches(home.landing, "human_labels")) | set(batches(home.landing, "judge_labels")))
    with dg.DagsterInstance.get() as instance:
        return register_batches(instance, keys)


def review_land(export: Path, batch: str, home: Home) -> int:
    """Land a Label Studio export: its tasks as pair keys (display order) and its annotations as human labels."""

    from prefgate.ingest.landing import is_batch_name
    from prefgate.labelstudio import land_labelstudio_export, land_review_tasks, read_export

    try:
        if not is_batch_name(batch):
            raise ValueError(f"--batch {batch!r} is not a batch date YYYY-MM-DD")
        tasks = read_export(export)
    except (ValueError, OSError) as exc:
        print(f"prefgate review land: {export}: {exc}", file=sys.stderr)
        return 2
    name = export.stem
    pairs_file = land_review_tasks([{"data": t["data"]} for t in tasks if "data" in t], home.landing, name)
    labels_file = land_labelstudio_export(export, home.landing, batch, name=name)
    register_landed_batches(home)
    print(f"landed pair keys: {pairs_file}")
    print(f"landed labels:    {labels_file or '(no annotations in the export)'}")
    print(f"next: prefgate run --no-sample   (or let landing_sensor run labels_job[{batch}])")
    return 0


def table_counts(home: Home) -> dict[str, int]:
    """Row count of every table in the warehouse."""
    import duckdb

    if not home.warehouse.exists():
        return {}
    con = duckdb.connect(str(home.warehouse))
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'prefgate' ORDER BY 1"
            ).fetchall()
        ]
        return {n: int(con.execute(f'SELECT count(*) FROM prefgate."{n}"').fetchone()[0]) for n in names}  # type: ignore[index]
    finally:
        con.close()


def print_tables(home: Home) -> None:
    for name, n in table_counts(home).items():
        print(f"  {name:<28} {n:>7}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefgate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="prefgate home (default: $PREFGATE_HOME or ./.prefgate)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the home and dagster.yaml")
    p_land = sub.add_parser("land", help="copy a landing-shaped folder into landing/")
    p_land.add_argument("folder", type=Path)
    p_run = sub.add_parser("run", help="run the main job on the landing folder")
    p_run.add_argument("--no-sample", action="store_true", help="do not land the bundled sample data first")
    p_run.add_argument("--no-train", action="store_true", help="stop after the gated export (no TRL training)")
    p_run.add_argument(
        "--judges",
        metavar="NAME[,NAME]|none",
        help="live judges for the label batches (names in config/judges.yaml), or 'none' to run no live judge "
        "(recorded verdicts still ingest); default: the judges file's default list",
    )
    sub.add_parser("tables", help="row counts of the warehouse tables")
    from prefgate import bench

    bench.add_arguments(sub.add_parser("bench", help="benchmark the governance pass against the reference libraries"))
    from prefgate.judges import command as judge_command

    judge_command.add_arguments(sub.add_parser("judge", help="run judges over response_pairs (both orders, cached)"))
    from prefgate.lineage import command as lineage_command

    lineage_command.add_arguments(
        sub.add_parser("lineage", help="row-level lineage: versions, models, raters, judges, examples, diff, retract")
    )
    from prefgate.report import command as report_command

    report_command.add_arguments(
        sub.add_parser("report", help="governance tables in the terminal: raters, judges, gates, set")
    )
    p_review = sub.add_parser("review", help="the human review loop (Label Studio)")
    review_sub = p_review.add_subparsers(dest="review_command", required=True)
    p_rl = review_sub.add_parser("land", help="land a Label Studio JSON export of review tasks as human labels")
    p_rl.add_argument("export", type=Path, help="Label Studio's JSON export (Export -> JSON)")
    p_rl.add_argument("--batch", required=True, help="label batch date YYYY-MM-DD (the labels_job partition)")
    from prefgate.ingest import check as sources_check

    p_sources = sub.add_parser("sources", help="the declared sources (config/sources.yaml)")
    sources_sub = p_sources.add_subparsers(dest="sources_command", required=True)
    sources_check.add_arguments(
        sources_sub.add_parser("check", help="dry-run the sources file against the landing folder (writes nothing)")
    )
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench.run_from_args(args)
    if args.home is not None:
        os.environ["PREFGATE_HOME"] = str(args.home.resolve())
    home = Home.from_env()
    if args.command == "init":
        init_home(home)
        print(f"home ready: {home.root}")
        return 0
    if args.command == "land":
        if not args.folder.is_dir():
            print(f"prefgate: {args.folder}: not a folder", file=sys.stderr)
            return 2
        copied = land_folder(args.folder, init_home(home))
        print(f"landed {len(copied)} files into {home.landing}")
        added = register_landed_batches(home)
        if added:
            print(f"new label batches (labels_job partitions): {', '.join(added)}")
        return 0
    if args.command == "run":
        judges = None
        if args.judges is not None:
            judges = [j.strip() for j in args.judges.split(",") if j.strip() and j.strip() != "none"]
            from prefgate.judges.registry import load_registry

            unknown = sorted(set(judges) - set(load_registry(None).specs))
            if unknown:
                print(f"prefgate run: --judges: unknown judge(s) {', '.join(unknown)} (see config/judges.yaml)")
                return 2
        return run_main(home, sample=not args.no_sample, train=not args.no_train, judges=judges)
    if args.command == "judge":
        return judge_command.main(args, home)
    if args.command == "lineage":
        return lineage_command.main(args, home)
    if args.command == "report":
        return report_command.main(args, home)
    if args.command == "review":
        return review_land(args.export, args.batch, init_home(home))
    if args.command == "sources":
        return sources_check.main(args, home)
    print_tables(home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
