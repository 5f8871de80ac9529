"""Judge throughput against a server of known latency, the cache-hit path, and the judge's own overhead per call.

    python -m benchmarks.bench_judges [--latency 0.1] [--concurrency 1 4 16 64] [--waves 10]
                                      [--cache-keys 100000] [--batch-size 64] [--markdown] [--json]

* **Server of known latency** (:func:`serve`): a small HTTP/1.1 server on asyncio streams (keep-alive, any number
  of connections), in its own process, so its CPU is not the client's. ``POST .../chat/completions`` sleeps
  ``L`` seconds (``asyncio.sleep``) and answers a fixed, valid OpenAI chat-completions body with ``logprobs``
  (one token, ten alternatives, usage), the shape llama.cpp / vLLM / OpenAI return. ``GET /stats`` returns how
  many completions it served and the mean and max time from the end of a request's headers to its answer
  (``L`` plus the sleep's overshoot and the server's own work), so client-side time can be separated from it.
* **Throughput** (:func:`throughput`): ``prefgate.judges.runner.judge_pairs`` with an ``OpenAIJudge`` of
  ``concurrency = c``, a fresh SQLite cache, ``c x waves`` keys (``c x waves / 2`` synthetic pairs of realistic
  length, both orders), the runner's ``batch_size`` (default 64, the policy default), the PII guard on (the judge
  is marked remote, policy ``redact``). judgments/s = keys / wall; ideal = ``c / L``; efficiency = measured /
  ideal (target >= 0.8 up to 64 in flight).
* **Cache-hit path** (:func:`cache_hits`): a cache pre-filled with ``--cache-keys`` ok judgments (logprobs-shaped
  records), then a full rerun of ``judge_pairs`` over the same pairs: every key is served from the cache and the
  judge gets no call (checked). labels/s = keys / wall of ``judge_pairs`` (target >= 50,000 on 100k+ keys).
* **Overhead per call** (:func:`overhead`): at concurrency 1, end-to-end wall per call minus ``L`` (target < 1 ms),
  split into the server's side (handler time minus ``L``: sleep overshoot and parsing), a bare ``httpx`` client
  posting the same body over one keep-alive connection (the HTTP stack), and what the judge and runner add on
  top of that; plus the client process's CPU time per call (``time.process_time``), which does not include the
  server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from prefgate.judges.base import ORDERS, Judgment
from prefgate.judges.cache import JudgmentCache
from prefgate.judges.command import CountingJudge
from prefgate.judges.http import HttpJudgeConfig, OpenAIJudge
from prefgate.judges.runner import judge_pairs

DEFAULT_LATENCY_S = 0.1
DEFAULT_CONCURRENCY = (1, 4, 16, 64)
TARGET_EFFICIENCY = 0.8
TARGET_CACHE_LABELS_S = 50_000.0
TARGET_OVERHEAD_MS = 1.0

_TOP = [("A", -0.21), ("B", -1.74), ("C", -4.55), (" A", -5.9), (" B", -6.1), ("Response", -6.88), ("Tie", -7.26),
        ("\n\n", -8.01), ("**", -8.44), ("The", -9.12)]  # fmt: skip
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1732700901,
    "model": "bench-model",
    "choices": [
        {
            "index": 0,
            "finish_reason": "length",
            "message": {"role": "assistant", "content": "A"},
            "logprobs": {
                "content": [
                    {
                        "token": "A",
                        "logprob": -0.21,
                        "bytes": [65],
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in _TOP],
                    }
                ]
            },
        }
    ],
    "usage": {"prompt_tokens": 412, "completion_tokens": 1, "total_tokens": 413},
}


# ------------------------------------------------------------------------------------------------- the server


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _serve(sock: socket.socket, latency_s: float) -> None:
    completion = _response(json.dumps(COMPLETION).encode())
    handler_s: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                t0 = time.perf_counter()
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if path.endswith(b"/chat/completions"):
                    await asyncio.sleep(latency_s)
                    writer.write(completion)
                    handler_s.append(time.perf_counter() - t0)
                elif path.startswith(b"/stats"):
                    n = len(handler_s)
                    stats = {
                        "n": n,
                        "mean_s": statistics.fmean(handler_s) if n else None,
                        "max_s": max(handler_s) if n else None,
                    }
                    if path.endswith(b"reset"):
                        handler_s.clear()
                    writer.write(_response(json.dumps(stats).encode()))
                else:
                    writer.write(_response(b'{"error": "not found"}', "404 Not Found"))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=sock, backlog=1024)
    async with server:
        await server.serve_forever()


def serve(conn: Any, latency_s: float) -> None:
    """Bind a free loopback port, send it through ``conn``, and serve until the process is terminated."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    conn.send(sock.getsockname()[1])
    conn.close()
    asyncio.run(_serve(sock, latency_s))


