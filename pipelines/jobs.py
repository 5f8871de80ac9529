"""Jobs and the nightly schedule."""

from __future__ import annotations

import dagster as dg

from assets.partitions import batch_dates

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingest"),
    description="Prompts, response pairs and eval prompts from the landing folder.",
)
labels_job = dg.define_asset_job(
    "labels_job",
    selection=dg.AssetSelection.groups("labels"),
    partitions_def=batch_dates,
    description="One batch (date) of human and judge labels from the landing folder.",
)
refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.groups("audit", "curate"),
    description="Everything downstream of ingestion: quarantine, consensus, preference set, gates, export.",
)
train_job = dg.define_asset_job(
    "train_job",
    selection=dg.AssetSelection.groups("train"),
    description="Reward model and DPO policy from the gated export (refused when the current set failed its gates), "
    "then their evaluation.",
)
nightly_refresh = dg.ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-audit and re-curate every night at 02:00 UTC.",
)
