"""DPO policy: TRL ``DPOTrainer`` on the gated preference set, against a frozen reference.

Usage::

    python -m trainers.dpo --config trainers/configs/dpo.yaml --data .prefgate/exports/preference_set \
        --out .prefgate/models/dpo_policy

The reference is an explicit frozen copy of the base when all weights train; with LoRA it is the base itself under
the disabled adapter (TRL's default, no second copy in memory). ``<out>/final`` holds the policy (adapter merged).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

from trainers.config import DPOTrainConfig
from trainers.data import read_manifest, read_split, take_rows, to_trl_dataset
from trainers.models import base_model_name, is_conversational_tokenizer, load_base, lora_config
from trainers.run import TrainResult, cli, run_training, weighted_sampling

__all__ = ["DPOTrainConfig", "TrainResult", "train"]


def train(config: DPOTrainConfig, data_path: str | Path, output_dir: str | Path, *, resume: bool = True) -> TrainResult:
    """Train the DPO policy on the train split of ``data_path``; checkpoints and ``final/`` go to ``output_dir``."""
    from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]

    started = time.perf_counter()
    output_dir = Path(output_dir)
    rows = take_rows(read_split(data_path, "train"), config.max_train_rows, config.seed)
    texts = [*rows["prompt"], *rows["chosen"], *rows["rejected"]]
    model, tokenizer = load_base("causal", config, texts)
    peft_config = lora_config(config, "causal")
    ref_model = None
    if peft_config is None:  # the base as it is now, before any step (a resumed policy's ref is still the base)
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    dataset = to_trl_dataset(rows, conversational=is_conversational_tokenizer(tokenizer))
    args = DPOConfig(**config.trl_kwargs(output_dir), beta=config.beta, loss_type=[config.loss_type])
    trainer_cls = weighted_sampling(DPOTrainer) if config.weighting == "sample" else DPOTrainer
    trainer = trainer_cls(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return run_training(
        "dpo",
        trainer,
        tokenizer,
        config,
        output_dir,
        base_model=base_model_name(config),
        train_rows=len(trainer.train_dataset),  # type: ignore[arg-type]
        resume=resume,
        started=started,
        manifest=read_manifest(data_path),
    )


if __name__ == "__main__":
    sys.exit(cli("dpo", DPOTrainConfig, train))
