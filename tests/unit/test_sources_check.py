"""``prefgate sources check``: a dry run of the sources file against a landing folder, writing nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prefgate.cli import SAMPLE_LANDING, main

SOURCES = """\
version: 1
sources:
  - name: mine
    kind: prompts
    glob: "prompts/mine*.csv"
    columns: {source_key: id, prompt: text}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("PREFGATE_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.delenv("PREFGATE_SOURCES", raising=False)
    return root


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["sources", "check", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_sample_landing_every_file_matched_and_nothing_written(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE_LANDING, landing)
    rc, out, _ = _check(capsys, "--landing", str(landing), "--json")
    report = json.loads(out)
    on_disk = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())
    assert sorted(f["file"] for f in report["files"]) == on_disk
    assert report["unread"] == []
    assert all(f["source"] and f["rows_read"] == f["mapped"] + len(f["rejected"]) for f in report["files"])
    assert all(len(f["sample"]) == min(3, f["mapped"]) for f in report["files"])
    # The bundled sample holds real pairs with an empty response: the ingest quarantines them, so the check says so.
    rejected = [(f["file"], r) for f in report["files"] for r in f["rejected"]]
    assert rejected and rc == 1
    assert all(file.startswith("pairs/") and r["field"].startswith("response_") for file, r in rejected)
    assert all(r["line"] > 0 and "missing required field" in r["reason"] for _, r in rejected)
    assert not home.exists()  # no warehouse, no Dagster instance, no home folders

    shutil.rmtree(landing / "pairs")  # every other sample file maps cleanly
    rc, out, _ = _check(capsys, "--landing", str(landing), "--rows", "1")
    assert rc == 0, out
    assert out.splitlines()[0].startswith("prefgate sources check:") and "response_pairs" in out.splitlines()[0]
    assert "human_labels/2026-11-04/pandalm-annotators.parquet  source pandalm-annotators" in out
    assert out.rstrip().endswith("clean") and "NOT clean" not in out
    assert not home.exists()


def test_misspelt_folder_and_missing_required_column(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(SOURCES)
    landing = tmp_path / "landing"
    (landing / "prompts").mkdir(parents=True)
    (landing / "prompts" / "mine-1.csv").write_text("id,text\n1,hello\n2,\n3,world\n")
    (landing / "prompts" / "mine-2.csv").write_text("id,txt\n1,hello\n2,world\n")  # the mapped column is absent
    (landing / "prompt").mkdir()
    (landing / "prompt" / "mine-3.csv").write_text("id,text\n1,hi\n")
    rc, out, _ = _check(capsys, "--sources", str(sources), "--landing", str(landing), "--json")
    assert rc == 1
    report = json.loads(out)
    files = {f["file"]: f for f in report["files"]}
    assert set(files) == {"prompts/mine-1.csv", "prompts/mine-2.csv"}
    one, two = files["prompts/mine-1.csv"], files["prompts/mine-2.csv"]
    assert (one["rows_read"], one["mapped"]) == (3, 2)
    assert one["rejected"] == [{"line": 3, "field": "prompt", "reason": "missing required field 'prompt'"}]
    assert [r["line"] for r in two["rejected"]] == [2, 3] and two["mapped"] == 0
    assert one["sample"][0] == {"line": 2, "source_key": "1", "prompt": "hello"}
    [unread] = report["unread"]
    assert unread["file"] == "prompt/mine-3.csv" and "not a landing folder" in unread["reason"]

    rc, out, _ = _check(capsys, "--sources", str(sources), "--landing", str(landing))
    assert rc == 1
    assert "! line 3  field prompt: missing required field 'prompt'" in out
    assert "prompt/mine-3.csv: in landing/prompt/" in out
    assert not home.exists()


def test_undeclared_file_is_listed(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(SOURCES)
    landing = tmp_path / "landing"
    (landing / "prompts").mkdir(parents=True)
    (landing / "prompts" / "other.csv").write_text("id,text\n1,hi\n")
    rc, out, _ = _check(capsys, "--sources", str(sources), "--landing", str(landing), "--json")
    report = json.loads(out)
    assert rc == 1 and report["files"] == []
    assert report["unread"][0]["file"] == "prompts/other.csv"
    assert "no prompts source" in report["unread"][0]["reason"]


def test_invalid_sources_file_and_missing_landing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SOURCES.replace("columns:", "colums:"))
    (tmp_path / "landing").mkdir()
    rc, out, err = _check(capsys, "--sources", str(bad), "--landing", str(tmp_path / "landing"))
    assert rc == 2 and out == ""
    assert "source 'mine'" in err and "key 'colums'" in err

    monkeypatch.setenv("PREFGATE_SOURCES", str(bad))  # the default sources file follows $PREFGATE_SOURCES
    rc, _, err = _check(capsys, "--landing", str(tmp_path / "landing"))
    assert rc == 2 and "key 'colums'" in err

    rc, _, err = _check(capsys)  # the home's landing folder does not exist
    assert rc == 2 and "key 'colums'" in err
    monkeypatch.delenv("PREFGATE_SOURCES")
    rc, _, err = _check(capsys)
    assert rc == 2 and "no landing folder" in err
    assert not home.exists()
