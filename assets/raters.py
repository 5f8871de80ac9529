"""Rater governance: one audit pass yields rater_quality and rater_drift, with blocking agreement gates."""

import dagster as dg
import polars as pl

from assets._meta import image, markdown_table
from pipelines.resources import PrefgateResource
from prefgate import plots
from prefgate.agreement import AgreementReport
from prefgate.governance import GATING_FLAGS, audit_raters
from prefgate.rater_quality import FLAGS

GROUP = "audit"


def _interval(rep: AgreementReport) -> str:
    if rep.alpha_low is None or rep.alpha_high is None:
        return rep.alpha_reason or "not computed"
    return f"[{rep.alpha_low:.3f}, {rep.alpha_high:.3f}] ({rep.ci_level:.0%}, {rep.n_boot} resamples)"


@dg.multi_asset(
    outs={
        "rater_quality": dg.AssetOut(
            group_name=GROUP,
            description="One row per rater: agreement, gold accuracy, position/tie bias, speed, drift, flags.",
        ),
        "rater_drift": dg.AssetOut(
            group_name=GROUP,
            description="Per rater per day agreement with consensus, with each rater's change test.",
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "alpha_at_least_min",
            asset="rater_quality",
            blocking=True,
            description="Krippendorff's alpha over all human labels reaches the policy minimum.",
        ),
        dg.AssetCheckSpec(
            "flagged_share_at_most_max",
            asset="rater_quality",
            blocking=True,
            description="The share of assessed raters with a gating flag stays under the maximum.",
        ),
    ],
    ins={"human_labels": dg.AssetIn("resolved_human_labels")},
    pool="duckdb",
)
def rater_audit(context: dg.AssetExecutionContext, prefgate: PrefgateResource, human_labels: pl.DataFrame):  # type: ignore[no-untyped-def]
    """Agreement, per-rater quality and flags, and drift, from every human label batch."""
    policy = prefgate.policy()
    audit = audit_raters(human_labels, policy)
    q, rep = audit.quality, audit.agreement
    flag_counts = {f: int(q[f].sum()) for f in FLAGS}
    worst = (
        q.filter(pl.col("assessed"))
        .sort("agreement", nulls_last=True)
        .head(10)
        .select("rater_id", "n_labels", "agreement", "first_share", "tie_rate", "flag_reasons")
    )
    flagged = q.filter(pl.any_horizontal(*GATING_FLAGS))
    yield dg.Output(
        q,
        "rater_quality",
        metadata={
            "dagster/row_count": q.height,
            "alpha": rep.alpha,
            "alpha_interval": _interval(rep),
            "percent_agreement": rep.percent_agreement,
            "alpha_by_source": markdown_table(audit.by_source),
            "flagged_raters_by_flag": dg.MetadataValue.json(flag_counts),
            "flagged_share": audit.flagged_share,
            "excluded_from_consensus": markdown_table(
                audit.excluded_raters.with_columns(pl.col("reasons").list.join(","))
            ),
            "worst_raters": markdown_table(worst),
            "agreement_distribution": image(plots.agreement_histogram(q), "per-rater agreement"),
        },
    )
    daily = audit.drift.rater_daily.join(
        audit.drift.rater_tests.select("rater_id", "change_day", "statistic", "detected"), on="rater_id", how="left"
    )
    yield dg.Output(
        daily,
        "rater_drift",
        metadata={
            "dagster/row_count": daily.height,
            "change_points": markdown_table(audit.drift.change_points),
            "population_drift": markdown_table(audit.drift.population_daily),
            "population_changes": markdown_table(audit.drift.population_changes),
            "drift_of_flagged_raters": image(
                plots.drift_chart(audit.drift.rater_daily, flagged["rater_id"].to_list()),
                "daily agreement of flagged raters",
            ),
            "rater_day_heatmap": image(plots.rater_day_heatmap(audit.drift.rater_daily), "rater x day agreement"),
        },
    )
    cfg = policy.agreement
    alpha_ok = rep.alpha is not None and rep.alpha >= cfg.min_alpha
    yield dg.AssetCheckResult(
        check_name="alpha_at_least_min",
        asset_key="rater_quality",
        passed=alpha_ok,
        metadata={
            "alpha": rep.alpha,
            "min_alpha": cfg.min_alpha,
            "alpha_low": rep.alpha_low,
            "alpha_high": rep.alpha_high,
            "reason": rep.alpha_reason or "",
        },
    )
    yield dg.AssetCheckResult(
        check_name="flagged_share_at_most_max",
        asset_key="rater_quality",
        passed=audit.flagged_share <= cfg.max_flagged_share,
        metadata={
            "flagged_share": audit.flagged_share,
            "max_flagged_share": cfg.max_flagged_share,
            "flagged": flagged.height,
            "assessed": int(q["assessed"].sum()),
        },
    )
