"""Audit queries over ``lineage.versions`` / ``lineage.rows``: what stands behind a model, what a rater or judge
touched, the chain of one example, and what changed between two versions. Every function returns a JSON-ready
dict (documented by ``prefgate/lineage/schemas/*.json``) and raises :class:`UnknownIdError` for an id it cannot
find."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from prefgate.lineage.retraction import judge_matches
from prefgate.lineage.store import SCHEMA, has_lineage

V = f"{SCHEMA}.versions"
R = f"{SCHEMA}.rows"
MIN_PREFIX = 4

# Reasons a diff gives for a changed row, in the order they are listed.
REASONS = (
    "pair removed upstream",
    "rater excluded/retracted",
    "judge gated out / retracted",
    "labels removed",
    "new labels",
    "policy change",
    "consensus re-estimated",
)

VERSION_FIELDS = (
    "version_id, seq, kind, name, created_at, run_id, code_version, policy_hash, constitution_hashes, upstream, "
    "gates, parent_version, manifest, retained, n_examples, n_labels"
)


class UnknownIdError(LookupError):
    """No version, model, rater, judge or example by that id (the message says which, in one line)."""


def _require_lineage(con: duckdb.DuckDBPyConnection) -> None:
    if not has_lineage(con):
        raise UnknownIdError("no lineage recorded in this warehouse yet (materialize preference_set first)")


def _info(row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip([f.strip() for f in VERSION_FIELDS.split(",")], row, strict=True))
    return {
        "version_id": d["version_id"],
        "kind": d["kind"],
        "name": d["name"],
        "created_at": d["created_at"].isoformat(timespec="seconds"),
        "run_id": d["run_id"],
        "code_version": d["code_version"],
        "policy_hash": d["policy_hash"],
        "constitution_hashes": json.loads(d["constitution_hashes"] or "[]"),
        "parent_version": d["parent_version"],
        "retained": bool(d["retained"]),
        "n_examples": d["n_examples"],
        "n_labels": d["n_labels"],
    }


def _fetch(con: duckdb.DuckDBPyConnection, where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return con.execute(f"SELECT {VERSION_FIELDS} FROM {V} WHERE {where} ORDER BY seq DESC", list(params)).fetchall()


def resolve_version(con: duckdb.DuckDBPyConnection, ref: str, kind: str | None = None) -> tuple[Any, ...]:
    """A version row by id, unique id prefix, model name (its newest version) or ``latest`` (newest preference
    set; with ``kind='model'`` the newest model)."""
    _require_lineage(con)
    kind_sql, kind_params = ("kind = ?", [kind]) if kind else ("TRUE", [])
    if ref == "latest":
        rows = _fetch(con, "kind = ?", [kind or "preference_set"])
    else:
        rows = _fetch(con, f"version_id = ? AND {kind_sql}", [ref, *kind_params])
        if not rows:
            rows = _fetch(con, f"name = ? AND {kind_sql}", [ref, *kind_params])[:1]
        if not rows and len(ref) >= MIN_PREFIX:
            rows = _fetch(con, f"starts_with(version_id, ?) AND {kind_sql}", [ref, *kind_params])
            if len(rows) > 1:
                raise UnknownIdError(f"version prefix {ref!r} is ambiguous ({len(rows)} versions match)")
    if not rows:
        what = {"model": "model or model version", "preference_set": "preference-set version"}.get(
            kind or "", "version"
        )
        raise UnknownIdError(f"unknown {what}: {ref!r} (see `prefgate lineage versions`)")
    return rows[0]


def list_versions(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Every recorded version, newest first."""
    _require_lineage(con)
    return {"versions": [_info(r) for r in _fetch(con, "TRUE", [])]}


