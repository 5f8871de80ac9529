"""Landing discovery: files of a kind/batch are mapped through their declared source; byte-identical files skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefgate.ids import file_sha256
from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.landing import batches, land, list_files
from prefgate.ingest.sources import load_sources

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sources.yaml"


def mtbench_pair(qid: int) -> str:
    """One MT-Bench pair line (the shape config/sources.yaml maps), for landing tests."""
    return json.dumps(
        {
            "question_id": qid,
            "model_a": "m1",
            "model_b": "m2",
            "category": "writing",
            "conversation_a": [{"role": "user", "content": f"Q{qid}"}, {"role": "assistant", "content": "A"}],
            "conversation_b": [{"role": "user", "content": f"Q{qid}"}, {"role": "assistant", "content": "B"}],
        }
    )


def test_land_maps_files_and_skips_duplicates(tmp_path: Path) -> None:
    specs = load_sources(CONFIG)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    body = mtbench_pair(1) + "\n" + "{broken\n" + mtbench_pair(2) + "\n"
    (pairs / "mtbench-pairs-1.jsonl").write_text(body, encoding="utf-8")
    (pairs / "mtbench-pairs-2.jsonl").write_text(body, encoding="utf-8")  # same bytes
    (pairs / ".hidden.jsonl").write_text("ignored", encoding="utf-8")
    out = land(tmp_path, specs, "pairs")
    assert out.skipped_duplicate_files == [("pairs/mtbench-pairs-2.jsonl", "pairs/mtbench-pairs-1.jsonl")]
    [m] = out.files
    assert m.spec.name == "mtbench"
    assert m.source_file == "pairs/mtbench-pairs-1.jsonl"
    assert m.file_sha256 == file_sha256(str(pairs / "mtbench-pairs-1.jsonl"))
    assert out.rows_read == 3
    assert [(r["_line"], r["source_key"], r["prompt"]) for r in m.records] == [
        (1, "1|m1|m2", "Q1"),
        (3, "2|m1|m2", "Q2"),
    ]
    assert [(r.line, r.field) for r in m.rejected] == [(2, "<line>")]


def test_land_skips_files_seen_in_other_batches(tmp_path: Path) -> None:
    specs = load_sources(CONFIG)
    d = tmp_path / "human_labels" / "2024-05-02"
    d.mkdir(parents=True)
    (tmp_path / "human_labels" / "2024-05-01").mkdir()
    f = d / "llmfao-crowd.csv"
    f.write_text("id,worker,winner\nk1,w1,left\n", encoding="utf-8")
    assert batches(tmp_path, "human_labels") == ["2024-05-01", "2024-05-02"]
    assert list_files(tmp_path, "human_labels", "2024-05-02") == [f]
    sha = file_sha256(str(f))
    out = land(tmp_path, specs, "human_labels", "2024-05-02", seen_file_hashes={sha: "human_labels/2024-05-01/x.csv"})
    assert out.files == []
    assert out.skipped_duplicate_files == [
        ("human_labels/2024-05-02/llmfao-crowd.csv", "human_labels/2024-05-01/x.csv"),
    ]


def test_land_undeclared_file_is_error(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "mystery.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(IngestFileError, match=r"prompts/mystery\.jsonl"):
        land(tmp_path, load_sources(CONFIG), "prompts")
    assert land(tmp_path, load_sources(CONFIG), "pairs").files == []  # missing folder: nothing
