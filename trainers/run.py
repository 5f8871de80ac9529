"""What both trainers share: resumable training, the result record, the model card, the loss curve and the CLI.

Layout of ``output_dir`` after :func:`run_training`::

    checkpoint-<step>/   resumable Trainer checkpoints (the newest ``save_total_limit`` kept)
    final/               the trained model + tokenizer (LoRA merged), loadable by path, with README.md = model card
    result.json          the :class:`TrainResult`
    loss_curve.png       loss against step
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers.config import TrainConfig
from trainers.data import sampling_weights

FINAL = "final"
LICENSE_NOTE = (
    "Weights derive from the base model (SmolLM2: Apache-2.0) and were trained on the gated preference set; each "
    "source's license and attribution terms (see data/sample/licenses and the export manifest) carry over to this "
    "model. Not for deployment: a governance pipeline artefact."
)


@dataclass
class TrainResult:
    """What one call of ``train`` did. ``loss_history`` spans the whole run, resumed steps included."""

    kind: str
    output_dir: str
    final_dir: str
    base_model: str
    global_step: int
    steps_this_run: int
    resumed_from: str | None
    train_rows: int
    wall_time_s: float
    train_runtime_s: float
    tokens_this_run: int
    tokens_per_s: float | None
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def first_loss(self) -> float | None:
        return self.loss_history[0][1] if self.loss_history else None

    @property
    def final_loss(self) -> float | None:
        return self.loss_history[-1][1] if self.loss_history else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["loss_history"] = [list(p) for p in self.loss_history]
        out["first_loss"] = self.first_loss
        out["final_loss"] = self.final_loss
        return out


def weighted_sampling(trainer_cls: type[Any]) -> type[Any]:
    """``trainer_cls`` drawing train rows with probability proportional to their ``weight`` column.

    Sampling by weight (with replacement, ``len(dataset)`` draws an epoch, seeded by ``args.seed``) has the same
    expected gradient as multiplying each row's loss by its normalised weight, without touching TRL's loss code.
    """
    import torch
    from torch.utils.data import WeightedRandomSampler

    class WeightedSampling(trainer_cls):  # type: ignore[misc]
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            # The Trainer passes the dataset with unused columns removed (same rows, same order, no weight):
            # the weights come from the full train dataset.
            dataset = self.train_dataset
            if train_dataset is not None and len(train_dataset) != len(dataset):
                raise ValueError("weighted sampling needs the train dataset's rows unchanged")
            weights = sampling_weights(list(dataset["weight"]))
            generator = torch.Generator().manual_seed(self.args.seed)
            return WeightedRandomSampler(weights, num_samples=len(dataset), replacement=True, generator=generator)

    WeightedSampling.__name__ = f"WeightedSampling{trainer_cls.__name__}"
    return WeightedSampling


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-<step>`` folder in ``output_dir``, or None."""
    if not output_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(output_dir))  # type: ignore[no-untyped-call]
    return str(found) if found else None


