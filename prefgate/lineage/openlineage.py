"""OpenLineage events for recorded lineage versions, so a lineage service (Marquez, DataHub, ...) can ingest them.

Each preference-set or model version becomes one OpenLineage run of the job named after its asset: a START and a
COMPLETE ``RunEvent`` in namespace ``prefgate``, with the upstream warehouse tables as inputs (``prefgate.<table>``,
versioned by their manifest hash and row count) and the asset as output (``prefgate.<name>``, versioned by the
lineage version id, with its column schema). The COMPLETE event carries the whole prefgate manifest in a custom run
facet, ``prefgate_version``, so the service keeps upstream hashes, policy and gate results beside the run.

Events go through the OpenLineage client (so a user's ``openlineage.yml`` filters and tags apply) to its
``FileTransport`` in append mode: one JSON object per line in the file ``PREFGATE_OPENLINEAGE_FILE`` names, which
a shipper (or ``curl`` per line) posts to ``/api/v1/lineage``. The client is an optional dependency: it is imported
only when a target is set, so nothing changes for a user who does not ask for events.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

NAMESPACE = "prefgate"
ENV_VAR = "PREFGATE_OPENLINEAGE_FILE"
FACET_KEY = "prefgate_version"
FACET_SCHEMA_URL = (
    "https://prefgate.dev/schemas/openlineage/PrefgateVersionRunFacet.json#/$defs/PrefgateVersionRunFacet"
)
# uuid5 namespace for OpenLineage run ids: uuid5(NAMESPACE_URL, "https://prefgate.dev/openlineage").
RUN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://prefgate.dev/openlineage")

Kind = Literal["preference_set", "model"]

# JSON schema of the custom run facet (the document FACET_SCHEMA_URL names), for consumers and for the tests.
FACET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": FACET_SCHEMA_URL.split("#")[0],
    "$defs": {
        "PrefgateVersionRunFacet": {
            "type": "object",
            "description": "A prefgate lineage version (lineage.versions row) and its manifest.",
            "required": ["_producer", "_schemaURL", "kind", "name", "versionId", "manifest"],
            "properties": {
                "_producer": {"type": "string", "format": "uri"},
                "_schemaURL": {"type": "string", "format": "uri"},
                "kind": {"enum": ["preference_set", "model"]},
                "name": {"type": "string"},
                "versionId": {"type": "string"},
                "dagsterRunId": {"type": "string"},
                "manifest": {"type": "object"},
            },
        }
    },
}


def target_from_env() -> Path | None:
    """The JSON-lines file named by ``PREFGATE_OPENLINEAGE_FILE``, or ``None`` when unset or empty (no events)."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def producer() -> str:
    """URI identifying prefgate (and its version) as the producer of the events and facets."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("prefgate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        v = "dev"
    return f"https://prefgate.dev/openlineage/{v}"


def openlineage_run_id(name: str, version_id: str, run_id: str | None) -> str:
    """The OpenLineage run id of one recorded version: a UUIDv5 of the asset name, the version id and the
    orchestrator run id. One Dagster run (a UUID) materialises several assets, and OpenLineage wants one run id per
    job run, so the Dagster run id is not reused as is; deriving it keeps a re-emission of the same version in the
    same run on the same OpenLineage run."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{name}\x1f{version_id}\x1f{run_id or ''}"))


def dataset_name(table: str) -> str:
    """The OpenLineage dataset name of a warehouse table (or model asset): ``prefgate.<table>``."""
    return f"{NAMESPACE}.{table}"


@functools.cache
def _facet_class() -> type[Any]:
    """The custom run facet, a subclass of the client's ``RunFacet`` (built lazily: the client is optional)."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class PrefgateVersionRunFacet(RunFacet):
        """A prefgate lineage version: kind, asset name, version id, the Dagster run id and the manifest."""

        kind: str
        name: str
        versionId: str  # noqa: N815 - OpenLineage facet fields are camelCase
        manifest: dict[str, Any]
        dagsterRunId: str | None = attr.field(default=None)  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return PrefgateVersionRunFacet


def _aware(t: dt.datetime) -> dt.datetime:
    """``t`` with a time zone (naive means UTC, as the warehouse stores it): the spec wants an RFC 3339 offset."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _json_ready(value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of a manifest (dates, paths and other objects as strings)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(value), sort_keys=True, default=str))
    return out


