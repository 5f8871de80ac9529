"""OpenLineage events of recorded lineage versions (prefgate.lineage.openlineage), written through the client's
FileTransport into a temp JSON-lines file and read back as plain JSON."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import jsonschema
import polars as pl
import pytest

from prefgate.lineage import build_manifest, frame_hash, provenance_rows, record_model, record_preference_set
from prefgate.lineage.openlineage import (
    ENV_VAR,
    FACET_KEY,
    FACET_SCHEMA,
    Kind,
    build_events,
    emit_version,
    openlineage_run_id,
    target_from_env,
)
from tests.unit import lineage_data as data

Serde = pytest.importorskip("openlineage.client.serde", reason="openlineage-python (dev extra) not installed").Serde

DAGSTER_RUN = "0b9d2f4e-5c1a-4e8b-9a37-2f6c1d0e7a11"
AT = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
UPSTREAM = ["response_pairs", "human_labels", "judge_labels"]

# The client ships no JSON schema file, so this transcribes what OpenLineage spec 2-0-2 (OpenLineage.json,
# RunEvent/BaseEvent/Run/Job/Dataset/BaseFacet) requires of an event; formats are checked separately below.
_FACET = {"type": "object", "required": ["_producer", "_schemaURL"]}
_FACETS = {"type": "object", "additionalProperties": _FACET}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS},
}
SPEC_2_0_2_RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string"},
        "producer": {"type": "string"},
        "schemaURL": {"type": "string"},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS},
        },
        "inputs": {
            "type": "array",
            "items": {"allOf": [_DATASET, {"properties": {"inputFacets": _FACETS}}]},
        },
        "outputs": {
            "type": "array",
            "items": {"allOf": [_DATASET, {"properties": {"outputFacets": _FACETS}}]},
        },
    },
}


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield c
    c.close()


@pytest.fixture
def recorded(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """A preference-set version and a model trained on it, recorded in the lineage store as the assets do."""
    pairs = data.response_pairs(["p1", "p2", "p3", "p4", "p5"])
    human, judges = data.human_labels(pairs), data.judge_labels(pairs)
    kept = data.preference_set(pairs, human, judges)
    upstream = {"response_pairs": pairs, "human_labels": human, "judge_labels": judges}
    manifest = build_manifest(
        upstream=upstream,
        policy_hash="policy0000000001",
        policy_version="1",
        constitution_hashes=[data.CONSTITUTION],
        gates={"schema": {"passed": True}},
        extra={"run_id": DAGSTER_RUN, "content_hash": frame_hash(kept), "recorded_at": AT},
    )
    version = record_preference_set(
        con, kept, provenance_rows(kept, human, judges, pairs), manifest, run_id=DAGSTER_RUN
    )
    model_manifest = {"dataset_content_hash": frame_hash(kept), "dataset_lineage_version": version, "gates": {}}
    model = record_model(con, "reward_model", version, model_manifest, DAGSTER_RUN)
    return {
        "kept": kept,
        "upstream": upstream,
        "manifest": manifest,
        "version": version,
        "model": model,
        "model_manifest": model_manifest,
    }


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_formats(event: dict[str, Any]) -> None:
    """The spec's formats: RFC 3339 eventTime with an offset, URI producer and schema URLs on every facet."""
    assert dt.datetime.fromisoformat(event["eventTime"]).tzinfo is not None
    assert urlparse(event["producer"]).scheme == "https"
    assert urlparse(event["schemaURL"]).fragment == "/$defs/RunEvent"
    facets = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for ds in [*event["inputs"], *event["outputs"]]:
        facets += [*ds.get("facets", {}).values(), *ds.get("inputFacets", {}).values()]
        facets += ds.get("outputFacets", {}).values()
    assert facets
    for facet in facets:
        assert urlparse(facet["_producer"]).scheme == "https"
        assert urlparse(facet["_schemaURL"]).scheme == "https"


def test_no_target_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert target_from_env() is None
    monkeypatch.setenv(ENV_VAR, "  ")
    assert target_from_env() is None
    n = emit_version("model", "reward_model", "model-x", {}, DAGSTER_RUN, ["preference_set"], None, target=None)
    assert n == 0
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "ol" / "events.jsonl"))
    assert target_from_env() == tmp_path / "ol" / "events.jsonl"


