"""Fault-suite helpers: a real ``prefgate run`` subprocess on a temporary home, killed or fed hostile files, and
table digests to compare a recovered home with a clean one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest

from prefgate.home import PROJECT_ROOT, Home

PREFGATE = [sys.executable, "-m", "prefgate.cli"]
# The main job with the programmatic judge only: the language-model judges have their own tests, and a fault test
# is about what the pipeline does around them.
RUN = ["run", "--no-train", "--judges", "rules"]
# Columns that legitimately differ between two clean runs (run ids, wall clocks).
VOLATILE = ("run_id", "created_at", "recorded_at", "materialized_at", "started_at", "ended_at", "timestamp")


@dataclass
class Done:
    """A finished ``prefgate`` command: exit code, combined output, wall time."""

    rc: int
    out: str
    seconds: float


def env_for(home: Home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PREFGATE_POLICY", "PREFGATE_SOURCES")}
    env |= {"PREFGATE_HOME": str(home.root), "TQDM_DISABLE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    return env


def start(home: Home, *args: str) -> subprocess.Popen[str]:
    """Start ``prefgate ARGS`` in its own process group (so it can be killed with everything it started)."""
    return subprocess.Popen(
        [*PREFGATE, *args],
        cwd=PROJECT_ROOT,
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def prefgate(home: Home, *args: str, timeout: float = 600.0) -> Done:
    """Run ``prefgate ARGS`` to completion under a time limit (the test fails, naming the limit, past it)."""
    t0 = time.perf_counter()
    proc = start(home, *args)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        out = proc.stdout.read() if proc.stdout else ""
        pytest.fail(f"prefgate {' '.join(args)} did not finish within {timeout:.0f} s:\n{out[-3000:]}")
    return Done(proc.returncode, out, time.perf_counter() - t0)


def table_digests(home: Home) -> dict[str, tuple[int, str]]:
    """table -> (rows, sha256 of its sorted content without volatile columns), for every warehouse table."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'prefgate'"
            ).fetchall()
        ]
        out = {}
        for name in sorted(names):
            df = con.execute(f'SELECT * FROM prefgate."{name}"').pl()
            df = df.select([c for c in df.columns if not any(v in c for v in VOLATILE)])
            rows = (
                df.select(pl.struct(pl.all()).struct.json_encode().alias("r"))["r"].sort().to_list() if df.width else []
            )
            out[name] = (df.height, hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
        return out
    finally:
        con.close()


def _sqlite_hit(db: Path, query: str, params: list[str]) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)) as con:
            return con.execute(query, params).fetchone() is not None
    except sqlite3.OperationalError:  # not created yet, or the writer holds a lock: look again
        return False


def wait_for_step(home: Home, step: str, proc: subprocess.Popen[str], timeout: float = 600.0) -> str:
    """Block until ``step`` runs: holds a slot of the 'duckdb' pool, or (a step outside the pool) has started.

    Reads the instance's SQLite files read-only every 20 ms (some steps last under half a second; opening a
    DagsterInstance per poll would be too slow and would contend for SQLite's write lock). Returns how it knew.
    """
    runs = home.dagster_home / "history" / "runs"
    slot = "SELECT 1 FROM concurrency_slots WHERE concurrency_key = 'duckdb' AND step_key = ? AND NOT deleted"
    started = "SELECT 1 FROM event_logs WHERE dagster_event_type = 'STEP_START' AND step_key = ?"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefgate ended (rc {proc.returncode}) before step {step} ran")
        if _sqlite_hit(runs / "index.db", slot, [step]):
            return "holds the duckdb slot"
        for db in runs.glob("*.db") if runs.is_dir() else []:
            if db.name != "index.db" and _sqlite_hit(db, started, [step]):
                return "started"
        time.sleep(0.02)
    pytest.fail(f"step {step} never ran within {timeout:.0f} s")


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dict[str, tuple[int, str]], Done]:
    """One clean main job on the sample (rules judge): the reference every recovered home must equal."""
    home = Home(tmp_path_factory.mktemp("clean") / "home")
    done = prefgate(home, *RUN, timeout=900)
    assert done.rc == 0, done.out[-3000:]
    return home, table_digests(home), done
