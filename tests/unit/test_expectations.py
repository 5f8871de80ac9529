"""Great Expectations suite on the preference set: a good frame passes, each planted fault fails exactly the
expectation that guards it, and Data Docs are written with this run's validation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from prefgate.expectations import REQUIRED_COLUMNS, SUITE_NAME, run_suite

pytest.importorskip("great_expectations")

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2].parent / "shared" / "data"
DATA = SHARED if SHARED.is_dir() else Path("/work/shared/data")


def good_frame(n: int = 6) -> pl.DataFrame:
    """A small valid preference set, with the list columns the real one carries."""
    return pl.DataFrame(
        {
            "example_id": [f"{i:016x}" for i in range(n)],
            "prompt": [f"question {i}" for i in range(n)],
            "chosen": [f"a careful answer {i}" for i in range(n)],
            "rejected": [f"meh {i}" for i in range(n)],
            "pair_id": [f"{i + 100:016x}" for i in range(n)],
            "prompt_id": [f"{i + 200:016x}" for i in range(n)],
            "chosen_side": ["a", "b"] * (n // 2),
            "split": ["train"] * (n - 1) + ["eval"],
            "category": ["code", None] * (n // 2),
            "language": ["en"] * n,
            "n_labels": [3] * (n - 2) + [0, 0],
            "agreement": [1.0] * n,
            "confidence": [0.9] * n,
            "weight": [1.0] * (n - 1) + [0.0],
            "label_origin": ["human"] * (n - 2) + ["judge", "judge"],
            "label_ids": [["l1", "l2"]] * n,
        }
    )


# Each fault on its own row (or column), so one run shows which expectation each one trips. The duplicate
# example_id and duplicate triple make two offending rows each; the rest one.
ROW_FAULTS: list[tuple[str, int, object, str, str, int]] = [
    # column, row, planted value, expectation, reported column, unexpected rows
    ("example_id", 1, f"{0:016x}", "expect_column_values_to_be_unique", "example_id", 2),
    ("example_id", 2, None, "expect_column_values_to_not_be_null", "example_id", 1),
    ("chosen", 3, None, "expect_column_values_to_not_be_null", "chosen", 1),
    ("rejected", 4, "", "expect_column_value_lengths_to_be_between", "rejected", 1),
    ("split", 5, "test", "expect_column_values_to_be_in_set", "split", 1),
    ("chosen_side", 6, "tie", "expect_column_values_to_be_in_set", "chosen_side", 1),
    ("weight", 7, 1.5, "expect_column_values_to_be_between", "weight", 1),
    ("confidence", 8, -0.1, "expect_column_values_to_be_between", "confidence", 1),
    ("label_origin", 9, "bot", "expect_column_values_to_be_in_set", "label_origin", 1),
    ("n_labels", 10, 0, "expect_column_values_to_be_between", "n_labels", 1),
    ("n_labels", 11, None, "expect_column_values_to_not_be_null", "n_labels", 1),
]
TRIPLE = ("expect_compound_columns_to_be_unique", "prompt, chosen, rejected", 2)


def planted_frame() -> pl.DataFrame:
    df = good_frame(16)
    for column, row, value, *_ in ROW_FAULTS:
        values = df[column].to_list()
        values[row] = value
        df = df.with_columns(pl.Series(column, values, dtype=df[column].dtype))
    first = df.row(0, named=True)
    is_copy = pl.int_range(pl.len()) == 12
    return df.with_columns(
        pl.when(is_copy).then(pl.lit(first[c])).otherwise(pl.col(c)).alias(c) for c in ("prompt", "chosen", "rejected")
    )


def test_good_frame_passes_and_builds_docs(tmp_path: Path) -> None:
    result = run_suite(good_frame(), tmp_path / "docs", run_name="unit-good")
    assert result.success, result.failed
    assert result.n_failed == 0 and result.failed == []
    # 1 row count + one existence check per required column + the value checks
    assert result.n_expectations > len(REQUIRED_COLUMNS) + 10
    assert result.docs_index == (tmp_path / "docs" / "index.html").resolve()
    index = result.docs_index.read_text(encoding="utf-8")
    assert SUITE_NAME in index and "unit-good" in index
    pages = list((tmp_path / "docs" / "validations" / SUITE_NAME / "unit-good").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text(encoding="utf-8")
    assert "example_id" in page and "label_origin" in page


def test_each_planted_fault_fails_its_expectation(tmp_path: Path) -> None:
    result = run_suite(planted_frame(), tmp_path / "docs")
    assert not result.success
    expected = {(f[3], f[4]): f[5] for f in ROW_FAULTS} | {TRIPLE[:2]: TRIPLE[2]}
    observed = {(f["expectation"], f["column"]): f["unexpected_count"] for f in result.failed}
    assert observed == expected
    assert result.n_failed == len(expected)
    samples = {(f["expectation"], f["column"]): f["sample"] for f in result.failed}
    assert samples["expect_column_values_to_be_in_set", "split"] == ["test"]
    assert samples["expect_column_values_to_be_in_set", "label_origin"] == ["bot"]
    assert samples["expect_column_values_to_be_between", "weight"] == ["1.5"]
    json.dumps(result.failed)  # plain JSON, ready for asset metadata


def test_empty_frame_fails_only_the_row_count(tmp_path: Path) -> None:
    result = run_suite(good_frame().clear(), tmp_path / "docs")
    assert not result.success
    assert [(f["expectation"], f["column"]) for f in result.failed] == [("expect_table_row_count_to_be_between", None)]
    assert result.failed[0]["observed_value"] == 0


def test_missing_column_reports_exceptions_of_dependent_checks(tmp_path: Path) -> None:
    result = run_suite(good_frame().drop("split", "language"), tmp_path / "docs")
    assert ("expect_column_to_exist", "language") in {(f["expectation"], f["column"]) for f in result.failed}
    by_kind = {f["expectation"]: f for f in result.failed if f["column"] == "split"}
    assert set(by_kind) == {
        "expect_column_to_exist",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
    }
    assert "split" in str(by_kind["expect_column_values_to_be_in_set"]["exception"])


def test_real_hh_rlhf_pairs_pass(tmp_path: Path) -> None:
    path = DATA / "hh-rlhf-test" / "helpful-base" / "test.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(60)]
    split = [r["chosen"].rsplit("\n\nAssistant:", 1) for r in rows]
    n = len(rows)
    df = pl.DataFrame(
        {
            "example_id": [f"{i:016x}" for i in range(n)],
            "prompt": [s[0] for s in split],
            "chosen": [s[1] for s in split],
            "rejected": [r["rejected"].rsplit("\n\nAssistant:", 1)[1] for r in rows],
            "pair_id": [f"{i:016x}" for i in range(n)],
            "prompt_id": [f"{i:016x}" for i in range(n)],
            "chosen_side": ["a"] * n,
            "split": ["train"] * n,
            "category": ["helpful"] * n,
            "language": ["en"] * n,
            "n_labels": [1] * n,
            "agreement": [1.0] * n,
            "confidence": [1.0] * n,
            "weight": [1.0] * n,
            "label_origin": ["human"] * n,
        }
    ).unique(subset=["prompt", "chosen", "rejected"], keep="first", maintain_order=True)
    result = run_suite(df, tmp_path / "docs")
    assert result.success, result.failed
