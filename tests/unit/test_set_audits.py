"""Preference-set audits on tiny frames with hand-computed numbers; Wilson interval against statsmodels."""

import json
from pathlib import Path

import polars as pl
import pytest
from statsmodels.stats.proportion import proportion_confint

from prefgate.set_audits import (
    audit_summary,
    coverage,
    length_bias,
    looks_unsafe,
    over_refusal,
    over_refusal_flags,
    sycophancy,
    sycophancy_flags,
    wilson_interval,
)

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2].parent / "shared" / "data"
DATA = SHARED if SHARED.is_dir() else Path("/work/shared/data")


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """A preference-set frame with defaults for the columns a test does not care about."""
    base = {"prompt": "q", "category": "chat", "language": "en", "split": "train", "weight": 1.0}
    full = [{"example_id": f"e{i}", **base, **r} for i, r in enumerate(rows)]
    return pl.DataFrame(full, schema_overrides={"language": pl.String, "category": pl.String})


# ---------------------------------------------------------------------------------------------- length bias


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 4), (7, 20), (50, 97), (0, 13), (999, 1000)])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_wilson_matches_statsmodels(k: int, n: int, alpha: float) -> None:
    lo, hi = wilson_interval(pl.lit(k), pl.lit(n), alpha)
    got = pl.select(lo.alias("lo"), hi.alias("hi")).row(0)
    want = proportion_confint(k, n, alpha=alpha, method="wilson")
    assert got == pytest.approx(want, abs=1e-12)


def test_wilson_is_null_without_trials() -> None:
    lo, hi = wilson_interval(pl.lit(0), pl.lit(0))
    assert pl.select(lo.alias("lo"), hi.alias("hi")).row(0) == (None, None)


def test_length_bias_hand_computed() -> None:
    # lengths chosen/rejected: 10/5, 3/6, 4/4 (tie), 8/2, 6/3 -> 3 of 4 untied pairs chosen longer
    pairs = [(10, 5, "a"), (3, 6, "a"), (4, 4, "b"), (8, 2, "b"), (6, 3, None)]
    df = frame([{"chosen": "x" * c, "rejected": "y" * r, "category": g} for c, r, g in pairs])
    out = length_bias(df, by="category")
    overall = out.row(0, named=True)
    assert overall["dimension"] == "all"
    assert (overall["n"], overall["n_ties"], overall["n_chosen_longer"]) == (5, 1, 3)
    assert overall["p_chosen_longer"] == pytest.approx(0.75)
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx(proportion_confint(3, 4, method="wilson"))
    ratios = [2.0, 0.5, 1.0, 4.0, 2.0]
    assert overall["mean_length_ratio"] == pytest.approx(sum(ratios) / 5)
    assert overall["median_length_ratio"] == pytest.approx(2.0)
    per = {r["group"]: r for r in out.filter(pl.col("dimension") == "category").iter_rows(named=True)}
    assert set(per) == {"a", "b", "unknown"}
    assert per["a"]["p_chosen_longer"] == pytest.approx(0.5)  # 10/5 longer, 3/6 shorter
    assert per["b"]["n_ties"] == 1
    assert per["b"]["p_chosen_longer"] == pytest.approx(1.0)  # the tie is excluded: 1 of 1
    assert per["unknown"]["n"] == 1


def test_length_bias_empty_rejected_and_empty_frame() -> None:
    df = frame([{"chosen": "abc", "rejected": ""}, {"chosen": "ab", "rejected": "abcd"}])
    row = length_bias(df).row(0, named=True)
    assert row["mean_length_ratio"] == pytest.approx(0.5)  # the empty rejected is left out of the ratio
    assert row["p_chosen_longer"] == pytest.approx(0.5)
    empty = length_bias(df.clear()).row(0, named=True)
    assert empty["n"] == 0
    assert empty["p_chosen_longer"] is None
    assert empty["ci_low"] is None


# ---------------------------------------------------------------------------------------------- sycophancy


def sycophancy_frame() -> pl.DataFrame:
    return frame(
        [
            # premise; chosen agrees, rejected does not -> flagged
            {"prompt": "I think the moon landing was faked.", "chosen": "You're absolutely right.", "rejected": "No."},
            # premise; both agree -> counted on both sides, not flagged
            {"prompt": "Isn't it true that water boils at 100C?", "chosen": "Yes, at sea level.", "rejected": "Yes."},
            # premise; rejected agrees only
            {"prompt": "Paris is in Italy, right?", "chosen": "No, it is in France.", "rejected": "Exactly!"},
            # no premise: agreement is not counted
            {"prompt": "What is 2+2?", "chosen": "Absolutely, it is 4.", "rejected": "5"},
            # flattery in chosen only -> flagged
            {"prompt": "How do tides work?", "chosen": "Great question! The moon.", "rejected": "The moon."},
            # flattery on both sides -> not flagged
            {"prompt": "Ideas?", "chosen": "What a wonderful idea.", "rejected": "Such a great question."},
        ]
    )


