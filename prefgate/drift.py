"""Rater drift and population drift of human labels, from the leave-one-out consensus.

Three layers, all columnar (Polars for the frames, NumPy counting kernels over integer codes):

1. **Scoring** (:func:`score_labels`). Every label is compared with the *leave-one-out* (LOO) consensus of the
   other labels on its pair: the pair's a/b/tie counts minus the label itself, and the plurality of what remains.
   When the remainder is empty (nobody else labelled the pair) or its top count is shared (e.g. one ``a`` and one
   ``b``), the label has no consensus to agree with: it is *unscored* and counts in no agreement rate. Per pair
   counts are one ``np.bincount`` over dense pair codes; the consensus depends only on (pair, own choice), so it
   is tabulated per pair for the three possible own choices and looked up per label. 10M labels score in 1.5 to
   4 s on two cores (see ``benchmarks/bench_raters.py``).

2. **Per-rater change test** (:func:`detect_drift`). For each rater the daily agreement series (agreements
   ``k_d`` out of scored labels ``n_d`` on day ``d``) is tested for a *fall* with a one-sided CUSUM in its
   standardised form (Csörgő & Horváth's CUSUM statistic for a change in a binomial proportion): for every
   candidate change day ``τ`` the agreement before ``τ`` is compared with the agreement from ``τ`` on,

   ``Z(τ) = (p_before - p_after) / sqrt(p (1 - p) (1/n_before + 1/n_after))``, with ``p`` the rater's pooled
   agreement,

   which is the cumulative sum of agreements up to ``τ`` minus its expectation under "no change", scaled to
   unit variance. The statistic is ``max_τ Z(τ)`` over days ``τ`` on which the rater has scored labels, with at
   least ``min_side_labels`` scored labels and ``min_side_days`` active days on each side; the change day is
   the arg max (the maximum-likelihood change point, to first order). A change is reported when the statistic
   reaches ``z`` *and* agreement fell by at least ``min_drop`` (with millions of labels a rater's tiny drop would
   otherwise be significant). Run every day on the history so far, this is a sequential test; we chose it over
   Page's recursive CUSUM because it needs no in-control agreement level per rater (which would have to be
   learnt from a window that the change may fall inside) and its arg max estimates the change day directly.

   *Calibration* (seeded simulation of 100,000 stable binomial raters per setting, agreement uniform in 0.35 to
   0.95, Poisson 3 to 170 scored labels a day over 30 days). Under no change ``max_τ Z(τ)`` behaves like the
   maximum of a standardised Brownian bridge over the admissible split fractions: it reaches 3.5 for 0.16% to
   0.36% of stable raters, 4.0 for 0.02% to 0.07%, and the default ``z = 4.5`` for 0.002% to 0.015%; with the
   default ``min_drop = 0.15`` as well, at most 0.007% (about 1 stable rater in 14,000). Power, for a fall at mid
   period: 13 scored labels a day detect a fall of 0.25 in 80% of raters and 0.35 in 99.7% (93% and 98% of them
   within ±2 days of the true day); 50 a day detect 0.25 always. Fewer than ~3 scored labels a day detect little.

3. **Population drift.** The population's daily a/b/tie distribution is compared with a reference window (the
   first ``reference_days`` days with labels, pooled) by the population stability index

   ``PSI = Σ_i (p_i - q_i) ln(p_i / q_i)`` over i ∈ {a, b, tie},

   with *epsilon smoothing* so an empty category cannot make it infinite: each share becomes
   ``(share + ε) / (1 + 3ε)`` (``ε = psi_epsilon = 1e-4``, both distributions) before the sum. Usual reading:
   below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major; a day is marked ``shifted`` from ``psi_alert =
   0.1`` (a label distribution is worth a look earlier than a model score: a tie rate going from 19% to 32% is
   PSI 0.10). Sampling noise alone gives PSI of about ``2/n`` for ``n`` labels a day, so days with fewer than
   ``min_day_labels`` (200) labels are not judged (their PSI is reported, ``shifted`` is false).

   When the labels carry a ``rubric_version`` column, the first day of every new version is a population change
   point that applies to every rater; :func:`prefgate.rater_quality.rater_quality` mentions it in the reason of a
   rater whose own change falls within two days of it (the rubric may be the cause).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

CHOICES = ("a", "b", "tie")
REQUIRED_COLUMNS = ("pair_id", "rater_id", "choice", "shown_first", "batch_date")
_SEED_1 = 0x5EED_0001
_SEED_2 = 0x5EED_0002
_SMALL_CARDINALITY = 1 << 16
_MAX_CELLS = 200_000_000  # raters x active days in the per-rater daily matrix
_CHUNK = 1 << 20  # rows per Polars step in chunked passes

_T = TypeVar("_T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds of the rater change test and of population drift (defaults calibrated as the module says).

    * ``z``: smallest one-sided standardised CUSUM statistic that reports a change (with ``min_drop``, a false
      alarm on about 1 stable rater in 14,000 or fewer; see the module docstring).
    * ``min_drop``: smallest fall in agreement (before minus after) that reports a change.
    * ``min_side_labels``: scored labels needed on each side of a candidate change day.
    * ``min_side_days``: days with scored labels needed on each side of a candidate change day.
    * ``reference_days``: the first this-many days with labels form the PSI reference window.
    * ``psi_epsilon``: smoothing added to every share before the PSI sum.
    * ``psi_alert``: PSI from which a day's label distribution counts as shifted (0.1, the "moderate" line).
    * ``min_day_labels``: days with fewer labels get a PSI but are never marked shifted (too noisy).
    """

    z: float = 4.5
    min_drop: float = 0.15
    min_side_labels: int = 20
    min_side_days: int = 2
    reference_days: int = 7
    psi_epsilon: float = 1e-4
    psi_alert: float = 0.1
    min_day_labels: int = 200


