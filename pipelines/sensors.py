"""The landing sensor: new or changed files launch the ingest job or a labels batch partition.

Safe to switch on over a home that ``prefgate run`` filled: on its first tick (no cursor) a file the warehouse
already holds -- same path and bytes in a table, or its path in a quarantine table -- counts as seen, so nothing
is replayed. Run keys hash the changed files' state, so the same change never launches twice, across processes.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import duckdb

from assets.partitions import batch_dates
from pipelines.jobs import ingest_job, labels_job
from pipelines.resources import SCHEMA, PrefgateResource
from prefgate.ids import file_sha256
from prefgate.ingest.landing import FOLDERS, is_batch_name

UNPARTITIONED = ("prompts", "pairs", "eval_prompts")
LABELS = ("human_labels", "judge_labels")
TABLES = {"prompts": "raw_prompts", "pairs": "response_pairs", "eval_prompts": "eval_prompts"} | {k: k for k in LABELS}


def snapshot(landing: Path) -> dict[str, str]:
    """landing-relative path -> 'size:mtime_ns' of every data file the sensor watches (links not followed)."""
    out: dict[str, str] = {}
    for kind in (*UNPARTITIONED, *LABELS):
        root = landing / FOLDERS[kind]
        if not root.is_dir() or root.is_symlink():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink() and not p.name.startswith("."):
                st = p.stat()
                out[p.relative_to(landing).as_posix()] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


def already_ingested(prefgate: PrefgateResource, landing: Path, paths: list[str]) -> set[str]:
    """Which of ``paths`` the warehouse already holds with their current bytes (or, quarantined, by path)."""
    held: dict[str, set[str]] = {}
    for table in set(TABLES.values()):
        df = prefgate.query(f"SELECT DISTINCT source_file, file_sha256 FROM {SCHEMA}.{table}")
        for path, sha in [] if df is None else df.iter_rows():
            held.setdefault(path, set()).add(sha)
        q = prefgate.query(f"SELECT DISTINCT source_file FROM {SCHEMA}.quarantine_{table}")
        for (path,) in [] if q is None else q.iter_rows():
            held.setdefault(path, set()).add("*")
    seen = set()
    for rel in paths:
        shas = held.get(rel)
        if shas and ("*" in shas or file_sha256(str(landing / rel)) in shas):
            seen.add(rel)
    return seen


def plan(changed: list[str]) -> tuple[bool, set[str], list[str]]:
    """From changed paths: whether to run ingest, which batch partitions to run, and paths not understood."""
    ingest, batch_keys, bad = False, set(), []
    unpartitioned = {FOLDERS[k] for k in UNPARTITIONED}
    for rel in changed:
        parts = rel.split("/")
        if parts[0] in unpartitioned and len(parts) == 2:
            ingest = True
        elif len(parts) == 3 and parts[0] in {FOLDERS[k] for k in LABELS} and is_batch_name(parts[1]):
            batch_keys.add(parts[1])
        else:
            bad.append(rel)
    return ingest, batch_keys, bad


def stable_key(prefix: str, state: dict[str, str]) -> str:
    """A run key from the changed files' state: the same in every process (unlike ``hash()``)."""
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    return f"{prefix}:{digest}"


@dg.sensor(
    jobs=[ingest_job, labels_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: new or changed files under landing/prompts, pairs and eval run ingest_job; files "
    "under landing/<human_labels|judge_labels>/<YYYY-MM-DD>/ add that batch as a partition and run its labels_job. "
    "Files the warehouse already holds (a home filled by `prefgate run`) are not replayed.",
)
def landing_sensor(context: dg.SensorEvaluationContext, prefgate: PrefgateResource) -> dg.SensorResult:
    """Watch landing/: prompts, pairs and eval files run ingest_job; labels/<date>/ files run that partition."""
    landing = prefgate.paths.landing
    current = snapshot(landing)
    if context.cursor:
        previous: dict[str, str] = json.loads(context.cursor)
    else:  # first tick: what the warehouse already holds is not new
        try:
            held = already_ingested(prefgate, landing, sorted(current))
        except duckdb.IOException:  # another process (a `prefgate run`) holds the warehouse: look next tick
            return dg.SensorResult(skip_reason="the warehouse is busy (a run holds it); will look again")
        previous = {rel: current[rel] for rel in held}
    changed = sorted(k for k, v in current.items() if previous.get(k) != v)
    if not changed:
        return dg.SensorResult(skip_reason="no new or changed landing files", cursor=json.dumps(current))
    ingest, batch_keys, bad = plan(changed)
    for rel in bad:
        context.log.warning(f"{rel}: not read -- label files belong in a batch folder named YYYY-MM-DD")
    requests = []
    if ingest:
        state = {k: current[k] for k in changed if k.split("/")[0] not in {FOLDERS[x] for x in LABELS}}
        requests.append(
            dg.RunRequest(
                job_name=ingest_job.name,
                run_key=stable_key("ingest", state),
                tags={"prefgate/trigger": "landing_sensor"},
            )
        )
    for key in sorted(batch_keys):
        state = {k: current[k] for k in changed if k.split("/")[1:2] == [key]}
        requests.append(
            dg.RunRequest(
                job_name=labels_job.name,
                partition_key=key,
                run_key=stable_key(f"labels:{key}", state),
                tags={"prefgate/trigger": "landing_sensor"},
            )
        )
    new_batches = sorted(set(batch_keys) - set(context.instance.get_dynamic_partitions(batch_dates.name or "")))
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(current),
        dynamic_partitions_requests=[batch_dates.build_add_request(new_batches)] if new_batches else None,
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: a run whose process is gone (killed, crashed) is marked failed and its 'duckdb' "
    "pool slot freed, so one crash never blocks later runs. Launches nothing.",
)
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
