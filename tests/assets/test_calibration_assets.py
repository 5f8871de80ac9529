"""Judge calibration, curation and the human review loop on the bundled sample, with two planted biased judges.

One module-scoped run (ingest, the three label batches, refresh) over the sample plus two recorded judges planted
on the LLMFAO pairs: one that always picks the response shown first, one that always picks the longer. Every
agreement figure the ``judge_calibration`` asset reports is recomputed here from the warehouse tables
(scikit-learn's kappa), the planted judges must be caught by the gate and kept out of the set, curation must
reconcile, and a Label Studio export of the review queue must come back as human labels.
"""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score

from pipelines.definitions import build_definitions
from prefgate.cli import SAMPLE_LANDING, land_folder
from prefgate.cli import main as cli_main
from prefgate.home import PROJECT_ROOT, Home
from prefgate.policy import Policy, load_policy
from tests.conftest import read_table, run_job

BATCHES = ["2026-11-02", "2026-11-03", "2026-11-04"]
PLANT_BATCH = "2026-11-02"
REVIEW_BATCH = "2026-11-10"
PLANTED_FIRST = "recorded:planted-first"
PLANTED_LONGER = "recorded:planted-longer"
MTBENCH_GPT4 = "recorded:gpt-4:mt-bench-pair"
ENSEMBLE = "ensemble"
CHOICES = ["a", "b", "tie"]
TOL = 1e-12
TABLES = (
    "judge_labels",
    "human_consensus",
    "human_labels",
    "response_pairs",
    "judge_calibration",
    "judge_verdicts",
    "preference_set",
    "curation_dropped",
    "prompt_audit",
    "review_queue",
)


@dataclass
class CalibrationRun:
    """The home, Dagster objects, job results and a snapshot of the warehouse taken right after refresh_job."""

    home: Home
    defs: dg.Definitions
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]
    tables: dict[str, pl.DataFrame]
    policy: Policy


def _planted_sources() -> list[dict[str, Any]]:
    """Two recorded judge sources over the LLMFAO pairs, declared exactly like llmfao-gpt4."""
    return [
        {
            "name": name,
            "kind": "judge_labels",
            "pairs_from": "llmfao",
            "glob": f"judge_labels/*/{name}*.csv",
            "columns": {"pair_key": "id", "choice": "winner"},
            "choices": {"left": "first", "right": "second", "tie": "tie"},
            "shown_first": "first",
            "constants": {"judge_id": judge_id},
        }
        for name, judge_id in (("planted-first", PLANTED_FIRST), ("planted-longer", PLANTED_LONGER))
    ]


