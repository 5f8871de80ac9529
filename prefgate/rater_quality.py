"""Per-rater quality of human preference labels: agreement, gold accuracy, position bias, speed, straightlining,
tie habits and drift, with boolean flags and the reasons for them in words.

Input: prefgate's long-format human label table (one row per label): ``pair_id``, ``rater_id``, ``choice``
(a/b/tie on the canonical pair), ``shown_first`` (a/b), ``batch_date``; optionally ``seconds``, ``labeled_at``,
``label_id`` and ``rubric_version``. Output: one row per rater (:func:`rater_quality`).

Metrics (all columnar; NumPy bincounts over integer codes where a kernel is needed):

* ``agreement``: share of the rater's *scored* labels that match the leave-one-out (LOO) consensus of the other
  labels on the same pair (the pair's a/b/tie counts minus the rater's own label; the plurality of the rest).
  Labels whose remainder is empty or has a shared top count have no consensus and are not scored
  (``n_scored`` counts the others); see :mod:`prefgate.drift`. A uniform spammer agrees one time in three
  whatever the others do; an honest rater agrees far more.
* ``gold_accuracy``: share of the rater's labels on gold pairs (``gold``: ``pair_id``, ``choice``) that equal
  the gold choice.
* ``first_share`` and ``position_p``: among the rater's non-tie labels, the share that picked the response shown
  first, and the two-sided exact binomial p-value against 0.5 (``2 min(P[X <= k], P[X >= k])``, capped at 1,
  which is what ``scipy.stats.binomtest`` computes for p = 0.5; vectorised over raters with ``binom.cdf/sf``).
* ``tie_rate`` and ``tie_rate_z``: the rater's share of ties and its z-score against the population's share,
  ``(t_r - t) / sqrt(t (1 - t) / n_r)`` (0 when the population's tie rate is 0 or 1).
* ``median_seconds`` and ``too_fast_share``: over the rater's timed labels (null, NaN or negative ``seconds``
  are untimed), the median time and the share below ``too_fast_seconds``.
* ``longest_run`` (and its choice) in label order (``labeled_at``, then the input row order; labels with a null
  ``labeled_at`` sort at the start of their batch day; without ``labeled_at``, by batch day then row order),
  and ``modal_choice``/``modal_share``: the rater's most frequent choice and its share.
* ``change_day``, ``agreement_before``/``after``, ``drift_statistic``: the rater's detected change in
  agreement (:func:`prefgate.drift.detect_drift`); null when none was detected.

Nulls are never silent NaNs: every null metric is explained in the ``notes`` column (e.g. "agreement null: no
label has a leave-one-out consensus"). Medians are exact to float32 precision (seven significant digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats

from prefgate.drift import (
    _CHUNK,
    CHOICES,
    DriftReport,
    DriftThresholds,
    ScoredLabels,
    detect_drift,
    score_labels,
    with_overrides,
)

FloatArray = npt.NDArray[np.float64]
FLAGS = ("spammer", "biased", "too_fast", "drifting", "straightlining", "tie_outlier")


@dataclass(frozen=True)
class RaterThresholds:
    """When a rater is flagged. A rater with fewer than ``min_labels`` labels is reported but never flagged.

    * ``min_labels`` (30): labels before any flag can be raised.
    * ``spammer``: agreement with the LOO consensus at most ``spammer_agreement_max`` (0.38) over at least
      ``min_scored`` (20) scored labels, or accuracy on gold pairs at most ``gold_accuracy_max`` (0.40) over at
      least ``min_gold`` (30) gold labels. A uniform spammer agrees 1/3 of the time whatever the others say; with
      300 scored labels its agreement exceeds 0.38 about 4% of the time. An honest rater of accuracy ``p``
      agrees about ``0.04 + 0.89 p`` with the LOO consensus of 2 to 4 others (fit on the synthetic data), so
      0.38 flags honest raters only below an accuracy of about 0.385, which are near-random anyway (0.3% of a
      Beta(8, 2) pool). The cut-off sits closer to chance than to honest raters on purpose: a rater's agreement
      depends on the consensus quality of the pool, chance agreement does not. A rater flagged ``biased`` or
      ``drifting`` is not also flagged spammer: always picking the first-shown response agrees about 40% of
      the time, a rater that drifted to chance has low overall agreement, and the bias or the drift is the
      diagnosis (the low agreement is still stated in ``flag_reasons``).
    * ``biased``: position bias with ``position_p <= position_p_max`` (1e-6, strict enough for thousands of
      raters) and a first-shown share at least ``position_share_min`` (0.75) or at most ``1 -
      position_share_min`` (picking the second-shown is a bias too), over at least ``min_non_tie`` (20) non-tie
      labels.
    * ``too_fast``: at least ``too_fast_share_min`` (0.5) of at least ``min_timed`` (20) timed labels under
      ``too_fast_seconds`` (5 s: too little to read a prompt and two responses).
    * ``drifting``: a change detected by the drift test (``drift``: :class:`DriftThresholds`).
    * ``straightlining``: a run of at least ``straightline_run_min`` (25) identical choices, or a modal share of
      at least ``straightline_share_min`` (0.9), on a choice that the whole population gives at most
      ``straightline_population_share_max`` (0.6) of the time (when everyone says tie, saying tie is not
      straightlining).
    * ``tie_outlier``: ``|tie_rate_z| >= tie_rate_z`` (4) and the tie rate at least ``tie_rate_diff_min`` (0.10)
      away from the population's (informational: spammers and always-first raters usually show it too).
    """

    min_labels: int = 30
    spammer_agreement_max: float = 0.38
    min_scored: int = 20
    gold_accuracy_max: float = 0.40
    min_gold: int = 30
    position_p_max: float = 1e-6
    position_share_min: float = 0.75
    min_non_tie: int = 20
    too_fast_seconds: float = 5.0
    too_fast_share_min: float = 0.5
    min_timed: int = 20
    straightline_run_min: int = 25
    straightline_share_min: float = 0.9
    straightline_population_share_max: float = 0.6
    tie_rate_z: float = 4.0
    tie_rate_diff_min: float = 0.10
    drift: DriftThresholds = field(default_factory=DriftThresholds)

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, float] | None = None, drift: Mapping[str, float] | None = None
    ) -> RaterThresholds:
        """The defaults with field overrides (e.g. from the governance policy); unknown names raise ValueError."""
        base = with_overrides(cls(), overrides, "rater")
        return replace(base, drift=with_overrides(base.drift, drift, "drift"))


def binomial_two_sided_p(k: npt.ArrayLike, n: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Exact two-sided binomial p-values against p = 0.5, vectorised (NaN where ``n == 0``).

    For p = 0.5 the null distribution is symmetric, so ``scipy.stats.binomtest(k, n).pvalue`` equals
    ``min(1, 2 min(P[X <= k], P[X >= k]))``.
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    lower = stats.binom.cdf(k_arr, n_arr, 0.5)
    upper = stats.binom.sf(k_arr - 1, n_arr, 0.5)
    p = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    out: npt.NDArray[np.float64] = np.where(n_arr > 0, p, np.nan)
    return out


def _label_time(labels: pl.DataFrame, sc: ScoredLabels) -> tuple[npt.NDArray[np.int64], tuple[int, ...]]:
    """Per label, the time that orders a rater's labels (µs since the earliest), and the units to try packing it."""
    n = len(sc.rater)
    if "labeled_at" not in labels.columns:
        return sc.day.astype(np.int64), (1,)
    expr = (
        pl.col("labeled_at")
        .cast(pl.Datetime("us"))
        .cast(pl.Int64)
        .fill_null(pl.col("batch_date").cast(pl.Date).cast(pl.Datetime("us")).cast(pl.Int64))
    )
    t = np.empty(n, dtype=np.int64)
    for off in range(0, n, _CHUNK):  # chunked so Polars' working set stays at one chunk
        part = labels.slice(off, _CHUNK).select(expr).to_series().to_numpy()
        t[off : off + len(part)] = part
    t -= t.min()
    return t, (1, 1_000, 1_000_000, 86_400_000_000)


