"""Source mapping config: the shipped file loads; errors name the source and the key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.sources import Concat, SourceConfigError, SourceSpec, Unpivot, load_sources, spec_for

CONFIG = Path(__file__).resolve().parents[2] / "config" / "sources.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_sources_load() -> None:
    specs = load_sources(CONFIG)
    kinds = Counter(s.kind for s in specs)
    assert kinds == {"prompts": 2, "pairs": 5, "human_labels": 4, "judge_labels": 5, "eval_prompts": 4}
    by = {(s.kind, s.name): s for s in specs}
    assert by[("pairs", "pandalm")].columns["prompt"] == Concat(concat=["instruction", "input"], sep="\n\n")
    assert by[("pairs", "mtbench")].columns["source_key"] == ["question_id", "model_a", "model_b"]
    assert by[("human_labels", "pandalm-annotators")].unpivot == Unpivot(
        columns=["annotator1", "annotator2", "annotator3"], variable="annotator", value="verdict"
    )
    assert by[("human_labels", "mtbench-experts")].explode == "human_votes"
    assert by[("pairs", "hh-rlhf")].adapter == "hh_rlhf_dialogue"
    assert by[("human_labels", "pandalm-annotators")].choices == {"1": "first", "2": "second", "0": "tie"}
    # every label source points at a declared pairs source
    pair_names = {s.name for s in specs if s.kind == "pairs"}
    assert all(s.pairs_from in pair_names for s in specs if s.kind in ("human_labels", "judge_labels"))


def test_spec_for_and_file_format_on_shipped_sources() -> None:
    specs = load_sources(CONFIG)
    s = spec_for(specs, "pairs", "pairs/mtbench-pairs-2024.jsonl")
    assert s.name == "mtbench"
    assert s.file_format(Path("pairs/mtbench-pairs-2024.jsonl")) == "jsonl"
    labels = spec_for(specs, "human_labels", "human_labels/2024-05-01/pandalm-annotators.parquet")
    assert labels.name == "pandalm-annotators"
    assert labels.file_format(Path("x.parquet")) == "parquet"
    # same file name but asked for another kind: not owned
    with pytest.raises(IngestFileError, match="no judge_labels source"):
        spec_for(specs, "judge_labels", "human_labels/2024-05-01/pandalm-annotators.parquet")


def test_spec_for_unmatched_file_names_file() -> None:
    specs = load_sources(CONFIG)
    with pytest.raises(IngestFileError, match=r"pairs/unknown-vendor\.jsonl: no pairs source"):
        spec_for(specs, "pairs", "pairs/unknown-vendor.jsonl")


def test_spec_for_file_claimed_twice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: one, kind: prompts, glob: "prompts/*.jsonl", columns: {prompt: text}}
  - {name: two, kind: prompts, glob: "prompts/p*.jsonl", columns: {prompt: text}}
""",
    )
    with pytest.raises(IngestFileError, match=r"several sources.*'one'.*'two'"):
        spec_for(load_sources(path), "prompts", "prompts/p1.jsonl")


def test_unknown_field_names_source_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: ok, kind: prompts, glob: "a", columns: {prompt: text}}
  - {name: vendor-x, kind: prompts, glob: "b", columns: {prompt: text, bogus_field: y}}
""",
    )
    with pytest.raises(SourceConfigError) as err:
        load_sources(path)
    msg = str(err.value)
    assert "source 'vendor-x' (sources[1])" in msg
    assert "'bogus_field' is not a prompts field" in msg
    assert str(path) in msg


def test_unknown_top_level_key_names_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: typo, kind: prompts, glob: "a", colums: {prompt: text}}
""",
    )
    with pytest.raises(SourceConfigError) as err:
        load_sources(path)
    msg = str(err.value)
    assert "source 'typo'" in msg
    assert "key 'colums'" in msg


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: half, kind: pairs, glob: "a", columns: {prompt: p, response_first: r1}}
""",
    )
    with pytest.raises(SourceConfigError, match=r"source 'half'.*required fields not mapped: \['response_second'\]"):
        load_sources(path)


def test_required_field_may_be_a_constant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: j, kind: judge_labels, glob: "a", pairs_from: p, shown_first: first, choices: {"1": first},
     columns: {pair_key: id, choice: c}, constants: {judge_id: "gpt"}}
  - {name: p, kind: pairs, glob: "b", columns: {prompt: p, response_first: a, response_second: b}}
""",
    )
    specs = load_sources(path)
    assert specs[0].constants == {"judge_id": "gpt"}


@pytest.mark.parametrize("missing", ["choices", "shown_first", "pairs_from"])
def test_label_kind_needs_choices_shown_first_pairs_from(tmp_path: Path, missing: str) -> None:
    keys = {"choices": "{a: first, b: second}", "shown_first": "first", "pairs_from": "p"}
    keys.pop(missing)
    extra = ", ".join(f"{k}: {v}" for k, v in keys.items())
    path = write(
        tmp_path,
        f"""
sources:
  - {{name: p, kind: pairs, glob: "b", columns: {{prompt: p, response_first: a, response_second: b}}}}
  - {{name: crowd, kind: human_labels, glob: "a", columns: {{pair_key: id, rater_id: w, choice: c}}, {extra}}}
""",
    )
    with pytest.raises(SourceConfigError) as err:
        load_sources(path)
    assert "source 'crowd' (sources[1])" in str(err.value)
    assert f"'{missing}' is required for human_labels" in str(err.value)