def _input_version(kind: Kind, table: str, manifest: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """(dataset version, row count) of an input: the manifest's upstream hash and rows; for a model, the
    preference-set version it was trained on."""
    up = (manifest.get("upstream") or {}).get(table)
    if isinstance(up, Mapping):
        rows = up.get("rows")
        return (str(up["hash"]) if up.get("hash") else None, int(rows) if rows is not None else None)
    if kind == "model" and manifest.get("dataset_lineage_version"):
        return str(manifest["dataset_lineage_version"]), None
    return None, None


def build_events(
    kind: Kind,
    name: str,
    version_id: str,
    manifest: Mapping[str, Any],
    run_id: str | None,
    inputs: Sequence[str],
    output_columns: Mapping[str, object] | None,
    *,
    started_at: dt.datetime | None = None,
    ended_at: dt.datetime | None = None,
) -> list[Any]:
    """The START and COMPLETE ``RunEvent`` objects of one version (see the module docstring)."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        input_statistics_input_dataset,
        job_type_job,
        schema_dataset,
    )

    if kind not in ("preference_set", "model"):
        raise ValueError(f"kind must be 'preference_set' or 'model', got {kind!r}")
    prod = producer()
    end = _aware(ended_at or dt.datetime.now(dt.UTC))
    start = _aware(started_at) if started_at else end
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="PREFGATE", jobType="ASSET", producer=prod
        )
    }
    job = Job(namespace=NAMESPACE, name=name, facets=job_facets)
    ins = []
    for table in inputs:
        version, rows = _input_version(kind, table, manifest)
        facets: dict[str, Any] = {}
        input_facets: dict[str, Any] = {}
        if version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=prod
            )
        if rows is not None:
            input_facets["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=rows, producer=prod
            )
        ins.append(InputDataset(namespace=NAMESPACE, name=dataset_name(table), facets=facets, inputFacets=input_facets))
    out_facets: dict[str, Any] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version_id, producer=prod)
    }
    if output_columns:
        fields = [
            schema_dataset.SchemaDatasetFacetFields(name=col, type=str(dtype), ordinal_position=i)
            for i, (col, dtype) in enumerate(output_columns.items(), start=1)
        ]
        out_facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields, producer=prod)
    outs = [OutputDataset(namespace=NAMESPACE, name=dataset_name(name), facets=out_facets)]
    ol_run = openlineage_run_id(name, version_id, run_id)
    facet = _facet_class()(
        kind=kind,
        name=name,
        versionId=version_id,
        manifest=_json_ready(manifest),
        dagsterRunId=run_id,
        producer=prod,
    )
    return [
        RunEvent(
            eventType=RunState.START,
            eventTime=start.isoformat(),
            run=Run(runId=ol_run),
            job=job,
            inputs=ins,
            outputs=outs,
            producer=prod,
        ),
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=end.isoformat(),
            run=Run(runId=ol_run, facets={FACET_KEY: facet}),
            job=job,
            inputs=ins,
            outputs=outs,
            producer=prod,
        ),
    ]


def emit_version(
    kind: Kind,
    name: str,
    version_id: str,
    manifest: Mapping[str, Any],
    run_id: str | None,
    inputs: Sequence[str],
    output_columns: Mapping[str, object] | None,
    *,
    target: str | Path | None,
    started_at: dt.datetime | None = None,
) -> int:
    """Append the START and COMPLETE events of one recorded version to ``target`` (a JSON-lines file) through the
    OpenLineage client's ``FileTransport``; returns the number of events written (0, doing nothing, when
    ``target`` is ``None``). ``inputs`` are the upstream table names, ``output_columns`` the output's column
    name -> type (e.g. ``dict(frame.schema)``), ``started_at`` the run's start (defaults to now). Returns 0 too
    when ``OPENLINEAGE_DISABLED=true``; events a user's OpenLineage config filters out are not counted."""
    if target is None:
        return 0
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    events = build_events(kind, name, version_id, manifest, run_id, inputs, output_columns, started_at=started_at)
    client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))
    if client.transport.kind != FileTransport.kind:  # OPENLINEAGE_DISABLED=true: the client emits nothing
        return 0
    sent = [e for e in events if client.filter_event(e) is not None]  # the user's openlineage.yml filters
    for event in sent:
        client.emit(event)
    return len(sent)


__all__ = [
    "ENV_VAR",
    "FACET_KEY",
    "FACET_SCHEMA",
    "NAMESPACE",
    "Kind",
    "build_events",
    "dataset_name",
    "emit_version",
    "openlineage_run_id",
    "target_from_env",
]
