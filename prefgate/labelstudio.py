"""Label Studio round trip for the human-review queue: export pairwise tasks, land completed annotations.

Out: :func:`write_exports` writes the Label Studio import file (``tasks.json``), the labelling config
(:data:`LABEL_CONFIG`: a ``Pairwise`` control over the two answers plus a ``Tie`` choice) and the queue as JSONL
and CSV. Each task shows the two answers in a seeded random order and records it (``data.left_side`` = the
canonical side shown on the left).

Back: nothing is special-cased in ingestion. Two sources declared in ``config/sources.yaml`` read the files this
module drops in the landing folder:

* ``pairs/zz-labelstudio-review__<stem>.jsonl`` (:func:`land_review_tasks`, at export time): one task per line,
  read by the pairs source ``labelstudio-review`` with the LEFT answer as the source's first response and key
  ``<pair_id>|<left_side>``. Its content is an existing pair, so it adds no pair row, only pair keys whose
  ``first_side`` is the side shown on the left. (``zz-`` sorts it after the original pair files, so the pair's
  first-seen provenance stays the original source's.)
* ``human_labels/<batch>/labelstudio-review__<stem>.jsonl`` (:func:`land_labelstudio_export`): Label Studio's
  JSON export (a JSON array) rewritten one annotated task per line. The human_labels source
  ``labelstudio-review`` explodes ``annotations``, picks the pairwise and tie results by ``from_name``, and maps
  left -> first, right -> second with ``shown_first: first``: through the pair keys, ``left`` becomes the
  canonical side that was displayed on the left, and ``shown_first`` is that side for every row.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

SOURCE_NAME = "labelstudio-review"
PAIRS_PREFIX = "zz-labelstudio-review__"
LABELS_PREFIX = "labelstudio-review__"
PAIRWISE_NAME = "comparison"
TIE_NAME = "tie"
TIE_VALUE = "Tie"

LABEL_CONFIG = """\
<View>
  <Header value="Which answer is better? Click it. Tick Tie only if neither is better."/>
  <View style="padding: 0.5em 1em; background: #f5f5f5; border-radius: 4px;">
    <Text name="prompt" value="$prompt"/>
  </View>
  <Pairwise name="comparison" toName="answer_left,answer_right"
            selectionStyle="background-color: #e6f4ea; border: 2px solid #34a853;"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1; padding: 0.5em; border: 1px solid #ddd; border-radius: 4px;">
      <Header value="Left" size="5"/>
      <Text name="answer_left" value="$answer_left"/>
    </View>
    <View style="flex: 1; padding: 0.5em; border: 1px solid #ddd; border-radius: 4px;">
      <Header value="Right" size="5"/>
      <Text name="answer_right" value="$answer_right"/>
    </View>
  </View>
  <Choices name="tie" toName="prompt" choice="single" showInline="true">
    <Choice value="Tie"/>
  </Choices>
