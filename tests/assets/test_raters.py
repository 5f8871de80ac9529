"""Rater governance on the sample: exclusions reach provenance, and the agreement gates block what follows."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.definitions import build_definitions
from prefgate.home import PROJECT_ROOT, Home
from tests.conftest import read_table, run_job

BATCHES = ("2026-11-02", "2026-11-03", "2026-11-04")


def _policy(tmp_path: Path, **changes: dict[str, object]) -> str:
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _run_all(home: Home, policy_path: str | None = None, ok: bool | None = True) -> dg.ExecuteInProcessResult:
    defs = build_definitions(home, policy_path=policy_path)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for batch in BATCHES:
        run_job(defs, instance, "labels_job", batch)
    return run_job(defs, instance, "refresh_job", ok=ok)


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.MetadataValue]:
    return next(
        e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]
    )


def test_excluded_raters_leave_consensus_and_are_recorded(sample_home: Home) -> None:
    result = _run_all(sample_home)
    quality, consensus = read_table(sample_home, "rater_quality"), read_table(sample_home, "human_consensus")
    labels, prefs = read_table(sample_home, "human_labels"), read_table(sample_home, "preference_set")
    excluded = set(quality.filter(pl.col("spammer") | pl.col("biased"))["rater_id"])
    assert excluded, "the sample's LLMFAO crowd has low-agreement workers the audit should flag"
    their_labels = set(labels.filter(pl.col("rater_id").is_in(list(excluded)))["label_id"])
    used = set(consensus["label_ids"].explode().drop_nulls())
    recorded = set(consensus["excluded_label_ids"].explode().drop_nulls())
    assert not used & their_labels
    assert recorded == their_labels
    assert used | recorded == set(labels["label_id"])  # every label is either used or recorded as excluded
    assert not set(prefs["rater_ids"].explode().drop_nulls()) & excluded
    assert (consensus["method"] == "dawid_skene").all()
    # a flagged rater's reasons are written out in words with the numbers
    reasons = quality.filter(pl.col("rater_id").is_in(list(excluded)))["flag_reasons"].to_list()
    assert all("spammer:" in r or "biased:" in r for r in reasons)
    # metadata read at a glance: headline numbers as plain floats/ints (charted in the Plots tab), typed tables
    meta = _meta(result, "rater_quality")
    for key in ("alpha", "alpha_low", "alpha_high", "percent_agreement", "flagged_share"):
        assert isinstance(meta[key], dg.FloatMetadataValue) and type(meta[key].value) is float, key
    assert isinstance(meta["raters"], dg.IntMetadataValue) and meta["raters"].value == quality.height
    assert meta["alpha_low"].value <= meta["alpha"].value <= meta["alpha_high"].value  # type: ignore[operator]
    table = meta["excluded_from_consensus"]
    assert isinstance(table, dg.TableMetadataValue)
    assert {r.data["rater_id"] for r in table.records} == excluded
    assert [(c.name, c.type) for c in table.schema.columns] == [("rater_id", "string"), ("reasons", "string")]
    worst = meta["worst_raters"]
    assert isinstance(worst, dg.TableMetadataValue)
    assert {c.name: c.type for c in worst.schema.columns}["agreement"] == "float"
    full = dict(quality.select("rater_id", "flag_reasons").iter_rows())
    for r in worst.records:  # strings in full, floats to 3 significant digits
        assert r.data["flag_reasons"] == full[r.data["rater_id"]]
        a = r.data["agreement"]
        assert a is None or (isinstance(a, float) and a == float(f"{a:.3g}"))
    chart = sample_home.exports / "charts" / "rater_quality.png"
    assert meta["agreement_distribution_png"].value == str(chart) and chart.read_bytes()[:4] == b"\x89PNG"
    # the sample spans 3 days, too few for the change test: the empty tables say so, with the numbers
    drift = _meta(result, "rater_drift")
    assert drift["days"].value == len(BATCHES)
    assert drift["change_points"].value == (
        "empty: no change test: the labels span 3 days, fewer than the 4 a test needs (2 days with labels on each "
        "side of a change, raters.drift_thresholds.min_side_days)"
    )
    assert "7-day reference window" in str(drift["population_changes"].value)
    assert isinstance(drift["population_drift"], dg.TableMetadataValue)


@pytest.mark.parametrize(
    "section,values,failing",
    [
        ("agreement", {"min_alpha": 0.95}, "alpha_at_least_min"),
        ("agreement", {"max_flagged_share": 0.0}, "flagged_share_at_most_max"),
    ],
)
def test_failing_rater_gate_stops_consensus_and_training_data(
    sample_home: Home, tmp_path: Path, section: str, values: dict[str, object], failing: str
) -> None:
    result = _run_all(sample_home, _policy(tmp_path, **{section: values}), ok=False)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks[failing] is False
    reason = next(e for e in result.get_asset_check_evaluations() if e.check_name == failing).metadata["reason"]
    sentence = str(getattr(reason, "value", reason))
    if failing == "alpha_at_least_min":  # the value, the threshold, the gap and what it was computed over
        assert sentence.startswith("alpha 0.4") and "< 0.95 required, short by 0.4" in sentence
        assert re.search(r", over [\d,]+ labels on [\d,]+ items$", sentence), sentence
    else:
        assert "> 0% allowed, over by" in sentence and "spammer" in sentence
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert "rater_quality" in done
    assert not done & {"human_consensus", "preference_set", "preference_set_export"}
    assert not (sample_home.exports / "preference_set").exists()


def test_majority_policy_switches_the_method(sample_home: Home, tmp_path: Path) -> None:
    _run_all(sample_home, _policy(tmp_path, consensus={"method": "majority", "min_confidence": 0.0}))
    consensus = read_table(sample_home, "human_consensus")
    assert (consensus["method"] == "majority").all()
    counted = consensus.filter(pl.col("n_labels") > 0)
    assert (counted["confidence"] == counted["agreement"]).all()
