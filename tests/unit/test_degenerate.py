"""Degenerate pairs: each rule on hand-made pairs, the reviewed flags on real pairs, counts on the real pair sets."""

from __future__ import annotations

import gzip
import json
from difflib import SequenceMatcher
from pathlib import Path

import polars as pl
import pytest

from prefgate.curate_prompts import curate_rows
from prefgate.degenerate import REASONS, char_similarity, degenerate_pairs, truncation_evidence
from prefgate.policy import CurationPolicy, Policy

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
REVIEWED = Path(__file__).resolve().parent / "fixtures" / "degenerate_reviewed.json"
LONG = "The mitochondria is the powerhouse of the cell and makes most of its ATP through respiration."


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


def flags(a: str | None, b: str | None, **kwargs: object) -> list[tuple[str, str, str]]:
    """``(reason, side, evidence)`` of the one pair (a, b), empty when it is not degenerate."""
    out = degenerate_pairs(pl.DataFrame({"pair_id": ["p"], "response_a": [a], "response_b": [b]}), **kwargs)  # type: ignore[arg-type]
    return [(r["reason"], r["side"], r["evidence"]) for r in out.iter_rows(named=True)]


def test_output_columns_and_empty_input() -> None:
    frame = pl.DataFrame({"pair_id": ["1", "2"], "response_a": ["", "same"], "response_b": ["x", "same"]})
    out = degenerate_pairs(frame)
    assert out.columns == ["pair_id", "reason", "similarity", "side", "evidence"]
    assert out.rows() == [
        ("1", "empty", 0.0, "response_a", "response_a is empty or whitespace-only"),
        ("2", "identical", 1.0, "both", "equal texts (up to trailing whitespace): 'same'"),
    ]
    assert degenerate_pairs(frame.head(0)).height == 0
    assert set(out["reason"]) <= set(REASONS)


def test_empty_sides() -> None:
    assert flags("  \n", "Sure, here it is.")[0][:2] == ("empty", "response_a")
    assert flags(None, "text")[0][:2] == ("empty", "response_a")
    assert flags("text", "")[0][:2] == ("empty", "response_b")
    assert flags("", " ")[0][:2] == ("empty", "both")


def test_identical_means_the_exact_text_up_to_trailing_whitespace() -> None:
    assert flags("Paris is the capital.", "Paris is the capital.\n \n")[0][:2] == ("identical", "both")
    assert flags(LONG, LONG)[0][0] == "identical"
    # leading whitespace is content: not identical (near-identical at most)
    assert flags(" Paris is the capital.", "Paris is the capital.") == []


def test_case_only_difference_is_not_identical() -> None:
    assert flags("Hello, World!", "hello, world!") == []
    assert flags("PARIS", "Paris") == []
    got = flags("Hello, World!", "hello, world!", near_identical=True)
    assert got == [
        ("near_identical", "both", "differ only in case, whitespace or quote style: 'Hello, World!' vs 'hello, world!'")
    ]


def test_whitespace_only_difference_is_not_identical() -> None:
    a, b = "Step 1: mix.\nStep 2: bake.", "Step 1:  mix.\n\nStep 2: bake."
    assert flags(a, b) == []
    assert flags(a, b, near_identical=True)[0][:2] == ("near_identical", "both")
    assert flags(" You’re welcome.", " You're welcome.", near_identical=True)[0][0] == "near_identical"


def test_near_identical_keeps_punctuation_digits_and_facts() -> None:
    for a, b in [
        ("The startup will invest $8,000 in year three.", "The startup will invest $4000 in year three."),
        ("The answer is -5.", "The answer is 5."),
        ("You're welcome.", "You're welcome!"),
    ]:
        assert flags(a, b, near_identical=True) == [], (a, b)
    # a similarity threshold below 1.0 is an explicit choice, and it drops real pairs (here a different fact)
    a, b = LONG, LONG.replace("makes", "make")
    got = degenerate_pairs(
        pl.DataFrame({"pair_id": ["p"], "response_a": [a], "response_b": [b]}), near_identical=True, near_threshold=0.97
    )
    ratio = SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).ratio()
    assert got.rows() == [("p", "near_identical", pytest.approx(ratio), "both", got["evidence"][0])]
    assert got["evidence"][0].startswith("normalised character similarity 0.99")


def test_one_word_answer_to_a_one_word_question_is_not_truncated() -> None:
    assert flags("Paris", "The capital of France is Paris, a city of two million people.") == []
    assert flags("Dasher", "Dasher is the first reindeer named in the poem, and he leads the team.") == []
    assert flags("Yes.", "Yes, usually.  But also, people like 12 string guitars.") == []
    assert flags("Paris", "Paris is the capital of France.") == []  # a prefix that ends at a word boundary
    assert flags("Restaurant", "Restaurants") == []  # the other side only inflects the word