def test_preference_set_events(recorded: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "ol" / "events.jsonl"  # parent folder is created
    kept: pl.DataFrame = recorded["kept"]
    manifest = recorded["manifest"]
    n = emit_version(
        "preference_set",
        "preference_set",
        recorded["version"],
        manifest,
        DAGSTER_RUN,
        UPSTREAM,
        dict(kept.schema),
        target=target,
        started_at=AT.replace(tzinfo=None),
    )
    events = _lines(target)
    assert n == len(events) == 2
    start, complete = events
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["eventTime"] == "2026-11-27T09:00:00+00:00"  # naive start read as UTC
    assert dt.datetime.fromisoformat(complete["eventTime"]) >= AT
    # one OpenLineage run per (asset, version, Dagster run): a UUID, shared by both events, not the Dagster id
    run_id = start["run"]["runId"]
    assert run_id == complete["run"]["runId"] == openlineage_run_id("preference_set", recorded["version"], DAGSTER_RUN)
    assert uuid.UUID(run_id).version == 5 and run_id != DAGSTER_RUN
    for event in events:
        jsonschema.validate(event, SPEC_2_0_2_RUN_EVENT, format_checker=jsonschema.FormatChecker())
        _check_formats(event)
        assert event["job"]["namespace"] == "prefgate" and event["job"]["name"] == "preference_set"
        assert [d["name"] for d in event["inputs"]] == [f"prefgate.{t}" for t in UPSTREAM]
        assert {d["namespace"] for d in event["inputs"] + event["outputs"]} == {"prefgate"}
        for ds in event["inputs"]:
            table = ds["name"].removeprefix("prefgate.")
            assert ds["facets"]["version"]["datasetVersion"] == frame_hash(recorded["upstream"][table])
            assert ds["inputFacets"]["inputStatistics"]["rowCount"] == recorded["upstream"][table].height
        [out] = event["outputs"]
        assert out["name"] == "prefgate.preference_set"
        assert out["facets"]["version"]["datasetVersion"] == recorded["version"]
        fields = out["facets"]["schema"]["fields"]
        assert [(f["name"], f["type"], f["ordinal_position"]) for f in fields] == [
            (c, str(t), i) for i, (c, t) in enumerate(kept.schema.items(), start=1)
        ]
    assert FACET_KEY not in start["run"].get("facets", {})
    facet = complete["run"]["facets"][FACET_KEY]
    jsonschema.validate(facet, FACET_SCHEMA["$defs"]["PrefgateVersionRunFacet"])
    assert facet["_schemaURL"].startswith(FACET_SCHEMA["$id"] + "#/$defs/")
    assert (facet["kind"], facet["name"], facet["versionId"]) == (
        "preference_set",
        "preference_set",
        recorded["version"],
    )
    assert facet["dagsterRunId"] == DAGSTER_RUN
    assert facet["manifest"]["upstream"] == manifest["upstream"]
    assert {t: v["hash"] for t, v in facet["manifest"]["upstream"].items()} == {
        t: frame_hash(df) for t, df in recorded["upstream"].items()
    }
    assert facet["manifest"]["policy_hash"] == "policy0000000001"
    assert facet["manifest"]["recorded_at"] == str(AT)  # non-JSON values travel as strings


def test_model_events_append_and_link_to_the_preference_set(recorded: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    runs: list[tuple[Kind, str, str, dict[str, Any], list[str]]] = [
        ("preference_set", "preference_set", recorded["version"], recorded["manifest"], UPSTREAM),
        ("model", "reward_model", recorded["model"], recorded["model_manifest"], ["preference_set"]),
    ]
    for kind, name, version, manifest, inputs in runs:
        assert emit_version(kind, name, version, manifest, DAGSTER_RUN, inputs, None, target=target) == 2
    events = _lines(target)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("preference_set", "START"),
        ("preference_set", "COMPLETE"),
        ("reward_model", "START"),
        ("reward_model", "COMPLETE"),
    ]
    ps_out = events[1]["outputs"][0]
    model = events[3]
    # the model's input is the preference set's output dataset, at the version the model was trained on
    [model_in] = model["inputs"]
    assert (model_in["namespace"], model_in["name"]) == (ps_out["namespace"], ps_out["name"])
    assert model_in["facets"]["version"]["datasetVersion"] == ps_out["facets"]["version"]["datasetVersion"]
    assert model["outputs"][0]["name"] == "prefgate.reward_model"
    assert "schema" not in model["outputs"][0]["facets"]
    assert events[0]["run"]["runId"] != model["run"]["runId"]  # same Dagster run, two OpenLineage runs
    facet = model["run"]["facets"][FACET_KEY]
    assert facet["kind"] == "model" and facet["versionId"] == recorded["model"]
    assert facet["manifest"]["dataset_lineage_version"] == recorded["version"]
    for event in events:
        jsonschema.validate(event, SPEC_2_0_2_RUN_EVENT, format_checker=jsonschema.FormatChecker())


def test_events_round_trip_through_the_client_serde(recorded: dict[str, Any], tmp_path: Path) -> None:
    """What the file holds is exactly the client's own serialisation of the event objects (plus the client's
    version tag), and the custom facet is a subclass of the client's RunFacet."""
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.facet_v2 import RunFacet

    ps: Kind = "preference_set"
    args = (ps, "preference_set", recorded["version"], recorded["manifest"], DAGSTER_RUN, UPSTREAM)
    events = build_events(*args, dict(recorded["kept"].schema), started_at=AT, ended_at=AT)
    assert all(isinstance(e, RunEvent) for e in events)
    assert isinstance(events[1].run.facets[FACET_KEY], RunFacet)
    target = tmp_path / "events.jsonl"
    emit_version(*args, dict(recorded["kept"].schema), target=target, started_at=AT)
    written = _lines(target)
    for obj, line in zip(events, written, strict=True):
        expected = json.loads(Serde.to_json(obj))
        line["run"].get("facets", {}).pop("tags", None)  # the client's own openlineage_client_version tag
        line["eventTime"] = expected["eventTime"]  # COMPLETE is stamped at emission time
        if not line["run"].get("facets"):
            line["run"].pop("facets", None)
            expected["run"].pop("facets", None)
        assert line == expected


def test_disabled_client_and_bad_kind(
    recorded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert emit_version("model", "m", "model-1", {}, None, [], None, target=target) == 0
    assert not target.exists()
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    with pytest.raises(ValueError, match="kind"):
        emit_version("dataset", "m", "v", {}, None, [], None, target=target)  # type: ignore[arg-type]
    # without a Dagster run id the run id is still a stable UUID
    assert openlineage_run_id("m", "v", None) == openlineage_run_id("m", "v", None)
    assert uuid.UUID(openlineage_run_id("m", "v", None))
