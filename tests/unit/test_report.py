"""``prefgate report``: each subcommand's text and ``--json`` on a warehouse the pipeline built from the sample.

The warehouse is built once for the module (ingest, the three label batches, refresh; about 20-60 s). JSON
output must validate against the shipped schemas and carry the warehouse's numbers; text must keep reasons
whole and put flagged raters first; the gates must say what the Dagster checks said.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import jsonschema
import polars as pl
import pytest
import yaml

from pipelines.definitions import build_definitions
from prefgate.cli import SAMPLE_LANDING, land_folder, main
from prefgate.governance import GATING_FLAGS, audit_raters
from prefgate.home import PROJECT_ROOT, Home
from prefgate.ingest.landing import batches
from prefgate.policy import load_policy
from prefgate.report.command import SCHEMA_DIR
from prefgate.report.text import sig3
from tests.conftest import read_table, run_job

Built = tuple[Home, dg.ExecuteInProcessResult]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A home whose warehouse holds one full run over the bundled sample, and the refresh run's result."""
    home = Home(tmp_path_factory.mktemp("report") / "home").ensure()
    land_folder(SAMPLE_LANDING, home)
    defs = build_definitions(home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for key in batches(home.landing, "human_labels"):
        run_job(defs, instance, "labels_job", key)
    return home, run_job(defs, instance, "refresh_job")


def _report(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("PREFGATE_HOME", str(home.root))  # main() sets both; monkeypatch restores them
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    code = main(["--home", str(home.root), "report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, *args: str
) -> dict[str, Any]:
    code, out, err = _report(home, capsys, monkeypatch, name, "--json", *args)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / f"{name}.json").read_text())).validate(result)
    return result


