"""Judge calibration: every judge (and the ensemble) against human consensus, per slice, every run.

One pass yields ``judge_calibration`` (judge x slice agreement, kappa, biases, ECE/Brier, and the gate verdict per
slice) and ``judge_verdicts`` (one verdict per judge and pair, with its calibrated P(humans agree)), which the
merge and the review queue read.
"""

import json

import dagster as dg
import polars as pl

from assets._meta import chart, headline, output, table_entries
from pipelines.resources import PrefgateResource
from prefgate.calibration import (
    ENSEMBLE_ID,
    build_overlap,
    calibration_table,
    ensemble_rows,
    fit_calibration,
    reliability_bins,
    reliability_plot,
)
from prefgate.gates import judge_slice_gates
from prefgate.lineage.retraction import apply_retractions, load_retractions
from prefgate.merge import pair_verdicts
from prefgate.policy import CalibrationPolicy
from prefgate.slices import pair_slices

GROUP = "audit"


def both_orders_known(labels: pl.DataFrame, cal: CalibrationPolicy) -> pl.DataFrame:
    """Recorded judges whose verdicts combine both orders: display order unknown, consistency from the raw verdict."""
    if not cal.both_orders_judges:
        return labels
    mine = pl.any_horizontal(pl.col("judge_id").str.starts_with(p) for p in cal.both_orders_judges)
    return labels.with_columns(
        pl.when(mine).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("shown_first")).alias("shown_first"),
        pl.when(mine & pl.col("choice").is_not_null())
        .then(~pl.col("raw_choice").is_in(cal.inconsistent_raw_choices).fill_null(False))
        .otherwise(pl.col("position_consistent"))
        .alias("position_consistent"),
    )


def _ensemble_verdicts(verdicts: pl.DataFrame) -> pl.DataFrame:
    """The ensemble's verdict per pair: mean probability where judges gave one, else the plurality of verdicts."""
    strict = verdicts.filter(pl.col("choice").is_in(["a", "b", "tie"]))
    per_pair = strict.group_by("pair_id").agg(
        pl.col("probability_a").mean().alias("probability_a"),
        (pl.col("choice") == "a").sum().alias("_a"),
        (pl.col("choice") == "b").sum().alias("_b"),
        (pl.col("choice") == "tie").sum().alias("_t"),
        pl.col("judge_label_ids").explode().drop_nulls().sort().alias("judge_label_ids"),
        pl.col("constitution_hashes").explode().drop_nulls().unique().sort().alias("constitution_hashes"),
        pl.len().alias("n_judge_labels"),
        pl.col("position_consistent").all().alias("position_consistent"),
    )
    by_prob = (
        pl.when(pl.col("probability_a") > 0.5)
        .then(pl.lit("a"))
        .when(pl.col("probability_a") < 0.5)
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
    )
    by_votes = (
        pl.when((pl.col("_a") > pl.col("_b")) & (pl.col("_a") > pl.col("_t")))
        .then(pl.lit("a"))
        .when((pl.col("_b") > pl.col("_a")) & (pl.col("_b") > pl.col("_t")))
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
    )
    return per_pair.with_columns(
        pl.lit(ENSEMBLE_ID).alias("judge_id"),
        pl.when(pl.col("probability_a").is_not_null()).then(by_prob).otherwise(by_votes).alias("choice"),
    ).drop("_a", "_b", "_t")


def judge_names(judge_labels: pl.DataFrame) -> dict[str, str]:
    """Short name per judge_id for metadata keys: the judge's source (its judges.yaml name for a live judge, the
    landing source for a recorded one) when that source holds only this judge_id, else the judge_id itself."""
    per_id = judge_labels.group_by("judge_id").agg(pl.col("source").unique().alias("sources"))
    names = {j: s[0] if len(s) == 1 else j for j, s in per_id.iter_rows()}
    taken: dict[str, int] = {}
    for n in names.values():
        taken[n] = taken.get(n, 0) + 1
    return {j: n if taken[n] == 1 else j for j, n in names.items()} | {ENSEMBLE_ID: ENSEMBLE_ID}


