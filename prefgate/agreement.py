"""Inter-rater agreement on long-format label tables.

Input is the project's long format: one row per label, with an item column (``pair_id``), a rater column
(``rater_id``) and a label column (``choice``). Labels may be any hashable scalar type Polars can hold (strings such
as ``"a"``/``"b"``/``"tie"``, integers, booleans); an item may carry any number of labels. Column names are keyword
arguments (``item_col``, ``rater_col``, ``label_col``).

Everything is columnar: one Polars sort (on a 64-bit hash of the item id, with a second hash to detect
collisions and an exact fallback) gives dense item, rater and category codes; one NumPy sort of a packed int64 key
orders labels by (item, rater); ``bincount`` builds the item x category count matrix, and every coefficient is a
closed form over those counts. There is no Python loop over labels or items. Pairwise Cohen's kappa enumerates
each item's label pairs with one vectorised step per within-item offset (the number of steps is the largest panel
size, not the number of items) and counts the per-pair confusion cells with one ``numpy.unique``. Counts are int64
and are cast to float64 before any product. Memory is O(labels + items x categories), plus O(same-item label
pairs) for :func:`pairwise_cohen`.

Coefficients:

* :func:`krippendorff_alpha` (nominal or ordinal), from the coincidence matrix (:func:`coincidence_matrix`);
* :func:`fleiss_kappa` for a fixed panel size;
* :func:`pairwise_cohen`: Cohen's kappa for every rater pair that shares items;
* :func:`percent_agreement`: the share of agreeing same-item label pairs;
* :func:`bootstrap_ci`: percentile interval from resampling items with replacement (vectorised for the built-in
  coefficients);
* :func:`agreement_report`: all of the above that apply, in one pass, as an :class:`AgreementReport`.

Undefined values never come back as a silent NaN. Scalar coefficients raise :class:`UndefinedAgreementError` (a
``ValueError``) with the reason (no item with two labels; every label the same category; ...); the report stores
``None`` and the reason; :func:`pairwise_cohen` returns a null ``kappa`` for a pair whose expected agreement is 1.
Malformed input (empty frame, missing columns, nulls, a rater labelling the same item twice, labels outside
``categories``) raises ``ValueError``.

References:
    Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for Communication,
    University of Pennsylvania. https://repository.upenn.edu/asc_papers/43

    Krippendorff, K. (2019). Content Analysis: An Introduction to Its Methodology, 4th ed., ch. 12. SAGE.

    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological Bulletin 76(5),
    378-382. https://doi.org/10.1037/h0031619

    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological Measurement
    20(1), 37-46. https://doi.org/10.1177/001316446002000104

    Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap, ch. 13 (percentile interval).
    Chapman & Hall.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "AgreementReport",
    "AgreementWarning",
    "BootstrapCI",
    "Coincidences",
    "Level",
    "StatisticName",
    "UndefinedAgreementError",
    "agreement_report",
    "bootstrap_ci",
    "coincidence_matrix",
    "fleiss_kappa",
    "krippendorff_alpha",
    "pairwise_cohen",
    "percent_agreement",
]

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]
Level: TypeAlias = Literal["nominal", "ordinal"]
StatisticName: TypeAlias = Literal["krippendorff_alpha", "fleiss_kappa", "percent_agreement"]

ITEM_COL = "pair_id"
RATER_COL = "rater_id"
LABEL_COL = "choice"

# Resample chunking for the vectorised bootstrap: at most this many (resample x item-type) weights at once.
_BOOT_CHUNK_CELLS = 4_000_000


class UndefinedAgreementError(ValueError):
    """The coefficient is mathematically undefined on this data (e.g. 0/0); the message says why."""


class AgreementWarning(UserWarning):
    """A bootstrap dropped resamples on which the coefficient is undefined."""


class Coincidences(NamedTuple):
    """Krippendorff's coincidence matrix ``matrix[c, k]`` over ``categories`` (rows/columns in that order)."""

    categories: tuple[object, ...]
    matrix: FloatArray


