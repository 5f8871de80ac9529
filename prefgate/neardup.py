"""Exact and near-duplicate prompt detection: normalisation, word shingles, MinHash, LSH and union-find.

Everything is vectorised (Polars for text, NumPy for hashes) and runs in bounded memory chunks, so 1M+ prompts fit
in a few GiB and well under a minute on two cores.

* **Normalisation** (`normalise`): Unicode NFKC, lowercase, punctuation to spaces, whitespace collapsed. Exact
  duplicates are equal normalised texts.
* **Shingles**: word n-grams of the normalised text (default bigrams: prompts are short, and a bigram set keeps word
  order while tolerating a few edited words). A word n-gram hash is a polynomial over 64-bit word hashes (Polars
  ``.hash``), finalised by splitmix64. A prompt with fewer words than ``ngram`` gets one shingle: its whole text.
* **MinHash by one-permutation hashing** (Li, Owen & Zhang, NIPS 2012) with *optimal densification* (Shrivastava,
  ICML 2017), in rounds of 16 bins (128 bins = 8 rounds): in each round a shingle hash picks one bin and competes
  for its minimum, so the cost is one pass over the shingles per round instead of one per permutation. An empty
  bin copies the bin of its round that a fixed pseudo-random sequence of donors (the same for every prompt) finds
  first non-empty; the probability that two prompts agree in a bin is then their Jaccard similarity, as for
  classic MinHash, and the estimate is the share of agreeing bins (not datasketch's permutations, so signatures
  differ from datasketch's; the estimates agree: tests/reference/test_neardup_reference.py).
* **LSH**: ``bands`` bands of ``rows`` bins are hashed to 64-bit keys; prompts sharing a key in any band are
  candidates (found by sorting the keys). Within a bucket each member is paired with its predecessor and with the
  bucket's first member (not every pair: enough for the components, linear in the bucket size). Candidates are
  verified by estimated Jaccard >= ``threshold``, and union-find (min-label hooking with pointer jumping) joins
  verified pairs into groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

__all__ = [
    "MinHashSignatures",
    "Prepared",
    "WordHashes",
    "band_keys",
    "candidate_pairs",
    "components",
    "exact_duplicates",
    "lsh_params",
    "minhash_signatures",
    "near_duplicates",
    "ngram_hashes",
    "normalise",
    "prepare",
    "rolling_ngrams",
    "shingles",
    "word_hashes",
]

_EMPTY = np.uint32(0xFFFFFFFF)  # an empty bin
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the n-gram polynomial
_DONOR_TRIES = 48  # random donors tried before an empty bin falls back to the prompt's global minimum
_ROUND_BINS = 16  # bins per one-permutation round: prompts of 15-60 words fill most of them
CHUNK = 1 << 14  # prompts per chunk: temporaries stay under glibc's mmap threshold, so they are reused, not faulted


def normalise(texts: pl.Series) -> pl.Series:
    """NFKC, lowercase, punctuation (Unicode category P) replaced by spaces, whitespace collapsed and stripped.

    Nulls become "". NFKC runs only on the non-ASCII texts (ASCII is NFKC-invariant), which keeps this cheap.
    """
    s = texts.cast(pl.String).fill_null("")
    non_ascii = np.flatnonzero((s.str.len_bytes() != s.str.len_chars()).to_numpy())
    if len(non_ascii):
        s = s.scatter(non_ascii, s.gather(non_ascii).str.normalize("NFKC"))
    return (
        s.str.to_lowercase()
        .str.replace_all(r"\p{P}+", " ")
        .str.replace_all(r"[^\S ]\s*|\s{2,}", " ")
        .str.strip_chars()
        .alias(texts.name)
    )


def exact_duplicates(ids: pl.Series, texts: pl.Series) -> pl.DataFrame:
    """Groups of prompts with equal normalised text: one row per member of a group of 2+ (``id``, ``group_id``).

    ``group_id`` is the group's smallest id, so the representative has ``id == group_id``. Empty texts are skipped.
    """
    _check_ids(ids, texts)
    df = pl.DataFrame({"id": ids, "norm": normalise(texts)}).filter(pl.col("norm") != "")
    return (
        df.with_columns(pl.col("id").min().over("norm").alias("group_id"), pl.len().over("norm").alias("_n"))
        .filter(pl.col("_n") > 1)
        .select("id", "group_id")
        .sort("group_id", "id")
    )


# ---------------------------------------------------------------------------------------------------- hashing


def _mix64(x: U64) -> U64:
    """splitmix64 finaliser, in place."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _u64(value: int) -> np.uint64:
    return np.uint64(value % 2**64)


