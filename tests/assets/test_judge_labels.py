"""Live judging inside judge_labels: both orders, the durable cache, and failures that stay failures."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.definitions import build_definitions
from prefgate.home import Home
from prefgate.judges.cache import JudgmentCache
from tests.conftest import read_table, run_job

BATCH = "2026-11-04"


def _config(judges: list[str], judges_file: str | None = None) -> dict[str, object]:
    cfg: dict[str, object] = {"judges": judges}
    if judges_file:
        cfg["judges_file"] = judges_file
    return {"ops": {"judge_labels": {"config": cfg}}}


def test_live_rules_judge_both_orders_cached(sample_home: Home) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    result = run_job(defs, instance, "labels_job", BATCH)
    labels = read_table(sample_home, "judge_labels")
    live = labels.filter(pl.col("origin") == "live")
    humans = read_table(sample_home, "human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 4))
    assert set(live["pair_id"]) == set(humans["pair_id"])  # every pair its humans labelled
    per_pair = live.group_by("pair_id").agg(pl.col("order").sort().alias("orders"))
    assert per_pair["orders"].to_list() == [["ab", "ba"]] * per_pair.height
    expected = live.select(pl.when(pl.col("order") == "ab").then(pl.lit("a")).otherwise(pl.lit("b")))
    assert live["shown_first"].to_list() == expected.to_series().to_list()
    assert live["position_consistent"].null_count() == 0
    assert live["constitution_hash"].n_unique() == 1 and live["pii_action"].unique().to_list() == ["local"]
    recorded = labels.filter(pl.col("origin") == "recorded")
    assert recorded["source_file"].null_count() == 0 and set(recorded["source"]) == {"pandalm-gpt35", "pandalm-7b"}
    meta = {
        k: v.value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("judge_labels")
        for k, v in e.materialization.metadata.items()
    }
    assert meta["live_judgments"] == live.height and meta["live_failed"] == 0
    with JudgmentCache(sample_home.root / "judge_cache.sqlite") as cache:
        assert len(cache) == live.height
    # a rerun of the batch answers every key from the cache and writes the same rows
    run_job(defs, instance, "labels_job", BATCH)
    again = read_table(sample_home, "judge_labels").filter(pl.col("origin") == "live")
    assert again.sort("label_id").equals(live.sort("label_id"))


def test_unreachable_judge_fails_without_verdicts(sample_home: Home, tmp_path: Path) -> None:
    judges_file = tmp_path / "judges.yaml"
    judges_file.write_text(
        "default: [down]\n"
        "judges:\n"
        "  down: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: nobody, local: true, limit_per_batch: 5}\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: t\njudges: {max_attempts: 2, timeout_s: 2}\n")
    defs = build_definitions(sample_home, policy_path=str(policy))
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    run_job(defs, instance, "labels_job", BATCH, run_config=_config(["down"], str(judges_file)))
    live = read_table(sample_home, "judge_labels").filter(pl.col("origin") == "live")
    assert live.height == 10  # 5 pairs x 2 orders
    assert (live["status"] == "failed").all()
    assert live["choice"].null_count() == live.height  # never coerced into a verdict
    assert set(live["parse_status"]) <= {"http_error", "timeout"}
    assert live["error"].null_count() == 0
    assert (live["attempts"] >= 2).all()
