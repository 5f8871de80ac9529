"""Position consistency in the calibration table, for every judge whose labels cover both presentation orders.

Hand-computed values on tiny frames, a plain-Python recomputation on a random frame (slices that roll up and one
that varies within a pair), and, where ``shared/data`` is present, real PandaLM and LLMFAO judges whose pairs were
seen in both orders once identical comparisons are merged into one canonical pair (as the pipeline's pair ids do).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from prefgate.calibration import build_overlap, calibration_table, ensemble_rows, validate_overlap
from prefgate.calibration.table import NO_BOTH_ORDERS, NO_ORDER

_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[2].parent / "shared" / "data", Path("/work/shared/data"))
DATA = next((p for p in _CANDIDATES if p.is_dir()), None)
OTHER = {"a": "b", "b": "a", "tie": "tie"}
Group = tuple[object, ...]  # judge_id, then the slice value if any
Key = tuple[object, object]  # judge_id, pair_id
Result = tuple[int, float | None]  # n_position_checked, position_consistency


def frame(rows: Sequence[tuple[str, str, str, str | None, bool | None, str]]) -> pl.DataFrame:
    """Overlap rows (judge, pair, choice, shown_first, position_consistent, category); human always a."""
    judge, pair, choice, first, flag, cat = (list(c) for c in zip(*rows, strict=True))
    return pl.DataFrame(
        {
            "judge_id": judge,
            "pair_id": pair,
            "choice": choice,
            "human": ["a"] * len(rows),
            "shown_first": first,
            "position_consistent": flag,
            "len_a": [10] * len(rows),
            "len_b": [20] * len(rows),
            "category": cat,
        },
        schema_overrides={"shown_first": pl.String, "position_consistent": pl.Boolean},
    )


def plain_position(rows: Iterable[Mapping[str, object]], keys: Sequence[str] = ("judge_id",)) -> dict[Group, Result]:
    """(n_position_checked, position_consistency) per group of ``keys``, one loop over the labels.

    A (judge, pair) labelled in both shown orders is consistent when all its labels give one choice; one without
    both orders is checked through its non-null flags (consistent unless one is False), else not at all. A pair
    counts once in every group its labels fall in.
    """
    orders: dict[Key, set[object]] = defaultdict(set)
    choices: dict[Key, set[object]] = defaultdict(set)
    flags: dict[Key, list[object]] = defaultdict(list)
    groups: dict[Key, set[Group]] = defaultdict(set)
    for r in rows:
        jp = (r["judge_id"], r["pair_id"])
        orders[jp].add(r["shown_first"])
        choices[jp].add(r["choice"])
        if r["position_consistent"] is not None:
            flags[jp].append(r["position_consistent"])
        groups[jp].add(tuple(r[k] for k in keys))
    checked: Counter[Group] = Counter()
    consistent: Counter[Group] = Counter()
    for jp, seen in orders.items():
        if {"a", "b"} <= seen:
            ok = len(choices[jp]) == 1
        elif flags[jp]:
            ok = all(flags[jp])
        else:
            continue
        for g in groups[jp]:
            checked[g] += 1
            consistent[g] += ok
    every = {g for gs in groups.values() for g in gs}
    return {g: (checked[g], consistent[g] / checked[g] if checked[g] else None) for g in every}


def table_position(table: pl.DataFrame, slice_: str = "all") -> dict[Group, Result]:
    part = table.filter(pl.col("slice") == slice_)
    return {
        ((j,) if slice_ == "all" else (j, v)): (n, c)
        for j, v, n, c in part.select("judge_id", "slice_value", "n_position_checked", "position_consistency").rows()
    }


def assert_same(got: dict[Group, Result], want: dict[Group, Result]) -> None:
    assert set(got) == set(want)
    for g, (n, c) in want.items():
        assert got[g][0] == n, g
        assert (got[g][1] is None) if c is None else got[g][1] == pytest.approx(c, abs=1e-12), g


TINY = [
    # "rec": a recorded judge that saw some pairs in both orders
    ("rec", "p1", "a", "a", None, "x"),
    ("rec", "p1", "a", "b", False, "x"),  # both orders agree: consistent (the labels rule over a stray flag)
    ("rec", "p2", "a", "a", None, "x"),
    ("rec", "p2", "b", "b", None, "x"),  # the swap flipped the verdict
    ("rec", "p3", "tie", "a", None, "y"),
    ("rec", "p3", "tie", "b", None, "y"),  # tie in both orders: consistent
    ("rec", "p4", "tie", "a", None, "y"),
    ("rec", "p4", "a", "b", None, "y"),  # tie one way, a the other: not consistent
    ("rec", "p5", "a", "a", None, "y"),  # one order only: not checked
    ("rec", "p6", "b", "a", None, "x"),
    ("rec", "p6", "b", "a", None, "x"),
    ("rec", "p6", "b", "b", None, "x"),  # three labels, all b: consistent
    ("rec", "p7", "a", "a", None, "x"),
    ("rec", "p7", "b", "a", None, "x"),
    ("rec", "p7", "a", "b", None, "x"),  # the two order-a labels disagree: not consistent
    # "merged": verdicts that already combine both orders (calibration.both_orders_judges): the flag decides
    ("merged", "p1", "a", None, True, "x"),
    ("merged", "p2", "tie", None, False, "x"),
    ("merged", "p3", "b", None, True, "y"),
    # "live": both orders of every pair, flags as the runner sets them
    ("live", "p1", "a", "a", True, "x"),
    ("live", "p1", "a", "b", True, "x"),
    ("live", "p2", "b", "a", False, "x"),
    ("live", "p2", "a", "b", False, "x"),
    # "first-only": every pair shown in one order; "no-order": order unknown and no flag
    ("first-only", "p1", "a", "a", None, "x"),
    ("first-only", "p2", "b", "b", None, "y"),
    ("no-order", "p1", "a", None, None, "x"),
]


def test_hand_computed() -> None:
    table = calibration_table(frame(TINY), ["category"])
    overall = {r["judge_id"]: r for r in table.filter(pl.col("slice") == "all").iter_rows(named=True)}
    got = {
        j: (r["n_position_checked"], r["position_consistency"], r["position_consistency_reason"])
        for j, r in overall.items()
    }
    assert got["rec"] == (6, pytest.approx(3 / 6), None)  # p1, p3, p6 of p1-p4, p6, p7
    assert got["merged"] == (3, pytest.approx(2 / 3), None)
    assert got["live"] == (2, pytest.approx(1 / 2), None)  # pairs, not labels
    assert got["first-only"] == (0, None, NO_BOTH_ORDERS)
    assert got["no-order"] == (0, None, NO_ORDER)
    by_cat = {
        (r["judge_id"], r["slice_value"]): (r["n_position_checked"], r["position_consistency"])
        for r in table.filter(pl.col("slice") == "category").iter_rows(named=True)
    }
    assert by_cat[("rec", "x")] == (4, pytest.approx(2 / 4))  # p1, p2, p6, p7
    assert by_cat[("rec", "y")] == (2, pytest.approx(1 / 2))  # p3, p4 (p5 unchecked)
    assert by_cat[("merged", "y")] == (1, 1.0)
    assert_same(table_position(table), plain_position(frame(TINY).to_dicts()))
    assert_same(table_position(table, "category"), plain_position(frame(TINY).to_dicts(), ("judge_id", "category")))


def test_ensemble_has_no_order() -> None:
    ens = ensemble_rows(validate_overlap(frame(TINY), ["category"]))
    row = calibration_table(ens).row(0, named=True)
    assert (row["n_position_checked"], row["position_consistency"], row["position_consistency_reason"]) == (
        0,
        None,
        NO_ORDER,
    )


def random_frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_pairs = n // 4
    pair = rng.integers(0, n_pairs, n)
    judge = rng.integers(0, 5, n)
    letters = np.array(["a", "b", "tie"], dtype=object)
    first = np.array(["a", "b", None], dtype=object)[rng.choice(3, n, p=[0.45, 0.45, 0.1])]
    flag = np.array([True, False, None], dtype=object)[rng.choice(3, n, p=[0.2, 0.1, 0.7])]
    return pl.DataFrame(
        {
            "judge_id": [f"j{j}" for j in judge],
            "pair_id": [f"p{p}" for p in pair],
            "choice": letters[rng.choice(3, n, p=[0.5, 0.4, 0.1])].tolist(),
            "human": letters[rng.integers(0, 3, n)].tolist(),
            "shown_first": first.tolist(),
            "position_consistent": flag.tolist(),
            "len_a": rng.integers(1, 100, n),
            "len_b": rng.integers(1, 100, n),
            "category": [f"c{p % 3}" for p in pair],  # a pair attribute
            "batch": [f"b{x}" for x in rng.integers(0, 2, n)],  # varies within a pair's labels
        },
        schema_overrides={"shown_first": pl.String, "position_consistent": pl.Boolean},
    )


@pytest.mark.parametrize("slices", [["category"], ["category", "batch"]])
def test_random_frame_matches_plain_python(slices: list[str]) -> None:
    df = random_frame(3000, seed=len(slices))
    table = calibration_table(df, slices)
    rows = df.to_dicts()
    want = plain_position(rows)
    assert sum(n for n, _ in want.values()) > 100
    assert_same(table_position(table), want)
    for s in slices:
        assert_same(table_position(table, s), plain_position(rows, ("judge_id", s)))


# ------------------------------------------------------------------ real data, identical comparisons merged


def _canonical(key: tuple[str, ...], first: str, second: str, ids: dict[tuple[str, ...], str]) -> tuple[str, str]:
    """The canonical pair id of (prompt..., two responses) and the side the first-shown response is on."""
    lo, hi = sorted((first, second))
    pid = ids.setdefault((*key, lo, hi), f"pair-{len(ids)}")
    return pid, "a" if first == lo else "b"


def _majority(votes: list[str]) -> str:
    top = Counter(votes).most_common()
    return "no_majority" if len(top) > 1 and top[0][1] == top[1][1] else top[0][0]


def _frames(
    pairs: dict[str, tuple[str, str]], labels: list[dict[str, object]], votes: dict[str, list[str]]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    pair_df = pl.DataFrame(
        {
            "pair_id": list(pairs),
            "response_a": [a for a, _ in pairs.values()],
            "response_b": [b for _, b in pairs.values()],
            "model_a": [None] * len(pairs),
            "model_b": [None] * len(pairs),
        },
        schema_overrides={"model_a": pl.String, "model_b": pl.String},
    )
    consensus = pl.DataFrame({"pair_id": list(votes), "verdict": [_majority(v) for v in votes.values()]})
    return pl.DataFrame(labels), consensus, pair_df


def load_pandalm() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """PandaLM test set: the same comparison sometimes recurs with the responses swapped."""
    assert DATA is not None
    root = DATA / "pandalm-testset"
    items = json.loads((root / "testset-v1.json").read_text())
    judges = {
        "recorded:gpt-3.5-turbo:pandalm-prompt": json.loads((root / "gpt-3.5-turbo-testset-v1.json").read_text()),
        "recorded:pandalm-7b:pandalm-prompt": json.loads((root / "pandalm-7b-testset-v1.json").read_text()),
    }
    code = {1: "first", 2: "second", 0: "tie", "1": "first", "2": "second", "Tie": "tie", "0": "tie"}
    ids: dict[tuple[str, ...], str] = {}
    pairs: dict[str, tuple[str, str]] = {}
    votes: dict[str, list[str]] = defaultdict(list)
    labels: list[dict[str, object]] = []
    for i, item in enumerate(items):
        r1, r2 = str(item["response1"]), str(item["response2"])
        pid, side = _canonical((str(item["instruction"]), str(item["input"])), r1, r2, ids)
        pairs[pid] = (r1, r2) if side == "a" else (r2, r1)
        on = {"first": side, "second": OTHER[side], "tie": "tie"}
        votes[pid] += [on[code[item[f"annotator{k}"]]] for k in (1, 2, 3)]
        for judge, out in judges.items():
            raw = out[i]["gpt_result" if "gpt" in judge else "pandalm_result"]
            if raw in code:
                labels.append(
                    {"judge_id": judge, "pair_id": pid, "choice": on[code[raw]], "shown_first": side, "status": "ok"}
                )
    return _frames(pairs, labels, votes)


def load_llmfao() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """LLMFAO: some models answered identically, so one comparison appears under two ids in both orders."""
    assert DATA is not None
    root = DATA / "llmfao"
    ids: dict[tuple[str, ...], str] = {}
    pairs: dict[str, tuple[str, str]] = {}
    where: dict[int, tuple[str, str]] = {}
    with gzip.open(root / "pairs-crowd.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            x, y = row["result_x"] or "", row["result_y"] or ""
            pid, side = _canonical((str(row["text"]),), x, y, ids)
            pairs[pid] = (x, y) if side == "a" else (y, x)
            where[int(row["id"])] = (pid, side)
    votes: dict[str, list[str]] = defaultdict(list)
    for key, winner in pl.read_csv(root / "crowd-comparisons.csv").select("id", "winner").iter_rows():
        pid, side = where[key]
        votes[pid].append({"left": side, "right": OTHER[side], "tie": "tie"}[winner])
    labels: list[dict[str, object]] = []
    for file, judge in (
        ("gpt3-crowd-comparisons.csv", "recorded:gpt-3.5-turbo-instruct:llmfao-instruction"),
        ("gpt4-crowd-comparisons.csv", "recorded:gpt-4:llmfao-instruction"),
    ):
        for key, winner in pl.read_csv(root / file).select("id", "winner").iter_rows():
            pid, side = where[key]
            choice = {"left": side, "right": OTHER[side], "tie": "tie"}[winner]
            labels.append({"judge_id": judge, "pair_id": pid, "choice": choice, "shown_first": side, "status": "ok"})
    return _frames(pairs, labels, votes)


Loader = Callable[[], tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]


@pytest.mark.skipif(DATA is None, reason="real data folder shared/data not found")
@pytest.mark.parametrize("loader", [load_pandalm, load_llmfao])
def test_real_judges_seen_in_both_orders(loader: Loader) -> None:
    labels, consensus, pairs = loader()
    overlap = build_overlap(labels, consensus, pairs)
    table = calibration_table(overlap)
    want = plain_position(overlap.to_dicts())
    assert_same(table_position(table), want)
    for judge, (n, consistency) in sorted(want.items()):
        print(f"{loader.__name__} {judge[0]}: n_position_checked={n} position_consistency={consistency}")
        assert n > 0 and consistency is not None  # every judge here saw at least one pair in both orders
