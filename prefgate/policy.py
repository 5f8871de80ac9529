"""The governance policy: one versioned YAML file of thresholds, gold pairs, merge rules and quotas.

It is validated on load (unknown or mistyped keys are errors that name the key) and hashed: the hash is written
into the provenance of every derived row, so a policy change is visible in lineage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefgate.gates import GatesPolicy
from prefgate.lineage.retraction import RetractionPolicy
from prefgate.quotas import QuotaPolicy
from prefgate.routing import RoutingPolicy


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsensusPolicy(_Strict):
    """How human labels on one pair become one verdict."""

    method: Literal["majority", "dawid_skene"] = Field(
        "dawid_skene", description="Aggregation: plurality vote, or Dawid-Skene EM over per-rater confusion matrices."
    )
    min_labels: int = Field(2, ge=1, description="Fewest human labels a pair needs to enter the preference set.")
    min_agreement: float = Field(
        0.5, ge=0.0, le=1.0, description="Smallest share of labels that must back the winning verdict."
    )
    min_confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="Smallest posterior of the verdict (Dawid-Skene); 0 disables the rule."
    )


class SplitPolicy(_Strict):
    """Train/eval split, by prompt so no prompt lands on both sides."""

    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    salt: str = Field("prefgate-split-v1", description="Changing it reshuffles the split deterministically.")


class GoldPair(_Strict):
    """A pair whose correct verdict is known; used to score raters."""

    pair_id: str
    choice: Literal["a", "b", "tie"]


class IngestPolicy(_Strict):
    """What ingestion accepts."""

    max_quarantine_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="A landing file or label batch quarantining more than this share of its rows fails the "
        "blocking check quarantine_share_at_most_max (the other files and batches are not affected).",
    )
    conflicting_labels: Literal["newest", "none"] = Field(
        "newest",
        description="A rater with several labels on one pair: the newest stands (others quarantined as "
        "conflicting_label / repeated_label), or, with 'none', no label of a rater who disagreed with themself.",
    )


RaterFlag = Literal["spammer", "biased", "too_fast", "drifting", "straightlining", "tie_outlier"]


class RaterPolicy(_Strict):
    """Rater governance: which flags exclude a rater's labels from consensus, and the flag thresholds."""

    exclude_flags: list[RaterFlag] = Field(
        default_factory=lambda: list[RaterFlag](["spammer", "biased"]),
        description="Raters carrying any of these flags do not reach consensus (recorded in provenance).",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Overrides of prefgate.rater_quality.RaterThresholds fields."
    )
    drift_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Overrides of prefgate.drift.DriftThresholds fields."
    )


class OnUndefinedPolicy(_Strict):
    """What a rater gate does when its statistic cannot be computed on the data (it always says why)."""

    alpha: Literal["pass", "fail"] = Field(
        "fail",
        description="alpha_at_least_min when alpha is undefined (e.g. one label per item, as with a benchmark's "
        "single reference labels): 'fail' blocks everything downstream, 'pass' lets it run.",
    )
    flagged: Literal["pass", "fail"] = Field(
        "pass", description="flagged_share_at_most_max when no rater has enough labels to be assessed."
    )


class AgreementPolicy(_Strict):
    """Gates on inter-rater agreement."""

    min_alpha: float = Field(0.2, ge=-1.0, le=1.0, description="Krippendorff's alpha (nominal) must reach this.")
    max_flagged_share: float = Field(0.2, ge=0.0, le=1.0, description="Most raters (share) that may be flagged.")
    bootstrap_samples: int = Field(1000, ge=0, le=100_000, description="Resamples of items for alpha's interval.")
    seed: int = 0
    on_undefined: OnUndefinedPolicy = OnUndefinedPolicy()


class JudgePolicy(_Strict):
    """AI judges (prefgate.judges): what may leave the machine, retries, throughput and how judges combine."""

    pii: Literal["redact", "skip", "allow"] = Field(
        "redact",
        description="PII in text bound for a remote judge: replace with typed placeholders, do not send, or send.",
    )
    max_attempts: int = Field(
        3, ge=1, le=20, description="Attempts per request (HTTP retries) and per failed label (judging rounds)."
    )
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="Per-request timeout of a remote judge.")
    concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight per remote judge.")
    batch_size: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Views per judge call and per cache commit. Only committed batches survive a kill: judgments "
        "made since the last cache commit are paid for again after a crash (smaller batch = less to re-pay, more "
        "commits).",
    )
    ensemble: Literal["mean_probability", "majority"] = Field(
        "mean_probability",
        description="Combine judges by mean P(a better) where probabilities exist, else by majority of choices.",
    )

    @property
    def max_retries(self) -> int:
        """Further judging rounds for a failed label (``max_attempts - 1``)."""
        return self.max_attempts - 1