@dg.multi_asset(
    outs={
        "judge_calibration": dg.AssetOut(
            group_name=GROUP,
            description="Per judge (and the ensemble) x slice: agreement with human consensus with and without "
            "ties, Cohen's kappa, intervals, position consistency and bias, length and self-preference bias, "
            "ECE/Brier, and whether the slice passes the judge gate (with the reasons in words).",
        ),
        "judge_verdicts": dg.AssetOut(
            group_name=GROUP,
            description="One verdict per (pair, judge) incl. the ensemble, with its calibrated P(humans agree).",
        ),
    },
    pool="duckdb",
)
def judge_calibration(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    judge_labels: pl.DataFrame,
    human_consensus: pl.DataFrame,
    response_pairs: pl.DataFrame,
):  # type: ignore[no-untyped-def]
    """Measure every judge on every slice against the humans, fit its calibration map, gate each slice."""
    policy = prefgate.policy()
    slices = list(policy.merge.slices)
    retractions = load_retractions(prefgate.paths, policy.retractions)
    _, judge_kept, retracted = apply_retractions(
        pl.DataFrame(schema={"rater_id": pl.String}), judge_labels, retractions
    )
    judge_kept = both_orders_known(judge_kept, policy.calibration)
    pairs = pair_slices(response_pairs)
    overlap = build_overlap(judge_kept, human_consensus, pairs, slices)
    # The ensemble combines the judges that pass their overall gate: a failing judge would only add noise.
    # Rows are per (judge, slice), so the ensemble's rows are computed on its own overlap and appended.
    table = calibration_table(overlap, slices)
    gated = judge_slice_gates(table, policy.gates)
    passing = gated.filter((pl.col("slice") == "all") & pl.col("passed"))["judge_id"].to_list()
    if len(passing) >= 2:
        ensemble = ensemble_rows(overlap, passing)
        overlap = pl.concat([overlap, ensemble], how="diagonal_relaxed")
        gated = pl.concat([gated, judge_slice_gates(calibration_table(ensemble, slices), policy.gates)])
    cal = policy.calibration
    cmap = fit_calibration(overlap, method=cal.method, folds=cal.folds, seed=0)
    maps_path = prefgate.paths.root / "calibration" / "maps.json"
    maps_path.parent.mkdir(parents=True, exist_ok=True)
    maps_path.write_text(json.dumps(cmap.to_dict(), indent=2, sort_keys=True))

    per_judge = pair_verdicts(judge_kept)
    parts = [per_judge]
    if len(passing) >= 2:
        parts.append(_ensemble_verdicts(per_judge.filter(pl.col("judge_id").is_in(passing))).select(per_judge.columns))
    verdicts = pl.concat(parts)
    known = set(cmap.judges)
    calibrated = pl.concat(
        [
            part.with_columns(
                pl.Series("calibrated", cmap.apply_frame(part), dtype=pl.Float64)
                if part["judge_id"][0] in known
                else pl.lit(None, dtype=pl.Float64).alias("calibrated")
            )
            for part in verdicts.partition_by("judge_id", maintain_order=True)
        ]
        if verdicts.height
        else [verdicts.with_columns(pl.lit(None, dtype=pl.Float64).alias("calibrated"))]
    )
    calibrated = calibrated.join(
        pairs.select("pair_id", *[pl.col(s) for s in slices if s in pairs.columns]), on="pair_id", how="left"
    ).sort("pair_id", "judge_id")

    overall = gated.filter(pl.col("slice") == "all").select(
        "judge_id",
        "n_labels",
        "n_pairs",
        "agree_ties",
        "agree_strict",
        "kappa",
        "position_consistency",
        "n_position_checked",  # pairs seen in both orders: 0.0 on 2 pairs says little
        "p_first",
        "p_longer",
        "human_p_longer",
        "ece",
        "brier",
        "passed",
    )
    failing = gated.filter(~pl.col("passed") & (pl.col("slice") != "all")).with_columns(
        pl.col("reasons").list.join("; ")
    )
    oof = cmap.oof if cmap.oof is not None else pl.DataFrame()
    exports = prefgate.paths.exports
    names = judge_names(judge_labels)

    def bins(prediction: str) -> pl.DataFrame:  # legend by short judge name
        return reliability_bins(oof, prediction=prediction).with_columns(pl.col("judge_id").replace(names))

    plot_md: dict[str, object] = {
        "reliability": "no reliability diagram: no judge verdict overlaps a human consensus to calibrate against"
    }
    if oof.height:
        plot_md = {
            **chart(
                exports,
                "judge_calibration",
                "reliability_before",
                reliability_plot(bins("raw"), title="reliability before calibration"),
                "reliability before calibration",
            ),
            **chart(
                exports,
                "judge_calibration",
                "reliability_after",
                reliability_plot(bins("calibrated"), title="reliability after calibration (OOF)"),
                "reliability after calibration (OOF)",
                primary=False,
            ),
        }
    per_judge = {
        f"{measure}/{names.get(j, j)}": v
        for j, kappa, agree in overall.select("judge_id", "kappa", "agree_strict").iter_rows()
        for measure, v in (("kappa", kappa), ("agreement", agree))
    }
    n_slices = gated.filter(pl.col("slice") != "all").height
    yield output(
        gated,
        "judge_calibration",
        metadata={
            "dagster/row_count": gated.height,
            **headline(
                {
                    "judges_passing": len(passing),
                    "judges": overall.height,
                    "overlap_labels": overlap.height,
                    "passing_slices": int(gated["passed"].sum()),
                    **per_judge,
                }
            ),
            "judge_names": dg.MetadataValue.json({names.get(j, j): j for j in overall["judge_id"].to_list()}),
            **plot_md,
            **table_entries(
                "overall",
                overall.with_columns(
                    pl.col("judge_id").replace_strict(names, default=pl.col("judge_id")).alias("name")
                ).select("name", *overall.columns),
                30,
                empty_reason="no judge verdict overlaps a human consensus",
            ),
            **table_entries(
                "failing_slices",
                failing.select("judge_id", "slice", "slice_value", "n_pairs", "reasons"),
                30,
                empty_reason=f"every one of the {n_slices} judge x slice rows passes its gate"
                if n_slices
                else "no slice rows (policy.merge.slices gave no slice with overlap)",
            ),
            **table_entries(
                "retracted", retracted, empty_reason="no judge is retracted (policy.retractions, retractions.yaml)"
            ),
            "calibration_maps": dg.MetadataValue.path(str(maps_path)),
        },
    )
    yield output(
        calibrated,
        "judge_verdicts",
        metadata={
            "dagster/row_count": calibrated.height,
            "pairs": calibrated["pair_id"].n_unique(),
            **table_entries(
                "by_judge",
                calibrated.group_by("judge_id")
                .agg(pl.len().alias("pairs"), pl.col("calibrated").mean().alias("mean_calibrated"))
                .sort("judge_id"),
                30,
                empty_reason="no judge verdicts",
            ),
        },
    )
