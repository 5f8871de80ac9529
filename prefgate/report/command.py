"""``prefgate report``: the governance tables of the Dagster asset pages, in the terminal.

    prefgate [--home H] report raters [--json] [--limit N] [--policy PATH]   alpha, flagged share, one row per rater
    prefgate [--home H] report judges [--json] [--limit N]                   judge x slice calibration and gate
    prefgate [--home H] report gates  [--json] [--limit N] [--policy PATH]   every blocking gate with its sentence
    prefgate [--home H] report set    [--json] [--limit N]                   the preference set and what was dropped

Text is aligned tables that wrap and truncate nothing (the reasons column last); ``--json`` prints one object
documented by the JSON Schemas in ``prefgate/report/schemas/``. ``--limit N`` keeps the first N rows of each
table (flagged raters and failing gates are never behind passing ones). The warehouse is opened read-only.
Rater alpha and the gates are recomputed from the warehouse under the policy (``--policy``, else
``$PREFGATE_POLICY``, else ``config/policy.yaml``), as the Dagster assets and checks compute them.

Exit status: 0 on success; 2 when the warehouse or a table it needs is missing (one line naming the table), or
the policy is invalid; 1 when the warehouse cannot be opened (a writer holds it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from prefgate.home import PROJECT_ROOT, Home

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
REPORTS = ("raters", "judges", "gates", "set")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--limit must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the report subcommands to ``parser`` (the ``report`` subparser of the ``prefgate`` command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one JSON object on stdout (see report/schemas)")
    common.add_argument("--limit", type=_positive, metavar="N", help="at most N rows per table (default: all)")
    with_policy = argparse.ArgumentParser(add_help=False)
    with_policy.add_argument("--policy", type=Path, metavar="PATH", help="policy file (default: config/policy.yaml)")
    sub = parser.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    sub.add_parser("raters", parents=[common, with_policy], help="rater agreement and one row per rater")
    sub.add_parser("judges", parents=[common], help="judge calibration per judge x slice, with the gate")
    sub.add_parser("gates", parents=[common, with_policy], help="every blocking gate, recomputed, with its sentence")
    sub.add_parser("set", parents=[common], help="preference_set rows by split, origin, source, category; drops")


def policy_path(arg: Path | None) -> Path:
    """``--policy``, else ``$PREFGATE_POLICY``, else the project's ``config/policy.yaml``."""
    if arg is not None:
        return arg
    env = os.environ.get("PREFGATE_POLICY")
    return Path(env) if env else PROJECT_ROOT / "config" / "policy.yaml"


def plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities become null, dates ISO strings, tuples lists."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def run(args: argparse.Namespace, home: Home) -> dict[str, Any]:
    """Build one report's JSON-ready result from the warehouse."""
    from prefgate.report import build
    from prefgate.report.tables import Warehouse

    policy = None
    if args.report_command in ("raters", "gates"):
        from prefgate.policy import load_policy

        policy = load_policy(policy_path(args.policy))
    with Warehouse(home) as wh:
        result = build.BUILDERS[args.report_command](wh, policy, args.limit)
    out: dict[str, Any] = plain({"report": args.report_command, "warehouse": str(home.warehouse), **result})
    return out


def main(args: argparse.Namespace, home: Home, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point from ``prefgate.cli``: print the report (text or ``--json``); errors are one line on stderr."""
    from prefgate.policy import PolicyError
    from prefgate.report.tables import ReportError

    out, err = out or sys.stdout, err or sys.stderr
    try:
        result = run(args, home)
    except ReportError as exc:
        print(f"prefgate report: {exc}", file=err)
        return exc.code
    except PolicyError as exc:
        print(f"prefgate report: {exc}", file=err)
        return 2
    try:
        _print(args, result, out)
    except BrokenPipeError:  # `| head` stopped reading: not an error for a report
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
    return 0


def _print(args: argparse.Namespace, result: dict[str, Any], out: TextIO) -> None:
    if args.json:
        json.dump(result, out, indent=2)
        out.write("\n")
        return
    from prefgate.report import render

    printer: Callable[[dict[str, Any]], list[str]] = render.PRINTERS[args.report_command]
    for line in printer(result):
        print(line, file=out)
