"""Curation passes between the merge and the gates: prompt audit and row curation.

:func:`audit_prompts` groups exact and near-duplicate prompts (MinHash, and MiniLM embeddings when enabled) into
one ``group_id`` so the split keeps a prompt and its near-copies on one side, identifies each prompt's language,
and matches prompts against the eval / red-team prompts (exact, word n-gram overlap, MinHash, embeddings).

:func:`curate_rows` removes rows that must not train -- degenerate pairs, contaminated prompts, rows with PII --
and samples the rest to the policy's per-cell quotas. Every removed row is returned with its reason, so
``candidates = kept + dropped`` always holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from prefgate.degenerate import degenerate_pairs
from prefgate.gates import pii_rows
from prefgate.langid import detect_languages
from prefgate.neardup import components, exact_duplicates, near_duplicates
from prefgate.policy import CurationPolicy, Policy
from prefgate.quotas import balanced_sample

MATCH_SCHEMA: dict[str, pl.DataType] = {
    "train_id": pl.String(),
    "eval_id": pl.String(),
    "eval_source": pl.String(),
    "method": pl.String(),
    "score": pl.Float64(),
    "sample": pl.String(),
}
DROP_COLUMNS = ["example_id", "pair_id", "prompt_id", "label_origin", "split", "reason"]


def _groups(ids: list[str], edges: list[tuple[str, str, str]]) -> pl.DataFrame:
    """Connected components of the duplicate edges: (prompt_id, group_id = smallest id, duplicate_method)."""
    order = sorted(ids)
    index = {x: i for i, x in enumerate(order)}
    kept = [(a, b, how) for a, b, how in edges if a in index and b in index]
    left = np.array([index[a] for a, _, _ in kept], dtype=np.int64)
    right = np.array([index[b] for _, b, _ in kept], dtype=np.int64)
    label = components(len(order), left, right)
    group = {x: order[int(label[i])] for i, x in enumerate(order)}
    method: dict[str, str] = {}
    for a, b, how in kept:
        method.setdefault(a, how)
        method.setdefault(b, how)
    return pl.DataFrame(
        {
            "prompt_id": ids,
            "group_id": [group[i] for i in ids],
            "duplicate_method": [method.get(i) for i in ids],
        },
        schema={"prompt_id": pl.String, "group_id": pl.String, "duplicate_method": pl.String},
    )


def _matches(
    prompts: pl.DataFrame, eval_prompts: pl.DataFrame, cur: CurationPolicy, cache_dir: Path | None
) -> pl.DataFrame:
    """Every (training prompt, eval prompt) match by exact text, n-gram overlap, MinHash or embedding."""
    from prefgate.decontam import contamination

    if prompts.height == 0 or eval_prompts.height == 0:
        return pl.DataFrame(schema=MATCH_SCHEMA)
    parts = []
    exact = prompts.join(
        eval_prompts.select("prompt_id", pl.col("source").alias("eval_source")), on="prompt_id", how="inner"
    )
    parts.append(
        exact.select(
            pl.col("prompt_id").alias("train_id"),
            pl.col("prompt_id").alias("eval_id"),
            "eval_source",
            pl.lit("exact").alias("method"),
            pl.lit(1.0).alias("score"),
            pl.col("prompt").str.slice(0, 120).alias("sample"),
        )
    )
    ng = contamination(
        prompts["prompt_id"],
        prompts["prompt"],
        eval_prompts["prompt_id"],
        eval_prompts["prompt"],
        eval_prompts["source"],
        ngram=cur.contamination_ngram,
        jaccard_threshold=cur.contamination_jaccard,
    )
    if ng.height:
        parts.append(
            ng.select(
                pl.col("train_id").cast(pl.String),
                pl.col("eval_id").cast(pl.String),
                pl.col("eval_source").cast(pl.String),
                pl.col("method").cast(pl.String),
                pl.col("overlap").cast(pl.Float64).alias("score"),
                pl.col("sample").cast(pl.String) if "sample" in ng.columns else pl.lit(None, pl.String).alias("sample"),
            )
        )
    if cur.use_embeddings:
        from prefgate.embed import embedding_contamination

        emb = embedding_contamination(
            prompts["prompt_id"],
            prompts["prompt"],
            eval_prompts["prompt_id"],
            eval_prompts["prompt"],
            eval_prompts["source"],
            threshold=cur.contamination_cosine,
            cache_dir=cache_dir,
        )
        if emb.height:
            parts.append(
                emb.join(eval_prompts.select(pl.col("prompt_id").alias("eval_id"), "prompt"), on="eval_id").select(
                    pl.col("train_id").cast(pl.String),
                    pl.col("eval_id").cast(pl.String),
                    pl.col("eval_source").cast(pl.String),
                    pl.lit("embedding").alias("method"),
                    pl.col("cosine").cast(pl.Float64).alias("score"),
                    pl.col("prompt").str.slice(0, 120).alias("sample"),
                )
            )
    return (
        pl.concat([p.select(list(MATCH_SCHEMA)).cast(pl.Schema(MATCH_SCHEMA)) for p in parts])
        .unique(["train_id", "eval_id", "method"])
        .sort("train_id", "eval_id", "method")
    )


def audit_prompts(
    response_pairs: pl.DataFrame,
    eval_prompts: pl.DataFrame,
    cur: CurationPolicy,
    *,
    cache_dir: Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(prompt audit, contamination matches) for the prompts of ``response_pairs`` (see the module docstring)."""
    prompts = (
        response_pairs.select("prompt_id", "prompt", "source", "language")
        .unique("prompt_id", keep="first", maintain_order=True)
        .sort("prompt_id")
    )
    ids = prompts["prompt_id"].to_list()
    edges: list[tuple[str, str, str]] = []
    if prompts.height:
        ex = exact_duplicates(prompts["prompt_id"], prompts["prompt"])
        edges += [(a, b, "exact") for a, b in ex.select("id", "group_id").iter_rows() if a != b]
        nd = near_duplicates(prompts["prompt_id"], prompts["prompt"], threshold=cur.near_duplicate_threshold)
        edges += [(a, b, "minhash") for a, b in nd.select("id", "duplicate_of").iter_rows()]
        if cur.use_embeddings:
            from prefgate.embed import embedding_near_duplicates

            ed = embedding_near_duplicates(
                prompts["prompt_id"],
                prompts["prompt"],
                threshold=cur.embedding_duplicate_threshold,
                cache_dir=cache_dir,
            )
            edges += [(a, b, "embedding") for a, b in ed.select("id", "duplicate_of").iter_rows()]
    groups = _groups(ids, edges)
    langs = detect_languages(prompts["prompt"]).rename({"language": "language_detected"})
    matches = _matches(prompts, eval_prompts, cur, cache_dir)
    hit = matches.group_by("train_id").agg(pl.col("method").unique().sort().str.join(",").alias("contamination"))
    audit = (
        pl.concat([prompts.select("prompt_id", "source", "language"), langs], how="horizontal")
        .join(groups, on="prompt_id", how="left")
        .join(hit.rename({"train_id": "prompt_id"}), on="prompt_id", how="left")
        .with_columns(pl.col("contamination").is_not_null().alias("contaminated"))
    )
    return audit, matches


