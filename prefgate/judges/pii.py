"""PII guard for text that leaves the machine (remote judges only; local judges record ``"local"``).

Detected:

* e-mail addresses, internationalised ones included (``josé.müller@bücher.de``, ``用户@例子.广告``: letters and
  digits of any script, a full-width ``＠`` and the IDNA dots ``。．｡``), and obfuscated ones: ``jane [at]
  example [dot] org``, ``jane (at) example (dot) com`` (any bracket: ``[] () {} <>``, also ``[@]`` / ``[.]``),
  and ``name dot x at example dot com`` -- the bare-word form only with at least one spelled-out ``dot`` and a
  common top-level domain (so "works at example.com" or "look at data dot product" are not addresses);
* phone numbers: international ``+CC ...``, US formats with separators (``(202) 555-0143``, ``202.555.0143``)
  and a bare 10-digit US number (``4155550132``: area code and exchange start with 2-9; not when part of a longer
  digit run or a decimal number);
* payment card numbers: 13-19 digits, spaces or dashes anywhere, or dots between groups (``4111.1111.1111.1111``,
  Amex ``3782.822463.10005``), Luhn-validated;
* IPv4 and IPv6 addresses (validated with :mod:`ipaddress`);
* US social security numbers (``AAA-GG-SSSS``, invalid area/group/serial excluded).

Not detected on purpose: plain numbers that are not phone-shaped (a year, a count, ``3.14159``, 10 digits inside
a longer run, a 10-digit number starting with 0 or 1 such as a Unix timestamp). Overlapping matches keep the
earliest, then the longest, then the higher-priority kind (email > card > ssn > ipv6 > ipv4 > phone).

Policies: ``redact`` replaces each finding with a typed placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``,
``[IPV4]``, ``[IPV6]``, ``[SSN]``); ``skip`` tells the caller not to send the text; ``allow`` sends it as is.
Findings carry kind and span only; the matched text is not kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from prefgate.judges.base import PiiAction

PiiPolicy = Literal["redact", "skip", "allow"]
PiiKind = Literal["email", "card", "ssn", "ipv6", "ipv4", "phone"]
PII_POLICIES: tuple[PiiPolicy, ...] = ("redact", "skip", "allow")
PLACEHOLDERS: dict[PiiKind, str] = {
    "email": "[EMAIL]",
    "card": "[CARD]",
    "ssn": "[SSN]",
    "ipv6": "[IPV6]",
    "ipv4": "[IPV4]",
    "phone": "[PHONE]",
}
_PRIORITY: dict[PiiKind, int] = {"email": 0, "card": 1, "ssn": 2, "ipv6": 3, "ipv4": 4, "phone": 5}


@dataclass(frozen=True)
class PiiFinding:
    """One detected item: its kind and its span ``text[start:end]``."""

    kind: PiiKind
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) checksum of a digit string."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Letters and digits of any script (``[^\W_]``), so internationalised addresses match; IDNA dots and a full-width @.
_DOTS = "[.\u3002\uff0e\uff61]"
_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w.%+-]+[@\uff20](?:[^\W_](?:[\w-]{{0,61}}[^\W_])?{_DOTS})+(?:[^\W\d_]{{2,}}|xn--[a-z0-9-]+)\b"
)
# Obfuscated: "[at]" / "(at)" / " at ", "[dot]" / "(dot)" / " dot " / "."; validated in :func:`_obfuscated`.
# Bounded parts (64-char words, 5 segments a side) keep the scan linear on long "x dot x dot ..." runs.
_OB_AT = r"(?:\s*[\[({<]\s*(?P<bat>at|@)\s*[\])}>]\s*|\s+at\s+)"
_OB_DOT = r"(?:\s*[\[({<]\s*(?:dot|\.)\s*[\])}>]\s*|\s+dot\s+|\.)"
_OB_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w%+-]{{1,64}}(?:{_OB_DOT}[\w%+-]{{1,64}}){{0,4}}{_OB_AT}"
    rf"[^\W_][\w-]{{0,62}}(?:{_OB_DOT}[^\W_][\w-]{{0,62}}){{0,4}}{_OB_DOT}(?P<tld>[^\W\d_]{{2,24}})(?![\w-])",
    re.IGNORECASE,
)
_SPELLED_DOT = re.compile(r"[\[({<]\s*(?:dot|\.)\s*[\])}>]|\sdot\s", re.IGNORECASE)
# Top-level domains accepted after a bare-word " at " (the bracketed forms accept any); TLDs that are English
# words ("in", "at", "it", "me", "us", "no", "be") are left out on purpose.
_COMMON_TLDS = frozenset(
    {"com", "org", "net", "edu", "gov", "mil", "io", "ai", "dev", "info", "biz", "uk", "de", "fr", "es", "nl", "ch",
     "se", "dk", "fi", "pl", "cz", "ru", "ca", "au", "nz", "jp", "cn", "kr", "br", "mx", "eu"}
)  # fmt: skip
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# Dots only between digit groups: 4-4-4-4 (to 4-4-4-4-3) and Amex/Diners 4-6-5 / 4-6-4, never "3.14159...".
_CARD_DOTS = re.compile(r"(?<![\d.])(?:\d{4}(?:\.\d{4}){2}\.\d{4}(?:\.\d{1,3})?|\d{4}\.\d{6}\.\d{4,5})(?!\d|\.\d)")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:.]*::|(?:[0-9A-Fa-f]{1,4}:){2})[0-9A-Fa-f:.]{3,45}(?:%[\w.]+)?(?![\w:])")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\d])")
_PHONE_US = re.compile(r"(?<![\w+])(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d|-\d)")
# A bare 10-digit US number (NANP: area code and exchange start with 2-9), standing alone: not inside a longer
# digit run, a word, a decimal number or a dashed/dotted code.
_PHONE_US_BARE = re.compile(r"(?<![\w+.,-])[2-9]\d{2}[2-9]\d{6}(?![\w-]|[.,]\d)")


def _emails(text: str) -> Iterable[PiiFinding]:
    for m in _EMAIL.finditer(text):
        yield PiiFinding("email", m.start(), m.end())
    yield from _obfuscated(text)


def _obfuscated(text: str) -> Iterable[PiiFinding]:
    """Spelled-out addresses; a bare " at " needs a spelled-out dot and a common TLD (prose says "at" a lot)."""
    pos = 0
    while (m := _OB_EMAIL.search(text, pos)) is not None:
        if m["bat"] is not None or (m["tld"].lower() in _COMMON_TLDS and _SPELLED_DOT.search(m.group())):
            yield PiiFinding("email", m.start(), m.end())
            pos = m.end()
        else:  # rejected: a shorter address may still start later inside this match
            pos = m.start() + 1


def _cards(text: str) -> Iterable[PiiFinding]:
    for pattern in (_CARD, _CARD_DOTS):
        for m in pattern.finditer(text):
            digits = re.sub(r"[ .-]", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
                yield PiiFinding("card", m.start(), m.end())


def _ssns(text: str) -> Iterable[PiiFinding]:
    for m in _SSN.finditer(text):
        yield PiiFinding("ssn", m.start(), m.end())


def _ipv4s(text: str) -> Iterable[PiiFinding]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield PiiFinding("ipv4", m.start(), m.end())


def _ipv6s(text: str) -> Iterable[PiiFinding]:
    for m in _IPV6.finditer(text):
        candidate = m.group().split("%", 1)[0].rstrip(".")
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield PiiFinding("ipv6", m.start(), m.start() + len(m.group().rstrip(".")))


def _phones(text: str) -> Iterable[PiiFinding]:
    for m in _PHONE_INTL.finditer(text):
        n = sum(c.isdigit() for c in m.group())
        if 8 <= n <= 15:
            yield PiiFinding("phone", m.start(), m.end())
    for pattern in (_PHONE_US, _PHONE_US_BARE):
        for m in pattern.finditer(text):
            yield PiiFinding("phone", m.start(), m.end())


_DETECTORS: tuple[Callable[[str], Iterable[PiiFinding]], ...] = (_emails, _cards, _ssns, _ipv6s, _ipv4s, _phones)


def detect(text: str) -> list[PiiFinding]:
    """All non-overlapping findings, sorted by position."""
    found = [f for detector in _DETECTORS for f in detector(text)]
    found.sort(key=lambda f: (f.start, -(f.end - f.start), _PRIORITY[f.kind]))
    kept: list[PiiFinding] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


def redact(text: str, findings: Iterable[PiiFinding] | None = None) -> str:
    """The text with every finding replaced by its typed placeholder."""
    spans = sorted(detect(text) if findings is None else findings, key=lambda f: f.start)
    out: list[str] = []
    pos = 0
    for f in spans:
        out.append(text[pos : f.start])
        out.append(PLACEHOLDERS[f.kind])
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def guard(text: str, policy: PiiPolicy) -> tuple[str, PiiAction, list[PiiFinding]]:
    """Apply a PII policy to text bound for a remote judge.

    Returns ``(text_out, action, findings)``. Without findings the action is ``"none"`` and the text unchanged.
    With findings: ``redact`` -> placeholders, action ``"redacted"``; ``skip`` -> text unchanged, action
    ``"skipped"`` (the caller must not send it); ``allow`` -> text unchanged, action ``"allowed"``.
    """
    if policy not in PII_POLICIES:
        raise ValueError(f"unknown PII policy {policy!r}; expected one of {', '.join(PII_POLICIES)}")
    findings = detect(text)
    if not findings:
        return text, "none", findings
    if policy == "redact":
        return redact(text, findings), "redacted", findings
    if policy == "skip":
        return text, "skipped", findings
    return text, "allowed", findings
