"""Table builders: canonical pairs, aliases, label normalisation, quarantine, reconciliation."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from prefgate import schemas
from prefgate.ids import pair_id, prompt_id, response_id
from prefgate.ingest.mapping import Mapped, Rejected, map_rows
from prefgate.ingest.sources import SourceSpec
from prefgate.ingest.tables import build_labels, build_pairs, build_prompts, quarantine_frame

# response_id(LO) < response_id(HI), so LO is always canonical side "a" of a pair of the two.
LO, HI = "Alpha answer", "Beta answer"
DAY1, DAY2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)


def test_precondition_lo_sorts_before_hi() -> None:
    assert response_id(LO) == "49e621750cf70d4f" < response_id(HI) == "eef5174b81cc672f"


def spec(**kw: Any) -> SourceSpec:
    return SourceSpec.model_validate({"glob": "*", **kw})


PAIRS = spec(
    name="src",
    kind="pairs",
    columns={
        "source_key": "id",
        "prompt": "prompt",
        "response_first": "r1",
        "response_second": "r2",
        "model_first": "m1",
        "model_second": "m2",
        "reference_choice": "ref",
    },
)
CROWD = spec(
    name="crowd",
    kind="human_labels",
    pairs_from="src",
    shown_first="first",
    choices={"left": "first", "right": "second", "tie": "tie"},
    columns={"pair_key": "id", "rater_id": "worker", "choice": "winner", "seconds": "secs", "labeled_at": "ts"},
)
JUDGE = spec(
    name="judge",
    kind="judge_labels",
    pairs_from="src",
    shown_first="second",
    choices={"1": "first", "2": "second", "0": "tie"},
    columns={"pair_key": "id", "choice": "verdict", "probability_first": "p", "rationale": "why"},
    constants={"judge_id": "gpt"},
)


def mapped(s: SourceSpec, rows: list[dict[str, Any]], name: str = "f.jsonl") -> Mapped:
    return map_rows(s, Path(name), name, "0" * 64, list(enumerate(rows, start=1)))


def pair_row(key: str, prompt: str, r1: str, r2: str, **kw: Any) -> dict[str, Any]:
    return {"id": key, "prompt": prompt, "r1": r1, "r2": r2, "m1": f"model-{r1[0]}", "m2": f"model-{r2[0]}", **kw}


def fields(rejected: list[Rejected]) -> list[tuple[int, str]]:
    return [(r.line, r.field) for r in rejected]


# ---------------------------------------------------------------- pairs


def test_build_pairs_canonical_order_and_first_side() -> None:
    built, keys = build_pairs([mapped(PAIRS, [pair_row("k1", "Q1", HI, LO), pair_row("k2", "Q2", LO, HI)])])
    assert built.reconciles and built.rejected == [] and built.aliased == 0
    rows = {r["source_key"]: r for r in built.table.iter_rows(named=True)}
    for key, prompt in (("k1", "Q1"), ("k2", "Q2")):
        row = rows[key]
        assert (row["response_a"], row["response_b"]) == (LO, HI)
        assert (row["model_a"], row["model_b"]) == ("model-A", "model-B")
        assert (row["response_a_id"], row["response_b_id"]) == (response_id(LO), response_id(HI))
        assert row["pair_id"] == pair_id(prompt_id(prompt), response_id(LO), response_id(HI))
        assert row["prompt_id"] == prompt_id(prompt)
    assert rows["k1"]["source_line"] == 1 and rows["k2"]["source_line"] == 2
    assert dict(zip(keys["source_key"], keys["first_side"], strict=True)) == {"k1": "b", "k2": "a"}
    schemas.validate(schemas.ResponsePairs, built.table)
    schemas.validate(schemas.PairKeys, keys)


def test_alias_same_content_under_other_key() -> None:
    # k2 is the same comparison as k1 (responses listed the other way round, prompt differs only in whitespace)
    built, keys = build_pairs([mapped(PAIRS, [pair_row("k1", "Q1", HI, LO), pair_row("k2", " Q1\r\n", LO, HI)])])
    assert built.table.height == 1
    assert built.aliased == 1
    assert built.rows_read == 2 and built.reconciles
    assert built.table["source_key"].to_list() == ["k1"]
    assert keys.sort("source_key").rows() == [
        ("src", "k1", built.table["pair_id"][0], "b"),
        ("src", "k2", built.table["pair_id"][0], "a"),
    ]


def test_same_key_different_content_is_quarantined() -> None:
    built, keys = build_pairs(
        [
            mapped(
                PAIRS,
                [
                    pair_row("k1", "Q1", LO, HI),
                    pair_row("k1", "Q1", LO, "Gamma answer"),  # reused key, other content
                    pair_row("k1", "Q1", HI, LO),  # same key, same pair again
                ],
            )
        ]
    )
    assert built.table.height == 1 and keys.height == 1
    assert fields(built.rejected) == [(2, "source_key"), (3, "source_key")]
    assert "already names a different pair at f.jsonl:1" in built.rejected[0].reason
    assert "duplicate row" in built.rejected[1].reason
    assert built.reconciles


def test_same_key_in_different_sources_is_fine() -> None:
    other = spec(name="other", kind="pairs", columns=PAIRS.columns)
    built, keys = build_pairs(
        [mapped(PAIRS, [pair_row("k1", "Q1", LO, HI)]), mapped(other, [pair_row("k1", "Q2", LO, HI)], "g.jsonl")]
    )
    assert built.table.height == 2 and built.rejected == [] and keys.height == 2


def test_identical_responses_quarantined() -> None:
    built, _ = build_pairs([mapped(PAIRS, [pair_row("k1", "Q1", "Same", "  Same\r\n")])])
    assert built.table.height == 0
    assert fields(built.rejected) == [(1, "response_second")]
    assert "degenerate" in built.rejected[0].reason
    assert built.reconciles


def test_missing_required_field_quarantined() -> None:
    built, _ = build_pairs([mapped(PAIRS, [pair_row("k1", "   ", LO, HI), {"id": "k2", "prompt": "Q", "r1": LO}])])
    assert fields(built.rejected) == [(1, "prompt"), (2, "response_second")]
    assert built.reconciles


def test_reference_choice_mapped_to_canonical_side() -> None:
    built, _ = build_pairs(
        [
            mapped(
                PAIRS,
                [
                    pair_row("k1", "Q1", HI, LO, ref="first"),  # first is canonical b
                    pair_row("k2", "Q2", HI, LO, ref="second"),  # second is canonical a
                    pair_row("k3", "Q3", LO, HI, ref="first"),  # first is canonical a
                    pair_row("k4", "Q4", LO, HI),  # none
                    pair_row("k5", "Q5", LO, HI, ref="left"),  # invalid
                ],
            )
        ]
    )
    refs = dict(zip(built.table["source_key"], built.table["reference_choice"], strict=True))
    assert refs == {"k1": "b", "k2": "a", "k3": "a", "k4": None}
    assert fields(built.rejected) == [(5, "reference_choice")]
    assert built.reconciles


def test_mapping_rejections_carry_into_built() -> None:
    m = mapped(PAIRS, [pair_row("k1", "Q1", LO, HI), {"id": "k2", "prompt": ["not", "text"], "r1": LO, "r2": HI}])
    built, _ = build_pairs([m])
    assert built.rows_read == 2 and built.table.height == 1
    assert fields(built.rejected) == [(2, "prompt")]
    assert built.reconciles


# ---------------------------------------------------------------- labels


@pytest.fixture
def pair_keys() -> pl.DataFrame:
    # kb: source lists HI first -> first_side b; ka: source lists LO first -> first_side a
    _, keys = build_pairs([mapped(PAIRS, [pair_row("kb", "Q1", HI, LO), pair_row("ka", "Q2", LO, HI)])])
    return keys


def _pid(keys: pl.DataFrame, key: str) -> str:
    return keys.filter(pl.col("source_key") == key)["pair_id"][0]


def label(key: str, worker: str, winner: str, **kw: Any) -> dict[str, Any]:
    return {"id": key, "worker": worker, "winner": winner, **kw}


def test_choice_normalised_when_first_response_is_canonical_b(pair_keys: pl.DataFrame) -> None:
    m = mapped(
        CROWD,
        [
            label("kb", "w1", "left"),
            label("kb", "w2", "right"),
            label("kb", "w3", "tie"),
            label("ka", "w1", "left"),
            label("ka", "w2", "right"),
        ],
        "human_labels/d/crowd.csv",
    )
    built = build_labels([m], "human_labels", pair_keys, DAY1)
    assert built.rejected == [] and built.reconciles
    t = built.table
    assert t.select("source_line", "choice", "raw_choice", "shown_first", "rater_id").rows() == [
        (1, "b", "left", "b", "crowd:w1"),
        (2, "a", "right", "b", "crowd:w2"),
        (3, "tie", "tie", "b", "crowd:w3"),
        (4, "a", "left", "a", "crowd:w1"),
        (5, "b", "right", "a", "crowd:w2"),
    ]
    assert t["pair_id"].to_list() == [_pid(pair_keys, "kb")] * 3 + [_pid(pair_keys, "ka")] * 2
    assert t["batch_date"].unique().to_list() == [DAY1]
    assert t["label_id"].n_unique() == 5
    schemas.validate(schemas.HumanLabels, t)


def test_shown_first_second_and_judge_probability(pair_keys: pl.DataFrame) -> None:
    m = mapped(
        JUDGE,
        [
            {"id": "kb", "verdict": "1", "p": "0.8", "why": "clearer"},
            {"id": "ka", "verdict": "1", "p": "0.8"},
            {"id": "ka", "verdict": "0"},
            {"id": "ka", "verdict": "2", "p": "1.5"},
        ],
    )
    built = build_labels([m], "judge_labels", pair_keys, DAY1)
    t = built.table
    # JUDGE shows the source's second response first: for kb that is canonical a, for ka canonical b.
    assert t.select("choice", "shown_first", "judge_id", "rationale").rows() == [
        ("b", "a", "gpt", "clearer"),
        ("a", "b", "gpt", None),
        ("tie", "b", "gpt", None),
    ]
    assert t["probability_a"].to_list()[:2] == pytest.approx([0.2, 0.8])
    assert t["probability_a"][2] is None
    assert fields(built.rejected) == [(4, "probability_first")]
    assert built.reconciles
    from prefgate.judges.labels import recorded_with_live_columns

    schemas.validate(schemas.JudgeLabels, recorded_with_live_columns(t))


def test_unknown_pair_key_and_invalid_choice(pair_keys: pl.DataFrame) -> None:
    other_source = spec(**{**CROWD.model_dump(), "name": "crowd2", "pairs_from": "elsewhere"})
    built = build_labels(
        [
            mapped(CROWD, [label("nope", "w1", "left"), label("kb", "w1", "middle"), label("kb", "w1", "Left")]),
            mapped(other_source, [label("kb", "w1", "left")], "g.csv"),
        ],
        "human_labels",
        pair_keys,
        DAY1,
    )
    assert built.table.height == 0
    assert [(r.source, r.line, r.field) for r in built.rejected] == [
        ("crowd", 1, "pair_key"),
        ("crowd", 2, "choice"),
        ("crowd", 3, "choice"),
        ("crowd2", 1, "pair_key"),
    ]
    assert "no pair 'nope' from source 'src'" in built.rejected[0].reason
    assert "invalid choice 'middle' (allowed: left, right, tie)" in built.rejected[1].reason
    assert built.reconciles


def test_duplicate_label_within_batch(pair_keys: pl.DataFrame) -> None:
    m = mapped(
        CROWD,
        [label("kb", "w1", "left"), label("kb", "w1", "left"), label("kb", "w1", "right"), label("kb", "w2", "left")],
    )
    built = build_labels([m], "human_labels", pair_keys, DAY1)
    assert built.table["source_line"].to_list() == [1, 3, 4]
    assert fields(built.rejected) == [(2, "label_id")]
    assert "already ingested at f.jsonl:1" in built.rejected[0].reason
    assert built.reconciles


def test_duplicate_label_against_existing_batches(pair_keys: pl.DataFrame) -> None:
    rows = [label("kb", "w1", "left"), label("ka", "w2", "tie")]
    first = build_labels([mapped(CROWD, rows, "human_labels/d1/crowd.csv")], "human_labels", pair_keys, DAY1)
    assert first.table.height == 2
    existing = first.table.select("label_id", "batch_date", "source_file", "source_line")
    second = build_labels(
        [mapped(CROWD, [*rows, label("ka", "w3", "tie")], "human_labels/d2/crowd.csv")],
        "human_labels",
        pair_keys,
        DAY2,
        existing=existing,
    )
    assert second.table.select("rater_id").to_series().to_list() == ["crowd:w3"]
    assert fields(second.rejected) == [(1, "label_id"), (2, "label_id")]
    assert "batch 2024-05-01 (human_labels/d1/crowd.csv:1)" in second.rejected[0].reason
    assert second.reconciles
    # the same rows produce the same label ids in every batch
    assert set(existing["label_id"]) == {
        lid for lid in build_labels([mapped(CROWD, rows)], "human_labels", pair_keys, DAY2).table["label_id"]
    }


def test_label_key_is_identity_when_given(pair_keys: pl.DataFrame) -> None:
    keyed = spec(**{**CROWD.model_dump(), "columns": {**CROWD.columns, "label_key": "lk"}})
    built = build_labels(
        [
            mapped(
                keyed,
                [
                    label("kb", "w1", "left", lk="L1"),
                    label("kb", "w1", "left", lk="L2"),
                    label("ka", "w9", "tie", lk="L1"),
                ],
            )
        ],
        "human_labels",
        pair_keys,
        DAY1,
    )
    assert built.table.height == 2
    assert fields(built.rejected) == [(3, "label_id")]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"secs": "abc"}, "seconds"),
        ({"secs": "-1"}, "seconds"),
        ({"secs": "nan"}, "seconds"),
        ({"secs": "inf"}, "seconds"),
        ({"ts": "yesterday"}, "labeled_at"),
        ({"ts": "2024-13-01T00:00:00"}, "labeled_at"),
    ],
)
def test_bad_human_fields_quarantined(pair_keys: pl.DataFrame, extra: dict[str, str], field: str) -> None:
    built = build_labels(
        [mapped(CROWD, [label("kb", "w1", "left", **extra), label("kb", "w1", "right")])],
        "human_labels",
        pair_keys,
        DAY1,
    )
    assert built.table["source_line"].to_list() == [2]
    assert fields(built.rejected) == [(1, field)]
    assert f"field '{field}'" in built.rejected[0].reason
    assert built.reconciles


@pytest.mark.parametrize("p", ["-0.1", "1.01", "high", "nan"])
def test_bad_probability_first_quarantined(pair_keys: pl.DataFrame, p: str) -> None:
    built = build_labels([mapped(JUDGE, [{"id": "kb", "verdict": "1", "p": p}])], "judge_labels", pair_keys, DAY1)
    assert built.table.height == 0
    assert fields(built.rejected) == [(1, "probability_first")]
    assert built.reconciles


def test_good_seconds_and_timestamps(pair_keys: pl.DataFrame) -> None:
    built = build_labels(
        [
            mapped(
                CROWD,
                [
                    label("kb", "w1", "left", secs="12.5", ts="2024-05-01T12:00:00+02:00"),
                    label("kb", "w2", "left", secs="0", ts="2024-05-01 08:30:00"),
                    label("kb", "w3", "left"),
                ],
            )
        ],
        "human_labels",
        pair_keys,
        DAY1,
    )
    assert built.rejected == []
    assert built.table["seconds"].to_list() == [12.5, 0.0, None]
    assert built.table["labeled_at"].to_list() == [
        dt.datetime(2024, 5, 1, 10, 0),
        dt.datetime(2024, 5, 1, 8, 30),
        None,
    ]


# ---------------------------------------------------------------- prompts and quarantine


def test_build_prompts_duplicates_and_safety() -> None:
    ev = spec(name="ev", kind="eval_prompts", columns={"prompt": "q", "safety": "s"})
    built = build_prompts(
        [
            mapped(
                ev,
                [
                    {"q": "How?", "s": "safe"},
                    {"q": " How?\n", "s": "unsafe"},
                    {"q": "Why?", "s": "maybe"},
                    {"q": "When?"},
                ],
            )
        ],
        "eval_prompts",
    )
    assert built.table.select("prompt", "safety").rows() == [("How?", "safe"), ("When?", None)]
    assert fields(built.rejected) == [(2, "prompt"), (3, "safety")]
    assert "same text as f.jsonl:1" in built.rejected[0].reason
    assert built.reconciles
    schemas.validate(schemas.EvalPrompts, built.table)


def test_quarantine_ids_unique_for_identical_rows() -> None:
    r = Rejected("src", "f.jsonl", 3, "choice", "invalid", '{"a": 1}')
    other = Rejected("src", "f.jsonl", 4, "choice", "invalid", '{"a": 1}')
    q = quarantine_frame("human_labels", [r, r, other], DAY1)
    assert q.height == 3
    assert q["quarantine_id"].n_unique() == 3
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in q["quarantine_id"])
    assert q["table"].to_list() == ["human_labels"] * 3 and q["line"].to_list() == [3, 3, 4]
    # deterministic: rebuilding gives the same ids; a different table gives different ones
    again = quarantine_frame("human_labels", [r, r, other], DAY1)
    assert again["quarantine_id"].to_list() == q["quarantine_id"].to_list()
    assert set(quarantine_frame("judge_labels", [r])["quarantine_id"]).isdisjoint(q["quarantine_id"])
    schemas.validate(schemas.Quarantine, q)
    assert quarantine_frame("t", []).height == 0


# ---------------------------------------------------------------- per-row display order (shown_first mapped)


def both_orders_judge(**kw: Any) -> SourceSpec:
    """A judge file holding both display orders of each verdict, one row each, told apart by a ``swap`` column."""
    return spec(
        name="swapjudge",
        kind="judge_labels",
        pairs_from="src",
        shown_first={"column": "swap", "values": {"false": "first", "true": "second"}},
        choices={"A": "first", "B": "second", "tie": "tie"},
        columns={"pair_key": "id", "judge_id": "judge", "choice": "winner", "probability_first": "p"},
        **kw,
    )


def read_mapped(s: SourceSpec, path: Path) -> Mapped:
    from prefgate.ingest.readers import read_rows

    return map_rows(s, path, path.name, "0" * 64, read_rows(path, s.file_format(path)))


def write_judge_file(tmp_path: Path, fmt: str, rows: list[tuple[str, bool | str | None, str, str]]) -> Path:
    """Rows of (pair key, swap, winner, p) as a tiny JSONL or CSV file (JSONL keeps booleans as booleans)."""
    import json

    path = tmp_path / f"judge.{fmt}"
    if fmt == "jsonl":
        lines = [json.dumps({"id": k, "judge": "gpt", "swap": s, "winner": w, "p": p}) for k, s, w, p in rows]
    else:
        text = {True: "true", False: "false", None: ""}
        lines = ["id,judge,swap,winner,p"] + [
            f"{k},gpt,{s if isinstance(s, str) else text[s]},{w},{p}" for k, s, w, p in rows
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_both_orders_judge_file_mapped_once(tmp_path: Path, pair_keys: pl.DataFrame, fmt: str) -> None:
    # Choices relative to the source's responses (default): "A" is always the source's response_first.
    path = write_judge_file(
        tmp_path,
        fmt,
        [("kb", False, "A", "0.9"), ("kb", True, "A", "0.7"), ("ka", False, "B", "0.2"), ("ka", True, "B", "0.4")],
    )
    built = build_labels([read_mapped(both_orders_judge(), path)], "judge_labels", pair_keys, DAY1)
    assert built.rejected == [] and built.reconciles
    t = built.table
    # kb lists HI (canonical b) first; ka lists LO (canonical a) first.
    assert t.select("pair_key", "choice", "shown_first").rows() == [
        ("kb", "b", "b"),
        ("kb", "b", "a"),
        ("ka", "b", "a"),
        ("ka", "b", "b"),
    ]
    assert t["probability_a"].to_list() == pytest.approx([0.1, 0.3, 0.2, 0.4])
    # the two orders of one judge on one pair are two labels
    assert t.group_by("pair_id", maintain_order=True).agg(pl.col("label_id").n_unique())["label_id"].to_list() == [2, 2]
    assert t["label_id"].n_unique() == 4


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_choices_relative_to_shown(tmp_path: Path, pair_keys: pl.DataFrame, fmt: str) -> None:
    # "A" is the response displayed first: with swap the source's second response is displayed first.
    path = write_judge_file(
        tmp_path,
        fmt,
        [("kb", False, "A", "0.9"), ("kb", True, "A", "0.9"), ("ka", True, "B", "0.2"), ("ka", True, "tie", "0.5")],
    )
    s = both_orders_judge(choices_relative_to="shown")
    built = build_labels([read_mapped(s, path)], "judge_labels", pair_keys, DAY1)
    assert built.rejected == [] and built.reconciles
    assert built.table.select("pair_key", "raw_choice", "choice", "shown_first").rows() == [
        ("kb", "A", "b", "b"),  # shown first = source first = HI = canonical b
        ("kb", "A", "a", "a"),  # swapped: shown first = source second = LO = canonical a
        ("ka", "B", "a", "b"),  # swapped on ka: shown first is HI (b), "B" is the other one, LO (a)
        ("ka", "tie", "tie", "b"),
    ]
    # probability_first is of the response shown first too
    assert built.table["probability_a"].to_list() == pytest.approx([0.1, 0.9, 0.8, 0.5])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_order_value_outside_map_quarantined(tmp_path: Path, pair_keys: pl.DataFrame, fmt: str) -> None:
    path = write_judge_file(
        tmp_path, fmt, [("kb", False, "A", "0.9"), ("kb", "maybe", "A", "0.9"), ("ka", None, "B", "0.2")]
    )
    built = build_labels([read_mapped(both_orders_judge(), path)], "judge_labels", pair_keys, DAY1)
    assert built.table.height == 1 and built.reconciles
    lines = [2, 3] if fmt == "jsonl" else [3, 4]
    assert fields(built.rejected) == [(lines[0], "shown_first"), (lines[1], "shown_first")]
    assert "invalid value 'maybe'" in built.rejected[0].reason
    assert "missing order value" in built.rejected[1].reason
    assert all("'false', 'true'" in r.reason for r in built.rejected)
    q = quarantine_frame("judge_labels", built.rejected, DAY1)
    assert q["field"].to_list() == ["shown_first", "shown_first"]


def test_constant_shown_first_keeps_label_ids(pair_keys: pl.DataFrame) -> None:
    from prefgate.ids import content_hash

    # The ids build_labels computed before per-row orders existed: (kind, source, pair key, who, constant, raw).
    judge = build_labels(
        [mapped(JUDGE, [{"id": "kb", "verdict": "1"}, {"id": "ka", "verdict": "0"}])], "judge_labels", pair_keys, DAY1
    )
    assert judge.table["label_id"].to_list() == [
        content_hash("judge_labels", "judge", "kb", "gpt", "second", "1"),
        content_hash("judge_labels", "judge", "ka", "gpt", "second", "0"),
    ]
    assert judge.table["shown_first"].to_list() == ["a", "b"]
    crowd = build_labels([mapped(CROWD, [label("kb", "w1", "left")])], "human_labels", pair_keys, DAY1)
    assert crowd.table["label_id"].to_list() == [
        content_hash("human_labels", "crowd", "kb", "crowd:w1", "first", "left")
    ]
    # Constant-order records carry no per-row order.
    assert "shown_first" not in mapped(JUDGE, [{"id": "kb", "verdict": "1"}]).records[0]
