"""Route judge-only pairs to human review: disagreement, low calibrated confidence, failing slices, position flips,
plus a seeded stratified random audit so judges that look fine stay checked.

Input is long (one row per judge verdict on a pair that has no confident human consensus); output is one row per
routed pair with its reasons in a fixed order and a priority (1 = review first). Everything is deterministic: the
audit draw ranks pairs by a keyed hash of ``(seed, pair_id)``, so it does not depend on row order, and adding
pairs elsewhere never changes whether an existing pair is drawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

# Contract strings shared with prefgate.calibration.overlap (ENSEMBLE_ID, UNKNOWN).
ENSEMBLE_ID = "ensemble"
UNKNOWN = "unknown"
CHOICES = ("a", "b", "tie")

JUDGES_DISAGREE = "judges_disagree"
LOW_CONFIDENCE = "low_calibrated_confidence"
FAILING_SLICE = "failing_slice"
POSITION_INCONSISTENT = "position_inconsistent"
RANDOM_AUDIT = "random_audit"
REASONS = (JUDGES_DISAGREE, LOW_CONFIDENCE, FAILING_SLICE, POSITION_INCONSISTENT, RANDOM_AUDIT)

CANDIDATE_COLUMNS = ("pair_id", "judge_id", "choice", "calibrated", "position_consistent")
FAILING_COLUMNS = ("judge_id", "slice", "slice_value")


class RoutingPolicy(BaseModel):
    """Which judge-only pairs go to humans, and how many go as a random audit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_calibrated_confidence: float = Field(
        0.7, ge=0.0, le=1.0, description="Route a pair whose ensemble (else best judge) P(humans agree) is below this."
    )
    audit_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Share of the otherwise unrouted pairs drawn, per stratum, as a random audit."
    )
    audit_min_per_slice: int = Field(
        1, ge=0, description="Fewest audit pairs per stratum (joint slice values), when the stratum has that many."
    )
    max_queue: int | None = Field(None, ge=0, description="Keep only this many pairs, highest priority first.")
    seed: int = Field(0, description="Seed of the audit draw; changing it redraws deterministically.")
    slices: tuple[str, ...] = Field(
        ("category", "language", "source"), description="Slice columns: failing-slice lookup and audit strata."
    )


QUEUE_BASE_SCHEMA: dict[str, pl.DataType] = {
    "pair_id": pl.String(),
    "priority": pl.Int64(),
    "reasons": pl.List(pl.String()),
    "n_reasons": pl.Int64(),
    "verdict": pl.String(),
    "confidence": pl.Float64(),
    "verdict_from": pl.String(),
    "n_judges": pl.Int64(),
}


def queue_schema(slices: Sequence[str]) -> dict[str, pl.DataType]:
    """Columns of :func:`review_queue`'s output for the given slice columns."""
    return {**QUEUE_BASE_SCHEMA, **{s: pl.String() for s in slices}}


def audit_rank_key(seed: int, pair_id: str) -> int:
    """A 64-bit keyed hash: the audit draw takes the smallest keys of each stratum."""
    digest = hashlib.blake2b(pair_id.encode("utf-8"), digest_size=8, key=str(seed).encode("utf-8")).digest()
    return int.from_bytes(digest, "big")


def _check(frame: pl.DataFrame, required: Sequence[str], name: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing} (has {frame.columns})")


def _prepare(candidates: pl.DataFrame, slices: Sequence[str]) -> pl.DataFrame:
    """Typed candidate rows with every slice column present as text (null or absent -> ``"unknown"``)."""
    _check(candidates, CANDIDATE_COLUMNS, "candidates")
    bad = candidates.filter(pl.col("choice").is_not_null() & ~pl.col("choice").is_in(CHOICES))
    if bad.height:
        raise ValueError(f"candidates: invalid choice values {sorted(set(bad['choice'].to_list()))} (a, b, tie)")
    slice_cols = [
        (pl.col(s).cast(pl.String) if s in candidates.columns else pl.lit(None, pl.String)).fill_null(UNKNOWN).alias(s)
        for s in slices
    ]
    return candidates.select(
        pl.col("pair_id").cast(pl.String),
        pl.col("judge_id").cast(pl.String),
        pl.col("choice").cast(pl.String),
        pl.col("calibrated").cast(pl.Float64),
        pl.col("position_consistent").cast(pl.Boolean),
        *slice_cols,
    ).sort("pair_id", "judge_id")


