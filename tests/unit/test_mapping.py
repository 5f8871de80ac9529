"""Field mapping: dotted paths, composite keys, concat, explode, unpivot, constants, adapters, counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prefgate.ingest.mapping import Mapped, map_rows, resolve_path, split_hh_dialogue
from prefgate.ingest.readers import RowError
from prefgate.ingest.sources import SourceSpec

SHA = "0" * 64


def spec(**kw: Any) -> SourceSpec:
    return SourceSpec.model_validate({"name": "src", "glob": "*", **kw})


def run(s: SourceSpec, rows: list[tuple[int, Any]]) -> Mapped:
    out = map_rows(s, Path("f"), "dir/f.jsonl", SHA, rows)
    assert out.rows_read == len(out.records) + len(out.rejected)
    return out


def strip_meta(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


MTBENCH_PAIRS = spec(
    kind="pairs",
    columns={
        "source_key": ["question_id", "model_a", "model_b"],
        "prompt": "conversation_a.0.content",
        "response_first": "conversation_a.1.content",
        "response_second": "conversation_b.-1.content",
        "model_first": "model_a",
        "model_second": "model_b",
    },
    constants={"language": "en"},
)


def _mtbench_row(**over: Any) -> dict[str, Any]:
    row = {
        "question_id": 81,
        "model_a": "gpt-4",
        "model_b": "llama",
        "conversation_a": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A1"}],
        "conversation_b": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B1"}],
    }
    return {**row, **over}


def test_resolve_path_dicts_lists_and_missing() -> None:
    rec = {"a": [{"b": "x"}, {"b": "y"}], "lit.key": 5}
    assert resolve_path(rec, "a.0.b") == "x"
    assert resolve_path(rec, "a.-1.b") == "y"
    assert resolve_path(rec, "lit.key") == 5  # a literal dotted key wins
    from prefgate.ingest.mapping import _MISSING

    assert resolve_path(rec, "a.2.b") is _MISSING
    assert resolve_path(rec, "a.x") is _MISSING
    assert resolve_path(rec, "nope") is _MISSING


def test_dotted_paths_composite_key_and_constants() -> None:
    out = run(MTBENCH_PAIRS, [(3, _mtbench_row())])
    assert out.rejected == []
    assert len(out.records) == 1
    rec = out.records[0]
    assert rec["_line"] == 3
    assert strip_meta(rec) == {
        "source_key": "81|gpt-4|llama",
        "prompt": "Q",
        "response_first": "A1",
        "response_second": "B1",
        "model_first": "gpt-4",
        "model_second": "llama",
        "language": "en",
    }


def test_composite_key_with_missing_part_is_null() -> None:
    out = run(MTBENCH_PAIRS, [(1, _mtbench_row(model_b=None))])
    assert out.records[0]["source_key"] is None
    assert out.records[0]["model_second"] is None


def test_scalar_conversion() -> None:
    s = spec(kind="prompts", columns={"prompt": "p", "source_key": "k", "category": "c"})
    out = run(
        s,
        [
            (1, {"p": "x", "k": 7.0, "c": True}),
            (2, {"p": "y", "k": 2.5, "c": "   "}),
            (3, {"p": "z", "k": float("nan")}),
        ],
    )
    assert [(r["source_key"], r["category"]) for r in out.records] == [("7", "true"), ("2.5", None), (None, None)]


def test_concat_skips_empty_parts() -> None:
    s = spec(kind="prompts", columns={"prompt": {"concat": ["instruction", "input"], "sep": " // "}})
    out = run(
        s,
        [
            (1, {"instruction": "Do X", "input": "ctx"}),
            (2, {"instruction": "Do Y", "input": ""}),
            (3, {"instruction": "Do Z"}),
            (4, {"instruction": None, "input": "only input"}),
            (5, {"instruction": "", "input": None}),
        ],
    )
    assert [r["prompt"] for r in out.records] == ["Do X // ctx", "Do Y", "Do Z", "only input", None]


EXPERTS = spec(
    kind="human_labels",
    pairs_from="p",
    shown_first="first",
    explode="human_votes",
    choices={"model_a": "first", "model_b": "second", "tie": "tie"},
    columns={
        "pair_key": ["question_id", "model_a", "model_b"],
        "rater_id": "human_votes.judge",
        "choice": "human_votes.winner",
    },
)


def test_explode_one_record_per_element_and_empty_list_rejected() -> None:
    votes = [
        {"judge": "e1", "winner": "model_a"},
        {"judge": "e2", "winner": "tie"},
        {"judge": "e3", "winner": "model_b"},
    ]
    rows = [
        (1, {"question_id": 1, "model_a": "m1", "model_b": "m2", "human_votes": votes}),
        (2, {"question_id": 2, "model_a": "m1", "model_b": "m2", "human_votes": []}),
        (3, {"question_id": 3, "model_a": "m1", "model_b": "m2", "human_votes": "not a list"}),
    ]
    out = run(EXPERTS, rows)
    assert out.rows_read == 5  # 3 exploded records + 2 rejected rows
    assert [(r["_line"], r["pair_key"], r["rater_id"], r["choice"]) for r in out.records] == [
        (1, "1|m1|m2", "e1", "model_a"),
        (1, "1|m1|m2", "e2", "tie"),
        (1, "1|m1|m2", "e3", "model_b"),
    ]
    # each exploded record carries its own element as raw, not the whole row
    assert '"judge": "e2"' in out.records[1]["_raw"] and '"e1"' not in out.records[1]["_raw"]
    assert [(r.line, r.field) for r in out.rejected] == [(2, "human_votes"), (3, "human_votes")]
    assert "empty list" in out.rejected[0].reason
    assert "not a list" in out.rejected[1].reason


ANNOTATORS = spec(
    kind="human_labels",
    pairs_from="p",
    shown_first="first",
    unpivot={"columns": ["annotator1", "annotator2", "annotator3"], "variable": "annotator", "value": "verdict"},
    choices={"1": "first", "2": "second", "0": "tie"},
    columns={"pair_key": "idx", "rater_id": "annotator", "choice": "verdict"},
)


def test_unpivot_wide_columns() -> None:
    out = run(
        ANNOTATORS,
        [
            (1, {"idx": 7, "annotator1": 1, "annotator2": 2, "annotator3": 0}),
            (2, {"idx": 8, "annotator1": 1, "annotator2": 2}),
        ],
    )
    assert [strip_meta(r) for r in out.records] == [
        {"pair_key": "7", "rater_id": "annotator1", "choice": "1"},
        {"pair_key": "7", "rater_id": "annotator2", "choice": "2"},
        {"pair_key": "7", "rater_id": "annotator3", "choice": "0"},
    ]
    assert len(out.rejected) == 1
    assert (out.rejected[0].line, out.rejected[0].field) == (2, "verdict")
    assert "annotator3" in out.rejected[0].reason
    assert out.rows_read == 4


def test_constants_fill_only_missing_values() -> None:
    s = spec(
        kind="prompts",
        columns={"prompt": "text", "language": "lang"},
        constants={"language": "en", "category": "general"},
    )
    out = run(s, [(1, {"text": "a", "lang": "fr"}), (2, {"text": "b"})])
    assert [(r["language"], r["category"]) for r in out.records] == [("fr", "general"), ("en", "general")]


@pytest.mark.parametrize("value", [["a", "b"], {"x": 1}])
def test_non_scalar_value_rejected_with_field_name(value: Any) -> None:
    s = spec(kind="prompts", columns={"prompt": "text", "category": "cat"})
    out = run(s, [(4, {"text": "fine", "cat": value})])
    assert out.records == []
    [rej] = out.rejected
    assert (rej.source, rej.source_file, rej.line, rej.field) == ("src", "dir/f.jsonl", 4, "category")
    assert "field 'category'" in rej.reason and type(value).__name__ in rej.reason
    assert '"fine"' in rej.raw


def test_reader_row_errors_are_quarantined() -> None:
    s = spec(kind="prompts", columns={"prompt": "text"})
    out = run(s, [(1, {"text": "ok"}), (2, RowError("<line>", "malformed JSON", "{oops"))])
    assert len(out.records) == 1
    [rej] = out.rejected
    assert (rej.line, rej.field, rej.reason, rej.raw) == (2, "<line>", "malformed JSON", "{oops")


HH = spec(
    kind="pairs",
    adapter="hh_rlhf_dialogue",
    columns={"prompt": "prompt", "response_first": "chosen", "response_second": "rejected", "category": "subset"},
    constants={"language": "en", "reference_choice": "first"},
)


def test_hh_dialogue_split() -> None:
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: No."
    assert split_hh_dialogue({"chosen": chosen, "rejected": rejected}) == {
        "chosen": "Sure.",
        "rejected": "No.",
        "prompt": "Human: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:",
    }
    out = run(
        HH,
        [
            (1, {"chosen": chosen, "rejected": rejected, "subset": "helpful-base"}),
            (2, {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"}),
            (3, {"chosen": "no cue at all", "rejected": "no cue"}),
            (4, {"chosen": 1, "rejected": "x"}),
        ],
    )
    assert strip_meta(out.records[0]) == {
        "prompt": "Human: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:",
        "response_first": "Sure.",
        "response_second": "No.",
        "category": "helpful-base",
        "language": "en",
        "reference_choice": "first",
    }
    assert [(r.line, r.field) for r in out.rejected] == [(2, "<row>"), (3, "<row>"), (4, "<row>")]
    assert "dialogue prefix" in out.rejected[0].reason


def test_counts_reconcile_on_mixed_input() -> None:
    votes = [{"judge": "e1", "winner": "tie"}, {"judge": "e2", "winner": ["bad"]}]
    out = run(
        EXPERTS,
        [
            (1, {"question_id": 1, "model_a": "m1", "model_b": "m2", "human_votes": votes}),
            (2, RowError("<line>", "malformed JSON", "{")),
            (3, {"question_id": 2, "model_a": "m1", "model_b": "m2", "human_votes": []}),
        ],
    )
    # row 1 -> 2 records (one rejected on 'choice'), row 2 -> 1 rejected, row 3 -> 1 rejected
    assert out.rows_read == 4
    assert len(out.records) == 1
    assert sorted(r.field for r in out.rejected) == ["<line>", "choice", "human_votes"]
    assert (out.source_file, out.file_sha256) == ("dir/f.jsonl", SHA)


SWAP_JUDGE = spec(
    kind="judge_labels",
    pairs_from="p",
    shown_first={"column": "meta.swap", "values": {"false": "first", "true": "second", "0": "first"}},
    choices={"A": "first", "B": "second"},
    columns={"pair_key": "id", "judge_id": "judge", "choice": "winner"},
)


def test_shown_first_read_per_row_and_bad_order_quarantined() -> None:
    base = {"id": "k", "judge": "gpt", "winner": "A"}
    out = run(
        SWAP_JUDGE,
        [
            (1, {**base, "meta": {"swap": False}}),
            (2, {**base, "meta": {"swap": True}}),
            (3, {**base, "meta": {"swap": 0.0}}),  # compared as text: "0"
            (4, {**base, "meta": {"swap": "yes"}}),
            (5, {**base, "meta": {}}),
            (6, {**base, "meta": {"swap": [True]}}),
        ],
    )
    assert [(r["_line"], r["shown_first"]) for r in out.records] == [(1, "first"), (2, "second"), (3, "first")]
    assert [(r.line, r.field) for r in out.rejected] == [(4, "shown_first"), (5, "shown_first"), (6, "shown_first")]
    reasons = [r.reason for r in out.rejected]
    assert "invalid value 'yes' (allowed: '0', 'false', 'true')" in reasons[0]
    assert "missing order value" in reasons[1] and "meta.swap" in reasons[1]
    assert "expected a scalar" in reasons[2]


def test_constant_shown_first_adds_nothing_to_records() -> None:
    out = run(
        spec(**{**SWAP_JUDGE.model_dump(), "shown_first": "second"}), [(1, {"id": "k", "judge": "g", "winner": "B"})]
    )
    assert strip_meta(out.records[0]) == {"pair_key": "k", "judge_id": "g", "choice": "B"}
