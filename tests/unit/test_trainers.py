"""trainers/: configs from YAML, data readers, and CPU training of a TINY Llama (built from a config, a tokenizer
trained here): the weights change, the loss falls, resume continues from the checkpoint, the trained reward model
is a judge backend by path. SmolLM2 runs are marked ``integration``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from prefgate.export import export_preference_set  # noqa: E402
from prefgate.judges.base import PairView  # noqa: E402
from prefgate.judges.constitution import load_constitution  # noqa: E402
from prefgate.judges.registry import load_registry  # noqa: E402
from prefgate.model_eval import reward_accuracy, reward_model_scorer  # noqa: E402
from trainers import dpo, reward  # noqa: E402
from trainers.config import DPOTrainConfig, RewardTrainConfig  # noqa: E402
from trainers.data import margin_expr, read_manifest, read_split, take_rows, to_trl_rows  # noqa: E402
from trainers.models import load_base  # noqa: E402
from trainers.run import cli, last_checkpoint  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "trainers" / "configs"

# Short, learnable pairs: the chosen answer is polite and on topic, the rejected one dismissive.
_PROMPTS = [
    "How do I boil an egg?",
    "What is the capital of France?",
    "Can you help me write a poem?",
    "How many legs does a spider have?",
    "What should I cook tonight?",
    "How do I reset my password?",
    "Why is the sky blue?",
    "Recommend a good book.",
]
_CHOSEN = [
    "Put the egg in boiling water for nine minutes.",
    "The capital of France is Paris.",
    "Of course, here is a short poem about the sea.",
    "A spider has eight legs.",
    "A simple pasta with tomatoes and basil is quick.",
    "Click 'forgot password' on the login page.",
    "Sunlight scatters off air molecules, blue the most.",
    "Try 'The Hobbit' by Tolkien, a fun adventure.",
]
_REJECTED = [
    "Figure it out yourself.",
    "No.",
    "Go away.",
    "Who cares.",
    "Not my problem.",
    "Ask someone else.",
    "Whatever.",
    "Stop asking me.",
]


def toy_frame() -> pl.DataFrame:
    n = len(_PROMPTS)
    return pl.DataFrame(
        {
            "prompt": _PROMPTS * 2,
            "chosen": _CHOSEN * 2,
            "rejected": _REJECTED * 2,
            "weight": [0.6, 0.8, 1.0, 0.9] * (n // 2),
            "example_id": [f"ex{i}" for i in range(2 * n)],
            "split": ["train"] * (2 * n - 4) + ["eval"] * 4,
        }
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prefdata")
    path = folder / "pref.parquet"
    toy_frame().write_parquet(path)
    return path


def _tiny(cls: type[RewardTrainConfig] | type[DPOTrainConfig], **kw: object) -> RewardTrainConfig | DPOTrainConfig:
    base: dict[str, object] = {
        "base_model": "tiny",
        "max_length": 64,
        "learning_rate": 3e-3,
        "per_device_train_batch_size": 6,
        "save_steps": 3,
        "use_cpu": True,
        "seed": 0,
    }
    return cls(**{**base, **kw})  # type: ignore[arg-type]


def _changed(model_a: torch.nn.Module, model_b: torch.nn.Module) -> bool:
    a, b = model_a.state_dict(), model_b.state_dict()
    return any(not torch.equal(a[k], b[k]) for k in a if k in b)


# --------------------------------------------------------------------------------------------------- config + data


def test_shipped_configs_load_and_validate(tmp_path: Path) -> None:
    rm = RewardTrainConfig.from_yaml(CONFIGS / "reward.yaml")
    po = DPOTrainConfig.from_yaml(CONFIGS / "dpo.yaml")
    assert rm.base_model == po.base_model == "smollm2"
    assert rm.weighting == "margin" and po.weighting == "sample" and po.beta == 0.1
    kwargs = po.trl_kwargs(tmp_path)
    assert kwargs["bf16"] is False and kwargs["report_to"] == "none" and kwargs["max_steps"] == po.max_steps
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: tiny\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        RewardTrainConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="margin"):
        DPOTrainConfig(weighting="margin")
    with pytest.raises(ValueError, match="precision"):
        RewardTrainConfig(precision="fp8")  # type: ignore[arg-type]
    assert RewardTrainConfig(precision="bf16").trl_kwargs(tmp_path)["bf16"] is True


def test_readers_agree_on_parquet_export_and_hf_folder(tmp_path: Path) -> None:
    df = toy_frame()
    manifest = export_preference_set(df, tmp_path / "export", {"policy_hash": "abc123"})
    parquet = tmp_path / "export" / "preference_set.parquet"
    for split, rows in (("train", 12), ("test", 4)):
        frames = [read_split(p, split) for p in (parquet, tmp_path / "export", tmp_path / "export" / "hf_dataset")]
        assert all(f.height == rows for f in frames)
        assert frames[0].sort("example_id").equals(frames[1].sort("example_id"))
        assert frames[0].sort("example_id").equals(frames[2].sort("example_id"))
    assert read_manifest(tmp_path / "export" / "hf_dataset")["content_hash"] == manifest["content_hash"]
    assert read_manifest(parquet)["policy_hash"] == "abc123"
    # margin = logit(clip(weight, 0.5, 0.95)): 0.8 -> ln 4, 1.0 -> ln 19, 0.4 -> 0
    m = pl.DataFrame({"weight": [0.8, 1.0, 0.4]}).select(margin_expr(2.0))["margin"].to_list()
    assert m == pytest.approx([2 * math.log(4), 2 * math.log(19), 0.0])
    conv = to_trl_rows(read_split(parquet).head(1), conversational=True, margin_scale=1.0)[0]
    assert conv["prompt"] == [{"role": "user", "content": _PROMPTS[0]}]
    assert conv["chosen"][0]["role"] == "assistant" and conv["margin"] == pytest.approx(math.log(1.5))
    assert take_rows(df, 5, 1).equals(take_rows(df, 5, 1)) and take_rows(df, 5, 1).height == 5


# --------------------------------------------------------------------------------------------------- training


def test_reward_model_trains_resumes_and_is_a_judge(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    cfg = _tiny(RewardTrainConfig, max_steps=6, weighting="margin")
    first = reward.train(cfg, data, out)  # type: ignore[arg-type]
    assert first.global_step == 6 and first.steps_this_run == 6 and first.resumed_from is None
    assert [s for s, _ in first.loss_history] == list(range(1, 7))
    assert first.final_loss is not None and first.first_loss is not None and first.final_loss < first.first_loss
    assert first.tokens_per_s is not None and first.tokens_per_s > 0

    texts = [*read_split(data)["prompt"], *read_split(data)["chosen"], *read_split(data)["rejected"]]
    base, _ = load_base("reward", cfg, texts)
    from transformers import AutoModelForSequenceClassification

    trained = AutoModelForSequenceClassification.from_pretrained(first.final_dir)
    assert _changed(base, trained)
    card = (out / "final" / "README.md").read_text()
    assert "content hash" in card and "tiny-llama" in card and "| loss |" in card
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    # resume: a larger budget continues from checkpoint-6 instead of restarting
    more = reward.train(_tiny(RewardTrainConfig, max_steps=8, weighting="margin"), data, out)  # type: ignore[arg-type]
    assert more.resumed_from is not None and Path(more.resumed_from).name == "checkpoint-6"
    assert more.global_step == 8 and more.steps_this_run == 2
    assert [s for s, _ in more.loss_history] == list(range(1, 9))
    assert json.loads((out / "result.json").read_text())["global_step"] == 8

    # the final folder is a judge backend by path, through the registry
    judges = tmp_path / "judges.yaml"
    judges.write_text(f"default: [rm]\njudges:\n  rm:\n    backend: reward_model\n    path: {out / 'final'}\n")
    judge = load_registry(judges).build("rm", load_constitution())
    assert judge.judge_id.startswith("reward_model")
    verdicts = judge.judge_sync([PairView.of("p", _PROMPTS[1], _CHOSEN[1], _REJECTED[1], "ab")])  # type: ignore[attr-defined]
    assert verdicts[0].status == "ok" and verdicts[0].parse_status == "reward"
    pairs = read_split(data, "test").with_columns(category=pl.Series(["a", "a", "b", "b"]))
    batched = reward_accuracy(None, pairs, batch_score_fn=reward_model_scorer(out / "final"))
    single = reward_accuracy(judge.score, pairs)  # type: ignore[attr-defined]
    assert batched.equals(single) and batched["n"].to_list() == [4, 2, 2]


def test_dpo_policy_trains_and_resumes_through_the_cli(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo"
    cfg = _tiny(DPOTrainConfig, max_steps=3, learning_rate=1e-2, weighting="sample", beta=0.5)
    first = dpo.train(cfg, data, out)  # type: ignore[arg-type]
    assert first.global_step == 3 and first.resumed_from is None and last_checkpoint(out) is not None
    # step 1: the policy IS the reference, so the DPO loss is exactly log 2
    assert first.loss_history[0][1] == pytest.approx(math.log(2), abs=1e-5)
    assert first.final_loss is not None and first.final_loss < math.log(2)

    texts = [*read_split(data)["prompt"], *read_split(data)["chosen"], *read_split(data)["rejected"]]
    base, _ = load_base("causal", cfg, texts)
    from transformers import AutoModelForCausalLM

    assert _changed(base, AutoModelForCausalLM.from_pretrained(first.final_dir))

    yaml_file = tmp_path / "dpo.yaml"
    yaml_file.write_text(
        "base_model: tiny\nmax_length: 64\nlearning_rate: 0.01\nper_device_train_batch_size: 6\nsave_steps: 3\n"
        "use_cpu: true\nseed: 0\nweighting: sample\nbeta: 0.5\nmax_steps: 5\n"
    )
    assert (
        cli("dpo", DPOTrainConfig, dpo.train, ["--config", str(yaml_file), "--data", str(data), "--out", str(out)]) == 0
    )
    result = json.loads((out / "result.json").read_text())
    assert result["global_step"] == 5 and result["steps_this_run"] == 2
    assert Path(result["resumed_from"]).name == "checkpoint-3"


def test_lora_dpo_merges_adapter_into_final(data: Path, tmp_path: Path) -> None:
    cfg = _tiny(DPOTrainConfig, max_steps=2, use_lora=True, lora_r=4, lora_alpha=8, save_steps=10)
    result = dpo.train(cfg, data, tmp_path / "lora")  # type: ignore[arg-type]
    final = Path(result.final_dir)
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(final)
    assert not any("lora" in k for k in merged.state_dict())


@pytest.mark.integration
def test_smollm2_bases_are_fresh_trainable_copies() -> None:
    """SmolLM2 bases keep the GGUF weights (the reward model: only its head is new) in fresh, trainable models."""
    from prefgate.judges.local import load_smollm2

    model, tokenizer = load_base("reward", RewardTrainConfig())
    causal, _ = load_smollm2()
    assert torch.equal(model.model.embed_tokens.weight, causal.model.embed_tokens.weight)
    assert model.model.embed_tokens.weight.data_ptr() != causal.model.embed_tokens.weight.data_ptr()
    assert model.config.num_labels == 1 and tokenizer.pad_token_id is not None
    policy, _ = load_base("causal", DPOTrainConfig())
    # trainable: not flagged quantized like the GGUF-loaded original, and the same weights in fresh storage
    assert getattr(policy, "hf_quantizer", None) is None and not getattr(policy, "is_quantized", False)
    assert torch.equal(policy.lm_head.weight, causal.lm_head.weight)
    assert policy.lm_head.weight.data_ptr() != causal.lm_head.weight.data_ptr()
