"""OpenAIJudge against a REAL llama.cpp server (llama-cpp-python's OpenAI-compatible server, SmolLM2-135M).

Happy path (logprobs, both orders, durable cache, zero calls on a rerun), the PII guard for a judge marked
non-local, and faults the real server produces: it dies mid-run (then comes back), it is slower than the
timeout, and it rejects a request (HTTP 400: the prompt exceeds its context). Run with ``pytest -m integration
-s`` to see the position-consistency figures it prints.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import time
from pathlib import Path

import polars as pl
import pytest

from prefgate.home import PROJECT_ROOT
from prefgate.judges.base import ORDERS, Judgment
from prefgate.judges.cache import JudgmentCache
from prefgate.judges.command import CountingJudge
from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge
from prefgate.judges.runner import consistency_summary, judge_pairs, judgments_frame
from tests.integration.conftest import LlamaServer, start_llama_server

pytestmark = pytest.mark.integration

PAIRS_FILE = PROJECT_ROOT / "data" / "sample" / "landing" / "pairs" / "pandalm-pairs.parquet"
N_PAIRS = 10


def sample_pairs(n: int, skip: int = 0) -> pl.DataFrame:
    """``n`` PandaLM pairs in the runner's shape: the shortest ones (by characters) after ``skip``, so a
    single-thread CPU server judges them in about a second per view."""
    raw = pl.read_parquet(PAIRS_FILE)
    prompt = (
        pl.when(pl.col("input").str.strip_chars() != "")
        .then(pl.col("instruction") + "\n\n" + pl.col("input"))
        .otherwise(pl.col("instruction"))
    )
    frame = raw.select(
        pl.format("pandalm-{}", pl.col("idx")).alias("pair_id"),
        prompt.alias("prompt"),
        pl.col("response1").alias("response_a"),
        pl.col("response2").alias("response_b"),
        pl.col("motivation_app").alias("category"),
    )
    size = pl.sum_horizontal(pl.col(c).str.len_chars() for c in ("prompt", "response_a", "response_b"))
    return frame.sort(size, "pair_id").slice(skip, n)


def make_judge(base_url: str, *, local: bool = True, **overrides: object) -> OpenAIJudge:
    """The llama.cpp judge used here: logprobs first; a verdict token anywhere in the top 10 counts (SmolLM2
    spreads its first-token mass), and a short plain-text fallback."""
    settings: dict[str, object] = dict(
        base_url=base_url, model="smollm2", backend="llamacpp", local=local, concurrency=2, timeout_s=120.0,
        max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.2, min_verdict_mass=0.0, fallback="text",
        max_tokens=8, trust_env=False,
    )  # fmt: skip
    settings.update(overrides)
    return OpenAIJudge(HttpJudgeConfig(**settings))  # type: ignore[arg-type]


def cache_rows(path: Path) -> dict[tuple[str, str, str], tuple[object, ...]]:
    """Every cache row (all columns, ``updated_at`` included) by key, read with plain SQLite."""
    with sqlite3.connect(path) as con:
        cur = con.execute("SELECT * FROM judgments")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    ji, pi, oi = names.index("judge_id"), names.index("pair_id"), names.index("pair_order")
    return {(r[ji], r[pi], r[oi]): tuple(r) for r in rows}


def assert_failed_not_coerced(j: Judgment) -> None:
    assert j.status == "failed"
    assert j.verdict is None and j.p_first is None and j.canonical_choice() is None
    assert j.error


# ---------------------------------------------------------------------------------------------- happy path


def test_logprobs_both_orders_cache_and_rerun(llama_server: LlamaServer, tmp_path: Path) -> None:
    pairs = sample_pairs(N_PAIRS)
    judge = CountingJudge(make_judge(llama_server.base_url))
    cache_file = tmp_path / "cache.sqlite"
    t0 = time.perf_counter()
    with JudgmentCache(cache_file) as cache:
        out = judge_pairs(pairs, [judge], cache, max_retries=2, batch_size=8)
        wall = time.perf_counter() - t0
        assert len(cache) == 2 * N_PAIRS
    assert [(j.pair_id, j.order) for j in out] == [(p, o) for p in pairs["pair_id"] for o in ORDERS]
    assert judge.views >= 2 * N_PAIRS

    via_logprobs = [j for j in out if j.parse_status == "logprobs"]
    assert len(via_logprobs) >= N_PAIRS, [(j.parse_status, j.error) for j in out]  # the logprobs path is the norm
    for j in out:
        assert j.pii_action == "local"
        assert j.latency_s > 0 and j.attempts >= 1
        assert j.prompt_tokens and j.prompt_tokens > 100  # the judge prompt, counted by the server
        if j.status == "failed":
            assert_failed_not_coerced(j)
    for j in via_logprobs:
        assert j.status == "ok" and j.verdict in ("first", "second", "tie")
        assert j.p_first is not None and math.isfinite(j.p_first) and 0.0 <= j.p_first <= 1.0
        assert j.completion_tokens == 1 and j.attempts == 1
        raw = json.loads(j.raw_output)
        assert len(raw["top_logprobs"]) == 10 and all(lp <= 0.0 for _, lp in raw["top_logprobs"])
        assert j.extra == {"mode": "logprobs"}

    frame = judgments_frame(out)
    summary = consistency_summary(frame).row(0, named=True)
    print(
        f"\n[llama.cpp SmolLM2-135M, {N_PAIRS} shortest PandaLM pairs] position consistency "
        f"{summary['consistency_rate']} ({summary['n_consistent']}/{summary['n_complete']}), first-shown win rate "
        f"{summary['first_win_rate']:.2f}, logprobs {len(via_logprobs)}/{len(out)}, mean P(first) "
        f"{statistics.mean(j.p_first for j in out if j.p_first is not None):.3f}, "
        f"latency p50 {frame['latency_s'].median():.2f}s, wall {wall:.1f}s, tokens {frame['tokens'].sum()}"
    )

    # a second run finds every ok key in the cache and makes no request; failed keys (if any) are retried
    not_ok = sum(j.status != "ok" for j in out)
    again = CountingJudge(make_judge(llama_server.base_url))
    with JudgmentCache(cache_file) as cache:
        second = judge_pairs(pairs, [again], cache)
    assert again.views == 0 if not_ok == 0 else again.views >= not_ok
    for j1, j2 in zip(out, second, strict=True):
        if j1.status == "ok":
            assert j2.to_json() == j1.to_json()  # read back from the cache, unchanged


def test_pii_redacted_for_a_remote_judge_and_skipped_under_skip(llama_server: LlamaServer, tmp_path: Path) -> None:
    pairs = pl.DataFrame(
        {
            "pair_id": ["pii-1"],
            "prompt": ["Write a one-line reply to jane.doe@example.com saying the meeting moved to 3pm."],
            "response_a": ["Hi Jane, the meeting is now at 3pm."],
            "response_b": ["Meeting moved."],
            "category": [None],
        }
    )
    remote = CountingJudge(make_judge(llama_server.base_url, local=False))  # as if the server were elsewhere
    with JudgmentCache(tmp_path / "redact.sqlite") as cache:
        out = judge_pairs(pairs, [remote], cache, pii_policy="redact")
    assert remote.views == 2
    for j in out:
        assert j.pii_action == "redacted" and j.extra.get("pii_kinds") == ["email"]
        assert j.status == "ok", j.error  # the redacted text was judged

    skipping = CountingJudge(make_judge(llama_server.base_url, local=False))
    with JudgmentCache(tmp_path / "skip.sqlite") as cache:
        out = judge_pairs(pairs, [skipping], cache, pii_policy="skip")
    assert skipping.views == 0  # nothing was sent
    for j in out:
        assert j.parse_status == "skipped_pii" and j.pii_action == "skipped"
        assert_failed_not_coerced(j)


# --------------------------------------------------------------------------------------------------- faults


def test_server_dies_mid_run_then_resume(tmp_path: Path) -> None:
    n = 6
    pairs = sample_pairs(n, skip=N_PAIRS)  # not the happy-path pairs: this server starts cold
    server = start_llama_server(tmp_path / "logs")
    cache_file = tmp_path / "cache.sqlite"
    kill_after = 4

    def kill_server(done: int, total: int) -> None:
        if done >= kill_after:
            server.kill()  # SIGKILL the process group, mid-run: requests in flight are cut off

    try:
        judge = CountingJudge(make_judge(server.base_url, concurrency=1))
        with JudgmentCache(cache_file) as cache:
            first = judge_pairs(pairs, [judge], cache, max_retries=1, batch_size=2, progress=kill_server)
        assert server.proc is not None and server.proc.poll() is not None  # it really died
        done = [j for j in first if j.status == "ok"]
        failed = [j for j in first if j.status == "failed"]
        assert len(done) >= kill_after and failed, [(j.parse_status, j.error) for j in first]
        for j in failed:
            assert_failed_not_coerced(j)
            assert j.parse_status in ("http_error", "timeout"), (j.parse_status, j.error)
            assert j.attempts >= 3  # every HTTP attempt of the request, over every judging round
        print(f"\n[server killed] ok {len(done)}, failed {len(failed)}: {failed[0].parse_status}: {failed[0].error}")
        before = cache_rows(cache_file)

        server.start()  # same port: the judge's configuration is unchanged
        again = CountingJudge(make_judge(server.base_url, concurrency=1))
        with JudgmentCache(cache_file) as cache:
            second = judge_pairs(pairs, [again], cache, max_retries=1, batch_size=2)
        after = cache_rows(cache_file)
    finally:
        server.stop()
    failed_keys = {(j.judge_id, j.pair_id, j.order) for j in failed}
    assert again.views >= len(failed_keys) and again.calls >= 1
    assert {(j.judge_id, j.pair_id, j.order) for j in second if j.status == "ok"} >= {
        (j.judge_id, j.pair_id, j.order) for j in done
    }
    by_key = {(j.judge_id, j.pair_id, j.order): j for j in second}
    for key in failed_keys:  # the keys the outage failed were judged again and reached the model this time
        assert by_key[key].parse_status not in ("http_error", "timeout", "error"), by_key[key].error
    assert sum(by_key[k].status == "ok" for k in failed_keys) >= 1
    assert len(after) == 2 * n
    for j in done:  # finished keys untouched: same row, same updated_at
        key = (j.judge_id, j.pair_id, j.order)
        assert after[key] == before[key]


def test_timeout_fails_after_max_attempts(llama_server: LlamaServer, tmp_path: Path) -> None:
    pairs = sample_pairs(1)
    judge = make_judge(llama_server.base_url, timeout_s=0.02, max_attempts=3)
    with JudgmentCache(tmp_path / "cache.sqlite") as cache:
        out = judge_pairs(pairs, [judge], cache, max_retries=0)  # one round: attempts are the HTTP attempts
        stored = cache.get_many([(judge.judge_id, pairs["pair_id"][0], o) for o in ORDERS])
    assert len(out) == 2 and len(stored) == 2
    for j in out:
        assert_failed_not_coerced(j)
        assert j.parse_status == "timeout" and j.attempts == 3, (j.parse_status, j.error)
        assert "timed out after 0.02s" in (j.error or "") and "after 3 attempts" in (j.error or "")


def test_http_400_context_exceeded_is_a_failure(llama_server_small_ctx: LlamaServer, tmp_path: Path) -> None:
    pairs = sample_pairs(2)
    judge = CountingJudge(make_judge(llama_server_small_ctx.base_url, fallback="json"))
    with JudgmentCache(tmp_path / "cache.sqlite") as cache:
        out = judge_pairs(pairs, [judge], cache, max_retries=0)
        assert cache.counts() == {(judge.judge_id, "failed"): 4}
    for j in out:
        assert_failed_not_coerced(j)
        assert j.parse_status == "http_error"
        assert j.error is not None and j.error.startswith("HTTP 400") and "context" in j.error
        assert j.extra.get("http_status") == 400 and j.extra.get("logprobs_status") == 400
        assert j.attempts == 3  # logprobs, then JSON mode, then plain text: all rejected, none retried
