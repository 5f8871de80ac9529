"""Versioned lineage snapshots in the warehouse: one ``lineage.versions`` row per preference-set or model
version, and ``lineage.rows``, one row per (example, contributing label) of every retained preference-set version;
``lineage.pairs`` and ``lineage.labels`` hold the pairs and labels that existed upstream of a version, so a diff can
tell a label that arrived or left upstream from one a retraction or an exclusion took out of consensus.

A preference-set version's id is the content hash of the set plus its policy hash, so recording the same set
twice is a no-op and a rerun that changes nothing adds nothing. A model version points at the preference-set
version it was trained on (``parent_version``); such versions are never pruned by retention, so a model can always
be traced back to its rows. The caller passes a short-lived DuckDB connection: the warehouse has one writer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from prefgate.ids import content_hash

SCHEMA = "lineage"
PS_PREFIX = "ps-"
MODEL_PREFIX = "model-"

ROW_COLUMNS: dict[str, pl.DataType] = {
    "version_id": pl.String(),
    "example_id": pl.String(),
    "pair_id": pl.String(),
    "prompt_id": pl.String(),
    "label_origin": pl.String(),
    "label_id": pl.String(),
    "rater_id": pl.String(),
    "judge_id": pl.String(),
    "constitution_hash": pl.String(),
    "prompt_source": pl.String(),
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "pair_source_file": pl.String(),
    "pair_source_line": pl.Int64(),
    "language": pl.String(),
    "category": pl.String(),
    "split": pl.String(),
    "chosen_side": pl.String(),
}
PROVENANCE_COLUMNS = [c for c in ROW_COLUMNS if c != "version_id"]

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.versions (
    version_id VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL,
    kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    code_version VARCHAR,
    policy_hash VARCHAR,
    constitution_hashes VARCHAR,
    upstream VARCHAR,
    gates VARCHAR,
    parent_version VARCHAR,
    manifest VARCHAR,
    retained BOOLEAN NOT NULL,
    n_examples BIGINT,
    n_labels BIGINT
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.rows (
    version_id VARCHAR NOT NULL, example_id VARCHAR NOT NULL, pair_id VARCHAR NOT NULL, prompt_id VARCHAR,
    label_origin VARCHAR, label_id VARCHAR, rater_id VARCHAR, judge_id VARCHAR, constitution_hash VARCHAR,
    prompt_source VARCHAR, source_file VARCHAR, source_line BIGINT, pair_source_file VARCHAR,
    pair_source_line BIGINT, language VARCHAR, category VARCHAR, split VARCHAR, chosen_side VARCHAR
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.pairs (version_id VARCHAR NOT NULL, pair_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.labels (
    version_id VARCHAR NOT NULL, pair_id VARCHAR NOT NULL, label_id VARCHAR NOT NULL, rater_id VARCHAR,
    judge_id VARCHAR
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``lineage`` schema and its tables (idempotent)."""
    con.execute(DDL)


def has_lineage(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse holds a ``lineage.versions`` table."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'versions'", [SCHEMA]
    ).fetchone()
    return bool(row and row[0])


# --------------------------------------------------------------------------------------------------- hashing


def frame_hash(df: pl.DataFrame) -> str:
    """Content hash of a frame: its column names and rows (sorted, so row order does not matter)."""
    h = hashlib.sha256(json.dumps(df.columns).encode())
    if df.height:
        lines = df.select(pl.struct(pl.all()).struct.json_encode().alias("j")).to_series().sort()
        h.update("\n".join(lines.to_list()).encode())
    return h.hexdigest()[:16]


def code_version() -> str:
    """Hash of the prefgate package's source files: changes whenever the library code does."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_manifest(
    *,
    upstream: Mapping[str, pl.DataFrame],
    policy_hash: str,
    policy_version: str | None = None,
    constitution_hashes: Sequence[str] = (),
    gates: Mapping[str, Any] | None = None,
    retractions: Mapping[str, Any] | None = None,
    code_version_: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of one version: upstream table hashes and row counts, policy and constitution hashes, the
    gate results, the retractions in force and the code version, plus ``extra``. JSON-ready.

    ``extra={"excluded_raters": [...]}`` (the rater ids the consensus left out) lets a diff blame a lost label on
    its rater's exclusion."""
    return {
        "code_version": code_version_ or code_version(),
        "policy_hash": policy_hash,
        "policy_version": policy_version,
        "constitution_hashes": sorted(set(constitution_hashes)),
        "upstream": {name: {"hash": frame_hash(df), "rows": df.height} for name, df in sorted(upstream.items())},
        "gates": dict(gates or {}),
        "retractions": dict(retractions or {}),
        **dict(extra or {}),
    }


