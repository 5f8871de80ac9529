"""Human-review routing: every reason, priority order, determinism, the stratified seeded audit."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from prefgate.routing import RoutingPolicy, audit_rank_key, queue_schema, review_queue

NO_AUDIT = RoutingPolicy(audit_share=0.0, audit_min_per_slice=0)


def row(
    pair: str, judge: str, choice: str | None, cal: float | None, pc: bool | None = True, **sl: Any
) -> dict[str, Any]:
    return {
        "pair_id": pair,
        "judge_id": judge,
        "choice": choice,
        "calibrated": cal,
        "position_consistent": pc,
        "category": sl.get("category", "chat"),
        "language": sl.get("language", "en"),
        "source": sl.get("source", "llmfao"),
    }


SCHEMA = {
    "pair_id": pl.String,
    "judge_id": pl.String,
    "choice": pl.String,
    "calibrated": pl.Float64,
    "position_consistent": pl.Boolean,
    "category": pl.String,
    "language": pl.String,
    "source": pl.String,
}


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


FAILING = pl.DataFrame(
    {
        "judge_id": ["j1", "j9", "j2"],
        "slice": ["category", "category", "judge_template"],
        "slice_value": ["math", "chat", "x"],
        "reason": ["upper < gate", "upper < gate", "upper < gate"],
    }
)


def every_reason_frame() -> pl.DataFrame:
    return frame(
        [
            # p_dis: judges split a/b; the ensemble is confident.
            row("p_dis", "j1", "a", 0.9),
            row("p_dis", "j2", "b", 0.8),
            row("p_dis", "ensemble", "a", 0.9),
            # p_low: no ensemble; the best judge (j2, 0.6) is below 0.7.
            row("p_low", "j1", "a", 0.5),
            row("p_low", "j2", "a", 0.6),
            # p_fail: category math fails for j1, which labelled it.
            row("p_fail", "j1", "b", 0.9, category="math"),
            row("p_fail", "ensemble", "b", 0.95, category="math"),
            # p_flip: a verdict flipped under order swap.
            row("p_flip", "j1", "b", 0.9, pc=False),
            row("p_flip", "ensemble", "b", 0.9, pc=None),
            # p_all: every substantive reason at once (tie vs a is a disagreement).
            row("p_all", "j1", "tie", 0.4, pc=False, category="math"),
            row("p_all", "j2", "a", 0.3, category="math"),
            # p_ok: clean; the only pair an audit can draw.
            row("p_ok", "j1", "a", 0.9),
            row("p_ok", "j2", "a", 0.8),
            row("p_ok", "ensemble", "a", 0.92),
        ]
    )


def by_pair(q: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["pair_id"]: r for r in q.iter_rows(named=True)}


def test_every_reason_in_stable_order() -> None:
    q = review_queue(every_reason_frame(), FAILING, RoutingPolicy())
    got = by_pair(q)
    assert got["p_dis"]["reasons"] == ["judges_disagree"]
    assert got["p_low"]["reasons"] == ["low_calibrated_confidence"]
    assert got["p_fail"]["reasons"] == ["failing_slice:category=math"]
    assert got["p_flip"]["reasons"] == ["position_inconsistent"]
    assert got["p_all"]["reasons"] == [
        "judges_disagree",
        "low_calibrated_confidence",
        "failing_slice:category=math",
        "position_inconsistent",
    ]
    # p_ok is the only unrouted pair in its stratum: the audit minimum draws it.
    assert got["p_ok"]["reasons"] == ["random_audit"]
    assert q.schema == pl.Schema(queue_schema(["category", "language", "source"]))


def test_verdict_from_ensemble_else_best_judge() -> None:
    got = by_pair(review_queue(every_reason_frame(), FAILING, RoutingPolicy()))
    assert (got["p_dis"]["verdict"], got["p_dis"]["confidence"], got["p_dis"]["verdict_from"]) == ("a", 0.9, "ensemble")
    assert (got["p_low"]["verdict"], got["p_low"]["confidence"], got["p_low"]["verdict_from"]) == ("a", 0.6, "j2")
    assert got["p_dis"]["n_judges"] == 2  # the ensemble is not a judge
    assert got["p_fail"]["category"] == "math" and got["p_fail"]["source"] == "llmfao"


def test_priority_more_reasons_then_lower_confidence_audit_last() -> None:
    q = review_queue(every_reason_frame(), FAILING, RoutingPolicy())
    assert q["priority"].to_list() == list(range(1, q.height + 1))
    # p_all has 4 reasons; single-reason pairs by confidence ascending (p_low 0.6, then 0.9 ties by pair_id,
    # p_fail 0.95); the audit-only pair last.
    assert q["pair_id"].to_list() == ["p_all", "p_low", "p_dis", "p_flip", "p_fail", "p_ok"]


def test_unknown_confidence_is_low_and_sorts_first() -> None:
    c = frame(
        [
            row("p1", "j1", "a", None),
            row("p2", "j1", "a", 0.1),
            row("p3", "ensemble", "b", None),
        ]
    )
    q = review_queue(c, FAILING.clear(), NO_AUDIT)
    assert q["pair_id"].to_list() == ["p1", "p3", "p2"]
    assert all(r == ["low_calibrated_confidence"] for r in q["reasons"].to_list())


def test_agreement_ignores_ensemble_and_null_verdicts() -> None:
    c = frame(
        [
            row("p1", "j1", "a", 0.9),
            row("p1", "j2", "a", 0.9),
            row("p1", "ensemble", "b", 0.9),  # ensemble differs, judges agree: no disagreement
            row("p2", "j1", "a", 0.9),
            row("p2", "j2", None, 0.9),  # a judge without a verdict
        ]
    )
    assert review_queue(c, FAILING.clear(), NO_AUDIT).height == 0


def test_failing_slice_needs_the_judge_to_have_labelled_the_pair() -> None:
    c = frame(
        [
            row("p1", "j2", "a", 0.9, category="math"),  # math fails for j1 only
            row("p2", "j9", "a", 0.9),  # chat fails for j9
            row("p3", "j7", "a", 0.9, category=None),  # null slice reads as "unknown"
        ]
    )
    failing = pl.concat(
        [
            FAILING,
            pl.DataFrame({"judge_id": ["j7"], "slice": ["category"], "slice_value": ["unknown"], "reason": ["r"]}),
        ]
    )
    got = by_pair(review_queue(c, failing, NO_AUDIT))
    assert set(got) == {"p2", "p3"}
    assert got["p2"]["reasons"] == ["failing_slice:category=chat"]
    assert got["p3"]["reasons"] == ["failing_slice:category=unknown"] and got["p3"]["category"] == "unknown"


def test_failing_slices_follow_policy_slice_order() -> None:
    c = frame([row("p1", "j1", "a", 0.9, category="math", language="de", source="s1")])
    failing = pl.DataFrame(
        {
            "judge_id": ["j1", "j1", "j1"],
            "slice": ["source", "language", "category"],
            "slice_value": ["s1", "de", "math"],
            "reason": ["r", "r", "r"],
        }
    )
    q = review_queue(c, failing, NO_AUDIT)
    assert q["reasons"].to_list() == [
        ["failing_slice:category=math", "failing_slice:language=de", "failing_slice:source=s1"]
    ]
    q2 = review_queue(c, failing, NO_AUDIT.model_copy(update={"slices": ("source", "category")}))
    assert q2["reasons"].to_list() == [["failing_slice:source=s1", "failing_slice:category=math"]]
    assert "language" not in q2.columns


def clean_pairs(counts: dict[str, int]) -> pl.DataFrame:
    rows = []
    for cat, n in counts.items():
        for i in range(n):
            rows.append(row(f"{cat}-{i:03d}", "ensemble", "a", 0.95, category=cat))
    return frame(rows)


def expected_audit(c: pl.DataFrame, policy: RoutingPolicy) -> set[str]:
    """Independent computation: per category, the k smallest keyed hashes, k = min(n, max(min, round(share*n)))."""
    out: set[str] = set()
    for _, group in c.group_by("category"):
        ids = sorted(set(group["pair_id"].to_list()), key=lambda p: audit_rank_key(policy.seed, p))
        n = len(ids)
        k = min(n, max(policy.audit_min_per_slice, math.floor(n * policy.audit_share + 0.5)))
        out |= set(ids[:k])
    return out


def test_stratified_audit_share_and_minimum_per_stratum() -> None:
    c = clean_pairs({"chat": 60, "math": 9, "code": 1})
    policy = RoutingPolicy(audit_share=0.05)
    q = review_queue(c, FAILING.clear(), policy)
    assert set(q["reasons"].explode().to_list()) == {"random_audit"}
    per = dict(q.group_by("category").len().iter_rows())
    assert per == {"chat": 3, "math": 1, "code": 1}  # round(0.05*60)=3; min 1 elsewhere
    assert set(q["pair_id"].to_list()) == expected_audit(c, policy)
    bigger = RoutingPolicy(audit_share=0.5, audit_min_per_slice=2)
    q2 = review_queue(c, FAILING.clear(), bigger)
    assert dict(q2.group_by("category").len().iter_rows()) == {"chat": 30, "math": 5, "code": 1}
    assert set(q2["pair_id"].to_list()) == expected_audit(c, bigger)


def test_audit_only_draws_from_unrouted_pairs() -> None:
    c = pl.concat([clean_pairs({"chat": 3}), frame([row("chat-low", "ensemble", "a", 0.1)])])
    q = review_queue(c, FAILING.clear(), RoutingPolicy(audit_share=1.0))
    got = by_pair(q)
    assert got["chat-low"]["reasons"] == ["low_calibrated_confidence"]
    assert sum(r == ["random_audit"] for r in q["reasons"].to_list()) == 3


def test_audit_disabled_and_max_queue() -> None:
    c = every_reason_frame()
    assert "p_ok" not in review_queue(c, FAILING, NO_AUDIT)["pair_id"].to_list()
    q = review_queue(c, FAILING, RoutingPolicy(max_queue=2))
    assert q["pair_id"].to_list() == ["p_all", "p_low"] and q["priority"].to_list() == [1, 2]


def test_deterministic_under_row_order_and_seeded() -> None:
    c = clean_pairs({"chat": 200, "math": 40})
    policy = RoutingPolicy(audit_share=0.1, seed=7)
    q1 = review_queue(c, FAILING.clear(), policy)
    q2 = review_queue(c.sample(fraction=1.0, shuffle=True, seed=3), FAILING.clear(), policy)
    assert q1.equals(q2)
    other = review_queue(c, FAILING.clear(), policy.model_copy(update={"seed": 8}))
    assert set(other["pair_id"].to_list()) != set(q1["pair_id"].to_list())
    assert other.height == q1.height
    # Adding pairs to another stratum never changes this stratum's draw.
    more = pl.concat([c, clean_pairs({"code": 50})])
    q3 = review_queue(more, FAILING.clear(), policy)
    assert set(q3.filter(pl.col("category") == "chat")["pair_id"].to_list()) == set(
        q1.filter(pl.col("category") == "chat")["pair_id"].to_list()
    )


def test_empty_input_and_validation() -> None:
    empty = review_queue(frame([]), FAILING, RoutingPolicy())
    assert empty.height == 0 and empty.schema == pl.Schema(queue_schema(["category", "language", "source"]))
    with pytest.raises(ValueError, match="invalid choice"):
        review_queue(frame([row("p", "j", "left", 0.9)]), FAILING, RoutingPolicy())
    with pytest.raises(ValueError, match="missing columns"):
        review_queue(frame([row("p", "j", "a", 0.9)]).drop("calibrated"), FAILING, RoutingPolicy())
    with pytest.raises(ValueError, match="failing_slices: missing columns"):
        review_queue(frame([row("p", "j", "a", 0.9)]), FAILING.drop("slice"), RoutingPolicy())
    with pytest.raises(ValidationError):
        RoutingPolicy(threshold=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RoutingPolicy(audit_share=1.5)
    with pytest.raises(ValidationError):
        RoutingPolicy().seed = 3  # type: ignore[misc]


def test_missing_slice_column_reads_unknown() -> None:
    c = frame([row("p1", "ensemble", "a", 0.9)]).drop("source")
    q = review_queue(c, FAILING.clear(), RoutingPolicy())
    assert q["source"].to_list() == ["unknown"] and q["reasons"].to_list() == [["random_audit"]]


def test_judge_failing_overall_flags_every_pair_it_labelled() -> None:
    cands = pl.DataFrame(
        {
            "pair_id": ["p1", "p2"],
            "judge_id": ["j", "j"],
            "choice": ["a", "b"],
            "calibrated": [0.99, 0.99],
            "position_consistent": [True, True],
            "category": ["c1", "c2"],
            "language": ["en", "en"],
            "source": ["s", "s"],
        }
    )
    failing = pl.DataFrame({"judge_id": ["j"], "slice": ["all"], "slice_value": ["all"], "reason": ["kappa low"]})
    q = review_queue(cands, failing, RoutingPolicy(audit_share=0.0, audit_min_per_slice=0))
    assert sorted(q["pair_id"].to_list()) == ["p1", "p2"]
    assert all("failing_slice:all=all" in r for r in q["reasons"].to_list())
