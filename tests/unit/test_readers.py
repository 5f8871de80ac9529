"""JSONL / CSV / Parquet readers: line numbers, row errors, file errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.readers import RowError, read_csv, read_jsonl, read_parquet, read_rows

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
