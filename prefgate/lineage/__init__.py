"""Row-level lineage: versioned snapshots of the preference set and models, audit queries, retractions.

``store`` records versions in the warehouse's ``lineage`` schema, ``queries`` answers the audit questions,
``retraction`` drops retracted raters' and judges' labels, ``command`` is ``prefgate lineage``.
"""

from __future__ import annotations

from prefgate.lineage.queries import (
    UnknownIdError,
    diff,
    example_chain,
    judge_impact,
    list_versions,
    model_lineage,
    rater_impact,
)
from prefgate.lineage.retraction import RetractionPolicy, apply_retractions, load_retractions, retract
from prefgate.lineage.store import (
    apply_retention,
    build_manifest,
    frame_hash,
    provenance_rows,
    record_model,
    record_preference_set,
    update_gates,
)

__all__ = [
    "RetractionPolicy",
    "UnknownIdError",
    "apply_retention",
    "apply_retractions",
    "build_manifest",
    "diff",
    "example_chain",
    "frame_hash",
    "judge_impact",
    "list_versions",
    "load_retractions",
    "model_lineage",
    "provenance_rows",
    "rater_impact",
    "record_model",
    "record_preference_set",
    "retract",
    "update_gates",
]