# ------------------------------------------------------------------------------------------------ provenance


def _list_col(df: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name) if name in df.columns else pl.lit([], dtype=pl.List(pl.String)).alias(name)


def provenance_rows(
    preference_set: pl.DataFrame,
    human_labels: pl.DataFrame,
    judge_labels: pl.DataFrame,
    response_pairs: pl.DataFrame,
) -> pl.DataFrame:
    """One row per (example, contributing label): the set's ``label_ids`` (human) and ``judge_label_ids`` lists
    exploded and joined to the label tables for rater / judge, constitution hash and the label's landing file and
    line, and to ``response_pairs`` for the pair's landing file and line and its source. An example without any
    contributing label keeps one row with null label columns, so every example is present."""
    base = preference_set.select(
        "example_id",
        "pair_id",
        "prompt_id",
        "language",
        "category",
        "split",
        "chosen_side",
        _list_col(preference_set, "label_ids"),
        _list_col(preference_set, "judge_label_ids"),
    )
    human = (
        base.select("example_id", pl.col("label_ids").alias("label_id"))
        .explode("label_id")
        .drop_nulls("label_id")
        .join(
            human_labels.select("label_id", "rater_id", "source_file", "source_line"),
            on="label_id",
            how="left",
        )
        .with_columns(
            pl.lit("human").alias("label_origin"),
            pl.lit(None, pl.String).alias("judge_id"),
            pl.lit(None, pl.String).alias("constitution_hash"),
        )
    )
    judge = (
        base.select("example_id", pl.col("judge_label_ids").alias("label_id"))
        .explode("label_id")
        .drop_nulls("label_id")
        .join(
            judge_labels.select("label_id", "judge_id", "constitution_hash", "source_file", "source_line"),
            on="label_id",
            how="left",
        )
        .with_columns(pl.lit("judge").alias("label_origin"), pl.lit(None, pl.String).alias("rater_id"))
    )
    cols = ["example_id", "label_origin", "label_id", "rater_id", "judge_id", "constitution_hash"]
    cols += ["source_file", "source_line"]
    labels = pl.concat([human.select(cols), judge.select(cols)], how="vertical_relaxed")
    pairs = response_pairs.select(
        "pair_id",
        pl.col("source").alias("prompt_source"),
        pl.col("source_file").alias("pair_source_file"),
        pl.col("source_line").alias("pair_source_line"),
    )
    out = (
        base.drop("label_ids", "judge_label_ids")
        .join(labels, on="example_id", how="left")
        .join(pairs, on="pair_id", how="left")
    )
    schema = {k: v for k, v in ROW_COLUMNS.items() if k != "version_id"}
    return out.select(pl.col(c).cast(t) for c, t in schema.items()).sort("example_id", "label_origin", "label_id")


