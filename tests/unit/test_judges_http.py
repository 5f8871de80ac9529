"""OpenAIJudge against a real HTTP server on 127.0.0.1: verdicts, fallbacks, retries, Retry-After, timeouts, secrets.

The server is a scripted stand-in for an OpenAI-compatible endpoint (fault injection: 429, 5xx, slow answers,
missing logprobs); its answers are the recorded bodies in ``judge_bodies/``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from prefgate.judges.base import Judgment, PairView
from prefgate.judges.cache import JudgmentCache
from prefgate.judges.constitution import load_constitution
from prefgate.judges.http import (
    HttpJudgeConfig,
    JudgeConfigError,
    OpenAIJudge,
    backoff_seconds,
    cost_usd,
    retry_after_seconds,
)
from prefgate.judges.parsing import parse_raw_logprobs
from prefgate.judges.runner import judge_pairs

BODIES = Path(__file__).parent / "judge_bodies"
CONSTITUTION = load_constitution()


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BODIES / f"{name}.json").read_text())
    return data


def chat(
    content: str | None, finish: str = "stop", prompt_tokens: int = 300, completion_tokens: int = 5
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "judge-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": 0},
    }


@dataclass
class Reply:
    status: int = 200
    payload: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Responder = Callable[[int, dict[str, Any]], Reply]


class FakeServer:
    """A threaded HTTP server answering POST /v1/chat/completions through ``responder(index, request_body)``."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                with outer.lock:
                    index = len(outer.requests)
                    outer.requests.append((dict(self.headers.items()), request))
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                try:
                    reply = outer.responder(index, request)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    data = (reply.payload if isinstance(reply.payload, str) else json.dumps(reply.payload)).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with outer.lock:
                        outer.inflight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], FakeServer]]:
    servers: list[FakeServer] = []

    def start(responder: Responder) -> FakeServer:
        server = FakeServer(responder)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def make_judge(server: FakeServer | str, **kw: Any) -> OpenAIJudge:
    base = server if isinstance(server, str) else server.base_url
    settings: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "trust_env": False, "max_attempts": 3}
    settings.update(kw)
    return OpenAIJudge(
        HttpJudgeConfig(base_url=base, model=settings.pop("model", "gpt-4o-mini"), **settings), CONSTITUTION
    )


VIEW_AB = PairView.of("p1", "How do I kill a Python process?", "Use `kill <pid>`.", "I can't help with that.", "ab")
VIEW_BA = PairView.of("p1", "How do I kill a Python process?", "Use `kill <pid>`.", "I can't help with that.", "ba")


def run(judge: OpenAIJudge, *views: PairView) -> list[Judgment]:
    return asyncio.run(judge.judge(list(views)))


# ------------------------------------------------------------------------------------------------- verdicts


def test_logprobs_verdict_tokens_latency_and_cost(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(payload=body("openai_logprobs")))
    judge = make_judge(server, prices={"gpt-4o-mini": (0.15, 0.6)})
    ab, ba = run(judge, VIEW_AB, VIEW_BA)
    assert (ab.status, ab.parse_status, ab.verdict) == ("ok", "logprobs", "first")
    assert ab.p_first is not None and ab.p_first > 0.95
    assert ab.canonical_choice() == "a" and ba.canonical_choice() == "b"  # the same answer in both orders
    assert ba.probability_a() == pytest.approx(1 - ab.p_first)
    assert (ab.prompt_tokens, ab.completion_tokens, ab.attempts) == (412, 1, 1)
    assert ab.cost_usd == pytest.approx(412 / 1000 * 0.15 + 1 / 1000 * 0.6)
    assert ab.latency_s > 0 and ab.judge_id == judge.judge_id
    assert ab.constitution_hash == CONSTITUTION.constitution_hash and ab.template_hash == judge.template_hash
    raw = json.loads(ab.raw_output)
    assert raw["content"] == "A" and raw["top_logprobs"][0] == ["A", -0.03804]
    assert ab.extra == {"mode": "logprobs"}
    again = parse_raw_logprobs(ab.raw_output)  # the probabilities are recoverable from the raw record
    assert again.p_first == pytest.approx(ab.p_first) and again.probs["tie"] < 0.01
    # the requests: one token, logprobs, the responses in presentation order (arrival order may vary)
    firsts = set()
    for headers, req in server.requests:
        assert (req["max_tokens"], req["logprobs"], req["top_logprobs"], req["temperature"]) == (1, True, 10, 0.0)
        assert req["model"] == "gpt-4o-mini" and "response_format" not in req
        assert "authorization" not in {k.lower() for k in headers}  # no api_key_env: no auth header
        user = req["messages"][1]["content"]
        firsts.add(user.split("[Response A]\n", 1)[1].split("\n", 1)[0])
    assert firsts == {"Use `kill <pid>`.", "I can't help with that."}


