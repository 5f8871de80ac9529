"""Blocking checks on ``rater_quality``: inter-rater agreement and the flagged share, each one sentence.

Declared on their own (not inside the rater-audit multi-asset) so the UI can execute them alone; they compute
from the standing labels and the latest ``rater_quality``, never from the Dagster instance.
"""

import dagster as dg
import polars as pl

from pipelines.resources import PrefgateResource
from prefgate.gold import split_gold
from prefgate.rater_gates import GateResult, alpha_gate, flagged_share_gate

ASSET = "rater_quality"


def _result(gate: GateResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=gate.passed,
        description=gate.sentence,
        metadata={"reason": gate.sentence, **gate.values},
    )


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    additional_ins={"labels": dg.AssetIn("resolved_human_labels")},
    description="Krippendorff's alpha (nominal) over every standing human label reaches agreement.min_alpha.",
)
def alpha_at_least_min(prefgate: PrefgateResource, labels: pl.DataFrame) -> dg.AssetCheckResult:
    cfg = prefgate.policy().agreement
    panel, gold = split_gold(labels, prefgate.gold_sources())  # reference labels are not a panel: no agreement
    return _result(alpha_gate(panel, cfg.min_alpha, cfg.on_undefined.alpha, reference_labels=gold.height))


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    description="The share of assessed raters with a gating flag (spammer, biased, too_fast, drifting) stays at "
    "or under agreement.max_flagged_share.",
)
def flagged_share_at_most_max(prefgate: PrefgateResource, rater_quality: pl.DataFrame) -> dg.AssetCheckResult:
    cfg = prefgate.policy().agreement
    return _result(flagged_share_gate(rater_quality, cfg.max_flagged_share, cfg.on_undefined.flagged))


CHECKS = [alpha_at_least_min, flagged_share_at_most_max]
