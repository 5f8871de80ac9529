"""Readers for JSONL, CSV and Parquet landing files.

Each yields ``(line, record)`` or ``(line, error)``: a row that cannot be parsed becomes an error tied to its
line (its row number for Parquet) so it can be quarantined, while a file that cannot be read at all raises
:class:`IngestFileError` naming the file. :func:`read_row_spans` also gives the last physical line of each row
(a CSV record can span lines), and :func:`line_coverage` checks that every physical data line of a file ends up
in exactly one record or one row error, so nothing can vanish between the file and the quarantine.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from prefgate.ingest.errors import IngestFileError


@dataclass(frozen=True)
class RowError:
    """A row that could not be parsed: its raw text and why."""

    field: str
    reason: str
    raw: str


Record = dict[str, Any]
Row = tuple[int, Record | RowError]
# (first line, last line, record or error); a CSV record with a quoted line break spans several lines.
Span = tuple[int, int, Record | RowError]
# Internally the CSV header is a span too, with ``None`` in place of the record.
_AnySpan = tuple[int, int, Record | RowError | None]


def _strip_eol(text: str) -> str:
    """A physical line without its line ending."""
    return text.rstrip("\r\n")


# ---------------------------------------------------------------- JSONL


def _jsonl_spans(path: Path) -> Iterator[_AnySpan]:
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    err = RowError("<line>", f"malformed JSON: {exc.msg} at column {exc.colno}", line)
                    yield line_no, line_no, err
                    continue
                if not isinstance(obj, dict):
                    err = RowError("<line>", f"expected a JSON object, got {type(obj).__name__}", line)
                    yield line_no, line_no, err
                    continue
                yield line_no, line_no, obj
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestFileError(f"{path}: cannot read JSONL file: {exc}") from exc


def read_jsonl(path: Path) -> Iterator[Row]:
    """One JSON object per line; blank lines are skipped, malformed lines become row errors."""
    for first, _, item in _jsonl_spans(path):
        if item is not None:
            yield first, item


# ---------------------------------------------------------------- CSV


class _PhysicalLines:
    """Numbered physical lines fed to :mod:`csv`, keeping the lines of the record being parsed.

    When a record turns out to be broken, the lines it swallowed can be handed back and parsed again, so a stray
    quote costs one line instead of the rest of the file.
    """

    def __init__(self, fh: TextIO) -> None:
        self._it = iter(fh)
        self._replay: deque[tuple[int, str]] = deque()
        self._next_no = 1
        self.taken: list[tuple[int, str]] = []
        self.eof_hits = 0

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        if self._replay:
            item = self._replay.popleft()
        else:
            text = next(self._it, None)
            if text is None:
                self.eof_hits += 1
                raise StopIteration
            item = (self._next_no, text)
            self._next_no += 1
        self.taken.append(item)
        return item[1]

    def start_record(self) -> None:
        self.taken = []

    def give_back(self, items: list[tuple[int, str]]) -> None:
        """Parse these lines again next, before any unread line."""
        self._replay.extendleft(reversed(items))


def _ends_quoted(text: str, quoted: bool) -> bool:
    """Whether a record is inside a quoted field at the end of this physical line (csv's default dialect).

    Used only to find where a record that :mod:`csv` rejected ends, so the rejection covers exactly its lines. It
    follows csv's lenient rules: a quote opens a field only at its start, ``""`` is a quote inside a quoted field,
    and text after a closing quote is literal up to the next comma.
    """
    if '"' not in text:
        return quoted
    start, plain, inside, after_quote = 0, 1, 2, 3
    state = inside if quoted else start
    for ch in _strip_eol(text):
        if state == start:
            state = inside if ch == '"' else (start if ch == "," else plain)
        elif state == plain:
            if ch == ",":
                state = start
        elif state == inside:
            if ch == '"':
                state = after_quote
        else:  # after_quote: a doubled quote, a field end, or (leniently) literal text
            state = inside if ch == '"' else (start if ch == "," else plain)
    return state == inside


def _line_label(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _unterminated(src: _PhysicalLines, taken: list[tuple[int, str]]) -> _AnySpan:
    """A quote opened on the record's first line never closes: quarantine that line, re-read the ones after it."""
    first, text = taken[0]
    src.give_back(taken[1:])
    reason = (
        f"unterminated quoted field starting on line {first} (a '\"' with no closing quote); "
        f"the line is quarantined and reading resumes on line {first + 1}"
    )
    return first, first, RowError("<row>", reason, _strip_eol(text))


def _reads_cleanly(lines: list[tuple[int, str]], width: int) -> bool:
    """Whether these lines parse as whole records of ``width`` fields (a quote still open at the end is allowed)."""
    texts = iter([text for _, text in lines])
    exhausted = False

    def feed() -> Iterator[str]:
        nonlocal exhausted
        yield from texts
        exhausted = True

    reader = csv.reader(feed(), strict=True)
    try:
        return all(len(values) in (0, width) for values in reader)
    except csv.Error:
        return exhausted  # only the last record is unfinished: the main loop reads it on


def _recover(src: _PhysicalLines, exc: csv.Error, hit_eof: bool, width: int) -> _AnySpan:
    """Turn a record :mod:`csv` rejected into a row error covering exactly the lines it takes.

    * End of file inside the record: its opening quote never closed, so only its first line is quarantined and
      the lines after it are parsed again.
    * A quote opened on line N runs across lines and is closed badly on line M, and lines N+1..M read as clean
      records on their own: a stray quote on line N swallowed them, so only line N is quarantined.
    * Otherwise (a field over csv's size limit, a bad quote inside one line, swallowed lines that do not read
      cleanly either): the record's real end is found by following the quotes and the whole record is
      quarantined, since which quote is wrong is ambiguous and no line of it should be accepted.
    """
    taken = list(src.taken)
    if hit_eof:
        return _unterminated(src, taken)
    first = taken[0][0]
    too_large = "field larger than field limit" in str(exc)
    if len(taken) > 1 and not too_large and _reads_cleanly(taken[1:], width):
        src.give_back(taken[1:])
        reason = (
            f"a '\"' on line {first} opens a quoted field that runs to line {taken[-1][0]} and is closed badly "
            f"there ({exc}); the lines after it read cleanly on their own, so line {first} is quarantined and "
            f"reading resumes on line {first + 1}"
        )
        return first, first, RowError("<row>", reason, _strip_eol(taken[0][1]))
    quoted = False
    idx = 0
    while True:
        if idx == len(taken):
            src.start_record()
            try:
                next(src)
            except StopIteration:
                return _unterminated(src, taken)
            taken.extend(src.taken)
        quoted = _ends_quoted(taken[idx][1], quoted)
        if not quoted:
            break
        idx += 1
    src.give_back(taken[idx + 1 :])
    last = taken[idx][0]
    reason = (
        f"cannot parse CSV record ({_line_label(first, last)}): {exc}; "
        f"the record is quarantined and reading resumes on line {last + 1}"
    )
    raw = _strip_eol("".join(text for _, text in taken[: idx + 1]))
    return first, last, RowError("<row>", reason, raw)


def _csv_spans(path: Path) -> Iterator[_AnySpan]:
    """Header span (record ``None``), then one span per record or row error; blank lines are skipped."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            src = _PhysicalLines(fh)
            # strict: a quote that closes and is followed by text is an error, not silently glued text, so a stray
            # quote that swallows lines up to the next quote is caught rather than read as one odd record.
            reader = csv.reader(src, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise IngestFileError(f"{path}: empty CSV file (no header row)") from None
            except csv.Error as exc:
                what = "unterminated quoted field" if src.eof_hits else str(exc)
                raise IngestFileError(f"{path}: line 1: cannot parse the CSV header row: {what}") from exc
            if len(set(header)) != len(header):
                raise IngestFileError(f"{path}: CSV header has duplicate column names: {header}")
            yield src.taken[0][0], src.taken[-1][0], None
            while True:
                src.start_record()
                eof_before = src.eof_hits
                try:
                    values = next(reader)
                except StopIteration:
                    leftover = [t for t in src.taken if _strip_eol(t[1])]
                    if not leftover:
                        break
                    # Strict csv raises on a quote open at end of file; should it ever end silently instead, the
                    # lines it took are still quarantined rather than lost.
                    yield _unterminated(src, src.taken)
                    continue
                except csv.Error as exc:
                    yield _recover(src, exc, src.eof_hits > eof_before, len(header))
                    continue
                first, last = src.taken[0][0], src.taken[-1][0]
                if not values:
                    continue
                if len(values) != len(header):
                    raw = json.dumps(values, ensure_ascii=False)
                    reason = f"row has {len(values)} fields, header has {len(header)}"
                    if last > first:
                        reason += f" (one record spanning lines {first}-{last}: a quoted field runs across lines)"
                    yield first, last, RowError("<row>", reason, raw)
                    continue
                yield first, last, dict(zip(header, values, strict=True))
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestFileError(f"{path}: cannot read CSV file: {exc}") from exc


def read_csv(path: Path) -> Iterator[Row]:
    """CSV with a header row; every value is read as text. Lines are physical line numbers of each record.

    A quoted field may hold line breaks. A record csv rejects becomes a row error covering its lines, and a quote
    left open at end of file costs only the line it starts on: the lines after it are read again.
    """
    for first, _, item in _csv_spans(path):
        if item is not None:
            yield first, item


# ---------------------------------------------------------------- Parquet


def _parquet_spans(path: Path) -> Iterator[_AnySpan]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise IngestFileError(f"{path}: cannot read Parquet file: {exc}") from exc
    for row_no, record in enumerate(table.to_pylist(), start=1):
        yield row_no, row_no, record


def read_parquet(path: Path) -> Iterator[Row]:
    """Parquet rows; ``line`` is the 1-based row number."""
    for first, _, item in _parquet_spans(path):
        if item is not None:
            yield first, item


READERS: dict[str, Callable[[Path], Iterator[Row]]] = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "parquet": read_parquet,
}
_SPANS: dict[str, Callable[[Path], Iterator[_AnySpan]]] = {
    "jsonl": _jsonl_spans,
    "csv": _csv_spans,
    "parquet": _parquet_spans,
}


def read_rows(path: Path, fmt: str) -> Iterator[Row]:
    """Dispatch on format."""
    return READERS[fmt](path)


def read_row_spans(path: Path, fmt: str) -> Iterator[Span]:
    """Like :func:`read_rows`, with the last physical line of each row too: ``(first, last, record or error)``."""
    for first, last, item in _SPANS[fmt](path):
        if item is not None:
            yield first, last, item


# ---------------------------------------------------------------- coverage


@dataclass(frozen=True)
class LineCoverage:
    """How a file's physical lines (Parquet: rows) are accounted for by what its reader yields.

    ``reconciles`` holds when every non-blank line outside the header lies in exactly one accepted record or one
    row error: then a row count that reconciles downstream also means no line of the file was lost.
    """

    physical_lines: int
    blank_lines: int  # blank lines outside any record (skipped by the reader)
    header_lines: int
    record_lines: int  # lines inside records the reader accepted
    error_lines: int  # lines inside row errors
    records: int
    errors: int
    uncovered: tuple[int, ...]  # non-blank lines in no record, error or header
    overlapping: tuple[int, ...]  # lines claimed twice (or past the end of the file)

    @property
    def data_lines(self) -> int:
        """Physical lines that must be covered: all but blank and header lines."""
        return self.physical_lines - self.blank_lines - self.header_lines

    @property
    def reconciles(self) -> bool:
        return not self.uncovered and not self.overlapping


def _blank_flags(path: Path, fmt: str) -> list[bool]:
    """Per physical line (split as the reader splits them), whether the reader counts it as blank."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return [False] * pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise IngestFileError(f"{path}: cannot read Parquet file: {exc}") from exc
    # The CSV reader skips only empty lines; the JSONL reader also whitespace-only ones.
    blank: Callable[[str], bool] = (lambda t: not _strip_eol(t)) if fmt == "csv" else (lambda t: not t.strip())
    try:
        with path.open("r", encoding="utf-8-sig", newline="" if fmt == "csv" else None) as fh:
            return [blank(text) for text in fh]
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestFileError(f"{path}: cannot read {fmt.upper()} file: {exc}") from exc


def line_coverage(path: Path, fmt: str) -> LineCoverage:
    """Read a file again and check which record or row error covers each physical line.

    Lines are counted on their own (not by the reader), so a reader that swallows lines shows them as
    ``uncovered``. Costs one extra pass over the file; raises :class:`IngestFileError` as the reader does.
    """
    flags = _blank_flags(path, fmt)
    n = len(flags)
    owner = bytearray(n + 1)  # 0 none, 1 header, 2 record, 3 error; index 0 unused
    overlapping: list[int] = []
    records = errors = 0
    for first, last, item in _SPANS[fmt](path):
        mark = 1 if item is None else 3 if isinstance(item, RowError) else 2
        records += mark == 2
        errors += mark == 3
        for no in range(first, last + 1):
            if no > n or owner[no]:
                overlapping.append(no)
            else:
                owner[no] = mark
    uncovered = tuple(no for no in range(1, n + 1) if not owner[no] and not flags[no - 1])
    return LineCoverage(
        physical_lines=n,
        blank_lines=sum(1 for no in range(1, n + 1) if not owner[no] and flags[no - 1]),
        header_lines=owner.count(1),
        record_lines=owner.count(2),
        error_lines=owner.count(3),
        records=records,
        errors=errors,
        uncovered=uncovered,
        overlapping=tuple(overlapping),
    )
