"""Governance gates: per-slice judge gates worded for people, set-level gates with their shortfalls, exact
boundaries, coverage floors with wildcards, PII rows and the Markdown report."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from prefgate.gates import (
    GateInputs,
    GateResult,
    GatesPolicy,
    coverage_shortfalls,
    evaluate_gates,
    gate_report_markdown,
    judge_slice_gates,
    pii_rows,
)

POLICY = GatesPolicy()
GOOD: dict[str, Any] = {
    "n_pairs": 200,
    "agree_strict": 0.8,
    "agree_strict_lo": 0.74,
    "agree_strict_hi": 0.85,
    "kappa": 0.6,
    "kappa_lo": 0.5,
    "p_first": 0.52,
    "p_longer": 0.55,
    "human_p_longer": 0.5,
}


def calibration(*rows: dict[str, Any]) -> pl.DataFrame:
    """Rows default to a well-calibrated judge; each row names judge_id, slice, slice_value and overrides."""
    return pl.DataFrame([GOOD | r for r in rows])


def gated(*rows: dict[str, Any], policy: GatesPolicy = POLICY) -> dict[tuple[str, str, str], tuple[bool, list[str]]]:
    out = judge_slice_gates(calibration(*rows), policy)
    return {(r["judge_id"], r["slice"], r["slice_value"]): (r["passed"], r["reasons"]) for r in out.to_dicts()}


def overall(judge: str, **stats: Any) -> dict[str, Any]:
    return {"judge_id": judge, "slice": "all", "slice_value": "all", **stats}


def test_well_calibrated_judge_passes_every_slice() -> None:
    res = gated(overall("j"), {"judge_id": "j", "slice": "language", "slice_value": "en"})
    assert all(passed and not reasons for passed, reasons in res.values())


def test_first_position_judge_fails_position_bias() -> None:
    # a judge that always picks the first shown response: p_first 1.0
    ((passed, reasons),) = gated(overall("first", p_first=1.0)).values()
    assert not passed
    assert reasons == ["position bias |p_first-0.5| 0.50 > 0.10 (over by 0.40; p_first 1.00)"]


def test_always_longer_judge_fails_length_bias() -> None:
    ((passed, reasons),) = gated(overall("verbose", p_longer=1.0, human_p_longer=0.55)).values()
    assert not passed
    assert reasons == ["length bias p_longer-human_p_longer 0.45 > 0.15 (over by 0.30; judge 1.00, humans 0.55)"]


def test_low_kappa_states_shortfall() -> None:
    ((passed, reasons),) = gated(overall("weak", kappa=0.21)).values()
    assert not passed
    assert reasons == ["kappa 0.21 < 0.40 (short by 0.19)"]


def test_agreement_uses_the_interval_lower_bound_unless_told_otherwise() -> None:
    row = overall("lucky", agree_strict=0.7, agree_strict_lo=0.45, agree_strict_hi=0.88)
    ((passed, reasons),) = gated(row).values()
    assert not passed
    assert reasons == ["agreement lower bound 0.45 < 0.60 (short by 0.15; agreement 0.70, interval 0.45-0.88)"]
    ((passed, reasons),) = gated(row, policy=GatesPolicy(judge_interval="point")).values()
    assert passed and reasons == []


def test_too_few_overlap_pairs() -> None:
    ((passed, reasons),) = gated(overall("sparse", n_pairs=7)).values()
    assert not passed
    assert reasons == ["too few human-overlap pairs: 7 < 20"]


def test_slice_fails_when_its_judge_fails_overall() -> None:
    res = gated(
        overall("j", kappa=0.3),
        {"judge_id": "j", "slice": "language", "slice_value": "en", "kappa": 0.9},
        overall("k"),
        {"judge_id": "k", "slice": "language", "slice_value": "en"},
        {"judge_id": "orphan", "slice": "language", "slice_value": "en"},
    )
    passed, reasons = res["j", "language", "en"]
    assert not passed and reasons == ["judge fails overall: kappa 0.30 < 0.40 (short by 0.10)"]
    assert res["k", "language", "en"] == (True, [])
    assert res["orphan", "language", "en"] == (False, ["judge has no overall ('all'/'all') calibration row"])


def test_missing_statistics() -> None:
    res = gated(overall("nan", kappa=float("nan"), agree_strict_lo=None, p_first=None, human_p_longer=None))
    ((passed, reasons),) = res.values()
    assert not passed
    assert reasons == [
        "kappa unavailable (no usable overlap with human consensus)",
        "agreement lower bound unavailable",
    ]


def test_slice_boundaries_are_inclusive() -> None:
    # every statistic exactly on its threshold passes (0.65 - 0.5 and 0.6 - 0.5 are not exact in binary)
    edge = {"n_pairs": 20, "kappa": 0.4, "agree_strict_lo": 0.6, "p_first": 0.6, "p_longer": 0.65}
    assert gated(overall("edge", **edge)) == {("edge", "all", "all"): (True, [])}
    assert gated(overall("low", **(edge | {"p_first": 0.4})))["low", "all", "all"] == (True, [])
    just_over = {"n_pairs": 19, "kappa": 0.399, "agree_strict_lo": 0.599, "p_first": 0.601, "p_longer": 0.651}
    ((passed, reasons),) = gated(overall("over", **just_over)).values()
    assert not passed
    assert reasons == [
        "too few human-overlap pairs: 19 < 20",
        "kappa 0.399 < 0.400 (short by 0.001)",
        "agreement lower bound 0.599 < 0.600 (short by 0.001; agreement 0.80, interval 0.60-0.85)",
        "position bias |p_first-0.5| 0.101 > 0.100 (over by 0.001; p_first 0.60)",
        "length bias p_longer-human_p_longer 0.151 > 0.150 (over by 0.001; judge 0.65, humans 0.50)",
    ]


def test_missing_calibration_columns_are_named() -> None:
    with pytest.raises(ValueError, match="human_p_longer"):
        judge_slice_gates(calibration(overall("j")).drop("human_p_longer"), POLICY)


def inputs(**changes: Any) -> GateInputs:
    base: dict[str, Any] = {
        "judge_slices": judge_slice_gates(calibration(overall("j")), POLICY),
        "rater_alpha": 0.5,
        "contaminated": 0,
        "contaminated_matches": pl.DataFrame(schema={"example_id": pl.String, "eval_prompt_id": pl.String}),
        "degenerate": 0,
        "pii_rows": 0,
        "chosen_longer_share": 0.6,
        "coverage": pl.DataFrame({"language": ["en", "de"], "category": ["code", "code"], "rows": [30, 12]}),
    }
    return GateInputs(**(base | changes))


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_clean_set_passes_every_gate() -> None:
    results = evaluate_gates(inputs(), GatesPolicy(min_rows_per_cell={"*/*": 10}))
    assert [r.name for r in results] == [
        "judge_calibration",
        "rater_alpha",
        "contamination",
        "degenerate",
        "pii",
        "chosen_longer_share",
        "coverage",
    ]
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_contamination_one_over_zero_fails() -> None:
    matches = pl.DataFrame({"example_id": ["00000000000000aa"], "eval_prompt_id": ["00000000000000bb"]})
    gate = by_name(evaluate_gates(inputs(contaminated=1, contaminated_matches=matches), POLICY))["contamination"]
    assert not gate.passed
    assert (gate.observed, gate.threshold, gate.comparison) == (1, 0, "<=")
    assert gate.message == "rows matching eval prompts: 1 > 0 allowed (over by 1)"
    assert gate.details["matches"] == [{"example_id": "00000000000000aa", "eval_prompt_id": "00000000000000bb"}]


@pytest.mark.parametrize(
    ("changes", "name", "passed", "message"),
    [
        ({"degenerate": 2}, "degenerate", False, "degenerate rows: 2 > 0 allowed (over by 2)"),
        ({"pii_rows": 3}, "pii", False, "rows with PII: 3 > 0 allowed (over by 3)"),
        ({"rater_alpha": 0.2}, "rater_alpha", True, "rater alpha 0.200 >= 0.200"),
        ({"rater_alpha": 0.15}, "rater_alpha", False, "rater alpha 0.15 < 0.20 (short by 0.05)"),
        (
            {"rater_alpha": None},
            "rater_alpha",
            False,
            "rater alpha unavailable (no item has two panel labels); the gate needs alpha >= 0.20, and the policy "
            "(agreement.on_undefined.alpha: fail) says it fails",
        ),
        ({"chosen_longer_share": 0.75}, "chosen_longer_share", True, "P(chosen longer) 0.75 <= 0.75"),
        (
            {"chosen_longer_share": 0.9},
            "chosen_longer_share",
            False,
            "P(chosen longer) 0.90 > 0.75 (over by 0.15): the set rewards length",
        ),
    ],
)
def test_set_gates_and_boundaries(changes: dict[str, Any], name: str, passed: bool, message: str) -> None:
    gate = by_name(evaluate_gates(inputs(**changes), POLICY))[name]
    assert (gate.passed, gate.message) == (passed, message)


def test_count_gate_boundary_with_a_looser_policy() -> None:
    gate = by_name(evaluate_gates(inputs(pii_rows=2), GatesPolicy(max_pii_rows=2)))["pii"]
    assert gate.passed and gate.message == "rows with PII: 2 <= 2 allowed"


def test_judge_gate_lists_failing_slices() -> None:
    frame = judge_slice_gates(calibration(overall("first", p_first=1.0), overall("ok")), POLICY)
    gate = by_name(evaluate_gates(inputs(judge_slices=frame), POLICY))["judge_calibration"]
    assert not gate.passed and gate.observed == 1
    assert gate.message == (
        "1 of 2 judge slices contributing labels fail calibration: first on all=all: "
        "position bias |p_first-0.5| 0.50 > 0.10 (over by 0.40; p_first 1.00)"
    )
    empty = by_name(evaluate_gates(inputs(judge_slices=frame.clear()), POLICY))["judge_calibration"]
    assert empty.passed and empty.message == "no judge labels in the set: nothing to gate"


def test_coverage_wildcards_and_missing_cells() -> None:
    coverage = pl.DataFrame(
        {
            "language": ["en", "en", "de", None],
            "category": ["code", "math", "code", "code"],
            "rows": [30, 12, 4, 3],
        }
    )
    short = coverage_shortfalls(coverage, {"*/code": 5, "en/*": 20, "fr/chat": 1})
    got = {(r["pattern"], r["language"], r["category"]): (r["rows"], r["short_by"]) for r in short.to_dicts()}
    assert got == {
        ("*/code", "de", "code"): (4, 1),
        ("*/code", "unknown", "code"): (3, 2),
        ("en/*", "en", "math"): (12, 8),
        ("fr/chat", "fr", "chat"): (0, 1),
    }
    gate = by_name(evaluate_gates(inputs(coverage=coverage), GatesPolicy(min_rows_per_cell={"en/*": 20})))["coverage"]
    assert not gate.passed
    assert gate.message == "1 coverage cells below their floor: en/math 12 < 20 (short by 8, floor 'en/*')"
    assert coverage_shortfalls(coverage, {"en/*": 12}).is_empty()  # exactly on the floor passes


def test_policy_is_strict() -> None:
    with pytest.raises(ValidationError):
        GatesPolicy(min_kappa=0.3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="language/category"):
        GatesPolicy(min_rows_per_cell={"en": 3})
    with pytest.raises(ValidationError):
        POLICY.max_pii_rows = 3  # type: ignore[misc]
    assert all(f.description for f in GatesPolicy.model_fields.values())


def test_pii_rows_finds_rows_and_kinds() -> None:
    df = pl.DataFrame(
        {
            "example_id": ["e0", "e1", "e2", "e3"],
            "prompt": ["mail me at jane.doe@example.com", "what is 2+2?", "fine", None],
            "chosen": ["ok", "4", "call (202) 555-0143 or 202-555-0199", "x"],
            "rejected": ["server 192.168.1.10", "five", "no", "y"],
        }
    )
    rows = pii_rows(df)
    assert rows.to_dicts() == [
        {"row": 0, "example_id": "e0", "columns": ["prompt", "rejected"], "kinds": ["email", "ipv4"], "n_findings": 2},
        {"row": 2, "example_id": "e2", "columns": ["chosen"], "kinds": ["phone"], "n_findings": 2},
    ]
    assert pii_rows(df.drop("example_id"), columns=("prompt",))["row"].to_list() == [0]


def test_markdown_report() -> None:
    results = evaluate_gates(inputs(contaminated=1), POLICY)
    text = gate_report_markdown(results)
    assert text.startswith("**1 of 7 gates failed**")
    assert "- `contamination`: rows matching eval prompts: 1 > 0 allowed (over by 1)" in text
    assert "| `contamination` | **FAIL** | 1 | <= 0 |" in text
    assert "| `rater_alpha` | pass | 0.5 | >= 0.2 |" in text


def test_undefined_rater_alpha_passes_when_the_policy_says_so() -> None:
    gate = by_name(evaluate_gates(inputs(rater_alpha=None), POLICY, alpha_on_undefined="pass"))["rater_alpha"]
    assert gate.passed and gate.message.endswith("(agreement.on_undefined.alpha: pass) says it passes")
