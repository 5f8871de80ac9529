"""The overlap frame: one row per judge label on a pair that has a human consensus verdict.

Columns (the contract every calibration function reads):

* ``judge_id``, ``pair_id`` (String); ``choice`` and ``human`` in ``a`` / ``b`` / ``tie`` (the judge's verdict and
  the human consensus, both on the canonical pair orientation);
* ``shown_first`` (``a`` / ``b``; null where no order applies, e.g. ensemble rows); ``probability_a`` (Float64,
  the judge's P(a beats b), null without one); ``position_consistent`` (Boolean, null = not checked: read only for
  a judge's pairs not labelled in both orders, e.g. a recorded verdict that already merges both orders; pairs
  with labels in both orders are checked from the labels themselves);
* ``len_a``, ``len_b`` (Int64, characters); ``self_side`` (``a`` / ``b`` = the side written by a model of the
  judge's own family, null when neither or both);
* any slice columns (String; null becomes ``"unknown"``).

:func:`build_overlap` makes it from prefgate's warehouse tables; :func:`ensemble_rows` adds a pseudo-judge
``"ensemble"`` so the ensemble is calibrated like any judge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import polars as pl

CHOICES = ("a", "b", "tie")
SIDES = ("a", "b")
UNKNOWN = "unknown"
ENSEMBLE_ID = "ensemble"

OVERLAP_SCHEMA: dict[str, pl.DataType] = {
    "judge_id": pl.String(),
    "pair_id": pl.String(),
    "choice": pl.String(),
    "human": pl.String(),
    "shown_first": pl.String(),
    "probability_a": pl.Float64(),
    "position_consistent": pl.Boolean(),
    "len_a": pl.Int64(),
    "len_b": pl.Int64(),
    "self_side": pl.String(),
}
REQUIRED = ("judge_id", "pair_id", "choice", "human")

# First match wins; patterns see the lower-cased model name without any "org/" prefix.
_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"^(gpt|chatgpt|text-davinci|davinci|openai|o[134](-|$))", "gpt"),
    (r"^claude", "claude"),
    (r"^(code)?llama|^meta-llama", "llama"),
    (r"^vicuna", "vicuna"),
    (r"^alpaca", "alpaca"),
    (r"^pandalm", "pandalm"),
    (r"^smollm", "smollm"),
    (r"^(mistral|mixtral|ministral|codestral)", "mistral"),
    (r"^gemini|^bard", "gemini"),
    (r"^gemma", "gemma"),
    (r"^(palm|text-bison|chat-bison)", "palm"),
    (r"^qwen", "qwen"),
    (r"^deepseek", "deepseek"),
    (r"^falcon", "falcon"),
    (r"^bloom", "bloom"),
    (r"^opt(-|$)", "opt"),
    (r"^pythia", "pythia"),
    (r"^cerebras", "cerebras"),
    (r"^phi(-|\d|$)", "phi"),
    (r"^(command|cohere)", "cohere"),
    (r"^(koala)", "koala"),
    (r"^(dolly)", "dolly"),
    (r"^(oasst|openassistant)", "oasst"),
    (r"^stablelm", "stablelm"),
    (r"^(chatglm|glm)", "glm"),
    (r"^wizard", "wizardlm"),
    (r"^mpt", "mpt"),
    (r"^yi(-|$)", "yi"),
    (r"^(jurassic|j2-)", "jurassic"),
    (r"^(rwkv|raven)", "rwkv"),
)
_COMPILED = tuple((re.compile(p), fam) for p, fam in _FAMILIES)
_BACKENDS = {"recorded", "openai", "transformers", "pointwise", "http", "vllm", "ollama", "llamacpp", "llama.cpp"}


def model_family(name: str | None) -> str | None:
    """The model family of a model or judge name (``gpt-4o-mini`` -> ``gpt``, ``claude-v1`` -> ``claude``), or None.

    Judge ids of the form ``backend:model:template:constitution`` (``transformers:SmolLM2-135M-Instruct:...``,
    ``recorded:gpt-4:mt-bench-pair``, ``openai:gpt-4o``) are reduced to their model part first; an ``org/`` prefix
    is dropped. Names of no known family (numeric ids, ``programmatic:rules:...``) give None.
    """
    if name is None:
        return None
    text = name.strip().lower()
    if ":" in text:
        parts = text.split(":")
        text = parts[1] if parts[0] in _BACKENDS or len(parts) > 2 else parts[0]
        if parts[0] in ("programmatic",):
            return None
    text = text.rsplit("/", 1)[-1]
    for pattern, family in _COMPILED:
        if pattern.search(text):
            return family
    return None


def _family_map(values: pl.Series, family: Callable[[str | None], str | None]) -> pl.DataFrame:
    names = values.drop_nulls().unique()
    return pl.DataFrame(
        {"name": names, "family": [family(v) for v in names.to_list()]},
        schema={"name": pl.String(), "family": pl.String()},
    )


def build_overlap(
    judge_labels: pl.DataFrame,
    consensus: pl.DataFrame,
    pairs: pl.DataFrame,
    slices: Sequence[str] = (),
    family: Callable[[str | None], str | None] = model_family,
) -> pl.DataFrame:
    """The overlap frame from the warehouse's ``judge_labels``, ``human_consensus`` and ``response_pairs``.

    Keeps judge labels with ``status == "ok"`` and a choice (both presentation orders of a live judge stay: each is
    a label), pairs whose consensus verdict is ``a`` / ``b`` / ``tie`` (``no_majority`` / ``excluded`` are not a
    human verdict), lengths in characters of both responses, ``self_side`` from :func:`model_family` of the judge
    versus ``model_a`` / ``model_b``, and the requested slice columns of ``pairs`` (null -> ``"unknown"``).
    """
    missing = [c for c in slices if c not in pairs.columns]
    if missing:
        raise ValueError(f"slice columns not in pairs: {missing}")
    jl = judge_labels
    if "status" in jl.columns:
        jl = jl.filter(pl.col("status") == "ok")
    extra = [c for c in ("label_id",) if c in jl.columns]
    labels = jl.filter(pl.col("choice").is_in(CHOICES)).select(
        pl.col("judge_id").cast(pl.String),
        pl.col("pair_id").cast(pl.String),
        pl.col("choice").cast(pl.String),
        pl.col("shown_first").cast(pl.String)
        if "shown_first" in jl.columns
        else pl.lit(None, pl.String).alias("shown_first"),
        pl.col("probability_a").cast(pl.Float64)
        if "probability_a" in jl.columns
        else pl.lit(None, pl.Float64).alias("probability_a"),
        pl.col("position_consistent").cast(pl.Boolean)
        if "position_consistent" in jl.columns
        else pl.lit(None, pl.Boolean).alias("position_consistent"),
        *extra,
    )
    human = consensus.filter(pl.col("verdict").is_in(CHOICES)).select(
        pl.col("pair_id").cast(pl.String), pl.col("verdict").cast(pl.String).alias("human")
    )
    slice_cols = [c for c in slices if c not in ("pair_id", "response_a", "response_b", "model_a", "model_b")]
    pair_cols = pairs.select(
        pl.col("pair_id").cast(pl.String),
        pl.col("response_a").str.len_chars().cast(pl.Int64).alias("len_a"),
        pl.col("response_b").str.len_chars().cast(pl.Int64).alias("len_b"),
        pl.col("model_a").cast(pl.String),
        pl.col("model_b").cast(pl.String),
        *[pl.col(c).cast(pl.String).fill_null(UNKNOWN) for c in slice_cols],
    )
    out = labels.join(human, on="pair_id", how="inner").join(pair_cols, on="pair_id", how="inner")
    judges = _family_map(out["judge_id"], family).rename({"name": "judge_id", "family": "fam_j"})
    models = _family_map(pl.concat([out["model_a"], out["model_b"]]), family)
    out = (
        out.join(judges, on="judge_id", how="left")
        .join(models.rename({"name": "model_a", "family": "fam_a"}), on="model_a", how="left")
        .join(models.rename({"name": "model_b", "family": "fam_b"}), on="model_b", how="left")
    )
    a_self = pl.col("fam_j").is_not_null() & (pl.col("fam_a") == pl.col("fam_j")).fill_null(False)
    b_self = pl.col("fam_j").is_not_null() & (pl.col("fam_b") == pl.col("fam_j")).fill_null(False)
    out = out.with_columns(
        pl.when(a_self & ~b_self)
        .then(pl.lit("a"))
        .when(b_self & ~a_self)
        .then(pl.lit("b"))
        .otherwise(pl.lit(None, pl.String))
        .alias("self_side")
    )
    return out.select(*OVERLAP_SCHEMA, *slice_cols, *extra)


def validate_overlap(overlap: pl.DataFrame, slices: Sequence[str] = ()) -> pl.DataFrame:
    """The overlap with contract dtypes, optional columns filled with nulls and slice nulls as ``"unknown"``.

    Raises ValueError on a missing required column, a verdict outside a/b/tie, a ``shown_first`` / ``self_side``
    outside a/b, or a probability outside [0, 1].
    """
    missing = [c for c in (*REQUIRED, *slices) if c not in overlap.columns]
    if missing:
        raise ValueError(f"overlap lacks columns {missing}")
    cols = [
        (pl.col(c) if c in overlap.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in OVERLAP_SCHEMA.items()
    ]
    out = overlap.select(
        *cols, *[pl.col(c).cast(pl.String).fill_null(UNKNOWN) for c in slices if c not in OVERLAP_SCHEMA]
    )

    def outside(col: str, allowed: Sequence[str], null_ok: bool) -> pl.Expr:
        hit = pl.any_horizontal(*[pl.col(col) == v for v in allowed])  # equality beats is_in on short strings
        return (~hit).fill_null(not null_ok).sum().alias(col)

    p = pl.col("probability_a")
    bad = out.select(
        outside("choice", CHOICES, null_ok=False),
        outside("human", CHOICES, null_ok=False),
        outside("shown_first", SIDES, null_ok=True),
        outside("self_side", SIDES, null_ok=True),
        ((p < 0) | (p > 1) | p.is_nan()).fill_null(False).sum().alias("probability_a"),
        (pl.col("judge_id").is_null() | pl.col("pair_id").is_null()).sum().alias("ids"),
    ).row(0, named=True)
    wrong = {k: v for k, v in bad.items() if v}
    if wrong:
        raise ValueError(f"overlap has invalid values (rows per column): {wrong}")
    return out


def ensemble_rows(
    overlap: pl.DataFrame, judge_ids: Sequence[str] | None = None, *, judge_id: str = ENSEMBLE_ID
) -> pl.DataFrame:
    """One overlap row per pair for a pseudo-judge ``judge_id`` combining the given judges (all by default).

    Verdict: the mean ``probability_a`` over every label of those judges on the pair that has one (``a`` above 0.5,
    ``b`` below, ``tie`` at exactly 0.5); a pair without any probability takes the plurality of the labels' choices,
    ``tie`` when the top choices are tied. Per-pair columns (human, lengths, slices) are carried over; the ensemble
    has no presentation order, order check or model family (``shown_first``, ``position_consistent`` and
    ``self_side`` are null).
    """
    rows = overlap if judge_ids is None else overlap.filter(pl.col("judge_id").is_in(list(judge_ids)))
    rows = rows.filter(pl.col("judge_id") != judge_id)
    per_pair = [c for c in overlap.columns if c not in OVERLAP_SCHEMA and c not in ("label_id", "order")]
    votes = (
        rows.group_by("pair_id")
        .agg(
            pl.col("probability_a").mean().alias("probability_a"),
            (pl.col("choice") == "a").sum().alias("n_a"),
            (pl.col("choice") == "b").sum().alias("n_b"),
            (pl.col("choice") == "tie").sum().alias("n_tie"),
            pl.col("human").first(),
            pl.col("len_a").first(),
            pl.col("len_b").first(),
            *[pl.col(c).first() for c in per_pair],
        )
        .sort("pair_id")
    )
    top = pl.max_horizontal("n_a", "n_b", "n_tie")
    n_top = (
        (pl.col("n_a") == top).cast(pl.Int8)
        + (pl.col("n_b") == top).cast(pl.Int8)
        + (pl.col("n_tie") == top).cast(pl.Int8)
    )
    plurality = (
        pl.when(n_top > 1)
        .then(pl.lit("tie"))
        .when(pl.col("n_a") == top)
        .then(pl.lit("a"))
        .when(pl.col("n_b") == top)
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
    )
    p = pl.col("probability_a")
    by_prob = pl.when(p > 0.5).then(pl.lit("a")).when(p < 0.5).then(pl.lit("b")).otherwise(pl.lit("tie"))
    return votes.select(
        pl.lit(judge_id).alias("judge_id"),
        "pair_id",
        pl.when(p.is_not_null()).then(by_prob).otherwise(plurality).alias("choice"),
        "human",
        pl.lit(None, pl.String).alias("shown_first"),
        "probability_a",
        pl.lit(None, pl.Boolean).alias("position_consistent"),
        "len_a",
        "len_b",
        pl.lit(None, pl.String).alias("self_side"),
        *per_pair,
    )
