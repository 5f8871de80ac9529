"""Great Expectations suite for the preference set, with Data Docs written to a folder.

The suite restates the preference set's contract as GX expectations so that a failure lands in GX's Data Docs
(a browsable HTML site) next to the governance gates. It runs on a pandas copy of the frame in an *ephemeral*
context: nothing is written except the Data Docs site. (GX's SQL path over DuckDB returned empty results on this
machine, so the pandas engine is the reliable one.)

Only the columns the suite reads are converted to pandas: list columns (label ids, rater ids) never are, which
keeps the conversion cheap. ``great_expectations`` is imported inside :func:`run_suite` (it takes seconds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

SUITE_NAME = "preference_set"
SITE_NAME = "prefgate"
SAMPLE_SIZE = 5

REQUIRED_COLUMNS: tuple[str, ...] = (
    "example_id",
    "prompt",
    "chosen",
    "rejected",
    "pair_id",
    "prompt_id",
    "chosen_side",
    "split",
    "category",
    "language",
    "n_labels",
    "agreement",
    "confidence",
    "weight",
    "label_origin",
)
NOT_NULL_COLUMNS: tuple[str, ...] = (
    "example_id",
    "prompt",
    "chosen",
    "rejected",
    "chosen_side",
    "split",
    "weight",
    "confidence",
    "label_origin",
)
TEXT_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected")
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "split": ("train", "eval"),
    "chosen_side": ("a", "b"),
    "label_origin": ("human", "judge"),
}
UNIT_INTERVAL_COLUMNS: tuple[str, ...] = ("weight", "confidence")
HUMAN_ROWS = 'label_origin == "human"'  # pandas row condition: n_labels is gated on human rows only


@dataclass(frozen=True)
class SuiteResult:
    """Outcome of one suite run.

    ``failed`` holds one JSON-ready dict per failed expectation: ``expectation`` (GX type), ``column`` (a column,
    ``"a, b, c"`` for a compound one, or ``None`` for table-level), ``unexpected_count``, ``observed_value``,
    ``sample`` (up to five offending values, as short strings) and ``exception`` (GX's message when the
    expectation could not run, e.g. a missing column).
    """

    success: bool
    n_expectations: int
    n_failed: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    docs_index: Path = Path()


def _expectations() -> list[Expectation]:
    """The suite, in the order it appears in Data Docs."""
    from great_expectations.expectations.core.expect_column_to_exist import ExpectColumnToExist
    from great_expectations.expectations.core.expect_column_value_lengths_to_be_between import (
        ExpectColumnValueLengthsToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import ExpectColumnValuesToBeInSet
    from great_expectations.expectations.core.expect_column_values_to_be_unique import ExpectColumnValuesToBeUnique
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.core.expect_compound_columns_to_be_unique import (
        ExpectCompoundColumnsToBeUnique,
    )
    from great_expectations.expectations.core.expect_table_row_count_to_be_between import (
        ExpectTableRowCountToBeBetween,
    )

    exps: list[Expectation] = [
        ExpectTableRowCountToBeBetween(min_value=1, description="The preference set is not empty."),
    ]
    exps += [ExpectColumnToExist(column=c, description=f"Required column `{c}` is present.") for c in REQUIRED_COLUMNS]
    exps.append(ExpectColumnValuesToBeUnique(column="example_id", description="Every example has its own id."))
    exps += [ExpectColumnValuesToNotBeNull(column=c, description=f"`{c}` is never null.") for c in NOT_NULL_COLUMNS]
    exps += [
        ExpectColumnValueLengthsToBeBetween(column=c, min_value=1, description=f"`{c}` is not an empty string.")
        for c in TEXT_COLUMNS
    ]
    exps += [
        ExpectColumnValuesToBeInSet(column=c, value_set=list(vs), description=f"`{c}` is one of {', '.join(vs)}.")
        for c, vs in VALUE_SETS.items()
    ]
    exps += [
        ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1, description=f"`{c}` lies in [0, 1].")
        for c in UNIT_INTERVAL_COLUMNS
    ]
    exps += [
        ExpectCompoundColumnsToBeUnique(
            column_list=list(TEXT_COLUMNS), description="No (prompt, chosen, rejected) triple appears twice."
        ),
        ExpectColumnValuesToNotBeNull(
            column="n_labels",
            row_condition=HUMAN_ROWS,
            condition_parser="pandas",
            description="Rows labelled by humans record how many human labels they carry.",
        ),
        ExpectColumnValuesToBeBetween(
            column="n_labels",
            min_value=1,
            row_condition=HUMAN_ROWS,
            condition_parser="pandas",
            description="Rows labelled by humans carry at least one label.",
        ),
    ]
    return exps


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(value: Any) -> Any:
    """GX observed values may be numpy scalars or lists; make them plain JSON."""
    return json.loads(json.dumps(value, default=str))


def _failure(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list"):
        column = ", ".join(kwargs["column_list"])
    details = result.result or {}
    exception = None
    info = result.exception_info or {}
    if info.get("raised_exception"):
        exception = str(info.get("exception_message"))
    else:  # GX sometimes keys exception info by metric id
        for sub in info.values() if isinstance(info, dict) else []:
            if isinstance(sub, dict) and sub.get("raised_exception"):
                exception = str(sub.get("exception_message"))
                break
    sample = details.get("partial_unexpected_list") or []
    return {
        "expectation": config.type,
        "column": column,
        "unexpected_count": details.get("unexpected_count"),
        "observed_value": _jsonable(details.get("observed_value")),
        "sample": [_short(v) for v in sample[:SAMPLE_SIZE]],
        "exception": exception,
    }


def _pandas_frame(df: pl.DataFrame) -> Any:
    """Only the columns the suite reads (list columns stay behind); missing ones stay missing."""
    wanted = [c for c in REQUIRED_COLUMNS if c in df.columns]
    return df.select(wanted).to_pandas()


def run_suite(df: pl.DataFrame, docs_dir: Path, run_name: str | None = None) -> SuiteResult:
    """Validate the preference set with the GX suite and build Data Docs into ``docs_dir``.

    ``docs_dir/index.html`` lists this run's validation (the context is ephemeral, so earlier runs' pages stay on
    disk but leave the index). ``run_name`` (e.g. a Dagster run id) labels the run in Data Docs.
    """
    import great_expectations as gx
    from great_expectations.checkpoint.actions import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    site = {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={SITE_NAME: site},
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("prefgate")
        .add_dataframe_asset(SUITE_NAME)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=_expectations()))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_validation", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{SUITE_NAME}_checkpoint",
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
        )
    )
    run_id = RunIdentifier(run_name=run_name) if run_name else None
    outcome = checkpoint.run(batch_parameters={"dataframe": _pandas_frame(df)}, run_id=run_id)
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    results = [r for vr in outcome.run_results.values() for r in vr.results]
    results.sort(key=lambda r: order.get(r.expectation_config.id if r.expectation_config else None, len(order)))
    failed = [_failure(r) for r in results if not r.success]
    return SuiteResult(
        success=bool(outcome.success),
        n_expectations=len(results),
        n_failed=len(failed),
        failed=failed,
        docs_index=docs_dir / "index.html",
    )
