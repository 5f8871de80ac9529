"""``benchmarks.bench_judges`` at tiny scale: the latency server answers what an OpenAI-compatible server would, and
every measurement runs and renders. The real run (L = 100 ms, up to 64 in flight, 100k cached keys) is by hand: see
benchmarks/README.md."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from benchmarks import bench_judges as bj
from prefgate.judges.parsing import parse_logprobs


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return bj.run(
        latency_s=0.02, concurrency=(1, 4), waves=2, cache_keys=2_000, overhead_calls=4, batch_size=8, cost_views=50
    )


def test_latency_server_answers_a_chat_completion_after_its_latency() -> None:
    with bj.latency_server(0.05) as url:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}
        r = httpx.post(f"{url}/chat/completions", json=body, timeout=5.0, trust_env=False)
        stats = bj.server_stats(url)
    assert r.status_code == 200
    assert r.elapsed.total_seconds() >= 0.05
    parsed = parse_logprobs(r.json())
    assert parsed.ok and parsed.verdict == "first" and parsed.p_first is not None and 0.5 < parsed.p_first < 1
    assert stats["n"] == 1 and 0.05 <= stats["mean_s"] < 0.5


def test_measurements_at_tiny_scale(result: dict[str, Any]) -> None:
    rows = result["throughput"]
    assert [r["concurrency"] for r in rows] == [1, 4]
    for r in rows:
        assert r["failed"] == 0 and r["keys"] >= 2 * r["concurrency"]
        assert _positive(r["judgments_per_s"]) and r["ideal_per_s"] == pytest.approx(r["concurrency"] / 0.02)
        assert 0 < r["efficiency"] <= 1.05  # never faster than c / L
        assert r["mean_latency_ms"] >= 20
    cache = result["cache"]
    assert cache["keys"] == 2_000 and cache["judge_calls"] == 0 and cache["hit_rate"] == 1.0
    assert _positive(cache["labels_per_s"])
    over = result["overhead"]
    assert over["e2e_ms"] >= 20 and over["overhead_ms"] == pytest.approx(over["e2e_ms"] - 20)
    costs = result["client_costs"]
    assert costs["views"] == 50 and all(
        _positive(costs[k]) for k in ("judge_own_us", "pii_guard_us", "cache_write_us", "async_client_ms")
    )


def test_render(result: dict[str, Any]) -> None:
    text = bj.render(result)
    assert "judgments/s" in text and "labels/s" in text and "end-to-end - L" in text
    md = bj.render(result, markdown=True)
    assert md.count("|---|") == 4  # four tables
