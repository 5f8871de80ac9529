"""The graph's shape (snapshot), the landing sensor, the nightly schedule, and the gated export automation."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from pipelines.resources import PrefgateResource
from pipelines.sensors import landing_sensor
from prefgate.home import Home
from tests.conftest import run_job

ASSETS = [
    "contamination_matches",
    "curation_dropped",
    "eval_prompts",
    "human_consensus",
    "human_labels",
    "judge_calibration",
    "judge_labels",
    "judge_verdicts",
    "pair_keys",
    "preference_set",
    "preference_set_export",
    "prompt_audit",
    "quarantine",
    "quarantine_eval_prompts",
    "quarantine_human_labels",
    "quarantine_judge_labels",
    "quarantine_label_conflicts",
    "quarantine_raw_prompts",
    "quarantine_response_pairs",
    "rater_drift",
    "rater_quality",
    "raw_prompts",
    "resolved_human_labels",
    "response_pairs",
    "review_queue",
    "reward_model",
    "dpo_policy",
    "model_eval",
    "set_audit",
]
CHECKS = [
    "alpha_at_least_min",
    "chosen_differs_from_rejected",
    "flagged_share_at_most_max",
    "governance_gates",
    "great_expectations_suite",
    "no_duplicate_pairs",
    "no_eval_contamination",
    "not_empty",
    "preference_set_schema",
    "quarantine_share_at_most_max",
    "rows_have_min_labels",
]


def test_graph_snapshot(home: Home) -> None:
    """A change to the graph is always a visible diff here."""
    defs = build_definitions(home)
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == sorted(ASSETS)
    assert sorted(c.name for c in graph.asset_check_keys) == CHECKS
    from checks.preference_set import CHECKS as CHECK_DEFS

    assert all(spec.blocking for c in CHECK_DEFS for spec in c.check_specs)
    from checks.raters import CHECKS as RATER_CHECKS

    assert {s.name: s.blocking for c in RATER_CHECKS for s in c.check_specs} == {
        "alpha_at_least_min": True,
        "flagged_share_at_most_max": True,
    }
    assert sorted(j.name for j in defs.jobs or []) == ["ingest_job", "labels_job", "refresh_job", "train_job"]
    assert [(s.name, s.cron_schedule) for s in defs.schedules or []] == [("nightly_refresh", "0 2 * * *")]
    assert sorted(s.name for s in defs.sensors or []) == [
        "gated_export_automation",
        "landing_sensor",
        "stale_run_reaper",
    ]
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_partitioned}
    assert isinstance(graph.get(dg.AssetKey("human_labels")).partitions_def, dg.DynamicPartitionsDefinition)
    assert partitioned == {"human_labels", "judge_labels", "quarantine_human_labels", "quarantine_judge_labels"}


def test_landing_sensor_requests_runs_for_new_files(sample_home: Home) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = {"prefgate": PrefgateResource(home=str(sample_home.root))}
    ctx = dg.build_sensor_context(instance=instance, resources=resources)
    first = landing_sensor(ctx)
    reqs = [(r.job_name, r.partition_key) for r in first.run_requests or []]
    assert reqs == [
        ("ingest_job", None),
        ("labels_job", "2026-11-02"),
        ("labels_job", "2026-11-03"),
        ("labels_job", "2026-11-04"),
    ]
    again = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
    assert not again.run_requests
    new = sample_home.landing / "judge_labels" / "2026-11-05"
    new.mkdir()
    (new / "llmfao-gpt4-rerun.csv").write_text("id,prompt,model_x,model_y,winner,left,right\n")
    third = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=again.cursor))
    assert [(r.job_name, r.partition_key) for r in third.run_requests or []] == [("labels_job", "2026-11-05")]
    assert "judge_labels/2026-11-05/llmfao-gpt4-rerun.csv" in json.loads(third.cursor or "{}")


def test_landing_sensor_does_not_replay_what_the_warehouse_holds(sample_home: Home) -> None:
    """A home filled by `prefgate run`: the UI's sensor starts with no cursor and must launch nothing."""
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for batch in ("2026-11-02", "2026-11-03", "2026-11-04"):
        run_job(defs, instance, "labels_job", batch)
    resources = {"prefgate": PrefgateResource(home=str(sample_home.root))}
    first = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not first.run_requests
    # a new batch is a new partition and one run, under a key that is the same in every process
    new = sample_home.landing / "human_labels" / "2026-11-05"
    new.mkdir()
    (new / "llmfao-crowd-more.csv").write_text("id,prompt,model_x,model_y,worker,winner,left,right\n")
    ctx = dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
    second = landing_sensor(ctx)
    assert [(r.job_name, r.partition_key) for r in second.run_requests or []] == [("labels_job", "2026-11-05")]
    again = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
    assert [r.run_key for r in again.run_requests or []] == [r.run_key for r in second.run_requests or []]
    adds = second.dynamic_partitions_requests or []
    assert [list(r.partition_keys) for r in adds] == [["2026-11-05"]]


def _materialize_set(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    names = (
        "resolved_human_labels",
        "quarantine_label_conflicts",
        "quarantine",
        "rater_quality",
        "rater_drift",
        "human_consensus",
        "judge_calibration",
        "judge_verdicts",
        "prompt_audit",
        "contamination_matches",
        "preference_set",
        "curation_dropped",
    )
    keys = [dg.AssetKey(k) for k in names]
    return job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)


@pytest.mark.parametrize("contaminate", [False, True])
def test_export_automation_waits_for_blocking_checks(sample_home: Home, contaminate: bool) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for batch in ("2026-11-02", "2026-11-03", "2026-11-04"):
        run_job(defs, instance, "labels_job", batch)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the automation sensor's first tick
    assert tick.total_requested == 0  # preference_set is missing, so the export waits
    if contaminate:
        first = _materialize_set(defs, instance)
        assert first.success
        import duckdb

        con = duckdb.connect(str(sample_home.warehouse))
        prompt = con.execute("SELECT prompt FROM prefgate.preference_set LIMIT 1").fetchone()[0]  # type: ignore[index]
        con.close()
        (sample_home.landing / "eval" / "truthfulqa-leak.csv").write_text(
            pl.DataFrame({"Question": [prompt], "Category": ["leak"]}).write_csv()
        )
        run_job(defs, instance, "ingest_job")
    result = _materialize_set(defs, instance)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_eval_contamination"] is (not contaminate)
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    # the export is requested once its deps' blocking checks passed, and with it the trainers and the
    # evaluation downstream (same condition); nothing at all while a gate fails
    downstream = ("preference_set_export", "reward_model", "dpo_policy", "model_eval")
    assert evaluation.total_requested == (0 if contaminate else len(downstream))
    for key in downstream:
        assert evaluation.get_num_requested(dg.AssetKey(key)) == (0 if contaminate else 1), key
