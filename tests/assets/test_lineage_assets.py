"""Row-level lineage on the bundled sample, end to end: the preference set and a real (tiny) reward model record
versions as they materialize, ``prefgate lineage`` answers from them, and a retraction made with the command
reaches the next preference set.

One module-scoped run (about 1.5 minutes on two cores):

1. ingest, the three label batches, refresh (default policy, Dawid-Skene)     -> version ``v1``; a tiny reward model
   trained on it                                                               -> ``model``;
2. the same, refreshed under a majority-vote copy of the policy               -> ``m1``;
3. ``prefgate lineage retract rater R``, refresh under majority              -> ``m2``;
4. refresh under the default policy again                                     -> ``v2`` (the newest).

Every expectation is recomputed here from the warehouse tables (DuckDB / Polars), never read from the lineage store.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import jsonschema
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from prefgate.cli import SAMPLE_LANDING, land_folder
from prefgate.cli import main as cli_main
from prefgate.home import PROJECT_ROOT, Home
from prefgate.lineage.command import SCHEMA_DIR
from tests.conftest import read_table, run_job

BATCHES = ["2026-11-02", "2026-11-03", "2026-11-04"]
TINY_REWARD = Path(__file__).resolve().parent / "tiny_reward.yaml"
RETRACTED_REASON = "rater excluded/retracted"


@dataclass
class LineageRun:
    home: Home
    rater: str
    rater_label_ids: set[str]
    v1: str
    v2: str
    m1: str
    m2: str
    model: str
    ps_v1: pl.DataFrame
    ps_v2: pl.DataFrame
    ps_m1: pl.DataFrame
    ps_m2: pl.DataFrame
    human_labels: pl.DataFrame
    judge_labels: pl.DataFrame
    response_pairs: pl.DataFrame
    retract_json: dict[str, Any]
    consensus_meta_after: dict[str, Any]


def cli(home: Home, *args: str) -> tuple[int, str, str]:
    """``prefgate --home H lineage ARGS``: exit code, stdout, stderr (the environment is restored afterwards)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PREFGATE_HOME", raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["--home", str(home.root), "lineage", *args])
    return code, out.getvalue(), err.getvalue()


def cli_json(home: Home, schema: str, *args: str) -> dict[str, Any]:
    """Run a subcommand with ``--json``; assert exit 0 and validate the output against its JSON Schema."""
    code, out, err = cli(home, *args, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMA_DIR / f"{schema}.json").read_text(encoding="utf-8")),
        format_checker=jsonschema.FormatChecker(),
    )
    validator.validate(result)
    return result


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(key):
            return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    raise KeyError(key)


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, home: Home) -> tuple[str, pl.DataFrame, dict]:
    """Run refresh_job; the recorded preference-set version, the set itself and human_consensus metadata."""
    result = run_job(defs, instance, "refresh_job")
    return (
        str(metadata(result, "preference_set")["lineage_version"]),
        read_table(home, "preference_set"),
        metadata(result, "human_consensus"),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LineageRun:
    tmp = tmp_path_factory.mktemp("lineage")
    home = Home(tmp / "home").ensure()
    land_folder(SAMPLE_LANDING, home)
    defs = build_definitions(home)
    instance = dg.DagsterInstance.ephemeral()
    run_job(defs, instance, "ingest_job")
    for batch in BATCHES:
        run_job(defs, instance, "labels_job", batch)
    v1, ps_v1, _ = refresh(defs, instance, home)

    trained = defs.resolve_job_def("train_job").execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("reward_model")],
        raise_on_error=False,
        run_config={"ops": {"reward_model": {"config": {"config_file": str(TINY_REWARD)}}}},
    )
    assert trained.success, [str(e.event_specific_data) for e in trained.all_events if e.is_failure]
    model_meta = metadata(trained, "reward_model")
    assert model_meta["dataset_lineage_version"] == v1
    model = str(model_meta["lineage_version"])

    # the llmfao crowd worker behind the most rows of v1 (ties broken by id)
    rater = (
        ps_v1.select(pl.col("rater_ids").alias("rater_id"))
        .explode("rater_id")
        .filter(pl.col("rater_id").str.starts_with("llmfao-crowd:"))
        .group_by("rater_id")
        .len()
        .sort(["len", "rater_id"], descending=[True, False])["rater_id"][0]
    )
    human_labels = read_table(home, "human_labels")

    policy = tmp / "policy_majority.yaml"
    text = (PROJECT_ROOT / "config" / "policy.yaml").read_text(encoding="utf-8")
    assert "method: dawid_skene" in text
    policy.write_text(text.replace("method: dawid_skene", "method: majority", 1), encoding="utf-8")
    majority = build_definitions(home, policy_path=str(policy))
    m1, ps_m1, _ = refresh(majority, instance, home)

    code, out, err = cli(home, "retract", "rater", rater, "--reason", "test", "--json")
    assert code == 0, err
    retract_json = json.loads(out)
    m2, ps_m2, _ = refresh(majority, instance, home)
    v2, ps_v2, consensus_meta_after = refresh(defs, instance, home)

    return LineageRun(
        home=home,
        rater=rater,
        rater_label_ids=set(human_labels.filter(pl.col("rater_id") == rater)["label_id"].to_list()),
        v1=v1,
        v2=v2,
        m1=m1,
        m2=m2,
        model=model,
        ps_v1=ps_v1,
        ps_v2=ps_v2,
        ps_m1=ps_m1,
        ps_m2=ps_m2,
        human_labels=human_labels,
        judge_labels=read_table(home, "judge_labels"),
        response_pairs=read_table(home, "response_pairs"),
        retract_json=retract_json,
        consensus_meta_after=consensus_meta_after,
    )