def test_unpriced_model_has_no_cost(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(payload=body("llamacpp_logprobs")))
    (j,) = run(make_judge(server, backend="llamacpp", model="qwen2.5-0.5b"), VIEW_AB)
    assert j.verdict == "second" and j.cost_usd is None and j.prompt_tokens == 389
    assert j.judge_id.startswith("llamacpp:qwen2.5-0.5b:")
    assert cost_usd({}, "m", 10, 1) is None and cost_usd({"m": (1.0, 2.0)}, "m", None, None) is None


def test_no_logprobs_falls_back_to_json_and_remembers(serve: Callable[[Responder], FakeServer]) -> None:
    def respond(i: int, req: dict[str, Any]) -> Reply:
        if req.get("response_format") == {"type": "json_object"}:
            return Reply(payload=body("openai_json_mode"))
        return Reply(payload=body("ollama_no_logprobs"))

    server = serve(respond)
    judge = make_judge(server, model="llama3.2:1b", backend="ollama")
    (first,) = run(judge, VIEW_AB)
    assert (first.status, first.parse_status, first.verdict) == ("ok", "json", "second")
    assert first.p_first is None and first.rationale and first.rationale.startswith("Response B answers")
    assert first.attempts == 2 and (first.prompt_tokens, first.completion_tokens) == (377 + 431, 1 + 29)
    assert first.extra["logprobs_error"] == "the server returned no logprobs"
    assert json.loads(first.raw_output)["verdict"] == "B"
    n = len(server.requests)
    (second,) = run(judge, VIEW_BA)  # the judge now knows: no logprobs request any more
    assert second.attempts == 1 and len(server.requests) == n + 1
    assert "response_format" in server.requests[-1][1] and server.requests[-1][1]["max_tokens"] == 256


def test_json_mode_rejected_falls_back_to_text(serve: Callable[[Responder], FakeServer]) -> None:
    def respond(i: int, req: dict[str, Any]) -> Reply:
        if "response_format" in req:
            return Reply(400, {"error": {"message": "response_format is not supported"}})
        return Reply(payload=chat("B\nResponse B is correct."))

    (j,) = run(make_judge(serve(respond), mode="json"), VIEW_AB)
    assert (j.status, j.parse_status, j.verdict, j.rationale) == ("ok", "text", "second", "Response B is correct.")
    assert j.attempts == 2 and j.extra["mode"] == "text"


def test_low_verdict_mass_falls_back(serve: Callable[[Responder], FakeServer]) -> None:
    chatty = chat("I")
    chatty["choices"][0]["logprobs"] = {
        "content": [
            {
                "token": "I",
                "logprob": -0.02,
                "top_logprobs": [
                    {"token": "I", "logprob": -0.02},
                    {"token": "A", "logprob": -4.5},
                    {"token": "B", "logprob": -5.0},
                ],
            }
        ]
    }

    def respond(i: int, req: dict[str, Any]) -> Reply:
        return Reply(payload=chatty if req.get("logprobs") else body("openai_refusal"))

    (j,) = run(make_judge(serve(respond)), VIEW_AB)
    assert (j.status, j.parse_status, j.verdict) == ("failed", "refused", None)  # not the 1%-mass "A"
    assert "verdict tokens carry only" in str(j.extra["logprobs_error"])
    assert j.extra["top_logprobs"] == [["I", -0.02], ["A", -4.5], ["B", -5.0]]


