"""Governance gates on the preference set: judge calibration per slice, rater agreement, contamination,
degenerate rows, PII, length bias and coverage floors.

Every gate compares one observed number with one policy threshold and says, in words, which threshold failed and
by how much, so a blocked training run explains itself in the Dagster UI. Comparisons allow a 1e-9 slack so that
a value exactly on its threshold (0.65 - 0.5 against 0.15) passes despite binary floating point.

Judge slices are gated before the set is built (:func:`judge_slice_gates`): a judge contributes labels on a slice
only if that slice and the judge's overall row both pass. :func:`evaluate_gates` then gates the built set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefgate.judges.pii import detect

EPS = 1e-9
OVERALL = "all"
UNKNOWN = "unknown"


class GatesPolicy(BaseModel):
    """Thresholds of the governance gates on the preference set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_judge_kappa: float = Field(
        0.4, ge=-1.0, le=1.0, description="Cohen's kappa of judge vs human consensus (point estimate) must reach this."
    )
    min_judge_agreement: float = Field(
        0.6, ge=0.0, le=1.0, description="Strict judge-human agreement (see judge_interval) must reach this."
    )
    judge_interval: Literal["lower_bound", "point"] = Field(
        "lower_bound",
        description="Which agreement is compared with min_judge_agreement: the lower bound of its interval "
        "(agree_strict_lo; the default, so a small slice cannot pass on luck) or the point estimate.",
    )
    min_slice_overlap: int = Field(
        20, ge=1, description="Pairs with a human consensus needed before a (judge, slice) can be assessed at all."
    )
    max_position_bias: float = Field(
        0.1, ge=0.0, le=0.5, description="Largest allowed |p_first - 0.5|: how far a judge may lean to the first shown."
    )
    max_length_bias: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Largest allowed excess of the judge's P(picks the longer) over the humans' on the same pairs.",
    )
    max_chosen_longer: float = Field(
        0.75, ge=0.0, le=1.0, description="Largest allowed share of set rows whose chosen response is the longer."
    )
    max_contaminated: int = Field(0, ge=0, description="Set rows whose prompt matches an eval prompt.")
    max_degenerate: int = Field(0, ge=0, description="Set rows that are degenerate (empty, identical or junk sides).")
    max_pii_rows: int = Field(0, ge=0, description="Set rows with PII detected in prompt, chosen or rejected.")
    min_rater_alpha: float = Field(
        0.2, ge=-1.0, le=1.0, description="Krippendorff's alpha of the human raters behind the set must reach this."
    )
    min_rows_per_cell: dict[str, int] = Field(
        default_factory=dict,
        description="Coverage floors keyed 'language/category'. '*' stands for every value seen in the set, one "
        "cell each: 'en/*': 10 needs 10 rows in every category seen, in English; '*/*' every seen pair.",
    )

    @field_validator("min_rows_per_cell")
    @classmethod
    def _cell_keys(cls, value: dict[str, int]) -> dict[str, int]:
        for key, floor in value.items():
            parts = key.split("/")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"min_rows_per_cell key {key!r} must read 'language/category' ('*' allowed)")
            if floor < 0:
                raise ValueError(f"min_rows_per_cell[{key!r}] must be >= 0, got {floor}")
        return value


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _miss(label: str, value: float, op: str, threshold: float, gap: str) -> str:
    """``"kappa 0.21 < 0.40 (short by 0.19"`` (left open for extra detail), with as many decimals (2 to 6) as it
    takes for the value, the threshold and the gap to read differently (0.399 is not shown as 0.40 < 0.40)."""
    for digits in range(2, 7):
        v, t, d = (f"{x:.{digits}f}" for x in (value, threshold, abs(value - threshold)))
        if v != t and float(d) != 0.0:
            break
    return f"{label} {v} {op} {t} ({gap} by {d}"