# ------------------------------------------------------------------------------------- model lineage counts

COUNT_SQL = """
WITH ex AS (SELECT * FROM ps),
labs AS (
    SELECT example_id, 'human' AS origin, unnest(label_ids) AS label_id FROM ex
    UNION ALL
    SELECT example_id, 'judge' AS origin, unnest(judge_label_ids) AS label_id FROM ex
),
el AS (  -- one row per (example, label); an example without labels keeps one row with nulls
    SELECT ex.example_id, labs.origin, labs.label_id FROM ex LEFT JOIN labs USING (example_id)
),
wide AS (
    SELECT el.*, ex.language, ex.category, ex.split, rp.source AS prompt_source,
           hl.rater_id, jl.judge_id, jl.constitution_hash
    FROM el JOIN ex USING (example_id)
    LEFT JOIN response_pairs rp ON rp.pair_id = ex.pair_id
    LEFT JOIN human_labels hl ON el.origin = 'human' AND hl.label_id = el.label_id
    LEFT JOIN judge_labels jl ON el.origin = 'judge' AND jl.label_id = el.label_id
)
SELECT '{dim}' AS dim, {col} AS key, count(DISTINCT example_id) AS examples, count(DISTINCT label_id) AS labels
FROM wide {where} GROUP BY 2
"""
DIMS = {
    "label_origin": ("origin", ""),
    "rater": ("rater_id", "WHERE origin = 'human'"),
    "judge": ("judge_id", "WHERE origin = 'judge'"),
    "constitution": ("constitution_hash", "WHERE origin = 'judge'"),
    "prompt_source": ("prompt_source", ""),
    "language": ("language", ""),
    "category": ("category", ""),
    "split": ("split", ""),
}


def independent_counts(run: LineageRun) -> dict[str, dict[str | None, tuple[int, int]]]:
    """Examples and distinct labels per key of each dimension, straight from v1's rows and the label tables."""
    con = duckdb.connect()
    try:
        for name, frame in [
            ("ps", run.ps_v1),
            ("human_labels", run.human_labels),
            ("judge_labels", run.judge_labels),
            ("response_pairs", run.response_pairs),
        ]:
            con.register(name, frame.to_arrow())
        out: dict[str, dict[str | None, tuple[int, int]]] = {}
        for dim, (col, where) in DIMS.items():
            rows = con.execute(COUNT_SQL.format(dim=dim, col=col, where=where)).fetchall()
            out[dim] = {key: (int(e), int(n)) for _, key, e, n in rows}
        return out
    finally:
        con.close()


