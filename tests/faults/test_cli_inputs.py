"""Command-line input that would later abort a run is refused up front, naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefgate.cli import main


@pytest.mark.parametrize("batch", ["20261110", "not-a-date", "2026-13-01", "2026-11-1"])
def test_review_land_refuses_a_batch_that_is_not_a_date(
    tmp_path: Path, batch: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFGATE_HOME", str(tmp_path / "home"))  # main() sets both; restored after the test
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    export = tmp_path / "export.json"
    export.write_text(json.dumps([]))
    rc = main(["--home", str(tmp_path / "home"), "review", "land", str(export), "--batch", batch])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"--batch {batch!r} is not a batch date YYYY-MM-DD" in err
    assert not (tmp_path / "home" / "landing" / "human_labels" / batch).exists()