def test_sycophancy_flags() -> None:
    flags = sycophancy_flags(sycophancy_frame())
    assert flags["premise"].to_list() == [True, True, True, False, False, False]
    assert flags["chosen_agrees"].to_list() == [True, True, False, True, False, False]
    assert flags["rejected_agrees"].to_list() == [False, True, True, False, False, False]
    assert flags["sycophantic_choice"].to_list() == [True, False, False, False, False, False]
    assert flags["flattery_choice"].to_list() == [False, False, False, False, True, False]


def test_sycophancy_summary_hand_computed() -> None:
    out = {r["signal"]: r for r in sycophancy(sycophancy_frame()).iter_rows(named=True)}
    agree = out["premise_agreement"]
    assert (agree["n"], agree["chosen_n"], agree["rejected_n"]) == (3, 2, 2)
    assert agree["excess"] == pytest.approx(0.0)
    assert agree["flagged_ids"] == ["e0"]
    flat = out["flattery"]
    assert (flat["n"], flat["chosen_n"], flat["rejected_n"], flat["n_flagged"]) == (6, 2, 1, 1)
    assert flat["chosen_rate"] == pytest.approx(2 / 6)
    assert flat["excess"] == pytest.approx(1 / 6)
    assert flat["flagged_ids"] == ["e4"]


def test_sycophancy_without_premises_has_null_rates() -> None:
    out = sycophancy(frame([{"prompt": "Hi", "chosen": "Hello", "rejected": "Hey"}]))
    agree = out.filter(pl.col("signal") == "premise_agreement").row(0, named=True)
    assert agree["n"] == 0
    assert agree["chosen_rate"] is None
    assert agree["flagged_ids"] == []


# ---------------------------------------------------------------------------------------------- over-refusal

REFUSE = "I'm sorry, but I can't help with that."
COMPLY = "Sure, here is how."


def over_refusal_frame() -> pl.DataFrame:
    return frame(
        [
            {"prompt": "How do I bake bread?", "chosen": REFUSE, "rejected": COMPLY, "safety": "safe"},  # flagged
            {"prompt": "How do I bake a cake?", "chosen": COMPLY, "rejected": REFUSE, "safety": "safe"},
            {"prompt": "How do I boil an egg?", "chosen": REFUSE, "rejected": REFUSE, "safety": "safe"},
            {"prompt": "How do I make a bomb?", "chosen": REFUSE, "rejected": COMPLY, "safety": "unsafe"},
            {"prompt": "How can I kill my neighbor?", "chosen": REFUSE, "rejected": COMPLY, "safety": None},
            {"prompt": "How do I kill a Python process?", "chosen": REFUSE, "rejected": COMPLY, "safety": None},
        ]
    )


def test_over_refusal_with_safety_column_and_detector_fallback() -> None:
    df = over_refusal_frame()
    flags = over_refusal_flags(df)
    # row 4 has no label and looks unsafe (detector); row 5 has no label and looks benign
    assert flags["benign"].to_list() == [True, True, True, False, False, True]
    row = over_refusal(df).row(0, named=True)
    assert row["benign_source"] == "safety+detector"
    assert (row["n"], row["n_benign"], row["chosen_refusals"], row["rejected_refusals"]) == (6, 4, 3, 2)
    assert row["chosen_refusal_rate"] == pytest.approx(3 / 4)
    assert row["excess"] == pytest.approx(1 / 4)
    assert row["flagged_ids"] == ["e0", "e5"]


def test_over_refusal_with_given_mask_and_without_safety() -> None:
    df = over_refusal_frame()
    given = over_refusal(df, benign=pl.Series([True, False, False, False, False, False])).row(0, named=True)
    assert (given["benign_source"], given["n_benign"], given["flagged_ids"]) == ("given", 1, ["e0"])
    detected = over_refusal(df.drop("safety")).row(0, named=True)
    assert detected["benign_source"] == "detector"
    assert detected["n_benign"] == 4  # the bomb and the neighbour prompts look unsafe
    with pytest.raises(ValueError, match="6 rows"):
        over_refusal(df, benign=pl.Series([True]))


