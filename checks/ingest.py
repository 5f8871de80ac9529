"""Blocking check on the union ``quarantine``: no landing file may lose more than the policy's share of its rows.

Checks name assets by key rather than importing asset modules, so imports stay one-way.
"""

import dagster as dg
import polars as pl

from pipelines.resources import SCHEMA, PrefgateResource
from prefgate.ingest.shares import accepted_counts, share_gate


@dg.asset_check(
    asset="quarantine",
    blocking=True,
    description="Every landing file (and label batch file) quarantines at most ingest.max_quarantine_share of its "
    "rows; more is almost always a mapping error, named here with its numbers.",
)
def quarantine_share_at_most_max(prefgate: PrefgateResource, quarantine: pl.DataFrame) -> dg.AssetCheckResult:
    max_share = prefgate.policy().ingest.max_quarantine_share
    gate = share_gate(accepted_counts(lambda _table, sql: prefgate.query(sql), SCHEMA), quarantine, max_share)
    return dg.AssetCheckResult(
        passed=gate.passed,
        metadata={
            "reason": gate.sentence,
            "max_share": max_share,
            "files_checked": gate.shares.height,
            "files_over": gate.over.height,
            "worst_share": gate.worst,
        },
    )


CHECKS = [quarantine_share_at_most_max]