def _gates(con: duckdb.DuckDBPyConnection, version: dict[str, Any], raw_gates: str | None) -> dict[str, Any]:
    own = json.loads(raw_gates or "{}")
    if version["kind"] != "model":
        return dict(own)
    parent = con.execute(f"SELECT gates FROM {V} WHERE version_id = ?", [version["parent_version"]]).fetchone()
    return {**json.loads((parent[0] if parent else None) or "{}"), **own}


def _counts(con: duckdb.DuckDBPyConnection, version_id: str, column: str, origin: str | None) -> list[dict[str, Any]]:
    where = "version_id = ?" + (" AND label_origin = ?" if origin else "")
    rows = con.execute(
        f"""SELECT {column} AS key, count(DISTINCT example_id) AS examples, count(DISTINCT label_id) AS labels
            FROM {R} WHERE {where} GROUP BY 1 ORDER BY examples DESC, labels DESC, key NULLS LAST""",
        [version_id, origin] if origin else [version_id],
    ).fetchall()
    return [{"key": k, "examples": int(e), "labels": int(n)} for k, e, n in rows]


def model_lineage(con: duckdb.DuckDBPyConnection, name_or_version: str) -> dict[str, Any]:
    """What stands behind a model (or a preference-set version): counts of examples and labels by label origin,
    rater, judge, constitution version, prompt source, language, category and split, and the gate results it
    was trained under."""
    row = resolve_version(con, name_or_version)
    version = _info(row)
    ps_id = version["parent_version"] if version["kind"] == "model" else version["version_id"]
    ps = _info(resolve_version(con, ps_id, "preference_set"))
    totals = con.execute(
        f"""SELECT count(DISTINCT example_id), count(DISTINCT label_id), count(DISTINCT rater_id),
                   count(DISTINCT judge_id) FROM {R} WHERE version_id = ?""",
        [ps_id],
    ).fetchone()
    assert totals is not None
    dims = {
        "label_origin": ("label_origin", None),
        "rater": ("rater_id", "human"),
        "judge": ("judge_id", "judge"),
        "constitution": ("constitution_hash", "judge"),
        "prompt_source": ("prompt_source", None),
        "language": ("language", None),
        "category": ("category", None),
        "split": ("split", None),
    }
    return {
        "version": version,
        "preference_set": ps,
        "totals": {
            "examples": int(totals[0]),
            "labels": int(totals[1]),
            "raters": int(totals[2]),
            "judges": int(totals[3]),
        },
        "counts": {name: _counts(con, ps_id, col, origin) for name, (col, origin) in dims.items()},
        "gates": _gates(con, version, row[10]),
    }


def _impact(con: duckdb.DuckDBPyConnection, kind: str, ident: str, where: str, params: list[Any]) -> dict[str, Any]:
    _require_lineage(con)
    column = "rater_id" if kind == "rater" else "judge_id"
    hits = con.execute(
        f"""SELECT r.version_id, count(DISTINCT r.example_id), count(DISTINCT r.label_id),
                   list(DISTINCT r.{column} ORDER BY r.{column})
            FROM {R} r JOIN {V} v USING (version_id) WHERE {where} GROUP BY r.version_id, v.seq ORDER BY v.seq DESC""",
        params,
    ).fetchall()
    if not hits:
        raise UnknownIdError(f"unknown {kind}: {ident!r} (no labels of it in any retained preference-set version)")
    by_version = {vid: (int(e), int(n)) for vid, e, n, _ in hits}
    matched = sorted({m for *_, ms in hits for m in ms})
    infos = {r[0]: _info(r) for r in _fetch(con, "kind = 'preference_set'", [])}
    latest = next(iter(infos), None)
    sets = [{**infos[vid], "examples": e, "labels": n} for vid, (e, n) in by_version.items()]
    models = [
        {**_info(r), "examples": by_version[r[11]][0], "labels": by_version[r[11]][1]}
        for r in _fetch(con, "kind = 'model'", [])
        if r[11] in by_version
    ]
    return {
        "kind": kind,
        "id": ident,
        "matched_ids": matched,
        "in_latest": latest in by_version,
        "preference_sets": sets,
        "models": models,
        "totals": {"preference_sets": len(sets), "models": len(models)},
    }


