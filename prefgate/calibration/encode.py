"""The overlap as small integer codes: one pass over the strings, then everything else is NumPy on integers.

Every label gets a *fine group* (judge x each slice's value, mixed radix); statistics are counted per fine group
and rolled up to each grouping of the calibration table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from prefgate.calibration.overlap import CHOICES
from prefgate.calibration.stats import FloatArray, IntArray

MAX_DENSE_FINE = 1 << 20  # above this many judge x slice-value combinations, number only those that occur
_MAX_TABLE_BITS = 20  # largest hash-to-code lookup table tried by dense_codes


@dataclass(frozen=True)
class Encoded:
    """The overlap as integer codes (one entry per label) plus the levels the codes index."""

    judges: list[str]
    slice_levels: dict[str, list[str]]
    fine: IntArray  # per label: fine group = judge x every slice value
    fine_digits: IntArray  # (n_fine, 1 + n_slices): judge code, then each slice's value code
    judge_choice: npt.NDArray[np.int8]
    human: npt.NDArray[np.int8]
    shown_first: npt.NDArray[np.int8]  # -1 = unknown
    longer: npt.NDArray[np.int8]  # 0 = a longer, 1 = b longer, -1 = equal / unknown
    self_side: npt.NDArray[np.int8]
    consistent: npt.NDArray[np.int8]  # 1 / 0, -1 = not checked
    prob: FloatArray  # NaN = none
    log_ratio: FloatArray
    pair_id: pl.Series


def dense_codes(values: pl.Series) -> tuple[list[str], IntArray]:
    """Sorted distinct values of a low-cardinality string column and each row's index into them.

    Hashes the strings once (64-bit, multithreaded) and maps each hash to its code through a small lookup table
    indexed by the hash's low bits, with the fewest bits that keep the distinct hashes apart: one gather per row,
    several times cheaper than a categorical cast, a string unique or a binary search on millions of rows. Columns
    with many distinct values (no collision-free table up to 2^20 entries) fall back to a binary search.
    """
    hashes = values.hash(seed=0)
    first = hashes.arg_unique().to_numpy()
    all_hash = hashes.to_numpy()
    uniq_hash = all_hash[first]
    names = values.gather(first).to_list()
    order = sorted(range(len(names)), key=lambda i: (names[i] is None, names[i] or ""))
    levels = [str(names[i]) for i in order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    for bits in range(max(len(order) - 1, 1).bit_length(), _MAX_TABLE_BITS + 1):
        mask = np.uint64((1 << bits) - 1)
        low = (uniq_hash & mask).astype(np.intp)
        if np.unique(low).size == low.size:
            table = np.zeros(1 << bits, dtype=np.int64)
            table[low] = rank
            return levels, table[(all_hash & mask).view(np.int64)]  # masked: fits int64, no conversion pass
    by_hash = np.argsort(uniq_hash)
    pos = np.searchsorted(uniq_hash[by_hash], all_hash)
    return levels, rank[by_hash][pos]


def _letter_code(col: str, letters: Sequence[str]) -> pl.Expr:
    """Index of the column's value in ``letters`` (Int8), -1 for null; values are validated beforehand."""
    code: pl.Expr = pl.lit(0, pl.Int8)
    for k, letter in enumerate(letters[1:], start=1):
        code = code + (pl.col(col) == letter).cast(pl.Int8) * k
    return pl.when(pl.col(col).is_null()).then(pl.lit(-1, pl.Int8)).otherwise(code).alias(col)


def encode(df: pl.DataFrame, slices: Sequence[str]) -> Encoded:
    judges, fine = dense_codes(df["judge_id"])
    levels: dict[str, list[str]] = {}
    digits = [fine]
    for s in slices:
        levels[s], code = dense_codes(df[s])
        fine = fine * len(levels[s]) + code
        digits.append(code)
    la, lb = pl.col("len_a"), pl.col("len_b")
    coded = df.select(
        _letter_code("choice", CHOICES),
        _letter_code("human", CHOICES),
        _letter_code("shown_first", ("a", "b")),
        _letter_code("self_side", ("a", "b")),
        pl.when(la > lb).then(0).when(lb > la).then(1).otherwise(-1).cast(pl.Int8).fill_null(-1).alias("longer"),
        pl.col("position_consistent").cast(pl.Int8).fill_null(-1).alias("consistent"),
        pl.col("probability_a").fill_null(float("nan")).alias("prob"),
        (la.clip(lower_bound=1).cast(pl.Float64).log() - lb.clip(lower_bound=1).cast(pl.Float64).log())
        .fill_null(0.0)
        .alias("log_ratio"),
    )
    radices = [len(judges), *[len(v) for v in levels.values()]]
    n_dense = int(np.prod(radices, dtype=np.int64))
    if n_dense > MAX_DENSE_FINE:  # many slice combinations: number only those that occur
        _, first, inverse = np.unique(fine, return_index=True, return_inverse=True)
        fine_digits = np.stack([d[first] for d in digits], axis=1).astype(np.int64)
        fine = inverse.astype(np.int64).reshape(-1)
    else:
        fine_digits = np.indices(radices).reshape(len(radices), -1).T.astype(np.int64)
    return Encoded(
        judges=judges,
        slice_levels=levels,
        fine=fine,
        fine_digits=fine_digits,
        judge_choice=coded["choice"].to_numpy(),
        human=coded["human"].to_numpy(),
        shown_first=coded["shown_first"].to_numpy(),
        longer=coded["longer"].to_numpy(),
        self_side=coded["self_side"].to_numpy(),
        consistent=coded["consistent"].to_numpy(),
        prob=coded["prob"].to_numpy().astype(np.float64, copy=False),
        log_ratio=coded["log_ratio"].to_numpy().astype(np.float64, copy=False),
        pair_id=df["pair_id"],
    )
