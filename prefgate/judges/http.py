"""A pairwise judge over any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, Ollama).

Verdicts, by ``mode``:

* ``"logprobs"`` (default): one request with ``max_tokens: 1, logprobs: true, top_logprobs: 10`` at temperature
  0; P(A), P(B), P(tie) are read from the first token's alternatives (see :mod:`prefgate.judges.parsing` for the
  token normalisation and p_first = (P(A) + P(tie)/2) / (P(A) + P(B) + P(tie))). When the server returns no
  logprobs (remembered for the rest of the run), rejects the parameters (HTTP 400), or the verdict tokens carry
  less than ``min_verdict_mass`` of the first-token probability, the judge falls back to a constrained verdict:
* ``"json"``: ``response_format: {"type": "json_object"}`` and ``{"verdict": ..., "rationale": ...}``; a server
  answering 400 to ``response_format`` is asked once more in
* ``"text"``: a leading ``A`` / ``B`` / ``C`` / ``tie`` in plain text.

Unparseable or empty answers, refusals to judge, timeouts and HTTP errors are ``status="failed"`` judgments with
their ``parse_status`` and ``error`` -- never a coerced verdict.

Transport: one ``httpx.AsyncClient`` per :meth:`OpenAIJudge.judge` call, at most ``concurrency`` requests in
flight (an ``asyncio.Semaphore``), a per-request timeout, and up to ``max_attempts`` attempts per request on
HTTP 429 / 5xx, timeouts and connection errors, sleeping ``Retry-After`` when the server sends it (capped at
``retry_after_max_s``) and otherwise an exponential backoff with jitter: ``d = min(backoff_max_s, backoff_base_s
* 2**(attempt-1))``, sleep uniform in ``[d/2, d]``. Other 4xx answers are not retried.

Record: in logprobs mode ``raw_output`` is the raw first-token evidence as compact JSON,
``{"content": "A", "top_logprobs": [["A", -0.04], ["B", -3.3], ...]}`` (``parsing.parse_raw_logprobs`` turns
it back into P(first) / P(second) / P(tie)), and ``extra`` is ``{"mode": "logprobs"}``; in JSON / text mode
``raw_output`` is the answer text and ``extra`` holds ``mode`` and ``finish_reason`` (and, after a fallback, why
logprobs were not used). Small flat ``extra`` objects keep the cache-hit path fast.

Accounting: ``prompt_tokens`` / ``completion_tokens`` summed from ``usage`` over the requests made for a view,
``latency_s`` from the first request to the verdict (retries and backoff included), ``attempts`` = requests made,
``cost_usd`` from ``prices[model] = (usd per 1k prompt tokens, usd per 1k completion tokens)`` (None when the
model is not priced or the server reports no usage).

Secrets: the API key is read from the environment variable *named* by ``api_key_env``; it is sent only in the
``Authorization`` header and is never logged or in ``repr``. An endpoint may echo it back (an HTML error page
quoting the request's headers, an answer repeating them), so every :class:`Judgment` leaving :meth:`judge` has its
free text -- ``error``, ``raw_output``, ``rationale``, ``extra`` -- scrubbed by
:func:`prefgate.judges.secrets.scrub_judgment` (the key, ``Authorization`` / ``Bearer`` echoes, key-shaped
strings); response bodies are scrubbed before they are truncated, so a cut never leaves a piece of the key. The
key is also registered (:func:`prefgate.judges.secrets.register_secret`) so that the runner and the cache's write
path mask it too.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx

from prefgate.judges.base import Judgment, PairView, ParseStatus, stable_hash
from prefgate.judges.constitution import Constitution, load_constitution
from prefgate.judges.parsing import (
    ParseResult,
    has_logprobs,
    message_content,
    parse_answer,
    parse_logprobs,
    top_logprobs_summary,
)
from prefgate.judges.secrets import register_secret, scrub_judgment, scrub_secrets
from prefgate.judges.templates import PAIRWISE, PairwiseTemplate, make_judge_id

VerdictMode = Literal["logprobs", "json", "text"]
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class JudgeConfigError(ValueError):
    """A judge is misconfigured (e.g. its API key variable is not set); the message never holds a secret."""


@dataclass(frozen=True)
class HttpJudgeConfig:
    """Settings of an :class:`OpenAIJudge`. Holds the *name* of the API key variable, never the key."""

    base_url: str  # e.g. "https://api.openai.com/v1", "http://127.0.0.1:8080/v1"
    model: str
    backend: str = "openai"  # first part of the judge id: openai / vllm / llamacpp / ollama / ...
    api_key_env: str | None = None  # e.g. "OPENAI_API_KEY"; None for servers without auth
    local: bool = False  # True only when the endpoint runs on this machine (then the PII guard does not apply)
    mode: VerdictMode = "logprobs"
    fallback: Literal["json", "text"] = "json"  # constrained verdict when logprobs are unavailable
    min_verdict_mass: float = 0.5
    concurrency: int = 8
    timeout_s: float = 60.0
    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 256  # json / text answers (logprobs mode always asks for 1 token)
    top_logprobs: int = 10
    seed: int | None = 0
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    trust_env: bool = True  # honour HTTP(S)_PROXY / NO_PROXY

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_attempts < 1 or self.timeout_s <= 0 or self.top_logprobs < 1:
            raise JudgeConfigError("concurrency, max_attempts and top_logprobs must be >= 1, timeout_s > 0")
        if not 0.0 <= self.min_verdict_mass <= 1.0:
            raise JudgeConfigError("min_verdict_mass must be in [0, 1]")

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


@dataclass
class _Tally:
    """What the requests made for one view added up to."""

    started: float = field(default_factory=time.perf_counter)
    attempts: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def add_usage(self, body: Mapping[str, object]) -> None:
        usage = body.get("usage")
        if not isinstance(usage, dict):
            return
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(pt, int):
            self.prompt_tokens = (self.prompt_tokens or 0) + pt
        if isinstance(ct, int):
            self.completion_tokens = (self.completion_tokens or 0) + ct


@dataclass(frozen=True)
class _Failure:
    parse_status: ParseStatus
    error: str
    status_code: int | None = None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in ``[d/2, d]``, ``d = min(cap, base * 2**(attempt-1))``."""
    d = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(d / 2, d)


