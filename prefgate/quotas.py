"""Quota policy and balanced sampling of a preference set over language × category cells.

A cell is ``"<language>/<category>"`` (null → ``"unknown"``). Quotas are keyed by cell patterns in which either
part may be ``"*"``: ``"en/coding"`` names one cell, ``"en/*"`` every English cell, ``"*/coding"`` every coding
cell, ``"*/*"`` all cells. Each pattern bounds each matching cell on its own (``"en/*": 200`` caps every English
cell at 200 rows, not English as a whole). When several patterns match a cell, the most specific wins (no
wildcard > one > two); among equally specific ones, the most restrictive (smallest cap, largest floor).

:func:`balanced_sample` enforces ``max_per_cell`` only; ``min_per_cell`` floors are reported and gated
(:func:`prefgate.set_audits.coverage`), since sampling can drop rows but never create them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefgate.ids import content_hash

__all__ = ["UNKNOWN", "WILDCARD", "QuotaPolicy", "balanced_sample", "cell_keys", "resolve_quota"]

WILDCARD = "*"
UNKNOWN = "unknown"
DEFAULT_DIMS: tuple[str, str] = ("language", "category")


class QuotaPolicy(BaseModel):
    """Per-cell caps and floors for the preference set, plus the seed of the sampling order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_cell: dict[str, int] = Field(
        default_factory=dict,
        description='Most rows a "language/category" cell keeps ("*" wildcards allowed, e.g. "en/*", "*/coding").',
    )
    min_per_cell: dict[str, int] = Field(
        default_factory=dict, description="Coverage floors per cell: reported and gated, not enforced by sampling."
    )
    seed: int = Field(0, description="Changing it reshuffles which prompts a capped cell keeps, deterministically.")

    @field_validator("max_per_cell", "min_per_cell")
    @classmethod
    def _valid_keys(cls, quotas: dict[str, int]) -> dict[str, int]:
        for key, value in quotas.items():
            parts = key.split("/")
            if len(parts) != 2 or not all(p.strip() for p in parts):
                raise ValueError(f"quota key {key!r} must be 'language/category' (either part may be '*')")
            if value < 0:
                raise ValueError(f"quota {key!r} must be >= 0, got {value}")
        return quotas


def _specificity(pattern: str) -> int:
    return sum(part != WILDCARD for part in pattern.split("/"))


def _matches(pattern: str, cell: str) -> bool:
    p_parts, c_parts = pattern.split("/"), cell.split("/")
    return len(p_parts) == len(c_parts) and all(p in (WILDCARD, c) for p, c in zip(p_parts, c_parts, strict=True))


def resolve_quota(cell: str, quotas: Mapping[str, int], *, floor: bool = False) -> tuple[str, int] | None:
    """The (pattern, value) that governs ``cell``: most specific match, then most restrictive; None if none."""
    matching = [(p, v) for p, v in quotas.items() if _matches(p, cell)]
    if not matching:
        return None
    best = max(_specificity(p) for p, _ in matching)
    tied = [(p, v) for p, v in matching if _specificity(p) == best]
    pick = max if floor else min
    return pick(tied, key=lambda pv: (pv[1], pv[0]))


def cell_keys(df: pl.DataFrame, dims: Sequence[str] = DEFAULT_DIMS) -> pl.Expr:
    """Expression giving each row's cell key, ``"<dim1>/<dim2>"`` with null or empty parts as ``"unknown"``."""
    parts = [
        pl.col(d).cast(pl.String).fill_null(UNKNOWN).str.replace(r"^\s*$", UNKNOWN)
        if d in df.columns
        else pl.lit(UNKNOWN)
        for d in dims
    ]
    return pl.concat_str(parts, separator="/")


def _greedy_drops(ranked: pl.DataFrame) -> list[bool]:
    """Walk groups in rank order; a group is kept when its rows still fit under its cell's cap (None = no cap)."""
    used: dict[str, int] = {}
    drops: list[bool] = []
    for cell, n, cap in ranked.select("__gcell", "__n", "__cap").iter_rows():
        fits = cap is None or used.get(cell, 0) + n <= cap
        if fits:
            used[cell] = used.get(cell, 0) + n
        drops.append(not fits)
    return drops


