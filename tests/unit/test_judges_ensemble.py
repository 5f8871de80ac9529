"""Ensemble of judges: per-judge labels (MT-Bench swap rule), mean probability / majority, inter-judge agreement."""

from __future__ import annotations

import polars as pl
import pytest

from prefgate.agreement import krippendorff_alpha
from prefgate.judges.base import Judgment
from prefgate.judges.ensemble import ensemble, judge_agreement, judge_labels
from prefgate.judges.runner import judgments_frame


def J(judge: str, pair: str, order: str, verdict: str | None, p_first: float | None = None) -> Judgment:  # noqa: N802
    status = "ok" if verdict else "failed"
    return Judgment(judge, pair, order, status, "logprobs" if verdict else "timeout", verdict=verdict, p_first=p_first)  # type: ignore[arg-type]


def both(judge: str, pair: str, choice: str, p_a: float | None = None) -> list[Judgment]:
    """A position-consistent judge: the same canonical choice (and P(a)) in both orders."""
    v_ab = {"a": "first", "b": "second", "tie": "tie"}[choice]
    v_ba = {"a": "second", "b": "first", "tie": "tie"}[choice]
    return [J(judge, pair, "ab", v_ab, p_a), J(judge, pair, "ba", v_ba, None if p_a is None else 1 - p_a)]


def frame() -> pl.DataFrame:
    js: list[Judgment] = []
    js += both("j1", "p1", "a", 0.9) + both("j2", "p1", "a", 0.8) + both("j3", "p1", "b", 0.4)
    # p2: j1 flips with the order (position bias) -> its label is a tie; probabilities still average
    js += [J("j1", "p2", "ab", "first", 0.6), J("j1", "p2", "ba", "first", 0.6)]
    js += both("j2", "p2", "b", 0.3) + both("j3", "p2", "b", 0.35)
    # p3: no probabilities at all -> majority; j3 only got one order through
    js += both("j1", "p3", "tie") + both("j2", "p3", "b") + [J("j3", "p3", "ab", "second"), J("j3", "p3", "ba", None)]
    # p4: nobody succeeded
    js += [J("j1", "p4", "ab", None), J("j1", "p4", "ba", None)]
    return judgments_frame(js)


def test_judge_labels_swap_rule() -> None:
    labels = judge_labels(frame())
    got = {(r["judge_id"], r["pair_id"]): r for r in labels.iter_rows(named=True)}
    assert got[("j1", "p1")]["choice"] == "a" and got[("j1", "p1")]["position_consistent"] is True
    assert got[("j1", "p2")]["choice"] == "tie" and got[("j1", "p2")]["position_consistent"] is False
    assert got[("j3", "p3")]["choice"] == "b" and got[("j3", "p3")]["n_orders"] == 1
    assert got[("j3", "p3")]["position_consistent"] is None
    assert ("j1", "p4") not in got


def test_mean_probability_with_majority_fallback() -> None:
    out = ensemble(frame(), "mean_probability")
    got = {r["pair_id"]: r for r in out.iter_rows(named=True)}
    assert out["pair_id"].to_list() == ["p1", "p2", "p3", "p4"]
    assert got["p1"]["probability_a"] == pytest.approx((0.9 + 0.8 + 0.4) / 3)
    assert (got["p1"]["choice"], got["p1"]["method"], got["p1"]["n_judges"]) == ("a", "mean_probability", 3)
    assert got["p1"]["agreement"] == pytest.approx(2 / 3)
    assert got["p2"]["probability_a"] == pytest.approx((0.6 + 0.4 + 0.3 + 0.3 + 0.35 + 0.35) / 6)
    assert got["p2"]["choice"] == "b"
    assert (got["p3"]["choice"], got["p3"]["method"], got["p3"]["probability_a"]) == ("b", "majority", None)
    assert got["p3"]["n_judgments"] == 5
    assert (got["p4"]["choice"], got["p4"]["method"], got["p4"]["n_judges"], got["p4"]["n_judgments"]) == (
        None, None, 0, 0,
    )  # fmt: skip


def test_majority_and_tie_margin() -> None:
    out = ensemble(frame(), "majority")
    got = {r["pair_id"]: r for r in out.iter_rows(named=True)}
    assert (got["p1"]["choice"], got["p1"]["method"], got["p1"]["probability_a"]) == ("a", "majority", None)
    assert got["p2"]["choice"] == "b" and got["p2"]["agreement"] == pytest.approx(2 / 3)
    split = judgments_frame(both("j1", "q", "a") + both("j2", "q", "b"))
    assert ensemble(split, "majority")["choice"].to_list() == ["tie"]  # top labels tied
    close = judgments_frame(both("j1", "q", "a", 0.53) + both("j2", "q", "a", 0.55))
    assert ensemble(close)["choice"].to_list() == ["a"]
    assert ensemble(close, tie_margin=0.05)["choice"].to_list() == ["tie"]
    with pytest.raises(ValueError, match="unknown ensemble method"):
        ensemble(close, "median")  # type: ignore[arg-type]
    assert ensemble(judgments_frame([])).is_empty()


def test_judge_agreement_uses_prefgate_agreement() -> None:
    f = frame()
    report = judge_agreement(f)
    labels = judge_labels(f)
    expected = krippendorff_alpha(labels, categories=["a", "b", "tie"], rater_col="judge_id")
    assert report.alpha == pytest.approx(expected)
    assert report.n_raters == 3 and report.n_items == 3
    assert report.pairwise is not None
    assert report.pairwise.select("rater_a", "rater_b").rows() == [("j1", "j2"), ("j1", "j3"), ("j2", "j3")]
    agree = judgments_frame(both("j1", "x", "a") + both("j2", "x", "a") + both("j1", "y", "b") + both("j2", "y", "b"))
    assert judge_agreement(agree).alpha == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no successful judgment"):
        judge_agreement(judgments_frame([J("j1", "p", "ab", None)]))
