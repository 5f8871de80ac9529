"""A SIGKILLed ``prefgate run`` must not wedge the home: the next run finds the dead run, marks it failed, frees
its pool slot, finishes under a time limit, and leaves tables equal to a clean run's."""

from __future__ import annotations

import os
import signal
import time

import dagster as dg
import pytest

from prefgate.home import Home
from tests.faults.conftest import RUN, Done, prefgate, start, table_digests, wait_for_step

RERUN_LIMIT_S = 420.0


@pytest.mark.parametrize("step", ["judge_labels", "preference_set", "preference_set_export"])
def test_kill_during_step_then_rerun_recovers(
    tmp_path, clean_run: tuple[Home, dict[str, tuple[int, str]], Done], step: str
) -> None:
    _, clean, _ = clean_run
    home = Home(tmp_path / "home")
    proc = start(home, *RUN)
    how = wait_for_step(home, step, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        stuck = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert len(stuck) == 1, "the killed run should be left STARTED (what a crash leaves behind)"
        held = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
        if how == "holds the duckdb slot":
            assert [s.step_key for s in held] == [step]  # the wedge: a dead run keeps the only slot
        dead_run = stuck[0].dagster_run.run_id

    t0 = time.perf_counter()
    rerun = prefgate(home, *RUN, timeout=RERUN_LIMIT_S)
    print(f"rerun after SIGKILL during {step}: {time.perf_counter() - t0:.1f} s")
    assert rerun.rc == 0, rerun.out[-3000:]
    assert f"recovered run {dead_run[:8]}" in rerun.out, rerun.out[-3000:]
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        run = instance.get_run_by_id(dead_run)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots == []
    assert table_digests(home) == clean


def test_second_run_waits_for_the_first_and_both_succeed(tmp_path) -> None:
    """Two first runs at once on an empty home: the second waits on the home lock (no SQLite schema race)."""
    home = Home(tmp_path / "home")
    a = start(home, "run", "--no-train", "--judges", "none")
    b = start(home, "run", "--no-train", "--judges", "none")
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, out_a[-2000:] + out_b[-2000:]
    assert "UNIQUE constraint failed" not in out_a + out_b
    assert "waiting:" in out_a + out_b
