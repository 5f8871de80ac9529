"""Heal a Dagster home after a crash: runs whose process is gone are marked failed and their pool slots freed.

A SIGKILLed run never writes its end event, so the instance keeps it STARTED and keeps the step's slot in the
``duckdb`` pool (limit 1): every later run then waits for that slot forever. Dagster's own run monitoring cannot
tell here (the default run launcher has no worker health check, and ``execute_in_process`` has no daemon), so
prefgate records the worker's pid and host on every run it starts and checks them:

* a run in STARTING/STARTED/CANCELING whose worker process no longer exists on this host (or whose pid now
  belongs to a process started after the run) is reported failed, with a message saying so;
* every pool slot or pending step held by a run that is finished, failed or unknown is freed.

Pids come from the run's ``prefgate/pid`` tag (``prefgate run``) or from Dagster's "Started process for run"
engine event (runs launched from the UI). Runs on another host, or with no known pid, are left alone. Called by
``prefgate run`` before each job and by the ``stale_run_reaper`` sensor, so a UI home heals with no operator step.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import FINISHED_STATUSES, DagsterRunStatus, RunsFilter

PID_TAG = "prefgate/pid"
HOST_TAG = "prefgate/host"
ACTIVE = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def worker_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this process (the run's worker) is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


@dataclass(frozen=True)
class Recovered:
    """One repair: a dead run marked failed, or slots freed for a run that no longer runs."""

    run_id: str
    job_name: str
    action: str  # "marked_failed" | "freed_slots"
    detail: str


def _process_alive(pid: int, started_at: float | None) -> bool:
    """Whether ``pid`` is a live process that existed when the run started (pid reuse counts as dead)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    return started_at is None or created <= started_at + 2.0


def _worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The run worker's pid on this host: our tag, else Dagster's engine event; None if unknown or remote."""
    tags = run.tags
    if PID_TAG in tags:
        return int(tags[PID_TAG]) if tags.get(HOST_TAG) == socket.gethostname() else None
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=50).records
    for rec in records:
        event = rec.event_log_entry.dagster_event
        data = event.engine_event_data if event is not None else None
        if data is not None and data.metadata and "pid" in data.metadata:
            value = data.metadata["pid"]
            return int(getattr(value, "value", value))  # type: ignore[arg-type]
    return None


def recover(instance: dg.DagsterInstance) -> list[Recovered]:
    """Mark dead runs failed and free every slot held by a run that is not running; returns what was done."""
    done: list[Recovered] = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=ACTIVE)):
        run = record.dagster_run
        pid = _worker_pid(instance, run)
        if pid is None:
            continue
        started = record.start_time or record.create_timestamp.timestamp()
        if _process_alive(pid, started):
            continue
        msg = (
            f"prefgate: the process running this run (pid {pid}) is gone -- killed or crashed; "
            "run marked failed and its pool slots freed so later runs can proceed"
        )
        instance.report_run_failed(run, message=msg)
        done.append(Recovered(run.run_id, run.job_name, "marked_failed", f"worker pid {pid} not running"))
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return done
    holders: dict[str, set[str]] = {}
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        for slot in info.claimed_slots:
            holders.setdefault(slot.run_id, set()).add(slot.step_key)
        for step in info.pending_steps:
            holders.setdefault(step.run_id, set()).add(step.step_key)
    for run_id, steps in sorted(holders.items()):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status not in FINISHED_STATUSES:
            continue
        storage.free_concurrency_slots_for_run(run_id)
        state = "unknown" if run is None else run.status.value
        job = "?" if run is None else run.job_name
        done.append(Recovered(run_id, job, "freed_slots", f"run is {state}; steps {', '.join(sorted(steps))}"))
    return done


def describe(items: list[Recovered]) -> list[str]:
    """One line per repair, for the CLI and the sensor log."""
    return [
        f"recovered run {r.run_id[:8]} ({r.job_name}): "
        + ("marked failed, " if r.action == "marked_failed" else "freed its pool slots, ")
        + r.detail
        for r in items
    ]
