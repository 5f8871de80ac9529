"""Build judges by name from ``config/judges.yaml``: the one place that knows every backend's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefgate.home import PROJECT_ROOT
from prefgate.judges.base import Judge
from prefgate.judges.constitution import Constitution
from prefgate.judges.templates import PAIRWISE, POINTWISE, make_judge_id

DEFAULT_JUDGES_FILE = PROJECT_ROOT / "config" / "judges.yaml"


class JudgeRegistryError(ValueError):
    """The judges file is invalid or names an unknown judge; the message names the file and key."""


class JudgeSpec(BaseModel):
    """One judge's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: Literal["programmatic", "transformers", "pointwise", "reward_model", "openai"]
    model: str | None = None  # "smollm2", a local model folder / .gguf, or the server's model name
    path: str | None = None  # reward-model folder
    base_url: str | None = None
    api_key_env: str | None = None
    local: bool = False
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    limit_per_batch: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)


class JudgesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: list[str]
    judges: dict[str, JudgeSpec]


@dataclass
class Registry:
    """Validated judge specs; :meth:`build` makes the judge objects (loading models lazily, once)."""

    specs: dict[str, JudgeSpec]
    default: list[str]
    _built: dict[str, Judge] = field(default_factory=dict)

    def select(self, names: list[str] | None) -> list[str]:
        chosen = self.default if names is None else names
        unknown = [n for n in chosen if n not in self.specs]
        if unknown:
            raise JudgeRegistryError(f"unknown judge(s) {unknown}; known: {sorted(self.specs)}")
        return list(chosen)

    def build(
        self,
        name: str,
        constitution: Constitution,
        *,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_attempts: int = 3,
    ) -> Judge:
        if name not in self._built:
            self._built[name] = _build(self.specs[name], constitution, concurrency, timeout_s, max_attempts)
        return self._built[name]


def batch_sample(pairs: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The ``limit_per_batch`` sample of a batch's pairs: the shortest (prompt + both responses), ties by pair_id.

    A CPU-only language model takes seconds per view, so the main job samples it; short pairs keep that in
    seconds (a biased sample, reported as such). One function, so the asset and ``prefgate judge --batch`` pick
    the same pairs and share cache keys.
    """
    size = (
        pl.col("prompt").str.len_chars() + pl.col("response_a").str.len_chars() + pl.col("response_b").str.len_chars()
    )
    return pairs.sort(size, "pair_id").head(limit)


def load_registry(path: str | Path | None = None) -> Registry:
    """Read and validate the judges file."""
    path = Path(path or DEFAULT_JUDGES_FILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = JudgesFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise JudgeRegistryError(f"{path}: cannot read judges file: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"key '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise JudgeRegistryError(f"{path}: invalid judges file: {problems}") from exc
    missing = [n for n in parsed.default if n not in parsed.judges]
    if missing:
        raise JudgeRegistryError(f"{path}: key 'default' names unknown judges {missing}")
    return Registry(dict(parsed.judges), list(parsed.default))


def _lm(spec: JudgeSpec) -> tuple[Any, Any, str]:
    from transformers.utils import logging as hf_logging

    from prefgate.judges import local

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # GGUF de-quantisation bars would flood the job's output
    if spec.model in (None, "smollm2"):
        model, tok = local.load_smollm2()
        return model, tok, "SmolLM2-135M-Instruct"
    model, tok = local.load_causal_lm(spec.model)
    return model, tok, Path(spec.model).name


def _build(spec: JudgeSpec, constitution: Constitution, concurrency: int, timeout_s: float, max_attempts: int) -> Judge:
    c_hash = constitution.constitution_hash
    if spec.backend == "programmatic":
        from prefgate.judges.programmatic import ProgrammaticJudge

        return ProgrammaticJudge(constitution)
    if spec.backend == "openai":
        from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge

        if not spec.base_url or not spec.model:
            raise JudgeRegistryError("an openai judge needs 'base_url' and 'model'")
        cfg = HttpJudgeConfig(
            base_url=spec.base_url,
            model=spec.model,
            api_key_env=spec.api_key_env,
            local=spec.local,
            prices=dict(spec.prices),
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )
        return OpenAIJudge(cfg, constitution)
    from prefgate.judges import local

    judge: Any
    if spec.backend == "reward_model":
        if not spec.path:
            raise JudgeRegistryError("a reward_model judge needs 'path'")
        judge = local.RewardModelJudge(spec.path, "pending", batch_size=spec.batch_size)
        judge.judge_id = make_judge_id("reward_model", Path(spec.path).name, judge.template_hash, "none")
        return judge  # type: ignore[no-any-return]
    model, tok, model_name = _lm(spec)
    if spec.backend == "transformers":
        judge = local.TransformersPairwiseJudge(
            model,
            tok,
            "pending",
            batch_size=spec.batch_size,
            constitution_hash=c_hash,
            messages_builder=lambda view: PAIRWISE.messages(view, constitution),
        )
    else:
        judge = local.PointwiseJudge(
            model,
            tok,
            "pending",
            batch_size=spec.batch_size,
            constitution_hash=c_hash,
            messages_builder=lambda prompt, response: POINTWISE.messages(prompt, response, constitution),
        )
    judge.judge_id = make_judge_id(spec.backend, model_name, judge.template_hash, c_hash)
    return judge  # type: ignore[no-any-return]
