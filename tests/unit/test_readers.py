"""JSONL / CSV / Parquet readers: line numbers, row errors, file errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.readers import (
    LineCoverage,
    RowError,
    line_coverage,
    read_csv,
    read_jsonl,
    read_parquet,
    read_row_spans,
    read_rows,
)

# ---------------------------------------------------------------- JSONL


def test_jsonl_records_blank_lines_and_errors(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": 2\n[1, 2]\n{"a": "\xc3\xa9"}\n')
    rows = list(read_jsonl(path))
    assert [line for line, _ in rows] == [1, 4, 5, 6]
    assert rows[0][1] == {"a": 1}
    malformed = rows[1][1]
    assert isinstance(malformed, RowError)
    assert malformed.field == "<line>"
    assert malformed.reason.startswith("malformed JSON")
    assert malformed.raw == '{"a": 2\n'
    not_object = rows[2][1]
    assert isinstance(not_object, RowError)
    assert "expected a JSON object, got list" in not_object.reason
    assert rows[3][1] == {"a": "é"}


def test_jsonl_bom_is_ignored(tmp_path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"k": "v"}\n')
    assert list(read_jsonl(path)) == [(1, {"k": "v"})]


def test_jsonl_non_utf8_is_file_error(tmp_path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"a": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(IngestFileError, match=r"latin1\.jsonl"):
        list(read_jsonl(path))


def test_jsonl_missing_file_is_file_error(tmp_path) -> None:
    with pytest.raises(IngestFileError, match=r"nope\.jsonl"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


# ---------------------------------------------------------------- CSV


def test_csv_bom_multiline_and_field_count(tmp_path) -> None:
    path = tmp_path / "x.csv"
    # physical lines: 1 header, 2-3 record (quoted newline), 4 record, 5 bad record, 6 blank, 7 record
    path.write_bytes(b'\xef\xbb\xbfid,text\r\n1,"line one\r\nline two"\r\n2,plain\r\n3,too,many\r\n\r\n4,last\r\n')
    rows = list(read_csv(path))
    assert [line for line, _ in rows] == [2, 4, 5, 7]
    assert rows[0][1] == {"id": "1", "text": "line one\r\nline two"}  # BOM stripped from the header
    assert rows[1][1] == {"id": "2", "text": "plain"}
    bad = rows[2][1]
    assert isinstance(bad, RowError)
    assert bad.field == "<row>"
    assert bad.reason == "row has 3 fields, header has 2"
    assert bad.raw == '["3", "too", "many"]'
    assert rows[3][1] == {"id": "4", "text": "last"}


def test_csv_values_are_text(tmp_path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("a,b\n1,2.50\n", encoding="utf-8")
    assert list(read_csv(path)) == [(2, {"a": "1", "b": "2.50"})]


def test_csv_empty_file_is_file_error_naming_file(tmp_path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(IngestFileError, match=r"empty\.csv.*empty CSV"):
        list(read_csv(path))


def test_csv_non_utf8_is_file_error(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,text\n1,caf\xe9\n")
    with pytest.raises(IngestFileError, match=r"bad\.csv"):
        list(read_csv(path))


def test_csv_duplicate_header_is_file_error(tmp_path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,id\n1,2\n", encoding="utf-8")
    with pytest.raises(IngestFileError, match="duplicate column"):
        list(read_csv(path))


# ---------------------------------------------------------------- Parquet


def test_parquet_rows_are_one_based(tmp_path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"idx": [10, 11, 12], "text": ["a", None, "c"]}), path)
    rows = list(read_parquet(path))
    assert rows == [(1, {"idx": 10, "text": "a"}), (2, {"idx": 11, "text": None}), (3, {"idx": 12, "text": "c"})]


def test_parquet_corrupt_is_file_error_naming_file(tmp_path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(IngestFileError, match=r"corrupt\.parquet"):
        list(read_parquet(path))


def test_read_rows_dispatches_on_format(tmp_path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('{"a": 1}\n', encoding="utf-8")
    assert list(read_rows(path, "jsonl")) == [(1, {"a": 1})]
    path.write_text("a\n1\n", encoding="utf-8")
    assert list(read_rows(path, "csv")) == [(2, {"a": "1"})]


# ---------------------------------------------------------------- CSV: broken quotes and line coverage


def _csv(tmp_path: Path, text: str, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _summary(path: Path) -> list[tuple[int, int, str]]:
    """(first line, last line, id or 'ERR') per row."""
    return [
        (first, last, "ERR" if isinstance(item, RowError) else str(item["id"]))
        for first, last, item in read_row_spans(path, "csv")
    ]


def test_csv_unterminated_quote_quarantines_one_line_and_reads_on(tmp_path: Path) -> None:
    # The probe of issue 11: line 3 ends `,A,"B`; before the fix lines 4-6 vanished into its last field.
    path = _csv(tmp_path, 'id,a,b\n1,x,y\n2,A,"B\n3,x,y\n4,x,y\n5,x,y\n')
    rows = list(read_csv(path))
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6]
    err = rows[1][1]
    assert isinstance(err, RowError)
    assert err.field == "<row>"
    assert err.raw == '2,A,"B'
    assert err.reason == (
        "unterminated quoted field starting on line 3 (a '\"' with no closing quote); "
        "the line is quarantined and reading resumes on line 4"
    )
    assert [r for _, r in rows if not isinstance(r, RowError)] == [
        {"id": "1", "a": "x", "b": "y"},
        {"id": "3", "a": "x", "b": "y"},
        {"id": "4", "a": "x", "b": "y"},
        {"id": "5", "a": "x", "b": "y"},
    ]
    cov = line_coverage(path, "csv")
    assert cov.reconciles
    assert (cov.physical_lines, cov.header_lines, cov.data_lines) == (6, 1, 5)
    assert (cov.records, cov.errors, cov.record_lines, cov.error_lines) == (4, 1, 4, 1)


def test_csv_legit_multiline_field_is_one_record(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'id,text\n1,"para one\n\npara ""two"", with comma"\n2,plain\n')
    rows = list(read_row_spans(path, "csv"))
    assert rows == [
        (2, 4, {"id": "1", "text": 'para one\n\npara "two", with comma'}),
        (5, 5, {"id": "2", "text": "plain"}),
    ]
    cov = line_coverage(path, "csv")
    assert cov.reconciles
    assert (cov.blank_lines, cov.record_lines) == (0, 4)  # the empty line inside the field belongs to the record


def test_csv_unterminated_quote_on_last_line(tmp_path: Path) -> None:
    for text in ('id,a\n1,x\n2,"B\n', 'id,a\n1,x\n2,"B'):  # with and without a final newline
        path = _csv(tmp_path, text)
        assert _summary(path) == [(2, 2, "1"), (3, 3, "ERR")]
        assert line_coverage(path, "csv").reconciles


def test_csv_two_broken_lines_each_cost_one_line(tmp_path: Path) -> None:
    # Line 3's stray quote is "closed" by line 5's and followed by text; the lines between read cleanly on their
    # own, so only line 3 is quarantined; line 5's quote then runs to the end of the file and costs line 5 only.
    path = _csv(tmp_path, 'id,a,b\n1,x,y\n2,A,"B\n3,x,y\n4,C,"D\n5,x,y\n6,x,y\n')
    assert _summary(path) == [(2, 2, "1"), (3, 3, "ERR"), (4, 4, "3"), (5, 5, "ERR"), (6, 6, "5"), (7, 7, "6")]
    errors = [item for _, _, item in read_row_spans(path, "csv") if isinstance(item, RowError)]
    assert "closed badly" in errors[0].reason and "line 3 is quarantined" in errors[0].reason
    assert errors[1].reason.startswith("unterminated quoted field starting on line 5")
    assert line_coverage(path, "csv").reconciles


def test_csv_stray_quote_closed_by_a_later_quoted_field(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'id,a,b\n1,x,y\n2,A,"B\n3,x,y\n4,"q",z\n5,x,y\n')
    assert _summary(path) == [(2, 2, "1"), (3, 3, "ERR"), (4, 4, "3"), (5, 5, "4"), (6, 6, "5")]
    assert line_coverage(path, "csv").reconciles


def test_csv_bad_inner_quote_in_multiline_field_quarantines_the_whole_record(tmp_path: Path) -> None:
    # The lines after the opening quote do not read as records on their own, so none of them is accepted.
    path = _csv(tmp_path, 'id,text,c\n1,"para one\npara "two" three",x\n2,y,z\n')
    assert _summary(path) == [(2, 3, "ERR"), (4, 4, "2")]
    [(_, _, err), _] = list(read_row_spans(path, "csv"))
    assert isinstance(err, RowError)
    assert err.reason.startswith("cannot parse CSV record (lines 2-3): ',' expected after '\"'")
    assert err.raw == '1,"para one\npara "two" three",x'
    assert line_coverage(path, "csv").reconciles


def test_csv_multiline_record_with_wrong_field_count_names_its_lines(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'id,text\n1,"a\nb\nc",extra\n2,ok\n')
    [(first, last, err), ok] = list(read_row_spans(path, "csv"))
    assert (first, last) == (2, 4)
    assert isinstance(err, RowError)
    assert err.reason == (
        "row has 3 fields, header has 2 (one record spanning lines 2-4: a quoted field runs across lines)"
    )
    assert ok == (5, 5, {"id": "2", "text": "ok"})
    assert line_coverage(path, "csv").reconciles


def test_csv_field_over_size_limit_is_a_row_error(tmp_path: Path) -> None:
    big = "z" * (csv.field_size_limit() + 10)
    multi = "w\n" * (csv.field_size_limit() // 2 + 10)
    path = _csv(tmp_path, f'id,text\n1,"{big}"\n2,ok\n3,"{multi}"\n4,ok\n')
    rows = list(read_row_spans(path, "csv"))
    last_multi = 4 + multi.count("\n")  # the record starts on line 4; each newline in it adds a line
    assert [(f, la, "ERR" if isinstance(i, RowError) else i["id"]) for f, la, i in rows] == [
        (2, 2, "ERR"),
        (3, 3, "2"),
        (4, last_multi, "ERR"),  # the whole over-long multi-line field, and nothing of it read as records
        (last_multi + 1, last_multi + 1, "4"),
    ]
    err = rows[0][2]
    assert isinstance(err, RowError)
    assert "field larger than field limit" in err.reason and "resumes on line 3" in err.reason
    assert line_coverage(path, "csv").reconciles


def test_csv_bad_quote_within_one_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'id,a\n1,"xx"y\n2,ok\n')
    assert _summary(path) == [(2, 2, "ERR"), (3, 3, "2")]


def test_csv_unterminated_quote_in_header_is_file_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'id,"text\n1,x\n', name="hdr.csv")
    with pytest.raises(IngestFileError, match=r"hdr\.csv: line 1: .*unterminated quoted field"):
        list(read_csv(path))


def test_csv_every_data_line_is_covered_on_a_messy_file(tmp_path: Path) -> None:
    text = 'id,a,b\n\n1,"x\ny",z\n2,A,"B\n\n3,too,many,fields\n4,"ok",ok\n5,"open\n'
    path = _csv(tmp_path, text)
    cov = line_coverage(path, "csv")
    assert cov.reconciles
    assert cov.physical_lines == 9
    assert cov.data_lines == cov.record_lines + cov.error_lines


def test_line_coverage_jsonl_and_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n  \n{bad\n{"a": 2}\n', encoding="utf-8")
    cov = line_coverage(path, "jsonl")
    assert cov.reconciles
    assert (cov.physical_lines, cov.blank_lines, cov.records, cov.errors) == (5, 2, 2, 1)
    pq_path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), pq_path)
    cov = line_coverage(pq_path, "parquet")
    assert cov.reconciles
    assert (cov.physical_lines, cov.records) == (3, 3)


def test_line_coverage_reports_lines_a_reader_loses() -> None:
    cov = LineCoverage(5, 0, 1, 2, 1, 2, 1, uncovered=(4,), overlapping=())
    assert not cov.reconciles
    assert cov.data_lines == 4
