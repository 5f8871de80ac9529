"""The trainers sit behind the gates: a passing set trains a model; a set that failed a gate trains nothing,
in the same run (the blocking check stops the job) and in a later run (the trainer refuses the unexported set)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from prefgate.home import Home
from tests.assets.test_pipeline import ingest_everything
from tests.conftest import read_table, run_job

TINY = str(Path(__file__).with_name("tiny_reward.yaml"))


def _train(defs: dg.Definitions, instance: dg.DagsterInstance, ok: bool | None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("reward_model")],
        run_config={"ops": {"reward_model": {"config": {"config_file": TINY}}}},
        raise_on_error=False,
    )
    if ok is not None:
        assert result.success is ok, [str(e.event_specific_data)[:500] for e in result.all_events if e.is_failure]
    return result


def _models(home: Home) -> set[Path]:
    root = home.root / "models" / "reward_model"
    return {p for p in root.iterdir()} if root.exists() else set()


def test_failing_gate_leaves_no_new_model(
    sample_home: Home, sources_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("PREFGATE_OPENLINEAGE_FILE", str(events))
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    ingest_everything(defs, instance, sample_home)
    run_job(defs, instance, "refresh_job")
    first = _train(defs, instance, ok=True)
    trained = _models(sample_home)
    assert len(trained) == 1
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in first.get_asset_materialization_events()}
    result = next(iter(trained)) / "result.json"
    assert result.exists()
    assert next(iter(trained)).name.startswith(str(meta["reward_model"]["dataset_content_hash"].value)[:12])
    loss = meta["reward_model"]
    # OpenLineage: START + COMPLETE for the preference-set version and for the model, in a file sink
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    jobs = [(e["job"]["name"], e["eventType"]) for e in lines]
    assert ("preference_set", "COMPLETE") in jobs and ("reward_model", "COMPLETE") in jobs, jobs
    assert loss["global_step"].value == 1 and loss["first_loss"].value is not None

    # plant contamination: the refresh fails its gates, and the export keeps the old version
    leaked = read_table(sample_home, "preference_set").filter(pl.col("split") == "train")["prompt"][0]
    (sample_home.landing / "eval" / "truthfulqa-planted.csv").write_text(
        pl.DataFrame({"Question": [leaked], "Category": ["planted"]}).write_csv()
    )
    run_job(defs, instance, "ingest_job")
    refresh = run_job(defs, instance, "refresh_job", ok=False)
    done = {e.asset_key.to_user_string() for e in refresh.get_asset_materialization_events()}
    assert "preference_set" in done and "preference_set_export" not in done
    # a later, separate run of the trainer refuses the unexported set and says which gates failed
    again = _train(defs, instance, ok=False)
    failure = next(e for e in again.all_events if e.is_step_failure)
    text = str(failure.event_specific_data)
    assert "has not passed its gates" in text and "no_eval_contamination" in text, text[:2000]
    assert _models(sample_home) == trained, "a failed gate must leave no new model"
