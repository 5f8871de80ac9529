"""prefgate's aggregators against crowd-kit 1.4.2 on real preference-label data sets.

MajorityVote and DawidSkene on LLMFAO crowd comparisons, the PandaLM test set (three annotators) and MT-Bench
expert votes; BradleyTerry on MT-Bench and LLMFAO model-level outcomes. Posteriors must agree within 1e-6 for the
same initialisation and iterations (achieved: ~1e-15 before crowd-kit floors its returned posteriors at 1e-10,
so <= 1e-10 raw). Skipped where crowd-kit or the shared data are absent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from prefgate.consensus import BradleyTerry, DawidSkene, MajorityVote

ck = pytest.importorskip("crowdkit.aggregation")
pd = pytest.importorskip("pandas")

DATA = Path("/work/shared/data")
LLMFAO = DATA / "llmfao" / "crowd-comparisons.csv"
PANDALM = DATA / "pandalm-testset" / "testset-v1.json"
MTBENCH = DATA / "mtbench-human-gpt4" / "mtbench_human_gpt4_votes.jsonl.gz"
TOL = 1e-6  # the contract
FLOOR = 1e-10  # crowd-kit floors the posteriors it returns at _EPS = 1e-10 (without renormalising)


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"reference data not present: {path}")


def llmfao() -> pl.DataFrame:
    """8,931 crowd labels (left/right/tie) on 2,139 pairs by 124 workers."""
    _need(LLMFAO)
    df = pl.read_csv(LLMFAO)
    return df.select(
        pl.col("id").cast(pl.String).alias("task"), pl.col("worker").cast(pl.String), "winner", "left", "right"
    )


def pandalm() -> pl.DataFrame:
    """999 pairs x annotator1..3, labels 0 (tie) / 1 / 2 (integers, kept as integers)."""
    _need(PANDALM)
    rows = json.loads(PANDALM.read_text())
    return pl.DataFrame(
        [
            {"task": str(r["idx"]), "worker": f"annotator{k}", "label": int(r[f"annotator{k}"])}
            for r in rows
            for k in (1, 2, 3)
        ]
    )


def mtbench() -> pl.DataFrame:
    """1,751 expert/author votes (model_a/model_b/tie) on 1,232 (question, turn, model pair) items."""
    _need(MTBENCH)
    out = []
    with gzip.open(MTBENCH, "rt") as fh:
        for line in fh:
            r = json.loads(line)
            task = f"{r['question_id']}:{r['turn']}:{r['model_a']}:{r['model_b']}"
            for v in r["human_votes"]:
                out.append(
                    {
                        "task": task,
                        "worker": v["judge"],
                        "label": v["winner"],
                        "model_a": r["model_a"],
                        "model_b": r["model_b"],
                    }
                )
    return pl.DataFrame(out)


DATASETS = {
    "llmfao": lambda: llmfao().rename({"winner": "label"}).select("task", "worker", "label"),
    "pandalm": pandalm,
    "mtbench": lambda: mtbench().select("task", "worker", "label"),
}


def _as_pandas(df: pl.DataFrame) -> Any:
    return df.select("task", "worker", "label").to_pandas()


def _aligned(ours: pl.DataFrame, theirs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Our probas_ (task + one column per class) and crowd-kit's, as arrays in crowd-kit's row/column order."""
    theirs = theirs.copy()
    theirs.index = theirs.index.astype(str)
    cols = [str(c) for c in theirs.columns]
    mine = ours.to_pandas().set_index("task").loc[theirs.index, cols]
    return mine.to_numpy(), theirs.to_numpy()


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request: pytest.FixtureRequest) -> tuple[str, pl.DataFrame]:
    return request.param, DATASETS[request.param]()


def test_majority_vote_matches_crowdkit(dataset: tuple[str, pl.DataFrame]) -> None:
    _, df = dataset
    theirs = ck.MajorityVote().fit(_as_pandas(df))
    ours = MajorityVote().fit(df, task="task", worker="worker", label="label")
    mine, ref = _aligned(ours.probas_, theirs.probas_)
    assert np.abs(mine - ref).max() < 1e-12
    # labels: compared where the top count is not shared (crowd-kit documents no tie rule)
    labels = ours.labels_.filter(~pl.col("tied"))
    ref_labels = {str(k): str(v) for k, v in theirs.labels_.items()}
    assert labels.height > 0.5 * ours.labels_.height
    assert all(ref_labels[t] == lab for t, lab in labels.select("task", "label").iter_rows())


