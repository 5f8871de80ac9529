"""QuotaPolicy validation, pattern resolution and balanced sampling by prompt group."""

import polars as pl
import pytest
from pydantic import ValidationError

from prefgate.quotas import QuotaPolicy, balanced_sample, resolve_quota


def test_policy_is_strict_and_frozen() -> None:
    policy = QuotaPolicy(max_per_cell={"en/*": 200, "*/coding": 50}, min_per_cell={"de/chat": 10}, seed=3)
    assert policy.max_per_cell["en/*"] == 200
    with pytest.raises(ValidationError):
        QuotaPolicy(max_per_cell={}, unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="language/category"):
        QuotaPolicy(max_per_cell={"en": 5})
    with pytest.raises(ValidationError, match="language/category"):
        QuotaPolicy(max_per_cell={"en/chat/x": 5})
    with pytest.raises(ValidationError, match=">= 0"):
        QuotaPolicy(min_per_cell={"en/chat": -1})
    with pytest.raises(ValidationError):
        policy.seed = 4  # type: ignore[misc]


def test_resolve_quota_specificity_then_restrictiveness() -> None:
    quotas = {"en/*": 200, "*/coding": 50, "en/chat": 7, "*/*": 1000}
    assert resolve_quota("en/chat", quotas) == ("en/chat", 7)
    assert resolve_quota("en/coding", quotas) == ("*/coding", 50)  # two one-wildcard matches: smaller cap
    assert resolve_quota("en/coding", quotas, floor=True) == ("en/*", 200)  # as a floor: larger one
    assert resolve_quota("de/chat", quotas) == ("*/*", 1000)
    assert resolve_quota("de/chat", {"en/*": 1}) is None


def pool() -> pl.DataFrame:
    """en/coding: p0 (2 rows, w 1.0), p1 (w 0.5), p2 (w 0.9); en/chat: p3, p4; unknown/chat: p5 (2 rows);
    de/coding: p6; de/unknown: p7."""
    return pl.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(10)],
            "prompt_id": ["p0", "p0", "p1", "p2", "p3", "p4", "p5", "p5", "p6", "p7"],
            "language": ["en"] * 6 + [None, None, "de", "de"],
            "category": ["coding"] * 4 + ["chat"] * 4 + ["coding", None],
            "weight": [1.0, 1.0, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        },
        schema_overrides={"language": pl.String, "category": pl.String},
    )


def test_balanced_sample_hand_computed() -> None:
    policy = QuotaPolicy(max_per_cell={"en/*": 2, "*/coding": 1, "unknown/*": 0}, seed=1)
    kept, dropped = balanced_sample(pool(), policy)
    # en/coding (cap 1 from */coding): p0 weighs most but has 2 rows and does not fit; p2 (0.9) fits; p1 dropped.
    # en/chat (cap 2): both kept. unknown/chat (cap 0): dropped. de/coding (cap 1): kept. de/unknown: no quota.
    assert kept["example_id"].to_list() == ["e3", "e4", "e5", "e8", "e9"]
    assert dropped["example_id"].to_list() == ["e0", "e1", "e2", "e6", "e7"]
    reasons = dict(zip(dropped["example_id"], dropped["reason"], strict=True))
    assert reasons["e0"] == "quota en/coding: 1 kept of 4"
    assert reasons["e6"] == "quota unknown/chat: 0 kept of 2"
    assert dict(zip(dropped["example_id"], dropped["quota_rule"], strict=True))["e2"] == "*/coding"
    assert kept.columns == pool().columns
    assert dropped.columns == [*pool().columns, "reason", "quota_rule"]


def test_in_equals_kept_plus_dropped_and_prompts_stay_together() -> None:
    n = 120
    df = pl.DataFrame(
        {
            "example_id": [f"x{i:03d}" for i in range(n)],
            "prompt_id": [f"p{i // 3}" for i in range(n)],  # 3 rows per prompt
            "language": ["en" if i % 2 else "fr" for i in range(n // 3) for _ in range(3)],
            "category": ["chat"] * n,
            "weight": [1.0] * n,
        }
    )
    kept, dropped = balanced_sample(df, QuotaPolicy(max_per_cell={"*/chat": 10}, seed=0))
    assert kept.height + dropped.height == n
    assert sorted(kept["example_id"].to_list() + dropped["example_id"].to_list()) == df["example_id"].to_list()
    assert set(kept["prompt_id"]).isdisjoint(set(dropped["prompt_id"]))
    per_cell = kept.group_by("language").len()
    assert per_cell["len"].to_list() == [9, 9]  # 3 whole prompts of 3 rows fit under 10
    assert set(dropped["reason"]) == {"quota en/chat: 9 kept of 60", "quota fr/chat: 9 kept of 60"}


def test_deterministic_and_seeded() -> None:
    df = pl.DataFrame(
        {
            "example_id": [f"x{i:03d}" for i in range(40)],
            "prompt_id": [f"p{i:03d}" for i in range(40)],
            "language": ["en"] * 40,
            "category": ["chat"] * 40,
            "weight": [1.0] * 40,
        }
    )
    first, _ = balanced_sample(df, QuotaPolicy(max_per_cell={"en/chat": 5}, seed=7))
    again, _ = balanced_sample(df.reverse(), QuotaPolicy(max_per_cell={"en/chat": 5}, seed=7))
    assert sorted(first["example_id"]) == sorted(again["example_id"])  # independent of input order
    others = {
        tuple(sorted(balanced_sample(df, QuotaPolicy(max_per_cell={"en/chat": 5}, seed=s))[0]["example_id"]))
        for s in range(5)
    }
    assert len(others) > 1  # the seed changes which prompts a capped cell keeps


def test_higher_weight_groups_win() -> None:
    df = pl.DataFrame(
        {
            "example_id": [f"x{i}" for i in range(6)],
            "prompt_id": [f"p{i}" for i in range(6)],
            "language": ["en"] * 6,
            "category": ["chat"] * 6,
            "weight": [0.1, 0.9, 0.2, 0.8, 0.3, 0.7],
        }
    )
    for seed in range(3):
        kept, _ = balanced_sample(df, QuotaPolicy(max_per_cell={"en/chat": 3}, seed=seed))
        assert kept["example_id"].to_list() == ["x1", "x3", "x5"]


def test_no_caps_keeps_everything_and_empty_input() -> None:
    kept, dropped = balanced_sample(pool(), QuotaPolicy(min_per_cell={"en/chat": 100}))
    assert kept.equals(pool())
    assert dropped.height == 0
    assert dropped.columns == [*pool().columns, "reason", "quota_rule"]
    kept, dropped = balanced_sample(pool().clear(), QuotaPolicy(max_per_cell={"*/*": 1}))
    assert kept.height == dropped.height == 0


def test_groups_by_example_id_without_prompt_id() -> None:
    kept, dropped = balanced_sample(pool().drop("prompt_id"), QuotaPolicy(max_per_cell={"en/coding": 2}))
    assert kept.filter((pl.col("language") == "en") & (pl.col("category") == "coding"))["example_id"].to_list() == [
        "e0",
        "e1",
    ]  # weight 1.0 rows first
    assert dropped["example_id"].to_list() == ["e2", "e3"]
    with pytest.raises(ValueError, match="prompt_id or example_id"):
        balanced_sample(pool().drop("prompt_id", "example_id"), QuotaPolicy(max_per_cell={"*/*": 1}))