def _per_pair(c: pl.DataFrame, slices: Sequence[str]) -> pl.DataFrame:
    """Verdict, confidence, disagreement and position flags per pair."""
    is_judge = pl.col("judge_id") != ENSEMBLE_ID
    # The ensemble speaks for the pair where present; otherwise the judge with the highest calibrated confidence.
    speaker = [~is_judge, pl.col("calibrated"), pl.col("judge_id")]

    def spoken(name: str) -> pl.Expr:
        return pl.col(name).sort_by(speaker, descending=[True, True, False], nulls_last=True).first()

    return (
        c.group_by("pair_id")
        .agg(
            pl.col("judge_id").filter(is_judge).n_unique().alias("n_judges"),
            pl.col("choice").filter(is_judge).drop_nulls().n_unique().alias("n_verdicts"),
            (pl.col("position_consistent") == False).any().alias("flipped"),  # noqa: E712 - null stays unknown
            spoken("choice").alias("verdict"),
            spoken("calibrated").alias("confidence"),
            spoken("judge_id").alias("verdict_from"),
            *[pl.col(s).first().alias(s) for s in slices],
        )
        .sort("pair_id")
    )


def _failing(c: pl.DataFrame, failing_slices: pl.DataFrame, slices: Sequence[str]) -> pl.DataFrame:
    """(pair_id, slice_rank, reason) for every slice of the pair that fails for a judge that labelled it."""
    _check(failing_slices, FAILING_COLUMNS, "failing_slices")
    fs = failing_slices.select(
        pl.col("judge_id").cast(pl.String), pl.col("slice").cast(pl.String), pl.col("slice_value").cast(pl.String)
    ).unique()
    parts = []
    overall = fs.filter(pl.col("slice") == "all").select("judge_id")
    if overall.height:  # a judge that fails overall fails on every pair it labelled, whatever its slices
        hits = c.select("pair_id", "judge_id").join(overall, on="judge_id", how="inner")
        parts.append(
            hits.select(
                "pair_id",
                pl.lit(-1, pl.Int64).alias("slice_rank"),
                pl.lit(f"{FAILING_SLICE}:all=all").alias("reason"),
            )
        )
    for rank, s in enumerate(slices):
        fail = fs.filter(pl.col("slice") == s).select("judge_id", pl.col("slice_value").alias(s))
        if fail.height == 0:
            continue
        hits = c.select("pair_id", "judge_id", s).join(fail, on=["judge_id", s], how="inner")
        parts.append(
            hits.select(
                "pair_id",
                pl.lit(rank, pl.Int64).alias("slice_rank"),
                pl.format("{}:{}={}", pl.lit(FAILING_SLICE), pl.lit(s), pl.col(s)).alias("reason"),
            )
        )
    if not parts:
        return pl.DataFrame(schema={"pair_id": pl.String, "slice_rank": pl.Int64, "reason": pl.String})
    return pl.concat(parts).unique()


def _audit(unrouted: pl.DataFrame, policy: RoutingPolicy) -> pl.Series:
    """pair_ids drawn for the random audit: per stratum k = max(min, round(share * n)), capped at n."""
    if unrouted.height == 0:
        return pl.Series("pair_id", [], pl.String)
    strata: list[pl.Expr] = [pl.col(s) for s in policy.slices] or [pl.lit(0)]
    keys = pl.Series("key", [audit_rank_key(policy.seed, p) for p in unrouted["pair_id"]], pl.UInt64)
    n = pl.len().over(strata)
    quota = pl.max_horizontal(
        pl.lit(policy.audit_min_per_slice, pl.Int64), (n * policy.audit_share + 0.5).floor().cast(pl.Int64)
    )
    rank = pl.col("key").rank("ordinal").over(strata)
    drawn = unrouted.with_columns(keys).filter(rank <= pl.min_horizontal(quota, n))
    return drawn["pair_id"]