def _checkpoint_step(checkpoint: str | None) -> int:
    if checkpoint is None:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    if state.is_file():
        return int(json.loads(state.read_text(encoding="utf-8")).get("global_step", 0))
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def _final_metrics(log_history: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of every numeric training metric (loss, accuracy, rewards/..., train_runtime)."""
    out: dict[str, float] = {}
    for entry in log_history:
        for key, value in entry.items():
            if key not in ("step", "epoch") and isinstance(value, int | float) and math.isfinite(value):
                out[key] = float(value)
    return out


def run_training(
    kind: str,
    trainer: Any,
    tokenizer: Any,
    config: TrainConfig,
    output_dir: Path,
    *,
    base_model: str,
    train_rows: int,
    resume: bool,
    started: float,
    manifest: dict[str, Any],
) -> TrainResult:
    """Train (resuming from the newest checkpoint when ``resume``), save ``final/``, the card, curve and result."""
    from transformers.trainer_callback import PrinterCallback

    from prefgate.plots import loss_curve

    # With tqdm off, transformers prints every log dict to stdout; the losses are kept in the log history (and the
    # loss curve, the result and the asset's metadata) instead of flooding the run's console.
    trainer.remove_callback(PrinterCallback)

    checkpoint = last_checkpoint(output_dir) if resume else None
    start_step = _checkpoint_step(checkpoint)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_runtime = time.perf_counter() - t0
    final_dir = output_dir / FINAL
    _save_final(trainer.model, tokenizer, final_dir)
    history = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e and "step" in e]
    tokens = int(getattr(trainer, "_total_train_tokens", 0))
    result = TrainResult(
        kind=kind,
        output_dir=str(output_dir),
        final_dir=str(final_dir),
        base_model=base_model,
        global_step=int(trainer.state.global_step),
        steps_this_run=int(trainer.state.global_step) - start_step,
        resumed_from=checkpoint,
        train_rows=train_rows,
        wall_time_s=round(time.perf_counter() - started, 3),
        train_runtime_s=round(train_runtime, 3),
        tokens_this_run=tokens,
        tokens_per_s=round(tokens / train_runtime, 2) if tokens and train_runtime > 0 else None,
        loss_history=history,
        metrics=_final_metrics(trainer.state.log_history),
    )
    card = model_card(result, config, manifest)
    (final_dir / "README.md").write_text(card, encoding="utf-8")
    (output_dir / "model_card.md").write_text(card, encoding="utf-8")
    (output_dir / "loss_curve.png").write_bytes(loss_curve(history, f"{kind} training loss"))
    (output_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return result


def _save_final(model: Any, tokenizer: Any, final_dir: Path) -> None:
    """Save full weights (a LoRA adapter is merged into a copy first) and the tokenizer, loadable by path."""
    import copy

    to_save = model
    if hasattr(model, "merge_and_unload"):  # a peft model: merge a copy so the live trainer keeps its adapter
        to_save = copy.deepcopy(model).merge_and_unload()
    final_dir.mkdir(parents=True, exist_ok=True)
    to_save.save_pretrained(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))


def model_card(result: TrainResult, config: TrainConfig, manifest: dict[str, Any]) -> str:
    """Markdown model card: base model, data lineage (manifest content hash, policy hash), config, metrics, license."""
    metrics = {k: result.metrics[k] for k in sorted(result.metrics)}
    lines = [
        f"# prefgate {result.kind} model",
        "",
        f"- **Base model:** {result.base_model}",
        f"- **Training data:** preference set, {result.train_rows} train rows",
        f"- **Dataset manifest content hash:** `{manifest.get('content_hash', 'unknown')}`",
        f"- **Governance policy:** version `{manifest.get('policy_version', 'unknown')}`, "
        f"hash `{manifest.get('policy_hash', 'unknown')}`",
        f"- **Export run:** `{manifest.get('run_id', 'unknown')}`",
        f"- **Steps:** {result.global_step} ({result.steps_this_run} this run"
        + (f", resumed from `{Path(result.resumed_from).name}`" if result.resumed_from else "")
        + ")",
        f"- **Loss:** first {_fmt(result.first_loss)}, final {_fmt(result.final_loss)}",
        f"- **Wall time:** {result.wall_time_s:.1f} s (training loop {result.train_runtime_s:.1f} s), "
        f"tokens/s {_fmt(result.tokens_per_s)}",
        "",
        "## Metrics (last logged values)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in metrics.items()],
        "",
        "## Config",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## License",
        "",
        LICENSE_NOTE,
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def cli(
    kind: str,
    config_cls: type[TrainConfig],
    train: Callable[..., TrainResult],
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m trainers.<kind> --config FILE.yaml --data PATH --out DIR [--no-resume]``; prints the result JSON."""
    parser = argparse.ArgumentParser(prog=f"python -m trainers.{kind}", description=f"Train the {kind} model.")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--data", required=True, help="export folder, hf_dataset folder or Parquet file")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, final/, model card)")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    result = train(config_cls.from_yaml(args.config), args.data, args.out, resume=not args.no_resume)
    summary = {k: v for k, v in result.to_dict().items() if k != "loss_history"}
    print(json.dumps(summary, indent=2))
    return 0
