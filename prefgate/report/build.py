"""One builder per report: warehouse frames to the JSON-ready result that both ``--json`` and the text print."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from prefgate.policy import Policy
from prefgate.report import gates as gate_results
from prefgate.report.tables import (
    OVERALL,
    Warehouse,
    alpha_by_source,
    counts_by,
    flagged_share,
    judge_rows,
    lineage_of,
    rater_agreement,
    rater_rows,
    split_names,
)

Builder = Callable[[Warehouse, Policy | None, int | None], dict[str, Any]]


def _need(policy: Policy | None) -> Policy:
    if policy is None:
        raise ValueError("this report needs the policy")
    return policy


def raters(wh: Warehouse, policy: Policy | None, limit: int | None) -> dict[str, Any]:
    """Headline agreement and flagged share, alpha per source, one row per rater (flagged first)."""
    policy = _need(policy)
    quality = wh.table("rater_quality")
    labels = wh.table("resolved_human_labels")
    rep = rater_agreement(labels, policy)
    n_flagged, n_assessed, share = flagged_share(quality)
    rows = rater_rows(quality)
    headline = {
        "alpha": rep.alpha,
        "alpha_low": rep.alpha_low,
        "alpha_high": rep.alpha_high,
        "ci_level": rep.ci_level,
        "n_boot": rep.n_boot,
        "alpha_reason": rep.alpha_reason,
        "percent_agreement": rep.percent_agreement,
        "n_labels": rep.n_labels,
        "n_items": rep.n_items,
        "n_raters": quality.height,
        "n_assessed": n_assessed,
        "n_flagged": n_flagged,
        "n_informational": rows.filter(~pl.col("gating") & (pl.col("flags").list.len() > 0)).height,
        "flagged_share": share,
        "min_alpha": policy.agreement.min_alpha,
        "max_flagged_share": policy.agreement.max_flagged_share,
    }
    by_source = alpha_by_source(labels, policy) if labels.height else pl.DataFrame()
    return {
        "headline": headline,
        "alpha_by_source": by_source.to_dicts(),
        "total_rows": rows.height,
        "rows": rows.head(limit).to_dicts() if limit else rows.to_dicts(),
    }


def judges(wh: Warehouse, policy: Policy | None, limit: int | None) -> dict[str, Any]:
    """Every judge x slice calibration row with its gate verdict and reasons; each judge's overall row first."""
    rows = judge_rows(wh.table("judge_calibration"))
    overall = rows.filter((pl.col("slice") == OVERALL) & (pl.col("slice_value") == OVERALL))
    headline = {
        "n_judges": rows["judge_id"].n_unique(),
        "passed_overall": overall.filter(pl.col("passed"))["judge_id"].to_list(),
        "failed_overall": overall.filter(~pl.col("passed"))["judge_id"].to_list(),
        "rows_passed": int(rows["passed"].sum()),
        "rows_failed": int((~rows["passed"]).sum()),
    }
    shown = rows.head(limit) if limit else rows
    return {"headline": headline, "total_rows": rows.height, "rows": shown.to_dicts()}


def gates(wh: Warehouse, policy: Policy | None, limit: int | None) -> dict[str, Any]:
    """Every blocking gate recomputed from the warehouse (failing first), and the checks recorded at export."""
    policy = _need(policy)
    quarantine = gate_results.quarantine_gate(wh, policy)
    quality = wh.table("rater_quality")
    labels = wh.table("resolved_human_labels")
    rep = rater_agreement(labels, policy)
    results = [
        quarantine,
        *gate_results.rater_gates(quality, labels, rep, policy),
        *gate_results.governance_gates(wh, rep, policy),
    ]
    ordered = sorted(results, key=lambda g: g["passed"])  # stable: failing gates first, else the checks' order
    return {
        "passed": all(g["passed"] for g in results),
        "n_gates": len(results),
        "n_failed": sum(not g["passed"] for g in results),
        "gates": ordered[:limit] if limit else ordered,
        "recorded": gate_results.recorded_checks(wh),
    }


def _counted(rows: list[dict[str, Any]], limit: int | None) -> dict[str, Any]:
    return {"n_keys": len(rows), "rows": rows[:limit] if limit else rows}


def preference_set(wh: Warehouse, policy: Policy | None, limit: int | None) -> dict[str, Any]:
    """Rows by split, origin, source, label source and category; curated-out rows by reason; lineage."""
    ps = wh.table("preference_set")
    dropped = wh.table("curation_dropped")
    splits = split_names(ps)
    kind = pl.col("reason").str.split(":").list.first().str.strip_chars()
    return {
        "rows": ps.height,
        "candidates": ps.height + dropped.height,
        "splits": {s: ps.filter(pl.col("split") == s).height for s in splits},
        "by_origin": _counted(counts_by(ps, pl.col("label_origin"), splits), limit),
        "by_source": _counted(counts_by(ps, pl.col("pair_source"), splits), limit),
        "by_label_source": _counted(counts_by(ps, pl.col("label_source"), splits), limit),
        "by_category": _counted(counts_by(ps, pl.col("category"), splits), limit),
        "dropped": {"n_rows": dropped.height, "by_reason": _counted(counts_by(dropped, kind, splits), limit)},
        "lineage": lineage_of(wh, ps),
    }


BUILDERS: dict[str, Builder] = {"raters": raters, "judges": judges, "gates": gates, "set": preference_set}
