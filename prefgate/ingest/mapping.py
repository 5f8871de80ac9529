"""Apply a declared source mapping to parsed rows: adapters, explode/unpivot, field extraction, type checks.

The output is one flat record of text fields per accepted row, plus a quarantine entry (file, line, field,
reason, raw) for every row that cannot be mapped. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefgate.ingest.readers import Record, Row, RowError
from prefgate.ingest.sources import Concat, ShownOrder, SourceSpec

_MISSING = object()


@dataclass(frozen=True)
class Rejected:
    """A quarantined row."""

    source: str
    source_file: str
    line: int
    field: str
    reason: str
    raw: str


@dataclass
class Mapped:
    """A mapped file: accepted text records (with ``_line`` and ``_raw``) and rejected rows."""

    spec: SourceSpec
    source_file: str
    file_sha256: str
    rows_read: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _raw(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def _select(items: list[Any], step: str) -> Any:
    """A ``key=value`` step on a list: the first object whose ``key`` reads as ``value`` (``_MISSING`` if none)."""
    key, _, want = step.partition("=")
    for item in items:
        if isinstance(item, dict) and key in item:
            try:
                if _scalar_text(item[key]) == want:
                    return item
            except ValueError:
                continue
    return _MISSING


def resolve_path(record: Any, path: str) -> Any:
    """Follow a dotted path (``a.0.content``) through dicts and lists; ``_MISSING`` if any step is absent.

    On a list, a step is an index (``0``, ``-1``) or a selector ``key=value`` that picks the first object whose
    ``key`` equals ``value`` (``result.from_name=choice.value``): labelling tools emit one result object per
    control, in no fixed order.
    """
    if isinstance(record, dict) and path in record:
        return record[path]
    node = record
    for step in path.split("."):
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.lstrip("-").isdigit() and -len(node) <= int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, list) and "=" in step:
            node = _select(node, step)
            if node is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return node


def _scalar_text(value: Any) -> str | None:
    """A scalar as text; ``None`` for null/empty; ValueError for lists, dicts and other non-scalars."""
    if value is None or value is _MISSING:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | str):
        text = str(value)
        return text if text.strip() else None
    raise ValueError(f"expected a scalar, got {type(value).__name__}")


def _extract(record: Record, spec_value: Any) -> str | None:
    if isinstance(spec_value, Concat):
        parts = [_scalar_text(resolve_path(record, p)) for p in spec_value.concat]
        kept = [p for p in parts if p is not None]
        return spec_value.sep.join(kept) if kept else None
    if isinstance(spec_value, list):
        parts = [_scalar_text(resolve_path(record, p)) for p in spec_value]
        if any(p is None for p in parts):
            return None
        return "|".join(p for p in parts if p is not None)
    return _scalar_text(resolve_path(record, spec_value))


def resolve_shown_first(record: Record, order: ShownOrder) -> str:
    """The side (first/second) a row says was displayed first; ValueError naming the value and the allowed ones."""
    where = f"field 'shown_first' (source '{order.column}')"
    allowed = ", ".join(f"'{k}'" for k in sorted(order.values))
    try:
        raw = _extract(record, order.column)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} (allowed: {allowed})") from None
    if raw is None:
        raise ValueError(f"{where}: missing order value (allowed: {allowed})")
    side = order.values.get(raw)
    if side is None:
        raise ValueError(f"{where}: invalid value '{raw}' (allowed: {allowed})")
    return side


def split_hh_dialogue(record: Record) -> Record:
    """hh-rlhf rows hold two full dialogues that share every turn but the last assistant turn.

    Returns the record with ``prompt`` (the shared dialogue up to and including the last "Assistant:" cue) and
    ``chosen``/``rejected`` reduced to the final assistant turns.
    """
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise ValueError("hh-rlhf row needs text fields 'chosen' and 'rejected'")
    cue = "\n\nAssistant:"
    cut_c, cut_r = chosen.rfind(cue), rejected.rfind(cue)
    if cut_c < 0 or cut_r < 0 or chosen[:cut_c] != rejected[:cut_r]:
        raise ValueError("chosen and rejected do not share a dialogue prefix ending in an Assistant turn")
    out = dict(record)
    out["prompt"] = chosen[: cut_c + len(cue)].strip()
    out["chosen"] = chosen[cut_c + len(cue) :].strip()
    out["rejected"] = rejected[cut_r + len(cue) :].strip()
    return out


def _expand(spec: SourceSpec, record: Record) -> list[Record]:
    """Adapter, then explode, then unpivot: one source row can become several records."""
    if spec.adapter == "hh_rlhf_dialogue":
        record = split_hh_dialogue(record)
    records = [record]
    if spec.explode is not None:
        items = record.get(spec.explode)
        if not isinstance(items, list):
            raise ValueError(f"field '{spec.explode}' to explode is not a list")
        records = [{**record, spec.explode: item} for item in items]
    if spec.unpivot is not None:
        up = spec.unpivot
        missing = [c for c in up.columns if c not in record]
        if missing:
            raise ValueError(f"unpivot columns missing: {missing}")
        records = [
            {**{k: v for k, v in r.items() if k not in up.columns}, up.variable: c, up.value: r[c]}
            for r in records
            for c in up.columns
        ]
    return records


def map_rows(spec: SourceSpec, path: Path, rel_path: str, file_sha: str, rows: Iterable[Row]) -> Mapped:
    """Map every parsed row of one file; rows that fail any step are rejected with the failing field."""
    out = Mapped(spec=spec, source_file=rel_path, file_sha256=file_sha)

    def reject(line: int, fld: str, reason: str, raw: str) -> None:
        out.rejected.append(Rejected(spec.name, rel_path, line, fld, reason, raw))

    for line, row in rows:
        out.rows_read += 1
        if isinstance(row, RowError):
            reject(line, row.field, row.reason, row.raw)
            continue
        raw = _raw(row)
        try:
            expanded = _expand(spec, row)
        except ValueError as exc:
            reject(line, spec.explode or (spec.unpivot.value if spec.unpivot else "<row>"), str(exc), raw)
            continue
        if not expanded:
            reject(line, spec.explode or "<row>", f"field '{spec.explode}' is an empty list: no labels", raw)
            continue
        # An exploded row counts once per produced record, so counts reconcile record by record.
        out.rows_read += len(expanded) - 1
        for rec in expanded:
            values: dict[str, Any] = {"_line": line, "_raw": raw if len(expanded) == 1 else _raw(rec)}
            bad = None
            for target, spec_value in spec.columns.items():
                try:
                    values[target] = _extract(rec, spec_value)
                except ValueError as exc:
                    bad = (target, f"field '{target}' (source '{spec_value}'): {exc}")
                    break
            if bad is not None:
                reject(line, bad[0], bad[1], values["_raw"])
                continue
            for target, const in spec.constants.items():
                if values.get(target) is None:
                    values[target] = const
            if isinstance(spec.shown_first, ShownOrder):
                # Per-row display order, resolved to first/second here so the label builder sees one side.
                try:
                    values["shown_first"] = resolve_shown_first(rec, spec.shown_first)
                except ValueError as exc:
                    reject(line, "shown_first", str(exc), values["_raw"])
                    continue
            out.records.append(values)
    if len(out.records) + len(out.rejected) != out.rows_read:  # pragma: no cover - invariant
        raise AssertionError(f"{rel_path}: mapped counts do not reconcile")
    return out
