"""The API key never reaches a stored or returned judgment, even when the endpoint echoes it back (issue 11, item 5).

A real HTTP server on 127.0.0.1 echoes the request's ``Authorization`` header in an HTML 200 body, in a valid chat
completion's answer, and in a 500 body; the judge runs through the real runner into a real SQLite cache, and the
key's bytes are looked for in every returned field and in the cache files.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest

from prefgate.judges.base import Judgment, PairView
from prefgate.judges.cache import JudgmentCache
from prefgate.judges.constitution import load_constitution
from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge
from prefgate.judges.runner import judge_pairs, judgments_frame
from prefgate.judges.secrets import (
    MASK,
    known_secrets,
    register_secret,
    scrub_judgment,
    scrub_secrets,
)
from tests.echo_server import EchoServer, dir_bytes, leaks

KEY_ENV = "PREFGATE_TEST_SECRET_JUDGE_KEY"
PAIRS = pl.DataFrame(
    {
        "pair_id": ["p1"],
        "prompt": ["How do I kill a Python process?"],
        "response_a": ["Use `kill <pid>`."],
        "response_b": ["I can't help with that."],
        "category": ["coding"],
    }
)


# ------------------------------------------------------------------------------------------- pure function


def test_scrubs_the_exact_secret_header_echoes_bearer_and_key_shapes() -> None:
    key = "prefgate-no-known-shape-4f1c"
    cases = {
        f"Incorrect API key provided: {key}.": f"Incorrect API key provided: {MASK}.",
        "<pre>Authorization: Bearer abcdef123456</pre>": f"<pre>Authorization: Bearer {MASK}</pre>",
        '{"authorization": "Basic dXNlcjpwYXNz"}': f'{{"authorization": "Basic {MASK}"}}',
        "{'Proxy-Authorization': 'tok'}": f"{{'Proxy-Authorization': '{MASK}'}}",
        "X-Api-Key: abc api_key=xyz": f"X-Api-Key: {MASK} api_key={MASK}",
        "sent bearer eyJhbGciOiJIUzI1NiJ9.e30.sig ok": f"sent bearer {MASK} ok",
        "key sk-proj-AbCdEfGhIjKlMnOpQrSt done": f"key sk-{MASK} done",
        "anthropic sk-ant-api03-abcdefghijklmnop": f"anthropic sk-{MASK}",
        "hf hf_AbCdEfGh1jKlMnOpQrStUv": f"hf hf_{MASK}",
        "google AIzaSyA1234567890abcdefghijklmnopqrstuv": f"google AIza{MASK}",
    }
    for text, want in cases.items():
        assert scrub_secrets(text, [key]) == want
        assert scrub_secrets(want, [key]) == want  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of bad news",  # prose: no credential-shaped token
        "Bearer token missing",
        "use sk-learn for that",  # too short to be a key
        "hf_hub_download_to_local_dir",  # hf_ without a digit
        "api_key_env=OPENAI_API_KEY",  # the variable's name, not a value
        '{"content":"A","top_logprobs":[["A",-0.04],["B",-3.3]]}',
        "Response A is better: it answers the question.",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub_secrets(text, ["unrelated-secret-value"]) == text


def test_longest_secret_first_and_empty_ignored() -> None:
    assert scrub_secrets("abc-123-long and abc-123", ["abc-123", "abc-123-long", ""]) == f"{MASK} and {MASK}"
    assert scrub_secrets("nothing here", [""]) == "nothing here"


def test_scrub_judgment_covers_every_free_text_field_and_copies_only_when_needed() -> None:
    key = "prefgate-judgment-secret-77aa"
    clean = Judgment("j", "p", "ab", "ok", "json", verdict="first", raw_output="A", extra={"mode": "json"})
    assert scrub_judgment(clean, [key]) is clean  # nothing to mask: no copy
    dirty = Judgment(
        "j", "p", "ab", "failed", "http_error", raw_output=f"raw {key}", rationale=f"why {key}",
        error=f"HTTP 500: {key}", extra={"logprobs_error": f"e {key}", "top_logprobs": [[key, -1.0]], "n": 1},
    )  # fmt: skip
    out = scrub_judgment(dirty, [key])
    assert key not in out.to_json() and key in dirty.to_json()  # a copy: the input is not changed
    assert (out.raw_output, out.rationale, out.error) == (f"raw {MASK}", f"why {MASK}", f"HTTP 500: {MASK}")
    assert out.extra == {"logprobs_error": f"e {MASK}", "top_logprobs": [[MASK, -1.0]], "n": 1}
    assert (out.judge_id, out.pair_id, out.order, out.status) == ("j", "p", "ab", "failed")


def test_registered_secrets_are_masked_by_the_cache_write_path(tmp_path: Path) -> None:
    key = f"prefgate-registered-{pysecrets.token_hex(12)}"
    register_secret(key)
    register_secret("")  # ignored
    assert key in known_secrets() and "" not in known_secrets()
    path = tmp_path / "c.sqlite"
    with JudgmentCache(path) as cache:  # written directly, bypassing judge and runner
        cache.put_many([Judgment("j", "p", "ab", "failed", "error", error=f"boom {key} Bearer abcdef123456")])
        stored = cache.get(("j", "p", "ab"))
    assert stored is not None and stored.error == f"boom {MASK} Bearer {MASK}"
    assert not leaks(key, dir_bytes(tmp_path))


class _Raising:
    """A judge (the Judge protocol) whose call raises with the key in the message."""

    local = False

    def __init__(self, key: str) -> None:
        self.judge_id = "raising:m:0:0"
        self.key = key

    async def judge(self, views: Sequence[PairView]) -> list[Judgment]:
        raise RuntimeError(f"upstream said: Authorization: Bearer {self.key}")


def test_the_runner_scrubs_judgments_of_any_judge(tmp_path: Path) -> None:
    key = f"prefgate-any-judge-{pysecrets.token_hex(12)}"
    register_secret(key)
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        out = judge_pairs(PAIRS, [_Raising(key)], cache, max_retries=0)
    assert [j.parse_status for j in out] == ["error", "error"]
    assert all(f"Authorization: Bearer {MASK}" in str(j.error) for j in out)
    assert not leaks(key, "".join(j.to_json() for j in out).encode())
    assert not leaks(key, dir_bytes(tmp_path))


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _judge(server: EchoServer, model: str, mode: str) -> OpenAIJudge:
    config = HttpJudgeConfig(
        base_url=server.base_url, model=model, api_key_env=KEY_ENV, mode=mode,  # type: ignore[arg-type]
        max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02, trust_env=False,
    )  # fmt: skip
    return OpenAIJudge(config, load_constitution())


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-" + pysecrets.token_hex(20),  # OpenAI-shaped
        "pgk." + pysecrets.token_hex(20),  # no known shape: only exact matching can catch it
    ],
)
def test_an_echoing_endpoint_never_gets_the_key_stored_or_returned(
    echo_server: EchoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    key: str,
) -> None:
    monkeypatch.setenv(KEY_ENV, key)
    judges = [
        _judge(echo_server, "html", "text"),
        _judge(echo_server, "echo-json", "json"),
        _judge(echo_server, "echo-text", "text"),
        _judge(echo_server, "e500", "text"),
    ]
    cache_dir = tmp_path / "cache"
    caplog.set_level(logging.DEBUG)
    cache = JudgmentCache(cache_dir / "judgments.sqlite")
    try:
        out = judge_pairs(PAIRS, judges, cache, max_retries=0)
    finally:
        cache.close()
    # the server did receive the key, and echoed it
    assert echo_server.seen_auth and set(echo_server.seen_auth) == {f"Bearer {key}"}
    by_model = {j.judge_id.split(":")[1]: j for j in out if j.order == "ab"}
    assert (by_model["html"].status, by_model["html"].parse_status) == ("failed", "http_error")
    assert "not JSON" in str(by_model["html"].error) and MASK in str(by_model["html"].error)
    assert (by_model["echo-json"].status, by_model["echo-json"].verdict) == ("ok", "first")
    assert MASK in str(by_model["echo-json"].rationale) and MASK in by_model["echo-json"].raw_output
    assert (by_model["echo-text"].status, by_model["echo-text"].verdict) == ("ok", "first")
    assert MASK in by_model["echo-text"].raw_output
    assert "HTTP 500" in str(by_model["e500"].error) and MASK in str(by_model["e500"].error)
    # nowhere in what came back ...
    returned = "".join(j.to_json() + repr(j) for j in out) + judgments_frame(out).write_csv()
    returned += "".join(repr(j) + repr(j.config) for j in judges)
    assert not leaks(key, returned.encode())
    assert not leaks(key, caplog.text.encode())
    # ... nor in any byte of the cache (database, WAL, shared memory), nor read back from it
    files = [p.name for p in cache_dir.iterdir()]
    assert "judgments.sqlite" in files
    assert not leaks(key, dir_bytes(cache_dir))
    with JudgmentCache(cache_dir / "judgments.sqlite") as reopened:
        stored = [reopened.get((j.judge_id, j.pair_id, j.order)) for j in out]
    assert all(s is not None for s in stored)
    assert not leaks(key, "".join(s.to_json() for s in stored if s is not None).encode())