class CalibrationPolicy(_Strict):
    """How judges are calibrated against human consensus (prefgate.calibration)."""

    method: Literal["isotonic", "platt"] = Field(
        "isotonic", description="Map from a judge's confidence to P(humans agree): isotonic or Platt (logistic)."
    )
    folds: int = Field(5, ge=1, le=50, description="Cross-validation folds (by pair) for the out-of-fold ECE/Brier.")
    both_orders_judges: list[str] = Field(
        default_factory=lambda: ["recorded:gpt-4:mt-bench-pair"],
        description="Recorded judges (id prefixes) whose verdicts already combine both presentation orders: their "
        "display order is unknown (P(first) is not measured) and inconsistent_raw_choices marks an order flip.",
    )
    inconsistent_raw_choices: list[str] = Field(
        default_factory=lambda: ["tie (inconsistent)"],
        description="Raw verdicts of both_orders_judges that record a disagreement between the two orders.",
    )


class MergePolicy(_Strict):
    """How calibrated judge labels may join the human consensus in the preference set (prefgate.merge)."""

    use_judge_labels: bool = Field(
        True, description="Let judge verdicts fill pairs without a confident human verdict, in passing slices."
    )
    min_calibrated_confidence: float = Field(
        0.7, ge=0.0, le=1.0, description="Smallest calibrated P(humans agree) for a judge verdict to enter."
    )
    judge_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="A judge row's weight is its calibrated probability times this."
    )
    judges: list[str] = Field(
        default_factory=list, description="Judge ids (or id prefixes, or 'ensemble') allowed to label; empty: all."
    )
    slices: list[str] = Field(
        default_factory=lambda: ["category", "language", "source", "safety"],
        description="Pair attributes a judge is calibrated and gated on; it must pass on every slice of a pair.",
    )


class CurationPolicy(_Strict):
    """Prompt-level curation before the merge: duplicates, decontamination, degenerate pairs, language."""

    near_duplicate_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="MinHash Jaccard at which two prompts are near-duplicates (one group)."
    )
    embedding_duplicate_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="MiniLM cosine at which two prompts are near-duplicates (paraphrases)."
    )
    use_embeddings: bool = Field(
        True, description="Also compare prompts by all-MiniLM-L6-v2 embeddings (offline model, cached by text)."
    )
    contamination_ngram: int = Field(8, ge=3, le=50, description="Word n-gram length of the overlap check.")
    contamination_jaccard: float = Field(
        0.8, gt=0.0, le=1.0, description="MinHash Jaccard with an eval prompt that counts as contamination."
    )
    contamination_cosine: float = Field(
        0.92, gt=0.0, le=1.0, description="Embedding cosine with an eval prompt that counts as contamination."
    )
    drop_contaminated: bool = Field(
        False,
        description="Drop rows whose prompt matches an eval prompt (recorded in curation_dropped). Off by default: "
        "a match then fails the no_eval_contamination gate and blocks training until someone decides.",
    )
    drop_degenerate: bool = Field(
        True,
        description="Drop degenerate pairs (prefgate.degenerate): an empty side, the same text twice, or a side with "
        "evidence of a cut (mid-word or after a connector, unclosed fence or bracket, finish_reason length).",
    )
    degenerate_near_identical: bool = Field(
        False,
        description="Also count pairs whose responses differ only in case, whitespace or quote style as degenerate "
        "(near-identical). Off by default: such a pair may still carry a preference, and it stays.",
    )
    degenerate_near_threshold: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="With degenerate_near_identical: character similarity of the normalised responses from which a "
        "pair is near-identical; 1.0 means equal after normalising. Lower values drop real pairs (one word can flip "
        "a fact).",
    )
    drop_pii: bool = Field(
        True, description="Drop rows with PII (emails, phone numbers, card numbers...) in prompt or responses."
    )


class Policy(_Strict):
    """The whole governance policy."""

    version: str = Field(description="Human-readable policy version, e.g. '2026-11-27.1'.")
    consensus: ConsensusPolicy = ConsensusPolicy()
    split: SplitPolicy = SplitPolicy()
    ingest: IngestPolicy = IngestPolicy()
    raters: RaterPolicy = RaterPolicy()
    agreement: AgreementPolicy = AgreementPolicy()
    judges: JudgePolicy = JudgePolicy()
    calibration: CalibrationPolicy = CalibrationPolicy()
    merge: MergePolicy = MergePolicy()
    curation: CurationPolicy = CurationPolicy()
    routing: RoutingPolicy = RoutingPolicy()
    gates: GatesPolicy = GatesPolicy()
    retractions: RetractionPolicy = Field(
        default_factory=RetractionPolicy,
        description="Raters and judge versions whose labels no longer count (merged with <home>/retractions.yaml).",
    )
    gold_pairs: list[GoldPair] = Field(default_factory=list)
    quotas: QuotaPolicy = Field(
        default_factory=QuotaPolicy,
        description="Rows per language/category cell: maxima enforced by balanced sampling, minima gated.",
    )
    sources_allowed_in_training: list[str] = Field(
        default_factory=list, description="Label sources whose consensus may train; empty means all."
    )

    @model_validator(mode="after")
    def _unique_gold(self) -> Policy:
        ids = [g.pair_id for g in self.gold_pairs]
        if len(ids) != len(set(ids)):
            raise ValueError("gold_pairs: a pair_id appears twice")
        return self

    @property
    def policy_hash(self) -> str:
        """Hash of the validated content (not the file bytes): comments and key order do not change it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"key '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}" for err in exc.errors())
        raise PolicyError(f"{path}: invalid policy: {problems}") from exc
