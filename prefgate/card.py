"""The dataset card: a Markdown README for an exported preference set.

It says what is in the set (counts by origin, split, source, language and category), under which gates it passed,
where its rows come from and under which licenses, and pins the lineage manifest: the content hash of every
upstream table version, the policy hash and the run. A reader can tell from the card alone whether two exports
were built from the same inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl


def _table(df: pl.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in df.iter_rows()]
    return "\n".join([head, rule, *rows])


def _counts(df: pl.DataFrame, by: str) -> pl.DataFrame:
    return (
        df.with_columns(pl.col(by).cast(pl.String).fill_null("unknown"))
        .group_by(by, "split")
        .len()
        .pivot(on="split", index=by, values="len")
        .fill_null(0)
        .sort(by)
    )


def dataset_card(
    df: pl.DataFrame,
    manifest: Mapping[str, Any],
    gates: Sequence[Mapping[str, Any]],
    licenses: Mapping[str, Mapping[str, str]],
    *,
    name: str = "prefgate preference set",
) -> str:
    """Markdown card for ``df`` (the preference set) with its manifest, gate results and source licenses."""
    sources = sorted(df["pair_source"].unique().to_list()) if df.height else []
    lic_rows = pl.DataFrame(
        {
            "source": sources,
            "license": [licenses.get(s, {}).get("license", "UNKNOWN - check before use") for s in sources],
            "attribution": [licenses.get(s, {}).get("attribution", "") for s in sources],
        },
        schema={"source": pl.String, "license": pl.String, "attribution": pl.String},
    )
    gate_rows = pl.DataFrame(
        {
            "gate": [str(g.get("name", "")) for g in gates],
            "passed": ["yes" if g.get("passed") else "NO" for g in gates],
            "detail": [str(g.get("message", "")) for g in gates],
        },
        schema={"gate": pl.String, "passed": pl.String, "detail": pl.String},
    )
    tags = sorted({licenses.get(s, {}).get("license", "unknown") for s in sources})
    front = ["---", f"pretty_name: {name}", "license: other" if len(tags) != 1 else f"license: {tags[0].lower()}"]
    front += ["task_categories: [text-generation]", "tags: [preference, dpo, reward-modeling, prefgate]", "---"]
    parts = [
        *front,
        f"# {name}",
        "",
        "Pairwise preference data in TRL's `prompt` / `chosen` / `rejected` columns, with a `weight` per row and "
        "full per-row provenance (`example_id` -> label ids -> raters / judges -> landing file and line). "
        "Built by prefgate; every upstream table version is pinned in the manifest below.",
        "",
        "## Contents",
        "",
        f"Rows: **{df.height}** ({', '.join(f'{k}: {v}' for k, v in manifest.get('splits', {}).items())}).",
        "",
        "### By label origin",
        _table(_counts(df, "label_origin")) if df.height else "(empty)",
        "",
        "### By source",
        _table(_counts(df, "pair_source")) if df.height else "(empty)",
        "",
        "### By language and category",
        _table(
            df.with_columns(pl.col("language", "category").fill_null("unknown"))
            .group_by("language", "category")
            .len()
            .sort("len", descending=True)
            .head(30)
        )
        if df.height
        else "(empty)",
        "",
        "## Gates this version passed",
        _table(gate_rows) if gates else "(no gate results recorded)",
        "",
        "## Licenses and attribution",
        "Rows keep their source's license; a use of the set must honour every license listed here.",
        "",
        _table(lic_rows) if sources else "(no sources)",
        "",
        "## Lineage manifest",
        "Content hashes (sha256 of the rows, first 16 hex) of each upstream table version this set was built from.",
        "",
        "```json",
        json.dumps(dict(manifest), indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(parts)
