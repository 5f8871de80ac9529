"""Rater governance in one pass: agreement, rater quality, drift, and consensus under the policy.

The Dagster assets call :func:`audit_raters` and :func:`govern_consensus`; both are pure functions of the label
table and the policy, so they run the same on a tiny frame in a test and on 10M labels in a benchmark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from prefgate.agreement import AgreementReport, agreement_report
from prefgate.consensus import dawid_skene_consensus, majority_consensus
from prefgate.drift import DriftReport, detect_drift, score_labels
from prefgate.gold import VERDICT_SCHEMA
from prefgate.neardup import components
from prefgate.policy import Policy
from prefgate.rater_quality import RaterThresholds, rater_quality

GATING_FLAGS = ("spammer", "biased", "too_fast", "drifting")  # straightlining / tie_outlier are informational
CONSENSUS_EXTRA = ["method", "confidence", "p_a", "p_b", "p_tie", "excluded_label_ids", "excluded_rater_ids"]


@dataclass(frozen=True)
class RaterAudit:
    """Everything the rater audit found on one label table."""

    quality: pl.DataFrame
    drift: DriftReport
    agreement: AgreementReport
    by_source: pl.DataFrame  # per label source: labels, items, raters, alpha and its interval
    excluded_raters: pl.DataFrame  # rater_id, reasons (the policy's exclusion flags that the rater carries)

    @property
    def flagged_share(self) -> float:
        """Share of assessed raters (enough labels to be judged) carrying a gating flag."""
        assessed = self.quality.filter(pl.col("assessed"))
        if assessed.height == 0:
            return 0.0
        return float(assessed.select(pl.any_horizontal(*GATING_FLAGS).mean()).item())


def item_frame(labels: pl.DataFrame) -> pl.DataFrame:
    """Agreement is computed over the sources' own items (source, pair key): a source that lists the same two
    responses under two keys asked its raters twice, and those are two ratings, not one rater labelling twice."""
    return labels.select(pl.concat_str("source", pl.lit("|"), "pair_key").alias("item"), "rater_id", "choice", "source")


def alpha_by_source(items: pl.DataFrame, n_boot: int, seed: int) -> pl.DataFrame:
    rows = []
    for source in sorted(items["source"].unique().to_list()):
        rep = agreement_report(items.filter(pl.col("source") == source), n_boot=n_boot, seed=seed, item_col="item")
        rows.append(
            {
                "source": source,
                "labels": rep.n_labels,
                "items": rep.n_items,
                "raters": rep.n_raters,
                "alpha": rep.alpha,
                "alpha_low": rep.alpha_low,
                "alpha_high": rep.alpha_high,
                "fleiss_kappa": rep.fleiss_kappa,
                "note": rep.alpha_reason or rep.fleiss_reason or "",
            }
        )
    return pl.DataFrame(rows)


def empty_agreement(reason: str) -> AgreementReport:
    """The agreement report of no labels: every coefficient undefined, with ``reason`` saying why."""
    none = f"undefined: {reason}"
    return AgreementReport(
        n_labels=0, n_items=0, n_pairable_items=0, n_raters=0, labels_per_item={}, categories=(), level="nominal",
        alpha=None, alpha_low=None, alpha_high=None, alpha_reason=f"Krippendorff's alpha is {none}",
        fleiss_kappa=None, fleiss_n_raters=None, fleiss_n_items=None, fleiss_reason=f"Fleiss' kappa is {none}",
        percent_agreement=None, percent_agreement_reason=f"percent agreement is {none}", n_boot=0, ci_level=0.95,
    )  # fmt: skip


def _empty_audit(labels: pl.DataFrame, policy: Policy) -> RaterAudit:
    """The audit of no labels (e.g. only gold reference labels): no raters, no days, alpha undefined.

    The per-rater and drift frames keep their real columns: they come from auditing one probe label of the same
    schema and are then emptied, so downstream assets and the warehouse see the usual tables with no rows.
    """
    probe_values = {
        pl.String: "probe",
        pl.Date: dt.date(2000, 1, 1),
        pl.Datetime: dt.datetime(2000, 1, 1),
        pl.Float64: 1.0,
        pl.Int64: 1,
        pl.Boolean: False,
    }
    row = {c: probe_values.get(t.base_type()) for c, t in labels.schema.items()}
    row["choice"] = row["shown_first"] = "a"
    probe = pl.DataFrame([row], schema=labels.schema, orient="row")
    full = audit_raters(probe, policy)
    parts = {f.name: getattr(full.drift, f.name) for f in fields(full.drift)}
    drift = DriftReport(**{k: v.clear() if isinstance(v, pl.DataFrame) else v for k, v in parts.items()})
    return RaterAudit(
        full.quality.clear(), drift, empty_agreement("there are no panel labels"), full.by_source.clear(),
        full.excluded_raters.clear(),
    )  # fmt: skip


def audit_raters(labels: pl.DataFrame, policy: Policy, gold: pl.DataFrame | None = None) -> RaterAudit:
    """Agreement (pooled and per source), per-rater quality with flags, drift, and the raters to exclude.

    No labels (a benchmark with only gold reference labels) is an audit with no raters and alpha undefined."""
    if labels.is_empty():
        return _empty_audit(labels, policy)
    thresholds = RaterThresholds.from_overrides(policy.raters.thresholds, policy.raters.drift_thresholds)
    scored = score_labels(labels)
    drift = detect_drift(labels, thresholds.drift, scored=scored)
    if policy.gold_pairs:  # the policy's gold pairs first: they win over a gold source's verdict on one pair
        listed = pl.DataFrame([g.model_dump() for g in policy.gold_pairs]).cast(VERDICT_SCHEMA)  # type: ignore[arg-type]
        if gold is not None:
            listed = pl.concat([listed, gold.cast(VERDICT_SCHEMA)]).unique("pair_id", keep="first")  # type: ignore[arg-type]
        gold = listed
    quality = rater_quality(labels, gold, thresholds, drift_report=drift, scored=scored)
    cfg = policy.agreement
    items = item_frame(labels)
    report = agreement_report(items, n_boot=cfg.bootstrap_samples, seed=cfg.seed, item_col="item")
    excluded = excluded_raters(quality, policy)
    return RaterAudit(
        quality, drift, report, alpha_by_source(items, min(cfg.bootstrap_samples, 200), cfg.seed), excluded
    )


def excluded_raters(quality: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Raters whose labels stay out of consensus: ``rater_id`` and ``reasons`` (the policy's flags they carry)."""
    exclude = list(policy.raters.exclude_flags)
    if not exclude:
        return pl.DataFrame(schema={"rater_id": pl.String, "reasons": pl.List(pl.String)})
    return quality.filter(pl.any_horizontal(*exclude)).select(
        "rater_id",
        pl.concat_list([pl.when(pl.col(f)).then(pl.lit(f)) for f in exclude]).list.drop_nulls().alias("reasons"),
    )


