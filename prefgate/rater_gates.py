"""The two blocking rater gates, each as one sentence with the value, the threshold and the gap.

``alpha_at_least_min``: Krippendorff's alpha (nominal) over every standing human label reaches
``agreement.min_alpha``. ``flagged_share_at_most_max``: the share of assessed raters carrying a gating flag
(spammer, biased, too_fast, drifting) stays at or under ``agreement.max_flagged_share``.

A statistic that cannot be computed -- alpha with one label per item (a benchmark's single reference label), or
a flagged share with no rater assessed -- is reported with why, and the policy's ``agreement.on_undefined``
decides whether that passes or fails. The sentences are what the Checks tab, ``prefgate run`` and
``prefgate report gates`` show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from prefgate.agreement import agreement_report
from prefgate.governance import GATING_FLAGS, item_frame

OnUndefined = Literal["pass", "fail"]


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict, its sentence, and its numbers (plain floats/ints, for metadata)."""

    name: str
    passed: bool
    sentence: str
    values: dict[str, float | int | str] = field(default_factory=dict)


def _undefined(name: str, why: str, rule: OnUndefined, values: dict[str, float | int | str]) -> GateResult:
    verdict = "passes" if rule == "pass" else "fails"
    sentence = f"{why}; the policy (agreement.on_undefined.{name.split('_')[0]}: {rule}) says the gate {verdict}"
    return GateResult(name, rule == "pass", sentence, values)


def alpha_gate(
    labels: pl.DataFrame, min_alpha: float, on_undefined: OnUndefined, reference_labels: int = 0
) -> GateResult:
    """Alpha over the panel labels' own items (source, pair key), against ``min_alpha``; ``reference_labels``
    counts the gold labels kept out (prefgate.gold), for the sentence."""
    name = "alpha_at_least_min"
    if labels.is_empty():
        why = "alpha is undefined: there are no human labels"
        if reference_labels:
            why = (
                f"alpha is undefined: no panel labels, only {reference_labels:,} gold reference labels (one per "
                "pair, kept out of rater agreement)"
            )
        return _undefined(name, why, on_undefined, {"labels": 0, "reference_labels": reference_labels})
    rep = agreement_report(item_frame(labels), n_boot=0, item_col="item")
    values: dict[str, float | int | str] = {
        "labels": rep.n_labels,
        "items": rep.n_items,
        "items_with_2_labels": rep.n_pairable_items,
        "min_alpha": min_alpha,
    }
    over = f"over {rep.n_labels:,} labels on {rep.n_items:,} items"
    if rep.alpha is None:
        why = f"alpha is undefined {over}: {rep.alpha_reason or 'not computable'}"
        return _undefined(name, why, on_undefined, values)
    values["alpha"] = round(rep.alpha, 4)
    gap = rep.alpha - min_alpha
    if gap >= 0:
        sentence = f"alpha {rep.alpha:.3g} ≥ {min_alpha:.2f} required, {gap:.2g} to spare, {over}"
    else:
        sentence = f"alpha {rep.alpha:.3g} < {min_alpha:.2f} required, short by {-gap:.2g}, {over}"
    return GateResult(name, gap >= 0, sentence, values)


def flagged_share_gate(quality: pl.DataFrame, max_share: float, on_undefined: OnUndefined) -> GateResult:
    """Share of assessed raters with a gating flag, against ``max_share``; names the flagged raters."""
    name = "flagged_share_at_most_max"
    assessed = quality.filter(pl.col("assessed"))
    flagged = assessed.filter(pl.any_horizontal(*GATING_FLAGS))
    values: dict[str, float | int | str] = {
        "raters": quality.height,
        "assessed": assessed.height,
        "flagged": flagged.height,
        "max_flagged_share": max_share,
    }
    if assessed.is_empty():
        why = f"the flagged share is undefined: none of {quality.height} raters has enough labels to be assessed"
        return _undefined(name, why, on_undefined, values)
    share = flagged.height / assessed.height
    values["flagged_share"] = round(share, 4)
    counts = {f: int(flagged[f].sum()) for f in GATING_FLAGS if int(flagged[f].sum())}
    by_flag = ", ".join(f"{n} {f}" for f, n in counts.items())
    who = f" ({by_flag}: {', '.join(flagged['rater_id'].head(5).to_list())}" + (", …)" if flagged.height > 5 else ")")
    gap = max_share - share
    head = f"{flagged.height} of {assessed.height} assessed raters flagged = {share:.1%}"
    if gap >= 0:
        return GateResult(name, True, f"{head} ≤ {max_share:.0%} allowed{who if flagged.height else ''}", values)
    return GateResult(name, False, f"{head} > {max_share:.0%} allowed, over by {-gap:.1%}{who}", values)
