"""The landing sensor: new or changed files launch the ingest job or a labels batch partition."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from pipelines.jobs import ingest_job, labels_job
from pipelines.resources import PrefgateResource
from prefgate.ingest.landing import FOLDERS

UNPARTITIONED = ("prompts", "pairs", "eval_prompts")
LABELS = ("human_labels", "judge_labels")


def snapshot(landing: Path) -> dict[str, str]:
    """landing-relative path -> 'size:mtime_ns' of every data file the sensor watches."""
    out: dict[str, str] = {}
    for kind in (*UNPARTITIONED, *LABELS):
        root = landing / FOLDERS[kind]
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                st = p.stat()
                out[p.relative_to(landing).as_posix()] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


def plan(changed: list[str]) -> tuple[bool, set[str], list[str]]:
    """From changed paths: whether to run ingest, which batch partitions to run, and paths not understood."""
    ingest, batch_keys, bad = False, set(), []
    unpartitioned = {FOLDERS[k] for k in UNPARTITIONED}
    for rel in changed:
        parts = rel.split("/")
        if parts[0] in unpartitioned:
            ingest = True
        elif len(parts) == 3:
            try:
                dt.date.fromisoformat(parts[1])
                batch_keys.add(parts[1])
            except ValueError:
                bad.append(rel)
        else:
            bad.append(rel)
    return ingest, batch_keys, bad


@dg.sensor(jobs=[ingest_job, labels_job], minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, prefgate: PrefgateResource) -> dg.SensorResult:
    """Watch landing/: prompts, pairs and eval files run ingest_job; labels/<date>/ files run that partition."""
    current = snapshot(prefgate.paths.landing)
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(k for k, v in current.items() if previous.get(k) != v)
    if not changed:
        return dg.SensorResult(skip_reason="no new or changed landing files", cursor=json.dumps(current))
    ingest, batch_keys, bad = plan(changed)
    for rel in bad:
        context.log.warning(f"{rel}: not in a batch folder named YYYY-MM-DD; ignored until moved")
    stamp = json.dumps({k: current[k] for k in changed}, sort_keys=True)
    requests = []
    if ingest:
        requests.append(
            dg.RunRequest(
                job_name=ingest_job.name, run_key=f"ingest:{hash(stamp)}", tags={"prefgate/trigger": "landing_sensor"}
            )
        )
    for key in sorted(batch_keys):
        requests.append(
            dg.RunRequest(
                job_name=labels_job.name,
                partition_key=key,
                run_key=f"labels:{key}:{hash(stamp)}",
                tags={"prefgate/trigger": "landing_sensor"},
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def stale_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Every minute: runs whose process is gone (killed, crashed) are marked failed and their 'duckdb' pool
    slots freed, so one crash never blocks later runs (see pipelines.recovery)."""
    from pipelines.recovery import describe, recover

    lines = describe(recover(context.instance))
    for line in lines:
        context.log.warning(line)
    return dg.SkipReason("; ".join(lines) if lines else "no dead runs and no orphaned pool slots")


gated_export_automation = dg.AutomationConditionSensorDefinition(
    "gated_export_automation",
    target=dg.AssetSelection.assets("preference_set_export", "reward_model", "dpo_policy", "model_eval"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Exports the preference set after it is updated and only once its blocking checks passed; then "
    "trains the reward model and the DPO policy on the new export (same condition) and evaluates them.",
)
