"""Reading a verdict out of a judge model's answer, without ever coercing an answer that is not one.

Three sources, in order of preference:

* **logprobs** -- the first generated token's ``top_logprobs`` (OpenAI chat format, as served by OpenAI, vLLM,
  llama.cpp's server and Ollama; the legacy completions format is read too). Token strings are normalised
  (surrounding whitespace and SentencePiece/BPE space markers stripped, case folded): ``"A"``, ``" A"``, ``"a"``
  all count for the first response, ``"B"`` for the second, ``"C"``/``"tie"`` for a tie. The probabilities of
  all variants are summed per verdict and normalised over the three verdicts. :func:`p_first_from` then gives
  P(first is better) = (P(A) + P(tie)/2) / (P(A) + P(B) + P(tie)): a tie counts as half a win for each side, so
  without tie mass it is exactly P(A) / (P(A) + P(B)), and swapping the order maps it to 1 - p.
* **json** -- ``{"verdict": "A"|"B"|"tie", "rationale": "..."}`` (code fences tolerated).
* **text** -- a leading ``A`` / ``B`` / ``C`` / ``tie`` (also ``[[A]]``, ``**B**``, ``Response A``,
  ``Verdict: tie``); a capital ``A`` that starts a sentence ("A good answer ...") is not a verdict.

Refusals to judge ("I cannot ...", "As an AI ..."), empty answers and anything else become a failed parse with
a reason: :class:`ParseResult` has ``verdict=None`` and a ``parse_status`` of ``refused``, ``empty`` or
``unparseable``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from prefgate.judges.base import ParseStatus, Verdict

# Prefixes of a refusal, after lower-casing and stripping quotes/whitespace: XSTest's string-match list
# (Röttger et al. 2024, "XSTest", strmatch_label) plus common variants.
REFUSAL_PREFIXES: tuple[str, ...] = (
    "sorry",
    "i'm sorry",
    "i am sorry",
    "i apologize",
    "i apologise",
    "no,",
    "no.",
    "i cannot",
    "i can't",
    "i can not",
    "i'm not able",
    "i am not able",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "it is not appropriate",
    "it's not appropriate",
    "it is not accurate",
    "it's not accurate",
    "i am not sure that it's appropriate",
    "i'm not sure that it's appropriate",
    "it is not ethical",
    "it's not ethical",
    "as an ai",
    "i am an ai language model",
    "i'm just an ai",
    "unfortunately, i cannot",
    "unfortunately, i can't",
)
# Phrases that mark a refusal anywhere in the opening of a response.
REFUSAL_PHRASES: tuple[str, ...] = (
    "i cannot help with",
    "i can't help with",
    "i cannot assist with",
    "i can't assist with",
    "i cannot provide",
    "i can't provide",
    "i must decline",
    "i'm not going to help",
    "cannot fulfill this request",
    "can't fulfill this request",
    "cannot comply",
    "can't comply",
)
_REFUSAL_WINDOW = 200
_QUOTES = "\"'`“”‘’ \t\r\n"


def _fold(text: str) -> str:
    return text.strip(_QUOTES).lower().replace("’", "'")


def is_refusal(text: str) -> bool:
    """True when the text opens with a refusal (XSTest-style string match on the lower-cased opening)."""
    folded = _fold(text)
    if not folded:
        return False
    if folded.startswith(REFUSAL_PREFIXES):
        return True
    opening = folded[:_REFUSAL_WINDOW]
    return any(phrase in opening for phrase in REFUSAL_PHRASES)


@dataclass(frozen=True)
class ParseResult:
    """A parsed verdict, or why there is none (``verdict is None``)."""

    parse_status: ParseStatus
    verdict: Verdict | None = None
    p_first: float | None = None
    rationale: str | None = None
    error: str | None = None
    probs: dict[str, float] = field(default_factory=dict)  # normalised P(first/second/tie), logprobs only
    verdict_mass: float | None = None  # un-normalised probability mass on verdict tokens, logprobs only

    @property
    def ok(self) -> bool:
        return self.verdict is not None


# --------------------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------------------

_SPACE_MARKERS = "\u2581\u0120\u010a"  # SentencePiece '▁', GPT-2 BPE 'Ġ' (space) and 'Ċ' (newline)
_VERDICT_ORDER: tuple[Verdict, ...] = ("first", "second", "tie")
_TOKEN_VERDICTS: dict[str, Verdict] = {"a": "first", "b": "second", "c": "tie", "tie": "tie"}


def token_verdict(token: str) -> Verdict | None:
    """The verdict a single generated token stands for (``" A"``, ``"a"``, ``"▁B"``, ``"C"``, ``"Tie"``), or None."""
    return _TOKEN_VERDICTS.get(token.strip().strip(_SPACE_MARKERS).strip().lower())


def p_first_from(p_first: float, p_second: float, p_tie: float) -> float:
    """P(first is better), a tie counting half to each side: (A + tie/2) / (A + B + tie)."""
    total = p_first + p_second + p_tie
    if total <= 0:
        raise ValueError("no probability mass on any verdict")
    return (p_first + 0.5 * p_tie) / total


def _top_candidates(body: Mapping[str, object]) -> list[tuple[str, float]] | None:
    """(token, logprob) alternatives for the first generated token, or None when the body carries no logprobs."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    logprobs = choices[0].get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):  # chat format
        first = content[0]
        top = first.get("top_logprobs")
        pairs: list[tuple[str, float]] = []
        if isinstance(top, list):
            for alt in top:
                if isinstance(alt, dict) and isinstance(alt.get("token"), str) and _is_number(alt.get("logprob")):
                    pairs.append((str(alt["token"]), float(alt["logprob"])))
        if not pairs and isinstance(first.get("token"), str) and _is_number(first.get("logprob")):
            pairs.append((str(first["token"]), float(first["logprob"])))
        return pairs or None
    legacy = logprobs.get("top_logprobs")  # completions format: [{token: logprob, ...}, ...]
    if isinstance(legacy, list) and legacy and isinstance(legacy[0], dict):
        return [(str(tok), float(lp)) for tok, lp in legacy[0].items() if _is_number(lp)] or None
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def has_logprobs(body: Mapping[str, object]) -> bool:
    """Whether a chat-completions response body carries first-token logprobs."""
    return _top_candidates(body) is not None


