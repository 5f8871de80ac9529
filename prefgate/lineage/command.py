"""``prefgate lineage``: audit the recorded versions of the preference set and the models trained on them.

    prefgate [--home H] lineage versions                       every recorded version, newest first
    prefgate [--home H] lineage model <name|version|latest>    what stands behind a model (or a set version)
    prefgate [--home H] lineage rater <rater_id>               versions and models that used a rater's labels
    prefgate [--home H] lineage judge <judge_id|prefix>        the same for a judge (or a judge version prefix)
    prefgate [--home H] lineage example <example_id> [--version V]   one row back to its landing files and lines
    prefgate [--home H] lineage diff <v1> <v2>                 rows added / removed / flipped, with reasons
    prefgate [--home H] lineage retract rater|judge <id> --reason TEXT [--force]

Every subcommand prints text for people, or one JSON object with ``--json`` (documented by the JSON Schemas in
``prefgate/lineage/schemas/``). Versions are named by id, unique id prefix, model name or ``latest``.
The warehouse is opened read-only. ``retract`` appends to ``<home>/retractions.yaml``: the next
materialization of the preference set drops those labels.

Exit status: 0 on success; 1 when the warehouse cannot be read (missing, or locked by a writer); 2 on an
unknown id (one line on stderr) or a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import duckdb

from prefgate.home import Home
from prefgate.lineage import queries
from prefgate.lineage.queries import UnknownIdError
from prefgate.lineage.retraction import (
    Kind,
    RetractionError,
    load_retractions,
    retract,
    retractions_path,
)
from prefgate.lineage.store import has_lineage

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class CommandError(Exception):
    """The command cannot run; ``code`` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the lineage subcommands to ``parser`` (the ``lineage`` subparser of the ``prefgate`` command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one JSON object on stdout (see lineage/schemas)")
    sub = parser.add_subparsers(dest="lineage_command", required=True, metavar="SUBCOMMAND")
    sub.add_parser("versions", parents=[common], help="list recorded versions, newest first")
    p = sub.add_parser("model", parents=[common], help="counts and gates behind a model or set version")
    p.add_argument("ref", help="model name, version id (or unique prefix), or 'latest'")
    p = sub.add_parser("rater", parents=[common], help="versions and models that used a rater's labels")
    p.add_argument("rater_id")
    p = sub.add_parser("judge", parents=[common], help="versions and models that used a judge's labels")
    p.add_argument("judge_id", help="a judge_id, or a prefix of one ending at ':' (a judge version)")
    p = sub.add_parser("example", parents=[common], help="one example's chain back to landing files and lines")
    p.add_argument("example_id")
    p.add_argument("--version", help="a preference-set version (default: the newest holding the example)")
    p = sub.add_parser("diff", parents=[common], help="rows added, removed and flipped between two versions")
    p.add_argument("v1")
    p.add_argument("v2")
    p = sub.add_parser("retract", parents=[common], help="retract a rater or judge (appends to retractions.yaml)")
    p.add_argument("kind", choices=["rater", "judge"])
    p.add_argument("id")
    p.add_argument("--reason", required=True, help="why, in words (shown in the audit)")
    p.add_argument("--force", action="store_true", help="retract an id no recorded version or label table holds")


# --------------------------------------------------------------------------------------------------- helpers


def _connect(home: Home) -> duckdb.DuckDBPyConnection:
    if not home.warehouse.exists():
        raise CommandError(f"no warehouse at {home.warehouse} (run `prefgate run` first)", 1)
    try:
        return duckdb.connect(str(home.warehouse), read_only=True)
    except duckdb.Error as exc:
        raise CommandError(f"cannot open {home.warehouse} read-only (a writer may hold it): {exc}", 1) from exc


def _retraction_of(home: Home, kind: Kind, ident: str) -> dict[str, Any] | None:
    entry = load_retractions(home).names(kind, ident)
    return None if entry is None else entry.model_dump(mode="json")


def _known_in_labels(con: duckdb.DuckDBPyConnection, kind: Kind, ident: str) -> bool:
    """Whether the warehouse's label tables hold this rater / judge (for ids not yet in a recorded version)."""
    table, col = ("human_labels", "rater_id") if kind == "rater" else ("judge_labels", "judge_id")
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'prefgate' AND table_name = ?", [table]
    ).fetchone()
    if not exists or not exists[0]:
        return False
    pattern = ident.rstrip(":")
    where = f"{col} = ?" if kind == "rater" else f"({col} = ? OR starts_with({col}, ? || ':'))"
    params = [ident] if kind == "rater" else [pattern, pattern]
    row = con.execute(f"SELECT count(*) FROM prefgate.{table} WHERE {where}", params).fetchone()
    return bool(row and row[0])