def test_model_lineage_counts_equal_an_independent_query(run: LineageRun) -> None:
    result = cli_json(run.home, "model", "model", "reward_model")
    assert result["version"]["version_id"] == run.model
    assert result["version"]["kind"] == "model" and result["version"]["name"] == "reward_model"
    assert result["version"]["parent_version"] == run.v1
    assert result["preference_set"]["version_id"] == run.v1
    assert result["preference_set"]["n_examples"] == run.ps_v1.height

    expected = independent_counts(run)
    got = {dim: {r["key"]: (r["examples"], r["labels"]) for r in rows} for dim, rows in result["counts"].items()}
    assert set(got) == set(DIMS)
    for dim in DIMS:
        assert got[dim] == expected[dim], dim
    assert sum(e for e, _ in got["split"].values()) == run.ps_v1.height
    assert set(got["label_origin"]) == {"human", "judge"}  # the sample's set holds judge rows too

    # the set's own provenance lists agree with the label tables behind the counts
    per_rater = (
        run.ps_v1.select("example_id", pl.col("rater_ids").alias("key"))
        .explode("key")
        .drop_nulls("key")
        .group_by("key")
        .agg(pl.col("example_id").n_unique())
    )
    assert {k: e for k, (e, _) in got["rater"].items()} == dict(per_rater.iter_rows())
    # judge rows carry the pseudo-judge "ensemble" in judge_ids; lineage resolves their labels to the real judges
    per_judge = (
        run.ps_v1.select("example_id", pl.col("judge_ids").alias("key"))
        .explode("key")
        .drop_nulls("key")
        .filter(pl.col("key") != "ensemble")
        .group_by("key")
        .agg(pl.col("example_id").n_unique())
    )
    assert dict(per_judge.iter_rows()).items() <= {k: e for k, (e, _) in got["judge"].items()}.items()
    assert "ensemble" not in got["judge"] and set(got["judge"]) <= set(run.judge_labels["judge_id"].to_list())

    n_labels = run.ps_v1["label_ids"].list.len().sum() + run.ps_v1["judge_label_ids"].list.len().sum()
    assert result["totals"] == {
        "examples": run.ps_v1.height,
        "labels": n_labels,
        "raters": len(got["rater"]),
        "judges": len(got["judge"]),
    }
    code, text, _ = cli(run.home, "model", run.model[:12])  # text form, by id prefix
    assert code == 0 and f"{run.ps_v1.height} examples, {n_labels} labels" in text


def test_model_lineage_shows_the_gates_it_was_trained_under(run: LineageRun) -> None:
    gates = cli_json(run.home, "model", "model", run.model)["gates"]
    exported = json.loads((run.home.exports / "preference_set" / "gates.json").read_text(encoding="utf-8"))
    assert {g["name"] for g in exported} <= set(gates)


# ------------------------------------------------------------------------------------------------ retraction


def involved(rater: str) -> pl.Expr:
    """Rows whose consensus used a label of ``rater``."""
    return pl.col("rater_ids").list.contains(rater)


