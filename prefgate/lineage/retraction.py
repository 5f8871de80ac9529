"""Retractions: raters and judge versions whose labels must no longer reach the preference set.

Two places name them, merged: the policy's ``retractions`` section (reviewed, versioned with the policy) and
``<home>/retractions.yaml`` (appended by ``prefgate lineage retract``, so an auditor can act at once). A judge is
named by its full ``judge_id`` or by a prefix ending at a ``:`` boundary (``recorded:gpt-4`` retracts
``recorded:gpt-4:mt-bench-pair`` but not ``recorded:gpt-4o:...``), which retracts a judge version or a whole model.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefgate.home import Home

RETRACTIONS_FILE = "retractions.yaml"
Kind = Literal["rater", "judge"]


class RetractionError(ValueError):
    """The retractions file is unreadable or invalid; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retraction(_Strict):
    """One retracted rater or judge: who, why, and when it was decided."""

    id: str = Field(min_length=1, description="rater_id; or judge_id, or a judge_id prefix ending at a ':'.")
    reason: str = Field(min_length=1, description="Why, in words (shown in the audit).")
    at: dt.datetime = Field(description="When the retraction was decided (UTC).")


class RetractionPolicy(_Strict):
    """Retracted raters and judges. Their labels are dropped at the next materialization."""

    raters: list[Retraction] = Field(default_factory=list)
    judges: list[Retraction] = Field(default_factory=list)

    def merged(self, other: RetractionPolicy) -> RetractionPolicy:
        """Union by id; where both name an id, this policy's entry wins."""
        raters = {r.id: r for r in other.raters} | {r.id: r for r in self.raters}
        judges = {j.id: j for j in other.judges} | {j.id: j for j in self.judges}
        return RetractionPolicy(
            raters=sorted(raters.values(), key=lambda r: r.id), judges=sorted(judges.values(), key=lambda j: j.id)
        )

    def names(self, kind: Kind, ident: str) -> Retraction | None:
        """The entry that retracts ``ident`` (a rater id or a judge id), if any."""
        if kind == "rater":
            return next((r for r in self.raters if r.id == ident), None)
        return next((j for j in self.judges if judge_matches(ident, j.id)), None)


def _naive_utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at


def judge_matches(judge_id: str, pattern: str) -> bool:
    """``pattern`` is the judge id itself or a prefix of it that ends at a ``:`` boundary."""
    return judge_id == pattern or judge_id.startswith(pattern.rstrip(":") + ":")


def judge_match_expr(pattern: str, column: str = "judge_id") -> pl.Expr:
    """Polars form of :func:`judge_matches`."""
    col = pl.col(column)
    return (col == pattern) | col.str.starts_with(pattern.rstrip(":") + ":")


def retractions_path(home: Home) -> Path:
    return home.root / RETRACTIONS_FILE


def read_retractions_file(path: Path) -> RetractionPolicy:
    """Read a retractions YAML (missing file: nothing retracted)."""
    if not path.exists():
        return RetractionPolicy()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RetractionError(f"{path}: cannot read retractions: {exc}") from exc
    try:
        return RetractionPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"key '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise RetractionError(f"{path}: invalid retractions: {problems}") from exc


def load_retractions(home: Home, policy_section: RetractionPolicy | None = None) -> RetractionPolicy:
    """The retractions in force: the policy's section merged with ``<home>/retractions.yaml``."""
    from_file = read_retractions_file(retractions_path(home))
    return (policy_section or RetractionPolicy()).merged(from_file)


def retract(home: Home, kind: Kind, ident: str, reason: str, at: dt.datetime | None = None) -> RetractionPolicy:
    """Append a retraction to ``<home>/retractions.yaml`` (an id already there is kept as it was); returns the
    file's new content."""
    path = retractions_path(home)
    current = read_retractions_file(path)
    entry = Retraction(id=ident, reason=reason, at=at or dt.datetime.now(dt.UTC).replace(microsecond=0))
    if kind == "rater":
        updated = current.merged(RetractionPolicy(raters=[entry]))
    else:
        updated = current.merged(RetractionPolicy(judges=[entry]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    header = "# Retracted raters and judges (prefgate lineage retract). Their labels are dropped at the next run.\n"
    tmp.write_text(header + yaml.safe_dump(updated.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return updated


def apply_retractions(
    human_labels: pl.DataFrame, judge_labels: pl.DataFrame, retractions: RetractionPolicy
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Drop the labels of retracted raters and judges.

    Returns the kept human labels, the kept judge labels, and a summary with one row per retraction
    (``kind, id, reason, at, labels_removed``; an entry that matched nothing shows 0, so a typo is visible).
    """
    summary: list[dict[str, object]] = []
    human_drop = pl.col("rater_id").is_in([r.id for r in retractions.raters])
    if retractions.raters:
        counts = dict(human_labels.filter(human_drop).group_by("rater_id").len().iter_rows())
        summary += [
            {
                "kind": "rater",
                "id": r.id,
                "reason": r.reason,
                "at": _naive_utc(r.at),
                "labels_removed": int(counts.get(r.id, 0)),
            }
            for r in retractions.raters
        ]
    judge_drop = pl.lit(False)
    for j in retractions.judges:
        match = judge_match_expr(j.id)
        n = judge_labels.filter(match).height
        summary.append({"kind": "judge", "id": j.id, "reason": j.reason, "at": _naive_utc(j.at), "labels_removed": n})
        judge_drop = judge_drop | match
    schema: dict[str, pl.DataType] = {
        "kind": pl.String(),
        "id": pl.String(),
        "reason": pl.String(),
        "at": pl.Datetime("us"),
        "labels_removed": pl.Int64(),
    }
    removed = pl.DataFrame(summary, schema=schema)
    return human_labels.filter(~human_drop), judge_labels.filter(~judge_drop), removed
