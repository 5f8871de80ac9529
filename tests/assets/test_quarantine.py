"""Every kind of bad landing row ends in quarantine with file, line, field and reason; nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from prefgate.home import Home
from tests.conftest import read_table, run_job

TOOL_SOURCE = """
  - name: tool
    kind: human_labels
    pairs_from: llmfao
    glob: "human_labels/*/tool-*.jsonl"
    columns: {pair_key: pair, rater_id: rater, choice: verdict, seconds: secs, label_key: id}
    choices: {A: first, B: second, same: tie}
    shown_first: first
"""
BATCH = "2026-11-20"


@pytest.fixture
def ingested(sample_home: Home, sources_copy: Path) -> tuple[dg.Definitions, dg.DagsterInstance, Home]:
    sources_copy.write_text(sources_copy.read_text() + TOOL_SOURCE)
    defs = build_definitions(sample_home, sources_path=str(sources_copy))
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    return defs, instance, sample_home


def test_each_kind_of_bad_label_row_is_quarantined(ingested: tuple[dg.Definitions, dg.DagsterInstance, Home]) -> None:
    defs, instance, home = ingested
    k1, k2 = read_table(home, "pair_keys").filter(pl.col("source") == "llmfao")["source_key"].sort()[:2].to_list()
    good = {"id": "l1", "pair": k1, "rater": "r1", "verdict": "A", "secs": 12}
    lines = [
        json.dumps(good),
        json.dumps({"id": "l2", "pair": k1, "verdict": "A"}),  # missing field
        json.dumps({"id": "l3", "pair": k1, "rater": "r1", "verdict": "C"}),  # invalid choice
        json.dumps({"id": "l4", "pair": "no-such-pair", "rater": "r1", "verdict": "A"}),  # unknown pair
        json.dumps({"id": "l1", "pair": k2, "rater": "r2", "verdict": "B"}),  # duplicate label id
        '{"id": "l6", "pair": ',  # malformed JSON
        json.dumps({"id": "l7", "pair": k2, "rater": "r1", "verdict": "A", "secs": "fast"}),  # wrong type
        json.dumps({"id": "l8", "pair": k2, "rater": {"name": "x"}, "verdict": "B"}),  # non-scalar
        json.dumps({"id": "l9", "pair": k2, "rater": "r3", "verdict": "same", "secs": 4.5}),
    ]
    folder = home.landing / "human_labels" / BATCH
    folder.mkdir(parents=True)
    (folder / "tool-export.jsonl").write_text("\n".join(lines) + "\n")
    result = run_job(defs, instance, "labels_job", BATCH)

    labels = read_table(home, "human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 20))
    q = read_table(home, "quarantine_human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 20))
    assert sorted(labels["rater_id"].to_list()) == ["tool:r1", "tool:r3"]
    assert labels.filter(pl.col("rater_id") == "tool:r3")["seconds"].to_list() == [4.5]
    got = {(r["line"], r["field"]) for r in q.iter_rows(named=True)}
    assert got == {
        (2, "rater_id"),
        (3, "choice"),
        (4, "pair_key"),
        (5, "label_id"),
        (6, "<line>"),
        (7, "seconds"),
        (8, "rater_id"),
    }
    reasons = dict(zip(q["line"], q["reason"], strict=True))
    assert reasons[2] == "missing required field 'rater_id'"
    assert reasons[3].startswith("invalid choice 'C'")
    assert reasons[4].startswith("unknown pair: no pair 'no-such-pair'")
    assert reasons[5].startswith("duplicate label: already ingested at human_labels/2026-11-20/tool-export.jsonl:1")
    assert reasons[6].startswith("malformed JSON")
    assert reasons[7] == "field 'seconds': expected a number, got 'fast'"
    assert "expected a scalar, got dict" in reasons[8]
    assert set(q["source_file"]) == {"human_labels/2026-11-20/tool-export.jsonl"}
    assert q.filter(pl.col("line") == 6)["raw"].item().startswith('{"id": "l6"')
    meta = {
        k: v.value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("human_labels")
        for k, v in e.materialization.metadata.items()
    }
    assert (meta["rows_read"], meta["rows_accepted"], meta["rows_quarantined"]) == (9, 2, 7)
    assert meta["counts_reconcile"] is True
    # the union table downstream carries them too (only one small batch: the empty preference set fails its
    # not_empty gate, which is right and does not stop the quarantine table)
    run_job(defs, instance, "refresh_job", ok=False)
    union = read_table(home, "quarantine").filter(pl.col("source") == "tool")
    assert union.height == 7 and set(union["table"]) == {"human_labels"}


def test_unreadable_file_fails_the_run_naming_the_file(
    ingested: tuple[dg.Definitions, dg.DagsterInstance, Home],
) -> None:
    defs, instance, home = ingested
    folder = home.landing / "human_labels" / BATCH
    folder.mkdir(parents=True)
    (folder / "pandalm-annotators-broken.parquet").write_bytes(b"PAR1 this is not parquet")
    result = run_job(defs, instance, "labels_job", BATCH, ok=False)
    messages = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "pandalm-annotators-broken.parquet: cannot read Parquet file" in messages


def test_undeclared_file_fails_the_run_naming_the_file(
    ingested: tuple[dg.Definitions, dg.DagsterInstance, Home],
) -> None:
    defs, instance, home = ingested
    folder = home.landing / "judge_labels" / BATCH
    folder.mkdir(parents=True)
    (folder / "mystery.csv").write_text("a,b\n1,2\n")
    result = run_job(defs, instance, "labels_job", BATCH, ok=False)
    messages = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "judge_labels/2026-11-20/mystery.csv: no judge_labels source" in messages
