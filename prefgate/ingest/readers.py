"""Readers for JSONL, CSV and Parquet landing files.

Each yields ``(line, record)`` or ``(line, error)``: a row that cannot be parsed becomes an error tied to its
line (its row number for Parquet) so it can be quarantined, while a file that cannot be read at all raises
:class:`IngestFileError` naming the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefgate.ingest.errors import IngestFileError


@dataclass(frozen=True)
class RowError:
    """A row that could not be parsed: its raw text and why."""

    field: str
    reason: str
    raw: str


Record = dict[str, Any]
Row = tuple[int, Record | RowError]


def read_jsonl(path: Path) -> Iterator[Row]:
    """One JSON object per line; blank lines are skipped, malformed lines become row errors."""
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, RowError("<line>", f"malformed JSON: {exc.msg} at column {exc.colno}", line)
                    continue
                if not isinstance(obj, dict):
                    yield line_no, RowError("<line>", f"expected a JSON object, got {type(obj).__name__}", line)
                    continue
                yield line_no, obj
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestFileError(f"{path}: cannot read JSONL file: {exc}") from exc


def read_csv(path: Path) -> Iterator[Row]:
    """CSV with a header row; every value is read as text. Lines are physical line numbers of each record."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise IngestFileError(f"{path}: empty CSV file (no header row)") from None
            if len(set(header)) != len(header):
                raise IngestFileError(f"{path}: CSV header has duplicate column names: {header}")
            start = reader.line_num + 1
            for values in reader:
                line_no, start = start, reader.line_num + 1
                if not values:
                    continue
                if len(values) != len(header):
                    raw = json.dumps(values, ensure_ascii=False)
                    reason = f"row has {len(values)} fields, header has {len(header)}"
                    yield line_no, RowError("<row>", reason, raw)
                    continue
                yield line_no, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise IngestFileError(f"{path}: cannot parse CSV: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestFileError(f"{path}: cannot read CSV file: {exc}") from exc


def read_parquet(path: Path) -> Iterator[Row]:
    """Parquet rows; ``line`` is the 1-based row number."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise IngestFileError(f"{path}: cannot read Parquet file: {exc}") from exc
    yield from enumerate(table.to_pylist(), start=1)


READERS = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}


def read_rows(path: Path, fmt: str) -> Iterator[Row]:
    """Dispatch on format."""
    return READERS[fmt](path)
