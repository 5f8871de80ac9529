"""prefgate.agreement against the reference packages on real rater data (``/work/shared/data``).

* Krippendorff's alpha (nominal; ordinal where the labels have an order) vs ``krippendorff.alpha`` (0.9.0) on
  LLMFAO, PandaLM, XSTest, DICES (350 and 990) and MT-Bench, and vs crowd-kit's ``alpha_krippendorff`` on LLMFAO;
* Fleiss' kappa vs ``statsmodels.stats.inter_rater.fleiss_kappa`` on the fixed panels: PandaLM (3), XSTest (2),
  DICES-350 (123), LLMFAO restricted to the items with exactly 5 labels, DICES-990 restricted to 73;
* pairwise Cohen's kappa vs ``sklearn.metrics.cohen_kappa_score`` on every LLMFAO worker pair with >= 20 shared
  items, PandaLM's 3 annotator pairs and XSTest's pair;
* percent agreement vs the figures in the data sets' PROVENANCE.md.

Tolerance 1e-9 everywhere. ``pytest -s`` prints the figures per data set. Skipped where a reference package or the
shared data are absent.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from prefgate.agreement import (
    agreement_report,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    percent_agreement,
)

krippendorff = pytest.importorskip("krippendorff")
inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
sk_metrics = pytest.importorskip("sklearn.metrics")

DATA = Path("/work/shared/data")
LLMFAO = DATA / "llmfao" / "crowd-comparisons.csv"
PANDALM = DATA / "pandalm-testset" / "testset-v1.json"
XSTEST = DATA / "xstest"
DICES = DATA / "dices-judgebench"
MTBENCH = DATA / "mtbench-human-gpt4" / "mtbench_human_gpt4_votes.jsonl.gz"
TOL = 1e-9


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"reference data not present: {path}")


# --------------------------------------------------------------------------------------------------------------
# Loaders: every set in the long format (pair_id, rater_id, choice)
# --------------------------------------------------------------------------------------------------------------


def llmfao() -> pl.DataFrame:
    """8,931 crowd votes (left/right/tie) on 2,139 pairs by 124 workers (integer ids), 1-5 votes per pair."""
    _need(LLMFAO)
    return pl.read_csv(LLMFAO).select(
        pl.col("id").alias("pair_id"), pl.col("worker").alias("rater_id"), pl.col("winner").alias("choice")
    )


def pandalm() -> pl.DataFrame:
    """999 pairs x annotator1..3; labels 1 / 2 (response 1 / 2 better) and 0 (tie), kept as integers."""
    _need(PANDALM)
    rows = json.loads(PANDALM.read_text())
    wide = pl.DataFrame([{k: r[k] for k in ("idx", "annotator1", "annotator2", "annotator3")} for r in rows])
    return wide.unpivot(index="idx", variable_name="rater_id", value_name="choice").rename({"idx": "pair_id"})


def xstest(model: str) -> pl.DataFrame:
    """450 completions x annotation_1, annotation_2 (full compliance / full refusal / partial refusal)."""
    path = XSTEST / f"xstest_v2_completions_{model}_gpteval.csv"
    _need(path)
    wide = pl.read_csv(path).select("id", "annotation_1", "annotation_2")
    return wide.unpivot(index="id", variable_name="rater_id", value_name="choice").rename({"id": "pair_id"})


def dices(name: str) -> pl.DataFrame:
    """DICES safety ratings Yes/No/Unsure; no rater ids upstream, so the rater id is the position in the list."""
    path = DICES / f"{name}.json.gz"
    _need(path)
    instances = json.loads(gzip.decompress(path.read_bytes()))["instances"]
    scores = pl.DataFrame(
        {
            "pair_id": [inst["id"] for inst in instances],
            "choice": [inst["annotations"]["safety"]["individual_human_scores"] for inst in instances],
        }
    )
    return (
        scores.with_columns(pl.int_ranges(pl.col("choice").list.len()).alias("rater_id"))
        .explode("choice", "rater_id")
        .select("pair_id", "rater_id", "choice")
    )


def mtbench() -> pl.DataFrame:
    """1,751 expert/author votes (model_a/model_b/tie) on 1,232 items by 65 judges; sparse overlap."""
    _need(MTBENCH)
    rows = [json.loads(line) for line in gzip.decompress(MTBENCH.read_bytes()).decode().splitlines()]
    return pl.DataFrame(
        [
            {
                "pair_id": f"{r['question_id']}/{r['turn']}/{r['model_a']}/{r['model_b']}",
                "rater_id": v["judge"],
                "choice": v["winner"],
            }
            for r in rows
            for v in r["human_votes"]
        ]
    )


# --------------------------------------------------------------------------------------------------------------
# Reference inputs
# --------------------------------------------------------------------------------------------------------------


def reliability_data(df: pl.DataFrame, domain: list[Any]) -> np.ndarray:
    """raters x items matrix of category positions in ``domain`` (NaN = no label), built with plain dicts."""
    items = {v: i for i, v in enumerate(df["pair_id"].unique().to_list())}
    raters = {v: i for i, v in enumerate(df["rater_id"].unique().to_list())}
    code = {v: i for i, v in enumerate(domain)}
    matrix = np.full((len(raters), len(items)), np.nan)
    for item, rater, label in df.iter_rows():
        matrix[raters[rater], items[item]] = code[label]
    return matrix


def fleiss_table(df: pl.DataFrame, n: int) -> np.ndarray:
    """statsmodels' subjects x categories table of the items with exactly ``n`` labels (via aggregate_raters)."""
    keep = df.filter(pl.len().over("pair_id") == n).sort("pair_id", "rater_id")
    cats = sorted(df["choice"].unique().to_list())
    codes = np.array([cats.index(v) for v in keep["choice"].to_list()]).reshape(-1, n)
    table, _ = inter_rater.aggregate_raters(codes, n_cat=len(cats))
    return np.asarray(table)


