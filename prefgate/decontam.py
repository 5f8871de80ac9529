"""Decontamination: find training prompts that overlap evaluation prompts, by three tests.

* ``exact``: equal normalised text (`prefgate.neardup.normalise`).
* ``ngram``: shared word n-grams (default 8 words) of the normalised texts. A prompt shorter than ``ngram`` words
  (but at least ``min_short_words``) is matched as a whole: its full word sequence is looked up among the other
  side's windows of the same length, so a short eval question inside a longer train prompt is still found (and a
  short train prompt inside an eval prompt). A pair is kept when ``overlap`` (the share of the train prompt's
  n-gram windows found in the eval prompt) or ``eval_overlap`` (the share of the eval prompt's distinct n-grams
  found in the train prompt) reaches ``min_overlap``; the second catches an eval prompt embedded in a longer one.
* ``minhash``: estimated Jaccard similarity of word-bigram sets >= ``jaccard_threshold`` (LSH candidates between
  the two sets, as in `prefgate.neardup`), for edited copies whose n-grams were broken by the edits.

One row per (train, eval) pair, labelled with the first test that found it in the order above.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from prefgate.neardup import (
    I64,
    U64,
    MinHashSignatures,
    Prepared,
    WordHashes,
    band_keys,
    lsh_params,
    minhash_signatures,
    ngram_hashes,
    prepare,
    rolling_ngrams,
)

__all__ = ["contamination"]

METHODS = ("exact", "ngram", "minhash")
_TRAIN_CHUNK = 1 << 17  # train prompts per n-gram pass
_PREFILTER_FILL = 8  # prefilter table slots per eval hash (about 1 in 8 misses passes the screen)

SCHEMA = {
    "train_id": pl.String,
    "eval_id": pl.String,
    "eval_source": pl.String,
    "method": pl.String,
    "overlap": pl.Float64,
    "eval_overlap": pl.Float64,
    "shared_ngrams": pl.Int64,
    "jaccard": pl.Float64,
    "sample": pl.String,
}


def _windows(words: WordHashes, m: int, g: U64) -> tuple[U64, I64, I64]:
    """Hashes of the ``m``-word windows that fit inside a prompt: (hash, prompt, position in the prompt)."""
    counts = np.maximum(words.lengths - m + 1, 0)
    doc = np.repeat(np.arange(len(words), dtype=np.int64), counts)
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    pos = np.arange(len(doc), dtype=np.int64) - offsets[doc]
    return g[words.starts[doc] + pos], doc, pos


class _Lookup:
    """Eval window hashes of one length, with a byte-table prefilter for scanning millions of train windows."""

    def __init__(self, hashes: U64, doc: I64) -> None:
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.doc = hashes[order], doc[order]
        bits = int(np.clip(np.ceil(np.log2(max(len(hashes), 1) * _PREFILTER_FILL)), 10, 26))
        self.shift = np.uint64(64 - bits)  # a byte table small enough to stay in cache while millions are screened
        self.table = np.zeros(1 << bits, dtype=bool)
        self.table[hashes >> self.shift] = True

    def find(self, queries: U64) -> tuple[I64, I64]:
        """(query index, eval prompt) for every query hash present (all eval prompts holding it)."""
        cand = np.flatnonzero(self.table[queries >> self.shift])
        lo = np.searchsorted(self.hashes, queries[cand], side="left")
        hi = np.searchsorted(self.hashes, queries[cand], side="right")
        n = hi - lo
        q = np.repeat(cand, n)
        starts = np.repeat(lo - np.cumsum(n) + n, n)
        return q, self.doc[np.arange(len(q)) + starts]


def _ngram_matches(train: WordHashes, ev: WordHashes, ngram: int, min_short_words: int) -> pl.DataFrame:
    """Raw matches: ti, ei, hash, m (window length), pos (its first word in the train prompt)."""
    short_e = (ev.lengths >= min_short_words) & (ev.lengths < ngram)
    short_t_lengths = {int(v) for v in np.unique(train.lengths) if min_short_words <= v < ngram}
    eval_lookup: dict[int, _Lookup] = {}  # m -> eval hashes train windows of length m are looked up in
    eval_windows: dict[int, tuple[U64, I64]] = {}  # m -> eval windows that short train prompts are looked up in
    for m, g in rolling_ngrams(ev, ngram):
        if m == ngram:
            h, d, _ = _windows(ev, m, g)
            eval_lookup[m] = _Lookup(h, d)
        elif m >= min_short_words:
            rows = np.flatnonzero(short_e & (ev.lengths == m))
            if len(rows):
                eval_lookup[m] = _Lookup(g[ev.starts[rows]], rows.astype(np.int64))
            if m in short_t_lengths:
                h, d, _ = _windows(ev, m, g)
                eval_windows[m] = (h, d)
    frames: list[pl.DataFrame] = []
    for s in range(0, len(train), _TRAIN_CHUNK):
        part = train.slice(s, _TRAIN_CHUNK)
        doc_of = np.repeat(np.arange(len(part), dtype=np.int64), part.lengths)
        pos_of = np.arange(len(doc_of), dtype=np.int64) - part.starts[doc_of]
        room = part.lengths[doc_of] - pos_of  # words from this one to the end of its prompt
        for m, g in rolling_ngrams(part, ngram):
            if m in eval_lookup:
                q, e = eval_lookup[m].find(g)
                fits = room[q] >= m
                q, e = q[fits], e[fits]
                frames.append(_frame(s + doc_of[q], e, g[q], m, pos_of[q]))
            if m in eval_windows:
                rows = np.flatnonzero(part.lengths == m)
                look = _Lookup(g[part.starts[rows]], rows.astype(np.int64))
                h, d = eval_windows[m]
                q, t = look.find(h)
                frames.append(_frame(s + t, d[q], h[q], m, np.zeros(len(q), dtype=np.int64)))
    if not frames:
        none = np.empty(0, dtype=np.int64)
        return _frame(none, none, np.empty(0, dtype=np.uint64), 0, none)
    return pl.concat(frames)


def _frame(ti: I64, ei: I64, h: U64, m: int, pos: I64) -> pl.DataFrame:
    return pl.DataFrame(
        {"ti": ti, "ei": ei, "hash": h, "m": np.full(len(ti), m, dtype=np.int64), "pos": pos},
        schema={"ti": pl.Int64, "ei": pl.Int64, "hash": pl.UInt64, "m": pl.Int64, "pos": pl.Int64},
    )


def _ngram_pairs(
    train: WordHashes, ev: WordHashes, ngram: int, min_short_words: int, min_overlap: float
) -> pl.DataFrame:
    """Per (ti, ei): shared windows, overlap, eval_overlap, and the first shared window (pos, m)."""
    raw = _ngram_matches(train, ev, ngram, min_short_words)
    pairs = raw.group_by("ti", "ei").agg(
        pl.col("hash").n_unique().alias("shared_ngrams"),
        pl.col("m").first(),
        pl.col("pos").min(),
    )
    ti, ei = pairs["ti"].to_numpy(), pairs["ei"].to_numpy()
    m, shared = pairs["m"].to_numpy(), pairs["shared_ngrams"].to_numpy()
    t_len, e_len = train.lengths[ti], ev.lengths[ei]
    eval_windows = np.where(m == ngram, _distinct_windows(ev, ngram)[ei], np.maximum(e_len - m + 1, 1))
    out = pairs.with_columns(
        pl.Series("overlap", np.minimum(shared / np.maximum(t_len - m + 1, 1), 1.0)),
        pl.Series("eval_overlap", np.minimum(shared / np.maximum(eval_windows, 1), 1.0)),
    )
    return out.filter(pl.max_horizontal("overlap", "eval_overlap") >= min_overlap)


def _distinct_windows(words: WordHashes, ngram: int) -> npt.NDArray[np.int64]:
    """Distinct ``ngram``-word windows per prompt (0 below ``ngram`` words)."""
    h, d, _ = _windows(words, ngram, ngram_hashes(words, ngram))
    counts = pl.DataFrame({"d": d, "h": h}).group_by("d").agg(pl.col("h").n_unique())
    out = np.zeros(len(words), dtype=np.int64)
    out[counts["d"].to_numpy()] = counts["h"].to_numpy()
    return out


def _exact_pairs(train_norm: pl.Series, eval_norm: pl.Series) -> pl.DataFrame:
    t = pl.DataFrame({"norm": train_norm, "ti": np.arange(len(train_norm), dtype=np.int64)})
    e = pl.DataFrame({"norm": eval_norm, "ei": np.arange(len(eval_norm), dtype=np.int64)})
    return t.join(e.filter(pl.col("norm") != ""), on="norm", how="inner").select("ti", "ei")


def _minhash_pairs(sig_t: MinHashSignatures, sig_e: MinHashSignatures, threshold: float) -> pl.DataFrame:
    """(ti, ei, jaccard) with a shared LSH band key and estimated Jaccard >= ``threshold``."""
    bands, rows = lsh_params(threshold, sig_t.num_perm)
    keys_t, keys_e = sig_t.band_keys(bands, rows), band_keys(sig_e.values, bands, rows)
    ev_ok = np.flatnonzero(~sig_e.empty)
    tis: list[I64] = []
    eis: list[I64] = []
    for kt, ke in zip(keys_t.T, keys_e.T, strict=True):
        look = _Lookup(ke[ev_ok], ev_ok.astype(np.int64))
        q, e = look.find(kt)
        tis.append(q.astype(np.int64))
        eis.append(e)
    pairs = pl.DataFrame({"ti": np.concatenate(tis), "ei": np.concatenate(eis)}).unique()
    ti, ei = pairs["ti"].to_numpy(), pairs["ei"].to_numpy()
    keep = ~sig_t.empty[ti]
    ti, ei = ti[keep], ei[keep]
    jac = _cross_jaccard(sig_t, sig_e, ti, ei)
    ok = jac >= threshold
    return pl.DataFrame({"ti": ti[ok], "ei": ei[ok], "jaccard": jac[ok]})


def _cross_jaccard(sig_t: MinHashSignatures, sig_e: MinHashSignatures, ti: I64, ei: I64) -> npt.NDArray[np.float64]:
    out = np.empty(len(ti), dtype=np.float64)
    for s in range(0, len(ti), 1 << 16):
        eq = sig_t.values[ti[s : s + (1 << 16)]] == sig_e.values[ei[s : s + (1 << 16)]]
        out[s : s + (1 << 16)] = np.count_nonzero(eq, axis=1) / sig_t.num_perm
    return out


def contamination(
    train_ids: pl.Series,
    train_texts: pl.Series,
    eval_ids: pl.Series,
    eval_texts: pl.Series,
    eval_sources: pl.Series,
    *,
    ngram: int = 8,
    min_overlap: float = 0.5,
    jaccard_threshold: float = 0.8,
    min_short_words: int = 4,
    num_perm: int = 128,
    minhash_ngram: int = 2,
    seed: int = 0,
    train: Prepared | None = None,
    train_signatures: MinHashSignatures | None = None,
) -> pl.DataFrame:
    """Train/eval overlaps, one row per (train_id, eval_id) pair (see the module docstring for the tests).

    Columns: ``train_id``, ``eval_id``, ``eval_source``, ``method`` ("exact" | "ngram" | "minhash"), ``overlap``
    (share of the train prompt's ``ngram``-word windows found in the eval prompt; 1.0 for exact), ``eval_overlap``
    (share of the eval prompt's distinct n-grams found in the train prompt), ``shared_ngrams`` (0 where none),
    ``jaccard`` (estimated word-bigram Jaccard), ``sample`` (the first shared n-gram of the normalised train text,
    or its first ``ngram`` words when no n-gram is shared). Ids are returned as strings.

    ``train`` (from `prefgate.neardup.prepare`) and ``train_signatures`` (`minhash_signatures` with the same
    ``num_perm``, ``minhash_ngram`` and ``seed``) let a caller reuse the work of a near-duplicate pass.
    """
    if not (len(eval_ids) == len(eval_texts) == len(eval_sources)):
        raise ValueError("eval_ids, eval_texts and eval_sources differ in length")
    if len(train_ids) != len(train_texts):
        raise ValueError("train_ids and train_texts differ in length")
    if ngram < 1 or not 0.0 < min_overlap <= 1.0:
        raise ValueError("ngram must be >= 1 and min_overlap in (0, 1]")
    tr = train if train is not None else prepare(train_texts, seed=seed)
    ev = prepare(eval_texts, seed=seed)
    sig_t = train_signatures or minhash_signatures(tr.words, num_perm=num_perm, ngram=minhash_ngram, seed=seed)
    sig_e = minhash_signatures(ev.words, num_perm=sig_t.num_perm, ngram=sig_t.ngram, seed=sig_t.seed)
    if len(sig_t.values) != len(train_ids):
        raise ValueError("train_signatures must have one row per train prompt")

    exact = _exact_pairs(tr.norm, ev.norm).with_columns(pl.lit(0).alias("rank"))
    grams = _ngram_pairs(tr.words, ev.words, ngram, min_short_words, min_overlap)
    minhash = _minhash_pairs(sig_t, sig_e, jaccard_threshold)
    found = (
        pl.concat(
            [
                exact,
                grams.select("ti", "ei", pl.lit(1).alias("rank")),
                minhash.select("ti", "ei", pl.lit(2).alias("rank")),
            ],
            how="vertical_relaxed",
        )
        .group_by("ti", "ei")
        .agg(pl.col("rank").min())
        .join(grams, on=["ti", "ei"], how="left")
        .sort("ti", "ei")
    )
    ti, ei = found["ti"].to_numpy(), found["ei"].to_numpy()
    is_exact = found["rank"] == 0
    norm_t = tr.norm.gather(found["ti"])
    words_t = norm_t.str.split(" ")
    has_gram = found["pos"].is_not_null()
    sample = (
        pl.DataFrame({"w": words_t, "pos": found["pos"].fill_null(0), "m": found["m"].fill_null(ngram)})
        .select(pl.col("w").list.slice(pl.col("pos"), pl.col("m")).list.join(" "))
        .to_series()
    )
    return pl.DataFrame(
        {
            "train_id": train_ids.gather(found["ti"]).cast(pl.String),
            "eval_id": eval_ids.gather(found["ei"]).cast(pl.String),
            "eval_source": eval_sources.gather(found["ei"]).cast(pl.String),
            "method": found["rank"].replace_strict(list(range(3)), list(METHODS), return_dtype=pl.String),
            "overlap": pl.select(pl.when(is_exact).then(1.0).otherwise(found["overlap"].fill_null(0.0))).to_series(),
            "eval_overlap": pl.select(
                pl.when(is_exact).then(1.0).otherwise(found["eval_overlap"].fill_null(0.0))
            ).to_series(),
            "shared_ngrams": found["shared_ngrams"].fill_null(0).cast(pl.Int64),
            "jaccard": _cross_jaccard(sig_t, sig_e, ti, ei),
            "sample": pl.select(
                pl.when(has_gram).then(sample).otherwise(words_t.list.head(ngram).list.join(" "))
            ).to_series(),
        },
        schema=SCHEMA,
    )