@pytest.mark.parametrize(
    ("content", "finish", "status"),
    [
        ("I'm sorry, but I can't help with comparing these responses.", "stop", "refused"),
        ("", "stop", "empty"),
        (None, "stop", "empty"),
        (None, "content_filter", "refused"),
        ("Hmm, both have merits and drawbacks.", "stop", "unparseable"),
        ("A good answer would cite the docs.", "stop", "unparseable"),
    ],
)
def test_answers_that_are_not_verdicts_fail(
    serve: Callable[[Responder], FakeServer], content: str | None, finish: str, status: str
) -> None:
    (j,) = run(make_judge(serve(lambda i, req: Reply(payload=chat(content, finish))), mode="text"), VIEW_AB)
    assert (j.status, j.parse_status, j.verdict, j.p_first) == ("failed", status, None, None)
    assert j.error and j.attempts == 1 and j.canonical_choice() is None


def test_non_json_body_is_an_http_error(serve: Callable[[Responder], FakeServer]) -> None:
    (j,) = run(make_judge(serve(lambda i, req: Reply(payload="<html>gateway</html>")), mode="text"), VIEW_AB)
    assert (j.status, j.parse_status) == ("failed", "http_error") and "not JSON" in str(j.error)


# --------------------------------------------------------------------------------------- retries, timeouts


def test_429_honours_retry_after(serve: Callable[[Responder], FakeServer]) -> None:
    def respond(i: int, req: dict[str, Any]) -> Reply:
        if i == 0:
            return Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "1"})
        return Reply(payload=body("openai_logprobs"))

    server = serve(respond)
    start = time.perf_counter()
    (j,) = run(make_judge(server, backoff_base_s=0.001, backoff_max_s=0.001), VIEW_AB)
    elapsed = time.perf_counter() - start
    assert j.status == "ok" and j.attempts == 2 and len(server.requests) == 2
    assert elapsed >= 0.95  # waited what the server asked, not the 1 ms backoff
    assert j.latency_s >= 0.95  # latency covers the retry


def test_5xx_retried_with_backoff_then_ok(serve: Callable[[Responder], FakeServer]) -> None:
    codes = [500, 502]

    def respond(i: int, req: dict[str, Any]) -> Reply:
        return Reply(codes[i], "upstream error") if i < len(codes) else Reply(payload=body("openai_logprobs"))

    (j,) = run(make_judge(serve(respond), max_attempts=3), VIEW_AB)
    assert j.status == "ok" and j.attempts == 3


def test_5xx_exhausts_attempts(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(503, "overloaded"))
    (j,) = run(make_judge(server, max_attempts=4), VIEW_AB)
    assert (j.status, j.parse_status, j.attempts, len(server.requests)) == ("failed", "http_error", 4, 4)
    assert "HTTP 503" in str(j.error) and "after 4 attempts" in str(j.error)
    assert j.extra["http_status"] == 503


def test_other_4xx_not_retried(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(404, {"error": {"message": "model not found"}}))
    (j,) = run(make_judge(server), VIEW_AB)
    assert (j.status, j.parse_status, j.attempts, len(server.requests)) == ("failed", "http_error", 1, 1)


def test_timeout_is_retried_then_failed(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(payload=body("openai_logprobs"), delay_s=3.0))
    start = time.perf_counter()
    (j,) = run(make_judge(server, timeout_s=0.2, max_attempts=2), VIEW_AB)
    assert (j.status, j.parse_status, j.attempts) == ("failed", "timeout", 2)
    assert time.perf_counter() - start < 2.5 and "timed out after 0.2s" in str(j.error)


def test_connection_refused(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply())
    url = server.base_url
    server.close()
    (j,) = run(make_judge(url, max_attempts=2), VIEW_AB)
    assert (j.status, j.parse_status, j.attempts) == ("failed", "http_error", 2)
    assert "ConnectError" in str(j.error)


def test_concurrency_is_bounded(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda i, req: Reply(payload=body("openai_logprobs"), delay_s=0.15))
    views = [PairView.of(f"p{i}", "q", "a", "b", "ab") for i in range(9)]
    out = run(make_judge(server, concurrency=3), *views)
    assert [j.pair_id for j in out] == [v.pair_id for v in views] and all(j.status == "ok" for j in out)
    assert 2 <= server.max_inflight <= 3


