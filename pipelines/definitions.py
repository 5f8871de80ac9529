"""The code location: assets, checks, jobs, schedule, sensor and resources for one prefgate home."""

from __future__ import annotations

import os

import dagster as dg

from assets import audit, calibrate, curate, ingest, labels, raters, train
from checks.ingest import CHECKS as INGEST_CHECKS
from checks.preference_set import CHECKS
from checks.raters import CHECKS as RATER_CHECKS
from pipelines.io import WarehouseIOManager
from pipelines.jobs import ingest_job, labels_job, nightly_refresh, refresh_job, train_job
from pipelines.resources import SCHEMA, PrefgateResource
from pipelines.sensors import gated_export_automation, landing_sensor, stale_run_reaper
from prefgate.home import Home


def build_definitions(
    home: Home | None = None, sources_path: str | None = None, policy_path: str | None = None
) -> dg.Definitions:
    """Definitions bound to a home directory (``PREFGATE_HOME`` or the project-local default).

    ``sources_path`` / ``policy_path`` override the config files (else ``PREFGATE_SOURCES`` / ``PREFGATE_POLICY``,
    else ``config/``).
    """
    home = (home or Home.from_env()).ensure()
    files = {
        key: value
        for key, value in (
            ("sources_path", sources_path or os.environ.get("PREFGATE_SOURCES")),
            ("policy_path", policy_path or os.environ.get("PREFGATE_POLICY")),
        )
        if value
    }
    return dg.Definitions(
        assets=dg.load_assets_from_modules([ingest, labels, raters, audit, calibrate, curate, train]),
        asset_checks=[*INGEST_CHECKS, *RATER_CHECKS, *CHECKS],
        jobs=[ingest_job, labels_job, refresh_job, train_job],
        schedules=[nightly_refresh],
        sensors=[landing_sensor, gated_export_automation, stale_run_reaper],
        resources={
            "io_manager": WarehouseIOManager(database=str(home.warehouse), schema=SCHEMA),
            "prefgate": PrefgateResource(home=str(home.root), **files),
        },
        # One process per run: steps share the DuckDB file without lock contention and skip ~3 s of
        # per-step process start-up; runs are serialised by the instance's run queue (see dagster.yaml).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
