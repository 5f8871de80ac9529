"""prefgate.neardup on tiny hand-made inputs: normalisation, exact groups, shingles, MinHash, LSH, union-find."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from prefgate.neardup import (
    candidate_pairs,
    components,
    exact_duplicates,
    lsh_params,
    minhash_signatures,
    near_duplicates,
    normalise,
    prepare,
    shingles,
    word_hashes,
)

BASE = "the quick brown fox jumps over the lazy dog near the quiet river bank at dawn today"


def bigrams(text: str) -> set[str]:
    words = normalise(pl.Series([text]))[0].split()
    return {" ".join(p) for p in itertools.pairwise(words)} if len(words) > 1 else {" ".join(words)}


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = bigrams(a), bigrams(b)
    return len(sa & sb) / len(sa | sb)


def random_texts(n: int, words: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    return [" ".join(rng.choice(vocab, size=words)) for _ in range(n)]


def test_normalise_nfkc_case_punctuation_whitespace() -> None:
    got = normalise(pl.Series(["Ｈｅｌｌｏ,  World!\t\tdon’t", None, "  A  b ", "Café — “quoted”", ""]))
    assert got.to_list() == ["hello world don t", "", "a b", "café quoted", ""]


def test_exact_duplicates_groups_by_normalised_text_with_smallest_id() -> None:
    ids = pl.Series(["c", "a", "b", "d", "e", "f"])
    texts = pl.Series(["Hello, world!", "hello world", "HELLO   WORLD", "other", "", ""])
    got = exact_duplicates(ids, texts)
    assert got.to_dict(as_series=False) == {"id": ["a", "b", "c"], "group_id": ["a", "a", "a"]}


def test_exact_duplicates_rejects_bad_ids() -> None:
    with pytest.raises(ValueError, match="unique"):
        exact_duplicates(pl.Series([1, 1]), pl.Series(["a", "b"]))
    with pytest.raises(ValueError, match="length"):
        exact_duplicates(pl.Series([1]), pl.Series(["a", "b"]))


def test_shingles_are_word_ngrams_and_short_texts_fall_back_to_whole_text() -> None:
    words = word_hashes(pl.Series(["a b c d", "a b", "x", ""]))
    hashes, doc = shingles(words, 3)
    assert doc.tolist() == [0, 0, 1, 2]  # two trigrams, then one whole-text shingle each; nothing for ""
    # the trigram "b c d" of prompt 0 equals the whole-text shingle of a 3-word prompt "b c d"
    other, _ = shingles(word_hashes(pl.Series(["b c d"])), 3)
    assert hashes[1] == other[0]
    # a 2-word prompt's whole-text shingle differs from a prompt with its words reversed
    rev, _ = shingles(word_hashes(pl.Series(["b a"])), 3)
    assert rev[0] != hashes[2]


def test_short_prompts_still_match_each_other() -> None:
    ids = pl.Series([1, 2, 3])
    got = near_duplicates(ids, pl.Series(["Hi there!", "hi there", "bye now"]), ngram=3)
    assert got.to_dicts() == [{"id": 2, "duplicate_of": 1, "jaccard": 1.0}]


def test_identical_texts_identical_signatures_and_empty_flagged() -> None:
    sig = minhash_signatures(pl.Series([BASE, BASE.upper() + "!", "", "something else entirely here"]))
    assert (sig.values[0] == sig.values[1]).all()
    assert sig.empty.tolist() == [False, False, True, False]
    assert sig.jaccard(np.array([0]), np.array([1]))[0] == 1.0


def test_minhash_estimates_track_exact_jaccard() -> None:
    rng = np.random.default_rng(3)
    base = random_texts(40, 30, seed=1)
    pairs: list[tuple[str, str]] = []
    for text in base:
        words = text.split()
        for _ in range(int(rng.integers(1, 8))):
            words[int(rng.integers(0, len(words)))] = f"z{int(rng.integers(0, 10**6))}"
        pairs.append((text, " ".join(words)))
    texts = [t for p in pairs for t in p]
    sig = minhash_signatures(pl.Series(texts), num_perm=256)
    left = np.arange(0, len(texts), 2)
    est = sig.jaccard(left, left + 1)
    exact = np.array([exact_jaccard(a, b) for a, b in pairs])
    assert exact.min() < 0.6 < exact.max()
    err = est - exact
    assert abs(err.mean()) < 0.02  # unbiased
    assert np.sqrt((err**2).mean()) < 1.5 * np.sqrt((exact * (1 - exact) / 256).mean()) + 0.005  # MinHash variance


def test_lsh_params_reach_the_target_at_the_threshold() -> None:
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_params(threshold, 128)
        assert bands * rows <= 128
        assert 1 - (1 - threshold**rows) ** bands >= 0.99
        # one more row per band would miss the target
        more = rows + 1
        assert 1 - (1 - threshold**more) ** (128 // more) < 0.99


def test_candidate_pairs_cover_every_colliding_bucket_of_three() -> None:
    texts = pl.Series([BASE, BASE, BASE, "an unrelated prompt about baking bread at home"])
    left, right = candidate_pairs(minhash_signatures(texts), 16, 8)
    assert sorted(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]


def test_components_match_scipy() -> None:
    rng = np.random.default_rng(0)
    n = 500
    left, right = rng.integers(0, n, 400), rng.integers(0, n, 400)
    label = components(n, left, right)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, ref = connected_components(graph, directed=False)
    for comp in np.unique(ref):
        members = np.flatnonzero(ref == comp)
        assert (label[members] == members.min()).all()


def test_near_duplicates_groups_edits_and_chains_under_the_smallest_id() -> None:
    words = BASE.split()
    edit1 = " ".join([*words[:5], "cat", *words[6:]])  # one substitution
    edit2 = " ".join(words[:12] + words[13:])  # one deletion
    others = random_texts(30, 20, seed=2)
    texts = pl.Series([edit1, *others, BASE, edit2])
    ids = pl.Series([f"id{i:03d}" for i in (50, *range(100, 130), 7, 60)])
    got = near_duplicates(ids, texts, threshold=0.6)
    assert got.sort("id")["id"].to_list() == ["id050", "id060"]
    assert set(got["duplicate_of"]) == {"id007"}
    expected = {"id050": exact_jaccard(BASE, edit1), "id060": exact_jaccard(BASE, edit2)}
    for row in got.iter_rows(named=True):
        assert row["jaccard"] == pytest.approx(expected[row["id"]], abs=0.15)
        assert row["jaccard"] >= 0.6


def test_near_duplicates_threshold_excludes_weaker_pairs_and_reuses_signatures() -> None:
    words = BASE.split()
    far = " ".join([*words[:4], "red", "green", "blue", *words[7:12], "one", "two", *words[14:]])
    texts = pl.Series([BASE, far, ""])
    ids = pl.Series([1, 2, 3])
    assert near_duplicates(ids, texts, threshold=0.9).is_empty()
    loose = near_duplicates(ids, texts, threshold=0.2, ngram=1)
    assert loose["id"].to_list() == [2]
    sig = minhash_signatures(prepare(texts).words, ngram=1)
    assert near_duplicates(ids, texts, threshold=0.2, signatures=sig).equals(loose)


def test_near_duplicates_empty_input() -> None:
    got = near_duplicates(pl.Series([], dtype=pl.Int64), pl.Series([], dtype=pl.String))
    assert got.is_empty()
    assert got.columns == ["id", "duplicate_of", "jaccard"]


@pytest.mark.benchmark
def test_benchmark_at_reduced_size() -> None:
    """`benchmarks/bench_dedup.py` end to end at 20k prompts (datasketch side by side at 5k); run with -m benchmark."""
    from benchmarks.bench_dedup import run

    r = run(20_000, 5_000)
    assert r["full"]["near"]["recall"] >= 0.98
    assert r["full"]["near"]["precision"] >= 0.99
    assert r["full"]["contamination"]["recall"] >= 0.95
    assert r["full"]["contamination"]["precision"] >= 0.95
    assert r["compare"]["ratio"] > 1.0