# ------------------------------------------------------------------------------------------------ text output


def _ver(v: dict[str, Any]) -> str:
    kept = "" if v["retained"] else "  (rows pruned)"
    parent = f"  on {v['parent_version']}" if v["parent_version"] else ""
    size = f"  {v['n_examples']} examples, {v['n_labels']} labels" if v["n_examples"] is not None else ""
    return f"{v['version_id']}  {v['kind']:<14} {v['name']:<20} {v['created_at']}{size}{parent}{kept}"


def _text_versions(r: dict[str, Any], out: TextIO) -> None:
    if not r["versions"]:
        print("no versions recorded", file=out)
    for v in r["versions"]:
        print(_ver(v), file=out)


def _text_model(r: dict[str, Any], out: TextIO) -> None:
    v, ps, t = r["version"], r["preference_set"], r["totals"]
    print(_ver(v), file=out)
    if v["kind"] == "model":
        print(f"trained on {_ver(ps)}", file=out)
    print(f"policy {ps['policy_hash']}  code {ps['code_version']}  run {ps['run_id']}", file=out)
    print(f"{t['examples']} examples, {t['labels']} labels, {t['raters']} raters, {t['judges']} judges", file=out)
    for dim, rows in r["counts"].items():
        print(f"\nby {dim}:  (examples / labels)", file=out)
        shown = rows[:10]
        for row in shown:
            print(
                f"  {row['key'] if row['key'] is not None else '(none)':<56} {row['examples']:>6} {row['labels']:>7}",
                file=out,
            )
        if len(rows) > len(shown):
            print(f"  ... {len(rows) - len(shown)} more (--json lists all)", file=out)
    print("\ngates:", file=out)
    for name, result in sorted(r["gates"].items()):
        print(f"  {name:<40} {json.dumps(result, default=str)}", file=out)
    if not r["gates"]:
        print("  (none recorded)", file=out)


def _text_impact(r: dict[str, Any], out: TextIO) -> None:
    ids = ", ".join(r["matched_ids"])
    print(f"{r['kind']} {r['id']}  (matches {ids})", file=out)
    if r["retraction"]:
        print(f"RETRACTED at {r['retraction']['at']}: {r['retraction']['reason']}", file=out)
    print(f"in the newest preference set: {'yes' if r['in_latest'] else 'no'}", file=out)
    print(f"\npreference-set versions using their labels: {r['totals']['preference_sets']}", file=out)
    for v in r["preference_sets"]:
        print(f"  {v['version_id']}  {v['created_at']}  {v['examples']:>6} examples  {v['labels']:>6} labels", file=out)
    print(f"models trained on them (retrain after a retraction): {r['totals']['models']}", file=out)
    for v in r["models"]:
        print(f"  {v['version_id']}  {v['name']:<20} on {v['parent_version']}  {v['examples']:>6} examples", file=out)


def _text_example(r: dict[str, Any], out: TextIO) -> None:
    p = r["pair"]
    print(f"example {r['example_id']}  in {r['version_id']}  (policy {r['policy_hash']})", file=out)
    print(f"  chosen {p['chosen_side']}  split {p['split']}  {p['language']}/{p['category']}", file=out)
    print(f"  pair {p['pair_id']}  prompt {p['prompt_id']}  source {p['prompt_source']}", file=out)
    print(f"    landed from {p['source_file']}:{p['source_line']}", file=out)
    print(f"  labels ({len(r['labels'])}):", file=out)
    for lab in r["labels"]:
        who = f"rater {lab['rater_id']}" if lab["label_origin"] == "human" else f"judge {lab['judge_id']}"
        const = f" constitution {lab['constitution_hash']}" if lab["constitution_hash"] else ""
        print(f"    {lab['label_id']}  {who}{const}  <- {lab['source_file']}:{lab['source_line']}", file=out)
    print(f"  in versions: {', '.join(r['versions'])}", file=out)
    for m in r["models"]:
        print(f"  trained into {m['name']} ({m['version_id']})", file=out)


