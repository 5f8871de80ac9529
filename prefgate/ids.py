"""Content-hash identifiers.

Ids are derived from content, never from position or arrival order, so the same prompt, response or pair gets
the same id in every file, batch and rerun. That is what makes ingestion idempotent and lineage joinable.
"""

from __future__ import annotations

import hashlib
import unicodedata

ID_HEX_CHARS = 16  # 64 bits: collision odds stay negligible far beyond 10^8 rows.


def normalize_text(text: str) -> str:
    """Canonical form used for hashing: Unicode NFC, unified newlines, outer whitespace stripped."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def content_hash(*parts: str) -> str:
    """Stable hex id of an ordered tuple of strings (parts are length-prefixed, so boundaries cannot collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:ID_HEX_CHARS]


def prompt_id(prompt: str) -> str:
    """Id of a prompt text."""
    return content_hash("prompt", normalize_text(prompt))


def response_id(response: str) -> str:
    """Id of a response text (independent of the prompt, so identical answers share it)."""
    return content_hash("response", normalize_text(response))


def pair_id(prompt_id_: str, response_id_1: str, response_id_2: str) -> str:
    """Order-invariant id of a (prompt, response, response) comparison."""
    lo, hi = sorted((response_id_1, response_id_2))
    return content_hash("pair", prompt_id_, lo, hi)


def file_sha256(path: str) -> str:
    """Full sha256 of a file's bytes: the identity of a landing file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