@contextmanager
def latency_server(latency_s: float) -> Iterator[str]:
    """A server of known latency in a child process (spawned: nothing of this process is inherited); yields
    its base URL (``.../v1``)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=serve, args=(child, latency_s), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(60):
        proc.kill()
        raise RuntimeError("the latency server did not start")
    url = f"http://127.0.0.1:{parent.recv()}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1.0, trust_env=False)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or not proc.is_alive():
                    raise RuntimeError("the latency server did not start") from None
                time.sleep(0.05)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def server_stats(base_url: str, reset: bool = False) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    return httpx.get(f"{root}/stats{'/reset' if reset else ''}", timeout=5.0, trust_env=False).json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------------- inputs

_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are from at or an have not which but one all were "
    "when we there can more if some out into time would about them these so only other new"
)
_WORDS = tuple(_VOCABULARY.split())


def synthetic_pairs(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` pairs of realistic length (prompt ~40 words, responses ~80-120 words), no PII, distinct ids."""
    import random

    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(k))

    prompts = [text(40) for _ in range(min(n, 512))]  # texts repeat: generation is not what is measured
    ra = [text(80) for _ in range(min(n, 512))]
    rb = [text(120) for _ in range(min(n, 512))]
    m = len(prompts)
    return pl.DataFrame(
        {
            "pair_id": [f"{i:016x}" for i in range(n)],
            "prompt": [prompts[i % m] for i in range(n)],
            "response_a": [ra[i % m] for i in range(n)],
            "response_b": [rb[(i * 7) % m] for i in range(n)],
            "category": ["general"] * n,
        }
    )


