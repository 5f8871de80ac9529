"""Gold reference labels: kept out of the panel, one verdict per pair, and the pair's consensus."""

from __future__ import annotations

import polars as pl

from prefgate import schemas
from prefgate.gold import apply_gold, gold_verdicts, split_gold
from prefgate.governance import govern_consensus
from prefgate.policy import Policy

PAIRS = ["0" * 15 + str(i) for i in range(4)]


def _labels(rows: list[tuple[str, str, str, str]]) -> pl.DataFrame:
    """(label_id, pair_id, rater, choice) rows; the rater's prefix is its source."""
    return pl.DataFrame(
        {
            "label_id": [r[0] for r in rows],
            "pair_id": [r[1] for r in rows],
            "pair_key": [r[1] for r in rows],
            "rater_id": [r[2] for r in rows],
            "source": [r[2].split(":")[0] for r in rows],
            "choice": [r[3] for r in rows],
        }
    )


LABELS = _labels(
    [
        ("l1", PAIRS[0], "crowd:x", "a"),
        ("l2", PAIRS[0], "crowd:y", "a"),
        ("l3", PAIRS[1], "crowd:x", "b"),
        ("l4", PAIRS[1], "crowd:y", "a"),
        ("g1", PAIRS[1], "key:ref", "b"),
        ("g2", PAIRS[2], "key:ref", "tie"),
        ("g3", PAIRS[3], "key:ref", "a"),
        ("g4", PAIRS[3], "key:other", "b"),  # two gold labels that disagree: not a reference
    ]
)


def test_split_and_verdicts() -> None:
    panel, gold = split_gold(LABELS, {"key"})
    assert panel["label_id"].to_list() == ["l1", "l2", "l3", "l4"] and gold.height == 4
    verdicts, conflicting = gold_verdicts(gold)
    assert verdicts.rows() == [(PAIRS[1], "b"), (PAIRS[2], "tie")]
    assert conflicting["pair_id"].to_list() == [PAIRS[3]]


def test_gold_is_the_verdict_and_the_panel_stays_in_lineage() -> None:
    panel, gold = split_gold(LABELS, {"key"})
    policy = Policy.model_validate({"version": "t", "consensus": {"method": "majority"}})
    base = govern_consensus(panel, pl.DataFrame(schema={"rater_id": pl.String}), policy)
    out = schemas.validate(schemas.HumanConsensus, apply_gold(base, gold))
    rows = {r["pair_id"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == set(PAIRS)  # every labelled pair keeps a row
    assert (rows[PAIRS[3]]["verdict"], rows[PAIRS[3]]["confidence"]) == ("no_majority", None)
    assert rows[PAIRS[0]]["method"] == "majority" and rows[PAIRS[0]]["verdict"] == "a"
    assert (rows[PAIRS[1]]["method"], rows[PAIRS[1]]["verdict"], rows[PAIRS[1]]["confidence"]) == ("gold", "b", 1.0)
    assert rows[PAIRS[1]]["label_ids"] == ["g1", "l3", "l4"]  # the panel's split vote is still recorded
    assert (rows[PAIRS[2]]["n_tie"], rows[PAIRS[2]]["p_tie"], rows[PAIRS[2]]["n_labels"]) == (1, 1.0, 1)


def test_no_gold_changes_nothing() -> None:
    panel, gold = split_gold(LABELS, set())
    policy = Policy.model_validate({"version": "t", "consensus": {"method": "majority"}})
    base = govern_consensus(panel, pl.DataFrame(schema={"rater_id": pl.String}), policy)
    assert apply_gold(base, gold).equals(base)