def sklearn_pairs(df: pl.DataFrame, min_overlap: int) -> dict[tuple[Any, Any], tuple[int, float]]:
    """(rater_a, rater_b) -> (n shared items, sklearn kappa), by a plain per-pair loop."""
    by_rater: dict[Any, dict[Any, Any]] = {}
    for item, rater, label in df.iter_rows():
        by_rater.setdefault(rater, {})[item] = label
    out = {}
    raters = sorted(by_rater)
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            shared = sorted(by_rater[a].keys() & by_rater[b].keys())
            if len(shared) >= min_overlap:
                ya = [by_rater[a][s] for s in shared]
                yb = [by_rater[b][s] for s in shared]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[(a, b)] = (len(shared), float(sk_metrics.cohen_kappa_score(ya, yb)))
    return out


# --------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------

# name -> (loader, ordinal category order or None, Fleiss panel (None: no fixed panel), rater_col)
SETS: dict[str, tuple[Any, list[Any] | None, int | None, str | None]] = {
    "llmfao": (llmfao, ["left", "tie", "right"], 5, "rater_id"),
    "pandalm": (pandalm, [1, 0, 2], 3, "rater_id"),
    "xstest-mistralinstruct": (lambda: xstest("mistralinstruct"), None, 2, "rater_id"),
    "xstest-mistralguard": (lambda: xstest("mistralguard"), None, 2, "rater_id"),
    "dices-350": (lambda: dices("dices_350_crowdsourced"), None, 123, None),
    "dices-990": (lambda: dices("dices_990"), None, 73, None),
    "mtbench": (mtbench, ["model_a", "tie", "model_b"], None, "rater_id"),
}


@pytest.mark.parametrize("name", list(SETS))
def test_alpha_matches_krippendorff_package(name: str) -> None:
    loader, order, _, rater_col = SETS[name]
    df = loader()
    domain = sorted(df["choice"].unique().to_list())
    ref = krippendorff.alpha(reliability_data=reliability_data(df, domain), level_of_measurement="nominal")
    got = krippendorff_alpha(df, rater_col=rater_col)
    assert abs(got - ref) <= TOL, (got, ref)
    line = f"[{name}] labels={df.height} alpha_nominal={got:.6f} (krippendorff {ref:.6f}, |diff| {abs(got - ref):.1e})"
    if order is not None:
        ref_ord = krippendorff.alpha(reliability_data=reliability_data(df, order), level_of_measurement="ordinal")
        got_ord = krippendorff_alpha(df, "ordinal", categories=order, rater_col=rater_col)
        assert abs(got_ord - ref_ord) <= TOL, (got_ord, ref_ord)
        line += f" alpha_ordinal{order}={got_ord:.6f} (|diff| {abs(got_ord - ref_ord):.1e})"
    print(line)


def test_alpha_matches_crowdkit_on_llmfao() -> None:
    crowdkit_data = pytest.importorskip("crowdkit.metrics.data")
    df = llmfao()
    answers = df.rename({"pair_id": "task", "rater_id": "worker", "choice": "label"}).to_pandas()
    ref = crowdkit_data.alpha_krippendorff(answers)
    assert abs(krippendorff_alpha(df) - ref) <= TOL


