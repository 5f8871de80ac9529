"""Kill a REAL ``prefgate judge`` process mid-run (SIGKILL), rerun it, and check the cache: one row per key, every
key present, and the rerun judged only the keys the killed run had not finished.

The home is built the way the main job builds it, but only as far as the command needs: a PandaLM sample file
is landed and the ingest job runs in process (``response_pairs``); the judge is the registry's
``llamacpp-smollm2`` pointed at a real llama.cpp server with ``--base-url``.

Size: a single-thread CPU llama.cpp server needs about 3.5 s per key with the registry's judge (SmolLM2 rarely
puts half its first-token mass on A/B/C, so most keys take the logprobs request plus the JSON-mode fallback), so
the landed file holds the 36 shortest PandaLM pairs and ``--limit 12`` bounds the run to 24 keys (~1.5 min).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml

from prefgate.home import PROJECT_ROOT, Home
from tests.integration.conftest import LlamaServer

pytestmark = pytest.mark.integration

N_PAIRS = 12
N_KEYS = 2 * N_PAIRS
N_LANDED = 3 * N_PAIRS
KILL_AT_ROWS = 4  # SIGKILL once the cache holds at least this many rows (one committed batch; fewer than N_KEYS)
RUN_TIMEOUT_S = 420.0


def build_home(root: Path) -> Home:
    """A home whose warehouse holds ``response_pairs`` of the PandaLM sample (the ingest job, in process)."""
    from pipelines.definitions import build_definitions

    home = Home(root).ensure()
    dest = home.landing / "pairs" / "pandalm-pairs-short.parquet"  # matches the pandalm source's glob
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = pl.read_parquet(PROJECT_ROOT / "data" / "sample" / "landing" / "pairs" / "pandalm-pairs.parquet")
    size = pl.sum_horizontal(pl.col(c).str.len_chars() for c in ("instruction", "input", "response1", "response2"))
    raw.sort(size, "idx").head(N_LANDED).write_parquet(dest)
    result = (
        build_definitions(home)
        .resolve_job_def("ingest_job")
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    )
    assert result.success
    return home


def small_batch_policy(path: Path) -> Path:
    """The shipped policy with 4 labels per judge call and cache commit, so a kill lands between commits."""
    policy = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    policy["judges"]["batch_size"] = 4
    path.write_text(yaml.safe_dump(policy))
    return path


def judge_cmd(home: Home, base_url: str, policy: Path) -> list[str]:
    return [
        sys.executable, "-m", "prefgate.cli", "--home", str(home.root), "judge", "--judge", "llamacpp-smollm2",
        "--base-url", base_url, "--limit", str(N_PAIRS), "--policy", str(policy), "--no-progress", "--json",
    ]  # fmt: skip


def rows(cache: Path) -> list[tuple[object, ...]]:
    if not cache.exists():
        return []
    try:
        with sqlite3.connect(cache, timeout=5.0) as con:
            return con.execute("SELECT judge_id, pair_id, pair_order, status, updated_at FROM judgments").fetchall()
    except sqlite3.OperationalError:  # the writer has not created the table yet
        return []


def test_sigkill_mid_run_then_rerun_judges_only_the_rest(llama_server: LlamaServer, tmp_path: Path) -> None:
    home = build_home(tmp_path / "home")
    policy = small_batch_policy(tmp_path / "policy.yaml")
    cache = home.root / "judge_cache.sqlite"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "NO_PROXY": "127.0.0.1,localhost"}
    cmd = judge_cmd(home, llama_server.base_url, policy)

    # 1. a real process, SIGKILLed once some but not all rows are committed
    log = tmp_path / "killed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while len(rows(cache)) < KILL_AT_ROWS:
            assert proc.poll() is None, f"the judge run ended before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no judgment was committed in time"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = {tuple(r[:3]): r for r in rows(cache)}
    ok_at_kill = {k for k, r in at_kill.items() if r[3] == "ok"}
    assert KILL_AT_ROWS <= len(at_kill) < N_KEYS, len(at_kill)

    # 2. rerun to completion
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    (j,) = report["judges"]
    print(
        f"\n[resume] killed with {len(at_kill)} rows ({len(ok_at_kill)} ok); rerun judged {j['judged_keys']} keys "
        f"in {time.perf_counter() - t0:.1f}s; ok {j['ok']}, failed {j['failed_by']}; position consistency "
        f"{j['consistency_rate']} on {j['n_complete']} pairs; first-shown win rate {j['first_win_rate']}; "
        f"latency p50 {j['latency_p50_s']:.2f}s p95 {j['latency_p95_s']:.2f}s"
    )

    # 3. exactly one row per (judge_id, pair_id, order), all 80 keys, and only the missing keys were judged
    with sqlite3.connect(cache) as con:
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM judgments GROUP BY judge_id, pair_id, pair_order HAVING count(*) > 1)"
        ).fetchone()[0]
    assert dupes == 0
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        pair_ids = [r[0] for r in con.execute(
            f"SELECT pair_id FROM prefgate.response_pairs ORDER BY pair_id LIMIT {N_PAIRS}").fetchall()]  # fmt: skip
    finally:
        con.close()
    judge_id = j["judge_id"]
    expected = {(judge_id, p, o) for p in pair_ids for o in ("ab", "ba")}
    final = {tuple(r[:3]): r for r in rows(cache)}
    assert set(final) == expected and len(final) == N_KEYS
    assert j["judgments"] == N_KEYS and j["pairs"] == N_PAIRS
    assert j["cached_ok"] == len(ok_at_kill)
    assert j["judged_keys"] == N_KEYS - len(ok_at_kill)  # the rerun sent exactly the missing / failed keys
    assert j["judged_views"] >= j["judged_keys"]  # (plus retry rounds of keys that failed again, if any)
    for key in ok_at_kill:  # finished keys untouched
        assert final[key] == at_kill[key]