def rater_impact(con: duckdb.DuckDBPyConnection, rater_id: str) -> dict[str, Any]:
    """Every retained preference-set version and every model that used this rater's labels, with row counts: the
    impact list of a retraction (the models are what must be retrained)."""
    return _impact(con, "rater", rater_id, "r.rater_id = ?", [rater_id])


def judge_impact(con: duckdb.DuckDBPyConnection, judge_id: str) -> dict[str, Any]:
    """As :func:`rater_impact`, for a judge id or a judge-id prefix ending at a ``:`` (a judge version)."""
    pattern = judge_id.rstrip(":")
    where = "(r.judge_id = ? OR starts_with(r.judge_id, ? || ':'))"
    return _impact(con, "judge", judge_id, where, [pattern, pattern])


def example_chain(con: duckdb.DuckDBPyConnection, example_id: str, version: str | None = None) -> dict[str, Any]:
    """One training row's chain: example → pair (landing file and line, prompt source) → each label (human or
    judge, with rater / judge, constitution hash and its landing file and line); plus every version holding it
    and the models trained on those."""
    _require_lineage(con)
    holding = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT r.version_id, v.seq FROM {R} r JOIN {V} v USING (version_id) "
            "WHERE r.example_id = ? ORDER BY v.seq DESC",
            [example_id],
        ).fetchall()
    ]
    if not holding:
        raise UnknownIdError(f"unknown example: {example_id!r} (not in any retained preference-set version)")
    vid = holding[0]
    if version is not None:
        vid = resolve_version(con, version, "preference_set")[0]
        if vid not in holding:
            raise UnknownIdError(f"example {example_id!r} is not in preference-set version {vid}")
    rows = pl.DataFrame(
        con.execute(f"SELECT * FROM {R} WHERE version_id = ? AND example_id = ?", [vid, example_id]).arrow()
    ).sort("label_origin", "label_id", nulls_last=True)
    first = rows.row(0, named=True)
    pair_keys = ("pair_id", "prompt_id", "prompt_source", "chosen_side", "split", "language", "category")
    label_keys = ("label_id", "label_origin", "rater_id", "judge_id", "constitution_hash", "source_file")
    labels = [
        {**{k: r[k] for k in label_keys}, "source_line": r["source_line"]}
        for r in rows.filter(pl.col("label_id").is_not_null()).iter_rows(named=True)
    ]
    models = [{"version_id": r[0], "name": r[3], "parent_version": r[11]} for r in _fetch(con, "kind = 'model'", [])]
    return {
        "example_id": example_id,
        "version_id": vid,
        "policy_hash": _info(resolve_version(con, vid))["policy_hash"],
        "pair": {
            **{k: first[k] for k in pair_keys},
            "source_file": first["pair_source_file"],
            "source_line": first["pair_source_line"],
        },
        "labels": labels,
        "versions": holding,
        "models": [m for m in models if m["parent_version"] in holding],
    }


# ----------------------------------------------------------------------------------------------------- diff


def _version_rows(con: duckdb.DuckDBPyConnection, vid: str) -> pl.DataFrame:
    cols = "pair_id, example_id, chosen_side, label_origin, label_id, rater_id, judge_id"
    return pl.DataFrame(con.execute(f"SELECT {cols} FROM {R} WHERE version_id = ?", [vid]).arrow())


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [SCHEMA, name]
    ).fetchone()
    return bool(row and row[0])


Labeller = tuple[str | None, str | None]  # (rater_id, judge_id) of one label


