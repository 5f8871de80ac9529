"""Judge calibration: how far each AI judge agrees with human consensus, per slice, with its biases, and a
probability calibration map turning a judge's verdict into P(humans agree).

* :func:`build_overlap` joins the warehouse's judge labels, human consensus and pairs into the overlap frame.
* :func:`calibration_table` -- agreement (with and without ties), Cohen's kappa, position consistency, position /
  length / self-preference bias, ECE and Brier, per (judge, slice, value), with Wilson / asymptotic intervals.
* :func:`ensemble_rows` -- a pseudo-judge ``"ensemble"`` so the judge ensemble is calibrated like any judge.
* :func:`fit_calibration` -- isotonic or Platt maps of a judge's confidence to P(humans agree), cross-validated;
  :class:`CalibrationMap` applies them to new labels and round-trips through JSON.
* :func:`reliability_bins` / :func:`reliability_plot` -- the reliability diagram's table and PNG.
"""

from __future__ import annotations

from prefgate.calibration.overlap import (
    ENSEMBLE_ID,
    OVERLAP_SCHEMA,
    build_overlap,
    ensemble_rows,
    model_family,
    validate_overlap,
)
from prefgate.calibration.probability import (
    CalibrationMap,
    JudgeCalibration,
    fit_calibration,
    reliability_bins,
    reliability_plot,
)
from prefgate.calibration.stats import cohen_kappa_tables, logistic_fit_segments, wilson_interval
from prefgate.calibration.table import TABLE_SCHEMA, calibration_table

__all__ = [
    "ENSEMBLE_ID",
    "OVERLAP_SCHEMA",
    "TABLE_SCHEMA",
    "CalibrationMap",
    "JudgeCalibration",
    "build_overlap",
    "calibration_table",
    "cohen_kappa_tables",
    "ensemble_rows",
    "fit_calibration",
    "logistic_fit_segments",
    "model_family",
    "reliability_bins",
    "reliability_plot",
    "validate_overlap",
    "wilson_interval",
]