def test_retry_after_and_backoff_helpers() -> None:
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Fri, 27 Nov 2026 10:00:30 GMT", now=1_795_773_600.0) == pytest.approx(30.0)
    assert retry_after_seconds("Fri, 27 Nov 2026 09:00:00 GMT", now=1_795_773_600.0) == 0.0
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 5.0)]:
        d = backoff_seconds(attempt, 0.5, 5.0)
        assert cap / 2 <= d <= cap


# ------------------------------------------------------------------------------------------------- secrets


def test_api_key_only_in_the_header(
    serve: Callable[[Responder], FakeServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-9f8e7d6c5b4a3210SECRET"
    monkeypatch.setenv("PREFGATE_TEST_JUDGE_KEY", secret)
    server = serve(lambda i, req: Reply(401, {"error": {"message": f"Incorrect API key provided: {secret}."}}))
    judge = make_judge(server, api_key_env="PREFGATE_TEST_JUDGE_KEY")
    (j,) = run(judge, VIEW_AB)
    assert server.requests[0][0]["Authorization"] == f"Bearer {secret}"
    assert j.status == "failed" and "HTTP 401" in str(j.error) and "***" in str(j.error)
    assert secret not in j.to_json() and secret not in repr(judge) and secret not in repr(judge.config)
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([j])
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in stored and b"Incorrect API key" in stored


def test_missing_key_variable_is_named_not_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFGATE_NO_SUCH_KEY", raising=False)
    with pytest.raises(JudgeConfigError, match="PREFGATE_NO_SUCH_KEY"):
        make_judge("http://127.0.0.1:9/v1", api_key_env="PREFGATE_NO_SUCH_KEY")
    with pytest.raises(JudgeConfigError):
        HttpJudgeConfig(base_url="http://x/v1", model="m", concurrency=0)


def test_judge_id_tracks_mode_model_and_constitution() -> None:
    a = make_judge("http://127.0.0.1:9/v1")
    assert a.judge_id == make_judge("http://127.0.0.1:9/v1").judge_id
    assert a.judge_id.startswith("openai:gpt-4o-mini:") and a.judge_id.endswith(CONSTITUTION.constitution_hash[:8])
    assert make_judge("http://127.0.0.1:9/v1", mode="json").judge_id != a.judge_id
    assert make_judge("http://127.0.0.1:9/v1", model="gpt-4o").judge_id != a.judge_id
    assert HttpJudgeConfig(base_url="http://h/v1/", model="m").url == "http://h/v1/chat/completions"


# ------------------------------------------------------------------------------------- through the runner


def test_runner_redacts_pii_before_it_reaches_the_server(
    serve: Callable[[Responder], FakeServer], tmp_path: Path
) -> None:
    server = serve(lambda i, req: Reply(payload=body("openai_logprobs")))
    pairs = pl.DataFrame(
        {
            "pair_id": ["p1", "p2"],
            "prompt": ["Email me at jane.doe@example.com", "What is 2+2?"],
            "response_a": ["Sure, I will write to jane.doe@example.com", "4"],
            "response_b": ["Call +1 (202) 555-0143 instead", "5"],
            "category": ["writing", "math"],
        }
    )
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        out = judge_pairs(pairs, [make_judge(server)], cache, pii_policy="redact", max_retries=0)
    sent = json.dumps([req for _, req in server.requests])
    assert "jane.doe@example.com" not in sent and "555-0143" not in sent
    assert "[EMAIL]" in sent and "[PHONE]" in sent
    assert {(j.pair_id, j.pii_action) for j in out} == {("p1", "redacted"), ("p2", "none")}
    assert all(j.status == "ok" for j in out) and len(server.requests) == 4


def test_logprobs_rejected_with_400_falls_back_and_remembers(serve: Callable[[Responder], FakeServer]) -> None:
    def respond(i: int, req: dict[str, Any]) -> Reply:
        if "logprobs" in req:
            return Reply(400, {"error": {"message": "logprobs is not supported for this model"}})
        return Reply(payload=body("openai_json_mode"))

    server = serve(respond)
    judge = make_judge(server)
    (first,) = run(judge, VIEW_AB)
    assert (first.status, first.parse_status, first.attempts) == ("ok", "json", 2)
    assert "HTTP 400" in str(first.extra["logprobs_error"])
    (second,) = run(judge, VIEW_BA)
    assert second.attempts == 1 and len(server.requests) == 3