def test_invalid_choice_verdict_names_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: p, kind: pairs, glob: "b", columns: {prompt: p, response_first: a, response_second: b}}
  - {name: crowd, kind: human_labels, glob: "a", pairs_from: p, shown_first: first,
     choices: {left: lefty}, columns: {pair_key: id, rater_id: w, choice: c}}
""",
    )
    with pytest.raises(SourceConfigError, match=r"source 'crowd'.*key 'choices\.left'"):
        load_sources(path)


def test_pairs_from_unknown_names_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: prompts-only, kind: prompts, glob: "b", columns: {prompt: p}}
  - {name: crowd, kind: human_labels, glob: "a", pairs_from: prompts-only, shown_first: first,
     choices: {l: first}, columns: {pair_key: id, rater_id: w, choice: c}}
""",
    )
    with pytest.raises(SourceConfigError, match=r"source 'crowd': pairs_from 'prompts-only' is not a pairs source"):
        load_sources(path)


def test_unknown_adapter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: p, kind: pairs, glob: "b", adapter: magic, columns: {prompt: p, response_first: a, response_second: b}}
""",
    )
    with pytest.raises(SourceConfigError, match=r"source 'p'.*adapter 'magic' is unknown"):
        load_sources(path)


def test_not_a_sources_mapping(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="'sources' list"):
        load_sources(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(SourceConfigError, match="cannot read"):
        load_sources(tmp_path / "missing.yaml")


def test_file_format_inference() -> None:
    s = SourceSpec(name="s", kind="prompts", glob="*", columns={"prompt": "p"})
    assert s.file_format(Path("a.NDJSON")) == "jsonl"
    assert s.file_format(Path("a.csv")) == "csv"
    with pytest.raises(SourceConfigError, match=r"source 's': cannot infer format of a\.txt"):
        s.file_format(Path("a.txt"))
    declared = SourceSpec(name="s", kind="prompts", glob="*", format="csv", columns={"prompt": "p"})
    assert declared.file_format(Path("a.txt")) == "csv"
    assert s.matches("x/y.csv") and not SourceSpec(
        name="s", kind="prompts", glob="x/*.csv", columns={"prompt": "p"}
    ).matches("x/y.jsonl")


def test_shown_first_constant_or_mapped_from_data(tmp_path: Path) -> None:
    from prefgate.ingest.sources import ShownOrder

    path = write(
        tmp_path,
        """
sources:
  - {name: p, kind: pairs, glob: "b", columns: {prompt: p, response_first: a, response_second: b}}
  - {name: const, kind: judge_labels, glob: "c", pairs_from: p, shown_first: second, choices: {"1": first},
     columns: {pair_key: id, judge_id: j, choice: c}}
  - name: swapjudge
    kind: judge_labels
    glob: "d"
    pairs_from: p
    shown_first: {column: meta.swap, values: {"false": first, "true": second}}
    choices_relative_to: shown
    choices: {A: first, B: second}
    columns: {pair_key: id, judge_id: j, choice: c}
""",
    )
    _, const, mapped = load_sources(path)
    assert const.shown_first == "second" and const.choices_relative_to == "source"
    assert mapped.shown_first == ShownOrder(column="meta.swap", values={"false": "first", "true": "second"})
    assert mapped.choices_relative_to == "shown"


@pytest.mark.parametrize(
    ("shown_first", "extra", "match"),
    [
        ('{column: swap, values: {"true": left}}', "", r"source 'j'.*key 'shown_first.*values\.true'"),
        ("{column: swap, values: {}}", "", r"source 'j'.*key 'shown_first.*values'"),
        ("{values: {x: first}}", "", r"source 'j'.*key 'shown_first.*column'"),
        ("third", "", r"source 'j'.*key 'shown_first"),
        ("first", ", choices_relative_to: displayed", r"source 'j'.*key 'choices_relative_to'"),
    ],
)
def test_bad_shown_first_or_choices_relative_to_names_key(
    tmp_path: Path, shown_first: str, extra: str, match: str
) -> None:
    path = write(
        tmp_path,
        f"""
sources:
  - {{name: p, kind: pairs, glob: "b", columns: {{prompt: p, response_first: a, response_second: b}}}}
  - {{name: j, kind: judge_labels, glob: "a", pairs_from: p, shown_first: {shown_first}, choices: {{"1": first}},
     columns: {{pair_key: id, judge_id: j, choice: c}}{extra}}}
""",
    )
    with pytest.raises(SourceConfigError, match=match):
        load_sources(path)


def test_mapped_order_options_only_for_label_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources:
  - {name: p, kind: pairs, glob: "b", choices_relative_to: shown,
     columns: {prompt: p, response_first: a, response_second: b}}
""",
    )
    with pytest.raises(SourceConfigError, match=r"source 'p'.*'choices_relative_to' are for label sources, not pairs"):
        load_sources(path)