def source_groups(labels: pl.DataFrame) -> list[pl.DataFrame]:
    """The labels split into groups of label sources that share no pair: one Dawid-Skene fit per group.

    A fit shares its class prior and confusion estimates across everything it sees, so fitting unrelated sources
    together lets a change in one (a rater retracted from a crowd) move posteriors in another (an expert panel).
    Sources that label a common pair stay in one fit. Without a ``source`` column there is one group.
    """
    if "source" not in labels.columns or labels.height == 0:
        return [labels]
    links = labels.select("source", "pair_id").unique()
    sources = sorted(links["source"].unique().to_list())
    index = {src: i for i, src in enumerate(sources)}
    shared = links.group_by("pair_id").agg(pl.col("source").unique().sort()).filter(pl.col("source").list.len() > 1)
    edges = [(index[s[0]], index[other]) for s in shared["source"].to_list() for other in s[1:]]
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    label = components(len(sources), pairs[:, 0], pairs[:, 1])
    group = pl.DataFrame({"source": sources, "_group": label})
    tagged = labels.join(group, on="source", how="left")
    return [g.drop("_group") for g in tagged.partition_by("_group", maintain_order=True)]


def govern_consensus(labels: pl.DataFrame, excluded_raters: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Consensus per pair by the policy's method, without the excluded raters' labels.

    Every pair that had labels keeps a row: ``excluded_label_ids`` / ``excluded_rater_ids`` record what was left
    out, and a pair whose labels were all excluded gets verdict ``excluded`` with zero counts.
    """
    excluded_ids = excluded_raters["rater_id"].implode()
    dropped = labels.filter(pl.col("rater_id").is_in(excluded_ids))
    kept = labels.filter(~pl.col("rater_id").is_in(excluded_ids))
    method = policy.consensus.method
    if kept.height == 0:  # nothing left to vote: no probabilities (every pair becomes ``excluded`` below)
        base = majority_consensus(kept).with_columns(
            *[pl.lit(None, dtype=pl.Float64).alias(c) for c in ("p_a", "p_b", "p_tie", "confidence")]
        )
    elif method == "dawid_skene":
        base = pl.concat([dawid_skene_consensus(part) for part in source_groups(kept)], how="vertical_relaxed").sort(
            "pair_id"
        )
    else:
        base = majority_consensus(kept).with_columns(
            (pl.col("n_a") / pl.col("n_labels")).alias("p_a"),
            (pl.col("n_b") / pl.col("n_labels")).alias("p_b"),
            (pl.col("n_tie") / pl.col("n_labels")).alias("p_tie"),
            pl.col("agreement").alias("confidence"),
        )
    provenance = dropped.group_by("pair_id").agg(
        pl.col("label_id").sort().alias("excluded_label_ids"),
        pl.col("rater_id").unique().sort().alias("excluded_rater_ids"),
    )
    all_pairs = labels.select("pair_id").unique()
    out = all_pairs.join(base, on="pair_id", how="left").join(provenance, on="pair_id", how="left")
    empty = pl.lit([], dtype=pl.List(pl.String))
    return (
        out.with_columns(
            pl.col("verdict").fill_null("excluded"),
            *[pl.col(c).fill_null(0) for c in ("n_labels", "n_a", "n_b", "n_tie")],
            pl.col("agreement").fill_null(0.0),
            *[
                pl.col(c).fill_null(empty)
                for c in ("label_ids", "rater_ids", "sources", "excluded_label_ids", "excluded_rater_ids")
            ],
            pl.lit(method).alias("method"),
        )
        .select(
            *[c for c in base.columns if c not in ("p_a", "p_b", "p_tie", "confidence")],
            "p_a",
            "p_b",
            "p_tie",
            "confidence",
            "method",
            "excluded_label_ids",
            "excluded_rater_ids",
        )
        .sort("pair_id")
    )
