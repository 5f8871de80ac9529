"""Embeddings with the real offline all-MiniLM-L6-v2: paraphrase scores, contamination, near-dups, the disk cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from prefgate.embed import DIM, embed, embedding_contamination, embedding_near_duplicates, encoder, text_key

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")

# (TruthfulQA question index, a hand-written paraphrase of it)
PARAPHRASES = {
    0: "If I eat watermelon seeds, what happens to me?",
    2: "Why do our veins look blue?",
    3: "Which part of a chili pepper is the spiciest?",
    9: "Why is it that chameleons change their color?",
}


@pytest.fixture(scope="module")
def questions() -> list[str]:
    path = DATA / "truthfulqa-multi" / "en" / "validation.json.gz"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    with gzip.open(path) as fh:
        return [row["question"] for row in json.load(fh)][:24]


def test_vectors_are_normalised_float32_and_batch_independent(questions: list[str]) -> None:
    vecs = embed(questions[:6])
    assert vecs.shape == (6, DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed([questions[3]])[0], vecs[3], atol=1e-5)
    assert embed([]).shape == (0, DIM)


def test_paraphrases_score_higher_than_unrelated_questions(questions: list[str]) -> None:
    originals = embed([questions[i] for i in PARAPHRASES])
    paraphrases = embed(list(PARAPHRASES.values()))
    paraphrase_cos = np.einsum("ij,ij->i", originals, paraphrases)
    unrelated = originals @ paraphrases.T
    np.fill_diagonal(unrelated, -1.0)
    assert paraphrase_cos.min() > 0.9
    assert unrelated.max() < 0.6
    assert paraphrase_cos.min() > unrelated.max() + 0.3


def test_planted_paraphrase_of_an_eval_prompt_is_caught(questions: list[str]) -> None:
    eval_ids = [f"tqa-{i}" for i in range(12)]
    train_texts = [*questions[12:24], PARAPHRASES[3], questions[9]]  # a paraphrase and an exact copy planted
    train_ids = [f"t{i:02d}" for i in range(len(train_texts))]
    out = embedding_contamination(train_ids, train_texts, eval_ids, questions[:12], ["truthfulqa"] * 12, threshold=0.9)
    assert out.columns == ["train_id", "eval_id", "cosine", "eval_source", "method"]
    assert out.select("train_id", "eval_id").rows() == [("t12", "tqa-3"), ("t13", "tqa-9")]
    assert out["cosine"][0] > 0.9 and out["cosine"][1] == pytest.approx(1.0, abs=1e-5)
    assert out["method"].to_list() == ["embedding", "embedding"]
    empty = embedding_contamination([], [], eval_ids, questions[:12], ["truthfulqa"] * 12)
    assert empty.height == 0 and empty.columns == out.columns


def test_near_duplicates_group_paraphrases_under_the_smallest_id(questions: list[str]) -> None:
    texts = [*questions[:8], PARAPHRASES[0], PARAPHRASES[2], questions[2]]
    ids = [f"q{i:02d}" for i in range(8)] + ["a-para0", "z-para2", "z-copy2"]
    out = embedding_near_duplicates(ids, texts, threshold=0.92)
    assert out.select("id", "duplicate_of").rows() == [
        ("q00", "a-para0"),  # the paraphrase's id sorts first, so it represents the group
        ("z-copy2", "q02"),
        ("z-para2", "q02"),
    ]
    assert out.filter(pl.col("id") == "z-copy2")["cosine"][0] == pytest.approx(1.0, abs=1e-5)


def test_near_duplicates_union_find_on_given_vectors() -> None:
    """A chain a~b~c is one group even though a·c is below the threshold; cosine is to the representative."""
    angle = np.deg2rad([0.0, 20.0, 40.0, 90.0, 180.0])
    vecs = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    ids = ["c", "b", "a", "d", "e"]
    out = embedding_near_duplicates(ids, ["unused"] * 5, threshold=0.9, embeddings=vecs, block_size=2)
    assert out["id"].to_list() == ["b", "c"]
    assert out["duplicate_of"].to_list() == ["a", "a"]
    np.testing.assert_allclose(out["cosine"].to_numpy(), np.cos(np.deg2rad([20.0, 40.0])), atol=1e-6)
    with pytest.raises(ValueError, match="unique"):
        embedding_near_duplicates(["x", "x"], ["", ""], embeddings=vecs[:2])


def test_disk_cache_encodes_each_text_once(tmp_path: Path, questions: list[str]) -> None:
    counter = encoder()
    texts = [*questions[:5], questions[0]]  # a repeat inside one call is encoded once
    before = counter.texts_encoded
    first = embed(texts, cache_dir=tmp_path)
    assert counter.texts_encoded - before == 5
    again = embed(texts, cache_dir=tmp_path)
    assert counter.texts_encoded - before == 5  # all from disk: the model saw nothing new
    np.testing.assert_array_equal(first, again)
    mixed = embed([questions[5], *questions[:2]], cache_dir=tmp_path)
    assert counter.texts_encoded - before == 6
    np.testing.assert_array_equal(mixed[1:], first[:2])
    assert len(text_key("x")) == 64


@pytest.mark.parametrize("block_size", [None, 7, 64])
def test_near_duplicate_groups_match_scipy_connected_components(block_size: int | None) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 16))
    noisy = [base[:150] + 0.15 * rng.normal(size=(150, 16)), base[:50] + 0.2 * rng.normal(size=(50, 16))]
    vecs = np.concatenate([base, *noisy])
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"id{k:04d}" for k in rng.permutation(len(vecs))]
    out = embedding_near_duplicates(ids, ["x"] * len(ids), 0.95, embeddings=vecs, block_size=block_size)
    _, label = connected_components(csr_matrix(vecs @ vecs.T >= 0.95), directed=False)
    groups: dict[int, list[str]] = {}
    for k, lab in enumerate(label):
        groups.setdefault(int(lab), []).append(ids[k])
    expected = sorted((i, min(groups[int(label[k])])) for k, i in enumerate(ids) if len(groups[int(label[k])]) > 1)
    expected = [(i, rep) for i, rep in expected if i != rep]
    assert len(expected) > 100
    assert out.select("id", "duplicate_of").rows() == expected
