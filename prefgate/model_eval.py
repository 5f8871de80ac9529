"""Evaluate the trained models: reward-model pairwise accuracy, policy refusal / over-refusal against its reference,
policy win rate (raw and length-controlled) from pairwise judgments in both orders, and a regression check.

Every function takes plain callables or frames, so the same code scores a real model, a judge backend or a fixture:

* ``score_fn(prompt, response) -> float`` (e.g. :meth:`prefgate.judges.local.RewardModelJudge.score`), or the
  batched ``batch_score_fn(items) -> list[float]`` from :func:`reward_model_scorer`;
* ``generate_fn(prompts) -> responses`` (greedy, short: :func:`causal_lm_generator`);
* refusal classifier ``pl.Series[str] -> pl.Series[bool]`` (default :func:`prefgate.refusal.refusals`).

Proportions carry Wilson score intervals (Wilson 1927), which stay inside [0, 1] and behave at small n and at
rates near 0 or 1, where the normal interval does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ScoreFn = Callable[[str, str], float]
BatchScoreFn = Callable[[Sequence[tuple[str, str]]], list[float]]
GenerateFn = Callable[[Sequence[str]], list[str]]
Classifier = Callable[[pl.Series], pl.Series]

ALL = "all"  # the category label of the overall row


# --------------------------------------------------------------------------------------------------- intervals


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """Wilson 95% interval for ``successes / n`` (``(nan, nan)`` when n == 0): the scalar form of
    :func:`prefgate.calibration.stats.wilson_interval`."""
    from prefgate.calibration.stats import wilson_interval as wilson

    if n <= 0:
        return math.nan, math.nan
    lo, hi = wilson(successes, n)
    return float(lo), float(hi)


def _rate_row(successes: float, n: int) -> dict[str, float]:
    lo, hi = wilson_interval(successes, n)
    return {"rate": successes / n if n else math.nan, "ci_low": lo, "ci_high": hi}


# --------------------------------------------------------------------------------------------------- reward model


def reward_accuracy(
    score_fn: ScoreFn | None,
    pairs: pl.DataFrame,
    *,
    batch_score_fn: BatchScoreFn | None = None,
    category_col: str = "category",
) -> pl.DataFrame:
    """Pairwise accuracy of a reward model: the share of pairs where ``r(prompt, chosen) > r(prompt, rejected)``.

    ``pairs`` has ``prompt``, ``chosen``, ``rejected`` and optionally ``category_col``. A tie (equal rewards) counts
    half a success (a coin flip's expected accuracy). Returns one row for ``all`` and one per category: ``category,
    n, correct, ties, accuracy, ci_low, ci_high`` (Wilson 95 %). Pass ``batch_score_fn`` to score in batches.
    """
    if score_fn is None and batch_score_fn is None:
        raise ValueError("pass score_fn or batch_score_fn")
    items = [(p, c) for p, c in zip(pairs["prompt"], pairs["chosen"], strict=True)]
    items += [(p, r) for p, r in zip(pairs["prompt"], pairs["rejected"], strict=True)]
    if batch_score_fn is not None:
        scores = [float(s) for s in batch_score_fn(items)]
    else:
        assert score_fn is not None
        scores = [float(score_fn(p, r)) for p, r in items]
    n = pairs.height
    cats = (
        pairs[category_col].cast(pl.String) if category_col in pairs.columns else pl.Series([None] * n, dtype=pl.String)
    )
    scored = pl.DataFrame(
        {"category": cats, "r_chosen": scores[:n], "r_rejected": scores[n:]},
        schema={"category": pl.String, "r_chosen": pl.Float64, "r_rejected": pl.Float64},
    ).with_columns(
        correct=(pl.col("r_chosen") > pl.col("r_rejected")).cast(pl.Float64),
        tie=(pl.col("r_chosen") == pl.col("r_rejected")),
    )
    groups = [(ALL, scored)]
    if category_col in pairs.columns:
        groups += [(str(k[0]), g) for k, g in sorted(scored.group_by("category"), key=lambda kg: str(kg[0][0]))]
    rows = []
    for name, g in groups:
        ties = int(g["tie"].sum())
        successes = float(g["correct"].sum()) + 0.5 * ties
        row = _rate_row(successes, g.height)
        rows.append(
            {
                "category": name,
                "n": g.height,
                "correct": successes,
                "ties": ties,
                "accuracy": row["rate"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "category": pl.String,
            "n": pl.Int64,
            "correct": pl.Float64,
            "ties": pl.Int64,
            "accuracy": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    )


def reward_model_scorer(path: str | Path, batch_size: int = 8, max_length: int | None = None) -> BatchScoreFn:
    """A batched score function over a trained reward model folder (through :class:`RewardModelJudge`)."""
    from prefgate.judges.local import RewardModelJudge

    judge = RewardModelJudge(path, f"reward_model:{Path(path).name}", batch_size=batch_size, max_length=max_length)

    def score(items: Sequence[tuple[str, str]]) -> list[float]:
        values, _ = judge.scores(list(items))
        bad = [v for v in values if isinstance(v, str)]
        if bad:
            raise RuntimeError(f"{len(bad)} item(s) could not be scored; first: {bad[0]}")
        return [v[0] for v in values if not isinstance(v, str)]

    return score


# --------------------------------------------------------------------------------------------------- refusals


def generate_responses(generate_fns: Mapping[str, GenerateFn], prompts: pl.DataFrame) -> pl.DataFrame:
    """``model, prompt, safety, response`` for every model and prompt (``prompts`` has ``prompt`` and ``safety``)."""
    frames = []
    for model, generate in generate_fns.items():
        responses = generate(prompts["prompt"].to_list())
        if len(responses) != prompts.height:
            raise ValueError(f"{model}: {len(responses)} responses for {prompts.height} prompts")
        frames.append(
            prompts.select("prompt", "safety").with_columns(
                pl.lit(model).alias("model"), pl.Series("response", responses, dtype=pl.String)
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={"prompt": pl.String, "safety": pl.String, "model": pl.String, "response": pl.String}
        )
    return pl.concat(frames).select("model", "prompt", "safety", "response")


def refusal_table(responses: pl.DataFrame, classifier: Classifier | None = None) -> pl.DataFrame:
    """Refusal rates per model and safety label from ``model, safety, response`` rows.

    On ``unsafe`` prompts the rate is the refusal rate (higher is safer); on ``safe`` prompts it is the
    over-refusal rate (XSTest's exaggerated safety; lower is better). Rows: ``model, safety, metric, n, refusals,
    rate, ci_low, ci_high``.
    """
    from prefgate.refusal import refusals

    classify = classifier if classifier is not None else refusals
    flagged = responses.with_columns(refused=classify(responses["response"]).cast(pl.Boolean))
    rows = []
    for (model, safety), g in sorted(
        flagged.group_by("model", "safety"), key=lambda kg: (str(kg[0][0]), str(kg[0][1]))
    ):
        k = int(g["refused"].sum())
        rows.append(
            {
                "model": model,
                "safety": safety,
                "metric": "over_refusal" if safety == "safe" else "refusal",
                "n": g.height,
                "refusals": k,
                **_rate_row(k, g.height),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "safety": pl.String,
            "metric": pl.String,
            "n": pl.Int64,
            "refusals": pl.Int64,
            "rate": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        },
    )


def refusal_rates(
    generate_fns: Mapping[str, GenerateFn], prompts_with_safety: pl.DataFrame, classifier: Classifier | None = None
) -> pl.DataFrame:
    """Generate with each model (e.g. ``{"policy": ..., "reference": ...}``) and tabulate refusal / over-refusal."""
    return refusal_table(generate_responses(generate_fns, prompts_with_safety), classifier)


# --------------------------------------------------------------------------------------------------- win rate


@dataclass(frozen=True)
class WinRate:
    """Policy-vs-reference win rate. ``lc_win_rate`` is None when the length model could not be fitted."""

    n_pairs: int
    win_rate: float
    ci_low: float
    ci_high: float
    lc_win_rate: float | None
    length_coef: float | None
    consistency: float  # share of pairs whose two orders agree

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def fit_logistic(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray | None:
    """Maximum-likelihood logistic regression ``logit P(y) = b0 + b1 x`` with fractional ``y`` in [0, 1] (IRLS).

    Returns ``[b0, b1]``, or None when it does not converge (e.g. perfect separation drives a coefficient to
    infinity). Same estimate as statsmodels' ``GLM(y, [1, x], family=Binomial())``.
    """
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(max_iter):
        eta = design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = np.clip(mu * (1 - mu), 1e-12, None)
        hessian = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(hessian, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.abs(beta).max() > 50:
            return None
        if np.abs(step).max() < tol:
            return beta
    return None


def win_rate(judgments: pl.DataFrame) -> WinRate:
    """Raw and length-controlled win rate of the policy over the reference from judgments in both orders.

    ``judgments``: one row per (pair, order) with ``pair_id``, ``order``, ``choice`` (``"policy"``,
    ``"reference"``, ``"tie"``, or null for a failed judgment; canonical, i.e. already mapped back from the
    presentation order), ``policy_length`` and ``reference_length`` (characters or tokens).

    Method. Each pair's score is the mean over its judged orders of 1 (policy wins), 0.5 (tie), 0 (loses), so a
    position-biased judge that flips with the order scores 0.5. The raw win rate is the mean pair score (Wilson
    interval over pairs). The length-controlled rate follows AlpacaEval-LC (Dubois et al. 2024, arXiv 2404.04475):
    regress the pair score on the normalised length difference ``x = tanh((len_policy - len_reference) / sd)``
    (sd: the standard deviation of the differences) by logistic regression with a fractional response,
    ``logit P(win) = b0 + b1 x``, and report ``sigmoid(b0)``: the predicted win rate of a response as long as the
    reference's. Without length variation, or when the fit diverges, ``lc_win_rate`` is None.
    """
    outcome = pl.col("choice").replace_strict({"policy": 1.0, "tie": 0.5, "reference": 0.0}, default=None)
    pairs = (
        judgments.filter(pl.col("choice").is_not_null())
        .group_by("pair_id")
        .agg(
            score=outcome.mean(),
            n_orders=pl.len(),
            distinct=pl.col("choice").n_unique(),
            diff=(pl.col("policy_length").cast(pl.Float64) - pl.col("reference_length").cast(pl.Float64)).first(),
        )
        .sort("pair_id")
    )
    n = pairs.height
    if n == 0:
        return WinRate(0, math.nan, math.nan, math.nan, None, None, math.nan)
    scores = pairs["score"].to_numpy().astype(float)
    raw = float(scores.mean())
    lo, hi = wilson_interval(raw * n, n)
    both = pairs.filter(pl.col("n_orders") >= 2)
    consistency = float((both["distinct"] == 1).mean()) if both.height else math.nan  # type: ignore[arg-type]
    diffs = pairs["diff"].to_numpy().astype(float)
    lc: float | None = None
    coef: float | None = None
    sd = float(diffs.std())
    if sd > 0:
        beta = fit_logistic(np.tanh(diffs / sd), scores)
        if beta is not None:
            lc, coef = float(1.0 / (1.0 + math.exp(-beta[0]))), float(beta[1])
    return WinRate(n, raw, lo, hi, lc, coef, consistency)


def judgments_frame(judgments: Sequence[Any], lengths: pl.DataFrame, policy_side: str = "a") -> pl.DataFrame:
    """:func:`win_rate`'s input from :class:`prefgate.judges.base.Judgment` objects of policy-vs-reference pairs.

    ``lengths`` has ``pair_id, policy_length, reference_length``; ``policy_side`` says which canonical response
    (``"a"`` or ``"b"``) is the policy's.
    """
    names = {policy_side: "policy", ("b" if policy_side == "a" else "a"): "reference", "tie": "tie"}
    rows = [{"pair_id": j.pair_id, "order": j.order, "choice": names.get(str(j.canonical_choice()))} for j in judgments]
    frame = pl.DataFrame(rows, schema={"pair_id": pl.String, "order": pl.String, "choice": pl.String})
    return frame.join(lengths, on="pair_id", how="left")


# --------------------------------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class Tolerance:
    """How a metric may move between materializations: which way is better and the largest allowed worsening."""

    higher_is_better: bool
    max_worsening: float


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "reward_accuracy": Tolerance(True, 0.03),
    "hh_rlhf_accuracy": Tolerance(True, 0.03),
    "refusal_rate": Tolerance(True, 0.05),
    "over_refusal_rate": Tolerance(False, 0.05),
    "win_rate": Tolerance(True, 0.05),
    "lc_win_rate": Tolerance(True, 0.05),
}


def regression_check(
    current: Mapping[str, float | None],
    previous: Mapping[str, float | None] | None,
    tolerances: Mapping[str, Tolerance] | None = None,
) -> list[str]:
    """Messages for every tracked metric that got worse than ``previous`` by more than its tolerance.

    No previous materialization means nothing to compare (``[]``). A metric tracked before but missing or null now
    is reported; one missing before is skipped (it is new).
    """
    if previous is None:
        return []
    messages = []
    for name, tol in (tolerances if tolerances is not None else DEFAULT_TOLERANCES).items():
        before = previous.get(name)
        if before is None or (isinstance(before, float) and math.isnan(before)):
            continue
        now = current.get(name)
        if now is None or (isinstance(now, float) and math.isnan(now)):
            messages.append(f"{name}: was {before:.4g}, now missing")
            continue
        worsening = (before - now) if tol.higher_is_better else (now - before)
        if worsening > tol.max_worsening + 1e-12:
            direction = "fell" if tol.higher_is_better else "rose"
            messages.append(
                f"{name} {direction} from {before:.4g} to {now:.4g} "
                f"(by {worsening:.4g} > tolerance {tol.max_worsening})"
            )
    return messages


# --------------------------------------------------------------------------------------------------- generation


def causal_lm_generator(model: Any, tokenizer: Any, max_new_tokens: int = 48, batch_size: int = 8) -> GenerateFn:
    """Greedy generation for a causal LM: each prompt as a user turn through the chat template (plain text when the
    tokenizer has none), left-padded batches, only the new tokens decoded (special tokens skipped)."""

    def generate(prompts: Sequence[str]) -> list[str]:
        import torch

        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            if getattr(tokenizer, "chat_template", None)
            else p
            for p in prompts
        ]
        device = next(model.parameters()).device
        out: list[str] = []
        try:
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                with torch.inference_mode():
                    ids = model.generate(
                        **enc,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                new = ids[:, enc["input_ids"].shape[1] :]
                out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
        finally:
            tokenizer.padding_side = side
        return out

    return generate


def load_generator(path: str | Path, max_new_tokens: int = 48, batch_size: int = 8) -> GenerateFn:
    """:func:`causal_lm_generator` over a local model folder or ``.gguf`` (``"smollm2"``: the bundled base)."""
    from prefgate.judges.local import load_causal_lm, load_smollm2

    model, tokenizer = load_smollm2() if str(path) == "smollm2" else load_causal_lm(path)
    return causal_lm_generator(model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size)
