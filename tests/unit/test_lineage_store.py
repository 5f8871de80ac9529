"""Lineage snapshots, audit queries, diff and retraction on small warehouse frames (tests/unit/lineage_data.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from prefgate.home import Home
from prefgate.lineage import (
    RetractionPolicy,
    UnknownIdError,
    apply_retractions,
    build_manifest,
    diff,
    example_chain,
    judge_impact,
    load_retractions,
    model_lineage,
    provenance_rows,
    rater_impact,
    record_model,
    record_preference_set,
    retract,
)
from prefgate.lineage.retraction import Retraction
from prefgate.schemas import HumanLabels, JudgeLabels, ResponsePairs, validate
from tests.unit import lineage_data as data

ALL = ["p1", "p2", "p3", "p4", "p5"]
AT = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield c
    c.close()


def _frames(names: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    pairs = data.response_pairs(names)
    return pairs, data.human_labels(pairs), data.judge_labels(pairs)


def _record(
    con: duckdb.DuckDBPyConnection,
    pairs: pl.DataFrame,
    human: pl.DataFrame,
    judges: pl.DataFrame,
    *,
    retractions: RetractionPolicy | None = None,
    policy_hash: str = "policy0000000001",
    min_labels: int = 2,
    retention: int | None = None,
    run_id: str = "run",
    excluded: Sequence[str] = (),
    upstream_labels: bool = True,
) -> tuple[str, pl.DataFrame]:
    """The asset's sequence: retract, exclude raters from consensus, build the set, explode provenance, record
    (with the upstream label tables unless ``upstream_labels`` is false, as versions recorded before them)."""
    retractions = retractions or RetractionPolicy()
    human_kept, judge_kept, _ = apply_retractions(human, judges, retractions)
    human_kept = human_kept.filter(~pl.col("rater_id").is_in(list(excluded)))
    ps = data.preference_set(pairs, human_kept, judge_kept, policy_hash, min_labels)
    manifest = build_manifest(
        upstream={"human_labels": human, "judge_labels": judges, "response_pairs": pairs},
        policy_hash=policy_hash,
        constitution_hashes=[data.CONSTITUTION],
        gates={"not_empty": {"passed": True}},
        retractions=retractions.model_dump(mode="json"),
        code_version_="test",
        extra={"excluded_raters": sorted(excluded)},
    )
    prov = provenance_rows(ps, human, judges, pairs)
    labels = {"human_labels": human, "judge_labels": judges} if upstream_labels else {}
    vid = record_preference_set(
        con, ps, prov, manifest, run_id=run_id, retention=retention, response_pairs=pairs, **labels
    )
    return vid, ps


def test_frames_follow_the_warehouse_contracts() -> None:
    pairs, human, judges = _frames([*ALL, "p6"])
    validate(ResponsePairs, pairs)
    validate(HumanLabels, human)
    validate(JudgeLabels, judges.select(list(JudgeLabels.to_schema().columns)))


def test_provenance_has_one_row_per_contributing_label_with_its_landing_line() -> None:
    pairs, human, judges = _frames(ALL)
    ps = data.preference_set(pairs, human, judges)
    prov = provenance_rows(ps, human, judges, pairs)
    expected = ps["label_ids"].list.len().sum() + ps["judge_label_ids"].list.len().sum()
    assert prov.height == expected == 15  # p1 3, p2 3, p3 5, p4 2 judges, p5 2
    assert set(prov["example_id"]) == set(ps["example_id"])
    human_rows = prov.filter(pl.col("label_origin") == "human")
    joined = human_rows.join(human, on="label_id", suffix="_label")
    assert joined.height == human_rows.height
    assert (joined["rater_id"] == joined["rater_id_label"]).all()
    assert (joined["source_file"] == joined["source_file_label"]).all()
    assert (joined["source_line"] == joined["source_line_label"]).all()
    judge_rows = prov.filter(pl.col("label_origin") == "judge").sort("judge_id")
    assert judge_rows["judge_id"].to_list() == [data.RULES, data.GPT4]
    assert judge_rows["constitution_hash"].to_list() == [data.CONSTITUTION, None]
    pair_lines = prov.join(pairs, on="pair_id")
    assert (pair_lines["pair_source_file"] == pair_lines["source_file_right"]).all()
    assert (pair_lines["pair_source_line"] == pair_lines["source_line_right"]).all()
    assert (pair_lines["prompt_source"] == pair_lines["source"]).all()


def test_recording_is_idempotent(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    v1, ps = _record(con, pairs, human, judges)
    v1_again, _ = _record(con, pairs, human, judges, run_id="other")
    assert v1 == v1_again and v1.startswith("ps-")
    assert con.execute("SELECT count(*) FROM lineage.versions").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM lineage.rows").fetchone() == (15,)
    assert con.execute("SELECT n_examples, run_id FROM lineage.versions").fetchone() == (ps.height, "run")


def _independent_counts(
    ps: pl.DataFrame, human: pl.DataFrame, judges: pl.DataFrame, pairs: pl.DataFrame
) -> dict[str, dict[Any, tuple[int, int]]]:
    """The counts model_lineage should give, computed straight from the frames (not from lineage.rows)."""
    h = ps.explode("label_ids").drop_nulls("label_ids").join(human, left_on="label_ids", right_on="label_id")
    j = (
        ps.explode("judge_label_ids")
        .drop_nulls("judge_label_ids")
        .join(judges, left_on="judge_label_ids", right_on="label_id")
    )
    h = h.select("example_id", pl.col("label_ids").alias("label"), "rater_id", pl.lit("human").alias("origin"))
    j = j.select("example_id", pl.col("judge_label_ids").alias("label"), "judge_id", "constitution_hash")

    def count(df: pl.DataFrame, key: str) -> dict[Any, tuple[int, int]]:
        g = df.group_by(key).agg(pl.col("example_id").n_unique(), pl.col("label").n_unique())
        return {k: (e, n) for k, e, n in g.iter_rows()}

    both = pl.concat(
        [h.select("example_id", "label", "origin"), j.select("example_id", "label", origin=pl.lit("judge"))]
    )
    with_pair = both.join(ps.select("example_id", "pair_id", "category"), on="example_id").join(
        pairs.select("pair_id", "source"), on="pair_id"
    )
    return {
        "rater": count(h, "rater_id"),
        "judge": count(j, "judge_id"),
        "constitution": count(j, "constitution_hash"),
        "label_origin": count(both, "origin"),
        "prompt_source": count(with_pair, "source"),
        "category": count(with_pair, "category"),
    }


def test_model_lineage_counts_equal_an_independent_query(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    v1, ps = _record(con, pairs, human, judges)
    model = record_model(con, "reward_model", v1, {"code_version": "test"}, "train-run")
    result = model_lineage(con, "reward_model")
    assert result["version"]["version_id"] == model and result["preference_set"]["version_id"] == v1
    expected = _independent_counts(ps, human, judges, pairs)
    for dim, want in expected.items():
        got = {row["key"]: (row["examples"], row["labels"]) for row in result["counts"][dim]}
        assert got == want, dim
    assert result["totals"] == {"examples": 5, "labels": 15, "raters": 3, "judges": 2}
    assert result["gates"] == {"not_empty": {"passed": True}}
    assert model_lineage(con, model[:10])["version"]["version_id"] == model  # a unique prefix resolves


def test_gates_recorded_after_the_set_reach_its_models(con: duckdb.DuckDBPyConnection) -> None:
    from prefgate.lineage import update_gates

    pairs, human, judges = _frames(ALL)
    v1, _ = _record(con, pairs, human, judges)
    record_model(con, "dpo_policy", v1, {"gates": {"eval_win_rate": {"passed": True, "value": 0.61}}}, "r")
    update_gates(con, v1, {"no_eval_prompt": {"passed": True}})
    gates = model_lineage(con, "dpo_policy")["gates"]
    assert gates == {
        "not_empty": {"passed": True},
        "no_eval_prompt": {"passed": True},
        "eval_win_rate": {"passed": True, "value": 0.61},
    }


def _two_versions(con: duckdb.DuckDBPyConnection) -> tuple[str, str, str, str]:
    """v1: every label; model A on v1. v2: r3 and the gpt-4 judge retracted, p5 gone upstream, p6 landed;
    model B on v2."""
    pairs, human, judges = _frames(ALL)
    v1, _ = _record(con, pairs, human, judges)
    model_a = record_model(con, "reward_model", v1, {"code_version": "a"}, "train-1")
    pairs2, human2, judges2 = _frames(["p1", "p2", "p3", "p4", "p6"])
    retractions = RetractionPolicy(
        raters=[Retraction(id="r3", reason="spammer", at=AT)],
        judges=[Retraction(id="recorded:gpt-4", reason="leaked eval", at=AT)],
    )
    v2, _ = _record(con, pairs2, human2, judges2, retractions=retractions, run_id="run-2")
    model_b = record_model(con, "reward_model", v2, {"code_version": "b"}, "train-2")
    return v1, v2, model_a, model_b


def test_rater_impact_lists_exactly_the_versions_and_models_holding_their_labels(
    con: duckdb.DuckDBPyConnection,
) -> None:
    v1, v2, model_a, model_b = _two_versions(con)
    r3 = rater_impact(con, "r3")
    assert [v["version_id"] for v in r3["preference_sets"]] == [v1]
    assert [m["version_id"] for m in r3["models"]] == [model_a]
    assert r3["preference_sets"][0]["examples"] == 3 and r3["preference_sets"][0]["labels"] == 5
    assert r3["in_latest"] is False
    r1 = rater_impact(con, "r1")
    assert [v["version_id"] for v in r1["preference_sets"]] == [v2, v1]
    assert {m["version_id"] for m in r1["models"]} == {model_a, model_b}
    assert r1["in_latest"] is True
    with pytest.raises(UnknownIdError, match="unknown rater: 'r9'"):
        rater_impact(con, "r9")


def test_judge_impact_matches_a_judge_version_prefix_at_a_colon(con: duckdb.DuckDBPyConnection) -> None:
    v1, v2, model_a, _ = _two_versions(con)
    gpt4 = judge_impact(con, "recorded:gpt-4")
    assert gpt4["matched_ids"] == [data.GPT4]
    assert [v["version_id"] for v in gpt4["preference_sets"]] == [v1]
    assert [m["version_id"] for m in gpt4["models"]] == [model_a]
    rules = judge_impact(con, data.RULES)
    assert [v["version_id"] for v in rules["preference_sets"]] == [v2, v1]
    with pytest.raises(UnknownIdError):
        judge_impact(con, "recorded:gpt")  # not a prefix at a ':' boundary


def test_diff_is_exact_with_reasons(con: duckdb.DuckDBPyConnection) -> None:
    v1, v2, _, _ = _two_versions(con)
    pid = data.pair_ids(data.response_pairs([*ALL, "p6"]))
    result = diff(con, v1, v2)
    name = {v: k for k, v in pid.items()}
    assert [(name[r["pair_id"]], r["reasons"]) for r in result["added"]] == [("p6", ["new labels"])]
    removed = sorted((name[r["pair_id"]], r["reasons"]) for r in result["removed"])
    assert removed == [("p2", ["rater excluded/retracted"]), ("p5", ["pair removed upstream"])]
    flipped = [
        (name[r["pair_id"]], r["chosen_side_before"], r["chosen_side_after"], r["reasons"]) for r in result["flipped"]
    ]
    assert flipped == [("p3", "b", "a", ["rater excluded/retracted"])]
    # p1 lost r3's label but kept its verdict; p4 lost the gpt-4 judge label but kept its verdict: unchanged.
    assert result["summary"] == {
        "added": 1,
        "removed": 2,
        "flipped": 1,
        "unchanged": 2,
        "by_reason": {"pair removed upstream": 1, "rater excluded/retracted": 2, "new labels": 1},
    }
    back = diff(con, v2, v1)
    assert {name[r["pair_id"]] for r in back["added"]} == {"p2", "p5"}
    assert [name[r["pair_id"]] for r in back["removed"]] == ["p6"]


def test_diff_names_a_policy_change(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    v1, _ = _record(con, pairs, human, judges)
    v2, _ = _record(con, pairs, human, judges, policy_hash="policy0000000002", min_labels=3)
    result = diff(con, v1, v2)
    pid = data.pair_ids(pairs)
    assert [(r["pair_id"], r["reasons"]) for r in result["removed"]] == [(pid["p5"], ["policy change"])]
    assert result["added"] == [] and result["flipped"] == []


@pytest.mark.parametrize("case", ["retracted", "excluded", "deleted upstream", "absent, no upstream labels"])
def test_diff_blames_only_raters_v2_retracts_or_excludes(con: duckdb.DuckDBPyConnection, case: str) -> None:
    """r3 leaves v2 four ways; only a retraction or a recorded exclusion is blamed on the rater."""
    pairs, human, judges = _frames(ALL)
    with_labels = case != "absent, no upstream labels"
    v1, _ = _record(con, pairs, human, judges, upstream_labels=with_labels)
    without_r3 = human.filter(pl.col("rater_id") != "r3")
    if case == "retracted":
        retractions = RetractionPolicy(raters=[Retraction(id="r3", reason="spammer", at=AT)])
        v2, _ = _record(con, pairs, human, judges, retractions=retractions)
    elif case == "excluded":
        v2, _ = _record(con, pairs, human, judges, excluded=["r3"])
    else:
        v2, _ = _record(con, pairs, without_r3, judges, upstream_labels=with_labels)
    reason = "rater excluded/retracted" if case in ("retracted", "excluded") else "labels removed"
    pid = data.pair_ids(pairs)
    result = diff(con, v1, v2)
    assert [(r["pair_id"], r["reasons"]) for r in result["removed"]] == [(pid["p2"], [reason])]
    assert [(r["pair_id"], r["reasons"]) for r in result["flipped"]] == [(pid["p3"], [reason])]
    assert result["added"] == []
    assert result["summary"] == {"added": 0, "removed": 1, "flipped": 1, "unchanged": 3, "by_reason": {reason: 2}}


@pytest.mark.parametrize("how", ["retracted", "excluded"])
def test_diff_explains_rows_added_by_a_retraction(con: duckdb.DuckDBPyConnection, how: str) -> None:
    """p7 ties 2:2 until r3's dissent goes: an addition without a new label, and back again a removal."""
    pairs, human, judges = _frames([*ALL, "p7"])
    v1, ps1 = _record(con, pairs, human, judges)
    retractions = RetractionPolicy(raters=[Retraction(id="r3", reason="spammer", at=AT)])
    if how == "retracted":
        v2, ps2 = _record(con, pairs, human, judges, retractions=retractions)
    else:
        v2, ps2 = _record(con, pairs, human, judges, excluded=["r3"])
    p7 = data.pair_ids(pairs)["p7"]
    assert p7 not in ps1["pair_id"].to_list() and p7 in ps2["pair_id"].to_list()
    forward = diff(con, v1, v2)
    assert [(r["pair_id"], r["reasons"]) for r in forward["added"]] == [(p7, ["rater excluded/retracted"])]
    back = diff(con, v2, v1)  # r3 reinstated: their dissent is back and p7 ties again
    assert [(r["pair_id"], r["reasons"]) for r in back["removed"]] == [(p7, ["rater excluded/retracted"])]
    assert sorted(r["reasons"] for r in back["added"] + back["flipped"]) == [["rater excluded/retracted"]] * 2


