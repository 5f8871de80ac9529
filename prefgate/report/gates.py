"""Every blocking gate, recomputed from the warehouse with the library functions the Dagster checks call.

The checks record their verdicts in Dagster's event log (and, once the export ran, the preference-set checks'
sentences in ``lineage.versions.gates``); the per-gate numbers live only in Dagster metadata, so they are
recomputed here from the same tables: the quarantine share (as ``checks/ingest.py``), the two rater gates
(:mod:`prefgate.rater_gates`) and the seven governance gates (:func:`prefgate.gates.evaluate_gates` on
:func:`prefgate.gate_inputs.gate_inputs`, with rater alpha recomputed as the rater audit computes it).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from prefgate.agreement import AgreementReport
from prefgate.gate_inputs import gate_inputs
from prefgate.gates import evaluate_gates
from prefgate.ingest.shares import accepted_counts, share_gate
from prefgate.lineage.store import has_lineage
from prefgate.policy import Policy
from prefgate.rater_gates import alpha_gate, flagged_share_gate
from prefgate.report.tables import SCHEMA, Warehouse, flagged_share


def _gate(check: str, gate: str, passed: bool, observed: Any, threshold: Any, op: str, message: str) -> dict[str, Any]:
    return {
        "check": check,
        "gate": gate,
        "passed": passed,
        "observed": observed,
        "threshold": threshold,
        "comparison": op,
        "message": message,
    }


def quarantine_gate(wh: Warehouse, policy: Policy) -> dict[str, Any]:
    """``quarantine.quarantine_share_at_most_max``: the share of each landing file's rows quarantined."""
    max_share = policy.ingest.max_quarantine_share
    accepted = accepted_counts(lambda table, sql: wh.query(sql) if wh.has(table) else None, SCHEMA)
    gate = share_gate(accepted, wh.table("quarantine"), max_share)
    name = "quarantine_share_at_most_max"
    return _gate(f"quarantine.{name}", name, gate.passed, gate.worst, max_share, "<=", gate.sentence)


def rater_gates(
    quality: pl.DataFrame, labels: pl.DataFrame, report: AgreementReport, policy: Policy
) -> list[dict[str, Any]]:
    """``rater_quality.alpha_at_least_min`` and ``flagged_share_at_most_max``, by :mod:`prefgate.rater_gates`."""
    cfg = policy.agreement
    alpha = alpha_gate(labels, cfg.min_alpha, cfg.on_undefined.alpha)
    flagged = flagged_share_gate(quality, cfg.max_flagged_share, cfg.on_undefined.flagged)
    _, n_assessed, share = flagged_share(quality)
    return [
        _gate(
            f"rater_quality.{alpha.name}", alpha.name, alpha.passed, report.alpha, cfg.min_alpha, ">=", alpha.sentence
        ),
        _gate(
            f"rater_quality.{flagged.name}",
            flagged.name,
            flagged.passed,
            share if n_assessed else None,
            cfg.max_flagged_share,
            "<=",
            flagged.sentence,
        ),
    ]


def governance_gates(wh: Warehouse, report: AgreementReport, policy: Policy) -> list[dict[str, Any]]:
    """The seven gates of ``preference_set.governance_gates``, from the same inputs the check reads."""
    inputs = gate_inputs(
        wh.table("preference_set"),
        wh.table("judge_calibration"),
        wh.table("contamination_matches"),
        wh.table("response_pairs"),
        report.alpha,
        policy,
        wh.table("eval_prompts"),
    )
    return [
        _gate("preference_set.governance_gates", r.name, r.passed, r.observed, r.threshold, r.comparison, r.message)
        for r in evaluate_gates(inputs, policy.gates, policy.agreement.on_undefined.alpha)
    ]


def recorded_checks(wh: Warehouse) -> dict[str, Any] | None:
    """The check results recorded with the newest preference-set version at export (None: no lineage)."""
    if not has_lineage(wh.con("preference_set")):
        return None
    latest = wh.query(
        "SELECT version_id, gates FROM lineage.versions WHERE kind = 'preference_set' ORDER BY seq DESC LIMIT 1"
    )
    if latest.height == 0:
        return None
    version_id, raw = latest.row(0)
    gates: dict[str, Any] = json.loads(raw or "{}")
    checks = [
        {"name": str(g.get("name", name)), "passed": bool(g.get("passed")), "message": str(g.get("message", ""))}
        for name, g in sorted(gates.items())
    ]
    return {"version_id": version_id, "checks": checks}
