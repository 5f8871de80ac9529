"""Turn mapped landing records into prefgate's tables, with content-hash ids and a quarantine for bad rows.

Every builder returns ``(table, rejected)`` and keeps the invariant rows_read = accepted + aliased + rejected,
which the assets report as metadata.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from polars._typing import SchemaDict

from prefgate.ids import content_hash, pair_id, prompt_id, response_id
from prefgate.ingest.mapping import Mapped, Rejected
from prefgate.ingest.sources import FIELDS

PROVENANCE: SchemaDict = {
    "source": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
    "file_sha256": pl.String,
}
PROMPT_COLUMNS: SchemaDict = {
    "prompt_id": pl.String,
    "prompt": pl.String,
    "source_key": pl.String,
    "category": pl.String,
    "language": pl.String,
    **PROVENANCE,
}
EVAL_COLUMNS: SchemaDict = {**PROMPT_COLUMNS, "safety": pl.String}
PAIR_COLUMNS: SchemaDict = {
    "pair_id": pl.String,
    "prompt_id": pl.String,
    "prompt": pl.String,
    "response_a_id": pl.String,
    "response_a": pl.String,
    "model_a": pl.String,
    "response_b_id": pl.String,
    "response_b": pl.String,
    "model_b": pl.String,
    "source_key": pl.String,
    "category": pl.String,
    "language": pl.String,
    "reference_choice": pl.String,
    **PROVENANCE,
}
PAIR_KEY_COLUMNS: SchemaDict = {
    "source": pl.String,
    "source_key": pl.String,
    "pair_id": pl.String,
    "first_side": pl.String,
}
LABEL_COLUMNS: SchemaDict = {
    "label_id": pl.String,
    "pair_id": pl.String,
    "pair_key": pl.String,
    "batch_date": pl.Date,
    "choice": pl.String,
    "raw_choice": pl.String,
    "shown_first": pl.String,
    **PROVENANCE,
}
HUMAN_COLUMNS: SchemaDict = {
    **LABEL_COLUMNS,
    "rater_id": pl.String,
    "seconds": pl.Float64,
    "labeled_at": pl.Datetime("us"),
}
JUDGE_COLUMNS: SchemaDict = {
    **LABEL_COLUMNS,
    "judge_id": pl.String,
    "rationale": pl.String,
    "probability_a": pl.Float64,
}
QUARANTINE_COLUMNS: SchemaDict = {
    "quarantine_id": pl.String,
    "table": pl.String,
    "batch_date": pl.Date,
    "source": pl.String,
    "source_file": pl.String,
    "line": pl.Int64,
    "field": pl.String,
    "reason": pl.String,
    "raw": pl.String,
}
OTHER = {"a": "b", "b": "a"}


class RowRejected(ValueError):
    """Raised inside a row builder: the row goes to quarantine with this field and reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass
class Built:
    """A built table with its rejected rows and counts."""

    table: pl.DataFrame
    rejected: list[Rejected]
    rows_read: int
    aliased: int = 0

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.table.height + self.aliased + len(self.rejected)


def _records(files: Iterable[Mapped]) -> Iterator[tuple[Mapped, dict[str, Any]]]:
    for m in files:
        for rec in m.records:
            yield m, rec


def _require(rec: dict[str, Any], kind: str) -> None:
    for name in sorted(FIELDS[kind][1]):
        if rec.get(name) is None:
            raise RowRejected(name, f"missing required field '{name}'")


def _provenance(m: Mapped, rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": m.spec.name,
        "source_file": m.source_file,
        "source_line": rec["_line"],
        "file_sha256": m.file_sha256,
    }


def _reject(m: Mapped, rec: dict[str, Any], exc: RowRejected) -> Rejected:
    return Rejected(m.spec.name, m.source_file, rec["_line"], exc.field, exc.reason, rec["_raw"])


def _where(row: dict[str, Any]) -> str:
    return f"{row['source_file']}:{row['source_line']}"


def build_prompts(files: list[Mapped], kind: str = "prompts") -> Built:
    """``raw_prompts`` / ``eval_prompts``: one row per distinct prompt text; exact repeats are quarantined."""
    rows: dict[str, dict[str, Any]] = {}
    rejected = [r for m in files for r in m.rejected]
    for m, rec in _records(files):
        try:
            _require(rec, kind)
            pid = prompt_id(rec["prompt"])
            if pid in rows:
                raise RowRejected("prompt", f"duplicate prompt: same text as {_where(rows[pid])}")
            row = {
                "prompt_id": pid,
                "prompt": rec["prompt"],
                "source_key": rec.get("source_key"),
                "category": rec.get("category"),
                "language": rec.get("language"),
                **_provenance(m, rec),
            }
            if kind == "eval_prompts":
                safety = rec.get("safety")
                if safety is not None and safety not in ("safe", "unsafe"):
                    raise RowRejected("safety", f"invalid safety '{safety}' (allowed: safe, unsafe)")
                row["safety"] = safety
            rows[pid] = row
        except RowRejected as exc:
            rejected.append(_reject(m, rec, exc))
    schema = EVAL_COLUMNS if kind == "eval_prompts" else PROMPT_COLUMNS
    table = pl.DataFrame(list(rows.values()), schema=schema, orient="row")
    return Built(table, rejected, sum(m.rows_read for m in files))


