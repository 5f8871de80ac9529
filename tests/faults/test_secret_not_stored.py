"""Fault probe (issue 11, item 5): an endpoint that echoes the API key must not get it stored anywhere.

End to end at the library level: a real HTTP server on 127.0.0.1 echoes the request's ``Authorization`` header
(an HTML 200 body, a 200 chat completion whose answer quotes it, a 500 body); OpenAI-compatible judges run
through the real runner into a real judgment cache under a temporary directory. Then every byte of every file
under that directory, and every returned judgment, is searched for the key.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from prefgate.judges.cache import JudgmentCache
from prefgate.judges.constitution import load_constitution
from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge
from prefgate.judges.runner import judge_pairs, judgments_frame

KEY_ENV = "PREFGATE_FAULT_PROBE_KEY"


class _Echo(BaseHTTPRequestHandler):
    """Echoes the Authorization header back, in the way the requested model names."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        auth = self.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        status, model = 200, request.get("model")
        if model == "html":
            data = "<html><body>" + "x" * 180 + f" {key} <pre>Authorization: {auth}</pre></body></html>"
        elif model == "e500":
            status, data = 500, "error " + "y" * 280 + f" {key} Authorization: {auth}"
        else:
            content = json.dumps({"verdict": "B", "rationale": f"The request carried Authorization: {auth} ({key})"})
            message = {"role": "assistant", "content": content}
            data = json.dumps({"choices": [{"message": message, "finish_reason": "stop"}]})
        body = data.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def base_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _leaks(key: str, blob: bytes) -> bool:
    """Whether any 12-character piece of the key appears (a truncated echo is a leak too)."""
    raw = key.encode()
    return any(raw[i : i + 12] in blob for i in range(len(raw) - 11))


def _judge(base_url: str, model: str) -> OpenAIJudge:
    config = HttpJudgeConfig(
        base_url=base_url, model=model, api_key_env=KEY_ENV, mode="json",
        max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02, trust_env=False,
    )  # fmt: skip
    return OpenAIJudge(config, load_constitution())


def test_an_echoed_api_key_is_stored_nowhere(base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-probe-" + secrets.token_hex(24)
    monkeypatch.setenv(KEY_ENV, key)
    judges = [_judge(base_url, model) for model in ("html", "echo", "e500")]
    pairs = pl.DataFrame(
        {
            "pair_id": ["p1", "p2"],
            "prompt": ["What is 2+2?", "Name a prime."],
            "response_a": ["4", "7"],
            "response_b": ["5", "8"],
            "category": ["math", "math"],
        }
    )
    with JudgmentCache(tmp_path / "home" / "judge_cache.sqlite") as cache:
        out = judge_pairs(pairs, judges, cache, max_retries=1, batch_size=2)
    statuses = {(j.judge_id.split(":")[1], j.status) for j in out}
    assert statuses == {("html", "failed"), ("echo", "ok"), ("e500", "failed")}  # the probe really ran
    returned = "".join(j.to_json() + repr(j) for j in out) + judgments_frame(out).write_csv()
    assert not _leaks(key, returned.encode())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "judge_cache.sqlite" for p in files)
    for path in files:
        with open(path, "rb") as fh:
            assert not _leaks(key, fh.read()), f"the API key is in {path.relative_to(tmp_path)}"
