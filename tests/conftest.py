"""Shared fixtures: a temporary prefgate home with the bundled sample landed, and a helper to run jobs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from prefgate.cli import SAMPLE_LANDING, land_folder
from prefgate.home import PROJECT_ROOT, Home

RunJob = Callable[..., dg.ExecuteInProcessResult]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """An empty prefgate home in a temporary directory."""
    return Home(tmp_path / "home").ensure()


@pytest.fixture
def sample_home(home: Home) -> Home:
    """A home whose landing folder holds the bundled sample data."""
    land_folder(SAMPLE_LANDING, home)
    return home


@pytest.fixture
def sources_copy(tmp_path: Path) -> Path:
    """A writable copy of the sources file, for tests that declare extra sources."""
    dest = tmp_path / "sources.yaml"
    shutil.copy(PROJECT_ROOT / "config" / "sources.yaml", dest)
    return dest


# Live judges in asset tests: the programmatic one (fast, no model); the language-model judges have their own
# integration tests and run in the main job.
RULES_ONLY = {"ops": {"judge_labels": {"config": {"judges": ["rules"]}}}}


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    name: str,
    partition: str | None = None,
    ok: bool | None = True,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute one job in process; assert its success (or failure) unless ``ok`` is None."""
    if run_config is None and name == "labels_job":
        run_config = RULES_ONLY
    if partition is not None:  # batches are dynamic partitions: prefgate run and the sensor add them first
        from assets.partitions import register_batches

        register_batches(instance, [partition])
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False, run_config=run_config or {}
    )
    if ok is not None:
        assert result.success is ok, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    return result


def read_table(home: Home, name: str) -> pl.DataFrame:
    """A whole warehouse table (schema prefgate), read through a short-lived connection."""
    con = duckdb.connect(str(home.warehouse))
    try:
        return con.execute(f"SELECT * FROM prefgate.{name}").pl()
    finally:
        con.close()
