"""Label Studio round trip: exports validate; a Label Studio JSON export lands through ingestion as human labels."""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from prefgate.ingest.landing import land
from prefgate.ingest.mapping import _MISSING, map_rows, resolve_path
from prefgate.ingest.sources import SourceSpec, load_sources, spec_for
from prefgate.ingest.tables import build_labels, build_pairs
from prefgate.labelstudio import (
    LABEL_CONFIG,
    PAIRS_PREFIX,
    display_left_side,
    labelstudio_export_to_rows,
    land_labelstudio_export,
    land_review_tasks,
    read_export,
    to_tasks,
    write_exports,
)
from prefgate.routing import review_queue

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "sources.yaml"
BATCH = "2024-05-01"


# ------------------------------------------------------------------ the mapping feature: key=value list selector


def test_resolve_path_selects_list_element_by_key_value() -> None:
    rec = {
        "result": [
            {"from_name": "tie", "value": {"choices": ["Tie"]}},
            {"from_name": "comparison", "value": {"selected": "left"}},
            "not an object",
            {"from_name": ["unhashable"], "value": {}},
        ],
        "ids": [{"n": 7, "v": "seven"}],
    }
    assert resolve_path(rec, "result.from_name=comparison.value.selected") == "left"
    assert resolve_path(rec, "result.from_name=tie.value.choices.0") == "Tie"
    assert resolve_path(rec, "ids.n=7.v") == "seven"  # compared as text, like every mapped scalar
    assert resolve_path(rec, "result.from_name=nope.value") is _MISSING
    assert resolve_path(rec, "result.0.from_name") == "tie"  # indexes unchanged
    assert resolve_path({"a": {"k=v": 1}}, "a.k=v") == 1  # on a dict a step is still a key


