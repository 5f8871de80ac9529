"""Small, realistic warehouse frames for the lineage tests (schemas of prefgate.schemas), and a plain-majority
preference-set builder carrying the provenance columns the curated set carries.

Six pairs; raters r1..r3 (r3 labels p3 three times, under three keys); two judges on p4, which has no human
label (and a gpt-4o judge on p6, outvoted by humans):

    p1: r1 a, r2 a, r3 a   -> a         p4: judges rules a, gpt-4 a -> a (judge row)
    p2: r1 a, r2 b, r3 b   -> b         p5: r1 b, r2 b               -> b
    p3: r1 a, r2 a, r3 b×3 -> b         p6: r1 a, r2 a               -> a (lands in batch 2 only)
    p7: r1 a, r2 a, r3 b×2 -> tie, no row until r3 is retracted or excluded (only when named)
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from prefgate import ids

RULES = "programmatic:rules:a52a77ac:33941ed6"
GPT4 = "recorded:gpt-4:mt-bench-pair"
GPT4O = "recorded:gpt-4o:mt-bench-pair"
CONSTITUTION = "33941ed6"
SHA = "0" * 64

HUMAN = {
    "p1": [("r1", "a"), ("r2", "a"), ("r3", "a")],
    "p2": [("r1", "a"), ("r2", "b"), ("r3", "b")],
    "p3": [("r1", "a"), ("r2", "a"), ("r3", "b"), ("r3", "b"), ("r3", "b")],
    "p5": [("r1", "b"), ("r2", "b")],
    "p6": [("r1", "a"), ("r2", "a")],
    "p7": [("r1", "a"), ("r2", "a"), ("r3", "b"), ("r3", "b")],
}
JUDGE = {"p4": [(RULES, "a", CONSTITUTION), (GPT4, "a", None)], "p6": [(GPT4O, "b", None)]}
CATEGORY = {"p1": "coding", "p2": "coding", "p3": "writing", "p4": "writing", "p5": "math", "p6": "math", "p7": "math"}
SOURCE = {
    "p1": "hh-rlhf",
    "p2": "hh-rlhf",
    "p3": "mtbench",
    "p4": "mtbench",
    "p5": "pandalm",
    "p6": "pandalm",
    "p7": "pandalm",
}


def response_pairs(names: list[str]) -> pl.DataFrame:
    """ResponsePairs rows for the named pairs (a is the response with the smaller id)."""
    rows = []
    for line, name in enumerate(names, start=1):
        prompt = f"Question {name}: explain it briefly."
        pid = ids.prompt_id(prompt)
        (ida, ra), (idb, rb) = sorted((ids.response_id(t), t) for t in (f"Answer one to {name}", f"Answer two, {name}"))
        rows.append(
            {
                "source": SOURCE[name],
                "source_file": f"pairs/{SOURCE[name]}.jsonl",
                "source_line": line,
                "file_sha256": SHA,
                "pair_id": ids.pair_id(pid, ida, idb),
                "prompt_id": pid,
                "prompt": prompt,
                "response_a_id": ida,
                "response_a": ra,
                "model_a": "model-x",
                "response_b_id": idb,
                "response_b": rb,
                "model_b": "model-y",
                "source_key": name,
                "category": CATEGORY[name],
                "language": "en",
                "reference_choice": None,
            }
        )
    return pl.DataFrame(rows, schema_overrides={"reference_choice": pl.String})


def pair_ids(pairs: pl.DataFrame) -> dict[str, str]:
    return dict(zip(pairs["source_key"].to_list(), pairs["pair_id"].to_list(), strict=True))


def human_labels(pairs: pl.DataFrame) -> pl.DataFrame:
    """HumanLabels rows: one per (pair, rater, key); batch 2026-11-02, except p6's (2026-11-03)."""
    pid = pair_ids(pairs)
    rows = []
    for name, votes in HUMAN.items():
        if name not in pid:
            continue
        for k, (rater, choice) in enumerate(votes):
            batch = "2026-11-03" if name == "p6" else "2026-11-02"
            rows.append(
                {
                    "source": "crowd",
                    "source_file": f"human_labels/{batch}/crowd.csv",
                    "source_line": len(rows) + 2,
                    "file_sha256": SHA,
                    "label_id": ids.content_hash("label", rater, name, str(k)),
                    "pair_id": pid[name],
                    "pair_key": f"{name}-{k}",
                    "batch_date": dt.date.fromisoformat(batch),
                    "choice": choice,
                    "raw_choice": choice.upper(),
                    "shown_first": "a",
                    "rater_id": rater,
                    "seconds": 30.0,
                    "labeled_at": dt.datetime(2026, 11, 2, 12, 0) + dt.timedelta(minutes=len(rows)),
                }
            )
    return pl.DataFrame(rows)


