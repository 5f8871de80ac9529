"""One ``prefgate run`` over a landing folder full of what real users drop in it. Each test checks one promise:
nothing read from outside landing, nothing lost from a broken CSV, one bad batch or file does not stop the rest,
every file nobody reads is named, a rater who labelled twice does not stop the refresh, and the quarantine share
gate fails naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from prefgate.cli import SAMPLE_LANDING, land_folder
from prefgate.home import Home
from tests.conftest import read_table
from tests.faults.conftest import Done, prefgate

BATCH = "2026-11-05"
SECRET_LINE = "outside-landing-secret:x:0:0:root:/root:/bin/bash"
HEADER = "id,prompt,model_x,model_y,worker,winner,left,right"
ROW = "{id},8,97,98,{worker},{winner},Airoboros L2 70B,Weaver 12k"
BROKEN = [  # data lines 2..6 of the file; line 3 opens a quote it never closes
    ROW.format(id=0, worker=9001, winner="left"),
    ROW.format(id=0, worker=9002, winner="right").replace(",Weaver 12k", ',"Weaver 12k'),
    ROW.format(id=0, worker=9003, winner="tie"),
    ROW.format(id=0, worker=9004, winner="left"),
    ROW.format(id=0, worker=9005, winner="right"),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, Done, Path]:
    root = tmp_path_factory.mktemp("hostile")
    home = Home(root / "home").ensure()
    land_folder(SAMPLE_LANDING, home)
    landing = home.landing
    outside = root / "passwd"
    outside.write_text(SECRET_LINE + "\n")
    (landing / "pairs" / "llmfao-pairs-evil.jsonl").symlink_to(outside)  # matches a declared glob
    batch = landing / "human_labels" / BATCH
    batch.mkdir(parents=True)
    (batch / "llmfao-crowd-broken.csv").write_text("\n".join([HEADER, *BROKEN]) + "\n")
    # worker 58 labelled pair 0 'tie' on 2026-11-02; here they change their mind
    (batch / "llmfao-crowd-redo.csv").write_text(HEADER + "\n" + ROW.format(id=0, worker=58, winner="left") + "\n")
    # a whole file whose verdict column uses values the mapping does not know: every row quarantined
    garbage = [ROW.format(id=i % 5, worker=7000 + i, winner="LEFT!") for i in range(40)]
    (batch / "llmfao-crowd-newformat.csv").write_text("\n".join([HEADER, *garbage]) + "\n")
    (landing / "pair").mkdir()
    shutil.copy(landing / "pairs" / "mtbench-pairs.jsonl", landing / "pair" / "mtbench-pairs-typo.jsonl")
    (landing / "stray.csv").write_text(HEADER + "\n")
    (landing / "pairs" / "nested").mkdir()
    (landing / "pairs" / "nested" / "llmfao-pairs-deep.jsonl").write_text("{}\n")
    (landing / "human_labels" / "llmfao-crowd-nobatch.csv").write_text(HEADER + "\n")
    (landing / "human_labels" / "not-a-date").mkdir()
    (landing / "human_labels" / "not-a-date" / "llmfao-crowd.csv").write_text(HEADER + "\n")
    (landing / "judge_labels" / "20261110").mkdir()
    done = prefgate(home, "run", "--no-train", "--judges", "rules", timeout=900)
    return home, done, outside


def _all_text(home: Home) -> str:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        return "\n".join(str(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def test_symlink_out_of_landing_is_not_read(hostile: tuple[Home, Done, Path]) -> None:
    home, done, outside = hostile
    assert SECRET_LINE not in _all_text(home)
    assert "pairs/llmfao-pairs-evil.jsonl" in done.out and str(outside) in done.out


def test_broken_quote_loses_no_row(hostile: tuple[Home, Done, Path]) -> None:
    home, _, _ = hostile
    f = f"human_labels/{BATCH}/llmfao-crowd-broken.csv"
    labels = read_table(home, "human_labels").filter(pl.col("source_file") == f)
    q = read_table(home, "quarantine_human_labels").filter(pl.col("source_file") == f)
    assert labels.height + q.height == len(BROKEN)  # in = accepted + quarantined
    assert sorted(labels["source_line"].to_list()) == [2, 4, 5, 6]
    assert q["line"].to_list() == [3] and "unterminated" in q["reason"].item()


def test_conflicting_label_is_quarantined_and_refresh_completes(hostile: tuple[Home, Done, Path]) -> None:
    home, done, _ = hostile
    assert "refresh_job" in done.out and "duplicate (item, rater)" not in done.out
    resolved = read_table(home, "resolved_human_labels")
    mine = resolved.filter(pl.col("rater_id") == "llmfao-crowd:58", pl.col("pair_key") == "0")
    assert mine["choice"].to_list() == [mine["choice"].item()] and mine["batch_date"].item().isoformat() == BATCH
    q = read_table(home, "quarantine").filter(pl.col("reason").str.starts_with("conflicting_label"))
    assert q.height == 1 and q["source_file"].item() == "human_labels/2026-11-02/llmfao-crowd.csv"
    assert read_table(home, "human_labels").height == resolved.height + q.height
    assert read_table(home, "preference_set").height > 0


def test_quarantine_share_gate_names_the_file(hostile: tuple[Home, Done, Path]) -> None:
    _, done, _ = hostile
    lines = [ln for ln in done.out.splitlines() if "quarantine.quarantine_share_at_most_max failed" in ln]
    assert len(lines) == 1, done.out[-3000:]
    assert f"human_labels/{BATCH}/llmfao-crowd-newformat.csv" in lines[0] and "40 of 40" in lines[0]
    assert "broken.csv" not in lines[0]  # 1 of 5 quarantined is at the 20% limit, not over it
    assert done.rc == 1


@pytest.mark.parametrize(
    "path",
    [
        "pair/mtbench-pairs-typo.jsonl",
        "stray.csv",
        "pairs/nested/llmfao-pairs-deep.jsonl",
        "human_labels/llmfao-crowd-nobatch.csv",
        "human_labels/not-a-date/llmfao-crowd.csv",
    ],
)
def test_every_unread_file_is_named(hostile: tuple[Home, Done, Path], path: str) -> None:
    _, done, _ = hostile
    assert any(f"landing/{path}" in ln and ln.startswith("warning:") for ln in done.out.splitlines()), path


def test_non_date_batch_folder_does_not_stop_the_other_batches(hostile: tuple[Home, Done, Path]) -> None:
    home, done, _ = hostile
    assert "DagsterUnknownPartitionError" not in done.out
    assert "not-a-date" in done.out and "20261110" in done.out
    days = set(read_table(home, "human_labels")["batch_date"].cast(pl.String).to_list())
    assert days == {"2026-11-02", "2026-11-03", "2026-11-04", BATCH}
    for batch in ("2026-11-02", "2026-11-03", "2026-11-04", BATCH):
        assert f"labels_job[{batch}]     ok" in done.out


def test_corrupt_file_fails_in_one_line_naming_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    (home.landing / "pairs").mkdir(parents=True)
    (home.landing / "pairs" / "pandalm-pairs-bad.parquet").write_bytes(b"PAR1 this is not parquet")
    done = prefgate(home, "run", "--no-train", "--no-sample", "--judges", "none", timeout=300)
    assert done.rc == 1
    step_lines = [ln for ln in done.out.splitlines() if ln.strip().startswith("step response_pairs failed")]
    assert len(step_lines) == 1 and "pairs/pandalm-pairs-bad.parquet" in step_lines[0]
    assert "IngestFileError" in step_lines[0]
    held = [ln.strip() for ln in done.out.splitlines() if ln.strip().startswith("not materialized because")]
    assert held[0] == "not materialized because of the above: pair_keys, quarantine_response_pairs, response_pairs"
    assert "ConnectionException" not in done.out and "Traceback" not in done.out
    log = next(ln.split(": ", 1)[1] for ln in done.out.splitlines() if ln.startswith("full log with stack traces"))
    text = Path(log).read_text()
    assert "IngestFileError" in text and 'File "' in text  # the whole stack is in the log
    assert len(done.out.splitlines()) < 60
