"""In-process materialisations of the whole graph on the bundled sample, and the gates that guard the export."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from prefgate.home import Home
from prefgate.ingest.landing import batches
from tests.conftest import read_table, run_job

BATCHES = ["2026-11-02", "2026-11-03", "2026-11-04"]
ASSET = "preference_set"


def ingest_everything(defs: dg.Definitions, instance: dg.DagsterInstance, home: Home) -> None:
    run_job(defs, instance, "ingest_job")
    for key in batches(home.landing, "human_labels"):
        run_job(defs, instance, "labels_job", key)


def output_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    for mat in result.get_asset_materialization_events():
        if mat.asset_key == dg.AssetKey(key):
            return {k: v.value for k, v in mat.materialization.metadata.items()}
    raise KeyError(key)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dict[str, dg.ExecuteInProcessResult]]:
    """One full run over the sample: ingest, the three label batches, refresh (shared by the tests below)."""
    from prefgate.cli import SAMPLE_LANDING, land_folder

    home = Home(tmp_path_factory.mktemp("sample") / "home").ensure()
    land_folder(SAMPLE_LANDING, home)
    defs = build_definitions(home)
    instance = dg.DagsterInstance.ephemeral()
    results = {"ingest": run_job(defs, instance, "ingest_job")}
    for key in BATCHES:
        results[key] = run_job(defs, instance, "labels_job", key)
    results["refresh"] = run_job(defs, instance, "refresh_job")
    return home, results


def test_sample_batches_are_the_landing_folders(sample_run: tuple[Home, dict]) -> None:
    home, _ = sample_run
    assert batches(home.landing, "human_labels") == BATCHES


@pytest.mark.parametrize(
    "key,result",
    [
        ("raw_prompts", "ingest"),
        ("response_pairs", "ingest"),
        ("eval_prompts", "ingest"),
        *[("human_labels", b) for b in BATCHES],
        *[("judge_labels", b) for b in BATCHES],
    ],
)
def test_counts_reconcile_per_asset(sample_run: tuple[Home, dict], key: str, result: str) -> None:
    _, results = sample_run
    meta = output_metadata(results[result], key)
    assert meta["counts_reconcile"] is True
    assert meta["rows_read"] == meta["rows_accepted"] + meta["rows_aliased"] + meta["rows_quarantined"]
    assert meta["rows_read"] > 0


def test_quarantine_table_holds_every_rejected_row(sample_run: tuple[Home, dict]) -> None:
    home, results = sample_run
    q = read_table(home, "quarantine")
    read = quarantined = 0
    for key, res in [
        ("raw_prompts", "ingest"),
        ("response_pairs", "ingest"),
        ("eval_prompts", "ingest"),
        *[(k, b) for k in ("human_labels", "judge_labels") for b in BATCHES],
    ]:
        meta = output_metadata(results[res], key)
        read += int(meta["rows_read"])  # type: ignore[call-overload]
        quarantined += int(meta["rows_quarantined"])  # type: ignore[call-overload]
    assert q.height == quarantined > 0
    assert q["quarantine_id"].n_unique() == q.height
    # real bad rows in the sample: PandaLM's GPT-3.5 "garbage" verdicts and empty LLMFAO responses
    assert q.filter((pl.col("source") == "pandalm-gpt35") & (pl.col("field") == "choice")).height > 0
    assert q.filter(pl.col("reason").str.contains("missing required field 'response_")).height > 0
    assert (q["line"] >= 1).all() and q["source_file"].str.len_chars().min() > 0  # type: ignore[operator]


def test_labels_normalised_to_canonical_pairs(sample_run: tuple[Home, dict]) -> None:
    home, _ = sample_run
    labels, pairs = read_table(home, "human_labels"), read_table(home, "response_pairs")
    assert set(labels["choice"].unique()) <= {"a", "b", "tie"}
    assert set(labels["shown_first"].unique()) == {"a", "b"}  # both orientations occur in real data
    assert labels.join(pairs, on="pair_id", how="anti").height == 0
    assert sorted(labels["batch_date"].cast(pl.String).unique().to_list()) == BATCHES
    # an llmfao "left" vote picks the response the source listed first (result_x)
    keys = read_table(home, "pair_keys").filter(pl.col("source") == "llmfao")
    left = labels.filter((pl.col("source") == "llmfao-crowd") & (pl.col("raw_choice") == "left"))
    joined = left.join(keys, left_on=["pair_key", "pair_id"], right_on=["source_key", "pair_id"])
    assert joined.height == left.height
    assert (joined["choice"] == joined["first_side"]).all()
    # the same two responses listed in both orders under two keys are one pair seen from both sides
    both = keys.group_by("pair_id").agg(pl.col("first_side").n_unique().alias("n")).filter(pl.col("n") == 2)
    assert both.height > 0


def test_preference_set_passes_gates_and_exports(sample_run: tuple[Home, dict]) -> None:
    home, results = sample_run
    checks = {e.check_name: e.passed for e in results["refresh"].get_asset_check_evaluations()}
    assert checks == {
        "preference_set_schema": True,
        "chosen_differs_from_rejected": True,
        "no_duplicate_pairs": True,
        "no_eval_contamination": True,
        "not_empty": True,
        "rows_have_min_labels": True,
        "alpha_at_least_min": True,
        "flagged_share_at_most_max": True,
        "great_expectations_suite": True,
        "governance_gates": True,
        "quarantine_share_at_most_max": True,
    }
    ps = read_table(home, "preference_set")
    assert ps.height > 100
    assert set(ps["split"].unique()) == {"train", "eval"}
    both = ps.group_by("prompt_id").agg(pl.col("split").n_unique().alias("n")).filter(pl.col("n") > 1)
    assert both.height == 0, "a prompt is in both train and eval"
    out = home.exports / "preference_set"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == ps.height
    from datasets import load_from_disk

    ds = load_from_disk(str(out / "hf_dataset"))
    assert {"prompt", "chosen", "rejected"} <= set(ds["train"].column_names)
    assert ds["train"].num_rows + ds["test"].num_rows == ps.height
    assert pl.read_parquet(out / "preference_set.parquet").height == ps.height
    # headline numbers as plain ints/floats, so the Plots tab charts them across runs
    export_meta = output_metadata(results["refresh"], "preference_set_export")
    assert export_meta["export_rows"] == ps.height
    assert export_meta["gates_passed"] == export_meta["gates_total"] > 0
    gates = export_meta["gates"]
    assert isinstance(gates, dg.TableMetadataValue) and len(gates.records) == export_meta["gates_total"]
    assert all(r.data["passed"] is True and checks[str(r.data["gate"])] for r in gates.records)
    consensus = read_table(home, "human_consensus")
    cons_meta = output_metadata(results["refresh"], "human_consensus")
    assert cons_meta["pairs"] == consensus.height
    assert type(cons_meta["mean_confidence"]) is float
    assert cons_meta["mean_confidence"] == round(float(consensus["confidence"].mean()), 4)  # type: ignore[arg-type]


def test_consensus_provenance_reaches_preference_rows(sample_run: tuple[Home, dict]) -> None:
    home, _ = sample_run
    ps, labels = read_table(home, "preference_set"), read_table(home, "human_labels")
    exploded = ps.select("pair_id", "label_ids").explode("label_ids")
    matched = exploded.join(labels.select("label_id", "pair_id"), left_on="label_ids", right_on="label_id")
    assert matched.height == exploded.height
    assert (matched["pair_id"] == matched["pair_id_right"]).all()


def test_planted_contamination_blocks_export(sample_home: Home, sources_copy: Path) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    ingest_everything(defs, instance, sample_home)
    run_job(defs, instance, "refresh_job")
    export = sample_home.exports / "preference_set"
    assert export.exists()
    import shutil

    shutil.rmtree(export)
    leaked = read_table(sample_home, "preference_set").filter(pl.col("split") == "train")["prompt"][0]
    (sample_home.landing / "eval" / "truthfulqa-planted.csv").write_text(
        pl.DataFrame({"Question": [leaked], "Category": ["planted"]}).write_csv()
    )
    run_job(defs, instance, "ingest_job")
    result = run_job(defs, instance, "refresh_job", ok=None)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    checks = {k: e.passed for k, e in evaluations.items()}
    assert checks["no_eval_contamination"] is False
    assert checks["governance_gates"] is False  # its contamination gate, with the count in words
    summary = str(evaluations["governance_gates"].metadata["reason"].value)
    n = int(evaluations["no_eval_contamination"].metadata["contaminated_rows"].value)  # type: ignore[arg-type]
    leaked_rows = read_table(sample_home, "preference_set").filter(pl.col("prompt") == leaked).height
    assert n >= leaked_rows >= 1
    assert f"rows matching eval prompts: {n} > 0 allowed (over by {n})" in summary, summary
    assert all(v for k, v in checks.items() if k not in ("no_eval_contamination", "governance_gates"))
    assert result.success is False  # the blocking check fails the preference_set step
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "preference_set" in materialized and "preference_set_export" not in materialized
    assert not export.exists(), "a failed blocking check must leave no export"


def test_reingesting_the_same_file_adds_nothing(sample_home: Home) -> None:
    defs = build_definitions(sample_home)
    instance = dg.DagsterInstance.ephemeral()
    ingest_everything(defs, instance, sample_home)
    before = read_table(sample_home, "human_labels").height
    run_job(defs, instance, "labels_job", "2026-11-02")  # same batch again
    assert read_table(sample_home, "human_labels").height == before
    # the same bytes dropped into a later batch folder are skipped as a whole
    src = sample_home.landing / "human_labels" / "2026-11-02" / "llmfao-crowd.csv"
    later = sample_home.landing / "human_labels" / "2026-11-09"
    later.mkdir()
    (later / "llmfao-crowd-again.csv").write_bytes(src.read_bytes())
    result = run_job(defs, instance, "labels_job", "2026-11-09")
    assert read_table(sample_home, "human_labels").height == before
    meta = output_metadata(result, "human_labels")
    assert meta["skipped_duplicate_files"] == [
        {
            "file": "human_labels/2026-11-09/llmfao-crowd-again.csv",
            "same_bytes_as": "human_labels/2026-11-02/llmfao-crowd.csv",
        }
    ]
    # the same labels inside a different file are quarantined as duplicates, not counted twice
    lines = src.read_text().splitlines()
    (later / "llmfao-crowd-edited.csv").write_text("\n".join([lines[0], lines[1], lines[2]]) + "\n")
    run_job(defs, instance, "labels_job", "2026-11-09")
    assert read_table(sample_home, "human_labels").height == before
    q = read_table(sample_home, "quarantine_human_labels").filter(pl.col("batch_date") == pl.date(2026, 11, 9))
    assert q.height == 2 and q["reason"].str.starts_with("duplicate label: already ingested at batch 2026-11-02").all()


def _readme(pattern: str) -> tuple[str, ...]:
    import re

    from prefgate.home import PROJECT_ROOT

    text = " ".join((PROJECT_ROOT / "README.md").read_text().split())  # one line: a figure may wrap
    found = re.search(pattern, text)
    assert found, f"README no longer states {pattern!r}: update the README or this test"
    return found.groups()


def test_readme_figures_match_a_run_on_the_sample(sample_run: tuple[Home, dict]) -> None:
    """The README's figures on the sample and its thresholds equal what a run and the policy say (a drift fails)."""
    from prefgate.governance import audit_raters
    from prefgate.home import PROJECT_ROOT
    from prefgate.policy import load_policy

    home, results = sample_run
    policy = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
    audit = audit_raters(read_table(home, "resolved_human_labels"), policy)
    rep = audit.agreement
    assert _readme(r"alpha (\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\] pooled") == tuple(
        f"{v:.3f}" for v in (rep.alpha, rep.alpha_low, rep.alpha_high)
    )
    by_source = dict(audit.by_source.select("source", "alpha").iter_rows())
    assert _readme(r"LLMFAO crowd (\d\.\d{3}), MT-Bench experts (\d\.\d{3}), PandaLM annotators (\d\.\d{3})") == (
        f"{by_source['llmfao-crowd']:.3f}",
        f"{by_source['mtbench-experts']:.3f}",
        f"{by_source['pandalm-annotators']:.3f}",
    )
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    spammers = read_table(home, "rater_quality").filter(pl.col("spammer"))
    assert spammers["rater_id"].str.starts_with("llmfao-crowd:").all()
    assert _readme(r"(\w+) LLMFAO workers are flagged spammer") == (words[spammers.height],)
    gates, merge = policy.gates, policy.merge
    assert _readme(r"kappa ≥ (\d\.\d+), the agreement interval's lower bound ≥ (\d\.\d+)") == (
        f"{gates.min_judge_kappa}",
        f"{gates.min_judge_agreement}",
    )
    assert _readme(r"\|P\(first\) − 0\.5\| ≤ (\d\.\d+), P\(longer\) at most (\d\.\d+) above") == (
        f"{gates.max_position_bias}",
        f"{gates.max_length_bias}",
    )
    assert _readme(r"reached P\(humans agree\) ≥ (\d\.\d+); weight = that probability × (\d\.\d+)") == (
        f"{merge.min_calibrated_confidence}",
        f"{merge.judge_weight}",
    )
    assert _readme(r"P\(chosen longer\) ≤ (\d\.\d+)") == (f"{gates.max_chosen_longer}",)
    ps = read_table(home, "preference_set")
    judge_rows = ps.filter(pl.col("label_origin") != "human").height
    assert _readme(r"(\d+) ensemble verdicts on MT-Bench pairs enter the set .{0,60} beside (\d+) human rows") == (
        str(judge_rows),
        str(ps.height - judge_rows),
    )
    on_set = [e for e in results["refresh"].get_asset_check_evaluations() if e.asset_key.to_user_string() == ASSET]
    words_n = {8: "eight", 9: "nine", 10: "ten", 11: "eleven"}
    assert _readme(r"the \*\*Checks\*\* tab shows its (\w+) blocking checks") == (words_n[len(on_set)],)
