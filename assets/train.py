"""Train group: the reward model and the DPO policy (TRL) from the gated export, and their evaluation.

Both trainers sit behind the blocking checks on ``preference_set`` twice over: in a run, a failed check stops
the export and everything downstream; across runs, a trainer refuses a set whose current version was not exported
(its gates failed since), naming the failed gates. A model is trained once per (dataset version, config): a second
materialization on the same data reuses it, and an interrupted one resumes from its last checkpoint.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from assets._meta import chart, headline, latest_metadata, table_entries
from pipelines.resources import PROJECT_ROOT, PrefgateResource
from prefgate.export import sorted_hash
from prefgate.lineage.store import record_model

GROUP = "train"
GATED = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


class TrainAssetConfig(dg.Config):
    """Which trainer config to use (trainers/configs/*.yaml; fields documented in trainers/config.py)."""

    config_file: str = ""


def gated_export(
    context: dg.AssetExecutionContext, prefgate: PrefgateResource, preference_set: pl.DataFrame
) -> tuple[Path, dict[str, Any]]:
    """The export folder and its manifest, if it holds the current preference-set version; else a Failure."""
    out = prefgate.paths.exports / "preference_set"
    manifest_path = out / "manifest.json"
    current = sorted_hash(preference_set)
    if not manifest_path.exists():
        raise dg.Failure(
            "no gated export of the preference set exists: its blocking checks have not passed yet",
            metadata={"preference_set_hash": current},
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    from assets.curate import latest_gate_results

    failed = [g for g in latest_gate_results(context.instance) if not g["passed"]]
    if failed or manifest.get("content_hash") != current:
        said = "; ".join(f"{g['name']}: {g['message']}" for g in failed) or "export pending"
        raise dg.Failure(
            f"preference_set version {current} has not passed its gates (the export holds "
            f"{manifest.get('content_hash')}); training stops until they pass. Failed: {said}",
            metadata={"preference_set_hash": current, "exported_hash": str(manifest.get("content_hash"))},
        )
    return out, manifest


def _train(
    kind: str,
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    preference_set: pl.DataFrame,
    config_file: str,
) -> dg.MaterializeResult:
    from prefgate import plots

    data, manifest = gated_export(context, prefgate, preference_set)
    if kind == "reward":
        from trainers.config import RewardTrainConfig as Cfg
        from trainers.reward import train
    else:
        from trainers.config import DPOTrainConfig as Cfg  # type: ignore[assignment]
        from trainers.dpo import train  # type: ignore[assignment]
    path = Path(config_file) if config_file else PROJECT_ROOT / "trainers" / "configs" / f"{kind}.yaml"
    config = Cfg.from_yaml(path)
    config_hash = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:8]
    name = "reward_model" if kind == "reward" else "dpo_policy"
    out = prefgate.paths.root / "models" / name / f"{manifest['content_hash'][:12]}-{config_hash}"
    done = out / "result.json"
    if done.exists():
        result = json.loads(done.read_text(encoding="utf-8"))
        context.log.info(f"{name}: reusing {out} (same dataset version and config)")
        reused = True
    else:
        result = train(config, data, out, resume=True).to_dict()
        reused = False
    history = [(int(s), float(v)) for s, v in result.get("loss_history", [])]
    parent = manifest.get("lineage_version")
    model_manifest = {
        "dataset_content_hash": manifest["content_hash"],
        "dataset_lineage_version": parent,
        "policy_hash": manifest.get("policy_hash"),
        "config": config.to_dict(),
        "config_file": str(path),
        "final_dir": result["final_dir"],
        "metrics": {k: result.get(k) for k in ("first_loss", "final_loss", "global_step", "tokens_per_s")},
    }
    version = None
    lineage_md: dict[str, object] = {}
    if parent:
        from prefgate.lineage.queries import model_lineage

        with duckdb.connect(str(prefgate.paths.warehouse)) as con:
            version = record_model(con, name, parent, model_manifest, context.run.run_id)
            lineage = model_lineage(con, version)
        from prefgate.lineage.openlineage import emit_version, target_from_env

        emit_version(
            "model",
            name,
            version,
            model_manifest,
            context.run.run_id,
            ["preference_set"],
            None,
            target=target_from_env(),
        )
        lineage_md = {
            "lineage_totals": dg.MetadataValue.json(lineage["totals"]),
            **{
                k: v
                for dim in ("label_origin", "rater", "judge", "prompt_source", "category")
                if lineage["counts"].get(dim)
                for k, v in table_entries(f"lineage_by_{dim}", pl.DataFrame(lineage["counts"][dim]), 15).items()
            },
            "trained_under_gates": dg.MetadataValue.json(lineage["gates"]),
        }
    return dg.MaterializeResult(
        metadata={
            "model_dir": dg.MetadataValue.path(result["final_dir"]),
            "model_card": dg.MetadataValue.path(str(Path(result["output_dir"]) / "model_card.md")),
            "base_model": result["base_model"],
            "lineage_version": str(version),
            "dataset_lineage_version": str(parent),
            "dataset_content_hash": manifest["content_hash"],
            "policy_hash": str(manifest.get("policy_hash")),
            "reused": reused,
            **headline(
                {
                    "train_rows": int(result["train_rows"]),
                    "global_step": int(result["global_step"]),
                    "first_loss": result.get("first_loss"),
                    "final_loss": result.get("final_loss"),
                    "wall_time_s": float(result["wall_time_s"]),
                    "tokens_per_s": result.get("tokens_per_s"),
                }
            ),
            **(
                chart(
                    prefgate.paths.exports,
                    context.asset_key.path[-1],
                    "loss_curve",
                    plots.loss_curve(history, f"{name} loss"),
                    f"{name} loss",
                )
                if history
                else {"loss_curve": "no loss logged"}
            ),
            **lineage_md,
        }
    )


@dg.asset(group_name=GROUP, deps=["preference_set_export"], automation_condition=GATED)
def reward_model(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    config: TrainAssetConfig,
    preference_set: pl.DataFrame,
) -> dg.MaterializeResult:
    """A Bradley-Terry reward model (TRL RewardTrainer) on the gated set's train split; margin from the weight."""
    return _train("reward", context, prefgate, preference_set, config.config_file)


@dg.asset(group_name=GROUP, deps=["preference_set_export"], automation_condition=GATED)
def dpo_policy(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    config: TrainAssetConfig,
    preference_set: pl.DataFrame,
) -> dg.MaterializeResult:
    """A DPO policy (TRL DPOTrainer) against a frozen copy of its base, on the gated set's train split."""
    return _train("dpo", context, prefgate, preference_set, config.config_file)


class EvalConfig(dg.Config):
    """Sizes of the evaluation samples (CPU defaults; raise them on a GPU) and the judge of the win rate."""

    hh_rlhf_pairs: int = 24
    xstest_prompts_per_class: int = 6
    win_rate_prompts: int = 4
    max_new_tokens: int = 32
    judge: str = "smollm2-pairwise"


@dg.asset(group_name=GROUP, deps=["reward_model", "dpo_policy"], automation_condition=dg.AutomationCondition.eager())
def model_eval(
    context: dg.AssetExecutionContext,
    prefgate: PrefgateResource,
    config: EvalConfig,
    preference_set: pl.DataFrame,
    response_pairs: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> dg.MaterializeResult:
    """Reward accuracy (held-out human split per category, HH-RLHF test pairs), policy refusal and over-refusal on
    XSTest vs the reference, policy win rate (raw and length-controlled) judged in both orders; regression check."""
    from prefgate.evaluation import EvalInputs, evaluate_models, load_report, save_report

    rm = latest_metadata(context.instance, "reward_model", "model_dir")
    policy_dir = latest_metadata(context.instance, "dpo_policy", "model_dir")
    if rm is None or policy_dir is None:
        raise dg.Failure("model_eval needs materialized reward_model and dpo_policy")
    inputs = EvalInputs(
        reward_model_dir=Path(rm),
        policy_dir=Path(policy_dir),
        preference_set=preference_set,
        response_pairs=response_pairs,
        eval_prompts=eval_prompts,
        hh_rlhf_pairs=config.hh_rlhf_pairs,
        xstest_per_class=config.xstest_prompts_per_class,
        win_rate_prompts=config.win_rate_prompts,
        max_new_tokens=config.max_new_tokens,
        judge=config.judge,
        judge_cache=prefgate.paths.judge_cache,
    )
    cached = Path(policy_dir).parent / f"eval-{inputs.key()}.json"
    report = load_report(cached)
    reused = report is not None
    if report is None:
        report = evaluate_models(inputs, log=context.log.info)
        save_report(report, cached)
    else:
        context.log.info(f"model_eval: same models, data and settings as {cached}: reusing its figures")
    previous = latest_metadata(context.instance, "model_eval", "headline")
    previous = previous if isinstance(previous, dict) else None
    from prefgate.model_eval import regression_check

    regressions = regression_check(report.headline, previous)
    return dg.MaterializeResult(
        metadata={
            "headline": dg.MetadataValue.json(report.headline),
            **table_entries("reward_accuracy", report.reward_accuracy, 30, empty_reason="no held-out human pairs"),
            **table_entries("hh_rlhf_accuracy", report.hh_rlhf_accuracy, empty_reason="no HH-RLHF test pairs scored"),
            **table_entries("refusal", report.refusal, empty_reason="no XSTest prompts evaluated"),
            "win_rate": dg.MetadataValue.json(report.win_rate),
            "regressions": dg.MetadataValue.md("\n".join(f"- {m}" for m in regressions) or "none"),
            "regressed": bool(regressions),
            "reused": reused,
            "reward_model_dir": dg.MetadataValue.path(rm),
            "policy_dir": dg.MetadataValue.path(policy_dir),
        }
    )
