"""Evaluate a trained reward model and DPO policy on held-out data (the ``model_eval`` asset's logic).

* Reward model: pairwise accuracy on the preference set's held-out human-labelled split (per category) and on
  HH-RLHF test pairs (Anthropic's chosen/rejected; never in the set, they carry one label each).
* Policy vs its reference (the base it was trained from): refusal rate on XSTest's unsafe prompts and over-refusal
  on its safe ones (:mod:`prefgate.refusal`, XSTest-style compliance classification).
* Win rate of the policy over the reference on held-out prompts, judged by a configured judge in both orders,
  raw and length-controlled (:func:`prefgate.model_eval.win_rate`).

Samples are deterministic: rows are ordered by a hash of their id, so the same data gives the same sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from prefgate.ids import content_hash


@dataclass(frozen=True)
class EvalInputs:
    """What one evaluation reads, and how large its CPU-bound samples are."""

    reward_model_dir: Path
    policy_dir: Path
    preference_set: pl.DataFrame
    response_pairs: pl.DataFrame
    eval_prompts: pl.DataFrame
    hh_rlhf_pairs: int = 40
    xstest_per_class: int = 8
    win_rate_prompts: int = 6
    max_new_tokens: int = 40
    judge: str = "smollm2-pairwise"
    judge_cache: Path | None = None
    reference: str = "smollm2"
    max_score_tokens: int = 512

    def key(self) -> str:
        """Content key of this evaluation: the models, the data it reads and the settings."""
        from prefgate.export import frame_hash

        data = [frame_hash(f) for f in (held_out_pairs(self.preference_set).sort("example_id"),)]
        data += [str(self.response_pairs.height), str(self.eval_prompts.height)]
        settings = [str(v) for v in (self.hh_rlhf_pairs, self.xstest_per_class, self.win_rate_prompts)]
        settings += [str(self.max_new_tokens), str(self.max_score_tokens)]
        return content_hash(
            "eval-v1",
            str(self.reward_model_dir),
            str(self.policy_dir),
            self.judge,
            self.reference,
            *data,
            *settings,
        )


@dataclass(frozen=True)
class EvalReport:
    """Tables and the headline numbers (tracked for regressions)."""

    headline: dict[str, float | None]
    reward_accuracy: pl.DataFrame
    hh_rlhf_accuracy: pl.DataFrame
    refusal: pl.DataFrame
    win_rate: dict[str, Any]


def _sample(df: pl.DataFrame, id_col: str, n: int) -> pl.DataFrame:
    """The first ``n`` rows in the order of a salted hash of ``id_col``: deterministic and unbiased by id order."""
    if df.height <= n:
        return df
    return (
        df.with_columns(pl.col(id_col).map_elements(lambda v: content_hash("eval-sample", v), pl.String).alias("_k"))
        .sort("_k")
        .head(n)
        .drop("_k")
    )


def held_out_pairs(preference_set: pl.DataFrame) -> pl.DataFrame:
    """The eval split's human-labelled rows (judge rows are not ground truth for a reward model)."""
    return preference_set.filter((pl.col("split") == "eval") & (pl.col("label_origin") == "human"))


def hh_rlhf_pairs(response_pairs: pl.DataFrame, n: int) -> pl.DataFrame:
    """HH-RLHF test pairs as prompt/chosen/rejected from the source's own chosen side (``reference_choice``)."""
    hh = response_pairs.filter((pl.col("source") == "hh-rlhf") & pl.col("reference_choice").is_not_null())
    a = pl.col("reference_choice") == "a"
    pairs = hh.select(
        "pair_id",
        "prompt",
        pl.when(a).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        "category",
    )
    return _sample(pairs, "pair_id", n)


def xstest_prompts(eval_prompts: pl.DataFrame, per_class: int) -> pl.DataFrame:
    """``per_class`` safe and unsafe XSTest prompts."""
    xs = eval_prompts.filter((pl.col("source") == "xstest") & pl.col("safety").is_in(["safe", "unsafe"]))
    parts = [_sample(xs.filter(pl.col("safety") == s), "prompt_id", per_class) for s in ("safe", "unsafe")]
    return pl.concat(parts).select("prompt_id", "prompt", "safety")


