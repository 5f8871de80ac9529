"""``prefgate bench``: row structure of the full pass and the side-by-side comparison at small sizes, the target
logic, and the command. The real run (100k / 1M / 10M labels, minutes) is by hand: see benchmarks/README.md."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest

from prefgate import bench, cli

gov = bench.load_benchmarks()
CHEAP = ("krippendorff", "statsmodels", "statsmodels-raters")
COMPARE_KEYS = {"statistic", "prefgate_s", "reference", "reference_s", "ratio", "note"}


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def full_small() -> dict[str, Any]:
    return gov.full_pass(20_000)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compare_small() -> list[dict[str, Any]]:
    return gov.compare(20_000, references=CHEAP, repeat=1)  # type: ignore[no-any-return]


def test_full_pass_small(full_small: dict[str, Any]) -> None:
    r = full_small
    assert r["n_labels"] == 20_000
    assert set(r["seconds"]) == set(gov.STAGES)
    assert all(_positive(s) for s in r["seconds"].values())
    assert _positive(r["total_s"]) and r["total_s"] >= sum(r["seconds"].values()) * 0.99
    assert _positive(r["generate_s"]) and _positive(r["process_wall_s"])
    for key in ("input_rss_gib", "pass_peak_rss_gib", "process_peak_rss_gib"):
        assert _positive(r[key]) and r[key] < 4
    assert r["process_peak_rss_gib"] >= r["pass_peak_rss_gib"]
    assert 0 < r["alpha"] < 1 and r["alpha_ci"][0] <= r["alpha"] <= r["alpha_ci"][1]
    assert 0 < r["fleiss_kappa"] < 1 and r["fleiss_n_items"] > 0
    assert r["cohen_pairs"] > 0 and r["n_raters"] == 2000
    assert r["ds_converged"] and r["ds_n_iter"] > 0


def test_compare_small_cheap_references(compare_small: list[dict[str, Any]]) -> None:
    assert [(r["statistic"], r["reference"]) for r in compare_small] == [
        ("alpha", "krippendorff.alpha(value_counts)"),
        ("fleiss", "statsmodels fleiss_kappa(table)"),
        ("fleiss", "statsmodels aggregate_raters+fleiss_kappa"),
    ]
    for r in compare_small:
        assert set(r) >= COMPARE_KEYS
        assert r["n_labels"] == 20_000 and r["skipped"] is None
        assert _positive(r["prefgate_s"]) and _positive(r["reference_s"]) and _positive(r["ratio"])
        assert r["ratio"] == pytest.approx(r["reference_s"] / r["prefgate_s"])
        assert 0 <= r["convert_s"] <= r["reference_s"]
        assert r["abs_diff"] is not None and r["abs_diff"] < 1e-9  # same coefficient on both sides
        assert r["note"]
    text = bench.compare_table(compare_small, markdown=True)
    assert text.splitlines()[0].startswith("| statistic | prefgate (s)") and text.count("\n") == 1 + len(compare_small)


def test_compare_rejects_unknown_reference() -> None:
    with pytest.raises(ValueError, match="unknown references"):
        gov.compare(1_000, references=("nope",))


def _row(stat: str, ratio: float | None, estimated: float | None = None) -> dict[str, Any]:
    return {
        "statistic": stat,
        "reference": f"ref-{stat}",
        "prefgate_s": 1.0,
        "reference_s": ratio,
        "ratio": ratio,
        "estimated_s": estimated,
        "estimated_ratio": estimated,
        "note": "",
    }


def test_targets(full_small: dict[str, Any]) -> None:
    fast = dict(full_small, n_labels=10_000_000, total_s=12.0, process_peak_rss_gib=2.5)
    slow = dict(full_small, n_labels=10_000_000, total_s=31.0, process_peak_rss_gib=3.5)
    rows = [_row("alpha", 12.0), _row("alpha", 0.8), _row("cohen", None, 500.0), _row("dawid_skene", 25.0)]
    out = {t["target"]: t["result"] for t in bench.evaluate_targets({1_000_000: rows}, [fast])}
    assert out["full pass on 10,000,000 labels under 30 s wall"] == "met"
    assert out["full pass on 10,000,000 labels under 3 GiB peak RSS"] == "met"
    assert out["alpha at 1,000,000 labels: >= 10x every reference path"] == "MISSED"  # the 0.8x path decides
    assert out["cohen at 1,000,000 labels: >= 10x every reference path"] == "met (estimate)"
    assert out["dawid_skene at 1,000,000 labels: >= 10x every reference path"] == "met"
    assert out["fleiss at 1,000,000 labels: >= 1x every reference path"] == "not run"
    assert out["nothing slower than its peer at 1,000,000 labels"] == "MISSED"
    out = {t["target"]: t["result"] for t in bench.evaluate_targets({100_000: rows}, [slow])}
    assert out["full pass on 10,000,000 labels under 30 s wall"] == "MISSED"
    assert out["full pass on 10,000,000 labels under 3 GiB peak RSS"] == "MISSED"
    assert out["alpha at 1,000,000 labels: >= 10x every reference path"] == "not run"
    table = bench.full_table([fast, slow], markdown=False).splitlines()
    assert len(table) == 4 and table[2].split()[-2:] == ["yes", "yes"] and table[3].split()[-2:] == ["NO", "NO"]


def test_cli_bench_prints_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--sizes", "3000", "--full", "--references", "krippendorff", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "### Side by side at 3,000 labels" in out and "| alpha |" in out
    assert "### Targets" in out and "Full governance pass" not in out


def test_cli_bench_missing_reference_library(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "crowdkit" else real(name, *a))
    assert cli.main(["bench", "--sizes", "3000", "--full", "--references", "crowdkit-ds"]) == 2
    err = capsys.readouterr().err
    assert "crowdkit" in err and "pip install -e '.[dev]'" in err
