"""A benchmark with one gold label per pair: alpha is undefined, the check says why, the policy decides, and
judges are calibrated against the gold verdicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.definitions import build_definitions
from prefgate.home import PROJECT_ROOT, Home
from tests.conftest import read_table, run_job

GOLD_SOURCE = """
  - name: answer-key
    kind: human_labels
    gold: true
    pairs_from: llmfao
    glob: "human_labels/*/answer-key*.csv"
    columns: {pair_key: id, choice: winner}
    constants: {rater_id: reference}
    choices: {left: first, right: second, tie: tie}
    shown_first: first
"""
BATCHES = ("2026-11-02", "2026-11-03", "2026-11-04")


@pytest.fixture
def gold_home(sample_home: Home, sources_copy: Path) -> Home:
    """The sample's pairs and judge verdicts, with the human panels replaced by one reference label per pair."""
    crowd = pl.read_csv(sample_home.landing / "human_labels" / "2026-11-02" / "llmfao-crowd.csv")
    shutil.rmtree(sample_home.landing / "human_labels")
    key = crowd.unique("id", keep="first", maintain_order=True).select("id", "winner")
    (sample_home.landing / "human_labels" / "2026-11-02").mkdir(parents=True)
    key.write_csv(sample_home.landing / "human_labels" / "2026-11-02" / "answer-key.csv")
    sources_copy.write_text(sources_copy.read_text() + GOLD_SOURCE)
    return sample_home


def _run(home: Home, sources: Path, tmp_path: Path, rule: str) -> dg.ExecuteInProcessResult:
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    raw["agreement"]["on_undefined"] = {"alpha": rule, "flagged": "pass"}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(raw))
    defs = build_definitions(home, sources_path=str(sources), policy_path=str(tmp_path / "policy.yaml"))
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for batch in BATCHES:
        run_job(defs, instance, "labels_job", batch)
    return run_job(defs, instance, "refresh_job", ok=None)


def _alpha_check(result: dg.ExecuteInProcessResult) -> tuple[bool, str]:
    ev = next(e for e in result.get_asset_check_evaluations() if e.check_name == "alpha_at_least_min")
    return ev.passed, str(ev.metadata["reason"].value)


def test_undefined_alpha_fails_by_default_and_says_why(gold_home: Home, sources_copy: Path, tmp_path: Path) -> None:
    result = _run(gold_home, sources_copy, tmp_path, "fail")
    passed, reason = _alpha_check(result)
    n = read_table(gold_home, "human_labels").height
    assert not passed
    assert reason == (
        f"alpha is undefined: no panel labels, only {n:,} gold reference labels (one per pair, kept out of rater "
        "agreement); the policy (agreement.on_undefined.alpha: fail) says the gate fails"
    )
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "human_consensus" not in done


def test_undefined_alpha_can_pass_and_judges_are_calibrated_against_gold(
    gold_home: Home, sources_copy: Path, tmp_path: Path
) -> None:
    result = _run(gold_home, sources_copy, tmp_path, "pass")
    passed, reason = _alpha_check(result)
    assert passed and reason.endswith("(agreement.on_undefined.alpha: pass) says the gate passes")
    consensus = read_table(gold_home, "human_consensus")
    gold = read_table(gold_home, "human_labels")
    assert consensus.height == gold["pair_id"].n_unique()
    assert (consensus["method"] == "gold").all() and (consensus["confidence"] == 1.0).all()
    calibration = read_table(gold_home, "judge_calibration").filter(pl.col("slice") == "all")
    llmfao = calibration.filter(pl.col("judge_id").str.ends_with(":llmfao-instruction"))
    # the LLMFAO judges' verdicts are scored against the answer key on every keyed pair they labelled
    assert llmfao.height == 2 and (llmfao["n_pairs"] > 50).all(), calibration.select("judge_id", "n_pairs")
    assert llmfao["kappa"].is_not_null().all()