def build_pairs(files: list[Mapped]) -> tuple[Built, pl.DataFrame]:
    """``response_pairs`` (one row per pair_id, canonical a/b order) and ``pair_keys`` (every source key).

    A pair already seen under another key is an alias (kept in pair_keys, not duplicated); a source key reused
    for different content, an identical response on both sides, or a bad reference choice is quarantined.
    """
    pairs: dict[str, dict[str, Any]] = {}
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    rejected = [r for m in files for r in m.rejected]
    aliased = 0
    for m, rec in _records(files):
        try:
            _require(rec, "pairs")
            pid_ = prompt_id(rec["prompt"])
            r1, r2 = response_id(rec["response_first"]), response_id(rec["response_second"])
            if r1 == r2:
                raise RowRejected("response_second", "identical to response_first: a degenerate pair")
            pid = pair_id(pid_, r1, r2)
            first_side = "a" if r1 < r2 else "b"
            skey = rec.get("source_key") or pid
            ref = rec.get("reference_choice")
            if ref is not None:
                if ref not in ("first", "second"):
                    raise RowRejected("reference_choice", f"invalid reference_choice '{ref}' (first, second)")
                ref = first_side if ref == "first" else OTHER[first_side]
            key = (m.spec.name, skey)
            if key in keys:
                prev = keys[key]
                if prev["pair_id"] != pid:
                    raise RowRejected("source_key", f"key '{skey}' already names a different pair at {prev['at']}")
                raise RowRejected("source_key", f"duplicate row: key '{skey}' already read at {prev['at']}")
            prov = _provenance(m, rec)
            keys[key] = {"pair_id": pid, "first_side": first_side, "at": _where(prov)}
            if pid in pairs:
                aliased += 1
                continue
            sides = {
                first_side: (r1, rec["response_first"], rec.get("model_first")),
                OTHER[first_side]: (r2, rec["response_second"], rec.get("model_second")),
            }
            pairs[pid] = {
                "pair_id": pid,
                "prompt_id": pid_,
                "prompt": rec["prompt"],
                "response_a_id": sides["a"][0],
                "response_a": sides["a"][1],
                "model_a": sides["a"][2],
                "response_b_id": sides["b"][0],
                "response_b": sides["b"][1],
                "model_b": sides["b"][2],
                "source_key": skey,
                "category": rec.get("category"),
                "language": rec.get("language"),
                "reference_choice": ref,
                **prov,
            }
        except RowRejected as exc:
            rejected.append(_reject(m, rec, exc))
    table = pl.DataFrame(list(pairs.values()), schema=PAIR_COLUMNS, orient="row")
    key_rows = [
        {"source": s, "source_key": k, "pair_id": v["pair_id"], "first_side": v["first_side"]}
        for (s, k), v in keys.items()
    ]
    key_table = pl.DataFrame(key_rows, schema=PAIR_KEY_COLUMNS, orient="row")
    return Built(table, rejected, sum(m.rows_read for m in files), aliased), key_table


def _float(rec: dict[str, Any], name: str, lo: float | None = None, hi: float | None = None) -> float | None:
    value = rec.get(name)
    if value is None:
        return None
    try:
        out = float(value)
    except ValueError:
        raise RowRejected(name, f"field '{name}': expected a number, got '{value}'") from None
    if not math.isfinite(out) or (lo is not None and out < lo) or (hi is not None and out > hi):
        raise RowRejected(name, f"field '{name}': {value} is outside [{lo}, {hi}]")
    return out


def _timestamp(rec: dict[str, Any], name: str) -> dt.datetime | None:
    value = rec.get(name)
    if value is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RowRejected(name, f"field '{name}': expected an ISO-8601 timestamp, got '{value}'") from None
    return ts.astimezone(dt.UTC).replace(tzinfo=None) if ts.tzinfo else ts


