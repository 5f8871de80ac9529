"""prefgate.decontam on tiny hand-made train/eval sets: each test, short prompts, precedence, overlap figures."""

from __future__ import annotations

import polars as pl
import pytest

from prefgate.decontam import contamination
from prefgate.neardup import minhash_signatures, prepare

EVAL = [
    "Explain how photosynthesis works in green plants and why it matters for life on earth",
    "What is the capital of France",
    "Write a haiku about autumn leaves",
]
SOURCES = ["mt_bench", "arena", "alpaca"]
FILLER = [
    "completely unrelated prompt about cooking pasta with garlic and olive oil tonight at home",
    "how do i fix a flat bicycle tire without any special tools on the road",
    "tell me a story about a dragon who learns to play the violin in a small town",
]


def run(train: list[str], **kwargs: object) -> pl.DataFrame:
    ids = pl.Series([f"t{i}" for i in range(len(train))])
    return contamination(ids, pl.Series(train), pl.Series(["e0", "e1", "e2"]), pl.Series(EVAL), pl.Series(SOURCES),
                         **kwargs)  # type: ignore[arg-type]  # fmt: skip


def row(df: pl.DataFrame, train_id: str) -> dict[str, object]:
    rows = df.filter(pl.col("train_id") == train_id).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def test_exact_match_after_normalisation() -> None:
    got = run([*FILLER, "EXPLAIN how photosynthesis works in green plants, and why it matters for life on Earth!"])
    r = row(got, "t3")
    assert (r["eval_id"], r["eval_source"], r["method"]) == ("e0", "mt_bench", "exact")
    assert r["overlap"] == r["eval_overlap"] == r["jaccard"] == 1.0
    assert r["sample"] == "explain how photosynthesis works in green plants and"  # its first 8-gram
    assert len(got) == 1  # the fillers match nothing


def test_embedded_eval_prompt_found_by_ngrams_with_documented_overlaps() -> None:
    prefix = "please answer the following question carefully and in detail for my class"
    train = f"{prefix} {EVAL[0]}"
    r = row(run([train]), "t0")
    assert r["method"] == "ngram"
    train_words, eval_words = len(train.split()), len(EVAL[0].split())
    shared = eval_words - 8 + 1  # every 8-gram of the eval prompt
    assert r["shared_ngrams"] == shared
    assert r["eval_overlap"] == pytest.approx(1.0)
    assert r["overlap"] == pytest.approx(shared / (train_words - 8 + 1))
    assert r["sample"] == "explain how photosynthesis works in green plants and"


def test_short_eval_prompt_inside_a_longer_train_prompt() -> None:
    r = row(run(["Quick quiz for you: what is the capital of France? Answer in one word."]), "t0")
    assert (r["eval_id"], r["method"], r["shared_ngrams"]) == ("e1", "ngram", 1)
    assert r["sample"] == "what is the capital of france"
    assert r["eval_overlap"] == 1.0


def test_short_train_prompt_inside_an_eval_prompt() -> None:
    r = row(run(["how photosynthesis works in green plants"]), "t0")  # 6 words < 8
    assert (r["eval_id"], r["method"], r["overlap"]) == ("e0", "ngram", 1.0)


def test_min_short_words_and_min_overlap_limit_matches() -> None:
    assert run(["what is the capital of France and of Spain"], min_short_words=7).is_empty()
    # one shared 8-gram out of many on both sides: below min_overlap
    weak = "explain how photosynthesis works in green plants and " + " ".join(FILLER)
    assert run([weak], jaccard_threshold=0.95).is_empty()
    assert row(run([weak], min_overlap=0.05), "t0")["method"] == "ngram"


def test_edited_copy_found_by_minhash_when_ngrams_break() -> None:
    edited = "Explain why photosynthesis works in blue plants and why it is important for life on mars"
    got = run([edited], jaccard_threshold=0.3)
    r = row(got, "t0")
    assert r["method"] == "minhash"
    assert r["shared_ngrams"] == 0
    assert 0.3 <= r["jaccard"] < 0.8  # type: ignore[operator]
    assert run([edited], jaccard_threshold=0.8).is_empty()


def test_one_row_per_pair_and_precedence_exact_over_ngram() -> None:
    train = [EVAL[2], f"{EVAL[2]} please", "Write a haiku about autumn leaves falling"]
    got = run(train).sort("train_id")
    assert got["train_id"].to_list() == ["t0", "t1", "t2"]
    assert got["method"].to_list() == ["exact", "ngram", "ngram"]
    assert got.select("train_id", "eval_id").is_unique().all()


def test_reusing_prepared_train_and_signatures_gives_the_same_rows() -> None:
    train = pl.Series([*FILLER, EVAL[0].upper(), f"intro words here {EVAL[1]}"])
    ids = pl.Series(range(len(train)))
    args = (ids, train, pl.Series(["e0", "e1", "e2"]), pl.Series(EVAL), pl.Series(SOURCES))
    plain = contamination(*args)
    prepared = prepare(train)
    reused = contamination(*args, train=prepared, train_signatures=minhash_signatures(prepared.words))
    assert plain.equals(reused)
    assert plain["train_id"].dtype == pl.String
    assert sorted(plain["train_id"]) == ["3", "4"]


def test_empty_train_and_length_checks() -> None:
    assert run([]).is_empty()
    with pytest.raises(ValueError, match="differ in length"):
        contamination(pl.Series(["a"]), pl.Series(["x"]), pl.Series(["e"]), pl.Series([]), pl.Series(["s"]))