def _win_rate(
    inputs: EvalInputs,
    generate: Mapping[str, Callable[[Sequence[str]], list[str]]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    from prefgate.judges.cache import JudgmentCache
    from prefgate.judges.constitution import load_constitution
    from prefgate.judges.registry import load_registry
    from prefgate.judges.runner import judge_pairs
    from prefgate.model_eval import judgments_frame, win_rate

    held = held_out_pairs(inputs.preference_set).select("prompt_id", "prompt", "category").unique("prompt_id")
    prompts = _sample(held, "prompt_id", inputs.win_rate_prompts)
    if prompts.height == 0:
        return {"n_pairs": 0, "note": "no held-out prompts"}
    texts = prompts["prompt"].to_list()
    ours, theirs = generate["policy"](texts), generate["reference"](texts)
    tag = str(inputs.policy_dir)
    pairs = prompts.with_columns(
        pl.Series("response_a", ours, dtype=pl.String),
        pl.Series("response_b", theirs, dtype=pl.String),
        pl.Series("pair_id", [content_hash("win-rate", tag, p) for p in texts], dtype=pl.String),
    )
    registry = load_registry()
    judge = registry.build(inputs.judge, load_constitution())
    cache_path = inputs.judge_cache or Path(".prefgate-eval-judge-cache.sqlite")
    log(f"win rate: judging {pairs.height} policy-vs-reference pairs in both orders with {inputs.judge}")
    with JudgmentCache(cache_path) as cache:
        judgments = judge_pairs(pairs, [judge], cache, pii_policy="allow")
    lengths = pairs.select(
        "pair_id",
        pl.col("response_a").str.len_chars().alias("policy_length"),
        pl.col("response_b").str.len_chars().alias("reference_length"),
    )
    result = win_rate(judgments_frame(judgments, lengths, policy_side="a"))
    out: dict[str, Any] = {
        **result.to_dict(),
        "judge": judge.judge_id,
        "identical_responses": int((pairs["response_a"] == pairs["response_b"]).sum()),
    }
    return out


def save_report(report: EvalReport, path: Path) -> None:
    """Write a report as JSON (tables as row lists) so an identical evaluation can be reused."""
    import json

    payload = {
        "headline": report.headline,
        "reward_accuracy": report.reward_accuracy.to_dicts(),
        "hh_rlhf_accuracy": report.hh_rlhf_accuracy.to_dicts(),
        "refusal": report.refusal.to_dicts(),
        "win_rate": report.win_rate,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def load_report(path: Path) -> EvalReport | None:
    """A report saved by :func:`save_report`, or None."""
    import json

    if not path.exists():
        return None
    d = json.loads(path.read_text(encoding="utf-8"))
    return EvalReport(
        d["headline"],
        pl.DataFrame(d["reward_accuracy"]),
        pl.DataFrame(d["hh_rlhf_accuracy"]),
        pl.DataFrame(d["refusal"]),
        d["win_rate"],
    )


def evaluate_models(inputs: EvalInputs, log: Callable[[str], None] = print) -> EvalReport:
    """Every evaluation above; the headline holds the numbers :func:`prefgate.model_eval.regression_check` tracks."""
    from prefgate.model_eval import load_generator, refusal_rates, reward_accuracy, reward_model_scorer

    score = reward_model_scorer(inputs.reward_model_dir, max_length=inputs.max_score_tokens)
    held = held_out_pairs(inputs.preference_set)
    log(f"reward model: scoring {held.height} held-out pairs")
    acc = reward_accuracy(None, held, batch_score_fn=score)
    hh = hh_rlhf_pairs(inputs.response_pairs, inputs.hh_rlhf_pairs)
    log(f"reward model: scoring {hh.height} HH-RLHF test pairs")
    hh_acc = reward_accuracy(None, hh, batch_score_fn=score)
    generate = {
        "policy": load_generator(inputs.policy_dir, max_new_tokens=inputs.max_new_tokens),
        "reference": load_generator(inputs.reference, max_new_tokens=inputs.max_new_tokens),
    }
    xs = xstest_prompts(inputs.eval_prompts, inputs.xstest_per_class)
    log(f"policy and reference: generating on {xs.height} XSTest prompts")
    refusal = refusal_rates(generate, xs)
    wr = _win_rate(inputs, generate, log)

    def rate(model: str, metric: str) -> float | None:
        row = refusal.filter((pl.col("model") == model) & (pl.col("metric") == metric))
        return float(row["rate"][0]) if row.height else None

    def overall(table: pl.DataFrame) -> float | None:
        row = table.filter(pl.col("category") == "all")
        return float(row["accuracy"][0]) if row.height else None

    headline: dict[str, float | None] = {
        "reward_accuracy": overall(acc),
        "hh_rlhf_accuracy": overall(hh_acc),
        "refusal_rate": rate("policy", "refusal"),
        "over_refusal_rate": rate("policy", "over_refusal"),
        "reference_refusal_rate": rate("reference", "refusal"),
        "reference_over_refusal_rate": rate("reference", "over_refusal"),
        "win_rate": wr.get("win_rate"),
        "lc_win_rate": wr.get("lc_win_rate"),
    }
    return EvalReport(headline, acc, hh_acc, refusal, wr)
