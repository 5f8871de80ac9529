"""Fault probe (issue 11, item 5): an endpoint that echoes the API key must not get it stored anywhere.

End to end at the library level: a real HTTP server on 127.0.0.1 echoes the request's ``Authorization`` header
(an HTML 200 body, a 200 chat completion whose answer quotes it, a 500 body; :class:`tests.echo_server.EchoServer`);
OpenAI-compatible judges run through the real runner into a real judgment cache under a temporary directory.
Then every byte of every file under that directory, and every returned judgment, is searched for the key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from prefgate.judges.cache import JudgmentCache
from prefgate.judges.constitution import load_constitution
from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge
from prefgate.judges.runner import judge_pairs, judgments_frame
from tests.echo_server import EchoServer, leaks

KEY_ENV = "PREFGATE_FAULT_PROBE_KEY"


@pytest.fixture
def server() -> Iterator[EchoServer]:
    echo = EchoServer()
    yield echo
    echo.close()


def _judge(base_url: str, model: str) -> OpenAIJudge:
    config = HttpJudgeConfig(
        base_url=base_url, model=model, api_key_env=KEY_ENV, mode="json",
        max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02, trust_env=False,
    )  # fmt: skip
    return OpenAIJudge(config, load_constitution())


def test_an_echoed_api_key_is_stored_nowhere(
    server: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-probe-" + secrets.token_hex(24)
    monkeypatch.setenv(KEY_ENV, key)
    judges = [_judge(server.base_url, model) for model in ("html", "echo-json", "e500")]
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
    assert statuses == {("html", "failed"), ("echo-json", "ok"), ("e500", "failed")}  # the probe really ran
    assert server.seen_auth and all(a == f"Bearer {key}" for a in server.seen_auth)  # the key was sent
    returned = "".join(j.to_json() + repr(j) for j in out) + judgments_frame(out).write_csv()
    assert not leaks(key, returned.encode())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "judge_cache.sqlite" for p in files)
    for path in files:
        with open(path, "rb") as fh:
            assert not leaks(key, fh.read()), f"the API key is in {path.relative_to(tmp_path)}"