def _label_order(labels: pl.DataFrame, sc: ScoredLabels) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row permutation grouping labels by rater, in label order within a rater; and each sorted row's rater.

    Label order: ``labeled_at`` (a null one counts as the start of its batch day), then the input row order;
    without ``labeled_at``, batch day then row order. The sort is one ``np.sort`` of packed int64 keys
    ``rater | time | row`` (row last, so the sort is stable); the time is truncated to the finest unit that
    fits (µs, ms, s, day: 10M labels from 2,000 raters over a month pack to the second), labels of one rater
    within one such unit keep their row order. Keys that cannot fit fall back to ``np.lexsort``.
    """
    n = len(sc.rater)
    t, units = _label_time(labels, sc)
    row_bits = max(1, (n - 1).bit_length())
    rater_bits = max(1, (sc.n_raters - 1).bit_length())
    t_max = int(t.max())
    for unit in units:
        time_bits = max(1, (t_max // unit).bit_length())
        if row_bits + rater_bits + time_bits <= 63:
            key = np.empty(n, dtype=np.int64)
            for off in range(0, n, _CHUNK):  # packed in chunks: no full-length temporaries
                end = min(off + _CHUNK, n)
                k = sc.rater[off:end].astype(np.int64) << (time_bits + row_bits)
                k |= (t[off:end] // unit) << row_bits
                k |= np.arange(off, end, dtype=np.int64)
                key[off:end] = k
            del t
            key.sort()
            rater = key >> (time_bits + row_bits)
            key &= (1 << row_bits) - 1
            return key, rater
    order = np.lexsort((np.arange(n), t, sc.rater)).astype(np.int64)
    return order, sc.rater[order].astype(np.int64)


def _median_seconds(sc: ScoredLabels, timed: npt.NDArray[np.bool_], n_timed: npt.NDArray[np.int64]) -> FloatArray:
    """Per rater, the median of the timed labels' seconds (NaN without any), at float32 precision.

    One ``np.sort`` of packed keys ``rater << 32 | float32 bits`` (non-negative float32 bit patterns sort like
    the numbers); the medians are then read at each rater's middle positions.
    """
    rows = np.flatnonzero(timed)
    key = sc.rater[rows].astype(np.int64) << 32
    key |= (sc.seconds[rows] + 0.0).astype(np.float32).view(np.uint32).astype(np.int64)  # + 0.0: no -0.0 bits
    del rows
    key.sort()
    values = (key & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    del key
    start = np.concatenate([[0], np.cumsum(n_timed)[:-1]])
    has = n_timed > 0
    lo = np.where(has, start + (n_timed - 1) // 2, 0)
    hi = np.where(has, start + n_timed // 2, 0)
    if len(values) == 0:
        return np.full(len(n_timed), np.nan)
    out: FloatArray = np.where(has, (values[lo].astype(np.float64) + values[hi]) / 2, np.nan)
    return out


def _runs(labels: pl.DataFrame, sc: ScoredLabels) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per rater: the longest run of identical choices in label order, and that run's choice code."""
    order, r = _label_order(labels, sc)
    c = sc.choice[order]
    del order
    n = len(r)
    start = np.empty(n, dtype=bool)
    start[0] = True
    start[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    heads = np.flatnonzero(start)
    del start
    lengths = np.diff(np.append(heads, n))
    run_rater = r[heads]
    key = lengths * 4 + c[heads]  # max of the key: the longest run (ties: the larger choice code)
    del r, c
    rater_start = np.flatnonzero(np.r_[True, run_rater[1:] != run_rater[:-1]])
    best = np.maximum.reduceat(key, rater_start)
    longest = np.zeros(sc.n_raters, dtype=np.int64)
    choice = np.zeros(sc.n_raters, dtype=np.int64)
    longest[run_rater[rater_start]] = best // 4
    choice[run_rater[rater_start]] = best % 4
    return longest, choice


def _gold_counts(
    labels: pl.DataFrame, sc: ScoredLabels, gold: pl.DataFrame
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per rater: labels on gold pairs, and how many of them equal the gold choice."""
    missing = [c for c in ("pair_id", "choice") if c not in gold.columns]
    if missing:
        raise ValueError(f"gold lacks column(s) {missing}; it needs pair_id and choice")
    gold = gold.select(pl.col("pair_id"), pl.col("choice").cast(pl.String)).unique()
    bad = gold.filter(~pl.col("choice").is_in(CHOICES) | pl.col("pair_id").is_null())
    if bad.height:
        raise ValueError(f"gold choices must be one of {CHOICES} with a pair_id; got {bad.head(3).rows()}")
    dup = gold.filter(pl.col("pair_id").is_duplicated())
    if dup.height:
        raise ValueError(f"gold gives conflicting choices for pair(s) {dup['pair_id'].unique().head(5).to_list()}")
    hits = (
        labels.select(pl.col("pair_id").cast(gold.schema["pair_id"]), pl.col("choice"))
        .with_row_index("row")
        .join(gold.rename({"choice": "gold_choice"}), on="pair_id", how="inner")
    )
    rows = hits["row"].to_numpy().astype(np.int64)
    correct = (hits["choice"] == hits["gold_choice"]).to_numpy()
    raters = sc.rater[rows]
    n_gold = np.bincount(raters, minlength=sc.n_raters)
    n_correct = np.bincount(raters, weights=correct, minlength=sc.n_raters).astype(np.int64)
    return n_gold, n_correct


def _pct(col: str) -> pl.Expr:
    return (pl.col(col) * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")


def _num(col: str, digits: int = 1) -> pl.Expr:
    return pl.col(col).round(digits).cast(pl.String)


def _sci(col: str) -> pl.Expr:
    """A p-value in words: 4 decimals from 0.001, else one significant digit (``1e-20``); 0 is ``<1e-300``."""
    p = pl.col(col)
    exp = p.log10().floor()
    mant = (p / pl.lit(10.0).pow(exp)).round(0)
    exp = pl.when(mant >= 10).then(exp + 1).otherwise(exp)
    mant = pl.when(mant >= 10).then(1.0).otherwise(mant)
    return (
        pl.when(p == 0)
        .then(pl.lit("<1e-300"))
        .when(p >= 0.001)
        .then(p.round(4).cast(pl.String))
        .otherwise(pl.format("{}e{}", mant.cast(pl.Int64), exp.cast(pl.Int64)))
    )


def rater_quality(
    labels: pl.DataFrame,
    gold: pl.DataFrame | None = None,
    thresholds: RaterThresholds | None = None,
    *,
    drift_report: DriftReport | None = None,
    scored: ScoredLabels | None = None,
) -> pl.DataFrame:
    """One row per rater (sorted by ``rater_id``): metrics, boolean flags, ``flag_reasons`` and ``notes``.

    ``gold``: optional frame of ``pair_id``, ``choice`` (known answers). ``drift_report`` / ``scored``: reuse
    :func:`prefgate.drift.detect_drift` / :func:`prefgate.drift.score_labels` results computed on the same
    ``labels`` (computed here otherwise). Raises ``ValueError`` on an empty or malformed table.

    Columns: ``rater_id``, ``n_labels``, ``assessed`` (``n_labels >= min_labels``), ``n_scored``,
    ``agreement``, ``n_gold``, ``gold_accuracy``, ``n_non_tie``, ``first_share``, ``position_p``, ``tie_rate``,
    ``tie_rate_z``, ``n_timed``, ``median_seconds``, ``too_fast_share``, ``longest_run``,
    ``longest_run_choice``, ``modal_choice``, ``modal_share``, ``change_day``, ``agreement_before``,
    ``agreement_after``, ``drift_statistic``, the flags ``spammer``, ``biased``, ``too_fast``, ``drifting``,
    ``straightlining``, ``tie_outlier`` (never null), ``flag_reasons`` (``"; "``-joined sentences, one per
    raised flag, with the numbers; empty when none) and ``notes`` (why metrics are null or flags were not
    considered; empty when nothing to say).
    """
    th = thresholds or RaterThresholds()
    sc = scored if scored is not None else score_labels(labels)
    report = drift_report if drift_report is not None else detect_drift(labels, th.drift, scored=sc)
    n_r = sc.n_raters
    r = sc.rater

    # One bincount over (rater, choice, 5 flag bits) gives every per-rater count.
    with np.errstate(invalid="ignore"):
        timed = sc.seconds >= 0  # null, NaN or negative seconds: untimed
        fast = timed & (sc.seconds < th.too_fast_seconds)
    bits = sc.scored.view(np.uint8).copy()
    bits |= sc.agree.view(np.uint8) << 1
    bits |= sc.picked_first.view(np.uint8) << 2
    bits |= timed.view(np.uint8) << 3
    bits |= fast.view(np.uint8) << 4
    del fast
    cell = r.astype(np.int64) * 96
    cell += sc.choice.astype(np.int64) * 32
    cell += bits
    del bits
    table = np.bincount(cell, minlength=96 * n_r).reshape(n_r, 3, 32)
    del cell
    bit = np.arange(32)

    def with_bit(b: int) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = table[:, :, (bit >> b) & 1 == 1].sum(axis=(1, 2))
        return out

    per_choice = table.sum(axis=2)
    n_labels = per_choice.sum(axis=1)
    n_scored, n_agree, n_first, n_timed = with_bit(0), with_bit(1), with_bit(2), with_bit(3)
    n_fast = table[:, :, ((bit >> 3) & 1 == 1) & ((bit >> 4) & 1 == 1)].sum(axis=(1, 2))
    n_tie = per_choice[:, 2]
    n_non_tie = n_labels - n_tie
    median_seconds = _median_seconds(sc, timed, n_timed)
    del timed
    longest, longest_choice = _runs(labels, sc)
    if gold is not None:
        n_gold, n_gold_correct = _gold_counts(labels, sc, gold)
    else:
        n_gold = n_gold_correct = np.zeros(n_r, dtype=np.int64)

    population = per_choice.sum(axis=0)
    pop_share = population / population.sum()
    pop_tie = float(pop_share[2])
    modal = per_choice.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tie_rate = n_tie / n_labels
        tie_z = np.where(0 < pop_tie < 1, (tie_rate - pop_tie) / np.sqrt(pop_tie * (1 - pop_tie) / n_labels), 0.0)
    position_p = binomial_two_sided_p(n_first, n_non_tie)

    choices = pl.Series(CHOICES, dtype=pl.String)
    base = pl.DataFrame(
        {
            "rater_id": sc.rater_ids,
            "n_labels": n_labels,
            "n_scored": n_scored,
            "n_agree": n_agree,
            "n_gold": n_gold,
            "n_gold_correct": n_gold_correct,
            "n_non_tie": n_non_tie,
            "n_first": n_first,
            "position_p": pl.Series(position_p).fill_nan(None),
            "n_tie": n_tie,
            "tie_rate_z": pl.Series(tie_z, dtype=pl.Float64),
            "n_timed": n_timed,
            "n_fast": n_fast,
            "median_seconds": pl.Series(median_seconds).fill_nan(None),
            "longest_run": longest,
            "longest_run_choice": choices.gather(longest_choice),
            "longest_run_pop_share": pop_share[longest_choice],
            "modal_choice": choices.gather(modal),
            "modal_share": per_choice[np.arange(n_r), modal] / n_labels,
            "modal_pop_share": pop_share[modal],
        }
    )
    drift = report.rater_tests.filter("detected").select(
        "rater_id",
        "change_day",
        pl.col("before").alias("agreement_before"),
        pl.col("after").alias("agreement_after"),
        pl.col("statistic").alias("drift_statistic"),
        pl.col("n_before").alias("drift_n_before"),
        pl.col("n_after").alias("drift_n_after"),
    )
    rubric = report.population_changes.filter(pl.col("kind") == "rubric_version").select(
        pl.col("change_day").alias("rubric_day"), pl.col("detail").alias("rubric_detail")
    )
    near_rubric = (
        drift.select("rater_id", "change_day")
        .join(rubric, how="cross")
        .filter((pl.col("change_day") - pl.col("rubric_day")).dt.total_days().abs() <= 2)
        .group_by("rater_id")
        .agg(pl.col("rubric_detail").first())
    )
    drift = drift.join(near_rubric, on="rater_id", how="left")
    tested = report.rater_tests.select("rater_id", pl.col("statistic").is_not_null().alias("drift_testable"))

    def ratio(num: str, den: str) -> pl.Expr:
        return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)

    df = (
        base.join(drift, on="rater_id", how="left")
        .join(tested, on="rater_id", how="left")
        .with_columns(
            assessed=pl.col("n_labels") >= th.min_labels,
            agreement=ratio("n_agree", "n_scored"),
            gold_accuracy=ratio("n_gold_correct", "n_gold"),
            first_share=ratio("n_first", "n_non_tie"),
            tie_rate=pl.col("n_tie") / pl.col("n_labels"),
            too_fast_share=ratio("n_fast", "n_timed"),
            drift_testable=pl.col("drift_testable").fill_null(False),
        )
    )
    a = pl.col("assessed")
    low_agreement = a & (pl.col("n_scored") >= th.min_scored) & (pl.col("agreement") <= th.spammer_agreement_max)
    low_gold = a & (pl.col("n_gold") >= th.min_gold) & (pl.col("gold_accuracy") <= th.gold_accuracy_max)
    biased = (
        a
        & (pl.col("n_non_tie") >= th.min_non_tie)
        & (pl.col("position_p") <= th.position_p_max)
        & ((pl.col("first_share") >= th.position_share_min) | (pl.col("first_share") <= 1 - th.position_share_min))
    )
    long_run = (pl.col("longest_run") >= th.straightline_run_min) & (
        pl.col("longest_run_pop_share") <= th.straightline_population_share_max
    )
    modal_heavy = (pl.col("modal_share") >= th.straightline_share_min) & (
        pl.col("modal_pop_share") <= th.straightline_population_share_max
    )
    pop_tie_expr = pl.lit(pop_tie)
    df = df.with_columns(
        low_agreement=low_agreement.fill_null(False),
        low_gold=low_gold.fill_null(False),
        biased=biased.fill_null(False),
        too_fast=(
            a & (pl.col("n_timed") >= th.min_timed) & (pl.col("too_fast_share") >= th.too_fast_share_min)
        ).fill_null(False),
        drifting=(a & pl.col("change_day").is_not_null()).fill_null(False),
        long_run=(a & long_run).fill_null(False),
        modal_heavy=(a & modal_heavy).fill_null(False),
        tie_outlier=(
            a
            & (pl.col("tie_rate_z").abs() >= th.tie_rate_z)
            & ((pl.col("tie_rate") - pop_tie_expr).abs() >= th.tie_rate_diff_min)
        ).fill_null(False),
    ).with_columns(
        spammer=(pl.col("low_agreement") | pl.col("low_gold")) & ~pl.col("biased") & ~pl.col("drifting"),
        straightlining=pl.col("long_run") | pl.col("modal_heavy"),
    )

    agreement_words = pl.format(
        "agrees with the leave-one-out consensus on {} of {} scored labels (max {}; chance is about 33%)",
        _pct("agreement"),
        pl.col("n_scored"),
        pl.lit(f"{th.spammer_agreement_max:.0%}"),
    )
    gold_words = pl.format(
        "{} correct on {} gold labels (max {})",
        _pct("gold_accuracy"),
        pl.col("n_gold"),
        pl.lit(f"{th.gold_accuracy_max:.0%}"),
    )
    reasons = [
        pl.when(pl.col("spammer") & pl.col("low_agreement")).then(pl.lit("spammer: ") + agreement_words),
        pl.when(pl.col("spammer") & pl.col("low_gold")).then(pl.lit("spammer: ") + gold_words),
        pl.when(pl.col("biased")).then(
            pl.format(
                "biased: picks the first-shown response in {} of {} non-tie labels (binomial p={}){}",
                _pct("first_share"),
                pl.col("n_non_tie"),
                _sci("position_p"),
                pl.when(pl.col("low_agreement"))
                .then(pl.lit("; its low agreement (") + _pct("agreement") + pl.lit(") follows from the bias"))
                .otherwise(pl.lit("")),
            )
        ),
        pl.when(pl.col("too_fast")).then(
            pl.format(
                "too_fast: {} of {} timed labels under {} s (median {} s)",
                _pct("too_fast_share"),
                pl.col("n_timed"),
                pl.lit(f"{th.too_fast_seconds:g}"),
                _num("median_seconds"),
            )
        ),
        pl.when(pl.col("drifting")).then(
            pl.format(
                "drifting: agreement fell from {} to {} from {} (CUSUM z={}, {} vs {} scored labels){}{}",
                _pct("agreement_before"),
                _pct("agreement_after"),
                pl.col("change_day").cast(pl.String),
                _num("drift_statistic"),
                pl.col("drift_n_before"),
                pl.col("drift_n_after"),
                pl.when(pl.col("rubric_detail").is_not_null())
                .then(pl.lit(", within 2 days of a rubric change (") + pl.col("rubric_detail") + pl.lit(")"))
                .otherwise(pl.lit("")),
                pl.when(pl.col("low_agreement") & ~pl.col("biased"))
                .then(pl.lit("; its low overall agreement (") + _pct("agreement") + pl.lit(") follows from the drift"))
                .otherwise(pl.lit("")),
            )
        ),
        pl.when(pl.col("long_run")).then(
            pl.format(
                "straightlining: {} '{}' choices in a row (the population gives '{}' {} of the time)",
                pl.col("longest_run"),
                pl.col("longest_run_choice"),
                pl.col("longest_run_choice"),
                _pct("longest_run_pop_share"),
            )
        ),
        pl.when(pl.col("modal_heavy")).then(
            pl.format(
                "straightlining: '{}' on {} of {} labels (the population: {})",
                pl.col("modal_choice"),
                _pct("modal_share"),
                pl.col("n_labels"),
                _pct("modal_pop_share"),
            )
        ),
        pl.when(pl.col("tie_outlier")).then(
            pl.format(
                "tie_outlier: tie rate {} of {} labels vs the population's {} (z={})",
                _pct("tie_rate"),
                pl.col("n_labels"),
                pl.lit(f"{pop_tie:.0%}"),
                _num("tie_rate_z"),
            )
        ),
    ]
    notes = [
        pl.when(~a).then(
            pl.format(
                "not assessed: {} label(s), fewer than min_labels={}; metrics shown, no flag raised",
                pl.col("n_labels"),
                pl.lit(th.min_labels),
            )
        ),
        pl.when(pl.col("agreement").is_null()).then(
            pl.lit(
                "agreement null: no label has a leave-one-out consensus (no other rater on the pair, "
                "or the other labels split evenly)"
            )
        ),
        pl.when(pl.col("first_share").is_null()).then(
            pl.lit("first_share and position_p null: only tie labels (position bias needs a/b picks)")
        ),
        pl.when(pl.col("median_seconds").is_null()).then(
            pl.lit("median_seconds and too_fast_share null: no timed labels (seconds null or missing)")
        ),
        pl.when(pl.lit(gold is not None) & pl.col("gold_accuracy").is_null()).then(
            pl.lit("gold_accuracy null: no labels on gold pairs")
        ),
        pl.when(pl.lit(not 0 < pop_tie < 1)).then(
            pl.lit("tie_rate_z 0: the population's tie rate is 0% or 100%, so tie rates cannot differ")
        ),
        pl.when(a & ~pl.col("drift_testable")).then(
            pl.format(
                "drift not testable: needs {}+ scored labels and {}+ active days on each side of a change day",
                pl.lit(th.drift.min_side_labels),
                pl.lit(th.drift.min_side_days),
            )
        ),
    ]
    df = df.with_columns(
        flag_reasons=pl.concat_str(reasons, separator="; ", ignore_nulls=True),
        notes=pl.concat_str(notes, separator="; ", ignore_nulls=True),
    )
    return df.select(
        "rater_id",
        "n_labels",
        "assessed",
        "n_scored",
        "agreement",
        "n_gold",
        "gold_accuracy",
        "n_non_tie",
        "first_share",
        "position_p",
        "tie_rate",
        "tie_rate_z",
        "n_timed",
        "median_seconds",
        "too_fast_share",
        "longest_run",
        "longest_run_choice",
        "modal_choice",
        "modal_share",
        "change_day",
        "agreement_before",
        "agreement_after",
        "drift_statistic",
        *FLAGS,
        "flag_reasons",
        "notes",
    ).sort("rater_id")
