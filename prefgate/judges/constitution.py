"""The judge constitution: a versioned YAML list of principles that every AI judge is prompted with.

Each principle has an ``id``, the ``rubric`` text the judge reads, the pair ``categories`` it applies to (``"all"``
or a list) and optionally a programmatic ``check`` (see :mod:`prefgate.judges.programmatic`) with that check's
parameters. The file is validated on load (unknown or mistyped keys are errors naming the file and the key) and
hashed by validated content, so comments and key order do not change :attr:`Constitution.constitution_hash`, but
any change of wording does -- and the hash is part of every judge id.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefgate.home import PROJECT_ROOT
from prefgate.judges.base import stable_hash

DEFAULT_CONSTITUTION = PROJECT_ROOT / "config" / "constitution.yaml"

CheckName = Literal["refusal", "length_limit", "banned_phrases"]


class ConstitutionError(ValueError):
    """The constitution file is missing, unreadable or invalid; the message names the file and the key."""


class Principle(BaseModel):
    """One principle: rubric text, where it applies, and the programmatic check that enforces it (if any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Stable snake_case id.")
    rubric: str = Field(min_length=1, description="What the judge is told, in one paragraph.")
    categories: Literal["all"] | tuple[str, ...] = Field("all", description="Pair categories it applies to, or 'all'.")
    check: CheckName | None = Field(None, description="Programmatic check enforcing it without a model.")
    banned_phrases: tuple[str, ...] = Field((), description="check=banned_phrases: case-insensitive phrases.")
    max_chars: int | None = Field(None, ge=1, description="check=length_limit: longest acceptable response.")

    @field_validator("rubric")
    @classmethod
    def _squash(cls, value: str) -> str:
        text = " ".join(value.split())
        if not text:
            raise ValueError("rubric is empty")
        return text

    @field_validator("categories")
    @classmethod
    def _non_empty(cls, value: Literal["all"] | tuple[str, ...]) -> Literal["all"] | tuple[str, ...]:
        if value != "all" and (not value or any(not c.strip() for c in value)):
            raise ValueError("give 'all' or a non-empty list of category names")
        return value

    @model_validator(mode="after")
    def _check_params(self) -> Principle:
        if self.check == "banned_phrases" and not self.banned_phrases:
            raise ValueError("check 'banned_phrases' needs a non-empty banned_phrases list")
        if self.check == "length_limit" and self.max_chars is None:
            raise ValueError("check 'length_limit' needs max_chars")
        if self.banned_phrases and self.check != "banned_phrases":
            raise ValueError("banned_phrases is only read by check 'banned_phrases'")
        if self.max_chars is not None and self.check != "length_limit":
            raise ValueError("max_chars is only read by check 'length_limit'")
        return self

    def applies_to(self, category: str | None) -> bool:
        """True for 'all' principles, and for listed categories (case-insensitive); None matches only 'all'."""
        if self.categories == "all":
            return True
        return category is not None and category.strip().lower() in {c.strip().lower() for c in self.categories}

    @property
    def title(self) -> str:
        """Human-readable name: ``no_sycophancy`` -> ``No sycophancy``."""
        return self.id.replace("_", " ").capitalize()


class Constitution(BaseModel):
    """A validated, versioned set of principles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Human-readable version, e.g. '2026-11-27.1'.")
    name: str = Field("constitution", min_length=1)
    preamble: str = Field("", description="Framing shown before the principles.")
    principles: tuple[Principle, ...] = Field(min_length=1)

    @field_validator("preamble")
    @classmethod
    def _squash(cls, value: str) -> str:
        return " ".join(value.split())

    @model_validator(mode="after")
    def _unique_ids(self) -> Constitution:
        ids = [p.id for p in self.principles]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"principles: id {dupes[0]!r} appears twice")
        return self

    @property
    def constitution_hash(self) -> str:
        """16-hex hash of the validated content (not the file bytes)."""
        return stable_hash(self.model_dump(mode="json"))

    def principles_for(self, category: str | None) -> list[Principle]:
        """The principles that apply to a pair of this category, in file order."""
        return [p for p in self.principles if p.applies_to(category)]

    def checks_for(self, category: str | None) -> list[Principle]:
        """The applicable principles that carry a programmatic check, in file order."""
        return [p for p in self.principles_for(category) if p.check is not None]

    def render(self, category: str | None) -> str:
        """The rubric for one category as a numbered list (``1. Helpfulness: ...``)."""
        return "\n".join(f"{i}. {p.title}: {p.rubric}" for i, p in enumerate(self.principles_for(category), 1))


def _key(loc: tuple[int | str, ...]) -> str:
    # pydantic puts the literal/tuple branch name into the location ("categories.literal['all']"): drop it.
    parts = [str(p) for p in loc if not re.match(r"^(literal\[|tuple\[|function-)", str(p))]
    return ".".join(parts)


def parse_constitution(raw: object, source: str = "<constitution>") -> Constitution:
    """Validate an already-parsed mapping; errors name ``source`` and the offending key."""
    if not isinstance(raw, dict):
        raise ConstitutionError(f"{source}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return Constitution.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        locs = [_key(tuple(err["loc"])) for err in errors]
        seen: list[str] = []
        for err in errors:
            here = _key(tuple(err["loc"]))
            # a failing item also makes pydantic call the list too short: report the item only
            if err["type"] == "too_short" and any(other.startswith(f"{here}.") for other in locs):
                continue
            item = f"key '{_key(tuple(err['loc']))}': {err['msg']}"
            if item not in seen:
                seen.append(item)
        raise ConstitutionError(f"{source}: invalid constitution: {'; '.join(seen)}") from exc


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Read and validate a constitution YAML (default: the shipped ``config/constitution.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONSTITUTION
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConstitutionError(f"{path}: cannot read constitution file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConstitutionError(f"{path}: not valid YAML: {exc}") from exc
    return parse_constitution(raw, str(path))
