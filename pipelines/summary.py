"""What a finished run means, in one line: which step failed and why, or which blocking check stopped what.

``prefgate run`` prints these lines instead of Dagster's ~300-line failure output, and writes every event (stack
traces included) to a log file under the home, so the terminal says what happened and the log says how.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._utils.error import SerializableErrorInfo


@dataclass(frozen=True)
class StepFailure:
    """A failed step and the innermost error that caused it."""

    step: str
    error_type: str
    message: str


def root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The outermost error that is not Dagster's wrapper: the one prefgate (or a library) raised and worded,
    rather than the low-level error it was raised from."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error


def step_failures(result: dg.ExecuteInProcessResult) -> list[StepFailure]:
    """Each failed step with its root error, in the order they failed."""
    out: list[StepFailure] = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE" or event.step_key is None:
            continue
        data: Any = event.event_specific_data
        error = getattr(data, "error", None)
        if error is None:
            out.append(StepFailure(event.step_key, "Error", event.message or "failed"))
            continue
        cause = root_cause(error)
        text = (cause.message or "").strip().splitlines()
        message = text[-1] if text else cause.cls_name or "failed"
        if message.startswith(f"{cause.cls_name}: "):
            message = message[len(cause.cls_name or "") + 2 :]
        out.append(StepFailure(event.step_key, cause.cls_name or "Error", message))
    return out


def failed_checks(result: dg.ExecuteInProcessResult) -> list[tuple[str, str, bool, str]]:
    """(asset, check, blocking, reason) of every check that did not pass; reason from its metadata if it has one."""
    out = []
    for ev in result.get_asset_check_evaluations():
        if ev.passed:
            continue
        meta = ev.metadata
        reason = next((meta[k] for k in ("reason", "message", "summary") if k in meta), None)
        text = str(getattr(reason, "value", reason)) if reason is not None else ""
        if not text:
            text = ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in list(meta.items())[:4])
        blocking = ev.severity == dg.AssetCheckSeverity.ERROR
        out.append((ev.asset_key.to_user_string(), ev.check_name, blocking, text))
    return out


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """The lines the CLI prints under a job that did not fully succeed."""
    lines = [
        f"  step {f.step} failed: {f.error_type}: {f.message}"
        for f in step_failures(result)
        if f.error_type != "DagsterAssetCheckFailedError"  # said below, with the check's own reason
    ]
    for asset, check, blocking, reason in failed_checks(result):
        kind = "blocking check" if blocking else "check"
        lines.append(f"  {kind} {asset}.{check} failed" + (f": {reason}" if reason else ""))
    if lines:  # what the failures held back (Dagster logs blocked steps as text only, with no event)
        done = {e.asset_key for e in result.get_asset_materialization_events() if e.asset_key is not None}
        held = sorted(k.to_user_string() for k in result.job_def.asset_layer.selected_asset_keys - done)
        if held:
            lines.append(f"  not materialized because of the above: {', '.join(held)}")
    return lines


def write_log(result: dg.ExecuteInProcessResult, label: str, path: Path) -> None:
    """Append every event of the run, with full stack traces of errors, to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        fh.write(f"=== {stamp} {label} run {result.run_id} ({'ok' if result.success else 'FAILED'})\n")
        for event in result.all_events:
            fh.write(f"{event.event_type_value:<28} {event.step_key or '-'}: {event.message or ''}\n")
            error = getattr(event.event_specific_data, "error", None)
            if isinstance(error, SerializableErrorInfo):
                fh.write(error.to_string() + "\n")