def test_shortness_alone_is_not_truncation() -> None:
    assert flags("You’re welcome!", "You’re welcome! It was my pleasure to help you with the essay.") == []
    assert flags("The green light symbolizes hope.", "The green light symbolizes hope and optimism.") == []
    assert flags("A short answer without a period", "A much longer answer that keeps going for a while.") == []


def test_mid_word_cut_is_flagged() -> None:
    # prefix of the other side, cut inside a word
    assert flags("Some popular care", "Some popular careers for students of development studies.") == [
        (
            "truncation",
            "response_a",
            "response_a: ends mid-word: 'Some popular care' (the other side goes on: 'careers')",
        )
    ]
    # the last word is the start of a word written whole earlier in the same text
    cut = "The first thanksgiving was celebrated by settlers, and it is likely that they celebrated the first thanksgi"
    got = flags("I don't know anything about that, sorry.", cut)
    assert got[0][:2] == ("truncation", "response_b")
    assert got[0][2].endswith("they celebrated the first thanksgi' ('thanksgiving' occurs earlier)")
    # a whole word that happens to begin a longer one elsewhere is no cut
    assert (
        flags(
            "Zombies are popular in films, and so are ghosts.", "Films range from slashers to ghost stories to zombie"
        )
        == []
    )


def test_ends_after_a_connector_or_comma_where_the_other_side_does_not() -> None:
    other = "Cotton is a good choice for summer."
    got = flags("In the summer you could go with an airy dress and", other)
    assert got == [
        (
            "truncation",
            "response_a",
            "response_a: ends after the connector 'and': '...mmer you could go with an airy dress and'",
        )
    ]
    assert flags("Whether you're a busy professional or a student on the go,", other)[0][2].startswith(
        "response_a: ends after ','"
    )
    # both sides end that way: the ending is the data's style, not evidence against one side
    assert (
        flags("In the summer you could go with an airy dress and", "Or in the winter you could wear a coat and") == []
    )
    # too short to expect a sentence; a sign-off; a clause that ends on a copula; a question missing its "?"
    assert flags("Salt and", other) == []
    assert flags("I look forward to seeing you all.\n\nBest,", other) == []
    assert flags("Vaccines save lives. Tell him how important it is", other) == []
    assert flags("Is there anything else I can help you with", other) == []
    assert flags("Kubernetes manages containers.  It is", other)[0][0] == "truncation"


def test_unclosed_code_block_is_flagged() -> None:
    code = "Here is the function:\n\n```python\ndef add(a, b):\n    return a +"
    got = flags(code, "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```")
    assert got[0][:2] == ("truncation", "response_a")
    assert "unclosed code block (1 fences)" in got[0][2]
    assert flags("```\nprint(1)\n```", "```\nprint(2)\n```") == []


def test_unclosed_bracket_or_quote_is_flagged() -> None:
    got = flags("Use a neutral oil like canola.", "You can use sunflower oil, or a neutral oil (such as")
    assert got[0][2].startswith("response_b: unclosed '(' at the end: '(such as'")
    got = flags("Try one of these titles.", "Here are two titles: “The Real”, “Take")
    assert "unclosed quote at the end: '“Take'" in got[0][2]
    # closed, or a smiley, or a slice: nothing open
    assert flags("Thanks (really).", "No problem :( sorry") == []
    assert flags("ok", "    return path1[0]\n    print(path2[1:])") == []


def test_finish_reason_length_is_flagged() -> None:
    frame = pl.DataFrame(
        {
            "example_id": ["e1", "e2"],
            "chosen": ["A complete answer.", "A complete answer."],
            "rejected": ["Another complete answer.", "Another complete answer."],
            "rejected_finish_reason": ["length", "stop"],
        }
    )
    out = degenerate_pairs(frame, columns=("chosen", "rejected"), id_column="example_id")
    assert out.select("pair_id", "reason", "side", "evidence").rows() == [
        ("e1", "truncation", "rejected", "rejected: finish_reason 'length'")
    ]
    named = frame.rename({"rejected_finish_reason": "stop_b"}).with_columns(
        pl.lit(None, dtype=pl.String).alias("stop_a")
    )
    again = degenerate_pairs(
        named, columns=("chosen", "rejected"), id_column="example_id", finish_reason_columns=("stop_a", "stop_b")
    )
    assert again["pair_id"].to_list() == ["e1"]
    assert truncation_evidence("a", "b", finish_a="max_tokens") == ("finish_reason 'max_tokens'", None)