@dataclass(frozen=True)
class WordHashes:
    """64-bit hashes of the words of normalised prompts, flat, with each prompt's word count and first index.

    Made once by `word_hashes` and shared by MinHash (`minhash_signatures`) and n-gram decontamination.
    """

    hashes: U64
    lengths: I64
    starts: I64
    seed: int

    def __len__(self) -> int:
        return len(self.lengths)

    def slice(self, offset: int, length: int) -> WordHashes:
        """Prompts ``offset .. offset + length`` (word hashes are a view)."""
        lengths = self.lengths[offset : offset + length]
        first = int(self.starts[offset]) if len(lengths) else 0
        hashes = self.hashes[first : first + int(lengths.sum())]
        return WordHashes(hashes, lengths, self.starts[offset : offset + length] - first, self.seed)

    def take(self, rows: I64) -> WordHashes:
        """The prompts at ``rows`` (copies)."""
        lengths = self.lengths[rows]
        hashes = self.hashes[_positions(self.starts[rows], lengths)]
        starts = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return WordHashes(hashes, lengths, starts, self.seed)


def word_hashes(texts: pl.Series, *, seed: int = 0, normalised: bool = False) -> WordHashes:
    """Word hashes of ``texts`` (normalised first unless ``normalised``); words are the space-separated tokens."""
    norm = texts if normalised else normalise(texts)
    parts: list[pl.Series] = []
    lengths = np.empty(len(norm), dtype=np.int64)
    for s in range(0, len(norm), CHUNK):
        chunk = norm.slice(s, CHUNK)
        words = chunk.str.split(" ")
        n_words = words.list.len().to_numpy().astype(np.int64)
        n_words[(chunk == "").to_numpy()] = 0
        lengths[s : s + len(chunk)] = n_words
        parts.append(words.explode().filter(pl.Series(np.repeat(n_words > 0, np.maximum(n_words, 1)))).hash(seed))
    flat = np.concatenate([p.to_numpy() for p in parts]) if parts else np.empty(0, dtype=np.uint64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return WordHashes(np.ascontiguousarray(flat, dtype=np.uint64), lengths, starts, seed)


@dataclass(frozen=True)
class Prepared:
    """Normalised texts and their word hashes: the shared first step of dedup and decontamination."""

    norm: pl.Series
    words: WordHashes


def prepare(texts: pl.Series, *, seed: int = 0) -> Prepared:
    """`normalise` then `word_hashes`, once, for callers that run several passes over the same prompts."""
    norm = normalise(texts)
    return Prepared(norm, word_hashes(norm, seed=seed, normalised=True))


def _positions(starts: I64, counts: I64) -> I64:
    """Concatenated ``arange(start, start + count)`` for each prompt."""
    total = int(counts.sum())
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, counts)


def rolling_ngrams(words: WordHashes, max_n: int) -> Iterator[tuple[int, U64]]:
    """Yield ``(m, g)`` for m = 1..max_n: ``g[i]`` is the (unmixed) hash of the ``m`` words starting at flat index i.

    ``g`` is one buffer updated in place (a polynomial over the word hashes); windows that cross a prompt boundary
    are computed but meaningless, so callers index only positions ``start .. start + length - m``.
    """
    h = words.hashes
    g = h.copy()
    yield 1, g
    for m in range(2, max_n + 1):
        k = len(h) - m + 1
        if k > 0:
            g[:k] *= _POLY
            g[:k] += h[m - 1 :]
        yield m, g


def ngram_hashes(words: WordHashes, n: int) -> U64:
    """The unmixed hashes of every ``n``-word window (index = first word; see `rolling_ngrams`)."""
    g = words.hashes
    for _, g in rolling_ngrams(words, n):  # noqa: B007 - the last buffer is the result
        pass
    return g


