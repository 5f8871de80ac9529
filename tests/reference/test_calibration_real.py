"""Judge calibration on real human-vs-judge data, every figure checked against a plain-Python computation.

Sets (``/work/shared/data``, see each PROVENANCE.md): PandaLM test set (3 annotators; GPT-3.5-turbo and PandaLM-7B),
LLMFAO (crowd votes; GPT-3.5-turbo-instruct and GPT-4), MT-Bench human judgments (expert votes; GPT-4 with
"tie (inconsistent)" for verdicts that flipped under the order swap). Each is turned into warehouse-shaped frames
(pairs, judge labels, human consensus by majority), joined by ``build_overlap`` and summarised by
``calibration_table``; two planted judges (always the side shown first, always the longer side) check the bias
statistics' extremes. Run with ``-s`` to see the figures.
"""

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import polars as pl
import pytest

from prefgate.calibration import build_overlap, calibration_table, fit_calibration

_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[2].parent / "shared" / "data", Path("/work/shared/data"))
DATA = next((p for p in _CANDIDATES if p.is_dir()), None)
pytestmark = pytest.mark.skipif(DATA is None, reason="real data folder shared/data not found")

TOL = 1e-12


def _majority(votes: Iterable[str]) -> str | None:
    """The unique most frequent vote, None when the top is shared."""
    counts = Counter(votes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _frames(
    pairs: Sequence[Mapping[str, object]], labels: Sequence[Mapping[str, object]], consensus: dict[str, str | None]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    judge_labels = pl.DataFrame(labels, infer_schema_length=None)
    if "position_consistent" not in judge_labels.columns:
        judge_labels = judge_labels.with_columns(pl.lit(None, pl.Boolean).alias("position_consistent"))
    cons = pl.DataFrame(
        {"pair_id": list(consensus), "verdict": [v if v is not None else "no_majority" for v in consensus.values()]}
    )
    return pl.DataFrame(pairs, infer_schema_length=None), judge_labels, cons


def load_pandalm() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    assert DATA is not None
    items = json.loads((DATA / "pandalm-testset" / "testset-v1.json").read_text())
    gpt = json.loads((DATA / "pandalm-testset" / "gpt-3.5-turbo-testset-v1.json").read_text())
    panda = json.loads((DATA / "pandalm-testset" / "pandalm-7b-testset-v1.json").read_text())
    code = {1: "a", 2: "b", 0: "tie", "1": "a", "2": "b", "Tie": "tie"}
    pairs, labels, consensus = [], [], {}
    for item, g, p in zip(items, gpt, panda, strict=True):
        pid = f"pandalm-{item['idx']}"
        model_a, model_b = str(item["cmp_key"]).split("_", 1)
        pairs.append(
            {
                "pair_id": pid,
                "response_a": item["response1"],
                "response_b": item["response2"],
                "model_a": model_a,
                "model_b": model_b,
                "category": item["motivation_app"],
            }
        )
        consensus[pid] = _majority(code[item[f"annotator{k}"]] for k in (1, 2, 3))
        # both judges read response1 first; an unparsable GPT verdict ("garbage") is a failed judgment
        ok = g["gpt_result"] in code
        labels.append(
            {
                "judge_id": "recorded:gpt-3.5-turbo:pandalm-prompt",
                "pair_id": pid,
                "choice": code[g["gpt_result"]] if ok else None,
                "status": "ok" if ok else "failed",
                "shown_first": "a",
                "probability_a": None,
            }
        )
        labels.append(
            {
                "judge_id": "recorded:pandalm-7b:pandalm-prompt",
                "pair_id": pid,
                "choice": code[p["pandalm_result"]],
                "status": "ok",
                "shown_first": "a",
                "probability_a": None,
            }
        )
    return _frames(pairs, labels, consensus)


def load_llmfao() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    assert DATA is not None
    side = {"left": "a", "right": "b", "tie": "tie"}
    crowd = pl.read_csv(DATA / "llmfao" / "crowd-comparisons.csv")
    votes: dict[str, list[str]] = {}
    for pid, winner in crowd.select("id", "winner").iter_rows():
        votes.setdefault(f"llmfao-{pid}", []).append(side[winner])
    consensus = {pid: _majority(v) for pid, v in votes.items()}
    names = {
        f"llmfao-{pid}": (left, right) for pid, left, right in crowd.select("id", "left", "right").unique().iter_rows()
    }
    pairs = []
    with gzip.open(DATA / "llmfao" / "pairs-crowd.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            pid = f"llmfao-{row['id']}"
            pairs.append(
                {
                    "pair_id": pid,
                    "response_a": row["result_x"],
                    "response_b": row["result_y"],
                    "model_a": names[pid][0],
                    "model_b": names[pid][1],
                    "category": row["type"],
                }
            )
    labels = []
    for file, judge in (
        ("gpt3-crowd-comparisons.csv", "recorded:gpt-3.5-turbo-instruct:llmfao-instruction"),
        ("gpt4-crowd-comparisons.csv", "recorded:gpt-4:llmfao-instruction"),
    ):
        for pid, winner in pl.read_csv(DATA / "llmfao" / file).select("id", "winner").iter_rows():
            labels.append(
                {
                    "judge_id": judge,
                    "pair_id": f"llmfao-{pid}",
                    "choice": side[winner],
                    "status": "ok",
                    "shown_first": "a",  # the left response (model_x) came first in the judge prompt
                    "probability_a": None,
                }
            )
    return _frames(pairs, labels, consensus)


def load_mtbench() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    assert DATA is not None
    side = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (inconsistent)": "tie"}
    pairs, labels, consensus = [], [], {}
    with gzip.open(DATA / "mtbench-human-gpt4" / "mtbench_human_gpt4_votes.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            pid = f"mt-{row['question_id']}-{row['turn']}-{row['model_a']}-{row['model_b']}"

            def answer(conv: list[dict[str, str]], turn: int = row["turn"]) -> str:
                return [m["content"] for m in conv if m["role"] == "assistant"][turn - 1]

            pairs.append(
                {
                    "pair_id": pid,
                    "response_a": answer(row["conversation_a"]),
                    "response_b": answer(row["conversation_b"]),
                    "model_a": row["model_a"],
                    "model_b": row["model_b"],
                    "category": row["category"],
                }
            )
            consensus[pid] = _majority(side[v["winner"]] for v in row["human_votes"])
            verdict = row["gpt4_pair_winner"]
            labels.append(
                {
                    "judge_id": "recorded:gpt-4:mt-bench-pair",
                    "pair_id": pid,
                    "choice": side[verdict],
                    "status": "ok",
                    "shown_first": None,  # GPT-4 judged both orders; the verdict has no single order
                    "probability_a": None,
                    "position_consistent": verdict != "tie (inconsistent)",
                }
            )
    return _frames(pairs, labels, consensus)


def _planted(overlap: pl.DataFrame) -> pl.DataFrame:
    """Two planted judges on the same labels: one always takes the side shown first, one always the longer side."""
    first = overlap.with_columns(
        pl.lit("planted:first").alias("judge_id"),
        pl.col("shown_first").alias("choice"),
        pl.lit(None).alias("self_side"),
        pl.lit(None).alias("position_consistent"),
    )
    longer = overlap.with_columns(
        pl.lit("planted:longer").alias("judge_id"),
        pl.when(pl.col("len_a") > pl.col("len_b"))
        .then(pl.lit("a"))
        .when(pl.col("len_b") > pl.col("len_a"))
        .then(pl.lit("b"))
        .otherwise(pl.lit("tie"))
        .alias("choice"),
        pl.lit(None).alias("self_side"),
        pl.lit(None).alias("position_consistent"),
    )
    return pl.concat([first.filter(pl.col("shown_first").is_not_null()), longer], how="vertical_relaxed")


def plain_stats(rows: list[dict[str, object]]) -> dict[str, float | None]:
    """The table's figures for one judge, by hand."""
    n = len(rows)
    agree = sum(r["choice"] == r["human"] for r in rows)
    strict = [r for r in rows if r["choice"] != "tie" and r["human"] != "tie"]
    cells = Counter((r["choice"], r["human"]) for r in rows)
    judge_m = Counter(r["choice"] for r in rows)
    human_m = Counter(r["human"] for r in rows)
    po = sum(cells[(c, c)] for c in ("a", "b", "tie")) / n
    pe = sum(judge_m[c] / n * (human_m[c] / n) for c in ("a", "b", "tie"))
    first = [r for r in strict if r["shown_first"] is not None]
    differ = [r for r in strict if r["len_a"] != r["len_b"]]

    def longer(r: dict[str, object]) -> str:
        return "a" if r["len_a"] > r["len_b"] else "b"  # type: ignore[operator]

    checked = [r for r in rows if r["position_consistent"] is not None]
    own = [r for r in strict if r["self_side"] is not None]
    return {
        "n_labels": n,
        "agree_ties": agree / n,
        "agree_strict": sum(r["choice"] == r["human"] for r in strict) / len(strict) if strict else None,
        "kappa": (po - pe) / (1 - pe) if pe < 1 else None,
        "p_first": sum(r["choice"] == r["shown_first"] for r in first) / len(first) if first else None,
        "p_longer": sum(r["choice"] == longer(r) for r in differ) / len(differ) if differ else None,
        "human_p_longer": sum(r["human"] == longer(r) for r in differ) / len(differ) if differ else None,
        "position_consistency": sum(bool(r["position_consistent"]) for r in checked) / len(checked)
        if checked
        else None,
        "self_preference": sum(r["choice"] == r["self_side"] for r in own) / len(own) if own else None,
    }


def _check(name: str, overlap: pl.DataFrame) -> pl.DataFrame:
    full = pl.concat([overlap, _planted(overlap)], how="vertical_relaxed")
    table = calibration_table(full, ["category"])
    overall = table.filter(pl.col("slice") == "all")
    print(f"\n{name}: {overlap.height} labels on {overlap['pair_id'].n_unique()} pairs with a human majority")
    for judge in sorted(full["judge_id"].unique().to_list()):
        got = overall.filter(pl.col("judge_id") == judge).row(0, named=True)
        want = plain_stats(full.filter(pl.col("judge_id") == judge).to_dicts())
        for key, value in want.items():
            if value is None:
                assert got[key] is None, (judge, key, got[key])
            else:
                assert got[key] == pytest.approx(value, abs=TOL), (judge, key)
        print(
            f"  {judge:55s} n={got['n_labels']:5d} agree_ties={got['agree_ties']:.4f} "
            f"agree_strict={got['agree_strict']:.4f} kappa={got['kappa']:.4f} "
            f"[{got['kappa_lo']:.3f}, {got['kappa_hi']:.3f}] p_first={got['p_first']} "
            f"p_longer={got['p_longer']:.4f} (humans {got['human_p_longer']:.4f}) "
            f"position_consistency={got['position_consistency']} self_pref={got['self_preference']}"
        )
    # slices add up to the judge's total
    sliced = table.filter(pl.col("slice") == "category").group_by("judge_id").agg(pl.col("n_labels").sum())
    assert sliced.sort("judge_id")["n_labels"].to_list() == overall.sort("judge_id")["n_labels"].to_list()
    longer = overall.filter(pl.col("judge_id") == "planted:longer").row(0, named=True)
    assert longer["p_longer"] == 1.0
    if overlap["shown_first"].is_not_null().any():
        assert overall.filter(pl.col("judge_id") == "planted:first")["p_first"].item() == 1.0
    return overall


def test_pandalm() -> None:
    pairs, labels, consensus = load_pandalm()
    overlap = build_overlap(labels, consensus, pairs, ["category"])
    assert overlap.height == 999 + 999 - 25  # 25 unparsable GPT-3.5 verdicts are failed judgments, not labels
    overall = _check("pandalm-testset", overlap)
    panda = overall.filter(pl.col("judge_id").str.contains("pandalm-7b")).row(0, named=True)
    # PROVENANCE: PandaLM-7B vs the human majority, 3-way accuracy 0.668, kappa 0.435
    assert panda["agree_ties"] == pytest.approx(0.668, abs=5e-4)
    assert panda["kappa"] == pytest.approx(0.435, abs=5e-4)


def test_llmfao() -> None:
    pairs, labels, consensus = load_llmfao()
    overlap = build_overlap(labels, consensus, pairs, ["category"])
    assert overlap["pair_id"].n_unique() == 1831  # PROVENANCE: 1,831 pairs with a strict human majority
    overall = _check("llmfao", overlap)
    # PROVENANCE: agreement with the strict human majority (3-way) GPT-3.5 0.377 (kappa 0.102), GPT-4 0.446 (0.218)
    for judge, acc, kappa in (("gpt-3.5", 0.377, 0.102), ("gpt-4", 0.446, 0.218)):
        row = overall.filter(pl.col("judge_id").str.contains(judge, literal=True)).row(0, named=True)
        assert row["agree_ties"] == pytest.approx(acc, abs=5e-4)
        assert row["kappa"] == pytest.approx(kappa, abs=5e-4)
    gpt4 = overall.filter(pl.col("judge_id") == "recorded:gpt-4:llmfao-instruction").row(0, named=True)
    assert gpt4["n_self"] > 0  # GPT-4's own family appears among the compared models


def test_mtbench() -> None:
    pairs, labels, consensus = load_mtbench()
    overlap = build_overlap(labels, consensus, pairs, ["category"])
    overall = _check("mtbench-human-gpt4", overlap)
    gpt4 = overall.filter(pl.col("judge_id") == "recorded:gpt-4:mt-bench-pair").row(0, named=True)
    inconsistent = overlap.filter(~pl.col("position_consistent")).height / overlap.height
    assert gpt4["position_consistency"] == pytest.approx(1 - inconsistent, abs=TOL)
    assert gpt4["n_first"] == 0 and gpt4["p_first"] is None  # no presentation order is known
    assert gpt4["n_self"] > 0


Loader = Callable[[], tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]


@pytest.mark.parametrize("loader", [load_llmfao, load_mtbench])
def test_calibration_map_on_real_labels(loader: Loader) -> None:
    """Recorded judges carry no probabilities: a strict verdict maps to the judge's agreement rate on its strict
    verdicts, a tie verdict to its rate on ties (its overall rate when it never says tie), out of fold too."""
    pairs, labels, consensus = loader()
    overlap = build_overlap(labels, consensus, pairs)
    cmap = fit_calibration(overlap, "isotonic", folds=5)
    assert cmap.oof is not None
    for judge, cal in cmap.judges.items():
        rows = overlap.filter(pl.col("judge_id") == judge)
        hits = [(c, c == h) for c, h in zip(rows["choice"].to_list(), rows["human"].to_list(), strict=True)]
        overall = sum(hit for _, hit in hits) / len(hits)
        strict = [hit for c, hit in hits if c != "tie"]
        ties = [hit for c, hit in hits if c == "tie"]
        assert cal.n_scored == 0
        want_strict = sum(strict) / len(strict) if strict else overall
        want_tie = sum(ties) / len(ties) if ties else overall
        assert cmap.apply(judge, "a", None) == pytest.approx(want_strict, abs=TOL)
        assert cmap.apply(judge, "tie", None) == pytest.approx(want_tie, abs=TOL)
        assert cmap.oof.filter(pl.col("judge_id") == judge)["calibrated"].null_count() == 0
    if loader is load_mtbench:  # GPT-4's ties and strict verdicts are right at clearly different rates
        gpt4 = cmap.judges["recorded:gpt-4:mt-bench-pair"]
        assert abs(gpt4.fallback - gpt4.fallback_tie) > 0.05
        print(
            f"MT-Bench GPT-4: P(agree | strict) {gpt4.fallback:.3f}, P(human tie | judge tie) {gpt4.fallback_tie:.3f}"
        )
