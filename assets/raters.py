"""Rater governance: one audit pass yields rater_quality and rater_drift, with blocking agreement gates."""

import dagster as dg
import polars as pl

from assets._meta import chart, headline, output, table, table_entries
from pipelines.resources import PrefgateResource
from prefgate import plots
from prefgate.agreement import AgreementReport
from prefgate.drift import DriftReport, DriftThresholds
from prefgate.gold import gold_verdicts, split_gold
from prefgate.governance import GATING_FLAGS, audit_raters
from prefgate.rater_quality import FLAGS, RaterThresholds

GROUP = "audit"


def _interval(rep: AgreementReport) -> str:
    if rep.alpha_low is None or rep.alpha_high is None:
        return rep.alpha_reason or "not computed"
    return f"[{rep.alpha_low:.3f}, {rep.alpha_high:.3f}] ({rep.ci_level:.0%}, {rep.n_boot} resamples)"


def drift_empty_reasons(drift: DriftReport, th: DriftThresholds) -> dict[str, str]:
    """Why ``change_points`` and ``population_changes`` are empty, in words with the numbers and the policy keys
    (``raters.drift_thresholds.*``) that decide it; only meaningful for the empty ones."""
    days = drift.population_daily.height
    span = f"the labels span {days} day{'s' if days != 1 else ''}"
    tested = drift.rater_tests.filter(pl.col("statistic").is_not_null())
    need = 2 * th.min_side_days
    if tested.height == 0 and days < need:
        change = (
            f"no change test: {span}, fewer than the {need} a test needs ({th.min_side_days} days with labels on "
            f"each side of a change, raters.drift_thresholds.min_side_days)"
        )
    elif tested.height == 0:
        change = (
            f"no change test: {span}, but no rater has {th.min_side_days} days and {th.min_side_labels} scored "
            f"labels on each side of any day (raters.drift_thresholds.min_side_days, min_side_labels)"
        )
    else:
        change = (
            f"no change detected: {tested.height} of {drift.rater_tests.height} raters tested over {days} days; "
            f"none fell by {th.min_drop} or more with a statistic of {th.z} or more (raters.drift_thresholds."
            f"min_drop, z); the largest statistic was {tested['statistic'].max():.2f}"
        )
    pop = drift.population_daily
    judged = pop.filter(pl.col("n_labels") >= th.min_day_labels)
    parts = []
    if days <= th.reference_days:
        parts.append(
            f"{span}, all inside the {th.reference_days}-day reference window (raters.drift_thresholds."
            f"reference_days), so each day is compared with a reference that contains it"
        )
    if judged.height < days:
        parts.append(
            f"{days - judged.height} of {days} days have fewer than {th.min_day_labels} labels and are not judged "
            f"(raters.drift_thresholds.min_day_labels)"
        )
    psi_max = judged["psi"].max()
    if judged.height and psi_max is not None:
        parts.append(f"the largest PSI of a judged day is {psi_max:.3f} < {th.psi_alert} (psi_alert)")
    none = "no population change: " + ("; ".join(parts) or f"no day reached PSI {th.psi_alert} (psi_alert)")
    return {"change_points": change, "population_changes": none}


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
    ins={"human_labels": dg.AssetIn("resolved_human_labels")},
    pool="duckdb",
)
def rater_audit(context: dg.AssetExecutionContext, prefgate: PrefgateResource, human_labels: pl.DataFrame):  # type: ignore[no-untyped-def]
    """Agreement, per-rater quality and flags, and drift, from every human label batch (gold reference labels
    score the raters; they are not raters themselves)."""
    policy = prefgate.policy()
    panel, gold = split_gold(human_labels, prefgate.gold_sources())
    reference, conflicting = gold_verdicts(gold)
    audit = audit_raters(panel, policy, gold=reference if reference.height else None)
    q, rep = audit.quality, audit.agreement
    flag_counts = {f: int(q[f].sum()) for f in FLAGS}
    worst = (
        q.filter(pl.col("assessed"))
        .sort("agreement", nulls_last=True)
        .head(10)
        .select("rater_id", "n_labels", "agreement", "first_share", "tie_rate", "flag_reasons")
    )
    flagged = q.filter(pl.any_horizontal(*GATING_FLAGS))
    exports = prefgate.paths.exports
    yield output(
        q,
        "rater_quality",
        metadata={
            "dagster/row_count": q.height,
            "gold_reference_pairs": reference.height,  # pairs with a gold source's verdict (prefgate.gold)
            "gold_pairs_conflicting": conflicting.height,  # gold labels that disagree: not a reference
            **headline(
                {
                    "alpha": rep.alpha,
                    "alpha_low": rep.alpha_low,
                    "alpha_high": rep.alpha_high,
                    "percent_agreement": rep.percent_agreement,
                    "flagged_share": audit.flagged_share,
                    "raters": q.height,
                    "raters_assessed": int(q["assessed"].sum()),
                    "raters_flagged": flagged.height,
                }
            ),
            "alpha_interval": _interval(rep),
            **chart(
                exports, "rater_quality", "agreement_distribution", plots.agreement_histogram(q), "per-rater agreement"
            ),
            # the notes are long sentences: in their own entry they keep the table's rows one line tall
            "alpha_by_source": table(audit.by_source.drop("note", strict=False), empty_reason="no human labels"),
            "alpha_by_source_notes": "; ".join(
                f"{r['source']}: {r['note']}" for r in audit.by_source.iter_rows(named=True) if r.get("note")
            )
            or "none",
            "flagged_raters_by_flag": dg.MetadataValue.json(flag_counts),
            "excluded_from_consensus": table(
                audit.excluded_raters,
                empty_reason=f"no rater carries an excluding flag ({', '.join(policy.raters.exclude_flags) or 'none'}: "
                "raters.exclude_flags)",
            ),
            "worst_raters": table(worst, empty_reason="no rater has enough labels to be assessed"),
        },
    )
    daily = audit.drift.rater_daily.join(
        audit.drift.rater_tests.select("rater_id", "change_day", "statistic", "detected"), on="rater_id", how="left"
    )
    drift_th = RaterThresholds.from_overrides(policy.raters.thresholds, policy.raters.drift_thresholds).drift
    why = drift_empty_reasons(audit.drift, drift_th)
    yield output(
        daily,
        "rater_drift",
        metadata={
            "dagster/row_count": daily.height,
            **headline(
                {
                    "days": audit.drift.population_daily.height,
                    "raters_tested": int(audit.drift.rater_tests["statistic"].is_not_null().sum()),
                    "raters_changed": audit.drift.change_points.height,
                    "population_changes_count": audit.drift.population_changes.height,
                }
            ),
            **chart(
                exports,
                "rater_drift",
                "rater_day_heatmap",
                plots.rater_day_heatmap(audit.drift.rater_daily),
                "rater x day agreement",
            ),
            **chart(
                exports,
                "rater_drift",
                "drift_of_flagged_raters",
                plots.drift_chart(audit.drift.rater_daily, flagged["rater_id"].to_list()),
                "daily agreement of flagged raters",
                primary=False,
            ),
            "change_points": table(audit.drift.change_points, empty_reason=why["change_points"]),
            "population_changes": table(audit.drift.population_changes, empty_reason=why["population_changes"]),
            **table_entries("population_drift", audit.drift.population_daily, 31),
        },
    )
