"""Verdict parsing from recorded OpenAI-compatible response bodies, JSON and text; never a coerced verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from prefgate.judges.base import Judgment
from prefgate.judges.parsing import (
    has_logprobs,
    is_refusal,
    message_content,
    p_first_from,
    parse_answer,
    parse_json,
    parse_logprobs,
    parse_raw_logprobs,
    parse_text,
    token_verdict,
)

BODIES = Path(__file__).parent / "judge_bodies"


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BODIES / f"{name}.json").read_text())
    return data


def e(x: float) -> float:
    return math.exp(x)


# ------------------------------------------------------------------------------------------------ logprobs


def test_openai_body_sums_token_variants_and_normalises() -> None:
    res = parse_logprobs(body("openai_logprobs"))
    pa = e(-0.03804) + e(-11.53804) + e(-12.41304)  # "A", "a", " A"
    pb = e(-3.28804)
    pt = e(-7.03804) + e(-13.66304)  # "C", "Tie"
    total = pa + pb + pt
    assert res.ok and res.parse_status == "logprobs" and res.verdict == "first"
    assert res.probs["first"] == pytest.approx(pa / total)
    assert res.probs["second"] == pytest.approx(pb / total)
    assert res.probs["tie"] == pytest.approx(pt / total)
    assert res.p_first == pytest.approx((pa + pt / 2) / total)
    assert res.verdict_mass == pytest.approx(total)


def test_llamacpp_body_with_leading_spaces() -> None:
    res = parse_logprobs(body("llamacpp_logprobs"))
    pa = e(-1.7364) + e(-5.9012)
    pb = e(-0.2107) + e(-4.1021)
    pt = e(-4.5538) + e(-7.2551)
    assert res.verdict == "second"
    assert res.p_first == pytest.approx((pa + pt / 2) / (pa + pb + pt))
    assert message_content(body("llamacpp_logprobs")) == (" B", "length")


def test_vllm_legacy_completions_format() -> None:
    res = parse_logprobs(body("vllm_completions_logprobs"))
    assert res.verdict == "tie"
    assert res.probs["tie"] == pytest.approx(0.5, abs=1e-4)
    assert res.p_first == pytest.approx(0.5)  # A and B equal, the tie splits evenly
    assert message_content(body("vllm_completions_logprobs"))[0] == "C"


def test_body_without_logprobs() -> None:
    b = body("ollama_no_logprobs")
    assert not has_logprobs(b)
    res = parse_logprobs(b)
    assert not res.ok and res.parse_status == "unparseable"
    assert has_logprobs(body("openai_logprobs"))
    assert not has_logprobs(body("openai_json_mode"))  # "logprobs": null


def test_no_verdict_token_and_low_mass_are_unparseable() -> None:
    b = body("openai_logprobs")
    top = b["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    b["choices"][0]["logprobs"]["content"][0]["top_logprobs"] = [t for t in top if t["token"] in ("Response", "I")]
    res = parse_logprobs(b)
    assert not res.ok and res.parse_status == "unparseable" and "no verdict token" in (res.error or "")
    low = {
        "choices": [
            {
                "logprobs": {
                    "content": [
                        {
                            "token": "I",
                            "logprob": -0.05,
                            "top_logprobs": [{"token": "I", "logprob": -0.05}, {"token": "A", "logprob": -3.0}],
                        }
                    ]
                }
            }
        ]
    }
    assert parse_logprobs(low).ok  # default: any verdict mass is enough
    res = parse_logprobs(low, min_verdict_mass=0.5)
    assert not res.ok and res.verdict_mass == pytest.approx(e(-3.0))


def test_token_normalisation() -> None:
    for tok, verdict in [
        ("A", "first"),
        (" A", "first"),
        ("a", "first"),
        ("\u2581A", "first"),
        ("\u0120B", "second"),
        (" b ", "second"),
        ("C", "tie"),
        (" Tie", "tie"),
        ("tie", "tie"),
    ]:
        assert token_verdict(tok) == verdict, tok
    for tok in ["Response", "**", "AB", "", " ", "D", "The"]:
        assert token_verdict(tok) is None, tok


def test_p_first_without_tie_is_ratio() -> None:
    assert p_first_from(0.6, 0.2, 0.0) == pytest.approx(0.75)
    assert p_first_from(0.0, 0.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        p_first_from(0.0, 0.0, 0.0)


def test_equal_top_probabilities_are_a_tie() -> None:
    b = {
        "choices": [
            {
                "logprobs": {
                    "content": [
                        {
                            "token": "A",
                            "logprob": -0.69,
                            "top_logprobs": [{"token": "A", "logprob": -0.6931}, {"token": "B", "logprob": -0.6931}],
                        }
                    ]
                }
            }
        ]
    }
    res = parse_logprobs(b)
    assert res.verdict == "tie" and res.p_first == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------- json, text


def test_json_mode_body() -> None:
    content, finish = message_content(body("openai_json_mode"))
    assert finish == "stop" and content is not None
    res = parse_json(content)
    assert res.ok and res.parse_status == "json" and res.verdict == "second"
    assert res.rationale is not None and res.rationale.startswith("Response B answers")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"verdict": "A", "rationale": "x"}', "first"),
        ('{"verdict": "tie", "rationale": "equal"}', "tie"),
        ('{"verdict": "b"}', "second"),
        ('```json\n{"verdict": "B", "rationale": "shorter and correct"}\n```', "second"),
    ],
)
def test_json_verdicts(text: str, verdict: str) -> None:
    res = parse_json(text)
    assert res.ok and res.verdict == verdict


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ('{"verdict": "maybe", "rationale": "unclear"}', "unparseable"),
        ('{"rationale": "no verdict given"}', "unparseable"),
        ('["A"]', "unparseable"),
        ("{not json", "unparseable"),
        ('{"verdict": null, "rationale": "I cannot judge these responses."}', "refused"),
        ("I'm sorry, I can't evaluate this.", "refused"),
    ],
)
def test_json_failures(text: str, status: str) -> None:
    res = parse_json(text)
    assert not res.ok and res.verdict is None and res.parse_status == status and res.error


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("A", "first"),
        (" B\n", "second"),
        ("C", "tie"),
        ("tie", "tie"),
        ("Tie.", "tie"),
        ("[[A]]", "first"),
        ("**B**", "second"),
        ("(A)", "first"),
        ("A. Response A is more accurate.", "first"),
        ("B - it answers the question.", "second"),
        ("Response A is better.", "first"),
        ("Verdict: B", "second"),
        ("Final verdict: [[B]]", "second"),
        ("Answer: tie", "tie"),
        ("a", "first"),
        ("B\nBecause it is concise.", "second"),
    ],
)
def test_text_verdicts(text: str, verdict: str) -> None:
    res = parse_text(text)
    assert res.ok, res.error
    assert res.parse_status == "text" and res.verdict == verdict


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", "empty"),
        ("A good response would mention the Python API.", "unparseable"),  # an article, not a verdict
        ("Both responses are fine.", "unparseable"),
        ("I think response A is slightly better", "unparseable"),
        ("b is better", "unparseable"),
        ("Response A and Response B are both weak", "unparseable"),
        ("I cannot determine which response is better.", "refused"),
        ("As an AI, I don't have personal preferences.", "refused"),
        ("I'm sorry, but I can't help with that.", "refused"),
        ("Neither.", "unparseable"),
    ],
)
def test_text_failures(text: str, status: str) -> None:
    res = parse_text(text)
    assert not res.ok and res.verdict is None and res.parse_status == status


def test_recorded_refusal_body() -> None:
    content, _ = message_content(body("openai_refusal"))
    assert content is not None
    assert parse_answer(content, json_first=True).parse_status == "refused"
    assert parse_answer(content, json_first=False).parse_status == "refused"


def test_parse_answer_json_then_text() -> None:
    assert parse_answer("B", json_first=True).parse_status == "text"  # server ignored response_format
    assert parse_answer('{"verdict": "A"}', json_first=True).parse_status == "json"
    assert parse_answer('{"verdict": "A"}', json_first=False).parse_status == "unparseable"


def test_is_refusal_xstest_style() -> None:
    assert is_refusal("Sorry, I can't do that.")
    assert is_refusal('  "I cannot provide instructions for making weapons."')
    assert is_refusal("I’m sorry, but that is not something I can help with.")  # curly apostrophe
    assert is_refusal("Well... I can't help with that request.")  # phrase in the opening
    assert not is_refusal("To kill a Python process, run `kill <pid>` or use `pkill -f name`.")
    assert not is_refusal("")


# ----------------------------------------------------------------------------------- canonical mapping


@pytest.mark.parametrize(
    ("order", "verdict", "p_first", "choice", "prob_a"),
    [
        ("ab", "first", 0.8, "a", 0.8),
        ("ab", "second", 0.3, "b", 0.3),
        ("ba", "first", 0.8, "b", pytest.approx(0.2)),
        ("ba", "second", 0.3, "a", pytest.approx(0.7)),
        ("ab", "tie", 0.5, "tie", 0.5),
        ("ba", "tie", 0.5, "tie", 0.5),
    ],
)
def test_canonical_mapping_of_both_orders(order: str, verdict: str, p_first: float, choice: str, prob_a: Any) -> None:
    j = Judgment("j", "p", order, "ok", "logprobs", verdict=verdict, p_first=p_first)  # type: ignore[arg-type]
    assert j.canonical_choice() == choice
    assert j.probability_a() == prob_a
    failed = Judgment("j", "p", order, "failed", "unparseable")  # type: ignore[arg-type]
    assert failed.canonical_choice() is None and failed.probability_a() is None
    assert Judgment.from_json(j.to_json()) == j


def test_parse_raw_logprobs() -> None:
    raw = json.dumps({"content": " B", "top_logprobs": [[" B", -0.2107], [" A", -1.7364], [" C", -4.5538]]})
    res = parse_raw_logprobs(raw)
    assert res.verdict == "second" and set(res.probs) == {"first", "second", "tie"}
    for bad in ["B", "", '{"content": "B"}', '{"top_logprobs": [["A"]]}']:
        assert parse_raw_logprobs(bad).parse_status == "unparseable"