def review_queue(
    candidates: pl.DataFrame, failing_slices: pl.DataFrame, policy: RoutingPolicy | None = None
) -> pl.DataFrame:
    """One row per pair to send to human review, ordered by priority (1 first).

    ``candidates``: one row per (pair_id, judge_id) verdict on pairs without a confident human consensus, with
    ``choice`` (a/b/tie), ``calibrated`` (P(humans agree), nullable), ``position_consistent`` (nullable) and the
    slice columns (null slice values read as ``"unknown"``, as in calibration). The pseudo-judge ``"ensemble"``
    supplies the verdict and confidence where present; otherwise the judge with the highest calibrated value does.
    ``failing_slices``: (judge_id, slice, slice_value, ...) of slices whose judge-human agreement failed the gate;
    rows naming a slice outside ``policy.slices`` are ignored.

    Reasons, in this order: ``judges_disagree`` (the non-ensemble judges' verdicts are not all equal, a tie being a
    verdict of its own), ``low_calibrated_confidence`` (confidence below the threshold, or unknown),
    ``failing_slice:<slice>=<value>`` (in ``policy.slices`` order), ``position_inconsistent`` (any verdict flipped
    when the order was swapped), and ``random_audit`` (drawn among the pairs with no other reason, stratified by
    the joint slice values). Priority sorts pairs with a substantive reason before audit-only pairs, then by more
    reasons, then by lower confidence (unknown first), then by pair_id; ``max_queue`` keeps the first rows.
    """
    policy = policy or RoutingPolicy()
    slices = list(policy.slices)
    schema = queue_schema(slices)
    c = _prepare(candidates, slices)
    if c.height == 0:
        return pl.DataFrame(schema=schema)
    pairs = _per_pair(c, slices)
    threshold = policy.min_calibrated_confidence

    def tag(frame: pl.DataFrame, k: int | pl.Expr, reason: str | pl.Expr) -> pl.DataFrame:
        k_expr = k if isinstance(k, pl.Expr) else pl.lit(k)
        r_expr = reason if isinstance(reason, pl.Expr) else pl.lit(reason)
        return frame.select("pair_id", k_expr.cast(pl.Int64).alias("k"), r_expr.cast(pl.String).alias("reason"))

    n = len(slices)
    frames = [
        tag(pairs.filter(pl.col("n_verdicts") > 1), 0, JUDGES_DISAGREE),
        tag(pairs.filter(pl.col("confidence").is_null() | (pl.col("confidence") < threshold)), 1, LOW_CONFIDENCE),
        tag(_failing(c, failing_slices, slices), 2 + pl.col("slice_rank"), pl.col("reason")),
        tag(pairs.filter(pl.col("flipped")), 2 + n, POSITION_INCONSISTENT),
    ]
    routed = pl.concat(frames)
    unrouted = pairs.join(routed.select("pair_id").unique(), on="pair_id", how="anti")
    audit = _audit(unrouted, policy)
    frames.append(tag(audit.to_frame(), 3 + n, RANDOM_AUDIT))
    reasons = (
        pl.concat(frames)
        .sort("pair_id", "k", "reason")
        .group_by("pair_id", maintain_order=True)
        .agg(pl.col("reason").alias("reasons"))
    )
    out = (
        reasons.join(pairs, on="pair_id", how="left")
        .with_columns(pl.col("reasons").list.len().cast(pl.Int64).alias("n_reasons"))
        .sort(
            [
                pl.col("reasons").list.first() == RANDOM_AUDIT,
                pl.col("n_reasons"),
                pl.col("confidence"),
                pl.col("pair_id"),
            ],
            descending=[False, True, False, False],
            nulls_last=False,
        )
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("priority"))
    )
    if policy.max_queue is not None:
        out = out.head(policy.max_queue)
    return out.select([pl.col(k).cast(v) for k, v in schema.items()])
