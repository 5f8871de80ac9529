"""Blocking checks on ``preference_set``: a failure stops the export (and, later, the trainers).

Checks name the asset by key rather than importing the asset module, so imports stay one-way.
"""

import dagster as dg
import polars as pl
from pandera.errors import SchemaErrors

from assets._meta import markdown_table
from pipelines.resources import PrefgateResource
from prefgate import schemas
from prefgate.curation import contaminated
from prefgate.gates import evaluate_gates, gate_report_markdown

ASSET = "preference_set"


def _result(passed: bool, sentence: str, **metadata: object) -> dg.AssetCheckResult:
    """A check result whose description and ``reason`` are one sentence with the value and the threshold."""
    return dg.AssetCheckResult(passed=passed, description=sentence, metadata={"reason": sentence, **metadata})


@dg.asset_check(asset=ASSET, blocking=True, description="Columns, types and value rules of the pandera model.")
def preference_set_schema(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.validate(schemas.PreferenceSet, preference_set)
    except SchemaErrors as exc:
        cases = exc.failure_cases.head(20)
        checks = ", ".join(sorted({str(c) for c in exc.failure_cases["check"].head(50).to_list()}))
        why = f"{exc.failure_cases.height} schema failures (allowed 0), e.g. {checks}"
        return _result(False, why, failures=exc.failure_cases.height, failure_cases=markdown_table(pl.DataFrame(cases)))
    cols = len(preference_set.columns)
    return _result(
        True, f"{preference_set.height:,} rows match the schema's {cols} columns and rules", rows=preference_set.height
    )


@dg.asset_check(asset=ASSET, blocking=True, description="No row has chosen identical to rejected.")
def chosen_differs_from_rejected(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    bad = preference_set.filter(pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars())
    why = (
        f"{bad.height} rows have chosen identical to rejected (allowed 0)"
        if bad.height
        else (f"chosen differs from rejected in all {preference_set.height:,} rows")
    )
    return _result(
        bad.height == 0,
        why,
        identical_rows=bad.height,
        examples=markdown_table(bad.select("example_id", "pair_id"), 10),
    )


@dg.asset_check(asset=ASSET, blocking=True, description="Each pair (and each example id) appears once.")
def no_duplicate_pairs(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    dup_pairs = preference_set.filter(pl.col("pair_id").is_duplicated())
    dup_examples = preference_set.filter(pl.col("example_id").is_duplicated())
    ok = dup_pairs.height == 0 and dup_examples.height == 0
    why = (
        f"every pair and example id appears once in {preference_set.height:,} rows"
        if ok
        else f"{dup_pairs.height} rows repeat a pair and {dup_examples.height} an example id (allowed 0)"
    )
    return _result(ok, why, duplicate_pair_rows=dup_pairs.height, duplicate_example_rows=dup_examples.height)


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
    why = (
        f"{rows} rows share a prompt with the {eval_prompts.height:,} eval prompts (allowed 0)"
        if rows
        else f"no row shares a prompt with the {eval_prompts.height:,} eval prompts (exact, n-gram, MinHash, embedding)"
    )
    return dg.AssetCheckResult(
        passed=rows == 0,
        description=why,
        metadata={
            "reason": why,
            "contaminated_rows": rows,
            "eval_prompts_checked": eval_prompts.height,
            "matches": markdown_table(hits, 20),
        },
    )


@dg.asset_check(asset=ASSET, blocking=True, description="The set has rows in its train split.")
def not_empty(preference_set: pl.DataFrame) -> dg.AssetCheckResult:
    train = preference_set.filter(pl.col("split") == "train").height
    why = f"{train:,} train rows of {preference_set.height:,}" + ("" if train else " (at least 1 needed)")
    return _result(train > 0, why, rows=preference_set.height, train_rows=train)


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
    human = preference_set.filter(pl.col("label_origin") == "human").height
    why = (
        f"{short.height} of {human:,} human-origin rows rest on fewer than {need} labels (allowed 0)"
        if short.height
        else f"all {human:,} human-origin rows rest on at least {need} human labels (consensus.min_labels)"
    )
    return dg.AssetCheckResult(
        passed=short.height == 0,
        description=why,
        metadata={
            "reason": why,
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
    names = ", ".join(str(f.get("expectation")) for f in result.failed[:5])
    why = f"{result.n_expectations - result.n_failed} of {result.n_expectations} expectations met" + (
        f"; failed: {names}" if result.n_failed else ""
    )
    return dg.AssetCheckResult(
        passed=result.success,
        description=why,
        metadata={
            "reason": why,
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
        "human_labels": dg.AssetIn("resolved_human_labels"),
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
    human_labels: pl.DataFrame,
) -> dg.AssetCheckResult:
    from prefgate.agreement import agreement_report
    from prefgate.gate_inputs import gate_inputs
    from prefgate.gold import split_gold
    from prefgate.governance import item_frame

    policy = prefgate.policy()
    # rater alpha is an input in the graph (the standing labels), exact, not a rounded value read back from metadata
    panel, _ = split_gold(human_labels, prefgate.gold_sources())
    alpha = agreement_report(item_frame(panel), n_boot=0, item_col="item").alpha if panel.height else None
    inputs = gate_inputs(
        preference_set, judge_calibration, contamination_matches, response_pairs, alpha, policy, eval_prompts
    )
    results = evaluate_gates(inputs, policy.gates, policy.agreement.on_undefined.alpha)
    failed = [r for r in results if not r.passed]
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(r.message for r in failed) or "every governance gate passed",
        metadata={
            "reason": "; ".join(r.message for r in failed) or f"all {len(results)} governance gates passed",
            "gates": dg.MetadataValue.md(gate_report_markdown(results)),
            **{f"gate/{r.name}": dg.MetadataValue.json({"passed": r.passed, "message": r.message}) for r in results},
        },
    )


CHECKS.append(governance_gates)