def _slice_reasons(row: dict[str, Any], policy: GatesPolicy) -> list[str]:
    """Reasons one (judge, slice) row fails, worded for people; empty when it passes on its own numbers."""
    reasons: list[str] = []
    n_pairs = int(row["n_pairs"] or 0)
    if n_pairs < policy.min_slice_overlap:
        reasons.append(f"too few human-overlap pairs: {n_pairs} < {policy.min_slice_overlap}")
    kappa = row["kappa"]
    if _missing(kappa):
        reasons.append("kappa unavailable (no usable overlap with human consensus)")
    elif kappa < policy.min_judge_kappa - EPS:
        reasons.append(_miss("kappa", kappa, "<", policy.min_judge_kappa, "short") + ")")
    lower = policy.judge_interval == "lower_bound"
    agree = row["agree_strict_lo"] if lower else row["agree_strict"]
    what = "agreement lower bound" if lower else "agreement"
    if _missing(agree):
        reasons.append(f"{what} unavailable")
    elif agree < policy.min_judge_agreement - EPS:
        interval = ""
        if not any(_missing(row[c]) for c in ("agree_strict", "agree_strict_lo", "agree_strict_hi")):
            interval = f"; agreement {row['agree_strict']:.2f}, interval {row['agree_strict_lo']:.2f}-"
            interval += f"{row['agree_strict_hi']:.2f}"
        reasons.append(_miss(what, agree, "<", policy.min_judge_agreement, "short") + interval + ")")
    p_first = row["p_first"]
    if not _missing(p_first):
        bias = abs(p_first - 0.5)
        if bias > policy.max_position_bias + EPS:
            label = "position bias |p_first-0.5|"
            reasons.append(_miss(label, bias, ">", policy.max_position_bias, "over") + f"; p_first {p_first:.2f})")
    p_longer, human = row["p_longer"], row["human_p_longer"]
    if not (_missing(p_longer) or _missing(human)):
        excess = p_longer - human
        if excess > policy.max_length_bias + EPS:
            label = "length bias p_longer-human_p_longer"
            detail = f"; judge {p_longer:.2f}, humans {human:.2f})"
            reasons.append(_miss(label, excess, ">", policy.max_length_bias, "over") + detail)
    return reasons


CALIBRATION_COLUMNS: tuple[str, ...] = (
    "judge_id",
    "slice",
    "slice_value",
    "n_pairs",
    "agree_strict",
    "agree_strict_lo",
    "agree_strict_hi",
    "kappa",
    "kappa_lo",
    "p_first",
    "p_longer",
    "human_p_longer",
)


def judge_slice_gates(calibration: pl.DataFrame, policy: GatesPolicy) -> pl.DataFrame:
    """The calibration frame with ``passed`` (bool) and ``reasons`` (list of str) per (judge, slice, value).

    A slice passes when its own numbers pass and its judge's overall row (``slice == slice_value == "all"``)
    passes too; a failing overall row adds ``"judge fails overall: ..."`` to each of that judge's slices. The
    frame has one row per judge and slice value (hundreds at most), so the wording runs row by row.
    """
    missing = [c for c in CALIBRATION_COLUMNS if c not in calibration.columns]
    if missing:
        raise ValueError(f"calibration frame lacks columns: {', '.join(missing)}")
    rows = calibration.to_dicts()
    own = [_slice_reasons(r, policy) for r in rows]
    overall: dict[str, list[str]] = {}
    for r, reasons in zip(rows, own, strict=True):
        if r["slice"] == OVERALL and r["slice_value"] == OVERALL:
            overall[str(r["judge_id"])] = reasons
    all_reasons: list[list[str]] = []
    for r, reasons in zip(rows, own, strict=True):
        out = list(reasons)
        if not (r["slice"] == OVERALL and r["slice_value"] == OVERALL):
            judge_overall = overall.get(str(r["judge_id"]))
            if judge_overall is None:
                out.append("judge has no overall ('all'/'all') calibration row")
            elif judge_overall:
                out.append("judge fails overall: " + "; ".join(judge_overall))
        all_reasons.append(out)
    return calibration.with_columns(
        pl.Series("passed", [not r for r in all_reasons], dtype=pl.Boolean),
        pl.Series("reasons", all_reasons, dtype=pl.List(pl.String)),
    )


@dataclass(frozen=True)
class GateResult:
    """One gate: ``observed`` compared with ``threshold`` by ``comparison`` (``"<="`` or ``">="``)."""

    name: str
    passed: bool
    observed: float | int | None
    threshold: float | int
    comparison: Literal["<=", ">="]
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateInputs:
    """What the set-level gates look at, measured by the curation step.

    ``judge_slices``: :func:`judge_slice_gates` output restricted to the slices that contribute judge labels to
    the set (empty when the set has none). ``contaminated_matches``: one row per contaminated set row (e.g.
    example_id, eval prompt id, similarity), shown in the gate's details. ``chosen_longer_share``: share of set
    rows whose chosen response is longer than the rejected. ``coverage``: columns language, category, rows.
    """

    judge_slices: pl.DataFrame
    rater_alpha: float | None
    contaminated: int
    contaminated_matches: pl.DataFrame
    degenerate: int
    pii_rows: int
    chosen_longer_share: float | None
    coverage: pl.DataFrame


def _at_most(name: str, what: str, observed: int, limit: int, details: dict[str, Any] | None = None) -> GateResult:
    """A count gate: ``observed <= limit``."""
    passed = observed <= limit
    if passed:
        message = f"{what}: {observed} <= {limit} allowed"
    else:
        message = f"{what}: {observed} > {limit} allowed (over by {observed - limit})"
    return GateResult(name, passed, observed, limit, "<=", message, details or {})


