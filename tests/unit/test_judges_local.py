"""Local judges on tiny models built here (no downloads): logit reading, batching and left padding, exact order
complementarity of the pointwise and reward-model judges, and their probabilities against independent forwards."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from prefgate.judges.base import ORDERS, Judge, PairView  # noqa: E402
from prefgate.judges.local import (  # noqa: E402
    PAIRWISE_VARIANTS,
    YES_NO_VARIANTS,
    PointwiseJudge,
    RewardModelJudge,
    TransformersPairwiseJudge,
    _verdict,
    encode_chat,
    load_causal_lm,
    p_first_from_scores,
    verdict_token_ids,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Which response is better? Answer A, B or C. Response A is better. Response B is better. C means a tie.",
    "The answer is A. The answer is B. The answer is C. A or B or C?",
    "Is this response helpful, honest and harmless? Answer Yes or No. Yes it is. No it is not.",
    "The capital of France is Paris. Water boils at one hundred degrees. Cats sleep most of the day.",
    "Rewrite the sentence to make it clearer and more concise, and keep the meaning.",
] * 20

# Prompts of very different lengths, so batches are really left padded.
PAIRS = [
    ("p1", "Hi", "Hello.", "Hey."),
    ("p2", "What is the capital of France?", "Paris.", "The capital of France is Paris, a large city."),
    ("p3", "Rewrite the sentence to make it clearer. " * 6, "Clearer sentence.", "It is clearer and concise."),
    ("p4", "Is water wet?", "Yes it is.", "No it is not, water makes things wet but is not itself wet."),
    ("p5", "Cats?", "Cats sleep most of the day. " * 4, "Cats sleep."),
]


def short_messages(view: PairView) -> list[dict[str, str]]:
    """A short pairwise prompt, to keep the tiny models' inputs small."""
    return [{"role": "user", "content": f"{view.prompt}\nA: {view.first}\nB: {view.second}\nAnswer A, B or C."}]


