"""Governance policy: loads, hashes by content, errors name file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prefgate.policy import Policy, PolicyError, load_policy

CONFIG = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_policy_loads() -> None:
    p = load_policy(CONFIG)
    assert p.version == "2026-11-27.1"
    assert (p.consensus.method, p.consensus.min_labels, p.consensus.min_agreement) == ("dawid_skene", 2, 0.6)
    assert p.consensus.min_confidence == 0.8
    assert p.raters.exclude_flags == ["spammer", "biased"]
    assert (p.agreement.min_alpha, p.agreement.max_flagged_share) == (0.3, 0.2)
    assert (p.split.eval_fraction, p.split.salt) == (0.1, "prefgate-split-v1")
    assert p.ingest.max_quarantine_share == 0.2
    assert (p.gold_pairs, p.quotas.max_per_cell, p.sources_allowed_in_training) == ([], {}, [])
    assert re.fullmatch(r"[0-9a-f]{16}", p.policy_hash)


def test_hash_ignores_key_order_and_comments(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        """
version: "v1"
consensus: {min_labels: 3, min_agreement: 0.7}
split: {eval_fraction: 0.2, salt: s}
quotas: {max_per_cell: {"*/coding": 10, "*/writing": 5}}
""",
    )
    b = write(
        tmp_path,
        "b.yaml",
        """
# same content, different layout
quotas:
  max_per_cell:
    "*/writing": 5   # comment
    "*/coding": 10
split:
  salt: s
  eval_fraction: 0.2
consensus:
  min_agreement: 0.7
  min_labels: 3
version: "v1"
""",
    )
    assert load_policy(a).policy_hash == load_policy(b).policy_hash
    changed = write(tmp_path, "c.yaml", a.read_text().replace("min_labels: 3", "min_labels: 4"))
    assert load_policy(changed).policy_hash != load_policy(a).policy_hash


def test_hash_covers_defaults() -> None:
    # spelling out a default is the same policy
    assert Policy(version="v").policy_hash == Policy(version="v", consensus={"min_labels": 2}).policy_hash
    assert Policy(version="v").policy_hash != Policy(version="w").policy_hash


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('version: "v"\nconsensus: {min_label: 3}\n', "consensus.min_label"),
        ('version: "v"\nconsensus: {min_labels: many}\n', "consensus.min_labels"),
        ('version: "v"\nsplit: {eval_fraction: 1.5}\n', "split.eval_fraction"),
        ('version: "v"\nthresholds: {}\n', "thresholds"),
        ('version: "v"\ngold_pairs: [{pair_id: x, choice: maybe}]\n', "gold_pairs.0.choice"),
        ("consensus: {min_labels: 2}\n", "version"),
    ],
)
def test_invalid_policy_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = write(tmp_path, "policy.yaml", body)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(path) in str(err.value)
    assert f"key '{key}'" in str(err.value)


def test_duplicate_gold_pairs_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", 'version: "v"\ngold_pairs: [{pair_id: x, choice: a}, {pair_id: x, choice: b}]\n')
    with pytest.raises(PolicyError, match="a pair_id appears twice"):
        load_policy(path)


def test_unreadable_or_non_mapping_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"missing\.yaml: cannot read"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match=r"list\.yaml: expected a mapping"):
        load_policy(write(tmp_path, "list.yaml", "- a\n- b\n"))
    with pytest.raises(PolicyError, match=r"bad\.yaml: not valid YAML"):
        load_policy(write(tmp_path, "bad.yaml", "version: [unclosed\n"))