def _check_reason(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    """The metadata of the refresh run's evaluation of check ``name``, values unwrapped."""
    for ev in result.get_asset_check_evaluations():
        if ev.check_name == name:
            return {k: getattr(v, "value", v) for k, v in ev.metadata.items()} | {"passed": ev.passed}
    raise KeyError(name)


def test_schemas_are_valid_draft_2020_12() -> None:
    names = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
    assert names == ["gates", "judges", "raters", "set"]
    for name in names:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_raters_json_carries_the_table_and_the_audit(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = built
    out = _json(home, capsys, monkeypatch, "raters")
    quality = read_table(home, "rater_quality")
    audit = audit_raters(read_table(home, "resolved_human_labels"), load_policy(PROJECT_ROOT / "config/policy.yaml"))
    h = out["headline"]
    assert (h["alpha"], h["alpha_low"], h["alpha_high"]) == (
        audit.agreement.alpha,
        audit.agreement.alpha_low,
        audit.agreement.alpha_high,
    )
    assert h["percent_agreement"] == audit.agreement.percent_agreement
    assert h["flagged_share"] == audit.flagged_share and h["n_raters"] == quality.height == out["total_rows"]
    by_id = {r["rater_id"]: r for r in quality.to_dicts()}
    assert len(out["rows"]) == quality.height
    for row in out["rows"]:
        table = by_id[row["rater_id"]]
        for col in ("n_labels", "assessed", "agreement", "first_share", "tie_rate", "flag_reasons"):
            assert row[col] == table[col], (row["rater_id"], col)
        assert row["gating"] == any(table[f] for f in GATING_FLAGS)
    gating = [r["gating"] for r in out["rows"]]
    assert gating == sorted(gating, reverse=True) and sum(gating) == h["n_flagged"] > 0
    flagged = [bool(r["flags"]) for r in out["rows"]]
    assert flagged == sorted(flagged, reverse=True)  # every flagged rater before every unflagged one


def test_raters_text_keeps_reasons_whole_and_flagged_first(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = built
    code, out, _ = _report(home, capsys, monkeypatch, "raters")
    assert code == 0
    lines = out.splitlines()
    quality = read_table(home, "rater_quality")
    audit = audit_raters(read_table(home, "resolved_human_labels"), load_policy(PROJECT_ROOT / "config/policy.yaml"))
    rep = audit.agreement
    assert f"alpha {sig3(rep.alpha)} [{sig3(rep.alpha_low)}, {sig3(rep.alpha_high)}]" in lines[0]  # type: ignore[arg-type]
    rows = {
        line.split()[0]: i
        for i, line in enumerate(lines)
        if line.split() and line.split()[0] in set(quality["rater_id"])
    }
    assert len(rows) == quality.height  # one line per rater: nothing wraps
    flagged = quality.filter(pl.col("flag_reasons").fill_null("") != "")
    for rater_id, reasons in flagged.select("rater_id", "flag_reasons").iter_rows():
        assert lines[rows[rater_id]].endswith(reasons)  # in full, last
    last_flagged = max(rows[r] for r in flagged["rater_id"])
    assert all(rows[r] > last_flagged for r in quality.filter(pl.col("flag_reasons").fill_null("") == "")["rater_id"])
    agreement = quality.filter(pl.col("rater_id") == flagged["rater_id"][0])["agreement"].item()
    assert sig3(agreement) in lines[rows[flagged["rater_id"][0]]].split()


def test_limit_keeps_the_first_rows(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = built
    out = _json(home, capsys, monkeypatch, "raters", "--limit", "3")
    assert len(out["rows"]) == 3 and out["total_rows"] > 3 and all(r["gating"] for r in out["rows"])
    code, text, _ = _report(home, capsys, monkeypatch, "raters", "--limit", "3")
    assert code == 0 and f"... {out['total_rows'] - 3} more rows (--limit 3)" in text


def test_judges_json_and_text(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = built
    out = _json(home, capsys, monkeypatch, "judges")
    calibration = read_table(home, "judge_calibration")
    assert out["total_rows"] == len(out["rows"]) == calibration.height
    keyed = {(r["judge_id"], r["slice"], r["slice_value"]): r for r in calibration.to_dicts()}
    seen: list[str] = []
    for row in out["rows"]:
        table = keyed[(row["judge_id"], row["slice"], row["slice_value"])]
        for col in ("n_pairs", "agree_strict", "kappa", "p_first", "p_longer", "passed", "reasons"):
            assert row[col] == table[col] or (row[col] is None and table[col] != table[col]), col  # NaN -> null
        if row["judge_id"] not in seen:  # a judge's first row is its overall row
            seen.append(row["judge_id"])
            assert row["slice"] == row["slice_value"] == "all"
    assert seen == sorted(seen) and set(out["headline"]["passed_overall"]) <= set(seen)
    code, text, _ = _report(home, capsys, monkeypatch, "judges")
    assert code == 0
    longest = max((r["reasons"] for r in out["rows"]), key=lambda rs: len("; ".join(rs)))
    assert any(line.endswith("; ".join(longest)) for line in text.splitlines())
    assert len(text.splitlines()) == calibration.height + 4  # two headline lines, a blank, the header


def test_gates_say_what_the_checks_said(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, refresh = built
    out = _json(home, capsys, monkeypatch, "gates")
    gates = {g["gate"]: g for g in out["gates"]}
    governance = _check_reason(refresh, "governance_gates")
    for name in (
        "judge_calibration",
        "rater_alpha",
        "contamination",
        "degenerate",
        "pii",
        "chosen_longer_share",
        "coverage",
    ):
        recorded = governance[f"gate/{name}"]
        assert (gates[name]["passed"], gates[name]["message"]) == (recorded["passed"], recorded["message"])
        assert gates[name]["check"] == "preference_set.governance_gates"
    for check in ("alpha_at_least_min", "flagged_share_at_most_max", "quarantine_share_at_most_max"):
        recorded = _check_reason(refresh, check)
        assert (gates[check]["passed"], gates[check]["message"]) == (recorded["passed"], recorded["reason"])
    assert out["passed"] is all(g["passed"] for g in out["gates"]) and out["n_gates"] == len(gates) == 10
    assert out["recorded"] is not None and out["recorded"]["version_id"].startswith("ps-")
    code, text, _ = _report(home, capsys, monkeypatch, "gates")
    assert code == 0
    for gate in out["gates"]:
        assert any(line.endswith(gate["message"]) for line in text.splitlines()), gate["gate"]


def test_failing_gates_come_first_with_their_sentence(
    built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home, _ = built
    raw = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    raw["agreement"]["min_alpha"] = 0.95
    raw["gates"]["max_chosen_longer"] = 0.1
    strict = tmp_path / "policy.yaml"
    strict.write_text(yaml.safe_dump(raw))
    out = _json(home, capsys, monkeypatch, "gates", "--policy", str(strict))
    assert out["passed"] is False and out["n_failed"] == 2
    assert [g["gate"] for g in out["gates"][:2]] == ["alpha_at_least_min", "chosen_longer_share"]
    assert "short by" in out["gates"][0]["message"] and "over by" in out["gates"][1]["message"]
    code, text, _ = _report(home, capsys, monkeypatch, "gates", "--policy", str(strict))
    assert code == 0 and "2 FAIL" in text.splitlines()[0]


def test_set_summary(built: Built, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    home, _ = built
    out = _json(home, capsys, monkeypatch, "set")
    ps, dropped = read_table(home, "preference_set"), read_table(home, "curation_dropped")
    assert out["rows"] == ps.height and out["candidates"] == ps.height + dropped.height
    assert out["splits"] == dict(ps.group_by("split").len().iter_rows())
    origin = {r["key"]: r["rows"] for r in out["by_origin"]["rows"]}
    assert origin == dict(ps.group_by("label_origin").len().iter_rows())
    assert {r["key"]: r["rows"] for r in out["by_category"]["rows"]} == dict(ps.group_by("category").len().iter_rows())
    assert all(sum(r["splits"].values()) == r["rows"] for r in out["by_source"]["rows"])
    assert out["dropped"]["n_rows"] == dropped.height == sum(r["rows"] for r in out["dropped"]["by_reason"]["rows"])
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        latest = con.execute("SELECT version_id FROM lineage.versions ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        con.close()
    assert latest is not None and out["lineage"]["version_id"] == latest[0] and out["lineage"]["current"] is True
    code, text, _ = _report(home, capsys, monkeypatch, "set", "--limit", "2")
    assert code == 0 and latest[0] in text
    assert f"preference_set: {ps.height} rows" in text and "curation_dropped by reason" in text


def test_missing_warehouse_or_table_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Home(tmp_path / "empty")
    code, out, err = _report(home, capsys, monkeypatch, "raters")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "prefgate.rater_quality" in err and "`prefgate run` creates it" in err
    home.ensure()
    con = duckdb.connect(str(home.warehouse))
    try:
        con.execute("CREATE SCHEMA prefgate; CREATE TABLE prefgate.preference_set (example_id VARCHAR)")
    finally:
        con.close()
    code, _, err = _report(home, capsys, monkeypatch, "set", "--json")
    assert code == 2 and "prefgate.curation_dropped is missing" in err and err.count("\n") == 1
    code, _, err = _report(home, capsys, monkeypatch, "judges")
    assert code == 2 and "prefgate.judge_calibration" in err


def test_raters_on_empty_tables_say_why(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = built
    empty = {name: read_table(home, name).head(0) for name in ("rater_quality", "resolved_human_labels")}
    other = Home(tmp_path / "other").ensure()
    con = duckdb.connect(str(other.warehouse))
    try:
        con.execute("CREATE SCHEMA prefgate")
        for name, frame in empty.items():
            con.register("f", frame.to_arrow())
            con.execute(f"CREATE TABLE prefgate.{name} AS SELECT * FROM f")
            con.unregister("f")
    finally:
        con.close()
    out = _json(other, capsys, monkeypatch, "raters")
    assert (
        out["rows"] == [] and out["headline"]["alpha"] is None and "no human labels" in out["headline"]["alpha_reason"]
    )
    code, text, _ = _report(other, capsys, monkeypatch, "raters")
    assert code == 0 and "no human labels" in text.splitlines()[0]