@pytest.mark.parametrize(("n_iter", "tol"), [(0, 0.0), (1, 0.0), (10, 0.0), (100, 1e-5), (300, 0.0)])
def test_dawid_skene_matches_crowdkit(dataset: tuple[str, pl.DataFrame], n_iter: int, tol: float) -> None:
    _, df = dataset
    theirs = ck.DawidSkene(n_iter=n_iter, tol=tol).fit(_as_pandas(df))
    ours = DawidSkene(n_iter=n_iter, tol=tol).fit(df, task="task", worker="worker", label="label")
    # same stopping iteration, same loss trajectory
    assert ours.n_iter_ == len(theirs.loss_history_)
    np.testing.assert_allclose(ours.loss_history_, theirs.loss_history_, rtol=0, atol=1e-9)
    mine, ref = _aligned(ours.probas_, theirs.probas_)
    assert np.abs(mine - ref).max() < TOL
    assert np.abs(np.maximum(mine, FLOOR) - ref).max() < 1e-9  # with crowd-kit's floor: rounding only
    # priors and confusion matrices (crowd-kit: rows (worker, observed label), columns true label)
    np.testing.assert_allclose(ours.priors_, theirs.priors_.to_numpy(), rtol=0, atol=TOL)
    conf = ours.confusion_frame().to_pandas()
    wide = conf.pivot_table(index=["worker", "observed"], columns="true", values="probability")
    err = theirs.errors_.copy()
    err.index = pd.MultiIndex.from_arrays(
        [err.index.get_level_values(0).astype(str), err.index.get_level_values(1).astype(str)]
    )
    err.columns = [str(c) for c in err.columns]
    assert len(wide) == len(err)  # the same (worker, observed) cells exist
    np.testing.assert_allclose(wide.loc[err.index, err.columns].to_numpy(), err.to_numpy(), rtol=0, atol=TOL)
    # labels agree wherever crowd-kit's top posterior is clear
    ref_probs = np.sort(ref, axis=1)
    clear = ref_probs[:, -1] - ref_probs[:, -2] > 1e-6
    ref_labels = np.array([str(v) for v in theirs.labels_.loc[theirs.probas_.index]])
    mine_labels = ours.labels_.to_pandas().set_index("task").loc[theirs.probas_.index.astype(str), "label"]
    assert (mine_labels.to_numpy()[clear] == ref_labels[clear]).all()


# ---------------------------------------------------------------------------------------------- Bradley-Terry


def _mtbench_outcomes() -> pl.DataFrame:
    df = mtbench()
    return df.select(
        pl.col("model_a").alias("item_a"),
        pl.col("model_b").alias("item_b"),
        pl.col("label").replace_strict({"model_a": "a", "model_b": "b", "tie": "tie"}).alias("outcome"),
    )


def _llmfao_outcomes() -> pl.DataFrame:
    df = llmfao()
    return df.select(
        pl.col("left").alias("item_a"),
        pl.col("right").alias("item_b"),
        pl.col("winner").replace_strict({"left": "a", "right": "b", "tie": "tie"}).alias("outcome"),
    )


def _crowdkit_frame(outcomes: pl.DataFrame) -> Any:
    """crowd-kit's pairwise input (left, right, label = the winner); it ignores ties only if they are dropped."""
    decisive = outcomes.filter(pl.col("outcome") != "tie")
    label = pl.when(pl.col("outcome") == "a").then(pl.col("item_a")).otherwise(pl.col("item_b"))
    return decisive.select(
        pl.lit("w").alias("worker"),
        pl.col("item_a").alias("left"),
        pl.col("item_b").alias("right"),
        label.alias("label"),
    ).to_pandas()


@pytest.mark.parametrize("source", ["mtbench", "llmfao"])
def test_bradley_terry_matches_crowdkit(source: str) -> None:
    outcomes = _mtbench_outcomes() if source == "mtbench" else _llmfao_outcomes()
    frame = _crowdkit_frame(outcomes)
    # crowd-kit's stopping rule stops any tol > 0 run after two updates (p_old aliases p_new): use tol=0.
    for n_iter in (1, 2, 25):
        theirs = ck.BradleyTerry(n_iter=n_iter, tol=0.0).fit(frame).scores_
        ours = BradleyTerry(n_iter=n_iter, tol=0.0, ties="drop", prior=0.0).fit(outcomes)
        strength = dict(ours.scores_.select("item", "strength").iter_rows())
        assert ours.n_iter_ == n_iter
        # same update, initialisation and normalisation (sum 1): equal up to summation order
        assert max(abs(strength[k] - v) for k, v in theirs.items()) < 1e-12
    # both run to convergence: the maximum-likelihood strengths
    theirs = ck.BradleyTerry(n_iter=3000, tol=0.0).fit(frame).scores_
    ours = BradleyTerry(tol=1e-12, ties="drop", prior=0.0).fit(outcomes)
    assert ours.converged_
    strength = dict(ours.scores_.select("item", "strength").iter_rows())
    assert max(abs(strength[k] - v) for k, v in theirs.items()) < 1e-9
    # scores are log-strengths centred to mean 0: crowd-kit's normalisation differs by a constant only
    score = dict(ours.scores_.select("item", "score").iter_rows())
    logs = {k: np.log(v) for k, v in theirs.items()}
    shift = np.mean(list(logs.values()))
    assert max(abs(score[k] - (logs[k] - shift)) for k in logs) < 1e-7
