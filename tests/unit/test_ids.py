"""Content-hash ids: normalisation, stability, format, order invariance."""

from __future__ import annotations

import hashlib
import re

from prefgate.ids import content_hash, file_sha256, normalize_text, pair_id, prompt_id, response_id

HEX16 = re.compile(r"[0-9a-f]{16}")


def _manual_hash(*parts: str) -> str:
    """Independent re-statement of the documented scheme: sha256 over length-prefixed UTF-8 parts, 16 hex."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def test_normalize_nfc_newlines_and_strip() -> None:
    # decomposed e + combining acute -> precomposed é; CRLF and lone CR -> LF; outer whitespace stripped.
    assert normalize_text("  e\u0301\r\nx\ry \n\t") == "\u00e9\nx\ny"


def test_normalize_keeps_inner_whitespace() -> None:
    assert normalize_text("a  b\n\nc") == "a  b\n\nc"


def test_prompt_id_equal_for_equivalent_texts() -> None:
    assert prompt_id("caf\u00e9") == prompt_id("cafe\u0301")
    assert prompt_id("line1\r\nline2") == prompt_id("  line1\nline2\n")
    assert prompt_id("hello") != prompt_id("Hello")


def test_ids_are_16_lowercase_hex() -> None:
    for value in (prompt_id("x"), response_id("x"), pair_id(prompt_id("p"), response_id("a"), response_id("b"))):
        assert HEX16.fullmatch(value), value


def test_ids_are_stable_golden_values() -> None:
    # Golden value: any change to the hashing scheme would silently re-key every table.
    assert prompt_id("hello") == "0a2ad7ceb8d8be30"
    assert prompt_id("hello") == _manual_hash("prompt", "hello")
    assert response_id("Sure.") == "33607ca6abdf7bcc" == _manual_hash("response", "Sure.")


def test_prompt_and_response_ids_are_namespaced() -> None:
    assert prompt_id("same text") != response_id("same text")


def test_content_hash_part_boundaries_cannot_collide() -> None:
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash("abc") != content_hash("ab", "c")


def test_pair_id_is_order_invariant() -> None:
    p, r1, r2 = prompt_id("Q"), response_id("A"), response_id("B")
    assert pair_id(p, r1, r2) == pair_id(p, r2, r1)
    lo, hi = sorted((r1, r2))
    assert pair_id(p, r1, r2) == _manual_hash("pair", p, lo, hi)


def test_pair_id_differs_for_different_prompt_or_responses() -> None:
    r1, r2 = response_id("A"), response_id("B")
    assert pair_id(prompt_id("Q1"), r1, r2) != pair_id(prompt_id("Q2"), r1, r2)
    assert pair_id(prompt_id("Q1"), r1, r2) != pair_id(prompt_id("Q1"), r1, response_id("C"))


def test_file_sha256_matches_hashlib(tmp_path) -> None:
    data = bytes(range(256)) * 5000  # > 1 MiB, so the chunked read crosses a chunk boundary
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(str(empty)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