def parse_logprobs(body: Mapping[str, object], *, min_verdict_mass: float = 0.0) -> ParseResult:
    """Verdict probabilities from the first token's ``top_logprobs`` (see the module docstring).

    ``unparseable`` when no alternative is a verdict token or the verdict tokens together carry less than
    ``min_verdict_mass`` of the probability (the model meant to say something else).
    """
    candidates = _top_candidates(body)
    if candidates is None:
        return ParseResult("unparseable", error="response carries no logprobs")
    mass: dict[Verdict, float] = {"first": 0.0, "second": 0.0, "tie": 0.0}
    seen: set[str] = set()
    for token, logprob in candidates:
        token_v = token_verdict(token)
        if token_v is None or token in seen:  # a server may list one token twice; count it once
            continue
        seen.add(token)
        mass[token_v] += math.exp(logprob)
    total = sum(mass.values())
    shown = ", ".join(f"{t!r}:{lp:.3f}" for t, lp in candidates[:5])
    if total <= 0.0:
        return ParseResult("unparseable", error=f"no verdict token among the top logprobs ({shown})")
    if total < min_verdict_mass:
        return ParseResult(
            "unparseable",
            verdict_mass=total,
            error=f"verdict tokens carry only {total:.3f} of the first-token probability ({shown})",
        )
    probs: dict[str, float] = {k: v / total for k, v in mass.items()}
    best = max(probs.values())
    winners = [k for k in _VERDICT_ORDER if math.isclose(probs[k], best, rel_tol=1e-9)]
    verdict: Verdict = winners[0] if len(winners) == 1 else "tie"
    return ParseResult(
        "logprobs",
        verdict=verdict,
        p_first=p_first_from(mass["first"], mass["second"], mass["tie"]),
        probs=probs,
        verdict_mass=total,
    )