def curate_rows(candidates: pl.DataFrame, matches: pl.DataFrame, policy: Policy) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, dropped): degenerate, contaminated and PII rows out (per policy), then quota sampling."""
    cur = policy.curation
    reasons: list[pl.DataFrame] = []
    if cur.drop_degenerate and candidates.height:
        deg = degenerate_pairs(
            candidates,
            columns=("chosen", "rejected"),
            id_column="example_id",
            near_identical=cur.degenerate_near_identical,
            near_threshold=cur.degenerate_near_threshold,
        )
        reasons.append(
            deg.select(
                pl.col("pair_id").alias("example_id"),
                pl.format("degenerate: {} ({})", "reason", "evidence").alias("reason"),
            )
        )
    if cur.drop_contaminated and matches.height:
        per_prompt = matches.group_by("train_id").agg(
            pl.format("{} by {}", "eval_source", "method").unique().sort().str.join(", ").alias("what")
        )
        hit = candidates.join(per_prompt, left_on="prompt_id", right_on="train_id", how="inner")
        reasons.append(
            hit.select("example_id", pl.format("contaminated: matches eval prompts ({})", "what").alias("reason"))
        )
    if cur.drop_pii and candidates.height:
        pii = pii_rows(candidates)
        if pii.height:
            reasons.append(
                pii.select(
                    "example_id",
                    pl.format("pii: {} in {}", pl.col("kinds").list.join(","), pl.col("columns").list.join(",")).alias(
                        "reason"
                    ),
                )
            )
    if reasons:
        first = pl.concat(reasons).unique("example_id", keep="first", maintain_order=True)
    else:
        first = pl.DataFrame(schema={"example_id": pl.String, "reason": pl.String})
    removed = candidates.join(first, on="example_id", how="inner")
    remaining = candidates.join(first, on="example_id", how="anti")
    kept, quota_dropped = balanced_sample(remaining, policy.quotas)
    dropped = pl.concat(
        [removed.select(DROP_COLUMNS), quota_dropped.select(DROP_COLUMNS)], how="vertical_relaxed"
    ).sort("example_id")
    return kept.sort("example_id"), dropped