def judge_labels(pairs: pl.DataFrame) -> pl.DataFrame:
    """JudgeLabels rows (recorded and live) for the pairs present."""
    pid = pair_ids(pairs)
    rows = []
    for name, verdicts in JUDGE.items():
        if name not in pid:
            continue
        for judge, choice, constitution in verdicts:
            recorded = judge.startswith("recorded:")
            rows.append(
                {
                    "label_id": ids.content_hash("judge-label", judge, name),
                    "pair_id": pid[name],
                    "pair_key": name,
                    "batch_date": dt.date(2026, 11, 2),
                    "choice": choice,
                    "raw_choice": choice,
                    "shown_first": "a",
                    "source": "mtbench-judges" if recorded else "live",
                    "source_file": "judge_labels/2026-11-02/gpt4.jsonl" if recorded else None,
                    "source_line": len(rows) + 1 if recorded else None,
                    "file_sha256": SHA if recorded else None,
                    "judge_id": judge,
                    "constitution_hash": constitution,
                    "origin": "recorded" if recorded else "live",
                    "status": "ok",
                    "order": None if recorded else "ab",
                    "parse_status": "ok",
                    "rationale": None,
                }
            )
    nulls = {
        "probability_a": pl.Float64,
        "raw_output": pl.String,
        "error": pl.String,
        "prompt_tokens": pl.Int64,
        "completion_tokens": pl.Int64,
        "latency_s": pl.Float64,
        "cost_usd": pl.Float64,
        "attempts": pl.Int64,
        "pii_action": pl.String,
        "template_hash": pl.String,
        "position_consistent": pl.Boolean,
    }
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "source_file": pl.String,
            "source_line": pl.Int64,
            "file_sha256": pl.String,
            "constitution_hash": pl.String,
            "order": pl.String,
            "rationale": pl.String,
        },
    )
    return frame.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in nulls.items())


def preference_set(
    pairs: pl.DataFrame,
    human: pl.DataFrame,
    judges: pl.DataFrame,
    policy_hash: str = "policy0000000001",
    min_labels: int = 2,
) -> pl.DataFrame:
    """Plain majority of human labels (strict a/b, at least ``min_labels``); pairs without human labels take the
    judges' majority. Carries the curated set's provenance columns."""
    rows = []
    for pair in pairs.iter_rows(named=True):
        h = human.filter(pl.col("pair_id") == pair["pair_id"])
        j = judges.filter(pl.col("pair_id") == pair["pair_id"])
        origin, votes = ("human", h) if h.height else ("judge", j)
        if votes.height < (min_labels if origin == "human" else 1):
            continue
        n_a, n_b = (votes["choice"] == "a").sum(), (votes["choice"] == "b").sum()
        if n_a == n_b:
            continue
        side = "a" if n_a > n_b else "b"
        rows.append(
            {
                "example_id": ids.content_hash("example", pair["pair_id"], side),
                "prompt": pair["prompt"],
                "chosen": pair[f"response_{side}"],
                "rejected": pair["response_b" if side == "a" else "response_a"],
                "pair_id": pair["pair_id"],
                "prompt_id": pair["prompt_id"],
                "chosen_side": side,
                "split": "eval" if pair["source_key"] == "p1" else "train",
                "category": pair["category"],
                "language": pair["language"],
                "pair_source": pair["source"],
                "label_origin": origin,
                "label_ids": sorted(h["label_id"].to_list()) if origin == "human" else [],
                "rater_ids": sorted(set(h["rater_id"].to_list())) if origin == "human" else [],
                "judge_label_ids": sorted(j["label_id"].to_list()) if origin == "judge" else [],
                "judge_ids": sorted(set(j["judge_id"].to_list())) if origin == "judge" else [],
                "constitution_hashes": sorted(set(j["constitution_hash"].drop_nulls().to_list()))
                if origin == "judge"
                else [],
                "policy_hash": policy_hash,
            }
        )
    schema_lists = {c: pl.List(pl.String) for c in ("label_ids", "rater_ids", "judge_label_ids", "judge_ids")}
    return pl.DataFrame(rows, schema_overrides={**schema_lists, "constitution_hashes": pl.List(pl.String)}).sort(
        "example_id"
    )
