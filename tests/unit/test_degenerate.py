"""Degenerate pairs: each reason on hand-made pairs, difflib as the reference ratio, and counts on real pair sets."""

from __future__ import annotations

import gzip
import json
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path

import polars as pl
import pytest

from prefgate.degenerate import char_similarity, degenerate_pairs

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


def reference_normalise(text: str) -> str:
    """The documented normalisation, written independently with unicodedata."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return " ".join(text.split())


def test_each_reason_on_hand_made_pairs() -> None:
    long_text = "The mitochondria is the powerhouse of the cell and makes most of its ATP through respiration."
    pairs = pl.DataFrame(
        {
            "pair_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"],
            "response_a": [
                "  \n",
                "Hello, World!",
                "Paris is the capital of France",
                long_text,
                "Yes.",
                "Apples are red.",
                None,
                "",
            ],
            "response_b": [
                "Sure, here it is.",
                "hello world",
                "Paris is the capital of France. It is also its largest city.",
                long_text.replace("makes", "make"),
                "No.",
                "Bananas are yellow.",
                "text",
                "",
            ],
        }
    )
    out = degenerate_pairs(pairs)
    assert out.columns == ["pair_id", "reason", "similarity"]
    got = {row[0]: (row[1], row[2]) for row in out.rows()}
    assert set(got) == {"p1", "p2", "p3", "p4", "p7", "p8"}  # p5, p6 differ: not degenerate
    assert got["p1"] == ("empty", 0.0) and got["p7"] == ("empty", 0.0) and got["p8"] == ("empty", 0.0)
    assert got["p2"] == ("identical", 1.0)
    short, full = reference_normalise(pairs["response_a"][2]), reference_normalise(pairs["response_b"][2])
    assert got["p3"] == ("truncation", pytest.approx(2 * len(short) / (len(short) + len(full))))
    a, b = reference_normalise(long_text), reference_normalise(long_text.replace("makes", "make"))
    assert got["p4"][0] == "near_identical"
    assert got["p4"][1] == pytest.approx(SequenceMatcher(None, a, b, autojunk=False).ratio())
    assert degenerate_pairs(pairs.head(0)).height == 0


def test_chosen_rejected_columns_and_thresholds() -> None:
    frame = pl.DataFrame({"example_id": [7, 8], "chosen": ["abcdefghij", "abc"], "rejected": ["abcdefghiX", "abcdef"]})
    out = degenerate_pairs(frame, columns=("chosen", "rejected"), id_column="example_id", near_threshold=0.85)
    assert out.rows() == [("7", "near_identical", pytest.approx(0.9)), ("8", "truncation", pytest.approx(2 / 3))]
    strict = degenerate_pairs(
        frame, columns=("chosen", "rejected"), id_column="example_id", near_threshold=0.95, min_prefix_chars=4
    )
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


@pytest.fixture(scope="module")
def pandalm() -> pl.DataFrame:
    rows = json.loads(need(DATA / "pandalm-testset" / "testset-v1.json").read_text())
    return pl.DataFrame(rows).select(
        pl.col("idx").alias("pair_id"), pl.col("response1").alias("response_a"), pl.col("response2").alias("response_b")
    )


def test_pandalm_counts(pandalm: pl.DataFrame) -> None:
    out = degenerate_pairs(pandalm)
    counts = dict(out.group_by("reason").len().rows())
    assert counts == {"empty": 54, "identical": 14, "truncation": 36, "near_identical": 9}
    empty = sum(not a.strip() or not b.strip() for a, b in pandalm.select("response_a", "response_b").rows())
    identical = sum(
        bool(a.strip() and b.strip()) and reference_normalise(a) == reference_normalise(b)
        for a, b in pandalm.select("response_a", "response_b").rows()
    )
    assert (counts["empty"], counts["identical"]) == (empty, identical)
    assert out.filter(pl.col("reason") == "near_identical")["similarity"].min() >= 0.97  # type: ignore[operator]


def test_llmfao_empty_responses() -> None:
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
    assert dict(out.group_by("reason").len().rows()) == {"empty": 289}
    assert out.height == sum(not (r["result_x"] or "").strip() or not (r["result_y"] or "").strip() for r in rows)


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
    assert dict(out.group_by("reason").len().rows()) == {
        "empty": 11,
        "identical": 61,
        "truncation": 66,
        "near_identical": 8,
    }
