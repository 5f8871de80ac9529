"""PII guard for text that leaves the machine (remote judges only; local judges record ``"local"``).

Detected: e-mail addresses, phone numbers (international ``+CC ...`` and US formats), payment card numbers
(13-19 digits, spaces or dashes allowed, Luhn-validated), IPv4 and IPv6 addresses (validated with
:mod:`ipaddress`), and US social security numbers (``AAA-GG-SSSS``, invalid area/group/serial excluded).
Overlapping matches keep the earliest, then the longest, then the higher-priority kind (email > card > ssn >
ipv6 > ipv4 > phone).

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


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:.]*::|(?:[0-9A-Fa-f]{1,4}:){2})[0-9A-Fa-f:.]{3,45}(?:%[\w.]+)?(?![\w:])")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\d])")
_PHONE_US = re.compile(r"(?<![\w+])(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d|-\d)")


def _emails(text: str) -> Iterable[PiiFinding]:
    for m in _EMAIL.finditer(text):
        yield PiiFinding("email", m.start(), m.end())


def _cards(text: str) -> Iterable[PiiFinding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
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
    for m in _PHONE_US.finditer(text):
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
