"""Blocking checks on ``preference_set``: a failure stops the export (and, later, the trainers).

Checks name the asset by key rather than importing the asset module, so imports stay one-way.
"""

import dagster as dg
import polars as pl
from pandera.errors import SchemaErrors

from assets._meta import latest_metadata, markdown_table
from pipelines.resources import PrefgateResource
from prefgate import schemas
from prefgate.curation import contaminated
from prefgate.gates import evaluate_gates, gate_report_markdown

ASSET = "preference_set"


@dg.asset_check(asset=ASSET, blocking=True, description="Columns, types and value rules of the pandera model.")
def preference_set_schema(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.validate(schemas.PreferenceSet, preference_set)
    except SchemaErrors as exc:
        cases = exc.failure_cases.head(20)
        return dg.AssetCheckResult(
            passed=False,
            metadata={"failures": exc.failure_cases.height, "failure_cases": markdown_table(pl.DataFrame(cases))},
        )
    return dg.AssetCheckResult(passed=True, metadata={"rows": preference_set.height})


@dg.asset_check(asset=ASSET, blocking=True, description="No row has chosen identical to rejected.")
def chosen_differs_from_rejected(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    bad = preference_set.filter(pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars())
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        metadata={"identical_rows": bad.height, "examples": markdown_table(bad.select("example_id", "pair_id"), 10)},
    )


@dg.asset_check(asset=ASSET, blocking=True, description="Each pair (and each example id) appears once.")
def no_duplicate_pairs(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    dup_pairs = preference_set.filter(pl.col("pair_id").is_duplicated())
    dup_examples = preference_set.filter(pl.col("example_id").is_duplicated())
    return dg.AssetCheckResult(
        passed=dup_pairs.height == 0 and dup_examples.height == 0,
        metadata={"duplicate_pair_rows": dup_pairs.height, "duplicate_example_rows": dup_examples.height},
    )


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    additional_ins={
        "eval_prompts": dg.AssetIn("eval_prompts"),
        "contamination_matches": dg.AssetIn("contamination_matches"),
    },
    description="No training prompt is an eval / red-team prompt: exact normalised text, and the n-gram, "
    "MinHash and embedding matches of the prompt audit.",
)
def no_eval_contamination(
    preference_set: pl.DataFrame, eval_prompts: pl.DataFrame, contamination_matches: pl.DataFrame
) -> dg.AssetCheckResult:
    exact = contaminated(preference_set, eval_prompts).select(
        "example_id", "eval_source", pl.lit("exact").alias("method"), "prompt"
    )
    fuzzy = preference_set.join(
        contamination_matches.select(pl.col("train_id").alias("prompt_id"), "eval_source", "method"),
        on="prompt_id",
        how="inner",
    ).select("example_id", "eval_source", "method", "prompt")
    hits = pl.concat([exact, fuzzy]).unique(["example_id", "eval_source", "method"]).sort("example_id")
    rows = hits["example_id"].n_unique()
    return dg.AssetCheckResult(
        passed=rows == 0,
        metadata={
            "summary": f"{rows} contaminated rows (allowed 0)" if rows else "no contaminated rows",
            "contaminated_rows": rows,
            "eval_prompts_checked": eval_prompts.height,
            "matches": markdown_table(hits, 20),
        },
    )


@dg.asset_check(asset=ASSET, blocking=True, description="The set has rows in its train split.")
def not_empty(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    train = preference_set.filter(pl.col("split") == "train").height
    return dg.AssetCheckResult(passed=train > 0, metadata={"rows": preference_set.height, "train_rows": train})


CHECKS = [preference_set_schema, chosen_differs_from_rejected, no_duplicate_pairs, no_eval_contamination, not_empty]


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    additional_deps=["human_consensus"],
    description="Every human-origin row rests on at least the policy's minimum number of human labels.",
)
def rows_have_min_labels(preference_set: pl.DataFrame, prefgate: PrefgateResource) -> dg.AssetCheckResult:
    need = prefgate.policy().consensus.min_labels
    short = preference_set.filter((pl.col("label_origin") == "human") & (pl.col("n_labels") < need))
    return dg.AssetCheckResult(
        passed=short.height == 0,
        metadata={
            "min_labels": need,
            "rows_below": short.height,
            "label_count_histogram": dg.MetadataValue.json(
                {str(k): v for k, v in preference_set.group_by("n_labels").len().sort("n_labels").iter_rows()}
            ),
        },
    )


CHECKS.append(rows_have_min_labels)


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    description="The Great Expectations suite on the set; its Data Docs are built under exports/data_docs.",
)
def great_expectations_suite(
    context: dg.AssetCheckExecutionContext, prefgate: PrefgateResource, preference_set: pl.DataFrame
) -> dg.AssetCheckResult:
    from prefgate.expectations import run_suite

    docs = prefgate.paths.exports / "data_docs"
    result = run_suite(preference_set, docs, run_name=context.run.run_id)
    failed = pl.DataFrame(
        [{k: str(v) for k, v in f.items() if k in ("expectation", "column", "unexpected_count")} for f in result.failed]
    )
    return dg.AssetCheckResult(
        passed=result.success,
        metadata={
            "summary": f"{result.n_expectations - result.n_failed}/{result.n_expectations} expectations met",
            "data_docs": dg.MetadataValue.path(str(result.docs_index)),
            "data_docs_url": dg.MetadataValue.url(result.docs_index.as_uri()),
            "expectations": result.n_expectations,
            "failed": result.n_failed,
            "failures": markdown_table(failed) if failed.height else "none",
        },
    )


CHECKS.append(great_expectations_suite)


@dg.asset_check(
    asset=ASSET,
    blocking=True,
    additional_ins={
        "judge_calibration": dg.AssetIn("judge_calibration"),
        "contamination_matches": dg.AssetIn("contamination_matches"),
        "response_pairs": dg.AssetIn("response_pairs"),
        "eval_prompts": dg.AssetIn("eval_prompts"),
    },
    description="Governance thresholds of the policy: judge-human kappa and agreement on every slice that "
    "contributes judge labels, position and length bias, rater alpha, zero contamination, degenerate and PII "
    "rows, the set's length bias and the coverage floors. Fails with the threshold and the shortfall in words.",
)
def governance_gates(
    context: dg.AssetCheckExecutionContext,
    prefgate: PrefgateResource,
    preference_set: pl.DataFrame,
    judge_calibration: pl.DataFrame,
    contamination_matches: pl.DataFrame,
    response_pairs: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> dg.AssetCheckResult:
    from prefgate.gate_inputs import gate_inputs

    policy = prefgate.policy()
    raw_alpha = latest_metadata(context.instance, "rater_quality", "alpha")
    alpha = float(raw_alpha) if isinstance(raw_alpha, int | float) else None
    inputs = gate_inputs(
        preference_set, judge_calibration, contamination_matches, response_pairs, alpha, policy, eval_prompts
    )
    results = evaluate_gates(inputs, policy.gates)
    failed = [r for r in results if not r.passed]
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(r.message for r in failed) or "every governance gate passed",
        metadata={
            "summary": "; ".join(r.message for r in failed) or "every governance gate passed",
            "gates": dg.MetadataValue.md(gate_report_markdown(results)),
            **{f"gate/{r.name}": dg.MetadataValue.json({"passed": r.passed, "message": r.message}) for r in results},
        },
    )


CHECKS.append(governance_gates)