def _judge_gate(frame: pl.DataFrame) -> GateResult:
    failing = frame.filter(~pl.col("passed"))
    n_fail, n_all = failing.height, frame.height
    rows = [
        {
            "judge_id": r["judge_id"],
            "slice": f"{r['slice']}={r['slice_value']}",
            "n_pairs": r["n_pairs"],
            "reasons": r["reasons"],
        }
        for r in failing.select("judge_id", "slice", "slice_value", "n_pairs", "reasons").to_dicts()
    ]
    if n_all == 0:
        message = "no judge labels in the set: nothing to gate"
    elif n_fail == 0:
        message = f"all {n_all} judge slices contributing labels pass calibration"
    else:
        listed = "; ".join(f"{r['judge_id']} on {r['slice']}: {', '.join(r['reasons'])}" for r in rows[:5])
        more = f"; and {n_fail - 5} more" if n_fail > 5 else ""
        message = f"{n_fail} of {n_all} judge slices contributing labels fail calibration: {listed}{more}"
    return GateResult("judge_calibration", n_fail == 0, n_fail, 0, "<=", message, {"failing": rows})


def _alpha_gate(alpha: float | None, policy: GatesPolicy, on_undefined: str = "fail") -> GateResult:
    floor = policy.min_rater_alpha
    if alpha is None or math.isnan(alpha):
        verdict = "passes" if on_undefined == "pass" else "fails"
        return GateResult(
            "rater_alpha",
            on_undefined == "pass",
            None,
            floor,
            ">=",
            f"rater alpha unavailable (no item has two panel labels); the gate needs alpha >= {floor:.2f}, and the "
            f"policy (agreement.on_undefined.alpha: {on_undefined}) says it {verdict}",
        )
    if alpha >= floor - EPS:
        return GateResult("rater_alpha", True, alpha, floor, ">=", f"rater alpha {alpha:.3f} >= {floor:.3f}")
    return GateResult("rater_alpha", False, alpha, floor, ">=", _miss("rater alpha", alpha, "<", floor, "short") + ")")


def _length_gate(share: float | None, policy: GatesPolicy) -> GateResult:
    cap = policy.max_chosen_longer
    name = "chosen_longer_share"
    if share is None or math.isnan(share):
        return GateResult(name, False, None, cap, "<=", "P(chosen longer) unavailable (empty set?)")
    if share <= cap + EPS:
        return GateResult(name, True, share, cap, "<=", f"P(chosen longer) {share:.2f} <= {cap:.2f}")
    message = _miss("P(chosen longer)", share, ">", cap, "over") + "): the set rewards length"
    return GateResult(name, False, share, cap, "<=", message)


def coverage_shortfalls(coverage: pl.DataFrame, floors: dict[str, int]) -> pl.DataFrame:
    """Cells below their floor: columns pattern, language, category, rows, floor, short_by.

    A pattern's '*' expands to every value of that column seen in ``coverage``; a concrete value that is absent
    counts 0 rows. Null language or category is treated as ``"unknown"``.
    """
    schema = {
        "pattern": pl.String,
        "language": pl.String,
        "category": pl.String,
        "rows": pl.Int64,
        "floor": pl.Int64,
        "short_by": pl.Int64,
    }
    cells = (
        coverage.select(
            pl.col("language").cast(pl.String).fill_null(UNKNOWN),
            pl.col("category").cast(pl.String).fill_null(UNKNOWN),
            pl.col("rows").cast(pl.Int64),
        )
        .group_by("language", "category")
        .agg(pl.col("rows").sum())
    )
    languages = pl.DataFrame({"language": cells["language"].unique()}, schema={"language": pl.String})
    categories = pl.DataFrame({"category": cells["category"].unique()}, schema={"category": pl.String})
    parts: list[pl.DataFrame] = []
    for pattern, floor in floors.items():
        lang, cat = pattern.split("/")
        lang_frame = languages if lang == "*" else pl.DataFrame({"language": [lang]})
        cat_frame = categories if cat == "*" else pl.DataFrame({"category": [cat]})
        grid = lang_frame.join(cat_frame, how="cross").join(cells, on=["language", "category"], how="left")
        parts.append(
            grid.with_columns(
                pl.col("rows").fill_null(0), pl.lit(pattern).alias("pattern"), pl.lit(floor).alias("floor")
            )
            .with_columns((pl.col("floor") - pl.col("rows")).alias("short_by"))
            .filter(pl.col("short_by") > 0)
            .select(list(schema))
            .cast(schema)  # type: ignore[arg-type]
        )
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).sort("short_by", "language", "category", descending=[True, False, False])


