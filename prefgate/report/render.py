"""Text for people: each report's JSON-ready result as a headline and aligned tables (see :mod:`.text`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefgate.report.text import cell, more, sig3, table

RATER_TEXT = (
    ("rater_id", "rater"), ("n_labels", "labels"), ("assessed", "assessed"), ("agreement", "agreement"),
    ("gold_accuracy", "gold_acc"), ("first_share", "p_first"), ("position_p", "position_p"),
    ("tie_rate", "tie_rate"), ("median_seconds", "median_s"), ("too_fast_share", "too_fast"),
    ("flags", "flags"), ("flag_reasons", "reasons"),
)  # fmt: skip
JUDGE_TEXT = (
    ("judge_id", "judge"), ("slice", "slice"), ("n_pairs", "n"), ("agree_strict", "agree"),
    ("agree_strict_lo", "agree_lo"), ("kappa", "kappa"), ("position_consistency", "pos_consistent"),
    ("p_first", "p_first"), ("p_longer", "p_longer"), ("human_p_longer", "human_p_longer"), ("passed", "result"),
    ("reasons", "reasons"),
)  # fmt: skip
SOURCE_TEXT = ("source", "labels", "items", "raters", "alpha", "alpha_low", "alpha_high", "fleiss_kappa", "note")


def _columns(rows: list[dict[str, Any]], spec: Sequence[tuple[str, str]], keep: set[str]) -> list[tuple[str, str]]:
    """The columns of ``spec`` the rows have, without those that are empty in every row (``keep`` always stays)."""
    return [
        (key, head)
        for key, head in spec
        if rows and key in rows[0] and (key in keep or any(r[key] not in (None, [], "") for r in rows))
    ]


def _grid(rows: list[dict[str, Any]], spec: Sequence[tuple[str, str]], keep: set[str]) -> list[str]:
    cols = _columns(rows, spec, keep)
    return table([h for _, h in cols], [[r[k] for k, _ in cols] for r in rows])


def raters(r: dict[str, Any]) -> list[str]:
    h = r["headline"]
    if h["alpha"] is None:
        alpha = f"Krippendorff's alpha: {h['alpha_reason']}"
    elif h["alpha_low"] is None:
        alpha = f"Krippendorff's alpha {sig3(h['alpha'])} (no interval)"
    else:
        level = f"{h['ci_level']:.0%}, {h['n_boot']} resamples"
        alpha = f"Krippendorff's alpha {sig3(h['alpha'])} [{sig3(h['alpha_low'])}, {sig3(h['alpha_high'])}] ({level})"
    lines = [
        f"{alpha}; minimum {cell(h['min_alpha'])}",
        f"percent agreement {cell(h['percent_agreement'])}; {h['n_labels']} labels on {h['n_items']} items",
        f"raters {h['n_raters']} ({h['n_assessed']} assessed); {h['n_flagged']} with a gating flag, "
        f"flagged share {cell(h['flagged_share'])} (maximum {cell(h['max_flagged_share'])}); "
        f"{h['n_informational']} with informational flags only",
    ]
    if r["alpha_by_source"]:
        sources = [[s.get(k) for k in SOURCE_TEXT] for s in r["alpha_by_source"]]
        lines += ["", "alpha by source", *table(SOURCE_TEXT, sources)]
    lines += ["", "raters (gating flags first, then informational flags; assessed before unassessed; by agreement)"]
    lines += _grid(r["rows"], RATER_TEXT, {"rater_id", "flags", "flag_reasons"})
    return lines + more(r["total_rows"], len(r["rows"]))


def judges(r: dict[str, Any]) -> list[str]:
    h = r["headline"]
    passed = ", ".join(h["passed_overall"]) or "none"
    lines = [
        f"{h['n_judges']} judges calibrated against the human consensus; {h['rows_passed']} judge x slice rows pass "
        f"the gate, {h['rows_failed']} fail",
        f"pass overall: {passed}",
        "",
    ]
    rows = [
        {
            **row,
            "slice": "all" if row["slice"] == row["slice_value"] == "all" else f"{row['slice']}={row['slice_value']}",
            "passed": "pass" if row["passed"] else "FAIL",
            "reasons": "; ".join(row["reasons"]),
        }
        for row in r["rows"]
    ]
    grid = _grid(rows, JUDGE_TEXT, {"judge_id", "slice", "passed", "reasons"})
    return [*lines, *grid, *more(r["total_rows"], len(rows))]


def gates(r: dict[str, Any]) -> list[str]:
    verdict = "all pass" if r["passed"] else f"{r['n_failed']} FAIL"
    lines = [f"{r['n_gates']} blocking gates recomputed from the warehouse: {verdict}", ""]
    rows = [
        [g["check"], g["gate"], "pass" if g["passed"] else "FAIL", g["observed"],
         f"{g['comparison']} {cell(g['threshold'])}", g["message"]]
        for g in r["gates"]
    ]  # fmt: skip
    lines += table(["check", "gate", "result", "observed", "threshold", "message"], rows)
    lines += more(r["n_gates"], len(rows))
    rec = r["recorded"]
    if rec is None:
        return [*lines, "", "no lineage recorded yet: no check results from an export"]
    if not rec["checks"]:
        return [*lines, "", f"no check results recorded with {rec['version_id']} (its export has not run)"]
    checks = [[c["name"], "pass" if c["passed"] else "FAIL", c["message"]] for c in rec["checks"]]
    title = f"checks on preference_set recorded with {rec['version_id']} at export"
    return [*lines, "", title, *table(["check", "result", "message"], checks)]


def _counts(title: str, head: str, block: dict[str, Any], splits: list[str]) -> list[str]:
    rows = [[c["key"], c["rows"], *(c["splits"][s] for s in splits)] for c in block["rows"]]
    return ["", title, *table([head, "rows", *splits], rows), *more(block["n_keys"], len(rows))]


def preference_set(r: dict[str, Any]) -> list[str]:
    splits = list(r["splits"])
    per = ", ".join(f"{s} {n}" for s, n in r["splits"].items())
    out = r["dropped"]["n_rows"]
    lines = [f"preference_set: {r['rows']} rows ({per}) of {r['candidates']} candidates; {out} curated out"]
    lin = r["lineage"]
    if lin is None:
        lines.append("lineage: no version recorded")
    else:
        state = "the table is this version" if lin["current"] else f"the table is {lin['table_version_id']}"
        when = f"{lin['created_at']}, {lin['n_examples']} examples"
        lines.append(f"lineage: newest recorded version {lin['version_id']} ({when}); {state}")
    lines += _counts("by origin", "origin", r["by_origin"], splits)
    lines += _counts("by source", "source", r["by_source"], splits)
    lines += _counts("by label source", "label_source", r["by_label_source"], splits)
    lines += _counts("by category", "category", r["by_category"], splits)
    return lines + _counts("curation_dropped by reason", "reason", r["dropped"]["by_reason"], splits)


PRINTERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "raters": raters,
    "judges": judges,
    "gates": gates,
    "set": preference_set,
}
