"""Judge-vs-human calibration table: one row per (judge, slice, slice value), including slice ``"all"``.

Every statistic is a ratio of per-group counts, so the overlap is encoded once into small integer codes, counted
once per *fine* group (judge x every slice value combination) with ``np.bincount``, and each slice's table is a
roll-up of the fine counts. Only distinct-pair counts and the length slope (a logistic fit) go back to the rows.

Definitions (``strict`` = judge and humans both chose ``a`` or ``b``):

* ``agree_ties``: share of labels where the judge's verdict equals the human one, ``tie`` counting as a class;
  ``agree_strict`` the same on strict labels (``n_strict``); Wilson score intervals at ``confidence``.
* ``kappa``: Cohen's kappa over the 3x3 (judge x human) table with its asymptotic standard error and
  ``kappa +- z * se`` interval (as ``statsmodels.stats.inter_rater.cohens_kappa``).
* ``position_consistency``: share of order-checked (judge, pair)s whose verdict survived the presentation-order
  swap, over ``n_position_checked`` such pairs; computed for every judge (recorded or live) from its labels.
  A pair is checked when the judge labelled it in both shown orders (``shown_first`` ``a`` and ``b``): it is
  consistent when every label on it, in either order, gives the same canonical choice, ``tie`` counting as a
  verdict of its own (tie in both orders is consistent; tie in one order and ``a`` / ``b`` in the other is not;
  several labels in one order that disagree make the pair inconsistent, as in ``judge_verdicts``). A pair not
  labelled in both orders is checked only through its labels' ``position_consistent`` flags (a recorded verdict
  that already merges both orders, ``calibration.both_orders_judges``): consistent unless a flag is False. With
  no checked pair the value is null and ``position_consistency_reason`` says why (no order recorded, or no pair
  in both orders); it is null whenever the value is not.
* ``p_first``: P(judge picks the side shown first | strict, order known); ``human_p_first`` the humans' pick rate
  of that same side on the same labels (0.5 when the order carries no information about quality).
* ``p_longer``: P(judge picks the longer response | strict, lengths differ); ``human_p_longer`` on the same labels.
* ``length_slope``: logistic slope of P(judge chooses a) on ``log(len_a / len_b)`` over strict labels (lengths
  floored at 1 character); null when degenerate (under 3 labels, constant verdict or length ratio, separation).
* ``self_preference``: P(judge picks the side written by its own model family | strict, one such side);
  ``human_self_preference`` on the same labels.
* ``ece`` (10 equal-width bins, scikit-learn's ``calibration_curve`` binning) and ``brier`` of ``probability_a``
  against ``human == "a"``, on strict-human labels with a probability (``n_prob``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from prefgate.calibration.encode import Encoded, encode
from prefgate.calibration.overlap import validate_overlap
from prefgate.calibration.stats import (
    FloatArray,
    IntArray,
    cohen_kappa_tables,
    logistic_fit_segments,
    wilson_interval,
    z_value,
)

ALL = "all"
NO_BOTH_ORDERS = "no pair labelled in both presentation orders"
NO_ORDER = "no presentation order recorded and no order check"
N_BINS = 10
_BIN_EDGES = np.linspace(0.0, 1.0, N_BINS + 1)[1:-1]

TABLE_SCHEMA: dict[str, pl.DataType] = {
    "judge_id": pl.String(),
    "slice": pl.String(),
    "slice_value": pl.String(),
    "n_labels": pl.Int64(),
    "n_pairs": pl.Int64(),
    "agree_ties": pl.Float64(),
    "agree_ties_lo": pl.Float64(),
    "agree_ties_hi": pl.Float64(),
    "n_strict": pl.Int64(),
    "agree_strict": pl.Float64(),
    "agree_strict_lo": pl.Float64(),
    "agree_strict_hi": pl.Float64(),
    "kappa": pl.Float64(),
    "kappa_se": pl.Float64(),
    "kappa_lo": pl.Float64(),
    "kappa_hi": pl.Float64(),
    "n_position_checked": pl.Int64(),
    "position_consistency": pl.Float64(),
    "position_consistency_reason": pl.String(),
    "n_first": pl.Int64(),
    "p_first": pl.Float64(),
    "p_first_lo": pl.Float64(),
    "p_first_hi": pl.Float64(),
    "human_p_first": pl.Float64(),
    "n_longer": pl.Int64(),
    "p_longer": pl.Float64(),
    "p_longer_lo": pl.Float64(),
    "p_longer_hi": pl.Float64(),
    "human_p_longer": pl.Float64(),
    "length_slope": pl.Float64(),
    "n_self": pl.Int64(),
    "self_preference": pl.Float64(),
    "self_preference_lo": pl.Float64(),
    "self_preference_hi": pl.Float64(),
    "human_self_preference": pl.Float64(),
    "n_prob": pl.Int64(),
    "ece": pl.Float64(),
    "brier": pl.Float64(),
}


@dataclass(frozen=True)
class _FineCounts:
    """Counts per fine group; every table statistic is a ratio of roll-ups of these."""

    cells: FloatArray  # (n_fine, 3, 3): judge choice x human verdict
    first: FloatArray  # (n_fine, 4): state 2*[judge picks first] + [humans pick first], strict, order known
    longer: FloatArray  # (n_fine, 4): same for the longer side
    self_pick: FloatArray  # (n_fine, 4): same for the judge family's side
    ordered: FloatArray  # (n_fine,): labels with a known presentation order
    prob_bins: FloatArray  # (n_fine, 10, 3): count, sum p, sum y per probability bin
    brier: FloatArray  # (n_fine,): sum of squared errors


def _state_counts(
    fine: IntArray,
    n_fine: int,
    mask: npt.NDArray[np.bool_],
    judge_hit: npt.NDArray[np.bool_],
    human_hit: npt.NDArray[np.bool_],
) -> FloatArray:
    state = np.where(mask, 2 * judge_hit.astype(np.int64) + human_hit, 4)
    return np.bincount(fine * 5 + state, minlength=n_fine * 5).reshape(n_fine, 5)[:, :4].astype(np.float64)


def _fine_counts(enc: Encoded) -> _FineCounts:
    n_fine = enc.fine_digits.shape[0]
    f, jc, hc = enc.fine, enc.judge_choice, enc.human
    cells = np.bincount(f * 9 + jc * 3 + hc, minlength=n_fine * 9).reshape(n_fine, 3, 3).astype(np.float64)
    strict = (jc < 2) & (hc < 2)
    sf, lg, ss = enc.shown_first, enc.longer, enc.self_side
    first = _state_counts(f, n_fine, strict & (sf >= 0), jc == sf, hc == sf)
    longer = _state_counts(f, n_fine, strict & (lg >= 0), jc == lg, hc == lg)
    self_pick = _state_counts(f, n_fine, strict & (ss >= 0), jc == ss, hc == ss)
    ordered = np.bincount(f, weights=(sf >= 0).astype(np.float64), minlength=n_fine).astype(np.float64)
    has_p = ~np.isnan(enc.prob) & (hc < 2)
    p = np.where(has_p, enc.prob, 0.0)
    y = (hc == 0).astype(np.float64)
    code = np.where(has_p, f * N_BINS + np.searchsorted(_BIN_EDGES, p), n_fine * N_BINS)
    size = n_fine * N_BINS + 1
    bins = np.stack(
        [
            np.bincount(code, minlength=size),
            np.bincount(code, weights=p, minlength=size),
            np.bincount(code, weights=np.where(has_p, y, 0.0), minlength=size),
        ],
        axis=1,
    )[:-1].reshape(n_fine, N_BINS, 3)
    sq = np.where(has_p, (p - y) ** 2, 0.0)
    brier = np.asarray(np.bincount(f, weights=sq, minlength=n_fine), dtype=np.float64)
    return _FineCounts(cells, first, longer, self_pick, ordered, bins.astype(np.float64), brier)


def _roll(values: FloatArray, group: IntArray, n_groups: int) -> FloatArray:
    out = np.zeros((n_groups, *values.shape[1:]), dtype=np.float64)
    np.add.at(out, group, values)
    return out


def _distinct(sorted_keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """True at the first occurrence of each value of a sorted array."""
    first = np.empty(sorted_keys.size, dtype=bool)
    first[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return first


@dataclass(frozen=True)
class _PairCounts:
    """Per group of one grouping: distinct pairs, and order-checked pairs by verdict (see :func:`_pair_counts`)."""

    n_pairs: FloatArray  # (n_groups,)
    consistent: FloatArray  # (n_groups, 2): checked pairs whose verdict flipped, checked pairs whose verdict held


_UNCHECKED = 2  # order-check status of a (judge, pair) that cannot be checked
# A label as bits, OR-ed over a judge's labels of a pair: shown first a / b, choice a / b / tie, flag True / False.
_SHOWN_A, _SHOWN_B, _CHOICE_A, _FLAG_TRUE, _FLAG_FALSE = 1, 2, 4, 32, 64


def _status_of_bits() -> npt.NDArray[np.int64]:
    """Order-check status for every OR of label bits: 1 consistent, 0 not, ``_UNCHECKED``.

    Labels in both orders: consistent when they hold a single choice. Otherwise the flags decide (consistent
    unless one is False) when there are any; no flag: unchecked.
    """
    bits = np.arange(128)
    both = (bits & _SHOWN_A > 0) & (bits & _SHOWN_B > 0)
    n_choices = sum((bits >> k) & 1 for k in range(2, 5))
    flagged = bits & (_FLAG_TRUE | _FLAG_FALSE) > 0
    by_flag = np.where(flagged, bits & _FLAG_FALSE == 0, _UNCHECKED)
    return np.where(both, n_choices == 1, by_flag).astype(np.int64)


_STATUS_OF_BITS = _status_of_bits()
# Bits of one label, indexed by its shown_first code + 1, choice code, position_consistent code + 1 (-1 = null).
_SHOWN_BITS = np.array([0, _SHOWN_A, _SHOWN_B], dtype=np.uint8)
_CHOICE_BITS = np.array([_CHOICE_A, _CHOICE_A << 1, _CHOICE_A << 2], dtype=np.uint8)
_FLAG_BITS = np.array([0, _FLAG_FALSE, _FLAG_TRUE], dtype=np.uint8)


def _label_bits(enc: Encoded) -> npt.NDArray[np.uint8]:
    shown, flag = _SHOWN_BITS[enc.shown_first + 1], _FLAG_BITS[enc.consistent + 1]
    return np.asarray(shown | _CHOICE_BITS[enc.judge_choice] | flag, dtype=np.uint8)


def _pair_counts(enc: Encoded, slices: Sequence[str]) -> dict[str | None, _PairCounts]:
    """Distinct pairs and order-checked pairs per group of each grouping (None = per judge), from one sort.

    Each label becomes one 64-bit key: the high bits a hash of ``pair_id``, the low bits its fine group. Sorted,
    keys of one pair sit together ordered by fine group, hence by judge, so one pass counts distinct (pair, fine
    group) and distinct (pair, judge); the OR of the label bits over each (pair, judge) run (labels follow their
    keys through the sort) gives the pair's order-check status for that judge (``_STATUS_OF_BITS``). When those
    two counts are equal (slice values are constant within a judge's labels of a pair, as they are for pair
    attributes) per-slice counts are roll-ups of the per-fine counts; otherwise each slice gets its own sort.
    Hashing instead of exact string de-duplication is several times faster; two pair ids collide with probability
    ~ n_pairs^2 / 2^(65 - bits of the group code) (merged, they count as one pair).
    """
    n_fine = enc.fine_digits.shape[0]
    n_j = len(enc.judges)
    judge_of_fine = enc.fine_digits[:, 0]
    pair_hash = enc.pair_id.hash(seed=0).to_numpy()
    label_bits = _label_bits(enc)

    def keys_of(group: IntArray, n_groups: int, low_bits: int = 0) -> tuple[npt.NDArray[np.uint64], int]:
        """Pair hash in the high bits, ``group`` above ``low_bits`` free low bits; and the bits below the hash."""
        bits = max(int(n_groups - 1).bit_length(), 1) + low_bits
        high = (pair_hash >> np.uint64(bits)) << np.uint64(bits)
        return high | (group.astype(np.uint64) << np.uint64(low_bits)), bits

    def counts(group: IntArray, status: IntArray, n_groups: int) -> _PairCounts:
        n_pairs = np.bincount(group, minlength=n_groups).astype(np.float64)
        cons = np.bincount(group * 3 + status, minlength=n_groups * 3).reshape(n_groups, 3)[:, :2]
        return _PairCounts(n_pairs, cons.astype(np.float64))

    key, bits = keys_of(enc.fine, n_fine)
    order = pl.Series(key).arg_sort().to_numpy()  # multithreaded
    keys = key[order]
    fine = (keys & np.uint64((1 << bits) - 1)).astype(np.int64)
    first_pf = _distinct(keys)
    judge = judge_of_fine[fine]
    first_pj = _distinct(keys >> np.uint64(bits))
    first_pj[1:] |= judge[1:] != judge[:-1]
    starts = np.flatnonzero(first_pj)
    seg_status = _STATUS_OF_BITS[np.bitwise_or.reduceat(label_bits[order], starts)] if starts.size else starts
    out: dict[str | None, _PairCounts] = {None: counts(judge[starts], seg_status, n_j)}
    rolls_up = starts.size == int(first_pf.sum())  # then each (pair, judge) run is one (pair, fine group) run
    if rolls_up:
        per_fine = counts(fine[starts], seg_status, n_fine)
    else:
        status = np.repeat(seg_status, np.diff(np.append(starts, keys.size)))
        per_fine = counts(fine[first_pf], status[first_pf], n_fine)
        label_status = np.empty_like(status)
        label_status[order] = status  # back in label order for the per-slice sorts
    for i, s in enumerate(slices, start=1):
        n_groups = n_j * len(enc.slice_levels[s])
        group_of_fine = judge_of_fine * len(enc.slice_levels[s]) + enc.fine_digits[:, i]
        if rolls_up:
            out[s] = _PairCounts(
                _roll(per_fine.n_pairs, group_of_fine, n_groups), _roll(per_fine.consistent, group_of_fine, n_groups)
            )
        else:  # the status (constant per judge and pair) rides in the key's lowest two bits
            gk, gbits = keys_of(group_of_fine[enc.fine], n_groups, low_bits=2)
            gk = np.sort(gk | label_status.astype(np.uint64))
            low = (gk & np.uint64((1 << gbits) - 1)).astype(np.int64)[_distinct(gk)]
            out[s] = counts(low >> 2, low & 3, n_groups)
    return out


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


class _SlopeRows:
    """Strict labels sorted once by fine group; every grouping's logistic fit runs on this one order."""

    def __init__(self, enc: Encoded) -> None:
        strict = np.flatnonzero((enc.judge_choice < 2) & (enc.human < 2))
        fine = enc.fine[strict]
        n_fine = enc.fine_digits.shape[0]
        key = fine.astype(np.uint16) if n_fine <= np.iinfo(np.uint16).max else fine
        order = strict[np.argsort(key, kind="stable")]  # radix sort for 16-bit keys
        self.x = enc.log_ratio[order]
        self.y = (enc.judge_choice[order] == 0).astype(np.float64)
        self.starts = np.searchsorted(enc.fine[order], np.arange(n_fine)).astype(np.int64)

    def fit(
        self, group_of_fine: IntArray, n_groups: int, init: tuple[FloatArray, FloatArray] | None
    ) -> tuple[FloatArray, FloatArray]:
        b0, b1, _ = logistic_fit_segments(
            self.x, self.y, self.starts, group_of_segment=group_of_fine, n_groups=n_groups, init=init
        )
        return b0, b1


