"""``prefgate judge`` on a small hand-made warehouse with the model-free ``rules`` judge: pair selection (--limit,
--batch), the report (consistency, human agreement with Cohen's kappa), resuming from the cache, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from prefgate import cli

# rules judge: a response with a banned phrase ("great question") loses; otherwise a tie
PAIRS = [
    ("0000000000000001", "Say hi.", "Hi!", "Great question! Hi!"),  # -> a
    ("0000000000000002", "Say hi.", "Great question! Hello.", "Hello."),  # -> b
    ("0000000000000003", "Say hi.", "Hi.", "Hello."),  # -> tie
    ("0000000000000004", "Say bye.", "Bye.", "What a great question. Bye."),  # -> a
]
LABELS = [("0000000000000001", "2026-11-02"), ("0000000000000002", "2026-11-02"), ("0000000000000003", "2026-11-03"),
          ("0000000000000004", "2026-11-03")]  # fmt: skip
CONSENSUS = [("0000000000000001", "a"), ("0000000000000002", "a"), ("0000000000000003", "b"),
             ("0000000000000004", "a"), ("00000000000000ff", "a")]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_home_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFGATE_HOME", raising=False)  # `--home` sets it; undone after each test


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    root.mkdir()
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA prefgate")
    con.execute(
        "CREATE TABLE prefgate.response_pairs (pair_id VARCHAR, prompt VARCHAR, response_a VARCHAR, "
        "response_b VARCHAR, category VARCHAR)"
    )
    con.executemany("INSERT INTO prefgate.response_pairs VALUES (?, ?, ?, ?, 'general')", PAIRS)
    con.execute("CREATE TABLE prefgate.human_labels (pair_id VARCHAR, batch_date DATE)")
    con.executemany("INSERT INTO prefgate.human_labels VALUES (?, ?)", LABELS)
    con.execute("CREATE TABLE prefgate.human_consensus (pair_id VARCHAR, verdict VARCHAR)")
    con.executemany("INSERT INTO prefgate.human_consensus VALUES (?, ?)", CONSENSUS)
    con.close()
    return root


def judge(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["--home", str(home), "judge", "--judge", "rules", "--no-progress", "--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def test_report_and_human_agreement(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = judge(home, capsys)
    assert code == 0 and report["pairs"] == 4 and report["cache"] == str(home / "judge_cache.sqlite")
    (j,) = report["judges"]
    assert j["name"] == "rules" and j["judgments"] == 8 and j["ok"] == 8 and j["failed"] == 0
    assert j["parse_status"] == {"programmatic": 8}
    assert j["judged_keys"] == 8 and j["cached_ok"] == 0
    assert j["consistency_rate"] == 1.0 and j["n_complete"] == 4
    assert j["first_win_rate"] == 0.5  # decisive verdicts split evenly between the shown-first and -second side
    # judge a, b, tie, a against humans a, a, b, a: agreement 2/4; kappa (0.5 - 0.4375) / (1 - 0.4375) = 1/9
    assert j["human"]["n_pairs"] == 4 and j["human"]["n_consistent"] == 4
    assert j["human"]["accuracy"] == pytest.approx(0.5)
    assert j["human"]["kappa"] == pytest.approx(1 / 9)
    assert j["latency_p50_s"] is not None and j["tokens"] is None and j["cost_usd"] is None

    code, again = judge(home, capsys)  # a rerun is served from the cache
    assert code == 0 and again["judges"][0]["judged_keys"] == 0 and again["judges"][0]["cached_ok"] == 8


def test_limit_and_batch_select_pairs(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = judge(home, capsys, "--limit", "1")
    assert code == 0 and report["pairs"] == 1 and report["judges"][0]["judgments"] == 2
    code, report = judge(home, capsys, "--batch", "2026-11-03")
    assert code == 0 and report["pairs"] == 2 and report["batch"] == "2026-11-03"
    assert report["judges"][0]["human"]["accuracy"] == pytest.approx(0.5)  # tie vs b, a vs a


def test_table_output(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--home", str(home), "judge", "--judge", "rules", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rules  (programmatic:rules:" in out and "consistency 1.000 (4/4" in out and "kappa 0.111" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--judge", "no-such-judge"],
        ["--judge", "rules", "--base-url", "http://127.0.0.1:1/v1"],  # no openai-backend judge selected
        ["--judge", "rules", "--limit", "0"],
        ["--judge", "rules", "--batch", "2026-02-30"],
    ],
)
def test_bad_arguments_exit_2(home: Path, args: list[str]) -> None:
    try:
        code = cli.main(["--home", str(home), "judge", "--no-progress", *args])
    except SystemExit as exc:  # argparse rejects the value itself
        code = int(exc.code or 0)
    assert code == 2


def test_no_warehouse_exits_1(tmp_path: Path) -> None:
    assert cli.main(["--home", str(tmp_path / "empty"), "judge", "--judge", "rules", "--no-progress"]) == 1
    assert not (tmp_path / "empty").exists()  # nothing is created for a failed run


def test_missing_api_key_exits_2_before_any_judging(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = cli.main(
        ["--home", str(home), "judge", "--judge", "rules", "--judge", "openai-gpt-4o-mini", "--no-progress"]
    )
    assert code == 2 and "OPENAI_API_KEY" in capsys.readouterr().err
    assert not (home / "judge_cache.sqlite").exists()  # the rules judge did not run first