def _coverage_gate(coverage: pl.DataFrame, policy: GatesPolicy) -> GateResult:
    if not policy.min_rows_per_cell:
        return GateResult("coverage", True, 0, 0, "<=", "no coverage floors set")
    short = coverage_shortfalls(coverage, policy.min_rows_per_cell)
    cells = short.to_dicts()
    if not cells:
        message = f"every cell meets its floor ({len(policy.min_rows_per_cell)} floors)"
    else:
        listed = "; ".join(
            f"{c['language']}/{c['category']} {c['rows']} < {c['floor']} (short by {c['short_by']}, floor "
            f"'{c['pattern']}')"
            for c in cells[:5]
        )
        more = f"; and {len(cells) - 5} more" if len(cells) > 5 else ""
        message = f"{len(cells)} coverage cells below their floor: {listed}{more}"
    return GateResult("coverage", not cells, len(cells), 0, "<=", message, {"short_cells": cells})


def evaluate_gates(inputs: GateInputs, policy: GatesPolicy, alpha_on_undefined: str = "fail") -> list[GateResult]:
    """Every set-level gate, in a fixed order; each failed message names its threshold and the shortfall.

    ``alpha_on_undefined`` (``pass`` / ``fail``, the policy's ``agreement.on_undefined.alpha``) decides the rater
    alpha gate when alpha cannot be computed (gold reference labels only)."""
    matches = inputs.contaminated_matches.head(20).to_dicts()
    return [
        _judge_gate(inputs.judge_slices),
        _alpha_gate(inputs.rater_alpha, policy, alpha_on_undefined),
        _at_most(
            "contamination",
            "rows matching eval prompts",
            inputs.contaminated,
            policy.max_contaminated,
            {"matches": matches},
        ),
        _at_most("degenerate", "degenerate rows", inputs.degenerate, policy.max_degenerate),
        _at_most("pii", "rows with PII", inputs.pii_rows, policy.max_pii_rows),
        _length_gate(inputs.chosen_longer_share, policy),
        _coverage_gate(inputs.coverage, policy),
    ]


_PII_CANDIDATE = r"[@\d:]"  # every detected kind needs a digit, an '@' (e-mail) or a ':' (IPv6)


def pii_rows(df: pl.DataFrame, columns: Sequence[str] = ("prompt", "chosen", "rejected")) -> pl.DataFrame:
    """Rows with PII in any of ``columns``: row (position), example_id when present, columns, kinds, n_findings.

    A vectorised pre-filter keeps only texts that could hold a finding; :func:`prefgate.judges.pii.detect` runs
    on those. The matched text is not returned (findings carry kind and span only).
    """
    id_col = ["example_id"] if "example_id" in df.columns else []
    frame = df.select(*id_col, *columns).with_row_index("row")
    found: dict[int, tuple[list[str], set[str], int]] = {}
    for column in columns:
        candidates = frame.filter(pl.col(column).str.contains(_PII_CANDIDATE).fill_null(False))
        for row, text in candidates.select("row", column).iter_rows():
            findings = detect(text)
            if findings:
                cols, kinds, n = found.setdefault(row, ([], set(), 0))
                cols.append(column)
                kinds.update(f.kind for f in findings)
                found[row] = (cols, kinds, n + len(findings))
    rows = sorted(found)
    out = pl.DataFrame(
        {
            "row": pl.Series(rows, dtype=pl.UInt32),
            "columns": pl.Series([found[r][0] for r in rows], dtype=pl.List(pl.String)),
            "kinds": pl.Series([sorted(found[r][1]) for r in rows], dtype=pl.List(pl.String)),
            "n_findings": pl.Series([found[r][2] for r in rows], dtype=pl.Int64),
        }
    )
    if id_col:
        out = out.join(frame.select("row", "example_id"), on="row", how="left").select(
            "row", "example_id", "columns", "kinds", "n_findings"
        )
    return out


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if not math.isnan(value) else "n/a"
    return str(value)


def gate_report_markdown(results: Sequence[GateResult]) -> str:
    """A Markdown table of the gates (for asset metadata), failed gates' messages first in a list."""
    failed = [r for r in results if not r.passed]
    head = f"**{len(failed)} of {len(results)} gates failed**" if failed else f"**all {len(results)} gates passed**"
    lines = [head, ""]
    lines += [f"- `{r.name}`: {r.message}" for r in failed]
    if failed:
        lines.append("")
    lines += ["| gate | result | observed | threshold | message |", "|---|---|---|---|---|"]
    for r in results:
        message = r.message.replace("|", "\\|")
        verdict = "pass" if r.passed else "**FAIL**"
        lines.append(
            f"| `{r.name}` | {verdict} | {_fmt(r.observed)} | {r.comparison} {_fmt(r.threshold)} | {message} |"
        )
    return "\n".join(lines) + "\n"