def test_evidence_on_both_sides_and_min_prefix_chars() -> None:
    got = flags("Intro.\n```\ncode", "Other.\n```\nmore code")
    assert got == [
        (
            "truncation",
            "both",
            "response_a: unclosed code block (1 fences) | response_b: unclosed code block (1 fences)",
        )
    ]
    frame = pl.DataFrame({"example_id": [8], "chosen": ["abc"], "rejected": ["abcdef"]})
    out = degenerate_pairs(frame, columns=("chosen", "rejected"), id_column="example_id")
    assert out.select("pair_id", "reason", "similarity", "side").rows() == [
        ("8", "truncation", pytest.approx(2 / 3), "chosen")
    ]
    strict = degenerate_pairs(frame, columns=("chosen", "rejected"), id_column="example_id", min_prefix_chars=4)
    assert strict.height == 0


def test_char_similarity_matches_difflib_without_shared_ends() -> None:
    pairs = [
        ("the cat sat on the mat", "a cat sat on a hat!"),
        ("kitten sitting", "sitting kitten"),
        ("x" * 300 + "abc", "y" + "x" * 299 + "abd"),
    ]
    for a, b in pairs:
        assert char_similarity(a, b) == pytest.approx(SequenceMatcher(None, a, b, autojunk=False).ratio())
    assert char_similarity("abc", "xyz", threshold=0.5) is None
    assert char_similarity("", "") == 1.0
    # shared context and ending are trimmed before difflib; the value still counts them as matched
    context = "Human: tell me a story. Assistant: " * 20
    assert char_similarity(context + "yes" + "!", context + "no" + "!") == pytest.approx(
        2 * (len(context) + 1) / (2 * len(context) + 7)
    )


def test_policy_defaults_and_curation_uses_them() -> None:
    cur = CurationPolicy()
    assert (cur.drop_degenerate, cur.degenerate_near_identical, cur.degenerate_near_threshold) == (True, False, 1.0)
    candidates = pl.DataFrame(
        {
            "example_id": ["case", "cut", "real"],
            "pair_id": ["p1", "p2", "p3"],
            "prompt_id": ["q1", "q2", "q3"],
            "label_origin": ["human"] * 3,
            "split": ["train"] * 3,
            "prompt": ["Capital of France?", "Describe the beach.", "2+2?"],
            "chosen": ["Paris", "The beach was quiet and the water was warm.", "4"],
            "rejected": ["paris", "The beach was quiet and the water was warm and", "5"],
        }
    )
    no_matches = pl.DataFrame(schema={"train_id": pl.String, "eval_source": pl.String, "method": pl.String})
    policy = Policy(version="t")
    kept, dropped = curate_rows(candidates, no_matches, policy)
    assert kept["example_id"].to_list() == ["case", "real"]
    assert dropped.select("example_id", "reason").rows() == [
        (
            "cut",
            "degenerate: truncation (rejected: ends after the connector 'and': "
            "'...ach was quiet and the water was warm and')",
        )
    ]
    strict = policy.model_copy(
        update={"curation": policy.curation.model_copy(update={"degenerate_near_identical": True})}
    )
    kept, dropped = curate_rows(candidates, no_matches, strict)
    assert kept["example_id"].to_list() == ["real"]
    assert dropped["example_id"].to_list() == ["case", "cut"]


@pytest.fixture(scope="module")
def reviewed() -> dict[str, object]:
    data: dict[str, object] = json.loads(REVIEWED.read_text())
    return data


def test_reviewed_flags_on_real_excerpts(reviewed: dict[str, object]) -> None:
    """Every reviewed flag (a sample of the flags on shared/data, read one by one) comes back on its excerpts."""
    rows: list[dict[str, object]] = reviewed["reviewed_flags"]  # type: ignore[assignment]
    assert len(rows) == 60
    frame = pl.DataFrame(
        {
            "pair_id": [f"{r['dataset']}|{r['pair_key']}" for r in rows],
            "response_a": [r["excerpt_a"] for r in rows],
            "response_b": [r["excerpt_b"] for r in rows],
        }
    )
    out = degenerate_pairs(frame)
    got = {r["pair_id"]: (r["reason"], r["side"], r["evidence"]) for r in out.iter_rows(named=True)}
    want = {f"{r['dataset']}|{r['pair_key']}": (r["flag"], r["side"], r["excerpt_evidence"]) for r in rows}
    assert got == want
    for r in rows:  # the kind of evidence on the excerpt is the kind found on the whole text
        head = str(r["evidence"]).split("'")[0].split("(")[0]
        assert str(r["excerpt_evidence"]).startswith(head), r["pair_key"]
        assert r["why"] and isinstance(r["correct"], bool)
    assert sum(not r["correct"] for r in rows) == 2  # the two wrong flags of the review are in the sample


