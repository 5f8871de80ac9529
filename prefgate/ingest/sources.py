"""Declared source mappings (``config/sources.yaml``): which landing files a source owns and how its fields map.

A mapping is data, not code, so adding a labelling-tool export is a YAML edit. Validation names the source and
the key that is wrong.

Label sources say which of the source's two responses the rater or judge saw first with ``shown_first``: a
constant (``shown_first: first``) when the whole source shares one display order, or a mapping from the data
(``shown_first: {column: swap, values: {"false": first, "true": second}}``) when one file holds both orders, one
row per verdict. ``choices`` map verdicts to first/second/tie relative to the source's ``response_first`` /
``response_second`` (``choices_relative_to: source``, the default), or relative to the display order
(``choices_relative_to: shown``: "first" is the response shown first, as in judge logs that record "A"/"B").
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

Kind = Literal["prompts", "pairs", "human_labels", "judge_labels", "eval_prompts"]
Format = Literal["jsonl", "csv", "parquet"]
Side = Literal["first", "second"]
Verdict = Literal["first", "second", "tie"]

# Target fields each kind may map, and which of them are required (as a column or a constant).
FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "prompts": ({"source_key", "prompt", "category", "language"}, {"prompt"}),
    "pairs": (
        {
            "source_key",
            "prompt",
            "response_first",
            "response_second",
            "model_first",
            "model_second",
            "category",
            "language",
            "reference_choice",
        },
        {"prompt", "response_first", "response_second"},
    ),
    "human_labels": (
        {"pair_key", "label_key", "rater_id", "choice", "seconds", "labeled_at"},
        {"pair_key", "rater_id", "choice"},
    ),
    "judge_labels": (
        {"pair_key", "label_key", "judge_id", "choice", "rationale", "probability_first"},
        {"pair_key", "judge_id", "choice"},
    ),
    "eval_prompts": ({"source_key", "prompt", "category", "language", "safety"}, {"prompt"}),
}
LABEL_KINDS = ("human_labels", "judge_labels")
ADAPTERS = ("hh_rlhf_dialogue",)


class SourceConfigError(ValueError):
    """The sources file is invalid; the message names the source and key."""


class Concat(BaseModel):
    """Join several fields into one (empty parts skipped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    concat: list[str]
    sep: str = "\n\n"


class Unpivot(BaseModel):
    """Turn wide columns into one record per column: ``variable`` holds the column name, ``value`` its value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    columns: list[str] = Field(min_length=1)
    variable: str
    value: str


FieldSpec = str | list[str] | Concat


class ShownOrder(BaseModel):
    """``shown_first`` read from the data: a field (column name or dotted path) and a map from its values to sides.

    Raw values are compared as text (``true``/``false`` for booleans, ``1`` for ``1.0``); a row whose value is
    missing or not in ``values`` is quarantined with field ``shown_first``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: FieldSpec
    values: dict[str, Side] = Field(min_length=1)


def _shown_form(value: Any) -> str:
    return "mapped" if isinstance(value, dict | ShownOrder) else "constant"


# One error per form: a dict is validated as a mapping only, anything else as a constant side.
ShownFirst = Annotated[
    Annotated[Side, Tag("constant")] | Annotated[ShownOrder, Tag("mapped")], Discriminator(_shown_form)
]


class SourceSpec(BaseModel):
    """One source: the files it owns and the mapping from its fields to prefgate's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Kind
    glob: str
    format: Format | None = None
    columns: dict[str, FieldSpec]
    constants: dict[str, str] = Field(default_factory=dict)
    choices: dict[str, Verdict] | None = Field(
        None,
        description="label kinds: the source's verdict values mapped to first/second/tie (see choices_relative_to).",
    )
    shown_first: ShownFirst | None = Field(
        None,
        description="label kinds: which of the source's two responses was displayed first: a constant "
        "(first/second) for the whole source, or {column, values} to read it per row from the data.",
    )
    choices_relative_to: Literal["source", "shown"] = Field(
        "source",
        description="label kinds: 'source' (default): a choice (and probability_first) of 'first' means the source's "
        "response_first; 'shown': it means the response displayed first on that row (per shown_first).",
    )
    pairs_from: str | None = None
    explode: str | None = None
    unpivot: Unpivot | None = None
    adapter: str | None = None
    gold: bool = Field(
        False,
        description="human_labels only: the source holds reference labels (one per pair, a benchmark's answer key), "
        "kept out of rater agreement and used as the pair's verdict (prefgate.gold).",
    )

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        allowed, required = FIELDS[self.kind]
        for key in [*self.columns, *self.constants]:
            if key not in allowed:
                raise ValueError(f"field '{key}' is not a {self.kind} field (allowed: {sorted(allowed)})")
        missing = required - set(self.columns) - set(self.constants)
        if missing:
            raise ValueError(f"required fields not mapped: {sorted(missing)}")
        if self.kind in LABEL_KINDS:
            for key in ("choices", "shown_first", "pairs_from"):
                if getattr(self, key) is None:
                    raise ValueError(f"'{key}' is required for {self.kind}")
        elif isinstance(self.shown_first, ShownOrder) or self.choices_relative_to != "source":
            raise ValueError(f"a mapped 'shown_first' and 'choices_relative_to' are for label sources, not {self.kind}")
        if self.gold and self.kind != "human_labels":
            raise ValueError(f"gold: true is for human_labels sources, not {self.kind}")
        if self.adapter is not None and self.adapter not in ADAPTERS:
            raise ValueError(f"adapter '{self.adapter}' is unknown (known: {list(ADAPTERS)})")
        return self

    def file_format(self, path: Path) -> Format:
        """Declared format, else inferred from the extension."""
        if self.format is not None:
            return self.format
        suffix = path.name.lower().rsplit(".", 1)[-1]
        if suffix in ("jsonl", "ndjson"):
            return "jsonl"
        if suffix in ("csv", "parquet"):
            return suffix  # type: ignore[return-value]
        raise SourceConfigError(f"source '{self.name}': cannot infer format of {path.name}; declare 'format'")

    def matches(self, relative_path: str) -> bool:
        """Whether a landing-relative path belongs to this source."""
        return fnmatch.fnmatchcase(relative_path, self.glob)


def load_sources(path: str | Path) -> list[SourceSpec]:
    """Read and validate the sources file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SourceConfigError(f"{path}: cannot read sources file: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("sources"), list):
        raise SourceConfigError(f"{path}: expected a mapping with a 'sources' list")
    specs: list[SourceSpec] = []
    for i, item in enumerate(raw["sources"]):
        label = item.get("name", f"#{i}") if isinstance(item, dict) else f"#{i}"
        try:
            specs.append(SourceSpec.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"key '{'.'.join(str(p) for p in err['loc']) or '-'}': {err['msg']}" for err in exc.errors()
            )
            raise SourceConfigError(f"{path}: source '{label}' (sources[{i}]): {problems}") from exc
    pair_sources = {s.name for s in specs if s.kind == "pairs"}
    for s in specs:
        if s.pairs_from is not None and s.pairs_from not in pair_sources:
            raise SourceConfigError(f"{path}: source '{s.name}': pairs_from '{s.pairs_from}' is not a pairs source")
    return specs


def spec_for(specs: list[SourceSpec], kind: Kind, relative_path: str) -> SourceSpec:
    """The single source of ``kind`` that owns a landing file; an error naming the file otherwise."""
    from prefgate.ingest.errors import IngestFileError

    hits = [s for s in specs if s.kind == kind and s.matches(relative_path)]
    if not hits:
        raise IngestFileError(f"{relative_path}: no {kind} source in the sources file declares this file")
    if len(hits) > 1:
        raise IngestFileError(f"{relative_path}: claimed by several sources: {[s.name for s in hits]}")
    return hits[0]
