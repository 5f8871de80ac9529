"""Ingest group: prompts, response pairs and eval prompts from the landing folder, with their quarantines."""

import dagster as dg
import polars as pl

from assets._meta import ingest_metadata, output
from pipelines.resources import SCHEMA, PrefgateResource
from prefgate import schemas
from prefgate.ingest.landing import land, unread_files
from prefgate.ingest.tables import build_pairs, build_prompts, quarantine_frame

GROUP = "ingest"
POOL = "duckdb"


def known_files(prefgate: PrefgateResource, table: str) -> dict[str, str]:
    """Files this table already holds rows of (path -> sha256): read first, so an original row keeps its place."""
    df = prefgate.query(f"SELECT DISTINCT source_file, file_sha256 FROM {SCHEMA}.{table}")
    return {} if df is None else dict(zip(df["source_file"], df["file_sha256"], strict=True))


def _quarantine_out(table: str) -> dg.AssetOut:
    return dg.AssetOut(
        key=f"quarantine_{table}",
        group_name=GROUP,
        io_manager_key="io_manager",
        description=f"Rows of {table}'s landing files that were rejected, with file, line, field and reason.",
    )


@dg.multi_asset(
    outs={
        "raw_prompts": dg.AssetOut(group_name=GROUP, description="Prompts from landing/prompts, one per text."),
        "quarantine_raw_prompts": _quarantine_out("raw_prompts"),
    },
    pool=POOL,
)
def raw_prompts(context: dg.AssetExecutionContext, prefgate: PrefgateResource):  # type: ignore[no-untyped-def]
    """Read every prompt file in the landing folder through its declared source mapping."""
    specs = prefgate.sources()
    landed = land(prefgate.paths.landing, specs, "prompts", known_files=known_files(prefgate, "raw_prompts"))
    built = build_prompts(landed.files, "prompts")
    quarantine = quarantine_frame("raw_prompts", built.rejected)
    table = schemas.validate(schemas.RawPrompts, built.table)
    unread = unread_files(prefgate.paths.landing, specs)
    for u in unread:
        context.log.warning(f"landing/{u.path}: {u.reason}")
    meta = ingest_metadata(built, landed, quarantine, prefgate.paths.landing)
    meta["unread_landing_files"] = dg.MetadataValue.json([{"file": u.path, "reason": u.reason} for u in unread])
    meta["unread_landing_file_count"] = len(unread)
    yield output(table, "raw_prompts", metadata=meta)
    yield output(quarantine, "quarantine_raw_prompts", metadata={"dagster/row_count": quarantine.height})


@dg.multi_asset(
    outs={
        "response_pairs": dg.AssetOut(
            group_name=GROUP, description="Response pairs in canonical a/b order with content-hash ids."
        ),
        "pair_keys": dg.AssetOut(
            group_name=GROUP, description="Every (source, key) a pair arrived under, and the side listed first."
        ),
        "quarantine_response_pairs": _quarantine_out("response_pairs"),
    },
    ins={"raw_prompts": dg.AssetIn()},
    pool=POOL,
)
def response_pairs(  # type: ignore[no-untyped-def]
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, raw_prompts: pl.DataFrame
):
    """Read pair files; fill a pair's category and language from raw_prompts where the pair lacks them."""
    landed = land(
        prefgate.paths.landing, prefgate.sources(), "pairs", known_files=known_files(prefgate, "response_pairs")
    )
    built, keys = build_pairs(landed.files)
    known = raw_prompts.select("prompt_id", pl.col("category").alias("_c"), pl.col("language").alias("_l"))
    table = (
        built.table.join(known, on="prompt_id", how="left")
        .with_columns(pl.coalesce("category", "_c").alias("category"), pl.coalesce("language", "_l").alias("language"))
        .drop("_c", "_l")
    )
    table = schemas.validate(schemas.ResponsePairs, table)
    quarantine = quarantine_frame("response_pairs", built.rejected)
    meta = ingest_metadata(built, landed, quarantine, prefgate.paths.landing)
    yield output(table, "response_pairs", metadata=meta)
    yield output(schemas.validate(schemas.PairKeys, keys), "pair_keys", metadata={"dagster/row_count": keys.height})
    yield output(quarantine, "quarantine_response_pairs", metadata={"dagster/row_count": quarantine.height})


@dg.multi_asset(
    outs={
        "eval_prompts": dg.AssetOut(
            group_name=GROUP, description="Eval and adversarial prompts that must never appear in training."
        ),
        "quarantine_eval_prompts": _quarantine_out("eval_prompts"),
    },
    pool=POOL,
)
def eval_prompts(context: dg.AssetExecutionContext, prefgate: PrefgateResource):  # type: ignore[no-untyped-def]
    """Read eval / red-team prompt sets (landing/eval) used to decontaminate the preference set."""
    landed = land(
        prefgate.paths.landing, prefgate.sources(), "eval_prompts", known_files=known_files(prefgate, "eval_prompts")
    )
    built = build_prompts(landed.files, "eval_prompts")
    quarantine = quarantine_frame("eval_prompts", built.rejected)
    table = schemas.validate(schemas.EvalPrompts, built.table)
    yield output(table, "eval_prompts", metadata=ingest_metadata(built, landed, quarantine, prefgate.paths.landing))
    yield output(quarantine, "quarantine_eval_prompts", metadata={"dagster/row_count": quarantine.height})
