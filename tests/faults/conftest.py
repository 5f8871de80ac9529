"""Fault-suite helpers: a real ``prefgate run`` subprocess on a temporary home, killed or fed hostile files, and
table digests to compare a recovered home with a clean one."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

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
            text = df.cast({c: pl.String for c in df.columns}).sort(df.columns, nulls_last=True).write_csv()
            out[name] = (df.height, hashlib.sha256(text.encode()).hexdigest()[:16])
        return out
    finally:
        con.close()


def wait_for_slot(home: Home, step: str, proc: subprocess.Popen[str], timeout: float = 600.0) -> None:
    """Block until ``step`` holds a slot of the 'duckdb' pool in the home's Dagster instance."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefgate ended (rc {proc.returncode}) before step {step} held the pool slot")
        if (home.dagster_home / "history").exists():
            with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
                storage = instance.event_log_storage
                if "duckdb" in storage.get_concurrency_keys():
                    info = storage.get_concurrency_info("duckdb")
                    if any(s.step_key == step for s in info.claimed_slots):
                        return
        time.sleep(0.5)
    pytest.fail(f"step {step} never held the duckdb slot within {timeout:.0f} s")


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dict[str, tuple[int, str]], Done]:
    """One clean main job on the sample (rules judge): the reference every recovered home must equal."""
    home = Home(tmp_path_factory.mktemp("clean") / "home")
    done = prefgate(home, *RUN, timeout=900)
    assert done.rc == 0, done.out[-3000:]
    return home, table_digests(home), done
