"""Degenerate preference pairs: two sides that carry no preference signal between them.

A pair teaches a reward model or DPO nothing (or something wrong: "prefer the longer of two equal texts") when one
side is empty, both sides say the same thing up to case, whitespace and punctuation, one side is the other cut
short, or the two differ only by a few characters. Each such pair gets one row with the first reason that applies,
in this order:

- ``empty``: a side is empty or whitespace-only (similarity 0.0; both empty counts here too).
- ``identical``: equal after normalisation (lower case, NFKC, punctuation and symbols dropped, whitespace
  collapsed); similarity 1.0.
- ``truncation``: one normalised side is a strict prefix of the other, and at least ``min_prefix_chars`` long;
  similarity is the character ratio 2·len(short) / (len(a) + len(b)), which is what difflib gives a prefix.
- ``near_identical``: character similarity of the normalised texts ≥ ``near_threshold`` (``char_similarity``:
  difflib's ratio after trimming the common prefix and suffix, with ``autojunk=False`` so long texts are not
  misjudged by difflib's popularity heuristic).

The similarity is only computed where it can reach the threshold: 2·min(len) / (len(a) + len(b)) bounds it from
above (vectorised; it drops nearly all pairs), then difflib's ``quick_ratio`` bound. Pass the responses, not
prompt + response: two dialogues that share a long context are near-identical by characters whatever their last
turns say.
"""

from __future__ import annotations

from difflib import SequenceMatcher

import polars as pl

REASONS = ("empty", "identical", "truncation", "near_identical")
_SCHEMA = {"pair_id": pl.String, "reason": pl.String, "similarity": pl.Float64}


def normalise(text: pl.Expr) -> pl.Expr:
    """Lower case, NFKC, punctuation and symbols removed, runs of whitespace as one space, trimmed."""
    return (
        text.fill_null("")
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(r"[\p{P}\p{S}]+", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of a and b (binary search on slices: C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def char_similarity(a: str, b: str, threshold: float = 0.0) -> float | None:
    """Character ratio 2M / (len(a) + len(b)) of a and b, or None when it is below ``threshold``.

    M = common prefix + common suffix + difflib's matching characters between the two middles (``autojunk=False``).
    Trimming the shared ends first is the usual diff speed-up: shared dialogue context or boilerplate costs a slice
    compare instead of difflib's quadratic work. Upper bounds (lengths, then ``quick_ratio``) skip hopeless pairs.
    """
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    head = _common_prefix(a, b)
    tail = _common_prefix(a[head:][::-1], b[head:][::-1])
    mid_a, mid_b = a[head : len(a) - tail], b[head : len(b) - tail]
    bound = 2 * (head + tail + min(len(mid_a), len(mid_b))) / total
    if bound < threshold:
        return None
    if not mid_a or not mid_b:
        return bound
    matcher = SequenceMatcher(None, mid_a, mid_b, autojunk=False)
    quick = matcher.quick_ratio() * (len(mid_a) + len(mid_b)) / 2
    if 2 * (head + tail + quick) / total < threshold:
        return None
    matched = sum(block.size for block in matcher.get_matching_blocks())
    ratio = 2 * (head + tail + matched) / total
    return ratio if ratio >= threshold else None


def degenerate_pairs(
    pairs: pl.DataFrame,
    *,
    columns: tuple[str, str] = ("response_a", "response_b"),
    id_column: str = "pair_id",
    near_threshold: float = 0.97,
    min_prefix_chars: int = 1,
) -> pl.DataFrame:
    """``pair_id, reason, similarity`` for every degenerate pair (see the module docstring), sorted by pair_id.

    ``columns`` names the two sides (``("chosen", "rejected")`` for a preference set); ``id_column`` the key, which
    comes back as ``pair_id`` whatever its name. Pairs that are not degenerate are not returned.
    """
    a_col, b_col = columns
    a, b = pl.col("_a"), pl.col("_b")
    short, long_ = (
        pl.min_horizontal(a.str.len_chars(), b.str.len_chars()),
        pl.max_horizontal(a.str.len_chars(), b.str.len_chars()),
    )
    frame = pairs.select(
        pl.col(id_column).cast(pl.String).alias("pair_id"),
        normalise(pl.col(a_col)).alias("_a"),
        normalise(pl.col(b_col)).alias("_b"),
        (
            pl.col(a_col).fill_null("").str.strip_chars().eq("") | pl.col(b_col).fill_null("").str.strip_chars().eq("")
        ).alias("_empty"),
    )
    prefix = (short >= min_prefix_chars) & (
        pl.when(a.str.len_chars() < b.str.len_chars()).then(b.str.starts_with(a)).otherwise(a.str.starts_with(b))
    )
    length_bound = 2 * short / (short + long_)
    frame = frame.with_columns(
        pl.when(pl.col("_empty"))
        .then(pl.lit("empty"))
        .when(a == b)
        .then(pl.lit("identical"))
        .when(prefix)
        .then(pl.lit("truncation"))
        .alias("reason"),
        pl.when(pl.col("_empty")).then(0.0).otherwise(length_bound).alias("similarity"),
    )
    decided = frame.filter(pl.col("reason").is_not_null())
    candidates = frame.filter(pl.col("reason").is_null() & (pl.col("similarity") >= near_threshold))
    ratios = [
        char_similarity(x, y, near_threshold)
        for x, y in zip(candidates["_a"].to_list(), candidates["_b"].to_list(), strict=True)
    ]
    near = candidates.with_columns(
        pl.Series("similarity", ratios, dtype=pl.Float64), pl.lit("near_identical").alias("reason")
    ).filter(pl.col("similarity").is_not_null())
    cols = [pl.col(name).cast(dtype) for name, dtype in _SCHEMA.items()]
    return pl.concat([decided.select(cols), near.select(cols)]).sort("pair_id")