def _write_planted_labels(landing: Path) -> None:
    """CSV verdicts on the pair keys of llmfao-gpt4's batch: always the left (shown-first) / always the longer."""
    keys = [r["id"] for r in csv.DictReader((landing / "judge_labels" / PLANT_BATCH / "llmfao-gpt4.csv").open())]
    pairs: dict[str, tuple[str, str]] = {}
    for line in (landing / "pairs" / "llmfao-pairs.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        pairs[str(rec["id"])] = (rec.get("result_x") or "", rec.get("result_y") or "")

    def longer(key: str) -> str:
        x, y = pairs.get(key, ("", ""))
        return "left" if len(x) >= len(y) else "right"  # equal lengths do not enter P(longer)

    folder = landing / "judge_labels" / PLANT_BATCH
    for name, pick in (("planted-first", lambda k: "left"), ("planted-longer", longer)):
        rows = [{"id": k, "winner": pick(k)} for k in keys]
        (folder / f"{name}.csv").write_text(pl.DataFrame(rows).write_csv(), encoding="utf-8")


@pytest.fixture(scope="module")
def cal_run(tmp_path_factory: pytest.TempPathFactory) -> CalibrationRun:
    """The sample plus two planted judges: ingest, three label batches, refresh; tables snapshotted after."""
    root = tmp_path_factory.mktemp("calibration")
    home = Home(root / "home").ensure()
    land_folder(SAMPLE_LANDING, home)
    # the sources_copy pattern of conftest, module-scoped: a copy of config/sources.yaml with two extra sources
    sources = root / "sources.yaml"
    shutil.copy(PROJECT_ROOT / "config" / "sources.yaml", sources)
    declared = yaml.safe_load(sources.read_text(encoding="utf-8"))
    declared["sources"].extend(_planted_sources())
    sources.write_text(yaml.safe_dump(declared, sort_keys=False), encoding="utf-8")
    _write_planted_labels(home.landing)

    defs = build_definitions(home, sources_path=str(sources))
    instance = dg.DagsterInstance.ephemeral()
    results = {"ingest": run_job(defs, instance, "ingest_job")}
    for key in BATCHES:
        results[key] = run_job(defs, instance, "labels_job", key)
    results["refresh"] = run_job(defs, instance, "refresh_job")
    tables = {name: read_table(home, name) for name in TABLES}
    policy = load_policy(PROJECT_ROOT / "config" / "policy.yaml")
    return CalibrationRun(home, defs, instance, results, tables, policy)


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    for mat in result.get_asset_materialization_events():
        if mat.asset_key == dg.AssetKey(key):
            return {k: v.value for k, v in mat.materialization.metadata.items()}
    raise KeyError(key)


def _close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= TOL


def _overall(run: CalibrationRun) -> pl.DataFrame:
    return run.tables["judge_calibration"].filter((pl.col("slice") == "all") & (pl.col("slice_value") == "all"))


# ------------------------------------------------------------------ 1. agreement figures, recomputed


def _independent(run: CalibrationRun, judge_id: str) -> dict[str, Any]:
    """Agreement with / without ties, 3-class kappa, n_labels and P(first) of one judge, from the raw tables."""
    labels = run.tables["judge_labels"].filter(
        (pl.col("judge_id") == judge_id) & (pl.col("status") == "ok") & pl.col("choice").is_not_null()
    )
    human = run.tables["human_consensus"].filter(pl.col("verdict").is_in(CHOICES)).select("pair_id", "verdict")
    j = labels.join(human, on="pair_id", how="inner")
    y_judge, y_human = j["choice"].to_list(), j["verdict"].to_list()
    strict = j.filter(pl.col("choice").is_in(["a", "b"]) & pl.col("verdict").is_in(["a", "b"]))
    both_orders = any(judge_id.startswith(p) for p in run.policy.calibration.both_orders_judges)
    ordered = strict.filter(pl.col("shown_first").is_not_null())
    return {
        "n_labels": j.height,
        "agree_ties": sum(c == h for c, h in zip(y_judge, y_human, strict=True)) / j.height,
        "agree_strict": (strict["choice"] == strict["verdict"]).mean() if strict.height else None,
        "kappa": float(cohen_kappa_score(y_judge, y_human, labels=CHOICES)),
        # a both-orders recorded judge has no display order: P(first) is not measured
        "p_first": None if both_orders or ordered.height == 0 else (ordered["choice"] == ordered["shown_first"]).mean(),
    }


def test_calibration_figures_equal_an_independent_computation(cal_run: CalibrationRun) -> None:
    overall = _overall(cal_run)
    judges = [j for j in overall["judge_id"].to_list() if j != ENSEMBLE]
    assert MTBENCH_GPT4 in judges and PLANTED_FIRST in judges and PLANTED_LONGER in judges
    assert set(judges) == set(cal_run.tables["judge_labels"]["judge_id"].unique())
    for judge_id in judges:
        row = overall.filter(pl.col("judge_id") == judge_id).row(0, named=True)
        want = _independent(cal_run, judge_id)
        assert row["n_labels"] == want["n_labels"] > 0, judge_id
        for name in ("agree_ties", "agree_strict", "kappa", "p_first"):
            assert _close(row[name], want[name]), (judge_id, name, row[name], want[name])
    assert overall.filter(pl.col("judge_id") == MTBENCH_GPT4)["p_first"].to_list() == [None]
    assert overall.filter(pl.col("judge_id") == PLANTED_FIRST)["p_first"].to_list() == [1.0]
    # the ensemble combines the judges that pass overall: it exists exactly when at least two do
    passing = overall.filter((pl.col("judge_id") != ENSEMBLE) & pl.col("passed")).height
    assert (ENSEMBLE in overall["judge_id"].to_list()) == (passing >= 2)


def test_calibration_headline_metadata_per_judge(cal_run: CalibrationRun) -> None:
    """kappa/<judge> and agreement/<judge> (strict) as plain floats under short names, for the Plots tab."""
    overall = _overall(cal_run)
    meta = _metadata(cal_run.results["refresh"], "judge_calibration")
    names = meta["judge_names"]
    assert names["planted-first"] == PLANTED_FIRST and names["planted-longer"] == PLANTED_LONGER
    assert names["mtbench-gpt4"] == MTBENCH_GPT4 and names.get(ENSEMBLE, ENSEMBLE) == ENSEMBLE
    assert set(names.values()) == set(overall["judge_id"])
    by_id = {row["judge_id"]: row for row in overall.iter_rows(named=True)}
    for name, judge_id in names.items():
        for key, col in ((f"kappa/{name}", "kappa"), (f"agreement/{name}", "agree_strict")):
            want = by_id[judge_id][col]
            if want is None:
                assert key not in meta, key
            else:
                assert type(meta[key]) is float and meta[key] == round(want, 4), (key, meta[key], want)
    passing = overall.filter((pl.col("judge_id") != ENSEMBLE) & pl.col("passed")).height
    assert meta["judges_passing"] == passing
    table = meta["overall"]
    assert isinstance(table, dg.TableMetadataValue) and len(table.records) == overall.height
    assert {c.name: c.type for c in table.schema.columns}["kappa"] == "float"
    chart = cal_run.home.exports / "charts" / "judge_calibration.png"
    assert meta["reliability_before_png"] == str(chart) and chart.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ 2. planted judges are caught by the gate


def test_planted_judges_fail_the_gate_with_the_bias_in_words(cal_run: CalibrationRun) -> None:
    overall = _overall(cal_run)
    first = overall.filter(pl.col("judge_id") == PLANTED_FIRST).row(0, named=True)
    longer = overall.filter(pl.col("judge_id") == PLANTED_LONGER).row(0, named=True)
    assert first["passed"] is False and longer["passed"] is False
    assert first["p_first"] == 1.0 and first["n_first"] > 0
    assert longer["p_longer"] == 1.0 and longer["n_longer"] > 0
    assert any(r.startswith("position bias |p_first-0.5|") and "p_first 1.00" in r for r in first["reasons"])
    assert any(r.startswith("length bias p_longer-human_p_longer") and "judge 1.00" in r for r in longer["reasons"])
    # every slice of a judge failing overall fails too, and says so
    planted = cal_run.tables["judge_calibration"].filter(pl.col("judge_id").is_in([PLANTED_FIRST, PLANTED_LONGER]))
    slices = planted.filter(pl.col("slice") != "all")
    assert slices.height > 0 and not slices["passed"].any()
    assert slices["reasons"].list.eval(pl.element().str.starts_with("judge fails overall: ")).list.any().all()


def test_planted_judges_never_label_the_set(cal_run: CalibrationRun) -> None:
    ps = cal_run.tables["preference_set"]
    judge_rows = ps.filter(pl.col("label_origin") == "judge")
    assert not judge_rows["label_source"].is_in([PLANTED_FIRST, PLANTED_LONGER]).any()
    assert not judge_rows["judge_ids"].list.eval(pl.element().is_in([PLANTED_FIRST, PLANTED_LONGER])).list.any().any()


def test_review_queue_routes_planted_judges_failing_slices(cal_run: CalibrationRun) -> None:
    t, routing = cal_run.tables, cal_run.policy.routing
    cons = cal_run.policy.consensus
    confident = t["human_consensus"].filter(
        pl.col("verdict").is_in(["a", "b"])
        & (pl.col("n_labels") >= cons.min_labels)
        & (pl.col("agreement") >= cons.min_agreement)
        & (pl.col("confidence").fill_null(pl.col("agreement")) >= cons.min_confidence)
    )["pair_id"]
    planted = [PLANTED_FIRST, PLANTED_LONGER]
    verdicts = t["judge_verdicts"].filter(
        pl.col("judge_id").is_in(planted) & ~pl.col("pair_id").is_in(confident.implode())
    )
    failing = t["judge_calibration"].filter(
        pl.col("judge_id").is_in(planted) & ~pl.col("passed") & pl.col("slice").is_in(list(routing.slices))
    )
    expected: set[tuple[str, str]] = set()
    for s in routing.slices:
        fail = failing.filter(pl.col("slice") == s).select("judge_id", pl.col("slice_value").alias(s))
        hits = verdicts.select("pair_id", "judge_id", pl.col(s).cast(pl.String).fill_null("unknown")).join(
            fail, on=["judge_id", s]
        )
        expected |= {(p, f"failing_slice:{s}={v}") for p, v in hits.select("pair_id", s).iter_rows()}
    assert expected, "the planted judges label pairs without a confident human verdict"
    queue = {p: set(r) for p, r in t["review_queue"].select("pair_id", "reasons").iter_rows()}
    missing = sorted((p, r) for p, r in expected if r not in queue.get(p, set()))
    assert not missing, missing[:5]
    assert "failing_slice:source=llmfao" in {r for _, r in expected}


# ------------------------------------------------------------------ 3. curation reconciles


def test_curation_counts_reconcile_and_groups_stay_in_one_split(cal_run: CalibrationRun) -> None:
    meta = _metadata(cal_run.results["refresh"], "preference_set")
    ps, dropped = cal_run.tables["preference_set"], cal_run.tables["curation_dropped"]
    assert meta["candidates"] == ps.height + meta["curated_out"]
    assert meta["rows"] == ps.height
    assert (meta["train_rows"], meta["eval_rows"]) == (
        ps.filter(pl.col("split") == "train").height,
        ps.filter(pl.col("split") == "eval").height,
    )
    judge_share = ps.filter(pl.col("label_origin") == "judge").height / ps.height
    assert type(meta["judge_row_share"]) is float and meta["judge_row_share"] == round(judge_share, 4)
    assert dropped.height == meta["curated_out"]
    assert ps.height > 100
    groups = ps.join(cal_run.tables["prompt_audit"].select("prompt_id", "group_id"), on="prompt_id", how="left")
    assert groups["group_id"].null_count() == 0, "every set prompt has an audited prompt group"
    both = groups.group_by("group_id").agg(pl.col("split").n_unique().alias("n")).filter(pl.col("n") > 1)
    assert both.height == 0, f"prompt groups in both train and eval: {both['group_id'].to_list()[:5]}"
    assert set(ps["split"].unique()) == {"train", "eval"}


# ------------------------------------------------------------------ 4. the review loop through Label Studio


def _annotation(ann_id: int, task_id: int, annotator: int, side: str) -> dict[str, Any]:
    """One annotation as Label Studio's JSON export writes it (Pairwise result, from_name "comparison")."""
    result = {
        "value": {"selected": side},
        "id": f"pw-{ann_id}",
        "from_name": "comparison",
        "to_name": "answer_left",
        "type": "pairwise",
        "origin": "manual",
    }
    return {
        "id": ann_id,
        "completed_by": annotator,
        "result": [result],
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-11-10T09:30:00.000000Z",
        "updated_at": "2026-11-10T09:30:20.000000Z",
        "draft_created_at": None,
        "lead_time": 20.5,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"uid-{ann_id}",
        "import_id": None,
        "last_action": None,
        "task": task_id,
        "project": 5,
        "updated_by": annotator,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def _exported_task(task_id: int, task: dict[str, Any], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """A task as Label Studio exports it: the imported data and meta verbatim, plus its own fields."""
    return {
        "id": task_id,
        "annotations": annotations,
        "file_upload": "tasks.json",
        "drafts": [],
        "predictions": [],
        "data": task["data"],
        "meta": task.get("meta", {}),
        "created_at": "2026-11-09T08:00:00.000000Z",
        "updated_at": "2026-11-10T09:30:20.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 5,
        "updated_by": annotations[-1]["completed_by"],
        "comment_authors": [],
    }


# (annotator id, clicked side) per task: two annotators on three tasks, disagreeing on the first
CLICKS = [[(7, "left"), (9, "right")], [(7, "right"), (9, "right")], [(7, "left"), (9, "left")]]


def test_review_exports_and_the_loop_back(cal_run: CalibrationRun, monkeypatch: pytest.MonkeyPatch) -> None:
    home, t = cal_run.home, cal_run.tables
    queue = t["review_queue"]
    assert queue.height > 0
    files = {k: Path(v) for k, v in _metadata(cal_run.results["refresh"], "review_queue")["exports"].items()}
    for key in ("tasks", "label_config", "queue_jsonl", "queue_csv"):
        assert files[key].is_file() and files[key].parent.parent == home.exports / "review", key
    root = ET.fromstring(files["label_config"].read_text(encoding="utf-8"))
    assert root.tag == "View" and [e.get("name") for e in root.iter("Pairwise")] == ["comparison"]
    tasks = json.loads(files["tasks"].read_text(encoding="utf-8"))
    assert [x["data"]["pair_id"] for x in tasks] == queue["pair_id"].to_list()
    lines = files["queue_jsonl"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["pair_id"] for x in lines] == queue["pair_id"].to_list()
    with files["queue_csv"].open(encoding="utf-8", newline="") as fh:
        assert [r["pair_id"] for r in csv.DictReader(fh)] == queue["pair_id"].to_list()

    # no queued pair already has a confident human verdict
    cons = cal_run.policy.consensus
    confident = t["human_consensus"].filter(
        pl.col("verdict").is_in(["a", "b"])
        & (pl.col("n_labels") >= cons.min_labels)
        & (pl.col("agreement") >= cons.min_agreement)
        & (pl.col("confidence").fill_null(pl.col("agreement")) >= cons.min_confidence)
    )
    assert confident.height > 0
    assert queue.join(confident, on="pair_id", how="semi").height == 0

    # Label Studio's JSON export: two annotators on the first three tasks
    chosen = tasks[:3]
    export = [
        _exported_task(
            200 + i, task, [_annotation(5000 + 10 * i + n, 200 + i, who, side) for n, (who, side) in enumerate(clicks)]
        )
        for i, (task, clicks) in enumerate(zip(chosen, CLICKS, strict=True))
    ]
    export_path = home.root / "project-5-at-2026-11-10.json"
    export_path.write_text(json.dumps(export, indent=2), encoding="utf-8")
    before = read_table(home, "human_labels")
    monkeypatch.setenv("PREFGATE_HOME", str(home.root))  # the command sets both; restored after the test
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    assert cli_main(["--home", str(home.root), "review", "land", str(export_path), "--batch", REVIEW_BATCH]) == 0
    landed = home.landing / "human_labels" / REVIEW_BATCH / f"labelstudio-review__{export_path.stem}.jsonl"
    assert landed.is_file()
    assert (home.landing / "pairs" / f"zz-labelstudio-review__{export_path.stem}.jsonl").is_file()

    run_job(cal_run.defs, cal_run.instance, "ingest_job")
    run_job(cal_run.defs, cal_run.instance, "labels_job", REVIEW_BATCH)
    after = read_table(home, "human_labels")
    new = after.join(before.select("label_id"), on="label_id", how="anti")
    assert after.height == before.height + 6 and new.height == 6
    assert set(new["rater_id"]) == {"labelstudio-review:7", "labelstudio-review:9"}
    assert (new["source"] == "labelstudio-review").all()
    assert (new["source_file"] == f"human_labels/{REVIEW_BATCH}/{landed.name}").all()
    assert (new["batch_date"].cast(pl.String) == REVIEW_BATCH).all()
    pairs = {p["pair_id"]: p for p in t["response_pairs"].iter_rows(named=True)}
    rows = {(r["pair_id"], r["rater_id"]): r for r in new.iter_rows(named=True)}
    assert len(rows) == 6
    for i, (task, clicks) in enumerate(zip(chosen, CLICKS, strict=True)):
        d = task["data"]
        for who, side in clicks:
            r = rows[(d["pair_id"], f"labelstudio-review:{who}")]
            assert r["source_line"] == i + 1
            assert r["raw_choice"] == side and r["shown_first"] == d["left_side"]
            clicked = d["answer_left"] if side == "left" else d["answer_right"]
            assert pairs[d["pair_id"]][f"response_{r['choice']}"] == clicked
    q = read_table(home, "quarantine_human_labels").filter(pl.col("batch_date").cast(pl.String) == REVIEW_BATCH)
    assert q.height == 0, q["reason"].to_list()