class BootstrapCI(NamedTuple):
    """A point estimate (on the full data) and its percentile bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float


# --------------------------------------------------------------------------------------------------------------
# Encoding: long frame -> dense integer codes (one Polars sort), and the item x category count matrix.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """Dense codes of a long label frame, rows sorted by item (then rater)."""

    item: IntArray  # item code per label, non-decreasing, 0..n_items-1
    label: IntArray  # category code per label
    rater: IntArray | None  # rater code per label (ids in sorted order), None without a rater column
    categories: tuple[object, ...]
    rater_ids: pl.Series | None
    n_items: int

    @property
    def n_labels(self) -> int:
        return int(self.item.size)

    def counts(self) -> IntArray:
        """``counts[u, c]``: number of labels of category ``c`` on item ``u`` (items x categories, int64)."""
        v = len(self.categories)
        flat = np.bincount(self.item * v + self.label, minlength=self.n_items * v)
        return flat.astype(np.int64, copy=False).reshape(self.n_items, v)


def _code_expr(col: str, dtype: pl.DataType, levels: pl.Series) -> pl.Expr:
    """Expression mapping ``col`` to the position of its value in ``levels`` (all values must be present)."""
    if dtype == pl.String:
        return pl.col(col).cast(pl.Enum(levels.to_list())).to_physical().cast(pl.Int32)
    codes = pl.Series(np.arange(levels.len(), dtype=np.int32))
    return pl.col(col).replace_strict(levels, codes, return_dtype=pl.Int32)


def _encode(
    df: pl.DataFrame,
    item_col: str,
    rater_col: str | None,
    label_col: str,
    categories: Sequence[Hashable] | None = None,
) -> _Encoded:
    """Validate a long label frame and encode it as dense integer codes (see module docstring for the rules)."""
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"expected a polars DataFrame, got {type(df).__name__}")
    cols = [item_col, label_col] + ([rater_col] if rater_col is not None else [])
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"label frame lacks column(s) {missing}; it has {df.columns}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"item, rater and label columns must differ, got {cols}")
    if df.height == 0:
        raise ValueError("label frame is empty: agreement needs at least one label")
    nulls = {c: n for c, n in df.select(pl.col(cols).null_count()).row(0, named=True).items() if n}
    if nulls:
        raise ValueError(f"null values in {nulls}; drop or fill them first (a missing label is an absent row)")

    # Categorical / Enum columns are handled through their string values.
    def plain(c: str) -> pl.Expr:
        dt = df.schema[c]
        return pl.col(c).cast(pl.String) if isinstance(dt, pl.Categorical | pl.Enum) else pl.col(c)

    base = df.select(plain(c) for c in cols)
    label_dtype = base.schema[label_col]

    observed = base.get_column(label_col).unique()
    if categories is None:
        cats = observed.sort()
    else:
        try:
            cats = pl.Series(label_col, list(categories), dtype=label_dtype, strict=True)
        except (TypeError, pl.exceptions.PolarsError) as exc:
            raise ValueError(f"categories {list(categories)!r} do not fit the label dtype {label_dtype}") from exc
        if cats.null_count() or cats.n_unique() != cats.len():
            raise ValueError(f"categories must be distinct and non-null, got {list(categories)!r}")
        unknown = observed.filter(~observed.is_in(cats.implode()))
        if unknown.len():
            raise ValueError(f"labels outside categories {cats.to_list()!r}: {unknown.sort().head(10).to_list()!r}")

    code_exprs = [_code_expr(label_col, label_dtype, cats).alias("_c")]
    rater_ids: pl.Series | None = None
    if rater_col is not None:
        rater_ids = base.get_column(rater_col).unique().sort()
        code_exprs.append(_code_expr(rater_col, base.schema[rater_col], rater_ids).alias("_r"))
    coded = _item_codes_hashed(base, item_col, code_exprs)
    if coded is None:  # two different items share both 64-bit hashes: use the exact (slower) path
        coded = _item_codes_exact(base, item_col, code_exprs)
    item = coded.get_column("_u").to_numpy()
    label = coded.get_column("_c").to_numpy()
    rater: IntArray | None = None
    if rater_ids is None:
        item, label = item.astype(np.int64), label.astype(np.int64)
    else:
        rater = coded.get_column("_r").to_numpy()
        item, rater, label = _sort_within_items(item, rater, label, rater_ids.len(), cats.len())
        dup = np.flatnonzero((item[1:] == item[:-1]) & (rater[1:] == rater[:-1]))
        if dup.size:
            u, r = int(item[dup[0]]), int(rater[dup[0]])
            example = coded.filter(pl.col("_u") == u).row(0, named=True)
            item_value = (
                example["_i"]
                if "_i" in example
                else base.filter(pl.col(item_col).hash(_HASH_SEEDS[0]) == example["_h"]).item(0, item_col)
            )
            raise ValueError(
                f"{dup.size} duplicate (item, rater) label(s), e.g. {item_col}={item_value!r}, "
                f"{rater_col}={rater_ids[r]!r}; keep one label per rater and item"
            )
    return _Encoded(
        item=item,
        label=label,
        rater=rater,
        categories=tuple(cats.to_list()),
        rater_ids=rater_ids,
        n_items=int(item[-1]) + 1,
    )


# Two independently seeded 64-bit hashes of the item id. Rows are grouped by the first (an integer sort is several
# times faster than sorting string ids); the second detects a collision of the first, which sends the frame to the
# exact path. A wrong grouping needs two ids to collide in the 64-bit hash and in the 32 bits kept of the second
# (odds ~ n_items^2 / 2^97: ~1e-15 for 10^7 items).
_HASH_SEEDS = (0x5EED_A11E, 0x0B5E_55ED)


def _item_codes_hashed(base: pl.DataFrame, item_col: str, code_exprs: list[pl.Expr]) -> pl.DataFrame | None:
    """Rows sorted by item hash with dense item codes ``_u`` (plus the code columns); None on a hash collision."""
    coded = (
        base.lazy()
        .select(
            pl.col(item_col).hash(_HASH_SEEDS[0]).alias("_h"),
            (pl.col(item_col).hash(_HASH_SEEDS[1]) % 2**32).cast(pl.UInt32).alias("_h2"),
            *code_exprs,
        )
        .sort("_h")
        .with_columns(
            (pl.col("_h") != pl.col("_h").shift(1)).fill_null(True).alias("_new"),
            (pl.col("_h2") != pl.col("_h2").shift(1)).fill_null(True).alias("_new2"),
        )
        .with_columns((pl.col("_new").cum_sum() - 1).alias("_u"))
        .collect()
    )
    if coded.select((~pl.col("_new") & pl.col("_new2")).any()).item():
        return None
    return coded.drop("_h2", "_new", "_new2")


def _item_codes_exact(base: pl.DataFrame, item_col: str, code_exprs: list[pl.Expr]) -> pl.DataFrame:
    """Rows sorted by item id with dense item codes ``_u`` (plus the code columns): exact, slower for strings."""
    new_item = pl.col("_i") != pl.col("_i").shift(1)
    return (
        base.lazy()
        .select(pl.col(item_col).alias("_i"), *code_exprs)
        .sort("_i")
        .with_columns((new_item.fill_null(True).cum_sum() - 1).alias("_u"))
        .collect()
    )


def _sort_within_items(
    item: npt.NDArray[np.integer],
    rater: npt.NDArray[np.integer],
    label: npt.NDArray[np.integer],
    n_raters: int,
    n_cats: int,
) -> tuple[IntArray, IntArray, IntArray]:
    """Reorder labels by (item, rater) as int64 codes: one sort of a packed key (``lexsort`` if it would overflow)."""
    n_items = int(item[-1]) + 1
    if float(n_items) * n_raters * n_cats < 2.0**62:
        key = item.astype(np.int64)  # in place from here on: these arrays are as long as the frame
        key *= n_raters
        key += rater
        key *= n_cats
        key += label
        key.sort()
        label = key % n_cats
        key //= n_cats
        rater = key % n_raters
        key //= n_raters
        return key, rater, label
    order = np.lexsort((rater, item))
    return item[order].astype(np.int64), rater[order].astype(np.int64), label[order].astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# Closed forms over count matrices. Every function takes a leading batch axis (bootstrap resamples) or none.
# --------------------------------------------------------------------------------------------------------------


def _coincidences(counts: IntArray, weights: FloatArray | None = None) -> FloatArray:
    """Coincidence matrix (optionally one per row of ``weights``, a resamples x items matrix).

    ``o[c, k] = sum_u w_u (n_uc n_uk - [c == k] n_uc) / (m_u - 1)`` over items with ``m_u >= 2`` labels.
    """
    m = counts.sum(axis=1)
    keep = m >= 2
    x = counts[keep].astype(np.float64)
    inv = 1.0 / (m[keep] - 1.0)
    xs = x * inv[:, None]
    if weights is None:
        return np.asarray(xs.T @ x - np.diag(xs.sum(axis=0)), dtype=np.float64)
    w = weights[:, keep]
    out = np.einsum("bu,uc,uk->bck", w, xs, x, optimize=True)
    diag = w @ xs
    idx = np.arange(counts.shape[1])
    out[:, idx, idx] -= diag
    return np.asarray(out, dtype=np.float64)


def _ordinal_delta(n_c: FloatArray) -> FloatArray:
    """Krippendorff's ordinal distance ``(sum_{g=c..k} n_g - (n_c + n_k)/2)^2`` for marginals ``n_c`` (..., V)."""
    v = n_c.shape[-1]
    cum = np.cumsum(n_c, axis=-1)
    i = np.arange(v)
    lo = np.minimum(i[:, None], i[None, :])
    hi = np.maximum(i[:, None], i[None, :])
    between = cum[..., hi] - cum[..., lo] + n_c[..., lo]
    half = (n_c[..., :, None] + n_c[..., None, :]) / 2.0
    return np.asarray((between - half) ** 2, dtype=np.float64)


