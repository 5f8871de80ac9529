"""The merge policy on tiny frames: who speaks for each pair, and why the others do not."""

from __future__ import annotations

import polars as pl

from prefgate.curation import assemble_preference_set
from prefgate.merge import pair_verdicts, passing_pairs
from prefgate.policy import Policy
from prefgate.schemas import PreferenceSet, validate

L = pl.List(pl.String)


def _pairs(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": [f"{i:016x}" for i in range(n)],
            "prompt_id": [f"{100 + i:016x}" for i in range(n)],
            "prompt": [f"prompt {i}" for i in range(n)],
            "response_a": [f"answer a{i}" for i in range(n)],
            "response_b": [f"answer b{i} longer" for i in range(n)],
            "source": ["s"] * n,
            "category": ["c"] * n,
            "language": ["en"] * n,
        }
    )


def _consensus(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": [r[0] for r in rows],
            "verdict": [r[1] for r in rows],
            "n_labels": [r[2] for r in rows],
            "agreement": [r[3] for r in rows],
            "confidence": [r[3] for r in rows],
            "method": ["majority"] * len(rows),
            "label_ids": [[f"{j:016x}" for j in range(r[2])] for r in rows],
            "rater_ids": [[f"r{j}" for j in range(r[2])] for r in rows],
            "excluded_rater_ids": [[] for _ in rows],
            "sources": [["s"] for _ in rows],
        },
        schema_overrides={
            "pair_id": pl.String,
            "verdict": pl.String,
            "n_labels": pl.Int64,
            "agreement": pl.Float64,
            "confidence": pl.Float64,
            "method": pl.String,
            "label_ids": L,
            "rater_ids": L,
            "excluded_rater_ids": L,
            "sources": L,
        },
    )


def _labels(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    """(label_id, pair_id, judge_id, choice) ok labels."""
    return pl.DataFrame(
        {
            "label_id": [r[0] for r in rows],
            "pair_id": [r[1] for r in rows],
            "judge_id": [r[2] for r in rows],
            "choice": [r[3] for r in rows],
            "status": ["ok"] * len(rows),
            "probability_a": [None] * len(rows),
            "position_consistent": [None] * len(rows),
            "constitution_hash": ["k1"] * len(rows),
        },
        schema_overrides={"probability_a": pl.Float64, "position_consistent": pl.Boolean},
    )


def _gates(judge: str, passed: bool) -> pl.DataFrame:
    rows = [("all", "all"), ("category", "c"), ("language", "en"), ("source", "s"), ("safety", "unknown")]
    return pl.DataFrame(
        {
            "judge_id": [judge] * len(rows),
            "slice": [r[0] for r in rows],
            "slice_value": [r[1] for r in rows],
            "passed": [passed] * len(rows),
        }
    )


def test_pair_verdicts_fold_both_orders() -> None:
    labels = _labels(
        [
            ("0000000000000001", "p1", "j", "a"),
            ("0000000000000002", "p1", "j", "a"),
            ("0000000000000003", "p2", "j", "a"),
            ("0000000000000004", "p2", "j", "b"),
            ("0000000000000005", "p3", "j", "b"),
        ]
    )
    v = pair_verdicts(labels).sort("pair_id")
    assert v["choice"].to_list() == ["a", "tie", "b"]
    assert v["position_consistent"].to_list() == [True, False, None]
    assert v["n_judge_labels"].to_list() == [2, 2, 1]


def test_judge_fills_only_unlabelled_pairs_in_passing_slices() -> None:
    pairs = _pairs(4)
    ids = pairs["pair_id"].to_list()
    # pair 0: confident humans; pair 1: humans contradict the judge; pair 2: no humans; pair 3: no humans, low cal.
    consensus = _consensus([(ids[0], "a", 3, 1.0), (ids[1], "b", 1, 1.0)])
    labels = _labels([(f"{10 + i:016x}", ids[i], "judge-x", "a") for i in range(4)])
    verdicts = pair_verdicts(labels).with_columns(
        pl.when(pl.col("pair_id") == ids[3]).then(0.5).otherwise(0.9).alias("calibrated")
    )
    policy = Policy(version="t")
    out = assemble_preference_set(
        pairs, consensus, policy, judge_verdicts=verdicts, judge_gates=_gates("judge-x", True)
    )
    validate(PreferenceSet, out)
    by_pair = {r["pair_id"]: r for r in out.iter_rows(named=True)}
    assert set(by_pair) == {ids[0], ids[2]}
    assert by_pair[ids[0]]["label_origin"] == "human"
    judge = by_pair[ids[2]]
    assert judge["label_origin"] == "judge"
    assert judge["judge_ids"] == ["judge-x"]
    assert judge["judge_label_ids"] == [f"{12:016x}"]
    assert judge["weight"] == 0.9 * policy.merge.judge_weight
    assert judge["chosen"] == "answer a2"


def test_failing_slice_keeps_the_judge_out() -> None:
    pairs = _pairs(2)
    labels = _labels([(f"{10 + i:016x}", pid, "judge-x", "b") for i, pid in enumerate(pairs["pair_id"])])
    verdicts = pair_verdicts(labels).with_columns(pl.lit(0.95).alias("calibrated"))
    gates = _gates("judge-x", True).with_columns(
        pl.when(pl.col("slice") == "category").then(False).otherwise(pl.col("passed")).alias("passed")
    )
    policy = Policy(version="t")
    assert passing_pairs(verdicts, pairs, gates, policy.merge.slices).height == 0
    empty = _consensus([])
    out = assemble_preference_set(pairs, empty, policy, judge_verdicts=verdicts, judge_gates=gates)
    assert out.height == 0
    ok = assemble_preference_set(pairs, empty, policy, judge_verdicts=verdicts, judge_gates=_gates("judge-x", True))
    assert ok.height == 2 and set(ok["chosen_side"]) == {"b"}


def test_prompt_groups_share_a_split() -> None:
    pairs = _pairs(40)
    consensus = _consensus([(p, "a", 2, 1.0) for p in pairs["pair_id"]])
    groups = pairs.select("prompt_id", pl.lit("group-one").alias("group_id"))
    out = assemble_preference_set(pairs, consensus, Policy(version="t"), prompt_groups=groups)
    assert out["split"].n_unique() == 1
