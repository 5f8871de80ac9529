"""Files dropped again: a copy under a new name, an exact duplicate label in a new file, a rerun with nothing new.
The original rows keep their place and provenance; nothing is counted twice; reruns change nothing."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import polars as pl

from pipelines.definitions import build_definitions
from prefgate.home import Home
from tests.conftest import read_table, run_job
from tests.faults.conftest import table_digests

BATCH = "2026-11-02"


def _latest_meta(instance: dg.DagsterInstance, asset: str, key: str) -> object:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    value = event.asset_materialization.metadata[key]
    return getattr(value, "value", value)


def test_same_bytes_under_a_new_name_keep_the_original_provenance(sample_home: Home) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    before = read_table(sample_home, "response_pairs").select("pair_id", "source_file", "source_line")
    src = sample_home.landing / "pairs" / "llmfao-pairs.jsonl"
    copy = sample_home.landing / "pairs" / "llmfao-pairs-0copy.jsonl"  # sorts first, and is newer
    shutil.copy(src, copy)
    os.utime(copy, (src.stat().st_mtime + 60, src.stat().st_mtime + 60))
    run_job(defs, instance, "ingest_job")
    after = read_table(sample_home, "response_pairs").select("pair_id", "source_file", "source_line")
    assert after.sort("pair_id").equals(before.sort("pair_id"))
    skipped = _latest_meta(instance, "response_pairs", "skipped_duplicate_files")
    assert skipped == [{"file": "pairs/llmfao-pairs-0copy.jsonl", "same_bytes_as": "pairs/llmfao-pairs.jsonl"}]


def test_exact_duplicate_label_in_a_new_file_quarantines_the_new_row(sample_home: Home) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    run_job(defs, instance, "labels_job", BATCH)
    folder = sample_home.landing / "human_labels" / BATCH
    original = folder / "llmfao-crowd.csv"
    header, first = original.read_text().splitlines()[:2]
    newer = folder / "llmfao-crowd-0again.csv"  # sorts before the original
    newer.write_text(f"{header}\n{first}\n")
    os.utime(newer, (original.stat().st_mtime + 60, original.stat().st_mtime + 60))
    before = read_table(sample_home, "human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 2))
    run_job(defs, instance, "labels_job", BATCH)
    after = read_table(sample_home, "human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 2))
    assert (
        after.select("label_id", "source_file", "source_line")
        .sort("label_id")
        .equals(before.select("label_id", "source_file", "source_line").sort("label_id"))
    )
    q = read_table(sample_home, "quarantine_human_labels").filter(
        pl.col("source_file") == f"human_labels/{BATCH}/llmfao-crowd-0again.csv"
    )
    assert q.height == 1 and q["reason"].item().startswith(
        f"duplicate label: already ingested at human_labels/{BATCH}/llmfao-crowd.csv:2"
    )


def test_rerun_with_nothing_new_changes_no_table(sample_home: Home) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    run_job(defs, instance, "labels_job", BATCH)
    first = table_digests(sample_home)
    run_job(defs, instance, "ingest_job")
    run_job(defs, instance, "labels_job", BATCH)
    assert table_digests(sample_home) == first
