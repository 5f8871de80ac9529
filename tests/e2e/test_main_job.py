"""End to end: the README's main-job command in a temporary home, as a newcomer would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from prefgate.home import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_readme_main_job_command(tmp_path: Path) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make run" in readme
    env = {**os.environ, "PREFGATE_HOME": str(tmp_path / "home"), "PY": sys.executable}
    proc = subprocess.run(
        ["make", "-s", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=2400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for line in ("ingest_job", "labels_job[2026-11-02]", "labels_job[2026-11-04]", "refresh_job", "train_job"):
        assert f"{line}" in out
    # the main job trains both models behind the gates and evaluates them
    assert re.search(r"check preference_set\.governance_gates\s+passed", out)
    for model in ("reward_model", "dpo_policy"):
        assert list((tmp_path / "home" / "models" / model).glob("*/final/config.json")), model
    assert "reward_accuracy" in out and "win_rate" in out
    assert "FAILED" not in out
    assert re.search(r"check preference_set\.no_eval_contamination\s+passed", out)
    home = tmp_path / "home"
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    n = con.execute("SELECT count(*) FROM prefgate.preference_set").fetchone()[0]  # type: ignore[index]
    con.close()
    assert n > 100
    assert (home / "exports" / "preference_set" / "preference_set.parquet").exists()
    assert (home / "dagster" / "dagster.yaml").exists()
    # the runs are recorded in the project's Dagster instance, so `dagster dev` shows them
    assert any((home / "dagster").rglob("*.db"))
    # a second run lands nothing new and adds no rows
    again = subprocess.run(
        ["make", "-s", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert again.returncode == 0 and "0 new files" in again.stdout
    assert "'reused': True" in again.stdout  # same data and config: the models are not trained twice
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    assert con.execute("SELECT count(*) FROM prefgate.preference_set").fetchone()[0] == n  # type: ignore[index]
    con.close()
