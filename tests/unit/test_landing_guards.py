"""Landing guards: links out of the landing folder and special files are refused, unread files are reported,
batch folders must be dates, and known files keep their provenance over later copies."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefgate.ids import file_sha256
from prefgate.ingest.landing import (
    UnreadFile,
    batches,
    invalid_batches,
    is_batch_name,
    land,
    list_files,
    refused_files,
    unread_files,
)
from prefgate.ingest.sources import SourceSpec, load_sources
from tests.unit.test_landing import mtbench_pair

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sources.yaml"


@pytest.fixture
def specs() -> list[SourceSpec]:
    return load_sources(CONFIG)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture
def watchdog() -> Iterator[None]:
    """Fail instead of hanging if a FIFO is ever opened."""

    def fail(*_: object) -> None:
        raise TimeoutError("blocked: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _write(path: Path, text: str, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# ---------------------------------------------------------------- symlinks and special files


def test_symlink_out_of_landing_is_refused_unread(landing: Path, specs: list[SourceSpec]) -> None:
    secret = _write(landing.parent / "secret.jsonl", mtbench_pair(1) + "\nroot:x:0:0:root:/root:/bin/bash\n")
    (landing / "pairs").mkdir()
    (landing / "pairs" / "mtbench-pairs-x.jsonl").symlink_to(secret)
    (landing / "pairs" / "mtbench-pairs-passwd.jsonl").symlink_to("/etc/passwd")
    out = land(landing, specs, "pairs")
    assert out.files == []
    assert out.refused == [
        ("pairs/mtbench-pairs-passwd.jsonl", "symlink to /etc/passwd points outside the landing folder; not read"),
        ("pairs/mtbench-pairs-x.jsonl", f"symlink to {secret} points outside the landing folder; not read"),
    ]
    assert list_files(landing, "pairs") == []
    assert refused_files(landing, "pairs") == out.refused


def test_relative_symlink_out_names_link_text_and_target(landing: Path, specs: list[SourceSpec]) -> None:
    _write(landing.parent / "outside.jsonl", mtbench_pair(1) + "\n")
    (landing / "pairs").mkdir()
    (landing / "pairs" / "mtbench-pairs-r.jsonl").symlink_to("../../outside.jsonl")
    [(rel, reason)] = land(landing, specs, "pairs").refused
    assert rel == "pairs/mtbench-pairs-r.jsonl"
    assert reason == (
        f"symlink to ../../outside.jsonl ({landing.parent.resolve() / 'outside.jsonl'}) "
        "points outside the landing folder; not read"
    )


def test_symlink_inside_landing_is_read_under_the_link_name(landing: Path, specs: list[SourceSpec]) -> None:
    real = _write(landing / "archive" / "kept.jsonl", mtbench_pair(1) + "\n" + mtbench_pair(2) + "\n")
    (landing / "pairs").mkdir()
    (landing / "pairs" / "mtbench-pairs-1.jsonl").symlink_to("../archive/kept.jsonl")
    out = land(landing, specs, "pairs")
    assert out.refused == []
    [m] = out.files
    assert m.source_file == "pairs/mtbench-pairs-1.jsonl"
    assert m.file_sha256 == file_sha256(str(real))
    assert len(m.records) == 2
    assert unread_files(landing, specs) == []  # archive/kept.jsonl is read through the link


def test_kind_folder_linked_out_of_landing_is_refused(landing: Path, tmp_path: Path, specs: list[SourceSpec]) -> None:
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "mtbench-pairs-1.jsonl", mtbench_pair(1) + "\n")
    (landing / "pairs").symlink_to(elsewhere, target_is_directory=True)
    out = land(landing, specs, "pairs")
    assert out.files == []
    assert out.refused == [("pairs", f"symlink to {elsewhere} points outside the landing folder; not read")]
    assert [u.path for u in unread_files(landing, specs)] == ["pairs"]


def test_batch_folder_linked_out_of_landing_is_not_a_batch(landing: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "llmfao-crowd.csv", "id,worker,winner\nk1,w1,left\n")
    (landing / "human_labels").mkdir()
    (landing / "human_labels" / "2026-11-05").symlink_to(elsewhere, target_is_directory=True)
    assert batches(landing, "human_labels") == []
    [(folder, reason)] = invalid_batches(landing, "human_labels")
    assert folder == "human_labels/2026-11-05"
    assert "points outside the landing folder" in reason
    assert list_files(landing, "human_labels", "2026-11-05") == []
    assert refused_files(landing, "human_labels", "2026-11-05")[0][0] == "human_labels/2026-11-05"


def test_batch_with_dotdot_cannot_leave_landing(landing: Path, tmp_path: Path) -> None:
    _write(tmp_path / "x" / "llmfao-crowd.csv", "id,worker,winner\nk1,w1,left\n")
    (landing / "human_labels").mkdir()
    assert list_files(landing, "human_labels", "../../x") == []
    assert refused_files(landing, "human_labels", "../../x") == [
        ("human_labels/../../x", "resolves to a place outside the landing folder; not read")
    ]


def test_fifo_is_refused_without_being_opened(landing: Path, specs: list[SourceSpec], watchdog: None) -> None:
    (landing / "pairs").mkdir()
    os.mkfifo(landing / "pairs" / "mtbench-pairs-fifo.jsonl")
    _write(landing / "pairs" / "mtbench-pairs-1.jsonl", mtbench_pair(1) + "\n")
    out = land(landing, specs, "pairs")
    assert [m.source_file for m in out.files] == ["pairs/mtbench-pairs-1.jsonl"]
    assert out.refused == [("pairs/mtbench-pairs-fifo.jsonl", "a FIFO (named pipe), not a regular file; not read")]
    unread = unread_files(landing, specs)
    assert unread == [UnreadFile("pairs/mtbench-pairs-fifo.jsonl", out.refused[0][1])]


def test_symlink_to_fifo_inside_landing_is_refused(landing: Path, specs: list[SourceSpec], watchdog: None) -> None:
    os.mkfifo(landing / "pipe")
    (landing / "pairs").mkdir()
    (landing / "pairs" / "mtbench-pairs-p.jsonl").symlink_to("../pipe")
    [(rel, reason)] = land(landing, specs, "pairs").refused
    assert rel == "pairs/mtbench-pairs-p.jsonl"
    assert reason == "a FIFO (named pipe), not a regular file; not read"


def test_broken_and_looping_symlinks_are_refused(landing: Path, specs: list[SourceSpec]) -> None:
    (landing / "pairs").mkdir()
    (landing / "pairs" / "mtbench-pairs-gone.jsonl").symlink_to("missing.jsonl")
    (landing / "pairs" / "mtbench-pairs-loop.jsonl").symlink_to("mtbench-pairs-loop.jsonl")
    refused = dict(land(landing, specs, "pairs").refused)
    assert set(refused) == {"pairs/mtbench-pairs-gone.jsonl", "pairs/mtbench-pairs-loop.jsonl"}
    assert all("not read" in r for r in refused.values())
    assert "cannot be followed" in refused["pairs/mtbench-pairs-gone.jsonl"]


# ---------------------------------------------------------------- unread files and batch folders


def test_is_batch_name() -> None:
    assert is_batch_name("2026-11-10")
    for bad in ("20261110", "not-a-date", "2026-13-01", "2026-02-30", "2026-1-05", "２０２６-11-10", " 2026-11-10"):
        assert not is_batch_name(bad), bad


def test_batches_are_dates_only(landing: Path) -> None:
    labels = landing / "human_labels"
    _write(labels / "2026-11-02" / "llmfao-crowd.csv", "id,worker,winner\n")
    _write(labels / "not-a-date" / "llmfao-crowd.csv", "id,worker,winner\n")
    _write(labels / "not-a-date" / "llmfao-crowd-2.csv", "id,worker,winner\n")
    _write(labels / "20261110" / "llmfao-crowd.csv", "id,worker,winner\n")
    (labels / "2026-11-09").mkdir()
    (labels / ".staging").mkdir()
    assert batches(landing, "human_labels") == ["2026-11-02", "2026-11-09"]
    assert invalid_batches(landing, "human_labels") == [
        (
            "human_labels/20261110",
            "batch folder '20261110' is not a date YYYY-MM-DD; its 1 file is not read until it is renamed",
        ),
        (
            "human_labels/not-a-date",
            "batch folder 'not-a-date' is not a date YYYY-MM-DD; its 2 files are not read until it is renamed",
        ),
    ]
    assert invalid_batches(landing, "pairs") == []


def test_unread_files_names_every_file_nobody_reads(landing: Path, specs: list[SourceSpec], watchdog: None) -> None:
    crowd = "id,worker,winner\nk1,w1,left\n"
    _write(landing / "pairs" / "mtbench-pairs-1.jsonl", mtbench_pair(1) + "\n")  # read
    _write(landing / "human_labels" / "2026-11-02" / "llmfao-crowd.csv", crowd)  # read
    _write(landing / "pair" / "mtbench-pairs-2.jsonl", mtbench_pair(2) + "\n")  # misspelt folder
    _write(landing / "stray.jsonl", "{}\n")  # directly in the landing root
    _write(landing / "pairs" / "sub" / "mtbench-pairs-3.jsonl", mtbench_pair(3) + "\n")  # nested
    _write(landing / "human_labels" / "llmfao-crowd.csv", crowd)  # label file outside a batch
    _write(landing / "judge_labels" / "llmfao-gpt4.csv", crowd)  # label file outside a batch
    _write(landing / "human_labels" / "not-a-date" / "llmfao-crowd.csv", crowd)
    _write(landing / "human_labels" / "2026-11-02" / "deeper" / "llmfao-crowd.csv", crowd)
    _write(landing / "prompts" / "mystery.jsonl", "{}\n")  # no source declares it
    _write(landing / "pairs" / ".hidden.jsonl", "ignored")  # hidden: silent
    _write(landing / ".cache" / "x.jsonl", "ignored")  # hidden folder: silent
    (landing / "pairs" / "mtbench-pairs-passwd.jsonl").symlink_to("/etc/passwd")
    os.mkfifo(landing / "pair" / "fifo")
    got = {u.path: u.reason for u in unread_files(landing, specs)}
    expected_folders = "prompts, pairs, eval, human_labels/<YYYY-MM-DD>, judge_labels/<YYYY-MM-DD>"
    assert got == {
        "human_labels/2026-11-02/deeper/llmfao-crowd.csv": (
            "nested folder: only files directly in landing/human_labels/2026-11-02/ are read"
        ),
        "human_labels/llmfao-crowd.csv": (
            "label file not inside a batch folder named YYYY-MM-DD (landing/human_labels/<YYYY-MM-DD>/)"
        ),
        "human_labels/not-a-date/llmfao-crowd.csv": (
            "batch folder 'not-a-date' is not a date YYYY-MM-DD; its 1 file is not read until it is renamed"
        ),
        "judge_labels/llmfao-gpt4.csv": (
            "label file not inside a batch folder named YYYY-MM-DD (landing/judge_labels/<YYYY-MM-DD>/)"
        ),
        "pair/fifo": "a FIFO (named pipe), not a regular file; not read",
        "pair/mtbench-pairs-2.jsonl": (
            f"in landing/pair/, which is not a landing folder (expected one of: {expected_folders})"
        ),
        "pairs/mtbench-pairs-passwd.jsonl": "symlink to /etc/passwd points outside the landing folder; not read",
        "pairs/sub/mtbench-pairs-3.jsonl": "nested folder: only files directly in landing/pairs/ are read",
        "prompts/mystery.jsonl": (
            "no prompts source in the sources file declares this file: ingesting prompts stops with an error "
            "until the sources file or the file's name is fixed"
        ),
        "stray.jsonl": (
            f"directly in the landing folder; files are read only from its sub-folders ({expected_folders})"
        ),
    }


def test_unread_files_empty_for_clean_or_missing_landing(landing: Path, specs: list[SourceSpec]) -> None:
    assert unread_files(landing / "nope", specs) == []
    _write(landing / "pairs" / "mtbench-pairs-1.jsonl", mtbench_pair(1) + "\n")
    _write(landing / "judge_labels" / "2026-11-02" / "llmfao-gpt4.csv", "id,x\n")
    assert unread_files(landing, specs) == []


# ---------------------------------------------------------------- known files and read order


def test_known_file_is_read_before_a_new_copy_of_its_rows(landing: Path, specs: list[SourceSpec]) -> None:
    # The new file sorts first by name and is even older on disk; the known one still goes first, so its label
    # is the one kept and the new file's duplicate is the one quarantined downstream.
    batch = landing / "human_labels" / "2026-11-02"
    original = _write(batch / "llmfao-crowd.csv", "id,worker,winner\nk1,w1,left\n", mtime=2_000_000_000)
    _write(batch / "llmfao-crowd-a.csv", "id,worker,winner\nk1,w1,left\nk2,w1,right\n", mtime=1_000_000_000)
    known = {"human_labels/2026-11-02/llmfao-crowd.csv": file_sha256(str(original))}
    out = land(landing, specs, "human_labels", "2026-11-02", known_files=known)
    assert [m.source_file for m in out.files] == [
        "human_labels/2026-11-02/llmfao-crowd.csv",
        "human_labels/2026-11-02/llmfao-crowd-a.csv",
    ]
    # Without that record, new files go oldest first, then by name.
    out = land(landing, specs, "human_labels", "2026-11-02")
    assert out.files[0].source_file == "human_labels/2026-11-02/llmfao-crowd-a.csv"


def test_new_files_are_read_oldest_first_then_by_name(landing: Path, specs: list[SourceSpec]) -> None:
    pairs = landing / "pairs"
    _write(pairs / "mtbench-pairs-a.jsonl", mtbench_pair(1) + "\n", mtime=1_700_000_300)
    _write(pairs / "mtbench-pairs-b.jsonl", mtbench_pair(2) + "\n", mtime=1_700_000_100)
    _write(pairs / "mtbench-pairs-c.jsonl", mtbench_pair(3) + "\n", mtime=1_700_000_100)
    out = land(landing, specs, "pairs")
    assert [m.source_file for m in out.files] == [
        "pairs/mtbench-pairs-b.jsonl",
        "pairs/mtbench-pairs-c.jsonl",
        "pairs/mtbench-pairs-a.jsonl",
    ]


def test_redropped_bytes_keep_provenance_with_the_known_file(landing: Path, specs: list[SourceSpec]) -> None:
    body = mtbench_pair(1) + "\n" + mtbench_pair(2) + "\n"
    original = _write(landing / "pairs" / "mtbench-pairs.jsonl", body, mtime=1_700_000_000)
    _write(landing / "pairs" / "mtbench-pairs-copy.jsonl", body, mtime=1_600_000_000)  # sorts and dates first
    known = {"pairs/mtbench-pairs.jsonl": file_sha256(str(original))}
    out = land(landing, specs, "pairs", known_files=known)
    assert [m.source_file for m in out.files] == ["pairs/mtbench-pairs.jsonl"]
    assert out.skipped_duplicate_files == [("pairs/mtbench-pairs-copy.jsonl", "pairs/mtbench-pairs.jsonl")]
    assert out.renamed == []


def test_copy_of_a_known_file_in_another_batch_is_skipped(landing: Path, specs: list[SourceSpec]) -> None:
    crowd = "id,worker,winner\nk1,w1,left\n"
    first = _write(landing / "human_labels" / "2026-11-02" / "llmfao-crowd.csv", crowd)
    _write(landing / "human_labels" / "2026-11-03" / "llmfao-crowd-again.csv", crowd)
    known = {"human_labels/2026-11-02/llmfao-crowd.csv": file_sha256(str(first))}
    out = land(landing, specs, "human_labels", "2026-11-03", known_files=known)
    assert out.files == []
    assert out.skipped_duplicate_files == [
        ("human_labels/2026-11-03/llmfao-crowd-again.csv", "human_labels/2026-11-02/llmfao-crowd.csv")
    ]


def test_renamed_known_file_is_read_under_its_new_name(landing: Path, specs: list[SourceSpec]) -> None:
    # The known file is gone: skipping its renamed copy would drop its rows from a table rebuilt from landing.
    new = _write(landing / "pairs" / "mtbench-pairs-renamed.jsonl", mtbench_pair(1) + "\n")
    known = {"pairs/mtbench-pairs.jsonl": file_sha256(str(new))}
    out = land(landing, specs, "pairs", known_files=known)
    assert [m.source_file for m in out.files] == ["pairs/mtbench-pairs-renamed.jsonl"]
    assert out.renamed == [("pairs/mtbench-pairs-renamed.jsonl", "pairs/mtbench-pairs.jsonl")]
    assert out.skipped_duplicate_files == []


def test_changed_known_file_counts_as_new(landing: Path, specs: list[SourceSpec]) -> None:
    pairs = landing / "pairs"
    _write(pairs / "mtbench-pairs-a.jsonl", mtbench_pair(1) + "\n", mtime=1_700_000_000)
    _write(pairs / "mtbench-pairs-b.jsonl", mtbench_pair(2) + "\n", mtime=1_800_000_000)
    known = {"pairs/mtbench-pairs-b.jsonl": "0" * 64}  # recorded with other bytes: not the same file any more
    out = land(landing, specs, "pairs", known_files=known)
    assert [m.source_file for m in out.files] == ["pairs/mtbench-pairs-a.jsonl", "pairs/mtbench-pairs-b.jsonl"]


def test_seen_file_hashes_still_skip(landing: Path, specs: list[SourceSpec]) -> None:
    f = _write(landing / "human_labels" / "2026-11-02" / "llmfao-crowd.csv", "id,worker,winner\nk1,w1,left\n")
    seen = {file_sha256(str(f)): "human_labels/2026-11-01/x.csv"}
    out = land(landing, specs, "human_labels", "2026-11-02", seen_file_hashes=seen, known_files={})
    assert out.files == []
    assert out.skipped_duplicate_files == [
        ("human_labels/2026-11-02/llmfao-crowd.csv", "human_labels/2026-11-01/x.csv")
    ]