def test_unsafe_detector_on_xstest_prompts() -> None:
    """The keyword detector's limits, measured: XSTest precision 0.81, recall 0.44 (its unsafe half includes
    privacy and discrimination prompts no keyword list sees); homonyms like 'kill a Python process' stay benign."""
    path = DATA / "xstest" / "xstest_prompts.csv"
    if not path.is_file():
        pytest.skip(f"shared XSTest data not found: {path}")
    df = pl.read_csv(path)
    flagged = looks_unsafe(df["prompt"])
    unsafe = df["label"] == "unsafe"
    tp = int((flagged & unsafe).sum())
    assert tp / int(flagged.sum()) >= 0.78
    assert tp / int(unsafe.sum()) >= 0.40
    assert not looks_unsafe(pl.Series(["How do I kill a Python process?"]))[0]


# ---------------------------------------------------------------------------------------------- coverage


def coverage_frame() -> pl.DataFrame:
    rows = [
        ("en", "coding", "train"),
        ("en", "coding", "train"),
        ("en", "coding", "eval"),
        ("en", "chat", "train"),
        (None, "chat", "train"),
        ("de", None, "eval"),
    ]
    return frame(
        [{"language": lang, "category": cat, "split": s, "chosen": "a", "rejected": "b"} for lang, cat, s in rows]
    )


def test_coverage_counts_cells_and_splits() -> None:
    out = coverage(coverage_frame())
    got = {r["cell"]: (r["n"], r["n_train"], r["n_eval"]) for r in out.iter_rows(named=True)}
    assert got == {"en/coding": (3, 2, 1), "en/chat": (1, 1, 0), "unknown/chat": (1, 1, 0), "de/unknown": (1, 0, 1)}
    assert out.columns[:2] == ["language", "category"]
    assert "shortfall" not in out.columns


def test_coverage_shortfall_against_floors() -> None:
    quotas = {"en/coding": 2, "en/*": 3, "*/*": 1, "fr/chat": 4}
    out = coverage(coverage_frame(), quotas)
    got = {r["cell"]: (r["n"], r["quota"], r["quota_rule"], r["shortfall"]) for r in out.iter_rows(named=True)}
    assert got["en/coding"] == (3, 2, "en/coding", 0)  # exact key beats the wildcard
    assert got["en/chat"] == (1, 3, "en/*", 2)
    assert got["de/unknown"] == (1, 1, "*/*", 0)
    assert got["fr/chat"] == (0, 4, "fr/chat", 4)  # named in the quotas, absent from the data
    assert (out["language"][out["cell"].to_list().index("fr/chat")]) == "fr"


def test_coverage_without_matching_quota_has_null_shortfall() -> None:
    out = coverage(coverage_frame(), {"en/coding": 5})
    row = out.filter(pl.col("cell") == "de/unknown").row(0, named=True)
    assert (row["quota"], row["shortfall"]) == (None, None)


# ---------------------------------------------------------------------------------------------- summary


def test_audit_summary_is_json_and_matches_the_audits() -> None:
    df = pl.concat([sycophancy_frame(), over_refusal_frame().drop("safety")])
    summary = audit_summary(df, quotas={"en/*": 20})
    text = json.dumps(summary)
    assert "NaN" not in text
    assert summary["n_rows"] == 12
    lb = length_bias(df, by="category").row(0, named=True)
    assert summary["length_bias"]["p_chosen_longer"] == pytest.approx(lb["p_chosen_longer"])
    assert summary["sycophancy"]["premise_agreement"]["flagged_ids"] == ["e0"]
    assert summary["over_refusal"]["benign_source"] == "detector"
    assert summary["coverage"] == {"cells": 1, "smallest_cell_n": 12, "cells_below_quota": 1, "total_shortfall": 8}


def test_audits_on_hh_rlhf_real_pairs() -> None:
    """Real chosen/rejected final turns: the audits run and agree with direct computation."""
    import gzip

    path = DATA / "hh-rlhf-test" / "helpful-base" / "test.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == 400:
                break
            r = json.loads(line)
            prompt, chosen = r["chosen"].rsplit("\n\nAssistant:", 1)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": chosen.strip(),
                    "rejected": r["rejected"].rsplit("\n\nAssistant:", 1)[1].strip(),
                }
            )
    df = frame(rows)
    lc, lr = df["chosen"].str.len_chars(), df["rejected"].str.len_chars()
    untied = int((lc != lr).sum())
    row = length_bias(df).row(0, named=True)
    assert row["p_chosen_longer"] == pytest.approx(int((lc > lr).sum()) / untied)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        proportion_confint(int((lc > lr).sum()), untied, method="wilson"), abs=1e-12
    )
    summary = audit_summary(df)
    json.dumps(summary)
    assert 0 <= summary["over_refusal"]["chosen_refusal_rate"] <= 1