# ------------------------------------------------------------------------------------------------- recording


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _next_seq(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {SCHEMA}.versions").fetchone()
    return int(row[0]) if row else 1


def preference_set_version_id(preference_set: pl.DataFrame, policy_hash: str) -> str:
    """``ps-`` + content hash of the set and the policy hash."""
    return PS_PREFIX + content_hash("preference_set", frame_hash(preference_set), policy_hash)


def _policy_hash_of(preference_set: pl.DataFrame, manifest: Mapping[str, Any]) -> str:
    if manifest.get("policy_hash"):
        return str(manifest["policy_hash"])
    if "policy_hash" in preference_set.columns and preference_set.height:
        hashes = preference_set["policy_hash"].unique().sort().to_list()
        return ",".join(str(h) for h in hashes)
    return ""


def _insert_rows(con: duckdb.DuckDBPyConnection, version_id: str, provenance: pl.DataFrame) -> None:
    frame = provenance.select(
        pl.lit(version_id).alias("version_id"), *(pl.col(c).cast(ROW_COLUMNS[c]) for c in PROVENANCE_COLUMNS)
    )
    con.register("_lineage_rows", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {SCHEMA}.rows SELECT * FROM _lineage_rows")
    finally:
        con.unregister("_lineage_rows")


def _insert_pairs(con: duckdb.DuckDBPyConnection, version_id: str, pair_ids: pl.Series) -> None:
    frame = pl.DataFrame({"pair_id": pair_ids.unique().sort()}).select(
        pl.lit(version_id).alias("version_id"), pl.col("pair_id").cast(pl.String)
    )
    con.register("_lineage_pairs", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {SCHEMA}.pairs SELECT * FROM _lineage_pairs")
    finally:
        con.unregister("_lineage_pairs")


def upstream_labels(human_labels: pl.DataFrame | None, judge_labels: pl.DataFrame | None) -> pl.DataFrame:
    """One row per upstream label: ``pair_id``, ``label_id`` and its ``rater_id`` (human) or ``judge_id``."""
    empty = pl.lit(None, pl.String)
    parts = [
        frame.select(
            pl.col("pair_id").cast(pl.String),
            pl.col("label_id").cast(pl.String),
            (pl.col("rater_id").cast(pl.String) if who == "rater_id" else empty).alias("rater_id"),
            (pl.col("judge_id").cast(pl.String) if who == "judge_id" else empty).alias("judge_id"),
        )
        for frame, who in ((human_labels, "rater_id"), (judge_labels, "judge_id"))
        if frame is not None
    ]
    schema = {c: pl.String for c in ("pair_id", "label_id", "rater_id", "judge_id")}
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=schema)


def _insert_labels(con: duckdb.DuckDBPyConnection, version_id: str, labels: pl.DataFrame) -> None:
    frame = labels.unique("label_id").sort("label_id").select(pl.lit(version_id).alias("version_id"), pl.all())
    con.register("_lineage_labels", frame.to_arrow())
    try:
        con.execute(
            f"INSERT INTO {SCHEMA}.labels SELECT version_id, pair_id, label_id, rater_id, judge_id FROM _lineage_labels"
        )
    finally:
        con.unregister("_lineage_labels")


def record_preference_set(
    con: duckdb.DuckDBPyConnection,
    preference_set: pl.DataFrame,
    provenance: pl.DataFrame,
    manifest: Mapping[str, Any],
    *,
    run_id: str | None,
    retention: int | None = None,
    name: str = "preference_set",
    response_pairs: pl.DataFrame | None = None,
    human_labels: pl.DataFrame | None = None,
    judge_labels: pl.DataFrame | None = None,
) -> str:
    """Record one preference-set version and its provenance rows; returns its version id.

    Idempotent: a set already recorded (same content, same policy) only gets its rows back if retention had
    pruned them. ``retention`` keeps the rows of the newest N preference-set versions (plus every version a
    model was trained on); ``None`` keeps all. ``response_pairs``, when given, records which pairs existed
    upstream, so a diff can tell "pair removed upstream" apart from a pair the gates dropped. ``human_labels`` /
    ``judge_labels`` (the upstream label tables, before retractions and exclusions) record which labels existed,
    so a diff can tell "new labels" apart from a pair that changed because a rater was retracted or excluded.
    """
    ensure_schema(con)
    policy_hash = _policy_hash_of(preference_set, manifest)
    version_id = preference_set_version_id(preference_set, policy_hash)
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(f"SELECT retained FROM {SCHEMA}.versions WHERE version_id = ?", [version_id]).fetchone()
        if row is None:
            n_labels = int(provenance["label_id"].drop_nulls().n_unique()) if provenance.height else 0
            con.execute(
                f"INSERT INTO {SCHEMA}.versions VALUES (?, ?, 'preference_set', ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, "
                "TRUE, ?, ?)",
                [
                    version_id,
                    _next_seq(con),
                    name,
                    _now(),
                    run_id,
                    manifest.get("code_version"),
                    policy_hash,
                    json.dumps(sorted(manifest.get("constitution_hashes", []))),
                    json.dumps(manifest.get("upstream", {}), sort_keys=True),
                    json.dumps(manifest.get("gates", {}), sort_keys=True, default=str),
                    json.dumps(dict(manifest), sort_keys=True, default=str),
                    preference_set.height,
                    n_labels,
                ],
            )
        if row is None or not row[0]:
            con.execute(f"DELETE FROM {SCHEMA}.rows WHERE version_id = ?", [version_id])
            con.execute(f"DELETE FROM {SCHEMA}.pairs WHERE version_id = ?", [version_id])
            con.execute(f"DELETE FROM {SCHEMA}.labels WHERE version_id = ?", [version_id])
            _insert_rows(con, version_id, provenance)
            if response_pairs is not None:
                _insert_pairs(con, version_id, response_pairs["pair_id"])
            if human_labels is not None or judge_labels is not None:
                _insert_labels(con, version_id, upstream_labels(human_labels, judge_labels))
            con.execute(f"UPDATE {SCHEMA}.versions SET retained = TRUE WHERE version_id = ?", [version_id])
        if retention is not None:
            apply_retention(con, retention, keep=version_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return version_id


def update_gates(con: duckdb.DuckDBPyConnection, version_id: str, gates: Mapping[str, Any]) -> None:
    """Merge gate results (e.g. the blocking checks, evaluated after the asset) into a recorded version."""
    row = con.execute(f"SELECT gates FROM {SCHEMA}.versions WHERE version_id = ?", [version_id]).fetchone()
    if row is None:
        raise KeyError(f"unknown lineage version {version_id!r}")
    merged = {**json.loads(row[0] or "{}"), **dict(gates)}
    con.execute(
        f"UPDATE {SCHEMA}.versions SET gates = ? WHERE version_id = ?",
        [json.dumps(merged, sort_keys=True, default=str), version_id],
    )


def record_model(
    con: duckdb.DuckDBPyConnection,
    name: str,
    parent_version: str,
    manifest: Mapping[str, Any],
    run_id: str | None,
) -> str:
    """Record a trained model trained on ``parent_version`` (a preference-set version); returns its version id.

    The id is the hash of the name, the parent and the manifest, so recording the same training twice is a
    no-op. The parent's rows are pinned: retention never prunes a version a model was trained on. The model's
    gate results are the parent's (read at query time, so checks recorded later count) plus ``manifest["gates"]``.
    """
    ensure_schema(con)
    parent = con.execute(
        f"SELECT policy_hash, constitution_hashes FROM {SCHEMA}.versions "
        "WHERE version_id = ? AND kind = 'preference_set'",
        [parent_version],
    ).fetchone()
    if parent is None:
        raise KeyError(f"unknown preference-set version {parent_version!r}")
    body = json.dumps(dict(manifest), sort_keys=True, default=str)
    version_id = MODEL_PREFIX + content_hash("model", name, parent_version, body)
    if con.execute(f"SELECT 1 FROM {SCHEMA}.versions WHERE version_id = ?", [version_id]).fetchone():
        return version_id
    gates = manifest.get("gates")
    con.execute(
        f"INSERT INTO {SCHEMA}.versions VALUES (?, ?, 'model', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, TRUE, NULL, NULL)",
        [
            version_id,
            _next_seq(con),
            name,
            _now(),
            run_id,
            manifest.get("code_version"),
            parent[0],
            parent[1],
            json.dumps(manifest.get("upstream", {}), sort_keys=True),
            json.dumps(gates, sort_keys=True, default=str) if gates is not None else None,
            parent_version,
            body,
        ],
    )
    return version_id


def apply_retention(con: duckdb.DuckDBPyConnection, keep_last: int, *, keep: str | None = None) -> list[str]:
    """Drop the rows of all but the newest ``keep_last`` preference-set versions, sparing those a model was
    trained on (and ``keep``); their ``versions`` rows stay, marked ``retained = false``. Returns the pruned ids."""
    if keep_last < 0:
        raise ValueError(f"retention must be >= 0, got {keep_last}")
    pruned = [
        r[0]
        for r in con.execute(
            f"""
            SELECT version_id FROM (
                SELECT version_id, row_number() OVER (ORDER BY seq DESC) AS rank
                FROM {SCHEMA}.versions WHERE kind = 'preference_set'
            ) v
            WHERE rank > ? AND version_id IS DISTINCT FROM ?
              AND version_id IN (SELECT version_id FROM {SCHEMA}.versions WHERE retained)
              AND version_id NOT IN (
                  SELECT parent_version FROM {SCHEMA}.versions WHERE kind = 'model' AND parent_version IS NOT NULL)
            ORDER BY version_id
            """,
            [keep_last, keep],
        ).fetchall()
    ]
    for vid in pruned:
        con.execute(f"DELETE FROM {SCHEMA}.rows WHERE version_id = ?", [vid])
        con.execute(f"DELETE FROM {SCHEMA}.pairs WHERE version_id = ?", [vid])
        con.execute(f"DELETE FROM {SCHEMA}.labels WHERE version_id = ?", [vid])
        con.execute(f"UPDATE {SCHEMA}.versions SET retained = FALSE WHERE version_id = ?", [vid])
    return pruned