def _grouping_frame(
    fc: _FineCounts,
    group_of_fine: IntArray,
    n_groups: int,
    pairs: _PairCounts,
    slope: FloatArray,
    confidence: float,
) -> dict[str, npt.NDArray[Any]]:
    cells = _roll(fc.cells, group_of_fine, n_groups)
    n = cells.sum(axis=(1, 2))
    agree = np.trace(cells, axis1=1, axis2=2)
    strict_cells = cells[:, :2, :2]
    n_strict = strict_cells.sum(axis=(1, 2))
    agree_strict = strict_cells[:, 0, 0] + strict_cells[:, 1, 1]
    kappa, se = cohen_kappa_tables(cells)
    z = z_value(confidence)
    cols: dict[str, npt.NDArray[Any]] = {"n_labels": n, "n_pairs": pairs.n_pairs}
    lo, hi = wilson_interval(agree, n, confidence)
    cols |= {"agree_ties": _ratio(agree, n), "agree_ties_lo": lo, "agree_ties_hi": hi, "n_strict": n_strict}
    lo, hi = wilson_interval(agree_strict, n_strict, confidence)
    cols |= {"agree_strict": _ratio(agree_strict, n_strict), "agree_strict_lo": lo, "agree_strict_hi": hi}
    cols |= {"kappa": kappa, "kappa_se": se, "kappa_lo": kappa - z * se, "kappa_hi": kappa + z * se}
    n_checked = pairs.consistent.sum(axis=1)
    reason = np.full(n_groups, None, dtype=object)
    reason[n_checked == 0] = NO_BOTH_ORDERS
    reason[(n_checked == 0) & (_roll(fc.ordered, group_of_fine, n_groups) == 0)] = NO_ORDER
    cols |= {
        "n_position_checked": n_checked,
        "position_consistency": _ratio(pairs.consistent[:, 1], n_checked),
        "position_consistency_reason": reason,
    }
    for name, counts, prefix in (
        ("first", fc.first, "p_first"),
        ("longer", fc.longer, "p_longer"),
        ("self", fc.self_pick, "self_preference"),
    ):
        st = _roll(counts, group_of_fine, n_groups)
        total = st.sum(axis=1)
        judge_hits = st[:, 2] + st[:, 3]
        human_hits = st[:, 1] + st[:, 3]
        lo, hi = wilson_interval(judge_hits, total, confidence)
        cols |= {
            f"n_{name}": total,
            prefix: _ratio(judge_hits, total),
            f"{prefix}_lo": lo,
            f"{prefix}_hi": hi,
            f"human_{prefix}": _ratio(human_hits, total),
        }
        if name == "longer":
            cols["length_slope"] = slope
    bins = _roll(fc.prob_bins, group_of_fine, n_groups)
    n_prob = bins[:, :, 0].sum(axis=1)
    cols |= {
        "n_prob": n_prob,
        "ece": _ratio(np.abs(bins[:, :, 1] - bins[:, :, 2]).sum(axis=1), n_prob),
        "brier": _ratio(_roll(fc.brier, group_of_fine, n_groups), n_prob),
    }
    return cols


