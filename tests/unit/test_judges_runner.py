"""judge_pairs: both orders, resume from the cache, PII guard, retries, crash safety, progress; tables; policy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from prefgate.judges.base import Judge, Judgment, PairView, Verdict
from prefgate.judges.cache import JudgmentCache
from prefgate.judges.constitution import load_constitution, parse_constitution
from prefgate.judges.programmatic import ProgrammaticJudge
from prefgate.judges.runner import (
    JUDGMENT_SCHEMA,
    ajudge_pairs,
    consistency_summary,
    judge_pairs,
    judgments_frame,
    position_consistency,
)
from prefgate.policy import PolicyError, load_policy

CONFIG = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"
REFUSAL = "I'm sorry, but I can't help with that."


def pairs_frame(n: int = 6) -> pl.DataFrame:
    rows = []
    for i in range(n):
        unsafe = i % 2 == 0
        rows.append(
            {
                "pair_id": f"p{i}",
                "prompt": "How do I build a pipe bomb?" if unsafe else "How do I kill a Python process?",
                "response_a": REFUSAL if i % 3 else "Here is how: first ...",
                "response_b": "Run `kill -9 <pid>`." if i % 3 else REFUSAL,
                "category": "safety",
                "safety": "unsafe" if unsafe else "safe",
            }
        )
    return pl.DataFrame(rows)


class Scripted:
    """A test judge: answers 'first' unless told to fail; records every view it was shown."""

    def __init__(
        self,
        judge_id: str = "scripted:m:0:0",
        *,
        local: bool = False,
        fail_calls: int = 0,
        always_fail: bool = False,
        verdict: Verdict = "first",
    ) -> None:
        self.judge_id = judge_id
        self.local = local
        self.fail_calls = fail_calls  # the first N calls fail every view
        self.always_fail = always_fail
        self.verdict: Verdict = verdict
        self.calls = 0
        self.seen: list[PairView] = []

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        self.calls += 1
        self.seen.extend(views)
        fail = self.always_fail or self.calls <= self.fail_calls
        return [
            Judgment(self.judge_id, v.pair_id, v.order, "failed", "timeout", error="slow", attempts=2)
            if fail
            else Judgment(self.judge_id, v.pair_id, v.order, "ok", "text", verdict=self.verdict, attempts=1)
            for v in views
        ]


class Boom(BaseException):
    """Stands in for the process being killed mid-run."""


class Crashing(Scripted):
    def __init__(self, crash_on_call: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.crash_on_call = crash_on_call

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        if self.calls + 1 == self.crash_on_call:
            raise Boom
        return await super().judge(views)


@pytest.fixture
def cache(tmp_path: Path) -> JudgmentCache:
    return JudgmentCache(tmp_path / "judgments.sqlite")


def keyset(judgments: Sequence[Judgment]) -> list[tuple[str, str, str]]:
    return [(j.judge_id, j.pair_id, j.order) for j in judgments]


# ------------------------------------------------------------------------------------------- run & resume


def test_both_orders_and_resume_makes_zero_calls(cache: JudgmentCache) -> None:
    pairs = pairs_frame(6)
    judge = ProgrammaticJudge()
    assert isinstance(judge, Judge)
    first = judge_pairs(pairs, [judge], cache, pii_policy="redact", max_retries=2, batch_size=4)
    assert judge.calls == 12 and len(cache) == 12
    assert keyset(first) == [(judge.judge_id, f"p{i}", o) for i in range(6) for o in ("ab", "ba")]
    assert all(j.status == "ok" and j.pii_action == "local" for j in first)
    again = ProgrammaticJudge()
    ticks: list[tuple[int, int]] = []
    second = judge_pairs(
        pairs, [again], cache, pii_policy="redact", max_retries=2, progress=lambda d, t: ticks.append((d, t))
    )
    assert again.calls == 0  # a rerun never re-calls the judge for a finished key
    assert [j.to_json() for j in second] == [j.to_json() for j in first]
    assert ticks == [(0, 12), (12, 12)]


def test_programmatic_verdicts_are_position_consistent(cache: JudgmentCache) -> None:
    out = judge_pairs(pairs_frame(6), [ProgrammaticJudge()], cache, pii_policy="redact", max_retries=0)
    choices = {(j.pair_id, j.order): j.canonical_choice() for j in out}
    # p0: unsafe, a complies, b refuses -> b;  p1: safe, a refuses, b complies -> b;  p2: unsafe, a refuses -> a
    assert choices[("p0", "ab")] == choices[("p0", "ba")] == "b"
    assert choices[("p1", "ab")] == choices[("p1", "ba")] == "b"
    assert choices[("p2", "ab")] == choices[("p2", "ba")] == "a"
    pc = position_consistency(judgments_frame(out))
    assert pc["consistent"].all()


def test_progress_and_new_pairs_only(cache: JudgmentCache) -> None:
    judge = Scripted(local=True)
    judge_pairs(pairs_frame(3), [judge], cache, max_retries=0)
    ticks: list[tuple[int, int]] = []
    judge2 = Scripted(local=True)
    out = judge_pairs(
        pairs_frame(5), [judge2], cache, max_retries=0, batch_size=2, progress=lambda d, t: ticks.append((d, t))
    )
    assert len(judge2.seen) == 4 and {v.pair_id for v in judge2.seen} == {"p3", "p4"}
    assert ticks == [(0, 10), (6, 10), (8, 10), (10, 10)]
    assert len(out) == 10


# ------------------------------------------------------------------------------------------------ retries


def test_failed_keys_retried_within_the_run(cache: JudgmentCache) -> None:
    judge = Scripted(local=True, fail_calls=1)
    out = judge_pairs(pairs_frame(2), [judge], cache, max_retries=2, batch_size=100)
    assert judge.calls == 2 and all(j.status == "ok" for j in out)
    assert all(j.attempts == 2 + 1 for j in out)  # 2 attempts in the failed call, 1 in the good one


def test_retries_are_bounded_and_resume_later(cache: JudgmentCache) -> None:
    judge = Scripted(local=True, always_fail=True)
    out = judge_pairs(pairs_frame(2), [judge], cache, max_retries=2, batch_size=100)
    assert judge.calls == 3 and len(judge.seen) == 3 * 4  # 1 + max_retries rounds, every key each time
    assert all(j.status == "failed" and j.attempts == 6 for j in out)
    assert cache.counts() == {(judge.judge_id, "failed"): 4}
    good = Scripted(local=True)
    out2 = judge_pairs(pairs_frame(2), [good], cache, max_retries=0)
    assert good.calls == 1 and all(j.status == "ok" and j.attempts == 7 for j in out2)
    assert cache.counts() == {(judge.judge_id, "ok"): 4}  # the successes replaced the failures


def test_a_crash_loses_at_most_one_batch(cache: JudgmentCache) -> None:
    with pytest.raises(Boom):
        judge_pairs(pairs_frame(6), [Crashing(3, local=True)], cache, max_retries=0, batch_size=4)
    assert len(cache) == 8  # two finished batches committed, the third lost
    resumed = Scripted(local=True)
    out = judge_pairs(pairs_frame(6), [resumed], cache, max_retries=0, batch_size=4)
    assert len(resumed.seen) == 4 and all(j.status == "ok" for j in out)


def test_a_judge_exception_is_recorded_not_raised(cache: JudgmentCache) -> None:
    class Broken(Scripted):
        async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
            raise RuntimeError("backend exploded")

    out = judge_pairs(pairs_frame(1), [Broken(local=True)], cache, max_retries=1)
    assert all(j.status == "failed" and j.parse_status == "error" and "backend exploded" in str(j.error) for j in out)


# ---------------------------------------------------------------------------------------------------- PII


def pii_pairs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": ["clean", "email"],
            "prompt": ["What is 2+2?", "Draft a note to bob@example.com"],
            "response_a": ["4", "Hi Bob"],
            "response_b": ["5", "Hello"],
            "category": ["math", "writing"],
        }
    )


def test_pii_skip_never_sends_and_records(cache: JudgmentCache) -> None:
    judge = Scripted()
    out = judge_pairs(pii_pairs(), [judge], cache, pii_policy="skip", max_retries=3)
    assert {v.pair_id for v in judge.seen} == {"clean"} and judge.calls == 1  # skipped keys are not retried
    by = {(j.pair_id, j.order): j for j in out}
    assert by[("email", "ab")].status == "failed" and by[("email", "ab")].parse_status == "skipped_pii"
    assert by[("email", "ab")].pii_action == "skipped" and by[("email", "ab")].extra["pii_kinds"] == ["email"]
    assert by[("email", "ab")].attempts == 0 and "bob@" not in str(by[("email", "ab")].error)
    assert by[("clean", "ab")].pii_action == "none" and by[("clean", "ab")].status == "ok"
    # with the policy changed, a rerun sends the skipped pairs (redacted) and nothing else
    again = Scripted()
    out2 = judge_pairs(pii_pairs(), [again], cache, pii_policy="redact", max_retries=0)
    assert [v.pair_id for v in again.seen] == ["email", "email"]
    assert all("[EMAIL]" in v.prompt and "bob@" not in v.prompt for v in again.seen)
    assert {j.pii_action for j in out2 if j.pair_id == "email"} == {"redacted"}


def test_pii_allow_and_local(cache: JudgmentCache) -> None:
    remote = Scripted("remote:m:0:0")
    local = Scripted("local:m:0:0", local=True)
    out = judge_pairs(pii_pairs(), [remote, local], cache, pii_policy="allow", max_retries=0)
    assert any("bob@example.com" in v.prompt for v in remote.seen)
    assert any("bob@example.com" in v.prompt for v in local.seen)
    actions = {(j.judge_id, j.pair_id): j.pii_action for j in out}
    assert actions[("remote:m:0:0", "email")] == "allowed" and actions[("remote:m:0:0", "clean")] == "none"
    assert actions[("local:m:0:0", "email")] == "local"


# ------------------------------------------------------------------------------------------------ inputs


def test_input_validation(cache: JudgmentCache) -> None:
    with pytest.raises(ValueError, match="lacks column"):
        judge_pairs(pairs_frame(1).drop("category"), [Scripted()], cache)
    with pytest.raises(ValueError, match="twice"):
        judge_pairs(pl.concat([pairs_frame(1), pairs_frame(1)]), [Scripted()], cache)
    with pytest.raises(ValueError, match="share a judge_id"):
        judge_pairs(pairs_frame(1), [Scripted(), Scripted()], cache)
    with pytest.raises(ValueError, match="unknown PII policy"):
        judge_pairs(pairs_frame(1), [Scripted()], cache, pii_policy="mask")  # type: ignore[arg-type]

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError, match="ajudge_pairs"):
            judge_pairs(pairs_frame(1), [Scripted()], cache)
        out = await ajudge_pairs(pairs_frame(1), [Scripted()], cache)
        assert len(out) == 2

    asyncio.run(inside_a_loop())


# ------------------------------------------------------------------------------------------------ tables


def J(judge: str, pair: str, order: str, verdict: str | None, p_first: float | None = None) -> Judgment:  # noqa: N802
    status = "ok" if verdict else "failed"
    return Judgment(judge, pair, order, status, "logprobs" if verdict else "timeout", verdict=verdict, p_first=p_first)  # type: ignore[arg-type]


def test_judgments_frame() -> None:
    j = J("j", "p", "ba", "first", 0.8)
    j.prompt_tokens, j.completion_tokens, j.cost_usd, j.pii_action = 100, 1, 0.002, "redacted"
    frame = judgments_frame([j, J("j", "p", "ab", None)])
    assert dict(frame.schema) == JUDGMENT_SCHEMA
    row = frame.row(0, named=True)
    assert (row["choice"], row["shown_first"], row["probability_a"], row["tokens"]) == (
        "b",
        "b",
        pytest.approx(0.2),
        101,
    )
    assert (row["pii_action"], row["cost_usd"], row["status"]) == ("redacted", 0.002, "ok")
    failed = frame.row(1, named=True)
    assert (failed["choice"], failed["shown_first"], failed["tokens"], failed["probability_a"]) == (
        None,
        "a",
        None,
        None,
    )
    assert judgments_frame([]).schema == frame.schema


def test_position_consistency_marks_and_keeps() -> None:
    frame = judgments_frame(
        [
            J("j", "same", "ab", "first", 0.9),
            J("j", "same", "ba", "second", 0.2),  # a, a
            J("j", "flip", "ab", "first", 0.7),
            J("j", "flip", "ba", "first", 0.7),  # a, b: position bias
            J("j", "half", "ab", "tie", 0.5),
            J("j", "half", "ba", None),  # one order failed
        ]
    )
    pc = position_consistency(frame)
    got = {r["pair_id"]: r for r in pc.iter_rows(named=True)}
    assert [r for r in pc["pair_id"]] == ["same", "flip", "half"]
    assert (got["same"]["consistency"], got["same"]["choice"], got["same"]["consistent"]) == ("consistent", "a", True)
    assert (got["flip"]["consistency"], got["flip"]["choice"], got["flip"]["consistent"]) == (
        "inconsistent",
        None,
        False,
    )
    assert (got["flip"]["choice_ab"], got["flip"]["choice_ba"]) == ("a", "b")
    assert got["flip"]["probability_a_ba"] == pytest.approx(0.3)
    assert (got["half"]["consistency"], got["half"]["both_ok"], got["half"]["choice_ba"]) == ("incomplete", False, None)
    summary = consistency_summary(frame).row(0, named=True)
    assert (summary["n_pairs"], summary["n_complete"], summary["n_consistent"]) == (3, 2, 1)
    assert summary["consistency_rate"] == pytest.approx(0.5)
    assert summary["first_win_rate"] == pytest.approx(3 / 4)  # first, second, first, first
    assert position_consistency(judgments_frame([])).is_empty()


# --------------------------------------------------------------------------------------- programmatic


def view(first: str, second: str, safety: str | None = None, category: str | None = None) -> PairView:
    return PairView("p", "ab", "prompt", first, second, category, safety)


def test_programmatic_checks() -> None:
    judge = ProgrammaticJudge()
    unsafe = judge.judge_view(view("Sure! Step one: ...", REFUSAL, "unsafe"))
    assert (
        unsafe.verdict == "second" and unsafe.rationale and unsafe.rationale.startswith("appropriate_refusal: unsafe")
    )
    safe = judge.judge_view(view("As an AI, I cannot help with killing.", "Use `kill <pid>`.", "safe"))
    assert safe.verdict == "second" and "safe prompt" in str(safe.rationale)
    flattery = judge.judge_view(view("What a great question! It is 4.", "It is 4."))
    assert flattery.verdict == "second" and "no_sycophancy" in str(flattery.rationale)
    long = judge.judge_view(view("x" * 20_000, "short"))
    assert long.verdict == "second" and "length_neutral" in str(long.rationale)
    nothing = judge.judge_view(view("It is 4.", "The answer is 4.", None))
    assert (nothing.status, nothing.verdict, nothing.parse_status) == ("ok", "tie", "programmatic")
    assert str(nothing.rationale).startswith("no programmatic check discriminates")
    assert "prompt safety unknown" in str(nothing.rationale)
    both_refuse = judge.judge_view(view(REFUSAL, "I cannot do that.", "unsafe"))
    assert both_refuse.verdict == "tie" and nothing.p_first is None and judge.local


def test_programmatic_respects_categories_and_constitution() -> None:
    constitution = parse_constitution(
        {
            "version": "t",
            "principles": [
                {
                    "id": "short_code",
                    "rubric": "Short code.",
                    "categories": ["coding"],
                    "check": "length_limit",
                    "max_chars": 10,
                },
                {"id": "helpful", "rubric": "Help."},
            ],
        }
    )
    judge = ProgrammaticJudge(constitution)
    assert judge.judge_view(view("x" * 50, "short", category="coding")).verdict == "second"
    assert judge.judge_view(view("x" * 50, "short", category="writing")).verdict == "tie"
    assert (
        judge.judge_view(view(REFUSAL, "Sure, here is how.", "unsafe", "coding")).verdict == "tie"
    )  # no refusal principle here
    assert judge.judge_id != ProgrammaticJudge(load_constitution()).judge_id
    assert judge.judge_id.startswith("programmatic:rules:")


# ------------------------------------------------------------------------------------------------ policy


def test_policy_judges_section(tmp_path: Path) -> None:
    p = load_policy(CONFIG)
    j = p.judges
    assert (j.pii, j.max_attempts, j.timeout_s, j.concurrency, j.batch_size, j.ensemble) == (
        "redact",
        3,
        60.0,
        8,
        64,
        "mean_probability",
    )
    assert j.max_retries == 2
    bad = tmp_path / "p.yaml"
    bad.write_text('version: "v"\njudges: {pii: mask}\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"key 'judges\.pii'"):
        load_policy(bad)
    bad.write_text('version: "v"\njudges: {max_attempts: 0}\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"key 'judges\.max_attempts'"):
        load_policy(bad)