@pytest.mark.parametrize("name", [n for n, s in SETS.items() if s[2] is not None])
def test_fleiss_matches_statsmodels(name: str) -> None:
    loader, _, panel, rater_col = SETS[name]
    assert panel is not None
    df = loader()
    table = fleiss_table(df, panel)
    ref = inter_rater.fleiss_kappa(table, method="fleiss")
    sizes = df.group_by("pair_id").len()["len"].unique()
    if sizes.len() == 1:  # a fixed panel: no restriction needed
        got = fleiss_kappa(df, rater_col=rater_col)
    else:
        with pytest.raises(ValueError, match="n_raters"):
            fleiss_kappa(df, rater_col=rater_col)
        got = fleiss_kappa(df, n_raters=panel, rater_col=rater_col)
    assert abs(got - ref) <= TOL, (got, ref)
    print(
        f"[{name}] fleiss_kappa(n={panel}, items={table.shape[0]})={got:.6f} "
        f"(statsmodels {ref:.6f}, |diff| {abs(got - ref):.1e})"
    )


@pytest.mark.parametrize(
    ("name", "min_overlap", "n_pairs"),
    [("llmfao", 20, None), ("pandalm", 1, 3), ("xstest-mistralinstruct", 1, 1), ("xstest-mistralguard", 1, 1)],
)
def test_pairwise_cohen_matches_sklearn(name: str, min_overlap: int, n_pairs: int | None) -> None:
    df = SETS[name][0]()
    got = pairwise_cohen(df, min_overlap=min_overlap)
    ref = sklearn_pairs(df, min_overlap)
    assert got.height == len(ref) and (n_pairs is None or len(ref) == n_pairs)
    assert got["kappa"].null_count() == 0
    for row in got.iter_rows(named=True):
        n, kappa = ref[(row["rater_a"], row["rater_b"])]
        assert row["n_overlap"] == n
        assert abs(row["kappa"] - kappa) <= TOL, (row, kappa)
    kappas = got["kappa"]
    print(
        f"[{name}] cohen pairs(min_overlap={min_overlap})={got.height} "
        f"kappa median={kappas.median():.4f} min={kappas.min():.4f} max={kappas.max():.4f}"
        + (
            "".join(f" {r['rater_a']}-{r['rater_b']}={r['kappa']:.4f}" for r in got.iter_rows(named=True))
            if got.height <= 3
            else ""
        )
    )


def test_figures_match_provenance() -> None:
    """Figures published in the data sets' PROVENANCE.md (rounded there to 3 decimals)."""
    assert round(percent_agreement(llmfao()), 3) == 0.532  # "Pairwise worker-worker agreement ... 0.532"
    assert round(percent_agreement(mtbench()), 3) == 0.654  # "Human-human pairwise agreement ... 0.654"
    pandalm_k = dict(
        zip(
            *pairwise_cohen(pandalm()).select(pl.concat_str("rater_a", "rater_b", separator="-"), "kappa"),
            strict=True,
        )
    )
    assert {k: round(v, 3) for k, v in pandalm_k.items()} == {
        "annotator1-annotator2": 0.852,
        "annotator1-annotator3": 0.879,
        "annotator2-annotator3": 0.862,
    }
    assert round(pairwise_cohen(xstest("mistralinstruct"))["kappa"].item(), 3) == 0.920
    assert round(pairwise_cohen(xstest("mistralguard"))["kappa"].item(), 3) == 0.892
    assert round(pairwise_cohen(xstest("mistralguard"))["agreement"].item(), 3) == 0.938


@pytest.mark.parametrize("name", list(SETS))
def test_report_on_real_sets(name: str) -> None:
    loader, _, panel, rater_col = SETS[name]
    df = loader()
    report = agreement_report(df, n_raters=panel, n_boot=1000, seed=0, rater_col=rater_col)
    assert report.n_labels == df.height
    assert report.alpha is not None and report.alpha_low is not None and report.alpha_high is not None
    assert report.alpha_low < report.alpha < report.alpha_high
    assert report.alpha == pytest.approx(krippendorff_alpha(df, rater_col=rater_col), abs=1e-15)
    assert report.percent_agreement is not None
    assert (report.fleiss_kappa is not None) == (panel is not None)
    fleiss = (
        "-"
        if report.fleiss_kappa is None
        else f"{report.fleiss_kappa:.4f} (n={report.fleiss_n_raters}, items={report.fleiss_n_items})"
    )
    print(
        f"[{name}] items={report.n_items} raters={report.n_raters} labels={report.n_labels} "
        f"alpha={report.alpha:.4f} 95% CI [{report.alpha_low:.4f}, {report.alpha_high:.4f}] "
        f"fleiss={fleiss} percent_agreement={report.percent_agreement:.4f}"
    )