def test_retract_command_writes_the_file_and_shows_the_impact(run: LineageRun) -> None:
    schema = json.loads((SCHEMA_DIR / "retract.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(run.retract_json)
    assert run.retract_json["id"] == run.rater and run.retract_json["reason"] == "test"
    assert Path(run.retract_json["file"]) == run.home.root / "retractions.yaml"
    impact = run.retract_json["impact"]
    assert {v["version_id"] for v in impact["preference_sets"]} >= {run.v1, run.m1}
    assert [m["version_id"] for m in impact["models"]] == [run.model]


def test_retracted_rater_leaves_no_trace_in_the_new_set(run: LineageRun) -> None:
    for ps in (run.ps_v2, run.ps_m2):
        assert ps.filter(involved(run.rater)).height == 0
        used = set(ps["label_ids"].explode().drop_nulls().to_list())
        assert not used & run.rater_label_ids
    assert run.ps_v1.filter(involved(run.rater)).height > 0
    assert run.ps_m1.filter(involved(run.rater)).height > 0


@pytest.mark.parametrize("which", ["dawid_skene", "majority"])
def test_rows_that_involved_the_rater_are_gone_or_rederived(run: LineageRun, which: str) -> None:
    before, after = (run.ps_v1, run.ps_v2) if which == "dawid_skene" else (run.ps_m1, run.ps_m2)
    old = before.filter(involved(run.rater)).select("pair_id", "label_ids")
    kept = old.join(after.select("pair_id", pl.col("label_ids").alias("new_ids")), on="pair_id")
    assert kept.height < old.height or which == "dawid_skene"  # majority on the sample: some rows lose consensus
    for _, old_ids, new_ids in kept.iter_rows():
        # re-derived from the same labels less the retracted rater's (no other label arrived or left)
        assert set(new_ids) == set(old_ids) - run.rater_label_ids


def test_rows_without_the_rater_are_unchanged_under_majority(run: LineageRun) -> None:
    cols = ["pair_id", "example_id", "chosen_side", "weight", "split", "label_ids"]
    before = run.ps_m1.filter(~involved(run.rater)).select(cols)
    after = run.ps_m2.select(cols)
    joined = before.join(after, on="pair_id", how="left", suffix="_after")
    assert joined["example_id_after"].null_count() == 0, "an uninvolved row disappeared"
    for col in cols[1:]:
        assert (joined[col] == joined[f"{col}_after"]).all(), col


def test_rows_from_other_label_sources_are_unchanged_under_dawid_skene(run: LineageRun) -> None:
    source = run.human_labels.filter(pl.col("rater_id") == run.rater)["source"][0]
    same_source = run.human_labels.filter(pl.col("source") == source)["rater_id"].unique().implode()
    cols = ["pair_id", "example_id", "chosen_side", "weight"]
    before = run.ps_v1.filter(
        (pl.col("label_origin") == "human") & ~pl.col("rater_ids").list.eval(pl.element().is_in(same_source)).list.any()
    ).select(cols)
    assert before.height > 100
    joined = before.join(run.ps_v2.select(cols), on="pair_id", how="left", suffix="_after")
    assert joined["example_id_after"].null_count() == 0
    assert (joined["chosen_side"] == joined["chosen_side_after"]).all()
    assert ((joined["weight"] - joined["weight_after"]).abs() < 1e-9).all()


def test_human_consensus_metadata_shows_the_retraction(run: LineageRun) -> None:
    meta = run.consensus_meta_after
    assert meta["retracted_labels"] == len(run.rater_label_ids) > 0
    rows = [r.data for r in meta["retracted_raters"].records]
    assert [(r["kind"], r["id"], r["reason"]) for r in rows] == [("rater", run.rater, "test")]
    assert rows[0]["labels_removed"] == len(run.rater_label_ids)


def expected_diff(before: pl.DataFrame, after: pl.DataFrame) -> tuple[set[str], set[str], set[str]]:
    b = dict(before.select("pair_id", "chosen_side").iter_rows())
    a = dict(after.select("pair_id", "chosen_side").iter_rows())
    return set(a) - set(b), set(b) - set(a), {p for p in set(a) & set(b) if a[p] != b[p]}


@pytest.mark.parametrize("which", ["dawid_skene", "majority"])
def test_diff_lists_exactly_the_changed_pairs(run: LineageRun, which: str) -> None:
    v_old, v_new, before, after = (
        (run.v1, run.v2, run.ps_v1, run.ps_v2) if which == "dawid_skene" else (run.m1, run.m2, run.ps_m1, run.ps_m2)
    )
    result = cli_json(run.home, "diff", "diff", v_old, v_new)
    assert result["from"]["version_id"] == v_old and result["to"]["version_id"] == v_new
    added, removed, flipped = expected_diff(before, after)
    assert {r["pair_id"] for r in result["added"]} == added
    assert {r["pair_id"] for r in result["removed"]} == removed
    assert {r["pair_id"] for r in result["flipped"]} == flipped
    assert removed | flipped, "the retraction changed nothing: pick another rater"
    summary = result["summary"]
    assert (summary["added"], summary["removed"], summary["flipped"]) == (len(added), len(removed), len(flipped))
    assert summary["unchanged"] == len(set(before["pair_id"]) & set(after["pair_id"])) - len(flipped)
    # every removed / flipped row that rested on the rater names the retraction
    hit = set(before.filter(involved(run.rater))["pair_id"].to_list())
    for item in result["removed"] + result["flipped"]:
        if item["pair_id"] in hit:
            assert RETRACTED_REASON in item["reasons"], item
    ids = {r["pair_id"]: r["example_id"] for r in result["removed"]}
    assert ids == dict(
        before.filter(pl.col("pair_id").is_in(list(removed))).select("pair_id", "example_id").iter_rows()
    )


def test_diff_blames_the_retraction_only_for_rows_that_involved_the_rater(run: LineageRun) -> None:
    result = cli_json(run.home, "diff", "diff", run.v1, run.v2)
    hit = set(run.ps_v1.filter(involved(run.rater))["pair_id"].to_list())
    blamed = {r["pair_id"] for r in result["removed"] + result["flipped"] if RETRACTED_REASON in r["reasons"]}
    assert blamed == hit & {r["pair_id"] for r in result["removed"] + result["flipped"]}


def test_diff_explains_rows_added_by_a_retraction(run: LineageRun) -> None:
    result = cli_json(run.home, "diff", "diff", run.m1, run.m2)
    rated = set(run.human_labels.filter(pl.col("rater_id") == run.rater)["pair_id"].to_list())
    added = [r for r in result["added"] if r["pair_id"] in rated]
    assert added, "no pair was added by the retraction"
    for item in added:
        assert RETRACTED_REASON in item["reasons"] and "new labels" not in item["reasons"], item


def test_rater_impact_lists_old_versions_and_the_model(run: LineageRun) -> None:
    result = cli_json(run.home, "rater", "rater", run.rater)
    sets = {v["version_id"]: v for v in result["preference_sets"]}
    assert set(sets) == {run.v1, run.m1}  # the versions made after the retraction hold none of their labels
    n_v1 = run.ps_v1.filter(involved(run.rater)).height
    assert sets[run.v1]["examples"] == n_v1
    labels_v1 = run.ps_v1["label_ids"].explode().drop_nulls().to_list()
    assert sets[run.v1]["labels"] == len(set(labels_v1) & run.rater_label_ids)
    assert [(m["version_id"], m["parent_version"], m["examples"]) for m in result["models"]] == [
        (run.model, run.v1, n_v1)
    ]
    assert result["in_latest"] is False
    assert result["retraction"] is not None and result["retraction"]["reason"] == "test"
    assert result["matched_ids"] == [run.rater]


# --------------------------------------------------------------------------------------------- example chain


def landing_line(home: Home, rel: str, line: int) -> None:
    """The landing file exists and (text files) has that many lines."""
    path = home.landing / rel
    assert path.is_file(), path
    if path.suffix in (".csv", ".jsonl"):
        assert 1 <= line <= len(path.read_text(encoding="utf-8").splitlines()), (rel, line)


@pytest.mark.parametrize("origin", ["human", "judge"])
def test_example_chain_reaches_landing_files_and_lines(run: LineageRun, origin: str) -> None:
    rows = run.ps_v1.filter(pl.col("label_origin") == origin)
    if origin == "human":
        rows = rows.filter(involved(run.rater)).sort("n_labels", "example_id", descending=[True, False])
    row = rows.sort("example_id").row(0, named=True) if origin == "judge" else rows.row(0, named=True)
    result = cli_json(run.home, "example", "example", row["example_id"], "--version", run.v1)
    assert result["example_id"] == row["example_id"] and result["version_id"] == run.v1
    pair = run.response_pairs.filter(pl.col("pair_id") == row["pair_id"]).row(0, named=True)
    assert result["pair"]["pair_id"] == row["pair_id"] and result["pair"]["prompt_source"] == pair["source"]
    assert (result["pair"]["source_file"], result["pair"]["source_line"]) == (pair["source_file"], pair["source_line"])
    landing_line(run.home, pair["source_file"], pair["source_line"])

    expected: dict[str, tuple[str, int, str | None, str | None]] = {}
    for r in run.human_labels.filter(pl.col("label_id").is_in(row["label_ids"])).iter_rows(named=True):
        expected[r["label_id"]] = (r["source_file"], r["source_line"], r["rater_id"], None)
    for r in run.judge_labels.filter(pl.col("label_id").is_in(row["judge_label_ids"])).iter_rows(named=True):
        expected[r["label_id"]] = (r["source_file"], r["source_line"], None, r["judge_id"])
    assert len(expected) == len(row["label_ids"]) + len(row["judge_label_ids"]) > 0
    got = {
        lab["label_id"]: (lab["source_file"], lab["source_line"], lab["rater_id"], lab["judge_id"])
        for lab in result["labels"]
    }
    assert got == expected
    for source_file, source_line, _, _ in expected.values():
        landing_line(run.home, source_file, source_line)
    if origin == "human":  # the rater's row was trained into the model
        assert [m["version_id"] for m in result["models"]] == [run.model]
        assert run.v1 in result["versions"]

    code, text, _ = cli(run.home, "example", row["example_id"], "--version", run.v1)
    assert code == 0
    for source_file, source_line, _, _ in expected.values():
        assert f"{source_file}:{source_line}" in text


# ------------------------------------------------------------------------------------------------ unknown ids


@pytest.mark.parametrize(
    "args",
    [
        ["rater", "llmfao-crowd:no-such-worker"],
        ["judge", "recorded:no-such-judge"],
        ["example", "ffffffffffffffff"],
        ["model", "no_such_model"],
        ["model", "ps-0000000000000000"],
        ["diff", "{v1}", "ps-0000000000000000"],
        ["example", "{example}", "--version", "ps-0000000000000000"],
        ["retract", "rater", "llmfao-crowd:no-such-worker", "--reason", "typo"],
    ],
    ids=["rater", "judge", "example", "model", "version", "diff", "example-version", "retract"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_unknown_ids_exit_2_with_one_line(run: LineageRun, args: list[str], as_json: bool) -> None:
    retractions = (run.home.root / "retractions.yaml").read_bytes()
    filled = [a.format(v1=run.v1, example=run.ps_v1["example_id"][0]) for a in args]
    code, out, err = cli(run.home, *filled, *(["--json"] if as_json else []))
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("prefgate lineage: ") and ("unknown" in err or "not in" in err), err
    assert (run.home.root / "retractions.yaml").read_bytes() == retractions  # a typo retracts nobody