def _text_diff(r: dict[str, Any], out: TextIO) -> None:
    s = r["summary"]
    print(f"{r['from']['version_id']} -> {r['to']['version_id']}", file=out)
    print(f"added {s['added']}  removed {s['removed']}  flipped {s['flipped']}  unchanged {s['unchanged']}", file=out)
    for reason, n in s["by_reason"].items():
        print(f"  {n:>6}  {reason}", file=out)
    for what in ("added", "removed"):
        for item in r[what][:20]:
            print(f"{what:<8} {item['pair_id']}  {item['chosen_side']}  {'; '.join(item['reasons'])}", file=out)
    for item in r["flipped"][:20]:
        sides = f"{item['chosen_side_before']}->{item['chosen_side_after']}"
        print(f"flipped  {item['pair_id']}  {sides}  {'; '.join(item['reasons'])}", file=out)


def _text_retract(r: dict[str, Any], out: TextIO) -> None:
    verb = "already retracted" if r["already_retracted"] else "retracted"
    print(f"{r['kind']} {r['id']} {verb} ({r['reason']}) -> {r['file']}", file=out)
    if r["impact"]:
        t = r["impact"]["totals"]
        print(f"impact: {t['preference_sets']} preference-set versions, {t['models']} models to retrain", file=out)
    print("the next preference_set materialization drops these labels", file=out)


# ---------------------------------------------------------------------------------------------------- running


def _retract(args: argparse.Namespace, home: Home) -> dict[str, Any]:
    kind: Kind = args.kind
    impact: dict[str, Any] | None = None
    known = False
    if home.warehouse.exists():
        con = _connect(home)
        try:
            if has_lineage(con):
                try:
                    impact = (queries.rater_impact if kind == "rater" else queries.judge_impact)(con, args.id)
                    known = True
                except UnknownIdError:
                    pass
            known = known or _known_in_labels(con, kind, args.id)
        finally:
            con.close()
    if not known and not args.force:
        raise UnknownIdError(
            f"unknown {kind}: {args.id!r} (in no recorded version or label table; --force to retract anyway)"
        )
    before = load_retractions(home).names(kind, args.id)
    updated = retract(home, kind, args.id, args.reason)
    entry = updated.names(kind, args.id)
    assert entry is not None
    if impact is not None:
        impact["retraction"] = entry.model_dump(mode="json")
    return {
        "kind": kind,
        "id": args.id,
        "reason": entry.reason,
        "at": entry.model_dump(mode="json")["at"],
        "file": str(retractions_path(home)),
        "already_retracted": before is not None and before.id == args.id,
        "impact": impact,
    }


def run(args: argparse.Namespace, home: Home) -> dict[str, Any]:
    """Run one lineage subcommand; returns its JSON-ready result."""
    if args.lineage_command == "retract":
        return _retract(args, home)
    con = _connect(home)
    try:
        cmd = args.lineage_command
        if cmd == "versions":
            return queries.list_versions(con) if has_lineage(con) else {"versions": []}
        if cmd == "model":
            return queries.model_lineage(con, args.ref)
        if cmd in ("rater", "judge"):
            ident = args.rater_id if cmd == "rater" else args.judge_id
            result = (queries.rater_impact if cmd == "rater" else queries.judge_impact)(con, ident)
            return {**result, "retraction": _retraction_of(home, cmd, ident)}
        if cmd == "example":
            return queries.example_chain(con, args.example_id, args.version)
        if cmd == "diff":
            return queries.diff(con, args.v1, args.v2)
        raise CommandError(f"unknown lineage subcommand {cmd!r}", 2)
    finally:
        con.close()


TEXT: dict[str, Callable[[dict[str, Any], TextIO], None]] = {
    "versions": _text_versions,
    "model": _text_model,
    "rater": _text_impact,
    "judge": _text_impact,
    "example": _text_example,
    "diff": _text_diff,
    "retract": _text_retract,
}


def main(args: argparse.Namespace, home: Home, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point from ``prefgate.cli``: print the result (text or ``--json``); errors are one line on stderr."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        result = run(args, home)
    except UnknownIdError as exc:
        print(f"prefgate lineage: {exc}", file=err)
        return 2
    except RetractionError as exc:
        print(f"prefgate lineage: {exc}", file=err)
        return 2
    except CommandError as exc:
        print(f"prefgate lineage: {exc}", file=err)
        return exc.code
    if args.json:
        json.dump(result, out, indent=2, default=str)
        out.write("\n")
    else:
        TEXT[args.lineage_command](result, out)
    return 0