def _upstream_labels(con: duckdb.DuckDBPyConnection, vid: str) -> dict[str, dict[str, Labeller]] | None:
    """The labels upstream of a version, per pair (label id -> labeller); None when the version recorded none."""
    if not _table_exists(con, "labels"):
        return None
    rows = con.execute(
        f"SELECT pair_id, label_id, rater_id, judge_id FROM {SCHEMA}.labels WHERE version_id = ?", [vid]
    ).fetchall()
    if not rows:
        return None
    out: dict[str, dict[str, Labeller]] = {}
    for pair_id, label_id, rater_id, judge_id in rows:
        out.setdefault(pair_id, {})[label_id] = (rater_id, judge_id)
    return out


def _blamed(manifest: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Raters a version's manifest retracts or its consensus excluded, and the judge ids / prefixes it retracts."""
    retracted = manifest.get("retractions") or {}
    raters = {r["id"] for r in retracted.get("raters", [])} | set(manifest.get("excluded_raters") or [])
    return raters, [j["id"] for j in retracted.get("judges", [])]


def _as_set_version(con: duckdb.DuckDBPyConnection, ref: str) -> tuple[Any, ...]:
    row = resolve_version(con, ref)
    return resolve_version(con, row[11], "preference_set") if row[2] == "model" else row


def diff(con: duckdb.DuckDBPyConnection, v1: str, v2: str) -> dict[str, Any]:
    """Rows added, removed and flipped (chosen side changed) from ``v1`` to ``v2``, keyed by pair, each with the
    reasons its provenance gives (:data:`REASONS`). A rater is *blamed* in a version when its manifest retracts
    it or lists it in ``excluded_raters``; a judge when its manifest retracts it (or a prefix of it).

    * ``pair removed upstream``: a removed pair absent from v2's upstream pairs (when v2 recorded them);
    * ``rater excluded/retracted`` / ``judge gated out / retracted``: a label the row lost came from a rater /
      judge blamed in v2 (a judge contributing no label at all to v2 counts as gated out); a label it gained, or
      a label of a removed pair, came from one blamed in v1 only (reinstated); or a label of an added pair that
      its row does not use came from one blamed in v2 only (a retracted / excluded dissent is gone);
    * ``labels removed``: a label the row lost left v2's upstream, or (a kept row) came from a rater / judge not
      blamed in v2; for a version recorded without its upstream labels, a lost label of a rater absent from v2;
    * ``new labels``: the pair has labels in v2 that v1 did not have (upstream, when v1 recorded its labels);
    * ``policy change``: the two versions' policy hashes differ;
    * ``consensus re-estimated``: none of the above (same labels and policy, e.g. Dawid-Skene re-weighting).
    """
    r1, r2 = _as_set_version(con, v1), _as_set_version(con, v2)
    a, b = _info(r1), _info(r2)
    for info in (a, b):
        if not info["retained"]:
            raise UnknownIdError(f"version {info['version_id']} has no rows (pruned by retention)")
    rows1, rows2 = _version_rows(con, a["version_id"]), _version_rows(con, b["version_id"])
    raters1, judges_out1 = _blamed(json.loads(r1[12] or "{}"))
    raters2, judges_out2 = _blamed(json.loads(r2[12] or "{}"))
    present2 = set(rows2["rater_id"].drop_nulls().to_list())
    judges2 = set(rows2["judge_id"].drop_nulls().to_list())
    upstream2 = {
        r[0]
        for r in con.execute(f"SELECT pair_id FROM {SCHEMA}.pairs WHERE version_id = ?", [b["version_id"]]).fetchall()
    }
    labels1, labels2 = _upstream_labels(con, a["version_id"]), _upstream_labels(con, b["version_id"])
    policy_changed = a["policy_hash"] != b["policy_hash"]

    def judge_out(judge: str, prefixes: list[str]) -> bool:
        return any(judge_matches(judge, p) for p in prefixes)

    def blame_changed(rater: str | None, judge: str | None, *, either: bool) -> bool:
        """Blamed in v1 and not in v2 (reinstated); with ``either``, also the other way round."""
        if rater is not None:
            before, after = rater in raters1, rater in raters2
        elif judge is not None:
            before, after = judge_out(judge, judges_out1), judge_out(judge, judges_out2)
        else:
            return False
        return (before and not after) or (either and after and not before)

    def per_pair(rows: pl.DataFrame) -> dict[str, tuple[str, str, dict[str, Labeller]]]:
        out: dict[str, tuple[str, str, dict[str, Labeller]]] = {}
        for r in rows.iter_rows(named=True):
            entry = out.setdefault(r["pair_id"], (r["example_id"], r["chosen_side"], {}))
            if r["label_id"] is not None:
                entry[2][r["label_id"]] = (r["rater_id"], r["judge_id"])
        return out

    p1, p2 = per_pair(rows1), per_pair(rows2)

    def reasons(pair_id: str, kind: str) -> list[str]:
        l1 = p1[pair_id][2] if pair_id in p1 else {}
        l2 = p2[pair_id][2] if pair_id in p2 else {}
        u1 = {**(labels1 or {}).get(pair_id, {}), **l1}  # every label v1 knew of for the pair
        u2 = {**(labels2 or {}).get(pair_id, {}), **l2}
        gone_upstream = kind != "removed" or pair_id in upstream2
        found: set[str] = set()
        if kind == "removed" and upstream2 and pair_id not in upstream2:
            found.add("pair removed upstream")
        for label_id, (rater, judge) in l1.items():
            if label_id in l2:
                continue
            if labels2 is not None and gone_upstream and label_id not in labels2.get(pair_id, {}):
                found.add("labels removed")
            elif rater is not None and rater in raters2:
                found.add("rater excluded/retracted")
            elif judge is not None and (judge_out(judge, judges_out2) or judge not in judges2):
                found.add("judge gated out / retracted")
            elif kind != "removed" or (labels2 is None and rater is not None and rater not in present2):
                found.add("labels removed")  # without v2's upstream labels: a rater absent from v2 lost them
        for label_id, (rater, judge) in {**u1, **u2}.items():
            if label_id in l1 and label_id not in l2:
                continue  # lost: above
            if label_id in l2 and label_id not in u1:
                continue  # new: below
            # gained (a reinstated vote back) or silent in both rows: an added row whose dissent v2 retracts /
            # excludes, a removed row whose dissent v2 reinstates
            if blame_changed(rater, judge, either=kind == "added" and label_id not in l2):
                found.add("rater excluded/retracted" if rater is not None else "judge gated out / retracted")
        if set(l2 if labels1 is None else u2) - set(u1):  # without v1's upstream, only contributing labels
            found.add("new labels")
        if policy_changed:
            found.add("policy change")
        return [r for r in REASONS if r in found] or ["consensus re-estimated"]

    added = [
        {"pair_id": p, "example_id": p2[p][0], "chosen_side": p2[p][1], "reasons": reasons(p, "added")}
        for p in sorted(set(p2) - set(p1))
    ]
    removed = [
        {"pair_id": p, "example_id": p1[p][0], "chosen_side": p1[p][1], "reasons": reasons(p, "removed")}
        for p in sorted(set(p1) - set(p2))
    ]
    flipped = [
        {
            "pair_id": p,
            "example_id_before": p1[p][0],
            "example_id_after": p2[p][0],
            "chosen_side_before": p1[p][1],
            "chosen_side_after": p2[p][1],
            "reasons": reasons(p, "flipped"),
        }
        for p in sorted(set(p1) & set(p2))
        if p1[p][1] != p2[p][1]
    ]
    by_reason: dict[str, int] = {}
    for item in (*added, *removed, *flipped):
        for reason in item["reasons"]:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    return {
        "from": a,
        "to": b,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "flipped": len(flipped),
            "unchanged": len(set(p1) & set(p2)) - len(flipped),
            "by_reason": {r: by_reason[r] for r in REASONS if r in by_reason},
        },
        "added": added,
        "removed": removed,
        "flipped": flipped,
    }
