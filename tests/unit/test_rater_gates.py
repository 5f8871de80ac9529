"""The rater gates' verdicts and sentences on tiny label tables, including the undefined cases."""

from __future__ import annotations

import polars as pl
import pytest

from prefgate.rater_gates import alpha_gate, flagged_share_gate


def _labels(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": ["s"] * len(rows),
            "pair_key": [r[0] for r in rows],
            "rater_id": [r[1] for r in rows],
            "choice": [r[2] for r in rows],
        }
    )


AGREE = [(k, r, c) for k, c in [("1", "a"), ("2", "b"), ("3", "a"), ("4", "b")] for r in ("x", "y")]


def test_alpha_passes_with_the_margin_in_words() -> None:
    gate = alpha_gate(_labels(AGREE), 0.3, "fail")
    assert gate.passed and gate.values["alpha"] == 1.0
    assert gate.sentence == "alpha 1 ≥ 0.30 required, 0.7 to spare, over 8 labels on 4 items"


def test_alpha_fails_with_the_gap_in_words() -> None:
    rows = [*AGREE[:6], ("4", "x", "a"), ("4", "y", "b")]
    gate = alpha_gate(_labels(rows), 0.9, "fail")
    assert not gate.passed
    assert gate.sentence.startswith(f"alpha {gate.values['alpha']:.3g} < 0.90 required, short by ")
    assert gate.sentence.endswith("over 8 labels on 4 items")


@pytest.mark.parametrize("rule", ["pass", "fail"])
def test_one_reference_label_per_item_is_undefined_and_the_policy_decides(rule: str) -> None:
    gold = _labels([("1", "gold", "a"), ("2", "gold", "b"), ("3", "gold", "a")])
    gate = alpha_gate(gold, 0.3, rule)  # type: ignore[arg-type]
    assert gate.passed is (rule == "pass")
    assert gate.sentence.startswith("alpha is undefined over 3 labels on 3 items: ")
    assert f"agreement.on_undefined.alpha: {rule}" in gate.sentence
    assert "alpha" not in gate.values


def _quality(flags: list[tuple[str, bool, bool]]) -> pl.DataFrame:
    n = len(flags)
    return pl.DataFrame(
        {
            "rater_id": [f[0] for f in flags],
            "assessed": [f[1] for f in flags],
            "spammer": [f[2] for f in flags],
            "biased": [False] * n,
            "too_fast": [False] * n,
            "drifting": [False] * n,
        }
    )


def test_flagged_share_names_the_flagged_raters() -> None:
    q = _quality([("r1", True, True), ("r2", True, False), ("r3", True, False), ("r4", False, True)])
    over = flagged_share_gate(q, 0.2, "pass")
    assert not over.passed
    assert over.sentence == "1 of 3 assessed raters flagged = 33.3% > 20% allowed, over by 13.3% (1 spammer: r1)"
    assert flagged_share_gate(q, 0.5, "pass").passed


@pytest.mark.parametrize("rule", ["pass", "fail"])
def test_no_assessed_rater_is_undefined(rule: str) -> None:
    gate = flagged_share_gate(_quality([("r1", False, False)]), 0.2, rule)  # type: ignore[arg-type]
    assert gate.passed is (rule == "pass") and "none of 1 raters has enough labels" in gate.sentence