def _alpha_ordinal(o: FloatArray, n_c: FloatArray) -> FloatArray:
    """``alpha = 1 - (n - 1) sum o_ck d_ck / sum n_c n_k d_ck`` (NaN where undefined), batched over axis 0."""
    d = _ordinal_delta(n_c)
    n = n_c.sum(axis=-1)
    observed = (o * d).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * d).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(expected > 0, 1.0 - (n - 1.0) * observed / expected, np.nan), dtype=np.float64)


def _alpha_nominal(n_c: FloatArray, disagree: FloatArray) -> FloatArray:
    """``alpha = 1 - (n - 1) D / (n^2 - sum_c n_c^2)`` with ``D = sum_{c != k} o_ck`` (NaN where undefined)."""
    n = n_c.sum(axis=-1)
    expected = n * n - (n_c * n_c).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(expected > 0, 1.0 - (n - 1.0) * disagree / expected, np.nan), dtype=np.float64)


def _nominal_disagreement(counts: IntArray) -> FloatArray:
    """Per item: ``(m_u^2 - sum_c n_uc^2) / (m_u - 1)`` (its off-diagonal coincidence mass), 0 if ``m_u < 2``."""
    m = counts.sum(axis=1).astype(np.float64)
    sq = (counts.astype(np.float64) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(m >= 2, (m * m - sq) / (m - 1.0), 0.0), dtype=np.float64)


def _alpha_undefined_reason(counts: IntArray, categories: tuple[object, ...]) -> str | None:
    """Why alpha is undefined on ``counts`` (None when it is defined)."""
    pairable = counts[counts.sum(axis=1) >= 2]
    if pairable.shape[0] == 0:
        return "no item has two or more labels, so there is no pairable value"
    used = np.flatnonzero(pairable.sum(axis=0))
    if used.size < 2:
        return f"every pairable label is {categories[int(used[0])]!r}: expected disagreement is 0 and alpha is 0/0"
    return None


def _alpha_from_counts(counts: IntArray, level: Level, categories: tuple[object, ...]) -> float:
    reason = _alpha_undefined_reason(counts, categories)
    if reason is not None:
        raise UndefinedAgreementError(f"Krippendorff's alpha is undefined: {reason}")
    pairable = counts[counts.sum(axis=1) >= 2]
    n_c = pairable.sum(axis=0).astype(np.float64)
    if level == "nominal":
        return float(_alpha_nominal(n_c, np.asarray(_nominal_disagreement(pairable).sum())))
    return float(_alpha_ordinal(_coincidences(pairable), n_c))


def _fleiss_sums(counts: IntArray) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """Category totals, sum of squared counts, number of items and panel size of a fixed-panel count matrix."""
    x = counts.astype(np.float64)
    n_items = np.asarray(float(counts.shape[0]))
    return x.sum(axis=0), np.asarray((x * x).sum()), n_items, int(counts[0].sum())


