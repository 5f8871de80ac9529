"""One human label per (task, rater): resolve raters who labelled a task twice, by policy, with nothing lost.

A task is a pair as its source presented it, ``(source, pair_key)``: the agreement statistics' item. A rater who
changed their mind, or a tool that exported twice, leaves two labels of one rater on one task. Agreement and
consensus assume one label per (item, rater), so the extra label must not reach them; it must not stop the
refresh either. (One pair listed under two keys, as PandaLM's test set does, is two tasks: both labels stand.)
Rule, per (source, pair_key, rater_id) group with more than one label:

* ``newest`` (default): the newest label stands -- by ``labeled_at`` (missing sorts oldest), then batch date,
  then file and line; every other label of the group leaves with reason ``conflicting_label`` (another verdict)
  or ``repeated_label`` (the same verdict again).
* ``none``: when the verdicts disagree, no label of the group stands (all leave as ``conflicting_label``); a
  group that only repeats one verdict keeps its newest, as under ``newest``.

Input rows = kept + removed, always. Cost: one sort and one group-by, O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

ConflictRule = Literal["newest", "none"]
KEY = ("source", "pair_key", "rater_id")


@dataclass(frozen=True)
class Resolved:
    """Labels that stand, and those removed with ``reason`` and ``detail`` (which label stands instead, if any)."""

    kept: pl.DataFrame
    removed: pl.DataFrame


def resolve_conflicts(labels: pl.DataFrame, rule: ConflictRule = "newest") -> Resolved:
    """Split human labels into the ones that stand and the ones removed (see the module docstring)."""
    if rule not in ("newest", "none"):
        raise ValueError(f"unknown conflicting-label rule {rule!r}; expected 'newest' or 'none'")
    order = [
        pl.col("labeled_at").is_not_null(),
        pl.col("labeled_at"),
        pl.col("batch_date"),
        pl.col("source_file"),
        pl.col("source_line"),
        pl.col("label_id"),
    ]
    ranked = labels.sort(order, descending=True, nulls_last=True).with_columns(
        pl.int_range(pl.len()).over(KEY).alias("_rank"),
        pl.len().over(KEY).alias("_n"),
        pl.col("choice").n_unique().over(KEY).alias("_verdicts"),
        pl.col("label_id").first().over(KEY).alias("_newest_id"),
        pl.col("choice").first().over(KEY).alias("_newest_choice"),
    )
    drop_all = (pl.col("_verdicts") > 1) if rule == "none" else pl.lit(False)
    remove = (pl.col("_rank") > 0) | drop_all
    conflicting = (pl.col("choice") != pl.col("_newest_choice")) if rule == "newest" else (pl.col("_verdicts") > 1)
    removed = ranked.filter(remove).with_columns(
        pl.when(conflicting).then(pl.lit("conflicting_label")).otherwise(pl.lit("repeated_label")).alias("reason"),
        pl.when(drop_all)
        .then(
            pl.format(
                "rater {} gave {} different verdicts on pair key {}; policy ingest.conflicting_labels = none: "
                "none of their {} labels stands",
                "rater_id",
                "_verdicts",
                "pair_key",
                "_n",
            )
        )
        .otherwise(
            pl.format(
                "rater {} labelled pair key {} {} times; the newest label {} ({}) stands, this one ({}) does not",
                "rater_id",
                "pair_key",
                "_n",
                "_newest_id",
                "_newest_choice",
                "choice",
            )
        )
        .alias("detail"),
    )
    helper = ["_rank", "_n", "_verdicts", "_newest_id", "_newest_choice"]
    kept = ranked.filter(~remove).drop(helper).sort("label_id")
    removed = removed.drop(helper).sort("label_id")
    return Resolved(kept.select(labels.columns), removed)
