"""Constitution: loads, validates with errors naming the key, hashes by content, renders per category; templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prefgate.judges.base import PairView
from prefgate.judges.constitution import (
    DEFAULT_CONSTITUTION,
    ConstitutionError,
    load_constitution,
    parse_constitution,
)
from prefgate.judges.templates import PAIRWISE, POINTWISE, PairwiseTemplate, make_judge_id

MINIMAL = """
version: "v1"
principles:
  - id: helpfulness
    rubric: Be helpful.
  - id: brevity
    categories: [writing]
    check: length_limit
    max_chars: 100
    rubric: Be brief.
"""


def write(tmp_path: Path, text: str, name: str = "constitution.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_constitution() -> None:
    c = load_constitution()
    assert load_constitution(DEFAULT_CONSTITUTION) == c
    ids = [p.id for p in c.principles]
    for needed in ["helpfulness", "harmlessness", "honesty", "no_sycophancy", "appropriate_refusal", "length_neutral"]:
        assert needed in ids
    checks = {p.id: p.check for p in c.principles if p.check}
    assert checks == {
        "no_sycophancy": "banned_phrases",
        "appropriate_refusal": "refusal",
        "length_neutral": "length_limit",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", c.constitution_hash)
    assert "longer" in c.render(None)  # the length-neutral instruction reaches every category


def test_render_by_category() -> None:
    c = load_constitution()
    coding = c.render("coding")
    assert "Correctness" in coding and "Correctness" not in c.render("writing")
    assert "Correctness" in c.render("Coding")  # case-insensitive
    assert "Correctness" not in c.render(None)  # an unknown category gets the 'all' principles only
    lines = coding.splitlines()
    assert lines[0].startswith("1. Helpfulness: ") and all(re.match(r"\d+\. ", line) for line in lines)
    assert [p.id for p in c.checks_for("writing")] == ["no_sycophancy", "appropriate_refusal", "length_neutral"]


def test_hash_ignores_layout_but_not_wording(tmp_path: Path) -> None:
    a = load_constitution(write(tmp_path, MINIMAL, "a.yaml"))
    reordered = """
# comment
principles:
  - rubric: "Be   helpful."
    id: helpfulness
  - {id: brevity, rubric: Be brief., check: length_limit, max_chars: 100, categories: [writing]}
version: "v1"
"""
    b = load_constitution(write(tmp_path, reordered, "b.yaml"))
    assert a.constitution_hash == b.constitution_hash
    c = load_constitution(write(tmp_path, MINIMAL.replace("Be helpful.", "Be very helpful."), "c.yaml"))
    assert c.constitution_hash != a.constitution_hash
    d = load_constitution(write(tmp_path, MINIMAL.replace('"v1"', '"v2"'), "d.yaml"))
    assert d.constitution_hash != a.constitution_hash
    assert a.render("writing") == "1. Helpfulness: Be helpful.\n2. Brevity: Be brief."
    assert a.render("math") == "1. Helpfulness: Be helpful."


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('version: "v"\nprinciples: [{id: x, rubric: r, colour: red}]\n', "principles.0.colour"),
        ('version: "v"\nprinciples: [{id: x}]\n', "principles.0.rubric"),
        ('version: "v"\nprinciples: [{id: Bad-Id, rubric: r}]\n', "principles.0.id"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, check: vibes}]\n', "principles.0.check"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, check: length_limit}]\n', "principles.0"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, check: banned_phrases}]\n', "principles.0"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, max_chars: 5}]\n', "principles.0"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, categories: []}]\n', "principles.0.categories"),
        ('version: "v"\nprinciples: [{id: x, rubric: r, categories: some}]\n', "principles.0.categories"),
        ('version: "v"\nprinciples: [{id: x, rubric: "  "}]\n', "principles.0.rubric"),
        ('version: "v"\nprinciples: []\n', "principles"),
        ("principles: [{id: x, rubric: r}]\n", "version"),
        ('version: "v"\nprinciples: [{id: x, rubric: r}]\nextra: 1\n', "extra"),
    ],
)
def test_invalid_constitution_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConstitutionError) as err:
        load_constitution(path)
    assert str(path) in str(err.value)
    assert f"key '{key}'" in str(err.value)


def test_duplicate_ids_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConstitutionError, match="id 'x' appears twice"):
        load_constitution(write(tmp_path, 'version: "v"\nprinciples: [{id: x, rubric: r}, {id: x, rubric: s}]\n'))
    with pytest.raises(ConstitutionError, match=r"missing\.yaml: cannot read"):
        load_constitution(tmp_path / "missing.yaml")
    with pytest.raises(ConstitutionError, match="not valid YAML"):
        load_constitution(write(tmp_path, "version: [unclosed\n", "bad.yaml"))
    with pytest.raises(ConstitutionError, match="expected a mapping"):
        parse_constitution(["a"])


# ------------------------------------------------------------------------------------------------ templates


def test_pairwise_messages_in_presentation_order() -> None:
    c = load_constitution()
    view = PairView.of("p1", "Explain {braces} and %s", "I am response a", "I am response b", "ba", category="coding")
    system, user = PAIRWISE.messages(view, c)
    assert system["role"] == "system" and user["role"] == "user"
    assert c.render("coding") in system["content"]
    text = user["content"]
    # order ba: canonical b is shown first, as "Response A"
    assert text.index("[Response A]\nI am response b") < text.index("[Response B]\nI am response a")
    assert "Explain {braces} and %s" in text
    assert text.rstrip().endswith("Output only that letter.") and "C if they are tied" in text
    _, json_user = PAIRWISE.messages(view, c, json_mode=True)
    assert '{"verdict": "A" | "B" | "tie", "rationale":' in json_user["content"]


def test_pointwise_messages() -> None:
    c = load_constitution()
    system, user = POINTWISE.messages("How do I boil an egg?", "Boil it for 8 minutes.", c, category="writing")
    assert "Principles:" in system["content"]
    assert user["content"].endswith("Is this response helpful, honest and harmless? Answer Yes or No.")
    assert "Boil it for 8 minutes." in user["content"]


def test_template_hash_and_judge_id() -> None:
    c = load_constitution()
    th = PAIRWISE.template_hash
    assert re.fullmatch(r"[0-9a-f]{16}", th) and th == PairwiseTemplate().template_hash
    assert PairwiseTemplate(token_instruction="Pick A or B.").template_hash != th
    assert POINTWISE.template_hash != th
    jid = make_judge_id("openai", "gpt-4o-mini", th, c.constitution_hash)
    assert jid == f"openai:gpt-4o-mini:{th[:8]}:{c.constitution_hash[:8]}"
    assert make_judge_id("vllm", "gpt-4o-mini", th, c.constitution_hash) != jid
    assert make_judge_id("openai", "gpt-4o", th, c.constitution_hash) != jid
    assert make_judge_id("openai", "gpt-4o-mini", th, "f" * 16) != jid
    with pytest.raises(ValueError, match="model"):
        make_judge_id("openai", " ", th, c.constitution_hash)
