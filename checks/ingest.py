"""Blocking check on the union ``quarantine``: no landing file may lose more than the policy's share of its rows.

Checks name assets by key rather than importing asset modules, so imports stay one-way.
"""

import dagster as dg
import polars as pl

from pipelines.resources import SCHEMA, PrefgateResource
from prefgate.ingest.shares import (
    COUNT_SCHEMA,
    INGESTED,
    accepted_counts_sql,
    quarantine_shares,
    rejected_counts,
    share_sentence,
)


def _accepted_counts(prefgate: PrefgateResource) -> pl.DataFrame:
    frames = []
    for table in INGESTED:
        df = prefgate.query(accepted_counts_sql(table, SCHEMA))
        if df is not None:
            frames.append(df.cast(COUNT_SCHEMA))  # type: ignore[arg-type]
    return pl.concat(frames) if frames else pl.DataFrame(schema=COUNT_SCHEMA)


@dg.asset_check(
    asset="quarantine",
    blocking=True,
    description="Every landing file (and label batch file) quarantines at most ingest.max_quarantine_share of its "
    "rows; more is almost always a mapping error, named here with its numbers.",
)
def quarantine_share_at_most_max(prefgate: PrefgateResource, quarantine: pl.DataFrame) -> dg.AssetCheckResult:
    max_share = prefgate.policy().ingest.max_quarantine_share
    shares = quarantine_shares(_accepted_counts(prefgate), rejected_counts(quarantine), max_share)
    over = shares.filter(pl.col("over"))
    return dg.AssetCheckResult(
        passed=over.is_empty(),
        metadata={
            "reason": share_sentence(shares, max_share),
            "max_share": max_share,
            "files_checked": shares.height,
            "files_over": over.height,
            "worst_share": float(shares["share"].max() or 0.0),  # type: ignore[arg-type]
        },
    )


CHECKS = [quarantine_share_at_most_max]