def make_judge(base_url: str, concurrency: int, timeout_s: float = 30.0) -> OpenAIJudge:
    """A remote-looking judge (the PII guard applies) with the default verdict path (logprobs)."""
    return OpenAIJudge(
        HttpJudgeConfig(
            base_url=base_url, model="bench-model", backend="bench", local=False, concurrency=concurrency,
            timeout_s=timeout_s, max_attempts=1, trust_env=False,
        )
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- measurements


@dataclass
class Throughput:
    concurrency: int
    keys: int
    wall_s: float
    judgments_per_s: float
    ideal_per_s: float
    efficiency: float
    failed: int
    client_cpu_ms_per_call: float
    mean_latency_ms: float


def throughput(
    base_url: str, concurrency: int, latency_s: float, waves: int = 10, batch_size: int = 64, seed: int = 0
) -> Throughput:
    """judge_pairs over ``concurrency x waves`` keys (rounded up to whole pairs) with a fresh cache."""
    n_pairs = max(1, (concurrency * waves + 1) // 2)
    pairs = synthetic_pairs(n_pairs, seed)
    judge = CountingJudge(make_judge(base_url, concurrency))
    with tempfile.TemporaryDirectory() as tmp, JudgmentCache(Path(tmp) / "cache.sqlite") as cache:
        cpu0, t0 = time.process_time(), time.perf_counter()
        out = judge_pairs(pairs, [judge], cache, pii_policy="redact", max_retries=0, batch_size=batch_size)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    keys = len(out)
    ideal = concurrency / latency_s
    rate = keys / wall
    return Throughput(
        concurrency=concurrency,
        keys=keys,
        wall_s=wall,
        judgments_per_s=rate,
        ideal_per_s=ideal,
        efficiency=rate / ideal,
        failed=sum(j.status != "ok" for j in out),
        client_cpu_ms_per_call=1000 * cpu / max(1, judge.views),
        mean_latency_ms=1000 * statistics.fmean(j.latency_s for j in out),
    )


@dataclass
class CacheHits:
    keys: int
    fill_s: float
    wall_s: float
    labels_per_s: float
    judge_calls: int
    hit_rate: float


def _cached_judgment(judge_id: str, pair_id: str, order: str, template_hash: str, constitution_hash: str) -> Judgment:
    raw = json.dumps({"content": "A", "top_logprobs": [list(t) for t in _TOP]}, separators=(",", ":"))
    return Judgment(
        judge_id=judge_id, pair_id=pair_id, order=order, status="ok", parse_status="logprobs",  # type: ignore[arg-type]
        verdict="first", p_first=0.81, raw_output=raw, prompt_tokens=412, completion_tokens=1, latency_s=0.1,
        pii_action="none", constitution_hash=constitution_hash, template_hash=template_hash,
        extra={"mode": "logprobs"},
    )  # fmt: skip


def cache_hits(n_keys: int = 100_000, seed: int = 0) -> CacheHits:
    """A full rerun of judge_pairs with every key already ok in the cache (no server: any call would fail)."""
    pairs = synthetic_pairs((n_keys + 1) // 2, seed)
    judge = CountingJudge(make_judge("http://127.0.0.1:9/v1", 8, timeout_s=1.0))
    with tempfile.TemporaryDirectory() as tmp, JudgmentCache(Path(tmp) / "cache.sqlite") as cache:
        t0 = time.perf_counter()
        ids = pairs["pair_id"].to_list()
        for start in range(0, len(ids), 10_000):
            cache.put_many(
                _cached_judgment(judge.judge_id, pid, o, judge.template_hash, judge.constitution_hash)
                for pid in ids[start : start + 10_000]
                for o in ORDERS
            )
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = judge_pairs(pairs, [judge], cache, pii_policy="redact")
        wall = time.perf_counter() - t0
    keys = len(out)
    return CacheHits(
        keys=keys,
        fill_s=fill,
        wall_s=wall,
        labels_per_s=keys / wall,
        judge_calls=judge.calls,
        hit_rate=sum(j.status == "ok" for j in out) / keys,
    )


@dataclass
class Overhead:
    calls: int
    latency_s: float
    e2e_ms: float  # wall per call through judge_pairs at concurrency 1
    overhead_ms: float  # e2e - L
    server_ms: float  # server handler time - L (sleep overshoot + parsing)
    httpx_ms: float  # bare httpx round trip - server handler time
    judge_ms: float  # e2e - bare httpx round trip (judge + runner + cache on top of the HTTP stack)
    client_cpu_ms: float  # client process CPU per call through judge_pairs
    httpx_cpu_ms: float  # client process CPU per bare httpx call


async def _bare_httpx(base_url: str, body: dict[str, Any], n: int) -> tuple[float, float]:
    async with httpx.AsyncClient(trust_env=False) as client:
        await client.post(f"{base_url}/chat/completions", json=body)  # connect outside the clock
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            r = await client.post(f"{base_url}/chat/completions", json=body)
            r.json()
        return time.perf_counter() - t0, time.process_time() - cpu0


def overhead(base_url: str, latency_s: float, calls: int = 50, batch_size: int = 64) -> Overhead:
    """Per-call overhead at concurrency 1, decomposed (see the module docstring)."""
    from prefgate.judges.base import PairView

    pairs = synthetic_pairs((calls + 1) // 2, seed=1)
    judge = make_judge(base_url, 1)
    row = pairs.row(0, named=True)
    body = judge._body(PairView.of("x", row["prompt"], row["response_a"], row["response_b"], "ab"), "logprobs")
    server_stats(base_url, reset=True)
    bare_wall, bare_cpu = asyncio.run(_bare_httpx(base_url, body, calls))
    server_bare = server_stats(base_url, reset=True)
    t = throughput(base_url, 1, latency_s, waves=calls, batch_size=batch_size, seed=1)
    server_judge = server_stats(base_url, reset=True)
    handler_s = statistics.fmean([server_bare["mean_s"], server_judge["mean_s"]])
    e2e = t.wall_s / t.keys
    bare = bare_wall / calls
    return Overhead(
        calls=t.keys,
        latency_s=latency_s,
        e2e_ms=1000 * e2e,
        overhead_ms=1000 * (e2e - latency_s),
        server_ms=1000 * (handler_s - latency_s),
        httpx_ms=1000 * (bare - server_bare["mean_s"]),
        judge_ms=1000 * (e2e - bare),
        client_cpu_ms=t.client_cpu_ms_per_call,
        httpx_cpu_ms=1000 * bare_cpu / calls,
    )


@dataclass
class ClientCosts:
    """Client-side pieces, measured without a server (CPU-bound, microseconds unless named _ms)."""

    views: int
    judge_own_us: float  # OpenAIJudge._judge_one per view with an in-memory HTTP answer (body, encode, parse, record)
    pii_guard_us: float  # runner PII guard (redact) per view: prompt and both responses scanned
    cache_write_us: float  # JudgmentCache.put_many per judgment, in batches of 64
    async_client_ms: float  # one httpx.AsyncClient() (the judge makes one per judge() call, i.e. per runner batch)
    sniffio_probe_us: float  # one httpcore current_async_library() call (a failed `import sniffio` without it)
    sniffio_installed: bool


class _MemoryClient:
    """Stands in for httpx.AsyncClient in :func:`client_costs`: encodes the body as httpx would, answers from
    memory."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")

    async def post(self, url: str, *, json: Any, headers: Any, timeout: float) -> httpx.Response:
        _json_dumps(json).encode()
        return httpx.Response(200, content=self.payload, headers={"content-type": "application/json"},
                              request=self.request)  # fmt: skip


_json_dumps = json.dumps


def client_costs(views: int = 2000) -> ClientCosts:
    """What the client spends per call outside the network (see :class:`ClientCosts`)."""
    from httpcore._synchronization import current_async_library

    from prefgate.judges.base import PairView
    from prefgate.judges.runner import _guarded

    pairs = synthetic_pairs(views // 2 + 1, seed=2)
    vs = [
        PairView.of(r["pair_id"], r["prompt"], r["response_a"], r["response_b"], o, r["category"])
        for r in pairs.iter_rows(named=True)
        for o in ORDERS
    ][:views]
    judge = make_judge("http://127.0.0.1:9/v1", 1)
    client = _MemoryClient(json.dumps(COMPLETION).encode())

    async def own() -> list[Judgment]:
        sem = asyncio.Semaphore(1)
        return [await judge._judge_one(client, sem, v) for v in vs]  # type: ignore[arg-type]

    t0 = time.process_time()
    judged = asyncio.run(own())
    own_s = time.process_time() - t0
    assert all(j.status == "ok" and j.parse_status == "logprobs" for j in judged), judged[0]
    t0 = time.process_time()
    for v in vs:
        _guarded(v, "redact")
    guard_s = time.process_time() - t0
    with tempfile.TemporaryDirectory() as tmp, JudgmentCache(Path(tmp) / "c.sqlite") as cache:
        t0 = time.process_time()
        for start in range(0, len(judged), 64):
            cache.put_many(judged[start : start + 64])
        cache_s = time.process_time() - t0
    t0 = time.perf_counter()
    for _ in range(5):
        httpx.AsyncClient(trust_env=False)
    client_s = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    for _ in range(500):
        current_async_library()
    probe_s = (time.perf_counter() - t0) / 500
    return ClientCosts(
        views=len(vs),
        judge_own_us=1e6 * own_s / len(vs),
        pii_guard_us=1e6 * guard_s / len(vs),
        cache_write_us=1e6 * cache_s / len(vs),
        async_client_ms=1000 * client_s,
        sniffio_probe_us=1e6 * probe_s,
        sniffio_installed=_sniffio_installed(),
    )


def _sniffio_installed() -> bool:
    """Whether the real sniffio package is importable (the shim does not count)."""
    import importlib.util

    shim = sys.modules.get("sniffio")
    if shim is not None and getattr(shim, "__spec__", None) is None:
        return False
    try:
        return importlib.util.find_spec("sniffio") is not None
    except ValueError:
        return False


def install_sniffio_shim() -> bool:
    """Make ``import sniffio`` succeed in this process (a stand-in answering "asyncio") when sniffio is not
    installed, as if it were: httpcore then stops paying a failed import per lock/event (encode/httpcore#1103).
    Returns whether the shim was installed."""
    import types

    if "sniffio" in sys.modules or _sniffio_installed():
        return False
    shim = types.ModuleType("sniffio")
    shim.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = shim
    return True


# ------------------------------------------------------------------------------------------------------- run


def run(
    latency_s: float = DEFAULT_LATENCY_S,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    waves: int = 10,
    cache_keys: int = 100_000,
    overhead_calls: int = 50,
    batch_size: int = 64,
    sniffio_shim: bool = False,
    cost_views: int = 2000,
) -> dict[str, Any]:
    """Every measurement; a JSON-able dict."""
    shimmed = install_sniffio_shim() if sniffio_shim else False
    with latency_server(latency_s) as url:
        rows = [throughput(url, c, latency_s, waves=waves, batch_size=batch_size) for c in concurrency]
        over = overhead(url, latency_s, calls=overhead_calls, batch_size=batch_size)
    hits = cache_hits(cache_keys)
    costs = client_costs(cost_views)
    return {
        "latency_s": latency_s,
        "batch_size": batch_size,
        "sniffio_shim": shimmed,
        "client_costs": vars(costs),
        "throughput": [vars(r) for r in rows],
        "cache": vars(hits),
        "overhead": vars(over),
    }


def machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )  # fmt: skip
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (
        f"{os.cpu_count()} CPUs ({model}); {platform.system()} {platform.release()} {platform.machine()}; "
        f"Python {platform.python_version()}, httpx {httpx.__version__}, polars {pl.__version__}"
    )


def render(result: dict[str, Any], markdown: bool = False) -> str:
    """The tables (plain text, or markdown for benchmarks/README.md)."""
    lat = result["latency_s"]
    out: list[str] = []

    def table(header: list[str], rows: list[list[str]]) -> None:
        if markdown:
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
            out.extend("| " + " | ".join(r) + " |" for r in rows)
        else:
            widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
            out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
            out.extend("  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in rows)
        out.append("")

    ok = "met" if markdown else "ok"
    shim = "; sniffio shim ON (what-if, see --sniffio-shim)" if result.get("sniffio_shim") else ""
    out.append(f"Throughput: server latency L = {lat * 1000:.0f} ms, runner batch_size {result['batch_size']}, "
               f"PII guard on (remote judge, redact){shim}")  # fmt: skip
    out.append("")
    rows = []
    for r in result["throughput"]:
        verdict = ok if r["efficiency"] >= TARGET_EFFICIENCY else "MISSED"
        rows.append([
            str(r["concurrency"]), f"{r['keys']:,}", f"{r['wall_s']:.2f}", f"{r['judgments_per_s']:,.1f}",
            f"{r['ideal_per_s']:,.1f}", f"{r['efficiency']:.1%} ({verdict})", f"{r['mean_latency_ms']:.1f}",
            f"{r['client_cpu_ms_per_call']:.2f}", str(r["failed"]),
        ])  # fmt: skip
    table(["in flight", "keys", "wall s", "judgments/s", "ideal c/L", "efficiency (>= 80%)", "mean latency ms",
           "client CPU ms/call", "failed"], rows)  # fmt: skip
    c = result["cache"]
    verdict = ok if c["labels_per_s"] >= TARGET_CACHE_LABELS_S else "MISSED"
    out.append("Cache-hit path: full rerun, every key already ok in the cache")
    out.append("")
    table(
        ["keys", "rerun wall s", "labels/s (>= 50,000)", "hit rate", "judge calls", "cache fill s"],
        [[f"{c['keys']:,}", f"{c['wall_s']:.3f}", f"{c['labels_per_s']:,.0f} ({verdict})", f"{c['hit_rate']:.1%}",
          str(c["judge_calls"]), f"{c['fill_s']:.2f}"]],
    )  # fmt: skip
    o = result["overhead"]
    verdict = ok if o["overhead_ms"] < TARGET_OVERHEAD_MS else "MISSED"
    out.append(f"Overhead per call at concurrency 1 ({o['calls']} calls, L = {lat * 1000:.0f} ms)")
    out.append("")
    table(
        ["measure", "ms per call"],
        [
            ["end-to-end through judge_pairs", f"{o['e2e_ms']:.3f}"],
            [f"overhead = end-to-end - L (< {TARGET_OVERHEAD_MS:g} ms)", f"{o['overhead_ms']:.3f} ({verdict})"],
            ["  server side (handler - L: sleep overshoot, parsing)", f"{o['server_ms']:.3f}"],
            ["  HTTP stack (bare httpx round trip - handler)", f"{o['httpx_ms']:.3f}"],
            ["  judge + runner + cache on top of bare httpx", f"{o['judge_ms']:.3f}"],
            ["client CPU per call, judge_pairs", f"{o['client_cpu_ms']:.3f}"],
            ["client CPU per call, bare httpx", f"{o['httpx_cpu_ms']:.3f}"],
        ],
    )
    k = result["client_costs"]
    out.append(f"Client-side pieces without a network ({k['views']:,} views; CPU time)")
    out.append("")
    sniffio = "installed" if k["sniffio_installed"] else ("shimmed" if result["sniffio_shim"] else "not installed")
    table(
        ["piece", "cost"],
        [
            ["OpenAIJudge own code per view (body, encode, parse, record; HTTP answered from memory)",
             f"{k['judge_own_us']:.0f} us"],
            ["runner PII guard per view (redact; prompt + both responses)", f"{k['pii_guard_us']:.0f} us"],
            ["cache write per judgment (batches of 64)", f"{k['cache_write_us']:.0f} us"],
            ["httpx.AsyncClient() (one per judge() call = per runner batch)", f"{k['async_client_ms']:.1f} ms"],
            [f"httpcore current_async_library() (sniffio {sniffio})", f"{k['sniffio_probe_us']:.1f} us"],
        ],
    )  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_judges", description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY_S, help="server latency L in seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(DEFAULT_CONCURRENCY))
    parser.add_argument("--waves", type=int, default=10, help="keys per measurement = concurrency x waves")
    parser.add_argument("--cache-keys", type=int, default=100_000)
    parser.add_argument("--overhead-calls", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="runner batch_size (policy default 64)")
    parser.add_argument(
        "--sniffio-shim", action="store_true",
        help="what-if: make `import sniffio` succeed in this process when it is not installed (httpcore#1103)",
    )  # fmt: skip
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the raw measurements as JSON too")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = run(
        args.latency, args.concurrency, args.waves, args.cache_keys, args.overhead_calls, args.batch_size,
        sniffio_shim=args.sniffio_shim,
    )  # fmt: skip
    print(f"{started:%Y-%m-%d %H:%M:%S} UTC; {machine()}\n")
    print(render(result, markdown=args.markdown))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