def calibration_table(overlap: pl.DataFrame, slices: Sequence[str] = (), confidence: float = 0.95) -> pl.DataFrame:
    """Judge-vs-human agreement, bias and probability calibration per (judge, slice, slice value).

    ``overlap`` follows :mod:`prefgate.calibration.overlap`'s contract; ``slices`` are its columns to break the
    statistics down by (each gets its own rows; ``slice="all"``, ``slice_value="all"`` is the judge overall).
    Groups with no labels are left out. See the module docstring for each column's definition.
    """
    slices = list(dict.fromkeys(slices))
    if ALL in slices:
        raise ValueError(f"{ALL!r} is reserved for the overall rows; rename that slice column")
    df = validate_overlap(overlap, slices)
    if df.height == 0:
        return pl.DataFrame(schema=TABLE_SCHEMA)
    enc = encode(df, slices)
    fc = _fine_counts(enc)
    pairs = _pair_counts(enc, slices)
    slope_rows = _SlopeRows(enc)
    judge_of_fine = enc.fine_digits[:, 0]
    n_j = len(enc.judges)
    judge_b0, judge_b1 = slope_rows.fit(judge_of_fine, n_j, None)
    frames = []
    groupings: list[tuple[str, IntArray, int, list[str], IntArray]] = [
        (ALL, judge_of_fine, n_j, [ALL], np.zeros(n_j, dtype=np.int64))
    ]
    for i, s in enumerate(slices, start=1):
        n_v = len(enc.slice_levels[s])
        group = judge_of_fine * n_v + enc.fine_digits[:, i]
        groupings.append((s, group, n_j * n_v, enc.slice_levels[s], np.tile(np.arange(n_v), n_j)))
    for name, group, n_groups, values, value_idx in groupings:
        judge_idx = np.arange(n_groups) // max(len(values), 1)
        if name == ALL:
            slope = judge_b1
        else:  # warm start from the judge's overall fit: a slice's fit converges in a few Newton steps
            _, slope = slope_rows.fit(group, n_groups, (judge_b0[judge_idx], judge_b1[judge_idx]))
        cols = _grouping_frame(fc, group, n_groups, pairs[None if name == ALL else name], slope, confidence)
        frame = pl.DataFrame(
            {
                "judge_id": np.array(enc.judges, dtype=object)[judge_idx],
                "slice": [name] * n_groups,
                "slice_value": np.array(values, dtype=object)[value_idx],
                **{k: pl.Series(k, v.tolist(), pl.String) if v.dtype == object else v for k, v in cols.items()},
            }
        )
        frames.append(frame.filter(pl.col("n_labels") > 0))
    out = pl.concat(frames, how="vertical_relaxed").with_columns(pl.col(pl.Float64).fill_nan(None))
    return out.select([pl.col(c).cast(t) for c, t in TABLE_SCHEMA.items()])
