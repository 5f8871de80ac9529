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
    additional_ins={"eval_prompts": dg.AssetIn("eval_prompts")},
    description="No training prompt is an eval / red-team prompt (normalised-text match).",
)
def no_eval_contamination(preference_set: pl.DataFrame, eval_prompts: pl.DataFrame) -> dg.AssetCheckResult:
    hits = contaminated(preference_set, eval_prompts)
    return dg.AssetCheckResult(
        passed=hits.height == 0,
        metadata={
            "contaminated_rows": hits.height,
            "eval_prompts_checked": eval_prompts.height,
            "matches": markdown_table(hits.select("example_id", "eval_source", "prompt"), 20),
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