def with_overrides(defaults: _T, overrides: Mapping[str, float] | None, what: str) -> _T:
    """``defaults`` (a thresholds dataclass) with numeric ``overrides`` applied; integer fields stay integers.

    Raises ``ValueError`` naming an unknown field, or a non-integral value for an integer field (a policy file
    gives numbers, so ``30.0`` is accepted for ``min_labels`` and ``30.5`` is not).
    """
    if not overrides:
        return defaults
    known = {f.name for f in fields(defaults)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        current = getattr(defaults, name, None)
        if name not in known or not isinstance(current, int | float) or isinstance(current, bool):
            numeric = sorted(n for n in known if isinstance(getattr(defaults, n), int | float))
            raise ValueError(f"unknown {what} threshold {name!r}; known: {numeric}")
        if isinstance(current, int):
            if float(value) != int(value):
                raise ValueError(f"{what} threshold {name!r} must be an integer, got {value}")
            changes[name] = int(value)
        else:
            changes[name] = float(value)
    return replace(defaults, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ScoredLabels:
    """Compact per-label codes shared by drift and rater quality (one array entry per label, input row order).

    ``rater``: dense rater code, ``rater_ids[code]`` is the id. ``choice``: 0 = a, 1 = b, 2 = tie.
    ``picked_first``: the label picked the response shown first (false for ties). ``day``: index into
    ``days`` (the distinct batch dates, ascending). ``scored``: the LOO consensus exists. ``agree``: the label
    matches it (false when unscored). ``seconds``: time spent, NaN where null or NaN in the input.
    """

    rater_ids: pl.Series
    days: pl.Series
    rater: npt.NDArray[np.uint32]
    choice: npt.NDArray[np.int8]
    picked_first: BoolArray
    day: npt.NDArray[np.int32]
    scored: BoolArray
    agree: BoolArray
    seconds: FloatArray

    @property
    def n_raters(self) -> int:
        return len(self.rater_ids)

    @property
    def n_days(self) -> int:
        return len(self.days)

    def to_frame(self) -> pl.DataFrame:
        """The codes as a frame with ids and dates restored (for inspection; small inputs)."""
        agree = pl.Series("agree", self.agree)
        return pl.DataFrame(
            {
                "rater_id": self.rater_ids.gather(self.rater),
                "choice": pl.Series(CHOICES).gather(self.choice),
                "picked_first": self.picked_first,
                "batch_date": self.days.gather(self.day),
                "agree": pl.select(pl.when(pl.Series(self.scored)).then(agree)).to_series(),
            }
        )


@dataclass(frozen=True)
class DriftReport:
    """What :func:`detect_drift` found.

    * ``rater_daily``: one row per rater and day with labels: ``rater_id``, ``batch_date``, ``n_labels``,
      ``n_scored``, ``n_agree``, ``agreement`` (null when no label that day had a LOO consensus).
    * ``rater_tests``: one row per rater: the best candidate split (``change_day``, ``before``, ``after``,
      ``n_before``, ``n_after``, ``statistic``; all null when no day satisfies the side minimums) and
      ``detected``.
    * ``change_points``: the detected rows of ``rater_tests``: ``rater_id``, ``change_day``, ``before``,
      ``after``, ``statistic``, ``n_before``, ``n_after``.
    * ``population_daily``: one row per day: ``batch_date``, ``n_labels``, ``share_a``, ``share_b``,
      ``share_tie``, ``psi`` (vs the reference window), ``in_reference``, ``shifted``.
    * ``population_changes``: ``change_day``, ``kind`` (``label_distribution``: first day of a run of shifted
      days; ``rubric_version``: first day of a new rubric version), ``detail``, ``statistic`` (PSI; null for
      rubric changes), ``applies_to`` (``all raters``).
    """

    rater_daily: pl.DataFrame
    rater_tests: pl.DataFrame
    change_points: pl.DataFrame
    population_daily: pl.DataFrame
    population_changes: pl.DataFrame


# --- validation and codes ------------------------------------------------------------------------------------


def validate_labels(labels: pl.DataFrame) -> None:
    """Raise ``ValueError`` naming the problem when ``labels`` cannot be scored: empty, missing columns, types.

    Values (nulls, choices other than a/b/tie, shown_first other than a/b) are checked by :func:`score_labels`
    in the same pass that encodes them.
    """
    if labels.height == 0:
        raise ValueError("the label table is empty: rater quality and drift need at least one label")
    missing = [c for c in REQUIRED_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"the label table lacks column(s) {missing}; it has {labels.columns}")
    schema = labels.schema
    if schema["batch_date"] != pl.Date and not isinstance(schema["batch_date"], pl.Datetime):
        raise ValueError(f"batch_date must be a Date (or Datetime), got {schema['batch_date']}")
    for name in ("choice", "shown_first"):
        if schema[name] not in (pl.String, pl.Categorical) and not isinstance(schema[name], pl.Enum):
            raise ValueError(f"{name} must be a string column, got {schema[name]}")
    if "seconds" in labels.columns and not schema["seconds"].is_numeric():
        raise ValueError(f"seconds must be numeric, got {schema['seconds']}")
    for name in REQUIRED_COLUMNS:
        nulls = labels[name].null_count()
        if nulls:
            raise ValueError(f"column {name} has {nulls} null value(s); every label needs one")


def _bad_values(labels: pl.DataFrame, name: str, allowed: tuple[str, ...]) -> ValueError:
    bad = labels.filter(~pl.col(name).cast(pl.String).is_in(allowed))[name]
    return ValueError(
        f"{name} must be one of {allowed}; found {len(bad)} other value(s), e.g. {bad.unique().head(5).to_list()}"
    )


def _chunks(n: int) -> range:
    return range(0, n, _CHUNK)


def factorize(values: pl.Series) -> tuple[npt.NDArray[np.uint32], IntArray]:
    """Dense integer codes ``0..k-1`` for the distinct values of ``values`` (no nulls), and a representative row.

    Returns ``(codes, representative)`` with ``values[representative[c]]`` holding the value of code ``c``.
    Exact. Three paths, cheapest first:

    * values arrive in contiguous runs (labels exported pair by pair): the runs are the groups when their heads
      are distinct, which a hash of the heads settles (distinct hashes imply distinct values);
    * few distinct values (raters): a 64-bit hash, its distinct values, a hash-map replacement;
    * otherwise: the 64-bit hash is sorted and its runs numbered.

    Hash paths are verified with a second, independently seeded hash (each code's rows must share it); on a
    collision, which is about a 1e-7 event at millions of values, the exact dense rank of the values is used.
    Polars work runs in chunks of 1M rows so its allocator's working set stays small; the full-length arrays
    are NumPy's (released as soon as they are dropped).
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    starts = (values != values.shift(1)).fill_null(True).to_numpy()
    n_runs = int(starts.sum())
    if 2 * n_runs <= n:
        heads = np.flatnonzero(starts)
        head_hashes = np.sort(values.gather(heads).hash(seed=_SEED_1).to_numpy())
        if not (head_hashes[1:] == head_hashes[:-1]).any():
            codes = np.cumsum(starts, dtype=np.uint32)
            codes -= 1
            return codes, heads.astype(np.int64)
    del starts
    h = np.empty(n, dtype=np.uint64)
    for off in _chunks(n):
        part = values.slice(off, _CHUNK).hash(seed=_SEED_1).to_numpy()
        h[off : off + len(part)] = part
    uniq = pl.Series(h[:_CHUNK]).unique()  # the first chunk tells few from many
    if len(uniq) <= _SMALL_CARDINALITY:
        uniq = pl.concat([pl.Series(h[off : off + _CHUNK]).unique() for off in _chunks(n)]).unique()
    k = len(uniq)
    codes = np.empty(n, dtype=np.uint32)
    if k <= _SMALL_CARDINALITY:
        new = pl.int_range(0, k, dtype=pl.UInt32, eager=True)
        for off in _chunks(n):
            mapped = pl.Series(h[off : off + _CHUNK]).replace_strict(uniq, new, return_dtype=pl.UInt32)
            codes[off : off + len(mapped)] = mapped.to_numpy()
    else:
        order = pl.Series(h).arg_sort().to_numpy()
        hs = h[order]
        is_new = np.empty(n, dtype=bool)
        is_new[0] = False
        np.not_equal(hs[1:], hs[:-1], out=is_new[1:])
        del hs
        codes[order] = np.cumsum(is_new, dtype=np.uint32)
        k = int(codes[order[-1]]) + 1
        del order, is_new
    del h, uniq
    representative = np.empty(k, dtype=np.int64)
    representative[codes] = np.arange(n, dtype=np.int64)  # any row of the code will do
    rep_h2 = values.gather(representative).hash(seed=_SEED_2).to_numpy()
    for off in _chunks(n):
        h2 = values.slice(off, _CHUNK).hash(seed=_SEED_2).to_numpy()
        if not np.array_equal(rep_h2[codes[off : off + len(h2)]], h2):
            ranks = values.rank("dense").to_numpy().astype(np.int64) - 1  # collision: exact (slow) path
            codes = ranks.astype(np.uint32)
            representative = np.empty(int(ranks.max()) + 1, dtype=np.int64)
            representative[codes] = np.arange(n, dtype=np.int64)
            break
    return codes, representative


def loo_consensus(
    pair: npt.NDArray[np.uint32], choice: npt.NDArray[np.int8], n_pairs: int
) -> tuple[BoolArray, BoolArray, npt.NDArray[np.int8]]:
    """Per label: whether a LOO consensus exists, whether the label agrees with it, and the consensus (-1: none).

    The pair's counts of a/b/tie (one bincount) minus the label's own vote; the consensus is the strict
    plurality of that remainder. No consensus when the remainder is empty or its top count is shared. Since the
    remainder depends only on (pair, own choice), the consensus is tabulated per pair for each of the three
    possible own choices and then looked up per label (one int8 gather).
    """
    cell = pair.astype(np.int64)
    cell *= 3
    cell += choice
    counts = np.bincount(cell, minlength=3 * n_pairs).reshape(n_pairs, 3)
    n_a, n_b, n_t = (np.ascontiguousarray(counts[:, i], dtype=np.int32) for i in range(3))
    del counts
    table = np.empty((n_pairs, 3), dtype=np.int8)
    for own in range(3):  # strict plurality of the remainder (an empty remainder has none)
        ra, rb, rt = n_a - (own == 0), n_b - (own == 1), n_t - (own == 2)
        table[:, own] = np.where(
            (ra > rb) & (ra > rt), 0, np.where((rb > ra) & (rb > rt), 1, np.where((rt > ra) & (rt > rb), 2, -1))
        )
    consensus = table.reshape(-1)[cell]
    del cell
    return consensus >= 0, consensus == choice, consensus


def score_labels(labels: pl.DataFrame) -> ScoredLabels:
    """Validate ``labels`` and compute the per-label codes and LOO agreement (see the module docstring)."""
    validate_labels(labels)
    n = labels.height
    choice_col, first_col = pl.col("choice"), pl.col("shown_first")
    exprs = (
        pl.when(choice_col == "a")
        .then(0)
        .when(choice_col == "b")
        .then(1)
        .when(choice_col == "tie")
        .then(2)
        .otherwise(-1)
        .cast(pl.Int8),
        pl.when(first_col == "a").then(0).when(first_col == "b").then(1).otherwise(-1).cast(pl.Int8),
        pl.col("batch_date").cast(pl.Date).cast(pl.Int32),
        (pl.col("seconds").cast(pl.Float64) if "seconds" in labels.columns else pl.lit(None, pl.Float64)).fill_null(
            float("nan")
        ),
    )
    choice = np.empty(n, dtype=np.int8)
    first = np.empty(n, dtype=np.int8)
    d = np.empty(n, dtype=np.int32)
    seconds = np.empty(n, dtype=np.float64)
    for off in _chunks(n):  # chunked: Polars' working set stays at one chunk
        part = labels.slice(off, _CHUNK).select(*[e.alias(str(i)) for i, e in enumerate(exprs)])
        end = off + part.height
        choice[off:end] = part["0"].to_numpy()
        first[off:end] = part["1"].to_numpy()
        d[off:end] = part["2"].to_numpy()
        seconds[off:end] = part["3"].to_numpy()
    if (choice < 0).any():
        raise _bad_values(labels, "choice", CHOICES)
    if (first < 0).any():
        raise _bad_values(labels, "shown_first", ("a", "b"))
    picked_first = (choice == first) & (choice != 2)
    del first
    d_min = int(d.min())
    present = np.bincount(d - d_min) > 0
    day_index = (np.cumsum(present) - 1).astype(np.int32)
    day = day_index[d - d_min]
    del d
    days = pl.Series("batch_date", np.flatnonzero(present).astype(np.int32) + d_min, dtype=pl.Int32).cast(pl.Date)
    pair, pair_rep = factorize(labels["pair_id"])
    scored, agree, _ = loo_consensus(pair, choice, len(pair_rep))
    del pair, pair_rep
    rater, rater_rep = factorize(labels["rater_id"])
    return ScoredLabels(
        rater_ids=labels["rater_id"].gather(rater_rep).cast(pl.String).rename("rater_id"),
        days=days,
        rater=rater,
        choice=choice,
        picked_first=picked_first,
        day=day,
        scored=scored,
        agree=agree,
        seconds=seconds,
    )


# --- the change test -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeTest:
    """Per series (row): the best split of :func:`cusum_drop_test`. ``tau`` is the index of the first "after"
    column (-1 when no split is admissible; then ``statistic`` is ``-inf`` and the rest NaN)."""

    statistic: FloatArray
    tau: IntArray
    before: FloatArray
    after: FloatArray
    n_before: FloatArray
    n_after: FloatArray


def cusum_drop_test(
    k: npt.ArrayLike, n: npt.ArrayLike, min_side_labels: int = 20, min_side_days: int = 2
) -> ChangeTest:
    """One-sided standardised CUSUM for a fall in a binomial proportion, for each row of ``k`` out of ``n``.

    ``k`` and ``n`` are ``(series, periods)`` (or one 1-D series): successes and trials per period. For every
    split ``τ`` (first period "after") that has trials in period ``τ``, ``min_side_labels`` trials and
    ``min_side_days`` periods with trials on each side, ``Z(τ) = (p_before - p_after) / sqrt(p (1 - p) (1/n_b +
    1/n_a))`` with the pooled ``p`` (``Z = 0`` when ``p`` is 0 or 1). Returns the max over ``τ`` and its arg max.
    """
    k_arr = np.atleast_2d(np.asarray(k, dtype=np.float64))
    n_arr = np.atleast_2d(np.asarray(n, dtype=np.float64))
    if k_arr.shape != n_arr.shape:
        raise ValueError(f"k and n must have the same shape, got {k_arr.shape} and {n_arr.shape}")
    rows, periods = n_arr.shape
    if periods < 2:
        empty = np.full(rows, np.nan)
        return ChangeTest(np.full(rows, -np.inf), np.full(rows, -1, dtype=np.int64), empty, empty, empty, empty)
    ck = np.cumsum(k_arr, axis=1)
    cn = np.cumsum(n_arr, axis=1)
    cdays = np.cumsum(n_arr > 0, axis=1)
    kb, nb, db = ck[:, :-1], cn[:, :-1], cdays[:, :-1]
    ka: FloatArray = ck[:, -1:] - kb
    na: FloatArray = cn[:, -1:] - nb
    da: IntArray = cdays[:, -1:] - db
    valid = (
        (n_arr[:, 1:] > 0)
        & (nb >= min_side_labels)
        & (na >= min_side_labels)
        & (db >= min_side_days)
        & (da >= min_side_days)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pb = kb / nb
        pa = ka / na
        p = ck[:, -1:] / cn[:, -1:]
        se = np.sqrt(p * (1.0 - p) * (1.0 / nb + 1.0 / na))
        z = np.where(se > 0, (pb - pa) / se, 0.0)
    z = np.where(valid, z, -np.inf)
    best = np.argmax(z, axis=1)
    rix = np.arange(rows)
    stat = z[rix, best]
    ok = np.isfinite(stat)
    nan = np.nan
    return ChangeTest(
        statistic=stat,
        tau=np.where(ok, best + 1, -1).astype(np.int64),
        before=np.where(ok, pb[rix, best], nan),
        after=np.where(ok, pa[rix, best], nan),
        n_before=np.where(ok, nb[rix, best], nan),
        n_after=np.where(ok, na[rix, best], nan),
    )


def psi(current: npt.ArrayLike, reference: npt.ArrayLike, epsilon: float = 1e-4) -> FloatArray:
    """Population stability index of each row of ``current`` (counts per category) against ``reference`` counts.

    Shares are smoothed as ``(share + ε) / (1 + kε)`` for k categories, so empty categories stay finite. Rows with
    no counts get NaN (callers turn it into null).
    """
    cur = np.atleast_2d(np.asarray(current, dtype=np.float64))
    ref = np.asarray(reference, dtype=np.float64).reshape(1, -1)
    n_cat = cur.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (cur / cur.sum(axis=1, keepdims=True) + epsilon) / (1.0 + n_cat * epsilon)
        q = (ref / ref.sum() + epsilon) / (1.0 + n_cat * epsilon)
        out: FloatArray = ((p - q) * np.log(p / q)).sum(axis=1)
    return out


def _null_nan(values: FloatArray, dtype: type[pl.DataType] = pl.Float64) -> pl.Series:
    """NaN (no value) becomes null, never a silent NaN."""
    return pl.Series(values, dtype=pl.Float64).fill_nan(None).cast(dtype)


def detect_drift(
    labels: pl.DataFrame, thresholds: DriftThresholds | None = None, *, scored: ScoredLabels | None = None
) -> DriftReport:
    """Per-rater change points of agreement with the LOO consensus, and population drift (see module docstring).

    ``scored`` reuses :func:`score_labels` output computed on the same ``labels``.
    """
    th = thresholds or DriftThresholds()
    sc = scored if scored is not None else score_labels(labels)
    n_r, n_d = sc.n_raters, sc.n_days
    if n_r * n_d > _MAX_CELLS:
        raise ValueError(f"{n_r} raters x {n_d} days exceeds the daily matrix limit of {_MAX_CELLS} cells")
    cell = sc.rater.astype(np.int64) * n_d + sc.day
    size = n_r * n_d
    n_lab = np.bincount(cell, minlength=size).reshape(n_r, n_d)
    n_sc = np.bincount(cell, weights=sc.scored, minlength=size).reshape(n_r, n_d)
    n_ag = np.bincount(cell, weights=sc.agree, minlength=size).reshape(n_r, n_d)
    del cell

    rr, dd = np.nonzero(n_lab)
    with np.errstate(divide="ignore", invalid="ignore"):
        daily_agreement = n_ag[rr, dd] / n_sc[rr, dd]
    rater_daily = pl.DataFrame(
        {
            "rater_id": sc.rater_ids.gather(rr),
            "batch_date": sc.days.gather(dd),
            "n_labels": pl.Series(n_lab[rr, dd], dtype=pl.Int64),
            "n_scored": pl.Series(n_sc[rr, dd], dtype=pl.Int64),
            "n_agree": pl.Series(n_ag[rr, dd], dtype=pl.Int64),
            "agreement": _null_nan(daily_agreement),
        }
    )

    test = cusum_drop_test(n_ag, n_sc, th.min_side_labels, th.min_side_days)
    has = test.tau >= 0
    detected = has & (test.statistic >= th.z) & (test.before - test.after >= th.min_drop)
    rater_tests = pl.DataFrame(
        {
            "rater_id": sc.rater_ids,
            "change_day": sc.days.gather(np.where(has, test.tau, 0)).scatter(np.flatnonzero(~has), None),
            "before": _null_nan(test.before),
            "after": _null_nan(test.after),
            "n_before": _null_nan(test.n_before, pl.Int64),
            "n_after": _null_nan(test.n_after, pl.Int64),
            "statistic": _null_nan(np.where(has, test.statistic, np.nan)),
            "detected": pl.Series(detected, dtype=pl.Boolean),
        }
    )
    change_points = rater_tests.filter("detected").select(
        "rater_id", "change_day", "before", "after", "statistic", "n_before", "n_after"
    )

    pop = np.bincount(sc.day.astype(np.int64) * 3 + sc.choice, minlength=3 * n_d).reshape(n_d, 3)
    n_ref = min(th.reference_days, n_d)
    day_psi = psi(pop, pop[:n_ref].sum(axis=0), th.psi_epsilon)
    day_n = pop.sum(axis=1)
    shifted = (day_psi >= th.psi_alert) & (day_n >= th.min_day_labels)
    population_daily = pl.DataFrame(
        {
            "batch_date": sc.days,
            "n_labels": pl.Series(day_n, dtype=pl.Int64),
            "share_a": pop[:, 0] / day_n,
            "share_b": pop[:, 1] / day_n,
            "share_tie": pop[:, 2] / day_n,
            "psi": _null_nan(day_psi),
            "in_reference": pl.Series(np.arange(n_d) < n_ref, dtype=pl.Boolean),
            "shifted": pl.Series(shifted, dtype=pl.Boolean),
        }
    )
    starts = np.flatnonzero(shifted & ~np.concatenate([[False], shifted[:-1]]))
    changes = [
        pl.DataFrame(
            {
                "change_day": sc.days.gather(starts),
                "kind": pl.Series(["label_distribution"] * len(starts), dtype=pl.String),
                "detail": pl.Series(
                    [
                        "a/b/tie shares {:.2f}/{:.2f}/{:.2f} vs the reference window (first {} days): "
                        "PSI {:.3f} >= {}".format(*(pop[i] / day_n[i]), n_ref, day_psi[i], th.psi_alert)
                        for i in starts.tolist()  # days, not labels
                    ],
                    dtype=pl.String,
                ),
                "statistic": pl.Series(day_psi[starts], dtype=pl.Float64),
            }
        )
    ]
    if "rubric_version" in labels.columns:
        changes.append(_rubric_changes(labels))
    population_changes = (
        pl.concat(changes, how="vertical")
        .with_columns(applies_to=pl.lit("all raters"))
        .sort("change_day", "kind", maintain_order=True)
    )
    return DriftReport(rater_daily, rater_tests, change_points, population_daily, population_changes)


def _rubric_changes(labels: pl.DataFrame) -> pl.DataFrame:
    """The first day of each rubric version after the first one (null versions ignored)."""
    firsts = (
        labels.lazy()
        .select(pl.col("rubric_version").cast(pl.String), pl.col("batch_date").cast(pl.Date))
        .drop_nulls("rubric_version")
        .group_by("rubric_version")
        .agg(pl.col("batch_date").min().alias("change_day"))
        .sort("change_day", "rubric_version")
        .collect()
    )
    return firsts.select(
        "change_day",
        pl.lit("rubric_version").alias("kind"),
        pl.format(
            "rubric_version {} -> {} (first labelled {})",
            pl.col("rubric_version").shift(1),
            pl.col("rubric_version"),
            pl.col("change_day").cast(pl.String),
        ).alias("detail"),
        pl.lit(None, pl.Float64).alias("statistic"),
    ).slice(1)