def test_diff_without_upstream_labels_falls_back_to_new_labels(con: duckdb.DuckDBPyConnection) -> None:
    """Versions recorded without the label tables: a pair the retraction added can only read as new labels."""
    pairs, human, judges = _frames([*ALL, "p7"])
    v1, _ = _record(con, pairs, human, judges, upstream_labels=False)
    retractions = RetractionPolicy(raters=[Retraction(id="r3", reason="spammer", at=AT)])
    v2, _ = _record(con, pairs, human, judges, retractions=retractions, upstream_labels=False)
    p7 = data.pair_ids(pairs)["p7"]
    assert [(r["pair_id"], r["reasons"]) for r in diff(con, v1, v2)["added"]] == [(p7, ["new labels"])]
    assert con.execute("SELECT count(*) FROM lineage.labels").fetchone() == (0,)


def test_upstream_labels_are_recorded_per_version(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    v1, _ = _record(con, pairs, human, judges)
    got = pl.DataFrame(
        con.execute(
            "SELECT pair_id, label_id, rater_id, judge_id FROM lineage.labels WHERE version_id = ?", [v1]
        ).arrow()
    ).sort("label_id")
    want = pl.concat(
        [
            human.select("pair_id", "label_id", "rater_id", pl.lit(None, pl.String).alias("judge_id")),
            judges.select("pair_id", "label_id", pl.lit(None, pl.String).alias("rater_id"), "judge_id"),
        ]
    ).sort("label_id")
    assert got.height == human.height + judges.height == 15
    assert got.equals(want)


def test_example_chain_reaches_landing_files_and_lines(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    v1, ps = _record(con, pairs, human, judges)
    pid = data.pair_ids(pairs)
    example_id = ps.filter(pl.col("pair_id") == pid["p3"])["example_id"].item()
    chain = example_chain(con, example_id)
    assert chain["version_id"] == v1 and chain["pair"]["pair_id"] == pid["p3"]
    pair_row = pairs.filter(pl.col("pair_id") == pid["p3"]).row(0, named=True)
    assert (chain["pair"]["source_file"], chain["pair"]["source_line"]) == (
        pair_row["source_file"],
        pair_row["source_line"],
    )
    want = human.filter(pl.col("pair_id") == pid["p3"]).sort("label_id")
    got = chain["labels"]
    assert [lab["label_id"] for lab in got] == want["label_id"].to_list()
    assert [(lab["rater_id"], lab["source_file"], lab["source_line"]) for lab in got] == list(
        want.select("rater_id", "source_file", "source_line").iter_rows()
    )
    with pytest.raises(UnknownIdError, match="unknown example"):
        example_chain(con, "0123456789abcdef")


def test_retention_prunes_old_versions_but_keeps_model_referenced_ones(con: duckdb.DuckDBPyConnection) -> None:
    pairs, human, judges = _frames(ALL)
    versions = []
    for i in range(4):
        vid, _ = _record(con, pairs, human, judges, policy_hash=f"policy{i:010d}", retention=2)
        versions.append(vid)
        if i == 0:
            record_model(con, "reward_model", vid, {}, "train")
    retained = dict(
        con.execute("SELECT version_id, retained FROM lineage.versions WHERE kind = 'preference_set'").fetchall()
    )
    assert retained == {versions[0]: True, versions[1]: False, versions[2]: True, versions[3]: True}
    with_rows = {r[0] for r in con.execute("SELECT DISTINCT version_id FROM lineage.rows").fetchall()}
    assert with_rows == {versions[0], versions[2], versions[3]}
    with_labels = {r[0] for r in con.execute("SELECT DISTINCT version_id FROM lineage.labels").fetchall()}
    assert with_labels == with_rows
    assert {v["version_id"] for v in rater_impact(con, "r1")["preference_sets"]} == with_rows
    with pytest.raises(UnknownIdError, match="pruned"):
        diff(con, versions[1], versions[2])
    # Re-materializing a pruned set brings its rows back (it is the current content again).
    again, _ = _record(con, pairs, human, judges, policy_hash=f"policy{1:010d}", retention=2)
    assert again == versions[1]
    assert con.execute("SELECT retained FROM lineage.versions WHERE version_id = ?", [again]).fetchone() == (True,)
    assert diff(con, versions[1], versions[2])["summary"]["unchanged"] == 5


def test_apply_retractions_drops_exactly_their_labels() -> None:
    _, human, judges = _frames([*ALL, "p6"])
    policy = RetractionPolicy(
        raters=[Retraction(id="r3", reason="spammer", at=AT), Retraction(id="r-typo", reason="x", at=AT)],
        judges=[Retraction(id="recorded:gpt-4", reason="leaked", at=AT)],
    )
    human_kept, judge_kept, summary = apply_retractions(human, judges, policy)
    assert human_kept.equals(human.filter(pl.col("rater_id") != "r3"))
    assert set(judge_kept["judge_id"]) == {data.RULES, data.GPT4O}  # gpt-4o is not the gpt-4 version
    assert summary.select("kind", "id", "labels_removed").rows() == [
        ("rater", "r3", 5),
        ("rater", "r-typo", 0),
        ("judge", "recorded:gpt-4", 1),
    ]


def test_retract_appends_to_the_home_file_and_merges_with_the_policy(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    retract(home, "rater", "r3", "spammer", at=AT)
    retract(home, "judge", "recorded:gpt-4", "leaked eval", at=AT)
    again = retract(home, "rater", "r3", "second time")
    assert [r.reason for r in again.raters] == ["spammer"]  # an id already retracted is kept as it was
    section = RetractionPolicy(raters=[Retraction(id="r1", reason="policy review", at=AT)])
    merged = load_retractions(home, section)
    assert [r.id for r in merged.raters] == ["r1", "r3"]
    assert merged.names("judge", data.GPT4) is not None and merged.names("judge", data.GPT4O) is None
    with pytest.raises(ValueError):
        RetractionPolicy.model_validate({"raters": [{"id": "x", "reason": "y", "at": AT, "extra": 1}]})
