"""``prefgate lineage``: every subcommand's ``--json`` validates against its JSON Schema; unknown ids exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest

from prefgate.cli import main
from prefgate.home import Home
from prefgate.lineage.command import SCHEMA_DIR
from tests.unit import lineage_data as data
from tests.unit.test_lineage_store import ALL, _two_versions


@pytest.fixture
def lineage_home(tmp_path: Path) -> tuple[Home, dict[str, str]]:
    """A home whose warehouse holds two preference-set versions, a model on each, and the label tables."""
    home = Home(tmp_path / "home").ensure()
    con = duckdb.connect(str(home.warehouse))
    try:
        v1, v2, model_a, model_b = _two_versions(con)
        pairs = data.response_pairs([*ALL, "p6"])
        con.execute("CREATE SCHEMA prefgate")
        con.register("h", data.human_labels(pairs).to_arrow())
        con.register("j", data.judge_labels(pairs).to_arrow())
        con.execute("CREATE TABLE prefgate.human_labels AS SELECT * FROM h")
        con.execute("CREATE TABLE prefgate.judge_labels AS SELECT * FROM j")
        example = con.execute(
            "SELECT example_id FROM lineage.rows WHERE version_id = ? AND rater_id = 'r1' ORDER BY 1 LIMIT 1", [v2]
        ).fetchone()
    finally:
        con.close()
    assert example is not None
    return home, {"v1": v1, "v2": v2, "model_a": model_a, "model_b": model_b, "example": example[0]}


def _run(home: Home, *args: str) -> int:
    return main(["--home", str(home.root), "lineage", *args])


def _json(home: Home, capsys: pytest.CaptureFixture[str], schema: str, *args: str) -> dict[str, Any]:
    assert _run(home, *args, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMA_DIR / f"{schema}.json").read_text()), format_checker=jsonschema.FormatChecker()
    )
    validator.validate(out)
    return out


def test_schemas_are_valid_draft_2020_12() -> None:
    names = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
    assert names == ["diff", "example", "judge", "model", "rater", "retract", "versions"]
    for name in names:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_json_output_validates(
    lineage_home: tuple[Home, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    home, ids = lineage_home
    versions = _json(home, capsys, "versions", "versions")
    assert [v["version_id"] for v in versions["versions"]] == [ids["model_b"], ids["v2"], ids["model_a"], ids["v1"]]
    model = _json(home, capsys, "model", "model", "reward_model")
    assert model["version"]["version_id"] == ids["model_b"] and model["preference_set"]["version_id"] == ids["v2"]
    assert _json(home, capsys, "model", "model", ids["v1"])["totals"]["labels"] == 15
    rater = _json(home, capsys, "rater", "rater", "r3")
    assert [m["version_id"] for m in rater["models"]] == [ids["model_a"]] and rater["retraction"] is None
    judge = _json(home, capsys, "judge", "judge", "recorded:gpt-4")
    assert judge["matched_ids"] == [data.GPT4]
    example = _json(home, capsys, "example", "example", ids["example"])
    assert example["version_id"] == ids["v2"]
    changes = _json(home, capsys, "diff", "diff", ids["v1"], "latest")
    assert (changes["summary"]["added"], changes["summary"]["removed"], changes["summary"]["flipped"]) == (1, 2, 1)
    retracted = _json(home, capsys, "retract", "retract", "rater", "r2", "--reason", "drifting since November")
    assert retracted["impact"]["totals"] == {"preference_sets": 2, "models": 2}
    assert retracted["already_retracted"] is False
    after = _json(home, capsys, "rater", "rater", "r2")
    assert after["retraction"]["reason"] == "drifting since November"
    judge_retract = _json(home, capsys, "retract", "retract", "judge", "recorded:gpt-4o", "--reason", "leaked")
    assert judge_retract["impact"] is None  # its labels exist, but no recorded version used them


def test_text_output_is_for_people(
    lineage_home: tuple[Home, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    home, ids = lineage_home
    assert _run(home, "model", "reward_model") == 0
    text = capsys.readouterr().out
    assert "trained on " + ids["v2"] in text and "by rater:" in text and "not_empty" in text
    assert _run(home, "diff", ids["v1"], ids["v2"]) == 0
    text = capsys.readouterr().out
    assert "added 1  removed 2  flipped 1  unchanged 2" in text and "pair removed upstream" in text
    assert _run(home, "example", ids["example"]) == 0
    assert "human_labels/" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "no-such-model"], "unknown version: 'no-such-model'"),
        (["rater", "r9"], "unknown rater: 'r9'"),
        (["judge", "recorded:gpt"], "unknown judge: 'recorded:gpt'"),
        (["example", "0123456789abcdef"], "unknown example: '0123456789abcdef'"),
        (["diff", "latest", "ps-ffff"], "unknown version: 'ps-ffff'"),
        (["retract", "rater", "r9", "--reason", "x"], "unknown rater: 'r9'"),
    ],
)
def test_unknown_ids_exit_2_with_one_line(
    lineage_home: tuple[Home, dict[str, str]], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    home, _ = lineage_home
    assert _run(home, *args, "--json") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("prefgate lineage: " + message)
    assert not (home.root / "retractions.yaml").exists()


def test_missing_warehouse_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "empty"), "lineage", "versions"]) == 1
    assert "no warehouse" in capsys.readouterr().err


def test_the_installed_command_exits_2_on_an_unknown_rater(lineage_home: tuple[Home, dict[str, str]]) -> None:
    home, _ = lineage_home
    proc = subprocess.run(
        [sys.executable, "-m", "prefgate.cli", "--home", str(home.root), "lineage", "rater", "nobody"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "prefgate lineage: unknown rater: 'nobody' (no labels of it in any retained preference-set version)"
    )
