"""Majority consensus and preference-set assembly: verdicts, eligibility, prompt-level split, contamination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from prefgate import schemas
from prefgate.consensus import majority_consensus
from prefgate.curation import assemble_preference_set, contaminated, split_of
from prefgate.ids import content_hash, prompt_id
from prefgate.ingest.mapping import map_rows
from prefgate.ingest.sources import SourceSpec
from prefgate.ingest.tables import build_pairs, build_prompts
from prefgate.policy import Policy

LO, HI = "Alpha answer", "Beta answer"  # response_id(LO) < response_id(HI): LO is canonical a
GAMMA, DELTA = "Gamma answer", "Delta answer"  # response_id(GAMMA) < response_id(DELTA)

PAIRS = SourceSpec.model_validate(
    {
        "name": "src",
        "kind": "pairs",
        "glob": "*",
        "columns": {
            "source_key": "id",
            "prompt": "prompt",
            "response_first": "r1",
            "response_second": "r2",
            "category": "cat",
        },
        "constants": {"language": "en"},
    }
)
EVAL = SourceSpec.model_validate({"name": "xstest", "kind": "eval_prompts", "glob": "*", "columns": {"prompt": "q"}})


def labels_frame(votes: dict[str, list[str]], source: str | dict[str, str] = "crowd") -> pl.DataFrame:
    """One row per label: pair -> its choices in rater order (rater r0, r1, ...)."""
    rows = []
    for pid, choices in votes.items():
        for i, choice in enumerate(choices):
            src = source if isinstance(source, str) else source.get(f"{pid}:{i}", "crowd")
            rows.append(
                {
                    "label_id": content_hash("l", pid, str(i)),
                    "pair_id": pid,
                    "rater_id": f"{src}:r{i}",
                    "choice": choice,
                    "source": src,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "label_id": pl.String,
            "pair_id": pl.String,
            "rater_id": pl.String,
            "choice": pl.String,
            "source": pl.String,
        },
    )


# ---------------------------------------------------------------- consensus


def test_majority_consensus_hand_values() -> None:
    p1, p2, p3, p4, p5 = (f"{i:016x}" for i in range(1, 6))
    labels = labels_frame(
        {
            p1: ["a", "a", "b"],
            p2: ["a", "b"],
            p3: ["tie", "b", "tie"],
            p4: ["b"],
            p5: ["a", "b", "tie"],
        }
    )
    c = majority_consensus(labels)
    assert c.select("pair_id", "n_labels", "n_a", "n_b", "n_tie", "verdict").rows() == [
        (p1, 3, 2, 1, 0, "a"),
        (p2, 2, 1, 1, 0, "no_majority"),
        (p3, 3, 0, 1, 2, "tie"),
        (p4, 1, 0, 1, 0, "b"),
        (p5, 3, 1, 1, 1, "no_majority"),
    ]
    assert c["agreement"].to_list() == pytest.approx([2 / 3, 0.5, 2 / 3, 1.0, 1 / 3])
    assert c["rater_ids"][0].to_list() == ["crowd:r0", "crowd:r1", "crowd:r2"]
    assert c["label_ids"][0].to_list() == sorted(content_hash("l", p1, str(i)) for i in range(3))
    assert c["sources"][0].to_list() == ["crowd"]
    # governed (nothing excluded, majority method), the same verdicts meet the HumanConsensus contract
    from prefgate.governance import govern_consensus
    from prefgate.policy import Policy

    governed = govern_consensus(
        labels,
        pl.DataFrame({"rater_id": []}, schema={"rater_id": pl.String}),
        Policy(version="t", consensus={"method": "majority"}),
    )
    schemas.validate(schemas.HumanConsensus, governed)
    assert governed.select(c.columns).equals(c)


def test_majority_consensus_sources_unique_sorted() -> None:
    pid = "0" * 16
    c = majority_consensus(labels_frame({pid: ["a", "a", "a"]}, source={f"{pid}:0": "zeta", f"{pid}:2": "alpha"}))
    assert c["sources"][0].to_list() == ["alpha", "crowd", "zeta"]
    assert c["rater_ids"][0].to_list() == ["alpha:r2", "crowd:r1", "zeta:r0"]


# ---------------------------------------------------------------- assembly


def build(rows: list[dict[str, Any]]) -> pl.DataFrame:
    m = map_rows(PAIRS, Path("p.jsonl"), "pairs/p.jsonl", "0" * 64, list(enumerate(rows, start=1)))
    built, _ = build_pairs([m])
    assert built.rejected == []
    return built.table


@pytest.fixture
def pairs() -> pl.DataFrame:
    return build(
        [
            {"id": "k1", "prompt": "Q1", "r1": HI, "r2": LO, "cat": "writing"},
            {"id": "k2", "prompt": "Q1", "r1": GAMMA, "r2": DELTA},
            {"id": "k3", "prompt": "Q2", "r1": LO, "r2": HI},
            {"id": "k4", "prompt": "Q2", "r1": GAMMA, "r2": DELTA},
            {"id": "k5", "prompt": "Q3", "r1": LO, "r2": HI},
            {"id": "k6", "prompt": "Q4", "r1": LO, "r2": HI},
            {"id": "k7", "prompt": "Q5", "r1": LO, "r2": HI},
        ]
    )


def pid(pairs: pl.DataFrame, key: str) -> str:
    return pairs.filter(pl.col("source_key") == key)["pair_id"][0]


POLICY = Policy(version="t", consensus={"min_labels": 2, "min_agreement": 0.6}, split={"eval_fraction": 0.5})


def votes(pairs: pl.DataFrame) -> dict[str, list[str]]:
    return {
        pid(pairs, "k1"): ["a", "a", "b"],  # a, 2/3          -> in, chosen = LO
        pid(pairs, "k2"): ["b", "b"],  # b, 1.0          -> in, chosen = DELTA
        pid(pairs, "k3"): ["a", "b"],  # no_majority     -> out
        pid(pairs, "k4"): ["tie", "tie"],  # tie             -> out
        pid(pairs, "k5"): ["a"],  # too few labels  -> out
        pid(pairs, "k6"): ["a", "a", "a", "b", "b"],  # a, 0.6 (== min) -> in
        pid(pairs, "k7"): ["a", "a", "b", "tie"],  # a, 0.5 < 0.6    -> out
    }


def test_assemble_picks_chosen_and_drops_ineligible(pairs: pl.DataFrame) -> None:
    consensus = majority_consensus(labels_frame(votes(pairs)))
    out = assemble_preference_set(pairs, consensus, POLICY)
    got = {r["pair_id"]: r for r in out.iter_rows(named=True)}
    assert set(got) == {pid(pairs, "k1"), pid(pairs, "k2"), pid(pairs, "k6")}
    k1, k2, k6 = got[pid(pairs, "k1")], got[pid(pairs, "k2")], got[pid(pairs, "k6")]
    assert (k1["chosen"], k1["rejected"], k1["chosen_side"]) == (LO, HI, "a")
    assert (k2["chosen"], k2["rejected"], k2["chosen_side"]) == (DELTA, GAMMA, "b")
    assert (k6["chosen"], k6["rejected"], k6["n_labels"]) == (LO, HI, 5)
    assert k1["agreement"] == k1["weight"] == pytest.approx(2 / 3)
    assert k6["agreement"] == pytest.approx(0.6)
    assert (k1["prompt"], k1["prompt_id"], k1["category"], k1["language"]) == ("Q1", prompt_id("Q1"), "writing", "en")
    assert (k1["pair_source"], k1["label_source"]) == ("src", "crowd")
    assert k1["example_id"] == content_hash("example", k1["pair_id"], "a")
    assert set(out["policy_hash"]) == {POLICY.policy_hash}
    assert list(out.columns)[:4] == ["example_id", "prompt", "chosen", "rejected"]
    assert out["example_id"].to_list() == sorted(out["example_id"].to_list())
    schemas.validate(schemas.PreferenceSet, out)


def test_assemble_respects_allowed_sources(pairs: pl.DataFrame) -> None:
    k1 = pid(pairs, "k1")
    consensus = majority_consensus(labels_frame(votes(pairs), source={f"{k1}:2": "vendor"}))
    policy = POLICY.model_copy(update={"sources_allowed_in_training": ["crowd"]})
    out = assemble_preference_set(pairs, consensus, policy)
    assert set(out["pair_id"]) == {pid(pairs, "k2"), pid(pairs, "k6")}  # k1 has a 'vendor' label
    everyone = assemble_preference_set(pairs, consensus, POLICY)
    assert everyone.filter(pl.col("pair_id") == k1)["label_source"].to_list() == ["crowd,vendor"]


def test_assemble_empty_when_nothing_eligible(pairs: pl.DataFrame) -> None:
    consensus = majority_consensus(labels_frame({pid(pairs, "k3"): ["a", "b"]}))
    out = assemble_preference_set(pairs, consensus, POLICY)
    assert out.height == 0
    assert "split" in out.columns


def test_split_is_by_prompt_and_deterministic() -> None:
    rows = []
    for i in range(40):
        rows.append({"id": f"p{i}-1", "prompt": f"prompt {i}", "r1": LO, "r2": HI})
        rows.append({"id": f"p{i}-2", "prompt": f"prompt {i}", "r1": GAMMA, "r2": DELTA})
    pairs = build(rows)
    consensus = majority_consensus(labels_frame({p: ["a", "a"] for p in pairs["pair_id"]}))
    out = assemble_preference_set(pairs, consensus, POLICY)
    assert out.height == 80
    per_prompt = out.group_by("prompt_id").agg(pl.col("split").n_unique().alias("n"), pl.len().alias("pairs"))
    assert per_prompt["n"].to_list() == [1] * 40 and set(per_prompt["pairs"]) == {2}
    assert set(out["split"]) == {"train", "eval"}  # 40 prompts at 0.5: both sides non-empty
    assert out.equals(assemble_preference_set(pairs, consensus, POLICY))
    # the split of one prompt, stated by hand: salted hash bucket in [0, 1) below eval_fraction -> eval
    p0 = prompt_id("prompt 0")
    bucket = int(content_hash("split", POLICY.split.salt, p0), 16) / 16**16
    assert set(out.filter(pl.col("prompt_id") == p0)["split"]) == {"eval" if bucket < 0.5 else "train"}


def test_split_of_fraction_and_salt() -> None:
    ids = pl.Series([prompt_id(f"q{i}") for i in range(400)])
    assert set(split_of(ids, 0.0, "s")) == {"train"}
    split = split_of(ids, 0.25, "s")
    assert split.name == "split" and split.len() == 400
    assert 60 <= (split == "eval").sum() <= 140  # ~100 expected
    assert split.equals(split_of(ids, 0.25, "s"))
    assert not split.equals(split_of(ids, 0.25, "other-salt"))
    # a larger fraction only adds prompts to eval (buckets are fixed per prompt)
    wider = split_of(ids, 0.5, "s")
    assert ((split == "eval") & (wider == "train")).sum() == 0


def test_contaminated_finds_planted_eval_prompt(pairs: pl.DataFrame) -> None:
    consensus = majority_consensus(labels_frame(votes(pairs)))
    prefs = assemble_preference_set(pairs, consensus, POLICY)
    m = map_rows(EVAL, Path("e.csv"), "eval/e.csv", "0" * 64, [(2, {"q": "  Q1\r\n"}), (3, {"q": "Unrelated?"})])
    eval_prompts = build_prompts([m], "eval_prompts").table
    hits = contaminated(prefs, eval_prompts)
    assert sorted(hits["pair_id"]) == sorted([pid(pairs, "k1"), pid(pairs, "k2")])
    assert set(hits["prompt"]) == {"Q1"} and set(hits["eval_source"]) == {"xstest"}
    clean = build_prompts(
        [map_rows(EVAL, Path("e.csv"), "eval/e.csv", "0" * 64, [(2, {"q": "Unrelated?"})])], "eval_prompts"
    ).table
    assert contaminated(prefs, clean).height == 0
