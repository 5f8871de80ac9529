"""Scrub credentials out of every text a judge stores or returns (errors, raw answers, rationales, ``extra``).

Why: an endpoint may echo the request's ``Authorization`` header back (a proxy's HTML error page, a debug body,
a model repeating what it was sent); whatever a judge records reaches the judgment cache and the labels table.

Removed (the credential becomes ``***``; a header name, an auth scheme or a key prefix is kept for the reader):

* the given secrets, exactly, longest first (e.g. the judge's own API key);
* header echoes: ``Authorization``, ``Proxy-Authorization``, ``X-Api-Key``, ``api-key`` / ``api_key`` /
  ``apikey`` followed by ``:`` or ``=`` (quotes allowed, as in JSON or a Python dict) -> ``Authorization: Bearer
  ***``;
* ``Bearer <token>`` anywhere, for a token of 8+ characters holding a digit or one of ``._~+/-``, or of 20+
  characters (so prose such as "the bearer of bad news" is left alone);
* common key shapes: ``sk-`` / ``sk_`` followed by 16+ key characters (OpenAI, Anthropic, Stripe, ...), and
  ``gsk_`` / ``hf_`` / ``xai-`` / ``pplx-`` / ``r8_`` followed by 16+ key characters with a digit; ``AIza`` + 35
  (Google).

:func:`register_secret` records a secret for the whole process (an API key when a judge is built), so that code
which does not know the judge -- the runner and the cache's write path -- scrubs it too (like a CI log mask).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import lru_cache

from prefgate.judges.base import Judgment

MASK = "***"

_KNOWN: frozenset[str] = frozenset()

_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]?key)"
    r"(?P<sep>[\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token|digest)\s+)?"
    r"(?P<value>[^\s\"'`,;<>&()\[\]{}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer\s+)(?P<token>[A-Za-z0-9._~+/-]+=*)", re.IGNORECASE)
_KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?P<prefix>sk[-_]|gsk_|hf_|xai-|pplx-|r8_)(?P<tail>[A-Za-z0-9_-]{16,})"
    r"|(?P<google>AIza)[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-]))"
)
# Cheap pre-check on the lower-cased text (several times faster than the patterns above, or than one
# case-insensitive pattern): text holding none of these cannot match, and most cache rows hold none.
_TRIGGER = re.compile(r"bearer|authoriz|api[-_]?key|sk[-_]|hf_|xai-|pplx-|r8_|aiza")


def register_secret(value: str | None) -> None:
    """Remember a secret for this process so that every later scrub (runner, cache) removes it too."""
    global _KNOWN
    if value:
        _KNOWN = _KNOWN | {value}


def known_secrets() -> frozenset[str]:
    """The secrets registered in this process (never log or store the result)."""
    return _KNOWN


def _ordered(secrets: Iterable[str]) -> tuple[str, ...]:
    """Distinct non-empty secrets, longest first (a key that contains another is masked whole)."""
    if isinstance(secrets, frozenset | tuple):
        return _ordered_cached(secrets)
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


@lru_cache(maxsize=64)
def _ordered_cached(secrets: frozenset[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def _header(m: re.Match[str]) -> str:
    return f"{m['name']}{m['sep']}{m['scheme'] or ''}{MASK}"


def _bearer(m: re.Match[str]) -> str:
    token = m["token"]
    credential = len(token) >= 20 or (len(token) >= 8 and any(c.isdigit() or c in "._~+/-" for c in token))
    return f"{m['scheme']}{MASK}" if credential else m.group()


def _key_shape(m: re.Match[str]) -> str:
    if m["google"]:
        return f"{m['google']}{MASK}"
    prefix = m["prefix"]
    if not prefix.lower().startswith("sk") and not any(c.isdigit() for c in m["tail"]):
        return m.group()
    return f"{prefix}{MASK}"


def _scrub(text: str, ordered: tuple[str, ...]) -> str:
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _suspect(text, ()):
        return text
    text = _HEADER.sub(_header, text)
    text = _BEARER.sub(_bearer, text)
    return _KEY_SHAPE.sub(_key_shape, text)


def scrub_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with the given secrets, auth-header echoes, bearer tokens and key-shaped strings masked."""
    return _scrub(text, _ordered(secrets))


def _scrub_value(value: object, ordered: tuple[str, ...]) -> object:
    """Strings inside JSON-like values (dicts, lists, tuples) scrubbed; other values as they are."""
    if isinstance(value, str):
        return _scrub(value, ordered)
    if isinstance(value, dict):
        return {k: _scrub_value(v, ordered) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, ordered) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub_value(v, ordered) for v in value)
    return value


def _strings(value: object) -> Iterator[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _suspect(text: str, ordered: tuple[str, ...]) -> bool:
    """Whether the text may hold something to mask (False means it certainly does not)."""
    for secret in ordered:
        if secret in text:
            return True
    return _TRIGGER.search(text.lower()) is not None


def scrub_judgment(judgment: Judgment, secrets: Iterable[str] = ()) -> Judgment:
    """The judgment with its free-text fields (raw_output, rationale, error, extra) scrubbed.

    The same object comes back when nothing needed masking (the common case, no copy); otherwise a copy. Keys,
    hashes and verdicts are identifiers chosen by code, not text from the endpoint, and are left as they are.
    """
    ordered = _ordered(secrets)
    texts = [judgment.raw_output, judgment.rationale or "", judgment.error or "", *_strings(judgment.extra)]
    if not _suspect("\n".join(texts), ordered):  # one check for the whole record: the cache write hot path
        return judgment
    raw = _scrub(judgment.raw_output, ordered)
    rationale = None if judgment.rationale is None else _scrub(judgment.rationale, ordered)
    error = None if judgment.error is None else _scrub(judgment.error, ordered)
    extra = {k: _scrub_value(v, ordered) for k, v in judgment.extra.items()}
    if (raw, rationale, error, extra) == (judgment.raw_output, judgment.rationale, judgment.error, judgment.extra):
        return judgment
    return replace(judgment, raw_output=raw, rationale=rationale, error=error, extra=extra)