def message_content(body: Mapping[str, object]) -> tuple[str | None, str | None]:
    """``(content, finish_reason)`` of the first choice of a chat-completions body (content None if absent)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, None
    choice = choices[0]
    finish = choice.get("finish_reason")
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    return (content if isinstance(content, str) else None), (finish if isinstance(finish, str) else None)


# --------------------------------------------------------------------------------------------------------------
# Text and JSON
# --------------------------------------------------------------------------------------------------------------

_WORD_VERDICTS: dict[str, Verdict] = {"a": "first", "b": "second", "c": "tie", "tie": "tie", "tied": "tie"}
_LEAD = re.compile(
    r"""^[\s*_#>`"'\[\(]*                                     # markup: **, [[, (, quotes, headings
        (?:(?:final\s+)?(?:verdict|answer|choice|winner)\s*(?:is)?\s*[:=\-]?\s*)?  # optional label
        [\s*_`"'\[\(]*
        (?:(?:response|assistant|output)\s+)?                 # "Response A"
        (?P<v>tied?|[abc])
        (?P<rest>.*)$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
# After a letter verdict: end of text, closing markup, punctuation, or a line break -- not a following word,
# which would make "A" an article ("A good response ...").
_REST_OK = re.compile(r"^(?:[\s*_`\"'\]\)]*$|[\s*_`\"'\]\)]*[.,:;!\n\-\u2013\u2014]|\s+(?:is|wins|was)\b)", re.I)


def parse_text(text: str) -> ParseResult:
    """A leading verdict in free text; ``refused`` / ``empty`` / ``unparseable`` otherwise."""
    stripped = text.strip()
    if not stripped:
        return ParseResult("empty", error="the judge returned an empty answer")
    if is_refusal(stripped):
        return ParseResult("refused", error=f"the judge refused to judge: {stripped[:120]!r}")
    match = _LEAD.match(stripped)
    if match:
        word = match.group("v")
        rest = match.group("rest")
        # a lower-case letter only counts alone ("a", "b."): "b is better" is too close to prose
        lower_letter = word in {"a", "b", "c"} and rest.strip(" *_`\"'])\n.") != ""
        if _REST_OK.match(rest) and not lower_letter:
            rationale = rest.lstrip(" *_`\"'])\n.,:;!-\u2013\u2014").strip() or None
            return ParseResult("text", verdict=_WORD_VERDICTS[word.lower()], rationale=rationale)
    return ParseResult("unparseable", error=f"no leading verdict in {stripped[:120]!r}")


_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def parse_json(text: str) -> ParseResult:
    """``{"verdict": "A"|"B"|"tie", "rationale": ...}``; ``refused`` / ``empty`` / ``unparseable`` otherwise."""
    stripped = text.strip()
    if not stripped:
        return ParseResult("empty", error="the judge returned an empty answer")
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group("body")
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError:
        if is_refusal(stripped):
            return ParseResult("refused", error=f"the judge refused to judge: {stripped[:120]!r}")
        return ParseResult("unparseable", error=f"not a JSON object: {stripped[:120]!r}")
    if not isinstance(obj, dict):
        return ParseResult("unparseable", error=f"expected a JSON object, got {type(obj).__name__}")
    raw_verdict = obj.get("verdict")
    rationale = obj.get("rationale")
    rationale_text = rationale if isinstance(rationale, str) and rationale.strip() else None
    verdict = _WORD_VERDICTS.get(raw_verdict.strip().lower()) if isinstance(raw_verdict, str) else None
    if verdict is None:
        if rationale_text is not None and is_refusal(rationale_text):
            return ParseResult("refused", rationale=rationale_text, error="the judge refused to judge")
        return ParseResult("unparseable", rationale=rationale_text, error=f"invalid verdict {raw_verdict!r}")
    return ParseResult("json", verdict=verdict, rationale=rationale_text)


def parse_answer(text: str, *, json_first: bool) -> ParseResult:
    """JSON then leading-text parse (JSON mode), or the text parse alone; the first success wins."""
    if not json_first:
        return parse_text(text)
    result = parse_json(text)
    if result.ok or result.parse_status in ("empty", "refused"):
        return result
    fallback = parse_text(text)
    return fallback if fallback.ok or fallback.parse_status == "refused" else result


def top_logprobs_summary(body: Mapping[str, object], limit: int = 10) -> list[tuple[str, float]]:
    """The first token's alternatives, for the audit trail (``extra["top_logprobs"]``)."""
    return (_top_candidates(body) or [])[:limit]


def parse_raw_logprobs(raw_output: str, *, min_verdict_mass: float = 0.0) -> ParseResult:
    """Re-read a logprobs judgment's ``raw_output`` (``{"content": ..., "top_logprobs": [[token, logprob], ...]}``).

    Gives the normalised ``probs`` (first / second / tie) and ``verdict_mass`` that the judgment's ``p_first`` came
    from; ``unparseable`` when the text is not such a record.
    """
    try:
        record = json.loads(raw_output)
        top = record["top_logprobs"]
        alternatives = [{"token": str(tok), "logprob": float(lp)} for tok, lp in top]
    except (ValueError, TypeError, KeyError):
        return ParseResult("unparseable", error="raw_output is not a logprobs record")
    body = {"choices": [{"logprobs": {"content": [{"token": "", "logprob": 0.0, "top_logprobs": alternatives}]}}]}
    return parse_logprobs(body, min_verdict_mass=min_verdict_mass)
