"""PII guard: detection (Luhn-checked cards, validated IPs), typed redaction, skip and allow."""

from __future__ import annotations

import pytest

from prefgate.judges.pii import detect, guard, luhn_valid, redact


def kinds(text: str) -> list[str]:
    return [f.kind for f in detect(text)]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+rlhf@example.co.uk today", "email"),
        ("Contact: J_Smith@mail-server.example.org.", "email"),
        ("call +44 20 7946 0958 now", "phone"),
        ("call +1-202-555-0143", "phone"),
        ("call +49 (0)30 901820", "phone"),
        ("call (202) 555-0143", "phone"),
        ("call 202-555-0143 or", "phone"),
        ("call 202.555.0143", "phone"),
        ("call 1 202 555 0143", "phone"),
        ("card 4111 1111 1111 1111 exp", "card"),
        ("card 4111-1111-1111-1111", "card"),
        ("amex 378282246310005", "card"),
        ("mc 5555555555554444.", "card"),
        ("server 192.168.1.10 is down", "ipv4"),
        ("ping 8.8.8.8", "ipv4"),
        ("host 2001:db8:85a3::8a2e:370:7334 up", "ipv6"),
        ("loopback ::1 here", "ipv6"),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "ipv6"),
        ("mapped ::ffff:192.0.2.128", "ipv6"),
        ("ssn 123-45-6789", "ssn"),
    ],
)
def test_detects(text: str, kind: str) -> None:
    assert kinds(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "order 1234567890123",  # 13 digits, fails Luhn
        "zeros 0000 0000 0000 0000",  # passes Luhn but is not a card
        "version 1.2.3.4.5 and 256.1.1.1",
        "at 12:30:45 on 2024-01-15",
        "std::vector<int> and Foo::bar()",
        "ssn-like 000-12-3456 and 666-12-3456 and 123-00-4567",
        "the answer is 42 and pi is 3.14159",
        "price $1,234.56 for 3 items",
        "ISBN 978-3-16-148410-0",
        "an email-like name@localhost",
        "call 555-0143",  # too short to be a phone
    ],
)
def test_no_false_positive(text: str) -> None:
    assert detect(text) == []


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("4111x11111111111")


def test_redaction_is_typed_and_complete() -> None:
    text = (
        "Mail john@example.com, call +44 20 7946 0958 or (202) 555-0143; card 4111 1111 1111 1111; "
        "IPs 10.0.0.1 and fe80::1ff:fe23:4567:890a; SSN 123-45-6789."
    )
    out = redact(text)
    assert out == ("Mail [EMAIL], call [PHONE] or [PHONE]; card [CARD]; IPs [IPV4] and [IPV6]; SSN [SSN].")
    for secret in ["john@", "7946", "555-0143", "4111", "10.0.0.1", "fe80", "6789"]:
        assert secret not in out


def test_guard_policies() -> None:
    text = "reach me at a.b@example.com"
    out, action, findings = guard(text, "redact")
    assert (out, action) == ("reach me at [EMAIL]", "redacted")
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [("email", "a.b@example.com")]
    assert guard(text, "skip")[:2] == (text, "skipped")
    assert guard(text, "allow")[:2] == (text, "allowed")
    for policy in ("redact", "skip", "allow"):
        assert guard("nothing personal here", policy) == ("nothing personal here", "none", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown PII policy"):
        guard(text, "mask")  # type: ignore[arg-type]


def test_overlaps_resolve_to_one_finding() -> None:
    # an IPv4 inside an IPv6 and digits inside an email are reported once, as the larger item
    assert kinds("see ::ffff:192.0.2.1 and 2025550143@example.com") == ["ipv6", "email"]