def short_pointwise(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{prompt}\n{response}\nIs this response helpful? Answer Yes or No."}]


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> Any:
    """A byte-level BPE tokenizer trained on a few sentences, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = chat_template
    return tokenizer


def small_config(kind: str, tokenizer: Any, **extra: Any) -> Any:
    from transformers import GPT2Config, LlamaConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if kind == "gpt2":
        return GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=1024,
            initializer_range=0.2,
            **ids,
            **extra,
        )
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        **ids,
        **extra,
    )


def save_causal_lm(folder: Path, kind: str = "llama", chat_template: str | None = CHAT_TEMPLATE) -> Path:
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = build_tokenizer(chat_template)
    config = small_config(kind, tokenizer)
    model = GPT2LMHeadModel(config) if kind == "gpt2" else LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_reward_model(folder: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(1)
    tokenizer = build_tokenizer(chat_template)
    model = LlamaForSequenceClassification(small_config("llama", tokenizer, num_labels=1))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return load_causal_lm(save_causal_lm(tmp_path_factory.mktemp("llama")))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return load_causal_lm(save_causal_lm(tmp_path_factory.mktemp("gpt2"), kind="gpt2"))  # type: ignore[no-any-return]


def views(orders: tuple[str, ...] = ORDERS) -> list[PairView]:
    return [PairView.of(pid, p, a, b, order) for pid, p, a, b in PAIRS for order in orders]  # type: ignore[arg-type]


def run(judge: Any, vs: list[PairView]) -> list[Any]:
    return asyncio.run(judge.judge(vs))


def direct_logprobs(model: Any, tokenizer: Any, ids: list[int], token_ids: dict[str, tuple[int, ...]]) -> dict:
    """Per-label next-token log-probabilities from an unpadded forward of one prompt."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    logprobs = torch.log_softmax(logits, -1)
    return {label: float(torch.logsumexp(logprobs[list(tids)], -1)) for label, tids in token_ids.items()}


# ---------------------------------------------------------------------------------------------- helpers


def test_verdict_tokens_take_every_single_token_spelling() -> None:
    tokenizer = build_tokenizer()
    ids = verdict_token_ids(tokenizer, PAIRWISE_VARIANTS)
    for label in "ABC":
        assert len(tokenizer.encode(" " + label, add_special_tokens=False)) == 1  # the corpus merged "ĠA"
        assert len(ids[label]) == 2  # "A" and " A" are different tokens, both read
    yes_no = verdict_token_ids(tokenizer, YES_NO_VARIANTS)
    assert set(yes_no) == {"yes", "no"}
    with pytest.raises(ValueError, match="single token"):
        verdict_token_ids(tokenizer, {"A": ("Zebraquux",)})
    with pytest.raises(ValueError, match="share token"):
        verdict_token_ids(tokenizer, {"A": ("A",), "B": (" A",), "C": ("A",)})


def test_p_first_from_scores_is_a_sigmoid_with_exact_complement() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        x, y = rng.uniform(-30, 30), rng.uniform(-30, 30)
        p, q = p_first_from_scores(x, y), p_first_from_scores(y, x)
        assert p + q == 1.0
        assert 1.0 - q == p
        assert p == pytest.approx(1 / (1 + math.exp(-(x - y))), abs=1e-12)
    assert p_first_from_scores(2.0, 2.0) == 0.5
    assert p_first_from_scores(800.0, 0.0) == 1.0 and p_first_from_scores(0.0, 800.0) == 0.0


def test_verdict_rule() -> None:
    assert _verdict(0.5, 0.3, 0.2) == "first"
    assert _verdict(0.3, 0.5, 0.2) == "second"
    assert _verdict(0.3, 0.3, 0.4) == "tie"
    assert _verdict(0.4, 0.4, 0.2) == "tie"


# ---------------------------------------------------------------------------------------------- pairwise


def test_pairwise_judgments_match_an_unpadded_forward(tiny_llama: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_llama
    judge = TransformersPairwiseJudge(model, tokenizer, "tiny-pairwise", messages_builder=short_messages)
    assert isinstance(judge, Judge) and judge.local
    vs = views()
    out = run(judge, vs)
    assert [(j.pair_id, j.order) for j in out] == [(v.pair_id, v.order) for v in vs]
    token_ids = verdict_token_ids(tokenizer, PAIRWISE_VARIANTS)
    for view, j in zip(vs, out, strict=True):
        assert j.status == "ok" and j.parse_status == "logits" and j.judge_id == "tiny-pairwise"
        ids = encode_chat(tokenizer, short_messages(view))
        assert ids[-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")  # the generation prompt is there
        lp = direct_logprobs(model, tokenizer, ids, token_ids)
        z = sum(math.exp(v) for v in lp.values())
        pa, pb, pc = (math.exp(lp[k]) / z for k in "ABC")
        assert j.p_first == pytest.approx(pa / (pa + pb), abs=1e-5)
        assert j.extra["p_tie"] == pytest.approx(pc, abs=1e-5)
        raw = json.loads(j.raw_output)
        assert set(raw) == {"A", "B", "C"} and sum(raw.values()) == pytest.approx(1.0, abs=1e-5)
        best = max(raw, key=raw.__getitem__)
        assert j.verdict == {"A": "first", "B": "second", "C": "tie"}[best]
        assert 0 < j.extra["verdict_mass"] <= 1
        assert j.prompt_tokens == len(ids) and j.completion_tokens == 0
        assert j.latency_s >= 0 and j.pii_action == "local" and j.template_hash


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_batched_left_padding_equals_one_by_one(fixture: str, request: pytest.FixtureRequest) -> None:
    """RoPE (llama) and absolute positions (gpt2): padded rows give the same numbers as single prompts."""
    model, tokenizer = request.getfixturevalue(fixture)
    vs = views()
    lengths = {len(encode_chat(tokenizer, short_messages(v))) for v in vs}
    assert max(lengths) > 2 * min(lengths)  # the batch really is padded
    batched = run(
        TransformersPairwiseJudge(model, tokenizer, "b", batch_size=len(vs), messages_builder=short_messages), vs
    )
    single = run(TransformersPairwiseJudge(model, tokenizer, "s", batch_size=1, messages_builder=short_messages), vs)
    for b, s in zip(batched, single, strict=True):
        assert b.status == s.status == "ok"
        assert b.p_first == pytest.approx(s.p_first, abs=1e-5)
        assert b.extra["p_tie"] == pytest.approx(s.extra["p_tie"], abs=1e-5)
        assert b.verdict == s.verdict or abs(b.p_first - 0.5) < 1e-4


def test_default_prompt_and_plain_fallback_without_chat_template(tmp_path: Path, tiny_llama: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_llama
    out = run(TransformersPairwiseJudge(model, tokenizer, "default"), views(("ab",)))
    assert all(j.status == "ok" for j in out)
    plain_model, plain_tokenizer = load_causal_lm(save_causal_lm(tmp_path / "plain", chat_template=None))
    ids = encode_chat(plain_tokenizer, short_messages(views()[0]))
    assert plain_tokenizer.decode(ids).endswith("Assistant:")
    plain = run(
        TransformersPairwiseJudge(plain_model, plain_tokenizer, "plain", messages_builder=short_messages), views()
    )
    assert all(j.status == "ok" and 0 <= j.p_first <= 1 for j in plain)


def test_failures_are_recorded_not_coerced(tiny_llama: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_llama

    def flaky(view: PairView) -> list[dict[str, str]]:
        if view.pair_id == "p2":
            raise KeyError("missing field")
        return short_messages(view)

    judge = TransformersPairwiseJudge(model, tokenizer, "flaky", batch_size=3, messages_builder=flaky)
    out = run(judge, views())
    for j in out:
        if j.pair_id == "p2":
            assert j.status == "failed" and j.verdict is None and j.p_first is None and "KeyError" in (j.error or "")
        else:
            assert j.status == "ok"
    assert run(judge, []) == []


# ---------------------------------------------------------------------------------------------- pointwise


def test_pointwise_orders_are_exactly_complementary(tiny_llama: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_llama
    judge = PointwiseJudge(model, tokenizer, "tiny-pointwise", batch_size=4, messages_builder=short_pointwise)
    assert isinstance(judge, Judge)
    out = run(judge, views())
    assert len(judge._cache._data) == 2 * len(PAIRS)  # each response scored once, both orders reuse it
    token_ids = verdict_token_ids(tokenizer, YES_NO_VARIANTS)

    def log_odds(prompt: str, response: str) -> float:
        lp = direct_logprobs(model, tokenizer, encode_chat(tokenizer, short_pointwise(prompt, response)), token_ids)
        return lp["yes"] - lp["no"]

    for (pid, prompt, a, b), ab, ba in zip(PAIRS, out[0::2], out[1::2], strict=True):
        assert ab.order == "ab" and ba.order == "ba" and ab.pair_id == ba.pair_id == pid
        assert ab.status == ba.status == "ok" and ab.parse_status == "pointwise"
        assert ab.p_first + ba.p_first == 1.0
        assert ab.probability_a() == ba.probability_a()
        assert ab.canonical_choice() == ba.canonical_choice()
        expected = 1 / (1 + math.exp(-(log_odds(prompt, a) - log_odds(prompt, b))))
        assert ab.p_first == pytest.approx(expected, abs=1e-5)
        raw = json.loads(ab.raw_output)
        assert raw["p_yes_first"] == pytest.approx(1 / (1 + math.exp(-log_odds(prompt, a))), abs=1e-5)


def test_pointwise_identical_responses_tie(tiny_llama: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_llama
    judge = PointwiseJudge(model, tokenizer, "tie", messages_builder=short_pointwise)
    [j] = run(judge, [PairView.of("same", "Hi", "Hello.", "Hello.", "ab")])
    assert j.p_first == 0.5 and j.verdict == "tie"


# ---------------------------------------------------------------------------------------------- reward model


@pytest.mark.parametrize("chat_template", [CHAT_TEMPLATE, None], ids=["chat-template", "pair-encoding"])
def test_reward_model_is_bradley_terry_on_independent_scores(tmp_path: Path, chat_template: str | None) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = save_reward_model(tmp_path / "rm", chat_template)
    judge = RewardModelJudge(folder, "tiny-rm", batch_size=3)
    assert isinstance(judge, Judge) and judge.local
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def reward(prompt: str, response: str) -> float:
        if chat_template:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
            )
            encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        else:
            encoded = tokenizer(prompt, response, return_tensors="pt")
        with torch.no_grad():
            return float(model(**encoded).logits[0, 0])

    out = run(judge, views())
    for (_pid, prompt, a, b), ab, ba in zip(PAIRS, out[0::2], out[1::2], strict=True):
        assert ab.status == ba.status == "ok" and ab.parse_status == "reward"
        ra, rb = reward(prompt, a), reward(prompt, b)
        assert judge.score(prompt, a) == pytest.approx(ra, abs=1e-5)
        assert ab.p_first == pytest.approx(1 / (1 + math.exp(-(ra - rb))), abs=1e-5)
        assert ab.p_first + ba.p_first == 1.0
        assert ab.probability_a() == ba.probability_a()
        assert json.loads(ab.raw_output)["reward_first"] == pytest.approx(ra, abs=1e-5)
        assert ab.verdict == ("tie" if abs(ra - rb) <= judge.tie_margin else "first" if ra > rb else "second")