def _fleiss_parts(totals: FloatArray, sum_sq: FloatArray, n_items: FloatArray, n: int) -> FloatArray:
    """Fleiss' kappa from sums, batched over a leading resample axis (NaN where undefined).

    ``kappa = (P - Pe) / (1 - Pe)`` with ``P = (S2 - N n) / (N n (n - 1))`` (the mean of the per-item ``P_u``),
    ``Pe = sum_c (T_c / (N n))^2``, ``S2 = sum_u sum_c n_uc^2`` and category totals ``T_c``.
    """
    nn = n_items * n
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bar = (sum_sq - nn) / (nn * (n - 1))
        p_e = (totals * totals).sum(axis=-1) / (nn * nn)
        return np.asarray(np.where(p_e < 1.0, (p_bar - p_e) / (1.0 - p_e), np.nan), dtype=np.float64)


def _fleiss_select(counts: IntArray, n_raters: int | None) -> tuple[IntArray, int]:
    """Rows of ``counts`` that Fleiss' kappa uses and the panel size; ValueError on an unequal panel."""
    m = counts.sum(axis=1)
    sizes = np.unique(m)
    if n_raters is None:
        if sizes.size > 1:
            raise ValueError(
                f"Fleiss' kappa needs the same number of labels on every item; items here have between "
                f"{int(sizes[0])} and {int(sizes[-1])}. Pass n_raters=k to use only the items with exactly k labels"
            )
        n = int(sizes[0])
        rows = counts
    else:
        if n_raters < 2:
            raise ValueError(f"n_raters must be at least 2, got {n_raters}")
        n = n_raters
        rows = counts[m == n]
        if rows.shape[0] == 0:
            raise UndefinedAgreementError(
                f"Fleiss' kappa is undefined: no item has exactly {n} labels (sizes present: {sizes.tolist()})"
            )
    if n < 2:
        raise UndefinedAgreementError("Fleiss' kappa is undefined: every item has a single label")
    return rows, n


def _fleiss_value(rows: IntArray, n: int, categories: tuple[object, ...]) -> float:
    totals = rows.sum(axis=0)
    used = np.flatnonzero(totals)
    if used.size < 2:
        raise UndefinedAgreementError(
            f"Fleiss' kappa is undefined: every label is {categories[int(used[0])]!r}, so expected agreement is 1"
        )
    return float(_fleiss_parts(*_fleiss_sums(rows)))


def _pair_agreement_parts(counts: IntArray) -> tuple[FloatArray, FloatArray]:
    """Per item: agreeing ordered label pairs ``sum_c n_uc (n_uc - 1)`` and all ordered pairs ``m_u (m_u - 1)``."""
    x = counts.astype(np.float64)
    m = x.sum(axis=1)
    return (x * (x - 1.0)).sum(axis=1), m * (m - 1.0)


def _percent_from_counts(counts: IntArray) -> float:
    agree, pairs = _pair_agreement_parts(counts)
    total = pairs.sum()
    if total == 0:
        raise UndefinedAgreementError("percent agreement is undefined: no item has two or more labels")
    return float(agree.sum() / total)


# --------------------------------------------------------------------------------------------------------------
# Public coefficients
# --------------------------------------------------------------------------------------------------------------