def cost_usd(
    prices: Mapping[str, tuple[float, float]], model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """Cost from a per-1k-token price table; None when the model is unpriced or no usage was reported."""
    price = prices.get(model)
    if price is None or (prompt_tokens is None and completion_tokens is None):
        return None
    return (prompt_tokens or 0) / 1000 * price[0] + (completion_tokens or 0) / 1000 * price[1]


class OpenAIJudge:
    """Pairwise judge over an OpenAI-compatible chat-completions endpoint (see the module docstring)."""

    def __init__(
        self,
        config: HttpJudgeConfig,
        constitution: Constitution | None = None,
        template: PairwiseTemplate = PAIRWISE,
    ) -> None:
        self.config = config
        self.constitution = constitution if constitution is not None else load_constitution()
        self.template = template
        self.local = config.local
        self.constitution_hash = self.constitution.constitution_hash
        # The prompt as this judge sends it: template texts plus the verdict mode, so a logprobs judge and a
        # JSON-mode judge of the same model never share cache keys.
        self.template_hash = stable_hash(
            {"template": template.template_hash, "mode": config.mode, "fallback": config.fallback}
        )
        self.judge_id = make_judge_id(config.backend, config.model, self.template_hash, self.constitution_hash)
        self.__api_key: str | None = None
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise JudgeConfigError(f"environment variable {config.api_key_env} (the judge's API key) is not set")
            self.__api_key = key
            register_secret(key)
        self._logprobs_supported: bool | None = None  # learned from the first answers

    def __repr__(self) -> str:
        return f"OpenAIJudge(judge_id={self.judge_id!r}, url={self.config.url!r})"

    # ------------------------------------------------------------------------------------------ plumbing

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    def _secrets(self) -> tuple[str, ...]:
        return (self.__api_key,) if self.__api_key else ()

    def _scrub(self, text: str) -> str:
        """The text with the API key, auth-header echoes and key-shaped strings masked."""
        return scrub_secrets(text, self._secrets())

    def _body(self, view: PairView, mode: VerdictMode) -> dict[str, object]:
        cfg = self.config
        body: dict[str, object] = {
            "model": cfg.model,
            "messages": self.template.messages(view, self.constitution, json_mode=mode == "json"),
            "temperature": cfg.temperature,
        }
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if mode == "logprobs":
            body.update(max_tokens=1, logprobs=True, top_logprobs=cfg.top_logprobs)
        else:
            body["max_tokens"] = cfg.max_tokens
        if mode == "json":
            body["response_format"] = {"type": "json_object"}
        return body

    async def _post(
        self, client: httpx.AsyncClient, body: Mapping[str, object], tally: _Tally
    ) -> dict[str, object] | _Failure:
        """One logical request with retries; the parsed JSON body or why there is none."""
        cfg = self.config
        failure = _Failure("error", "no attempt made")
        for attempt in range(1, cfg.max_attempts + 1):
            tally.attempts += 1
            delay: float | None = None
            try:
                response = await client.post(cfg.url, json=body, headers=self._headers(), timeout=cfg.timeout_s)
            except httpx.TimeoutException as exc:
                failure = _Failure("timeout", f"timed out after {cfg.timeout_s}s ({type(exc).__name__})")
            except httpx.TransportError as exc:
                failure = _Failure("http_error", self._scrub(f"{type(exc).__name__}: {exc}"))
            else:
                code = response.status_code
                if code < 400:
                    try:
                        parsed = response.json()
                    except ValueError:
                        text = self._scrub(response.text)[:200]  # scrub first: a cut must not split the key
                        return _Failure("http_error", f"HTTP {code}: body is not JSON: {text!r}", code)
                    if not isinstance(parsed, dict):
                        return _Failure("http_error", f"HTTP {code}: body is not a JSON object", code)
                    tally.add_usage(parsed)
                    return parsed
                failure = _Failure("http_error", f"HTTP {code}: {self._scrub(response.text)[:300]}", code)
                if code not in RETRY_STATUS:
                    return failure
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                if retry_after is not None:
                    delay = min(retry_after, cfg.retry_after_max_s)
            if attempt < cfg.max_attempts:
                if delay is None:
                    delay = backoff_seconds(attempt, cfg.backoff_base_s, cfg.backoff_max_s)
                await asyncio.sleep(delay)
        return _Failure(
            failure.parse_status, f"{failure.error} (after {cfg.max_attempts} attempts)", failure.status_code
        )

    # --------------------------------------------------------------------------------------------- judging

    def _judgment(
        self,
        view: PairView,
        tally: _Tally,
        result: ParseResult | _Failure,
        raw: str = "",
        extra: dict[str, object] | None = None,
    ) -> Judgment:
        j = Judgment(
            judge_id=self.judge_id,
            pair_id=view.pair_id,
            order=view.order,
            status="failed",
            parse_status=result.parse_status,
            raw_output=raw,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
            latency_s=time.perf_counter() - tally.started,
            cost_usd=cost_usd(self.config.prices, self.config.model, tally.prompt_tokens, tally.completion_tokens),
            attempts=max(1, tally.attempts),
            constitution_hash=self.constitution_hash,
            template_hash=self.template_hash,
            extra=dict(extra or {}),
        )
        if isinstance(result, _Failure):
            j.error = result.error
            if result.status_code is not None:
                j.extra["http_status"] = result.status_code
            return j
        j.rationale, j.error = result.rationale, (self._scrub(result.error) if result.error else None)
        if result.ok:
            j.status, j.verdict, j.p_first = "ok", result.verdict, result.p_first
        return j

    async def _constrained(
        self, client: httpx.AsyncClient, view: PairView, tally: _Tally, extra: dict[str, object]
    ) -> Judgment:
        """JSON-mode (then, on HTTP 400, plain-text) or plain-text verdict."""
        modes: list[VerdictMode]
        if self.config.mode == "text" or (self.config.mode == "logprobs" and self.config.fallback == "text"):
            modes = ["text"]
        else:
            modes = ["json", "text"]
        outcome: dict[str, object] | _Failure = _Failure("error", "no request made")
        mode: VerdictMode = modes[0]
        for mode in modes:
            outcome = await self._post(client, self._body(view, mode), tally)
            if not (isinstance(outcome, _Failure) and outcome.status_code == 400):
                break
        extra["mode"] = mode
        if not isinstance(outcome, _Failure) and extra.get("logprobs_status") == 400:
            self._logprobs_supported = False  # the server rejects the logprobs parameters but answers otherwise
        if isinstance(outcome, _Failure):
            return self._judgment(view, tally, outcome, extra=extra)
        content, finish = message_content(outcome)
        extra["finish_reason"] = finish
        if content is None or not content.strip():
            if finish == "content_filter":
                return self._judgment(
                    view, tally, ParseResult("refused", error="blocked by the content filter"), extra=extra
                )
            return self._judgment(
                view,
                tally,
                ParseResult("empty", error="the judge returned an empty answer"),
                raw=content or "",
                extra=extra,
            )
        return self._judgment(view, tally, parse_answer(content, json_first=mode == "json"), raw=content, extra=extra)

    async def _judge_one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, view: PairView) -> Judgment:
        tally = _Tally()
        extra: dict[str, object] = {}
        try:
            async with sem:
                tally.started = time.perf_counter()
                if self.config.mode == "logprobs" and self._logprobs_supported is not False:
                    outcome = await self._post(client, self._body(view, "logprobs"), tally)
                    if isinstance(outcome, _Failure):
                        if outcome.status_code != 400:
                            return self._judgment(view, tally, outcome, extra={"mode": "logprobs"})
                        extra["logprobs_error"] = outcome.error
                        extra["logprobs_status"] = 400
                    elif has_logprobs(outcome):
                        self._logprobs_supported = True
                        content, _ = message_content(outcome)
                        parsed = parse_logprobs(outcome, min_verdict_mass=self.config.min_verdict_mass)
                        top = [list(t) for t in top_logprobs_summary(outcome)]
                        if parsed.ok:
                            extra["mode"] = "logprobs"
                            raw = json.dumps({"content": content, "top_logprobs": top}, separators=(",", ":"))
                            return self._judgment(view, tally, parsed, raw=raw, extra=extra)
                        extra["logprobs_error"] = parsed.error
                        extra["top_logprobs"] = top
                    else:
                        self._logprobs_supported = False
                        extra["logprobs_error"] = "the server returned no logprobs"
                return await self._constrained(client, view, tally, extra)
        except Exception as exc:  # a judge never raises for one view: the failure is recorded instead
            return self._judgment(
                view, tally, _Failure("error", self._scrub(f"{type(exc).__name__}: {exc}")), extra=extra
            )

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        """Judge a batch concurrently (at most ``concurrency`` requests in flight); one Judgment per view."""
        if not views:
            return []
        limits = httpx.Limits(
            max_connections=self.config.concurrency, max_keepalive_connections=self.config.concurrency
        )
        async with httpx.AsyncClient(limits=limits, trust_env=self.config.trust_env) as client:
            sem = asyncio.Semaphore(self.config.concurrency)
            judged = await asyncio.gather(*(self._judge_one(client, sem, v) for v in views))
        # The one exit of every judgment: whatever path built it, its free text is scrubbed here.
        secrets = self._secrets()
        return [scrub_judgment(j, secrets) for j in judged]