</View>
"""

PAIR_COLUMNS = ("pair_id", "prompt", "response_a", "response_b")


def display_left_side(seed: int, pair_id: str) -> str:
    """The canonical side (``a``/``b``) shown on the left: a keyed hash bit, so it is random yet reproducible."""
    digest = hashlib.blake2b(pair_id.encode("utf-8"), digest_size=8, key=f"display:{seed}".encode()).digest()
    return "a" if digest[0] & 1 == 0 else "b"


def to_tasks(queue_rows: pl.DataFrame, pairs: pl.DataFrame, *, seed: int = 0) -> list[dict[str, Any]]:
    """Label Studio import tasks, one per queue row in queue order.

    ``queue_rows``: :func:`prefgate.routing.review_queue` output (``pair_id``, ``reasons``, ``priority``).
    ``pairs``: ``response_pairs`` (``pair_id``, ``prompt``, ``response_a``, ``response_b``; ``category`` and
    ``language`` are carried when present). Judge verdicts and model names stay out of the tasks so they cannot
    anchor the annotator.
    """
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs: missing columns {missing}")
    extra = [c for c in ("category", "language") if c in pairs.columns]
    keep = pairs.select(*PAIR_COLUMNS, *extra).unique("pair_id", keep="first")
    q = queue_rows.select(
        "pair_id",
        pl.col("reasons") if "reasons" in queue_rows.columns else pl.lit([], pl.List(pl.String)).alias("reasons"),
        pl.col("priority") if "priority" in queue_rows.columns else pl.int_range(1, pl.len() + 1).alias("priority"),
    )
    joined = q.join(keep, on="pair_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("prompt").is_null())["pair_id"].to_list()
    if unknown:
        raise ValueError(f"queue names pairs not in pairs: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    tasks: list[dict[str, Any]] = []
    for r in joined.iter_rows(named=True):
        left = display_left_side(seed, r["pair_id"])
        right = "b" if left == "a" else "a"
        reasons = list(r["reasons"] or [])
        data: dict[str, Any] = {
            "pair_id": r["pair_id"],
            "prompt": r["prompt"],
            "answer_left": r[f"response_{left}"],
            "answer_right": r[f"response_{right}"],
            "left_side": left,
            "reasons": "; ".join(reasons),
            "priority": r["priority"],
        }
        data |= {c: r[c] for c in extra}
        meta = {"pair_id": r["pair_id"], "left_side": left, "reasons": reasons, "display_seed": seed}
        tasks.append({"data": data, "meta": meta})
    return tasks


def _write_atomic(path: Path, text: str) -> Path:
    """Write via a temporary file and rename, so a landing sensor never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write_exports(
    queue: pl.DataFrame,
    pairs: pl.DataFrame,
    out_dir: str | Path,
    *,
    seed: int = 0,
    landing: str | Path | None = None,
    name: str | None = None,
) -> dict[str, Path]:
    """Write ``tasks.json`` (Label Studio import), ``label_config.xml``, ``review_queue.jsonl`` and ``.csv``.

    With ``landing`` and ``name``, the same tasks also land in ``landing/pairs/`` (:func:`land_review_tasks`,
    key ``landing_pairs``) so annotations exported later map back through their display order.
    """
    out = Path(out_dir)
    tasks = to_tasks(queue, pairs, seed=seed)
    paths = {
        "tasks": _write_atomic(out / "tasks.json", json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"),
        "label_config": _write_atomic(out / "label_config.xml", LABEL_CONFIG),
        "queue_jsonl": _write_atomic(out / "review_queue.jsonl", _jsonl(queue.iter_rows(named=True))),
    }
    flat = queue.with_columns(pl.col(c).list.join(";") for c, t in queue.schema.items() if isinstance(t, pl.List))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(flat.columns)
    writer.writerows(flat.iter_rows())
    paths["queue_csv"] = _write_atomic(out / "review_queue.csv", buf.getvalue())
    if landing is not None:
        if name is None:
            raise ValueError("write_exports: landing needs a name for the landed tasks file")
        paths["landing_pairs"] = land_review_tasks(tasks, landing, name)
    return paths


def _stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if not stem:
        raise ValueError(f"cannot make a file name from {name!r}")
    return stem


def _land(path: Path, text: str) -> Path:
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return path
        raise FileExistsError(f"{path}: already landed with different content; choose another name")
    return _write_atomic(path, text)


def land_review_tasks(tasks: list[dict[str, Any]], landing: str | Path, name: str) -> Path:
    """Drop the exported tasks in ``landing/pairs/`` so their display order becomes pair keys (see module doc)."""
    return _land(Path(landing) / "pairs" / f"{PAIRS_PREFIX}{_stem(name)}.jsonl", _jsonl(tasks))


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """Label Studio's JSON export: a JSON array of task objects."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable Label Studio JSON export: {exc}") from exc
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ValueError(f"{path}: a Label Studio JSON export is an array of task objects")
    return raw


def labelstudio_export_to_rows(export: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Landing rows from an export: one per task that has annotations, each task kept as exported.

    Tasks without annotations carry no label and are left out. ``completed_by`` exported expanded (an object with
    ``id`` and ``email``, older exports and ``annotations__completed_by`` serialization) is reduced to its ``id``,
    so an annotator keeps one rater identity whichever way the export was made.
    """
    rows = []
    for task in export:
        annotations = task.get("annotations") or []
        if not annotations:
            continue
        fixed = []
        for ann in annotations:
            by = ann.get("completed_by") if isinstance(ann, dict) else None
            fixed.append({**ann, "completed_by": by.get("id")} if isinstance(by, dict) else ann)
        rows.append({**task, "annotations": fixed})
    return rows


def land_labelstudio_export(
    export_path: str | Path, landing: str | Path, batch: str | dt.date, name: str | None = None
) -> Path | None:
    """Write an export's annotated tasks to ``landing/human_labels/<batch>/labelstudio-review__<name>.jsonl``.

    Returns the landed file (``None`` when the export holds no annotation). Landing the same export twice is a
    no-op; a different file under the same name is refused.
    """
    export_path = Path(export_path)
    rows = labelstudio_export_to_rows(read_export(export_path))
    if not rows:
        return None
    batch_name = batch.isoformat() if isinstance(batch, dt.date) else batch
    dest = Path(landing) / "human_labels" / batch_name / f"{LABELS_PREFIX}{_stem(name or export_path.stem)}.jsonl"
    return _land(dest, _jsonl(rows))
