"""The slices judges are calibrated, gated and routed on: a pair's category, language, source and safety.

``safety`` is not a source column: a pair is ``unsafe`` when its category names a red-team subset (HH-RLHF's
harmless-base is a collection of attempts to elicit harm) or its prompt looks like a harmful request
(:func:`prefgate.set_audits.looks_unsafe`, keyword patterns), else ``safe``.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

UNSAFE_CATEGORIES = ("harmless-base", "red-team-attempts", "harmful_behavior")


def pair_slices(pairs: pl.DataFrame, unsafe_categories: Sequence[str] = UNSAFE_CATEGORIES) -> pl.DataFrame:
    """``pairs`` with a ``safety`` column and null slice values spelled ``unknown``."""
    from prefgate.set_audits import looks_unsafe

    flagged = looks_unsafe(pairs["prompt"]) if pairs.height else pl.Series([], dtype=pl.Boolean)
    unsafe = pl.col("category").is_in(list(unsafe_categories)).fill_null(False) | pl.lit(flagged)
    return pairs.with_columns(
        pl.when(unsafe).then(pl.lit("unsafe")).otherwise(pl.lit("safe")).alias("safety"),
        pl.col("category").fill_null("unknown"),
        pl.col("language").fill_null("unknown"),
    )
