"""The judge interface shared by every backend, and the record one judgment leaves behind.

Orders: ``"ab"`` shows the canonical response a first, ``"ba"`` shows b first. A backend answers in
presentation terms (first / second / tie, and P(first wins)); :meth:`Judgment.canonical_choice` and
:meth:`Judgment.probability_a` map that back to the canonical pair, so a position bias shows up as the two
orders disagreeing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

Order = Literal["ab", "ba"]
Verdict = Literal["first", "second", "tie"]
Status = Literal["ok", "failed"]
# How the verdict was obtained, or why there is none.
ParseStatus = Literal[
    "logprobs",
    "json",
    "text",
    "logits",
    "pointwise",
    "reward",
    "programmatic",
    "unparseable",
    "empty",
    "refused",
    "timeout",
    "http_error",
    "skipped_pii",
    "error",
]
PiiAction = Literal["none", "redacted", "skipped", "allowed", "local"]
ORDERS: tuple[Order, Order] = ("ab", "ba")


def stable_hash(obj: object) -> str:
    """16-hex hash of a JSON-serialisable object (sorted keys): template and config identities."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PairView:
    """One pair as a judge sees it in one order."""

    pair_id: str
    order: Order
    prompt: str
    first: str
    second: str
    category: str | None = None
    safety: str | None = None  # "safe" / "unsafe" when known (programmatic refusal checks use it)

    @classmethod
    def of(
        cls,
        pair_id: str,
        prompt: str,
        response_a: str,
        response_b: str,
        order: Order,
        category: str | None = None,
        safety: str | None = None,
    ) -> PairView:
        first, second = (response_a, response_b) if order == "ab" else (response_b, response_a)
        return cls(pair_id, order, prompt, first, second, category, safety)


@dataclass
class Judgment:
    """What one judge said about one pair in one order, successful or not (never coerced into a verdict)."""

    judge_id: str
    pair_id: str
    order: Order
    status: Status
    parse_status: ParseStatus
    verdict: Verdict | None = None  # in presentation terms
    p_first: float | None = None  # P(first response is better), when the backend gives a probability
    raw_output: str = ""
    rationale: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    attempts: int = 1
    pii_action: PiiAction = "none"
    constitution_hash: str = ""
    template_hash: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def canonical_choice(self) -> str | None:
        """a / b / tie on the canonical pair (None for a failed judgment)."""
        if self.verdict is None:
            return None
        if self.verdict == "tie":
            return "tie"
        first_is_a = self.order == "ab"
        return "a" if (self.verdict == "first") == first_is_a else "b"

    def probability_a(self) -> float | None:
        """P(a is better) on the canonical pair."""
        if self.p_first is None:
            return None
        return self.p_first if self.order == "ab" else 1.0 - self.p_first

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Judgment:
        return cls(**json.loads(text))


@runtime_checkable
class Judge(Protocol):
    """A pairwise judge. ``local`` is False when text leaves the machine (the PII guard applies)."""

    judge_id: str
    local: bool

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        """Judge a batch of views (any mix of pairs and orders); one Judgment per view, in order."""
        ...