def coincidence_matrix(
    df: pl.DataFrame,
    categories: Sequence[Hashable] | None = None,
    *,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> Coincidences:
    """Krippendorff's coincidence matrix of a long label frame.

    For items ``u`` with ``m_u >= 2`` labels and ``n_uc`` labels of category ``c``::

        o_ck = sum_u (n_uc * n_uk - [c == k] * n_uc) / (m_u - 1)

    i.e. every ordered pair of labels on the same item, each item weighted ``1 / (m_u - 1)`` so that every
    pairable label contributes exactly one unit; ``sum_k o_ck = n_c`` (pairable labels of category ``c``).
    Items with one label are not pairable and contribute nothing (Krippendorff 2011, sec. "C").

    Args:
        df: long label frame, one row per label.
        categories: category order of the rows/columns; defaults to the sorted observed labels.
        item_col, rater_col, label_col: column names (``rater_col=None``: no rater ids, no duplicate check).

    Returns:
        :class:`Coincidences` ``(categories, matrix)``.
    """
    enc = _encode(df, item_col, rater_col, label_col, categories)
    return Coincidences(enc.categories, _coincidences(enc.counts()))


def krippendorff_alpha(
    df: pl.DataFrame,
    level: Level = "nominal",
    categories: Sequence[Hashable] | None = None,
    *,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> float:
    """Krippendorff's alpha from the coincidence matrix (Krippendorff 2011; Content Analysis, ch. 12).

    With the coincidence matrix ``o`` (see :func:`coincidence_matrix`), marginals ``n_c = sum_k o_ck`` and
    ``n = sum_c n_c`` (the number of pairable labels)::

        alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_{c,k} o_ck d_ck / sum_{c,k} n_c n_k d_ck

    Nominal distance: ``d_ck = [c != k]``. Ordinal distance (ranks over ``categories``, in the given order)::

        d_ck = (sum_{g = c..k} n_g - (n_c + n_k) / 2) ** 2

    Items with fewer than two labels are ignored, as Krippendorff defines; any number of raters per item is
    allowed. Matches ``krippendorff.alpha(reliability_data=..., level_of_measurement=...)`` (to float rounding).

    Args:
        df: long label frame, one row per label.
        level: ``"nominal"`` (default) or ``"ordinal"``.
        categories: the category order; required for ``"ordinal"`` (e.g. ``["a", "tie", "b"]``), optional for
            nominal (then a whitelist: labels outside it raise ``ValueError``).
        item_col, rater_col, label_col: column names (``rater_col=None``: no rater ids, no duplicate check).

    Returns:
        alpha <= 1 (1: perfect agreement, 0: agreement at chance level, below 0: systematic disagreement).

    Raises:
        UndefinedAgreementError: no item has two labels, or every pairable label is the same category
            (``D_e = 0``: alpha is 0/0).
        ValueError: malformed input (see module docstring), unknown ``level``, ordinal without ``categories``.

    Examples:
        >>> df = pl.DataFrame({"pair_id": ["x", "x", "y", "y", "z", "z"], "rater_id": ["A", "B"] * 3,
        ...                    "choice": ["Yes", "Yes", "No", "No", "Yes", "No"]})
        >>> round(krippendorff_alpha(df), 6)
        0.444444
    """
    _check_level(level, categories)
    enc = _encode(df, item_col, rater_col, label_col, categories)
    return _alpha_from_counts(enc.counts(), level, enc.categories)


def fleiss_kappa(
    df: pl.DataFrame,
    *,
    n_raters: int | None = None,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> float:
    """Fleiss' kappa for a fixed number of labels per item (Fleiss 1971).

    With ``N`` items, ``n`` labels per item and ``n_uc`` labels of category ``c`` on item ``u``::

        P_u   = (sum_c n_uc^2 - n) / (n (n - 1))       agreement on item u
        P     = mean_u P_u
        p_c   = sum_u n_uc / (N n)
        P_e   = sum_c p_c^2
        kappa = (P - P_e) / (1 - P_e)

    The raters need not be the same people on every item, but every item must have the same number of labels.
    By default an unequal panel raises ``ValueError``; with ``n_raters=k`` only the items with exactly ``k``
    labels are used (the others are dropped). Matches ``statsmodels.stats.inter_rater.fleiss_kappa``.

    Args:
        df: long label frame, one row per label.
        n_raters: restrict to the items with exactly this many labels (>= 2); default: require a fixed panel.
        item_col, rater_col, label_col: column names (``rater_col=None``: no rater ids, no duplicate check).

    Returns:
        kappa (1: perfect agreement, 0: chance level, negative: below chance).

    Raises:
        ValueError: unequal panel without ``n_raters``, ``n_raters < 2``, malformed input.
        UndefinedAgreementError: one label per item, no item with ``n_raters`` labels, or a single category
            used (``P_e = 1``).
    """
    enc = _encode(df, item_col, rater_col, label_col)
    rows, n = _fleiss_select(enc.counts(), n_raters)
    return _fleiss_value(rows, n, enc.categories)


def percent_agreement(
    df: pl.DataFrame,
    *,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> float:
    """Pairwise percent agreement: the share of same-item label pairs that agree.

    Pooled over all (unordered) pairs of labels on the same item::

        agreement = sum_u sum_c n_uc (n_uc - 1) / sum_u m_u (m_u - 1)

    so an item with ``m_u`` labels weighs ``m_u (m_u - 1) / 2`` pairs. Not chance-corrected. Items with one
    label have no pair and do not count.

    Raises:
        UndefinedAgreementError: no item has two or more labels.
    """
    enc = _encode(df, item_col, rater_col, label_col)
    return _percent_from_counts(enc.counts())


_COHEN_SCHEMA_TAIL: dict[str, pl.DataType] = {
    "n_overlap": pl.Int64(),
    "agreement": pl.Float64(),
    "expected_agreement": pl.Float64(),
    "kappa": pl.Float64(),
}


def pairwise_cohen(
    df: pl.DataFrame,
    *,
    min_overlap: int = 1,
    item_col: str = ITEM_COL,
    rater_col: str = RATER_COL,
    label_col: str = LABEL_COL,
) -> pl.DataFrame:
    """Cohen's kappa for every rater pair that shares at least ``min_overlap`` items (Cohen 1960).

    For raters ``a`` and ``b`` on their ``n`` shared items, with ``n_ck`` shared items labelled ``c`` by ``a`` and
    ``k`` by ``b`` (row sums ``r_c``, column sums ``s_c``)::

        p_o   = sum_c n_cc / n                       (agreement)
        p_e   = sum_c r_c s_c / n^2                  (expected_agreement, from the pair's own marginals)
        kappa = (p_o - p_e) / (1 - p_e)

    Columnar: the labels are sorted by (item, rater), every within-item label pair is enumerated at once per
    offset, and one ``numpy.unique`` counts the confusion cells of all pairs; marginals come from ``bincount``.
    Work and memory are linear in the number of same-item label pairs, ``sum_u m_u (m_u - 1) / 2``.
    Matches ``sklearn.metrics.cohen_kappa_score`` on each pair.

    Degenerate pairs: when ``p_e == 1`` (both raters used one and the same category on every shared item; then
    ``p_o == 1`` too) kappa is 0/0 and is returned as **null** (sklearn returns NaN with a warning). Such rows
    are kept, with ``agreement`` 1.0 and ``expected_agreement`` 1.0, so they can be told apart.

    Args:
        df: long label frame, one row per label; the rater column is required.
        min_overlap: keep pairs with at least this many shared items (>= 1).
        item_col, rater_col, label_col: column names.

    Returns:
        One row per rater pair, ``rater_a < rater_b`` (in the rater ids' sort order), sorted by both:
        ``rater_a``, ``rater_b``, ``n_overlap`` (Int64), ``agreement``, ``expected_agreement``, ``kappa``
        (Float64, null when undefined). Empty (same schema) when no pair qualifies.
    """
    if min_overlap < 1:
        raise ValueError(f"min_overlap must be >= 1, got {min_overlap}")
    return _pairwise_from_encoded(_encode(df, item_col, rater_col, label_col), min_overlap)


def _pairwise_from_encoded(enc: _Encoded, min_overlap: int) -> pl.DataFrame:
    """:func:`pairwise_cohen` on an encoded frame (which must have rater codes)."""
    assert enc.rater is not None and enc.rater_ids is not None
    rater_ids = enc.rater_ids
    n_r = rater_ids.len()
    v = len(enc.categories)
    schema: dict[str, pl.DataType] = {"rater_a": rater_ids.dtype, "rater_b": rater_ids.dtype, **_COHEN_SCHEMA_TAIL}
    if float(n_r) * n_r * v * v >= 2.0**62:
        raise ValueError(f"too many raters x categories for pair keys ({n_r} x {v})")

    keys = _pair_cell_keys(enc.item, enc.rater, enc.label, n_r, v)
    if keys.size == 0:
        return pl.DataFrame(schema=schema)
    cells, cell_n = np.unique(keys, return_counts=True)
    vv = v * v
    pair = cells // vv
    ca = (cells % vv) // v
    cb = cells % v
    new_pair = np.empty(pair.size, dtype=bool)
    new_pair[0] = True
    np.not_equal(pair[1:], pair[:-1], out=new_pair[1:])
    pidx = np.cumsum(new_pair) - 1
    pair_keys = pair[new_pair]
    n_pairs = int(pair_keys.size)
    weights = cell_n.astype(np.float64)
    n = np.bincount(pidx, weights=weights, minlength=n_pairs).astype(np.int64)
    agree = np.bincount(pidx, weights=weights * (ca == cb), minlength=n_pairs).astype(np.int64)
    rows = np.bincount(pidx * v + ca, weights=weights, minlength=n_pairs * v).reshape(n_pairs, v)
    colsum = np.bincount(pidx * v + cb, weights=weights, minlength=n_pairs * v).reshape(n_pairs, v)
    pe_num = np.rint((rows * colsum).sum(axis=1)).astype(np.int64)  # exact: integers below 2**53

    keep = n >= min_overlap
    n, agree, pe_num, pair_keys = n[keep], agree[keep], pe_num[keep], pair_keys[keep]
    nf = n.astype(np.float64)
    n2 = nf * nf
    defined = pe_num != n * n
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (nf * agree - pe_num) / (n2 - pe_num)
    return pl.DataFrame(
        {
            "rater_a": rater_ids.gather(pair_keys // n_r),
            "rater_b": rater_ids.gather(pair_keys % n_r),
            "n_overlap": n,
            "agreement": agree / nf,
            "expected_agreement": pe_num / n2,
            "kappa": np.where(defined, kappa, np.nan),
        },
        schema=schema,
    ).with_columns(pl.col("kappa").fill_nan(None))


def _pair_cell_keys(item: IntArray, rater: IntArray, label: IntArray, n_r: int, v: int) -> IntArray:
    """One key ``((a * R + b) * V + c_a) * V + c_b`` per unordered same-item label pair (rater a < b).

    Labels are sorted by (item, rater), so the label ``k`` positions after another one on the same item belongs to
    a later rater. Step ``k`` pairs every label with the one ``k`` positions ahead; only labels with at least ``k``
    more labels on their item stay active, so the total work is the number of pairs.
    """
    n = item.size
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, n])
    remaining = np.repeat(starts + sizes, sizes) - np.arange(n) - 1  # labels after this one on its item
    total = int((sizes * (sizes - 1) // 2).sum())
    left = rater * (n_r * v * v) + label * v
    right = rater * (v * v) + label
    keys = np.empty(total, dtype=np.int64)
    active = np.flatnonzero(remaining >= 1)
    pos, k = 0, 1
    while active.size:
        np.add(left[active], right[active + k], out=keys[pos : pos + active.size])
        pos += active.size
        k += 1
        active = active[remaining[active] >= k]
    return keys


# --------------------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------------------


def _item_types(counts: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct rows of ``counts`` and their multiplicities.

    Items with the same count vector are exchangeable for every coefficient here, so resampling ``N`` items with
    replacement equals drawing ``Multinomial(N, multiplicity / N)`` weights over the distinct rows.
    """
    if counts.shape[0] == 0:
        return counts, np.zeros(0, dtype=np.int64)
    base = int(counts.max()) + 1
    v = counts.shape[1]
    if v * math.log2(base) < 62:
        key = counts @ (base ** np.arange(v, dtype=np.int64))
        _, first, mult = np.unique(key, return_index=True, return_counts=True)
        return counts[first], mult.astype(np.int64)
    types, mult = np.unique(counts, axis=0, return_counts=True)
    return types.astype(np.int64), mult.astype(np.int64)


def _resample_weights(rng: np.random.Generator, mult: IntArray, n_boot: int) -> Iterator[FloatArray]:
    """Bootstrap weights over item types, a chunk of resamples at a time: each row is ``Multinomial(N, mult / N)``."""
    n = int(mult.sum())
    p = mult / n
    chunk = max(1, min(n_boot, _BOOT_CHUNK_CELLS // max(1, mult.size)))
    for start in range(0, n_boot, chunk):
        yield rng.multinomial(n, p, size=min(chunk, n_boot - start)).astype(np.float64)


def _boot_alpha(counts: IntArray, level: Level, rng: np.random.Generator, n_boot: int) -> FloatArray:
    pairable = counts[counts.sum(axis=1) >= 2]
    types, mult = _item_types(pairable)
    nominal_d = _nominal_disagreement(types)
    typesf = types.astype(np.float64)
    stats = []
    for w in _resample_weights(rng, mult, n_boot):
        n_c = w @ typesf
        if level == "nominal":
            stats.append(_alpha_nominal(n_c, w @ nominal_d))
        else:
            stats.append(_alpha_ordinal(_coincidences(types, w), n_c))
    return np.concatenate(stats)


def _boot_fleiss(rows: IntArray, n: int, rng: np.random.Generator, n_boot: int) -> FloatArray:
    types, mult = _item_types(rows)
    typesf = types.astype(np.float64)
    sq = (typesf * typesf).sum(axis=1)
    n_items = np.asarray(float(rows.shape[0]))
    return np.concatenate([_fleiss_parts(w @ typesf, w @ sq, n_items, n) for w in _resample_weights(rng, mult, n_boot)])


def _boot_percent(counts: IntArray, rng: np.random.Generator, n_boot: int) -> FloatArray:
    pairable = counts[counts.sum(axis=1) >= 2]
    types, mult = _item_types(pairable)
    agree, pairs = _pair_agreement_parts(types)
    return np.concatenate([(w @ agree) / (w @ pairs) for w in _resample_weights(rng, mult, n_boot)])


def _boot_generic(
    df: pl.DataFrame,
    statistic: Callable[[pl.DataFrame], float],
    item_col: str,
    rng: np.random.Generator,
    n_boot: int,
) -> FloatArray:
    """Resample items of the frame itself (one join per resample); resampled items get new integer ids."""
    items = df.get_column(item_col).unique()
    out = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        pick = pl.DataFrame(
            {"_boot_item": np.arange(items.len()), item_col: items.gather(rng.integers(0, items.len(), items.len()))}
        )
        sample = pick.join(df, on=item_col, how="inner").drop(item_col).rename({"_boot_item": item_col})
        try:
            out[b] = statistic(sample)
        except UndefinedAgreementError:
            out[b] = np.nan
    return out


def _percentile_interval(stats: FloatArray, alpha: float, name: str) -> tuple[float, float]:
    valid = stats[np.isfinite(stats)]
    if valid.size == 0:
        raise UndefinedAgreementError(f"{name} is undefined on every bootstrap resample")
    dropped = stats.size - valid.size
    if dropped:
        warnings.warn(
            f"{name}: {dropped} of {stats.size} bootstrap resamples are undefined and were left out of the interval",
            AgreementWarning,
            stacklevel=3,
        )
    low, high = np.quantile(valid, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    df: pl.DataFrame,
    statistic: StatisticName | Callable[[pl.DataFrame], float] = "krippendorff_alpha",
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    level: Level = "nominal",
    categories: Sequence[Hashable] | None = None,
    n_raters: int | None = None,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> BootstrapCI:
    """Percentile bootstrap interval of an agreement coefficient, resampling items with replacement.

    Each resample draws as many items as the coefficient uses, with replacement, and recomputes it; the interval
    is the ``alpha/2`` and ``1 - alpha/2`` quantiles (linear interpolation) of the resampled values (Efron &
    Tibshirani 1993, ch. 13). The estimate is the coefficient on the full data, not the bootstrap mean.

    Built-in coefficients (``"krippendorff_alpha"``, ``"fleiss_kappa"``, ``"percent_agreement"``, or those
    functions themselves) are vectorised: each is a closed form over per-item count vectors, and items with equal
    count vectors are exchangeable, so a resample is a multinomial weight vector over the distinct count vectors
    and 1,000 resamples cost a few matrix products: O(n_boot x distinct count vectors), e.g. at most 46 distinct
    vectors for a/b/tie with 3-5 labels per item, however many items. The population is the items the
    coefficient uses: items with two or more labels for alpha and percent agreement (one-label items do not enter
    them), the items with exactly ``n_raters`` labels for Fleiss. Any other callable ``f(frame) -> float`` is
    recomputed on resampled frames of all items (one join per resample; resampled items get new integer ids in
    ``item_col``).

    Resamples on which the coefficient is undefined (e.g. every resampled label the same) are left out of the
    interval with an :class:`AgreementWarning`; if all are, :class:`UndefinedAgreementError` is raised.

    Args:
        df: long label frame, one row per label.
        statistic: which coefficient (name or function), or a callable on a frame.
        n_boot: number of resamples (>= 1).
        seed: seed of ``numpy.random.default_rng``.
        alpha: 1 - confidence level (0.05 gives a 95% interval).
        level, categories: passed to Krippendorff's alpha.
        n_raters: passed to Fleiss' kappa.
        item_col, rater_col, label_col: column names.

    Returns:
        :class:`BootstrapCI` ``(estimate, low, high)``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    name = _statistic_name(statistic)
    if name is None:
        assert callable(statistic)
        estimate = float(statistic(df))
        stats = _boot_generic(df, statistic, item_col, rng, n_boot)
        return BootstrapCI(estimate, *_percentile_interval(stats, alpha, getattr(statistic, "__name__", "statistic")))

    if name == "krippendorff_alpha":
        _check_level(level, categories)
    enc = _encode(df, item_col, rater_col, label_col, categories if name == "krippendorff_alpha" else None)
    counts = enc.counts()
    if name == "krippendorff_alpha":
        estimate = _alpha_from_counts(counts, level, enc.categories)
        stats = _boot_alpha(counts, level, rng, n_boot)
    elif name == "fleiss_kappa":
        rows, n = _fleiss_select(counts, n_raters)
        estimate = _fleiss_value(rows, n, enc.categories)
        stats = _boot_fleiss(rows, n, rng, n_boot)
    else:
        estimate = _percent_from_counts(counts)
        stats = _boot_percent(counts, rng, n_boot)
    return BootstrapCI(estimate, *_percentile_interval(stats, alpha, name))


def _statistic_name(statistic: object) -> StatisticName | None:
    if statistic is krippendorff_alpha or statistic == "krippendorff_alpha":
        return "krippendorff_alpha"
    if statistic is fleiss_kappa or statistic == "fleiss_kappa":
        return "fleiss_kappa"
    if statistic is percent_agreement or statistic == "percent_agreement":
        return "percent_agreement"
    if isinstance(statistic, str):
        raise ValueError(
            f"unknown statistic {statistic!r}; use 'krippendorff_alpha', 'fleiss_kappa', 'percent_agreement' "
            "or a callable"
        )
    if not callable(statistic):
        raise TypeError(f"statistic must be a name or a callable, got {type(statistic).__name__}")
    return None


def _check_level(level: str, categories: Sequence[Hashable] | None) -> None:
    if level not in ("nominal", "ordinal"):
        raise ValueError(f"level must be 'nominal' or 'ordinal', got {level!r}")
    if level == "ordinal" and categories is None:
        raise ValueError("ordinal alpha needs an explicit category order, e.g. categories=['a', 'tie', 'b']")


# --------------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementReport:
    """Agreement summary of one label table (see :func:`agreement_report`).

    A coefficient that is undefined on the data is ``None`` and its ``*_reason`` says why; a defined one has a
    ``None`` reason.
    """

    n_labels: int
    n_items: int
    n_pairable_items: int  # items with >= 2 labels (the ones alpha and percent agreement use)
    n_raters: int | None  # None when the frame has no rater column
    labels_per_item: dict[int, int]  # panel size -> number of items
    categories: tuple[object, ...]
    level: Level
    alpha: float | None
    alpha_low: float | None
    alpha_high: float | None
    alpha_reason: str | None
    fleiss_kappa: float | None
    fleiss_n_raters: int | None  # panel size Fleiss' kappa was computed for
    fleiss_n_items: int | None  # items it used
    fleiss_reason: str | None
    percent_agreement: float | None
    percent_agreement_reason: str | None
    n_boot: int
    ci_level: float  # e.g. 0.95
    pairwise: pl.DataFrame | None = None  # pairwise_cohen(...) when asked for (cohen_min_overlap), else None

    def as_dict(self) -> dict[str, object]:
        """Plain-Python dict of the scalar fields (no ``pairwise`` table), e.g. for asset metadata."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pairwise"}


def agreement_report(
    df: pl.DataFrame,
    *,
    level: Level = "nominal",
    categories: Sequence[Hashable] | None = None,
    n_raters: int | None = None,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_alpha: float = 0.05,
    cohen_min_overlap: int | None = None,
    item_col: str = ITEM_COL,
    rater_col: str | None = RATER_COL,
    label_col: str = LABEL_COL,
) -> AgreementReport:
    """Counts, Krippendorff's alpha with a bootstrap interval, Fleiss' kappa and percent agreement in one pass.

    The frame is encoded once; every coefficient is computed from the same item x category counts. Alpha's
    interval is :func:`bootstrap_ci` over items (``n_boot=0`` skips it). Fleiss' kappa is reported when the panel
    is fixed, or for the items with exactly ``n_raters`` labels when that is given; otherwise it is ``None`` with
    the reason. Undefined coefficients are ``None`` with a reason; malformed input still raises ``ValueError``.
    With ``cohen_min_overlap=k`` (needs ``rater_col``) the report also carries ``pairwise``, the
    :func:`pairwise_cohen` table for pairs sharing at least ``k`` items, from the same encoding (one pass instead
    of two over a large frame).
    """
    _check_level(level, categories)
    if cohen_min_overlap is not None and (cohen_min_overlap < 1 or rater_col is None):
        raise ValueError("cohen_min_overlap must be >= 1 and needs a rater column")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < ci_alpha < 1.0:
        raise ValueError(f"ci_alpha must be in (0, 1), got {ci_alpha}")
    enc = _encode(df, item_col, rater_col, label_col, categories)
    counts = enc.counts()
    m = counts.sum(axis=1)
    sizes, n_with = np.unique(m, return_counts=True)

    alpha: float | None = None
    low: float | None = None
    high: float | None = None
    alpha_reason = _alpha_undefined_reason(counts, enc.categories)
    if alpha_reason is None:
        alpha = _alpha_from_counts(counts, level, enc.categories)
        if n_boot:
            stats = _boot_alpha(counts, level, np.random.default_rng(seed), n_boot)
            with contextlib.suppress(UndefinedAgreementError):  # every resample undefined: no interval
                low, high = _percentile_interval(stats, ci_alpha, "krippendorff_alpha")

    kappa: float | None = None
    fleiss_n: int | None = None
    fleiss_items: int | None = None
    fleiss_reason: str | None = None
    try:
        rows, fleiss_n = _fleiss_select(counts, n_raters)
        fleiss_items = int(rows.shape[0])
        kappa = _fleiss_value(rows, fleiss_n, enc.categories)
    except ValueError as exc:  # includes UndefinedAgreementError
        fleiss_reason = str(exc)

    pct: float | None = None
    pct_reason: str | None = None
    try:
        pct = _percent_from_counts(counts)
    except UndefinedAgreementError as exc:
        pct_reason = str(exc)

    return AgreementReport(
        n_labels=enc.n_labels,
        n_items=enc.n_items,
        n_pairable_items=int((m >= 2).sum()),
        n_raters=None if enc.rater_ids is None else enc.rater_ids.len(),
        labels_per_item={int(s): int(c) for s, c in zip(sizes, n_with, strict=True)},
        categories=enc.categories,
        level=level,
        alpha=alpha,
        alpha_low=low,
        alpha_high=high,
        alpha_reason=None if alpha_reason is None else f"Krippendorff's alpha is undefined: {alpha_reason}",
        fleiss_kappa=kappa,
        fleiss_n_raters=fleiss_n if kappa is not None else None,
        fleiss_n_items=fleiss_items if kappa is not None else None,
        fleiss_reason=fleiss_reason,
        percent_agreement=pct,
        percent_agreement_reason=pct_reason,
        n_boot=n_boot,
        ci_level=1.0 - ci_alpha,
        pairwise=None if cohen_min_overlap is None else _pairwise_from_encoded(enc, cohen_min_overlap),
    )