def balanced_sample(
    df: pl.DataFrame, policy: QuotaPolicy, dims: Sequence[str] = DEFAULT_DIMS
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cap every cell at its ``max_per_cell`` quota; return ``(kept, dropped)``, which together are ``df``.

    Sampling is by prompt group (``prompt_id``, else ``example_id``) so a prompt's rows stay together: a group
    belongs to the cell most of its rows fall in (ties → smallest key). Within a cell, groups are ranked by mean
    ``weight`` (higher first, when the column exists) and then by a seeded content hash of the group id, so the
    order is deterministic across runs and machines. Groups are then taken greedily in that order: a group is
    kept when its rows still fit under the cell's cap, else dropped and the walk goes on (a smaller later group
    may fit). ``dropped`` carries ``reason`` ("quota en/coding: 50 kept of 73") and ``quota_rule`` (the pattern
    that applied). Both frames keep ``df``'s columns and row order.
    """
    group_col = "prompt_id" if "prompt_id" in df.columns else "example_id"
    if group_col not in df.columns:
        raise ValueError("balanced_sample needs a prompt_id or example_id column to group rows")
    reason_schema = {"reason": pl.String, "quota_rule": pl.String}
    if df.height == 0 or not policy.max_per_cell:
        return df, df.clear().with_columns(pl.lit(None, dtype=t).alias(c) for c, t in reason_schema.items())

    weight = pl.col("weight").cast(pl.Float64).fill_null(0.0) if "weight" in df.columns else pl.lit(0.0)
    rows = df.with_row_index("__row").with_columns(
        cell_keys(df, dims).alias("__cell"), pl.col(group_col).cast(pl.String).alias("__group"), weight.alias("__w")
    )
    # One cell per group: the cell holding most of its rows, ties broken by the smallest key.
    group_cell = (
        rows.group_by("__group", "__cell")
        .len()
        .sort(["__group", "len", "__cell"], descending=[False, True, False])
        .unique("__group", keep="first")
        .select("__group", pl.col("__cell").alias("__gcell"))
    )
    groups = (
        rows.group_by("__group")
        .agg(pl.len().alias("__n"), pl.col("__w").mean().alias("__gw"))
        .join(group_cell, on="__group")
    )
    salt = f"quota-seed-{policy.seed}"
    groups = groups.with_columns(
        pl.Series("__hash", [content_hash(salt, g) for g in groups["__group"].to_list()], dtype=pl.String)
    )
    cells = groups["__gcell"].unique().to_list()
    rules = {c: resolve_quota(c, policy.max_per_cell) for c in cells}
    caps = pl.DataFrame(
        {
            "__gcell": cells,
            "__cap": [r[1] if r else None for r in rules.values()],
            "__rule": [r[0] if r else None for r in rules.values()],
        },
        schema={"__gcell": pl.String, "__cap": pl.Int64, "__rule": pl.String},
    )
    ranked = groups.join(caps, on="__gcell", how="left").sort(
        ["__gcell", "__gw", "__hash"], descending=[False, True, False]
    )
    ranked = ranked.with_columns(pl.Series("__drop", _greedy_drops(ranked), dtype=pl.Boolean))
    ranked = ranked.with_columns(
        pl.when(~pl.col("__drop")).then(pl.col("__n")).otherwise(0).sum().over("__gcell").alias("__kept_n"),
        pl.col("__n").sum().over("__gcell").alias("__cell_n"),
    )
    decided = rows.join(
        ranked.select("__group", "__gcell", "__drop", "__rule", "__kept_n", "__cell_n"), on="__group"
    ).sort("__row")
    reason = pl.format("quota {}: {} kept of {}", "__gcell", "__kept_n", "__cell_n")
    helper = ["__row", "__cell", "__group", "__w", "__gcell", "__drop", "__rule", "__kept_n", "__cell_n"]
    kept = decided.filter(~pl.col("__drop")).drop(helper)
    dropped = (
        decided.filter(pl.col("__drop"))
        .with_columns(reason.alias("reason"), pl.col("__rule").alias("quota_rule"))
        .drop(helper)
    )
    return kept, dropped