def test_selector_in_a_mapped_source() -> None:
    spec = SourceSpec.model_validate(
        {
            "name": "s",
            "kind": "prompts",
            "glob": "*",
            "columns": {"prompt": "turns.role=user.content", "category": "turns.role=system.content"},
        }
    )
    turns = [{"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}]
    out = map_rows(spec, Path("f"), "f.jsonl", "0" * 64, [(1, {"turns": turns})])
    assert [(r["prompt"], r["category"]) for r in out.records] == [("Q", None)]


# ------------------------------------------------------------------ a tiny real ingest: pairs -> queue -> tasks


def _mtbench(qid: int) -> dict[str, Any]:
    return {
        "question_id": qid,
        "model_a": "m1",
        "model_b": "m2",
        "category": "writing" if qid % 2 else "math",
        "conversation_a": [
            {"role": "user", "content": f"Question {qid}?"},
            {"role": "assistant", "content": f"A{qid}"},
        ],
        "conversation_b": [
            {"role": "user", "content": f"Question {qid}?"},
            {"role": "assistant", "content": f"B{qid}"},
        ],
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def landed(tmp_path: Path) -> dict[str, Any]:
    """A landing folder with 8 MT-Bench pairs, ingested; plus a review queue over all of them."""
    landing = tmp_path / "landing"
    _write_jsonl(landing / "pairs" / "mtbench-pairs.jsonl", [_mtbench(q) for q in range(1, 9)])
    specs = load_sources(CONFIG)
    built, keys = build_pairs(land(landing, specs, "pairs").files)
    pairs = built.table
    cands = pairs.select(
        "pair_id",
        pl.lit("j1").alias("judge_id"),
        pl.lit("a").alias("choice"),
        pl.lit(0.4).alias("calibrated"),
        pl.lit(True).alias("position_consistent"),
        "category",
        "language",
        "source",
    )
    queue = review_queue(
        cands, pl.DataFrame(schema={"judge_id": pl.String, "slice": pl.String, "slice_value": pl.String})
    )
    assert queue.height == 8
    return {"landing": landing, "specs": specs, "pairs": pairs, "keys": keys, "queue": queue, "tmp": tmp_path}


def test_label_config_parses_and_matches_task_fields(landed: dict[str, Any]) -> None:
    root = ET.fromstring(LABEL_CONFIG)
    assert root.tag == "View"
    texts = {e.get("name"): e.get("value") for e in root.iter("Text")}
    pairwise = list(root.iter("Pairwise"))
    assert len(pairwise) == 1 and pairwise[0].get("name") == "comparison"
    left, right = (pairwise[0].get("toName") or "").split(",")
    assert (left, right) == ("answer_left", "answer_right") and left in texts and right in texts
    tie = [c for c in root.iter("Choices") if c.get("name") == "tie"]
    assert len(tie) == 1 and tie[0].get("toName") in texts
    assert [c.get("value") for c in tie[0].iter("Choice")] == ["Tie"]
    variables = {v[1:] for v in texts.values() if v and v.startswith("$")}
    tasks = to_tasks(landed["queue"], landed["pairs"])
    assert variables == {"prompt", "answer_left", "answer_right"}
    assert all(variables <= set(t["data"]) for t in tasks)


def test_tasks_record_a_random_display_order(landed: dict[str, Any]) -> None:
    queue, pairs = landed["queue"], landed["pairs"]
    tasks = to_tasks(queue, pairs, seed=0)
    assert [t["data"]["pair_id"] for t in tasks] == queue["pair_id"].to_list()
    by_id = {r["pair_id"]: r for r in pairs.iter_rows(named=True)}
    sides = []
    for t in tasks:
        d = t["data"]
        p = by_id[d["pair_id"]]
        other = "b" if d["left_side"] == "a" else "a"
        assert d["answer_left"] == p[f"response_{d['left_side']}"]
        assert d["answer_right"] == p[f"response_{other}"]
        assert d["prompt"] == p["prompt"] and d["category"] == p["category"]
        assert d["reasons"] == "low_calibrated_confidence" and t["meta"]["reasons"] == ["low_calibrated_confidence"]
        assert d["left_side"] == display_left_side(0, d["pair_id"]) == t["meta"]["left_side"]
        assert not any("m1" in str(v) or "m2" in str(v) for v in d.values())  # no model names shown
        sides.append(d["left_side"])
    assert set(sides) == {"a", "b"}  # both orders occur among 8 pairs with seed 0
    assert to_tasks(queue, pairs, seed=0) == tasks
    assert [t["data"]["left_side"] for t in to_tasks(queue, pairs, seed=1)] != sides
    with pytest.raises(ValueError, match="not in pairs"):
        to_tasks(pl.DataFrame({"pair_id": ["nope"]}), pairs)


def test_write_exports_files(landed: dict[str, Any]) -> None:
    out = landed["tmp"] / "exports"
    paths = write_exports(landed["queue"], landed["pairs"], out, seed=0)
    assert set(paths) == {"tasks", "label_config", "queue_jsonl", "queue_csv"}
    tasks = json.loads(paths["tasks"].read_text(encoding="utf-8"))
    assert tasks == to_tasks(landed["queue"], landed["pairs"], seed=0)
    ET.fromstring(paths["label_config"].read_text(encoding="utf-8"))
    lines = [json.loads(x) for x in paths["queue_jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [x["pair_id"] for x in lines] == landed["queue"]["pair_id"].to_list()
    assert lines[0]["reasons"] == ["low_calibrated_confidence"]
    with paths["queue_csv"].open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and rows[0]["reasons"] == "low_calibrated_confidence" and rows[0]["priority"] == "1"
    assert not list(out.glob(".*.tmp"))
    landing = landed["tmp"] / "landing2"
    more = write_exports(landed["queue"], landed["pairs"], out, seed=0, landing=landing, name="2024-05-01 round 1")
    assert more["landing_pairs"] == landing / "pairs" / f"{PAIRS_PREFIX}2024-05-01-round-1.jsonl"
    landed_tasks = [json.loads(x) for x in more["landing_pairs"].read_text(encoding="utf-8").splitlines()]
    assert landed_tasks == tasks
    with pytest.raises(ValueError, match="needs a name"):
        write_exports(landed["queue"], landed["pairs"], out, landing=landing)


# ------------------------------------------------------------------ the loop back: a Label Studio JSON export


def _result_pairwise(side: str) -> dict[str, Any]:
    return {
        "value": {"selected": side},
        "id": f"pw-{side}",
        "from_name": "comparison",
        "to_name": "answer_left",
        "type": "pairwise",
        "origin": "manual",
    }


RESULT_TIE = {
    "value": {"choices": ["Tie"]},
    "id": "tie-1",
    "from_name": "tie",
    "to_name": "prompt",
    "type": "choices",
    "origin": "manual",
}


def _annotation(ann_id: int, task_id: int, by: Any, result: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """One annotation as Label Studio's JSON export writes it (fields of its Annotation serializer)."""
    return {
        "id": ann_id,
        "completed_by": by,
        "result": result,
        "was_cancelled": kw.get("was_cancelled", False),
        "ground_truth": False,
        "created_at": kw.get("created_at", "2024-05-01T10:00:00.000000Z"),
        "updated_at": "2024-05-01T10:00:05.000000Z",
        "draft_created_at": None,
        "lead_time": kw.get("lead_time", 12.5),
        "prediction": {},
        "result_count": 0,
        "unique_id": f"uid-{ann_id}",
        "import_id": None,
        "last_action": None,
        "task": task_id,
        "project": 3,
        "updated_by": by if isinstance(by, int) else by["id"],
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def _exported_task(task_id: int, task: dict[str, Any], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """A task as Label Studio exports it: the imported data and meta back verbatim, plus its own fields."""
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": "tasks.json",
        "drafts": [],
        "predictions": [],
        "data": task["data"],
        "meta": task["meta"],
        "created_at": "2024-04-30T09:00:00.000000Z",
        "updated_at": "2024-05-01T10:00:05.000000Z",
        "inner_id": task_id,
        "total_annotations": len([a for a in annotations if not a["was_cancelled"]]),
        "cancelled_annotations": len([a for a in annotations if a["was_cancelled"]]),
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": 7,
        "comment_authors": [],
    }


def _simulate_export(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Annotators 7 and 9 (9 exported expanded) label the tasks; some edge cases Label Studio produces too."""
    out = []
    for i, task in enumerate(tasks):
        tid = 100 + i
        side = "left" if i % 2 == 0 else "right"
        anns = [_annotation(1000 + 10 * i, tid, 7, [_result_pairwise(side)], lead_time=10 + i)]
        if i == 0:  # a second annotator, exported with completed_by expanded, who ticked Tie
            anns.append(_annotation(1001, tid, {"id": 9, "email": "r9@example.org"}, [RESULT_TIE]))
        if i == 1:  # both a side and Tie: contradictory
            anns.append(_annotation(1011, tid, 9, [RESULT_TIE, _result_pairwise("left")]))
        if i == 2:  # a skipped task
            anns.append(_annotation(1021, tid, 9, [], was_cancelled=True))
        if i == 7:  # never annotated: not a label
            anns = []
        out.append(_exported_task(tid, task, anns))
    return out


def test_export_lands_as_human_labels(landed: dict[str, Any]) -> None:
    landing, specs, pairs = landed["landing"], landed["specs"], landed["pairs"]
    tasks = to_tasks(landed["queue"], pairs, seed=0)
    # At export time the tasks land in pairs/: their display order becomes pair keys, no new pair rows.
    pairs_file = land_review_tasks(tasks, landing, "round-1")
    assert pairs_file.name == f"{PAIRS_PREFIX}round-1.jsonl"
    built, keys = build_pairs(land(landing, specs, "pairs").files)
    assert built.table.equals(pairs) and built.aliased == 8 and built.reconciles
    review_keys = keys.filter(pl.col("source") == "labelstudio-review")
    assert review_keys.height == 8
    for t in tasks:
        d = t["data"]
        hit = review_keys.filter(pl.col("source_key") == f"{d['pair_id']}|{d['left_side']}")
        assert hit["pair_id"].to_list() == [d["pair_id"]] and hit["first_side"].to_list() == [d["left_side"]]

    # Label Studio's JSON export (an array) comes back and lands in human_labels/<batch>/.
    export = landed["tmp"] / "project-3-at-2024-05-01.json"
    export.write_text(json.dumps(_simulate_export(tasks), indent=2), encoding="utf-8")
    dest = land_labelstudio_export(export, landing, dt.date(2024, 5, 1))
    assert dest is not None
    assert dest == landing / "human_labels" / BATCH / "labelstudio-review__project-3-at-2024-05-01.jsonl"
    assert land_labelstudio_export(export, landing, BATCH) == dest  # same export again: no-op

    batch = land(landing, specs, "human_labels", BATCH)
    built_labels = build_labels(batch.files, "human_labels", keys, dt.date(2024, 5, 1))
    labels, rejected = built_labels.table, built_labels.rejected
    assert built_labels.reconciles and built_labels.rows_read == 7 + 3  # tasks 0-6, extra annotations on 0, 1, 2
    assert sorted((r.line, r.field) for r in rejected) == [(2, "choice"), (3, "choice")]
    assert "invalid choice 'left+Tie'" in next(r.reason for r in rejected if r.line == 2)
    assert "missing required field 'choice'" in next(r.reason for r in rejected if r.line == 3)

    left_of = {t["data"]["pair_id"]: t["data"]["left_side"] for t in tasks}
    other = {"a": "b", "b": "a"}
    rows = {(r["pair_id"], r["rater_id"]): r for r in labels.iter_rows(named=True)}
    assert len(rows) == 8
    for i, t in enumerate(tasks[:7]):
        pid = t["data"]["pair_id"]
        r = rows[(pid, "labelstudio-review:7")]
        picked_left = i % 2 == 0
        assert r["choice"] == (left_of[pid] if picked_left else other[left_of[pid]])
        assert r["raw_choice"] == ("left" if picked_left else "right")
        assert r["shown_first"] == left_of[pid]  # the left answer was seen first
        assert r["seconds"] == 10 + i
        assert r["labeled_at"] == dt.datetime(2024, 5, 1, 10, 0, 0)
        assert r["source"] == "labelstudio-review" and r["source_line"] == i + 1
        assert r["source_file"] == f"human_labels/{BATCH}/{dest.name}"
    tie = rows[(tasks[0]["data"]["pair_id"], "labelstudio-review:9")]  # expanded completed_by -> same id form
    assert tie["choice"] == "tie" and tie["raw_choice"] == "Tie"
    assert labels["label_id"].n_unique() == 8

    # The choice agrees with the canonical answer text the annotator clicked.
    by_id = {p["pair_id"]: p for p in pairs.iter_rows(named=True)}
    for i, t in enumerate(tasks[:7]):
        pid = t["data"]["pair_id"]
        clicked = t["data"]["answer_left"] if i % 2 == 0 else t["data"]["answer_right"]
        assert by_id[pid][f"response_{rows[(pid, 'labelstudio-review:7')]['choice']}"] == clicked


def test_export_reader_and_converter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an array"}', encoding="utf-8")
    with pytest.raises(ValueError, match="array of task objects"):
        read_export(bad)
    bad.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable"):
        read_export(bad)
    rows = labelstudio_export_to_rows(
        [{"id": 1, "annotations": []}, {"id": 2, "annotations": [{"id": 5, "completed_by": {"id": 4, "email": "x"}}]}]
    )
    assert rows == [{"id": 2, "annotations": [{"id": 5, "completed_by": 4}]}]
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    assert land_labelstudio_export(empty, tmp_path / "landing", BATCH) is None
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"id": 2, "annotations": [{"id": 5, "completed_by": 4}]}]), encoding="utf-8")
    land_labelstudio_export(one, tmp_path / "landing", BATCH, name="x")
    one.write_text(json.dumps([{"id": 3, "annotations": [{"id": 6, "completed_by": 4}]}]), encoding="utf-8")
    with pytest.raises(FileExistsError):
        land_labelstudio_export(one, tmp_path / "landing", BATCH, name="x")


def test_declared_sources_own_the_landed_files_and_sort_last() -> None:
    specs = load_sources(CONFIG)
    assert spec_for(specs, "pairs", f"pairs/{PAIRS_PREFIX}r1.jsonl").name == "labelstudio-review"
    assert spec_for(specs, "human_labels", f"human_labels/{BATCH}/labelstudio-review__x.jsonl").name == (
        "labelstudio-review"
    )
    # The review file must sort after every other pairs source's files, so originals stay first-seen.
    for s in specs:
        if s.kind == "pairs" and s.name != "labelstudio-review":
            prefix = re.split(r"[*?\[]", s.glob)[0]
            assert prefix < f"pairs/{PAIRS_PREFIX}", s.glob
    # The bundled sample has no Label Studio files, so its counts are unchanged.
    sample = ROOT / "data" / "sample" / "landing"
    if sample.is_dir():
        rels = [p.relative_to(sample).as_posix() for p in sample.rglob("*") if p.is_file()]
        globs = [s.glob for s in specs if s.name == "labelstudio-review"]
        assert not [r for r in rels if any(fnmatch.fnmatchcase(r, g) for g in globs)]
