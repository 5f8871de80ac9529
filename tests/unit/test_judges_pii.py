"""PII guard: detection (Luhn-checked cards, validated IPs), typed redaction, skip and allow."""

from __future__ import annotations

import time

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
        # bare 10-digit US number, dotted card, internationalised and obfuscated e-mail (issue 11, item 8)
        ("call 4155550132 now", "phone"),
        ("call me: 4155550132.", "phone"),
        ("card 4111.1111.1111.1111 exp", "card"),
        ("amex 3782.822463.10005", "card"),
        ("mail josé.müller@bücher.de today", "email"),
        ("邮件 用户@例子.广告 谢谢", "email"),
        ("full-width 用户＠例子。广告", "email"),
        ("write to name dot x at example dot com.", "email"),
        ("jane [at] example [dot] org", "email"),
        ("jane (at) example (dot) com", "email"),
        ("jane{at}example{dot}co.uk", "email"),
        ("jane [@] example [.] org", "email"),
        ("Jane AT Example DOT Com", "email"),
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
        # plain numbers that are not phones
        "founded in 2024, 123456 users",  # a year, a 6-digit count
        "pi is 3.14159 or 3.1415926535",  # decimals, one with 10 digits after the point
        "id 12345678901234 and 4155550132999",  # 10 digits inside a longer run
        "x4155550132 and 4155550132.5 and 4155550132-7",  # in a word, a decimal, a dashed code
        "epoch 1700000000 and 0123456789",  # 10 digits not NANP-shaped (leading 1 or 0)
        "call 415555013",  # 9 digits
        # dots that are not card separators
        "3.1415926535897932 and 2024.0115.0930.1234",
        "card 4111.1111.1111.1112",  # grouped, fails Luhn
        # "at" / "dot" in prose
        "he works at example.com now",
        "look at the data dot product",
        "meet at 5 dot and she is at home dot",
        "the cat sat at the mat dot in",
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


def test_new_detectors_redact_the_whole_item() -> None:
    text = "Ring 4155550132, pay 4111.1111.1111.1111, write josé.müller@bücher.de or jane [at] example [dot] org."
    assert redact(text) == "Ring [PHONE], pay [CARD], write [EMAIL] or [EMAIL]."
    assert redact("name dot x at example dot com") == "[EMAIL]"


def test_obfuscated_email_scan_is_linear() -> None:
    # long runs of "dot" / "[dot]" without an address: bounded parts keep the scan fast
    for text in ("x dot " * 5000, "x [dot] " * 5000, ("x dot " * 2500) + "at " + ("y dot " * 2500)):
        start = time.process_time()
        assert detect(text) == []
        assert time.process_time() - start < 1.0


def test_overlaps_resolve_to_one_finding() -> None:
    # an IPv4 inside an IPv6 and digits inside an email are reported once, as the larger item
    assert kinds("see ::ffff:192.0.2.1 and 2025550143@example.com") == ["ipv6", "email"]