def test_old_false_flags_stay_unflagged(reviewed: dict[str, object]) -> None:
    """Real pairs the old detector dropped (case/punctuation 'identical', short 'truncation', 0.97 'near')."""
    rows: list[dict[str, object]] = reviewed["old_false_flags"]  # type: ignore[assignment]
    assert len(rows) >= 15 and all(r["old_flag"] for r in rows)
    frame = pl.DataFrame(
        {
            "pair_id": [str(i) for i in range(len(rows))],
            "response_a": [r["text_a"] for r in rows],
            "response_b": [r["text_b"] for r in rows],
        }
    )
    assert degenerate_pairs(frame).height == 0


def test_reviewed_summary_matches_a_rerun(reviewed: dict[str, object], pandalm: pl.DataFrame) -> None:
    summary: dict[str, dict[str, int]] = reviewed["summary"]  # type: ignore[assignment]
    counts = dict(degenerate_pairs(pandalm).group_by("reason").len().rows())
    assert counts == {k.split("/")[1]: v for k, v in summary["new_flags_by_kind"].items() if k.startswith("pandalm/")}


@pytest.fixture(scope="module")
def pandalm() -> pl.DataFrame:
    rows = json.loads(need(DATA / "pandalm-testset" / "testset-v1.json").read_text())
    return pl.DataFrame(rows).select(
        pl.col("idx").alias("pair_id"), pl.col("response1").alias("response_a"), pl.col("response2").alias("response_b")
    )


def test_pandalm_counts(pandalm: pl.DataFrame) -> None:
    out = degenerate_pairs(pandalm)
    assert dict(out.group_by("reason").len().rows()) == {"empty": 54, "truncation": 13}
    empty = sum(not a.strip() or not b.strip() for a, b in pandalm.select("response_a", "response_b").rows())
    assert out.filter(pl.col("reason") == "empty").height == empty
    # the old detector's 14 "identical" pairs differ in case or punctuation ("true" / "True."): all kept now
    assert not any(a == b for a, b in pandalm.select("response_a", "response_b").rows() if a.strip())


def test_llmfao_counts() -> None:
    with gzip.open(need(DATA / "llmfao" / "pairs-crowd.jsonl.gz")) as fh:
        rows = [json.loads(line) for line in fh]
    frame = pl.DataFrame(
        {
            "pair_id": [r["id"] for r in rows],
            "response_a": [r["result_x"] for r in rows],
            "response_b": [r["result_y"] for r in rows],
        }
    )
    out = degenerate_pairs(frame)
    assert dict(out.group_by("reason").len().rows()) == {"empty": 289, "truncation": 521}
    assert out.filter(pl.col("reason") == "empty").height == sum(
        not (r["result_x"] or "").strip() or not (r["result_y"] or "").strip() for r in rows
    )


def test_hh_rlhf_final_turns() -> None:
    """HH-RLHF sides share the dialogue; the pair's responses are the final Assistant turns."""
    frames = []
    for split in ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"):
        with gzip.open(need(DATA / "hh-rlhf-test" / split / "test.jsonl.gz")) as fh:
            rows = [json.loads(line) for line in fh]
        frames.append(
            pl.DataFrame(rows)
            .with_row_index("i")
            .select(
                pl.format("{}:{}", pl.lit(split), pl.col("i")).alias("pair_id"),
                *(pl.col(c).str.split("\n\nAssistant:").list.last().alias(c) for c in ("chosen", "rejected")),
            )
        )
    pairs = pl.concat(frames)
    assert pairs.height == 8552
    out = degenerate_pairs(pairs, columns=("chosen", "rejected"))
    assert dict(out.group_by("reason").len().rows()) == {"empty": 11, "identical": 36, "truncation": 290}
    identical = out.filter(pl.col("reason") == "identical")["pair_id"].to_list()
    texts = dict(zip(pairs["pair_id"], pairs.select("chosen", "rejected").rows(), strict=True))
    assert all(texts[i][0].rstrip() == texts[i][1].rstrip() for i in identical)
    near = degenerate_pairs(pairs, columns=("chosen", "rejected"), near_identical=True)
    assert near.filter(pl.col("reason") == "near_identical").height == 3  # "You’re welcome." / "You're welcome."