def shingles(words: WordHashes, ngram: int) -> tuple[U64, I64]:
    """Mixed shingle hashes and their prompt index: word ``ngram``-grams, or the whole text below ``ngram`` words."""
    lengths, starts = words.lengths, words.starts
    short = np.flatnonzero((lengths > 0) & (lengths < ngram))
    whole = np.empty(len(short), dtype=np.uint64)
    g = words.hashes
    for m, g in rolling_ngrams(words, ngram):
        done = lengths[short] == m
        whole[done] = g[starts[short[done]]]
    valid = np.ones(len(g), dtype=bool)
    ends = starts + lengths
    for k in range(1, ngram):  # the last ngram - 1 words of a prompt start no full window
        tail = ends - k
        valid[tail[tail >= starts]] = False
    g[starts[short]] = whole
    valid[starts[short]] = True
    counts = np.where(lengths >= ngram, lengths - ngram + 1, (lengths > 0).astype(np.int64))
    values = g[valid]
    values ^= _u64(words.seed * 0x2545F4914F6CDD1D + ngram)
    return _mix64(values), np.repeat(np.arange(len(lengths), dtype=np.int64), counts)


# ---------------------------------------------------------------------------------------------------- MinHash


@dataclass(frozen=True)
class MinHashSignatures:
    """MinHash signatures (``num_perm`` uint32 bins per prompt) and how they were made; ``empty`` marks no words."""

    values: U32
    empty: npt.NDArray[np.bool_]
    num_perm: int
    ngram: int
    seed: int
    _keys: dict[tuple[int, int], U64] = field(default_factory=dict, repr=False, compare=False)

    def band_keys(self, bands: int, rows: int) -> U64:
        """`band_keys` of these signatures, kept so a near-duplicate and a decontamination pass share them."""
        if (bands, rows) not in self._keys:
            self._keys[(bands, rows)] = band_keys(self.values, bands, rows)
        return self._keys[(bands, rows)]

    def jaccard(self, left: I64, right: I64, chunk: int = 1 << 16) -> npt.NDArray[np.float64]:
        """Estimated Jaccard similarity of prompt pairs (row indices), the share of agreeing bins."""
        out = np.empty(len(left), dtype=np.float64)
        for s in range(0, len(left), chunk):
            eq = self.values[left[s : s + chunk]] == self.values[right[s : s + chunk]]
            out[s : s + chunk] = np.count_nonzero(eq, axis=1) / self.num_perm
        return out

    def take(self, rows: I64) -> MinHashSignatures:
        """The signatures at ``rows``."""
        return MinHashSignatures(self.values[rows], self.empty[rows], self.num_perm, self.ngram, self.seed)


