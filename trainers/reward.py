"""Reward model: TRL ``RewardTrainer`` on the gated preference set (a one-output sequence classifier).

Usage::

    python -m trainers.reward --config trainers/configs/reward.yaml --data .prefgate/exports/preference_set \
        --out .prefgate/models/reward_model

The trained model in ``<out>/final`` is a judge backend by path (``backend: reward_model``, ``path: <out>/final``
in config/judges.yaml; :class:`prefgate.judges.local.RewardModelJudge`). Row weights: see
:attr:`trainers.config.TrainConfig.weighting` (``margin`` uses TRL's margin column).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trainers.config import RewardTrainConfig
from trainers.data import read_manifest, read_split, take_rows, to_trl_dataset
from trainers.models import base_model_name, is_conversational_tokenizer, load_base, lora_config
from trainers.run import TrainResult, cli, run_training, weighted_sampling

__all__ = ["RewardTrainConfig", "TrainResult", "train"]


def train(
    config: RewardTrainConfig, data_path: str | Path, output_dir: str | Path, *, resume: bool = True
) -> TrainResult:
    """Train the reward model on the train split of ``data_path``; checkpoints and ``final/`` go to ``output_dir``."""
    from trl import RewardConfig, RewardTrainer  # type: ignore[attr-defined]

    started = time.perf_counter()
    output_dir = Path(output_dir)
    rows = take_rows(read_split(data_path, "train"), config.max_train_rows, config.seed)
    texts = [*rows["prompt"], *rows["chosen"], *rows["rejected"]]
    model, tokenizer = load_base("reward", config, texts)
    dataset = to_trl_dataset(
        rows,
        conversational=is_conversational_tokenizer(tokenizer),
        margin_scale=config.margin_scale if config.weighting == "margin" else None,
    )
    args = RewardConfig(**config.trl_kwargs(output_dir), center_rewards_coefficient=config.center_rewards_coefficient)
    trainer_cls = weighted_sampling(RewardTrainer) if config.weighting == "sample" else RewardTrainer
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(config, "reward"),
    )
    return run_training(
        "reward",
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
    sys.exit(cli("reward", RewardTrainConfig, train))