def build_labels(
    files: list[Mapped],
    kind: str,
    pair_keys: pl.DataFrame,
    batch_date: dt.date,
    existing: pl.DataFrame | None = None,
) -> Built:
    """``human_labels`` / ``judge_labels`` for one batch.

    Choices are normalised to a/b/tie on the canonical pair, ``shown_first`` records which canonical response was
    displayed first (the source's constant, or the row's order resolved by the mapping). With
    ``choices_relative_to: shown`` a verdict (and ``probability_first``) refers to the response displayed first.
    ``existing`` (label_id, batch_date, source_file, source_line) holds labels of other batches: a label already
    ingested is quarantined as a duplicate rather than counted twice.
    """
    human = kind == "human_labels"
    key_map = {(r["source"], r["source_key"]): (r["pair_id"], r["first_side"]) for r in pair_keys.iter_rows(named=True)}
    seen: dict[str, str] = {}
    if existing is not None:
        for r in existing.iter_rows(named=True):
            seen[r["label_id"]] = f"batch {r['batch_date']} ({r['source_file']}:{r['source_line']})"
    rows: list[dict[str, Any]] = []
    rejected = [r for m in files for r in m.rejected]
    for m, rec in _records(files):
        spec = m.spec
        try:
            _require(rec, kind)
            assert spec.choices is not None and spec.shown_first is not None and spec.pairs_from is not None
            hit = key_map.get((spec.pairs_from, rec["pair_key"]))
            if hit is None:
                raise RowRejected(
                    "pair_key",
                    f"unknown pair: no pair '{rec['pair_key']}' from source '{spec.pairs_from}' in response_pairs",
                )
            pid, first_side = hit
            raw_choice = rec["choice"]
            verdict = spec.choices.get(raw_choice)
            if verdict is None:
                allowed = ", ".join(sorted(spec.choices))
                raise RowRejected("choice", f"invalid choice '{raw_choice}' (allowed: {allowed})")
            # Display order of this row, as first/second of the source's responses.
            order: str = spec.shown_first if isinstance(spec.shown_first, str) else rec["shown_first"]
            flip = spec.choices_relative_to == "shown" and order == "second"
            if flip and verdict != "tie":
                verdict = "second" if verdict == "first" else "first"
            side = {"first": first_side, "second": OTHER[first_side], "tie": "tie"}
            who = f"{spec.name}:{rec['rater_id']}" if human else rec["judge_id"]
            # Identity of a label: the source's own label key, else its row identity (pair key, rater, order,
            # verdict). The same file ingested twice yields the same ids; two rows of one rater on two keys
            # that happen to hold identical content stay two labels.
            lid = (
                content_hash(kind, spec.name, rec["label_key"])
                if rec.get("label_key")
                else content_hash(kind, spec.name, rec["pair_key"], who, order, raw_choice)
            )
            prov = _provenance(m, rec)
            if lid in seen:
                raise RowRejected("label_id", f"duplicate label: already ingested at {seen[lid]}")
            row: dict[str, Any] = {
                "label_id": lid,
                "pair_id": pid,
                "pair_key": rec["pair_key"],
                "batch_date": batch_date,
                "choice": side[verdict],
                "raw_choice": raw_choice,
                "shown_first": side[order],
                **prov,
            }
            if human:
                row |= {
                    "rater_id": who,
                    "seconds": _float(rec, "seconds", 0.0),
                    "labeled_at": _timestamp(rec, "labeled_at"),
                }
            else:
                p_first = _float(rec, "probability_first", 0.0, 1.0)
                if p_first is not None and flip:
                    p_first = 1.0 - p_first
                p_a = None if p_first is None else (p_first if first_side == "a" else 1.0 - p_first)
                row |= {"judge_id": who, "rationale": rec.get("rationale"), "probability_a": p_a}
            seen[lid] = _where(prov)
            rows.append(row)
        except RowRejected as exc:
            rejected.append(_reject(m, rec, exc))
    schema = HUMAN_COLUMNS if human else JUDGE_COLUMNS
    return Built(pl.DataFrame(rows, schema=schema, orient="row"), rejected, sum(m.rows_read for m in files))


def quarantine_frame(table: str, rejected: list[Rejected], batch_date: dt.date | None = None) -> pl.DataFrame:
    """Rejected rows as quarantine rows; the id hashes table, file, line, field, raw row and repeat count."""
    counts: dict[tuple[str, int, str, str], int] = {}
    rows = []
    for r in rejected:
        key = (r.source_file, r.line, r.field, r.raw)
        counts[key] = counts.get(key, 0) + 1
        rows.append(
            {
                "quarantine_id": content_hash(table, r.source_file, str(r.line), r.field, r.raw, str(counts[key])),
                "table": table,
                "batch_date": batch_date,
                "source": r.source,
                "source_file": r.source_file,
                "line": r.line,
                "field": r.field,
                "reason": r.reason,
                "raw": r.raw,
            }
        )
    return pl.DataFrame(rows, schema=QUARANTINE_COLUMNS, orient="row")