def _layout(num_perm: int) -> tuple[int, int]:
    """``(rounds, bins)``: one-permutation rounds of ``bins`` bins cover ``num_perm`` (the last may be cut)."""
    bins = min(_ROUND_BINS, num_perm)
    return -(-num_perm // bins), bins


def _donors(num_perm: int, seed: int) -> npt.NDArray[np.int32]:
    """Donor per (attempt, column), as an offset: a pseudo-random bin of the same round, fixed for every prompt."""
    rounds, bins = _layout(num_perm)
    rng = np.random.default_rng([seed, 0x0D0E])
    col = np.arange(rounds * bins)
    donor = rng.integers(0, bins, size=(_DONOR_TRIES, rounds * bins)) * rounds + col % rounds
    return (donor - col).astype(np.int32)  # offsets from the empty bin to its donor


def _oph(hashes: U64, doc: I64, n_docs: int, num_perm: int, seed: int, donors: npt.NDArray[np.int32]) -> U32:
    """One-permutation hashing in rounds of `_ROUND_BINS` bins, with optimal densification, for a chunk of prompts.

    Round r re-keys each shingle hash by one xor and one odd multiply; the bin comes from the top bits
    (multiply-shift) and the value from bits 16-47, which the bin does not constrain.
    """
    rounds, bins = _layout(num_perm)
    width = rounds * bins
    sig = np.full(n_docs * width, _EMPTY, dtype=np.uint32)
    rng = np.random.default_rng([seed, 0x0A0B])
    xors = rng.integers(0, 2**63, size=rounds, dtype=np.int64)
    base = doc.astype(np.uint64) * np.uint64(width)
    for r in range(rounds):
        hk = hashes ^ np.uint64(int(xors[r]))
        hk *= _u64(0x9E3779B97F4A7C15 + 2 * r * 0x632BE59BD9B4E019)
        col = ((hk >> np.uint64(32)) * np.uint64(bins)) >> np.uint64(32)
        col *= np.uint64(rounds)  # column = bin * rounds + round: neighbouring columns come from different rounds
        col += base
        # bits 16-47 as the value (astype keeps the low 32 bits); a value equal to _EMPTY (p = 2^-32) reads as empty
        np.minimum.at(sig, col.view(np.int64), (hk >> np.uint64(16)).astype(np.uint32))
        base += np.uint64(1)
    has_words = np.zeros(n_docs, dtype=bool)
    has_words[doc] = True
    empty = np.flatnonzero(sig == _EMPTY).astype(np.int32 if len(sig) < 2**31 else np.int64)
    empty = empty[has_words[empty // width]]
    out = sig.copy()
    cols = (empty % width).astype(np.int32)
    for attempt in range(donors.shape[0]):
        if not len(empty):
            break
        got = sig[empty + donors[attempt, cols]]
        ok = got != _EMPTY
        out[empty[ok]] = got[ok]
        miss = ~ok
        empty, cols = empty[miss], cols[miss]
    if len(empty):  # rare: a prompt with very few shingles; its minimum over all rounds
        out[empty] = sig.reshape(n_docs, width).min(axis=1)[empty // width]
    return out.reshape(n_docs, width)[:, :num_perm]


def minhash_signatures(
    texts: pl.Series | WordHashes, *, num_perm: int = 128, ngram: int = 2, seed: int = 0
) -> MinHashSignatures:
    """MinHash signatures of word ``ngram`` shingles (texts are normalised first), computed in chunks of prompts."""
    if num_perm < 1 or ngram < 1:
        raise ValueError("num_perm and ngram must be >= 1")
    words = texts if isinstance(texts, WordHashes) else word_hashes(texts, seed=seed)
    n = len(words)
    values = np.empty((n, num_perm), dtype=np.uint32)
    donors = _donors(num_perm, seed)
    for s in range(0, n, CHUNK):
        part = words.slice(s, CHUNK)
        hashes, doc = shingles(part, ngram)
        values[s : s + len(part)] = _oph(hashes, doc, len(part), num_perm, seed, donors)
    return MinHashSignatures(values, words.lengths == 0, num_perm, ngram, seed)


# ---------------------------------------------------------------------------------------------------- LSH


def lsh_params(threshold: float, num_perm: int, target: float = 0.99) -> tuple[int, int]:
    """``(bands, rows)``: the most rows per band whose candidate probability at ``threshold`` is >= ``target``.

    More rows per band mean fewer chance collisions (cheaper verification); the target keeps recall at the
    threshold. Falls back to one row per band when no setting reaches it.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    best = 1
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= target:
            best = rows
    return num_perm // best, best


def band_keys(values: U32, bands: int, rows: int, chunk: int = CHUNK) -> U64:
    """``(n, bands)`` 64-bit keys: band b hashes signature columns ``b * rows .. (b + 1) * rows - 1``.

    Columns are interleaved by round (see `_oph`), so a band's rows come from different one-permutation rounds.
    """
    n = len(values)
    keys = np.empty((n, bands), dtype=np.uint64)
    seeds = np.arange(1, bands + 1, dtype=np.uint64) * _POLY
    for s in range(0, n, chunk):
        block = values[s : s + chunk, : bands * rows].reshape(-1, bands, rows)
        key = keys[s : s + chunk]
        key[:] = seeds
        for j in range(rows):
            key ^= block[:, :, j]
            key *= np.uint64(0xD6E8FEB86659FD93)
            key ^= key >> np.uint64(32)
    return keys


def _bucket_edges(keys: U64, idx: I64, n: int) -> tuple[I64, I64]:
    """Pairs within equal-key buckets: each member with its predecessor and with the bucket's first member.

    The prompt index replaces the key's low bits, so one plain sort (much faster than an argsort) groups the
    buckets and carries their members; the remaining high bits still make chance collisions negligible.
    """
    bits = np.uint64(max(1, int(n - 1).bit_length()))
    packed = ((keys >> bits) << bits) | idx.astype(np.uint64)
    packed.sort()
    high = packed >> bits
    same = high[1:] == high[:-1]
    later = np.flatnonzero(same) + 1
    if not len(later):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    members = (packed & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    first = np.maximum.accumulate(np.where(np.concatenate(([True], ~same)), np.arange(len(packed)), 0))
    u = np.concatenate((members[later - 1], members[first[later]]))
    v = np.concatenate((members[later], members[later]))
    keep = u != v
    return u[keep], v[keep]


def candidate_pairs(sig: MinHashSignatures, bands: int, rows: int) -> tuple[I64, I64]:
    """Distinct prompt pairs ``(i < j)`` that share a band key in at least one band (prompts with no words skipped)."""
    keys = sig.band_keys(bands, rows)
    n = len(sig.values)
    idx = np.flatnonzero(~sig.empty)
    codes: list[I64] = []
    for b in range(bands):
        band = keys[:, b]
        u, v = _bucket_edges(band if len(idx) == n else band[idx], idx, n)
        codes.append(np.minimum(u, v) * n + np.maximum(u, v))
    code = np.unique(np.concatenate(codes)) if codes else np.empty(0, dtype=np.int64)
    return code // n, code % n


def components(n: int, left: I64, right: I64) -> I64:
    """Connected components as the smallest member index (union-find: min-label hooking plus pointer jumping)."""
    label = np.arange(n, dtype=np.int64)
    while len(left):
        lu, lv = label[left], label[right]
        m = np.minimum(lu, lv)
        np.minimum.at(label, lu, m)
        np.minimum.at(label, lv, m)
        while True:
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt
        if np.array_equal(label[left], label[right]):
            break
    return label


def near_duplicates(
    ids: pl.Series,
    texts: pl.Series,
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 2,
    seed: int = 0,
    bands: int | None = None,
    signatures: MinHashSignatures | None = None,
) -> pl.DataFrame:
    """Near-duplicate groups: one row per prompt that is not its group's representative.

    Columns: ``id``, ``duplicate_of`` (the smallest id in the connected component of verified pairs) and
    ``jaccard`` (estimated Jaccard similarity of the prompt to that representative; in a chain A~B~C it can be below
    ``threshold``). Candidates come from LSH (``bands`` x ``rows`` from `lsh_params` unless ``bands`` is given) and
    are kept when their estimated Jaccard is >= ``threshold``. ``signatures`` (made by `minhash_signatures` from the
    same texts in the same order) skips the MinHash pass, e.g. to share it with `prefgate.decontam.contamination`.
    """
    _check_ids(ids, texts)
    n = len(ids)
    if signatures is None:
        sig = minhash_signatures(texts, num_perm=num_perm, ngram=ngram, seed=seed)
    elif signatures.values.shape[0] != n:
        raise ValueError("signatures must have one row per text")
    else:
        sig = signatures
    if bands is None:
        bands, rows = lsh_params(threshold, sig.num_perm)
    else:
        rows = max(1, sig.num_perm // bands)
    left, right = candidate_pairs(sig, bands, rows)
    keep = sig.jaccard(left, right) >= threshold
    # union-find over id ranks, so each component's smallest label is its smallest id
    row_of_rank = ids.arg_sort().to_numpy().astype(np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[row_of_rank] = np.arange(n)
    label = components(n, rank[left[keep]], rank[right[keep]])
    member_ranks = np.flatnonzero(label != np.arange(n))
    members, reps = row_of_rank[member_ranks], row_of_rank[label[member_ranks]]
    return pl.DataFrame(
        {"id": ids.gather(members), "duplicate_of": ids.gather(reps), "jaccard": sig.jaccard(members, reps)}
    )


def _check_ids(ids: pl.Series, texts: pl.Series) -> None:
    if len(ids) != len(texts):
        raise ValueError(f"ids ({len(ids)}) and texts ({len(texts)}) differ in length")
    if ids.null_count():
        raise ValueError("ids must not be null")
    if ids.n_unique() != len(ids):
        raise ValueError("ids must be unique")
