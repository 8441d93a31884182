"""The built-in PII detector and redaction, on synthetic data (no real person's data)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from paxis_router.errors import RedactionError
from paxis_router.governance.pii import (
    PII_KINDS,
    BuiltinPiiDetector,
    PiiDetector,
    PiiFinding,
    Redactor,
    dni_valid,
    iban_valid,
    luhn_valid,
    redact_text,
    shannon_entropy,
)

DETECTOR = BuiltinPiiDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in DETECTOR.detect(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.doe+tax@example.co.uk today", "email", "jane.doe+tax@example.co.uk"),
        ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("call +1 415-555-2671.", "phone", "+1 415-555-2671"),
        ("call +33 1 23 45 67 89", "phone", "+33 1 23 45 67 89"),
        ("call (415) 555-2671", "phone", "(415) 555-2671"),
        ("call 415.555.2671", "phone", "415.555.2671"),
        ("ring 020 7946 0958", "phone", "020 7946 0958"),
        ("ring 0161 496 0000", "phone", "0161 496 0000"),
        ("visa 4111 1111 1111 1111 ok", "card", "4111 1111 1111 1111"),
        ("mc 5500-0055-5555-5559", "card", "5500-0055-5555-5559"),
        ("amex 378282246310005", "card", "378282246310005"),
        ("iban DE89 3704 0044 0532 0130 00", "iban", "DE89 3704 0044 0532 0130 00"),
        ("iban GB82WEST12345698765432.", "iban", "GB82WEST12345698765432"),
        ("ssn 123-45-6789", "national_id", "123-45-6789"),
        ("nino AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
        ("nino AB123456C", "national_id", "AB123456C"),
        ("dni 12345678Z", "national_id", "12345678Z"),
        ("nie X1234567L", "national_id", "X1234567L"),
        ("host 192.168.1.10 is down", "ip", "192.168.1.10"),
        ("host 2001:db8::8a2e:370:7334", "ip", "2001:db8::8a2e:370:7334"),
        ("host fe80::1ff:fe23:4567:890a", "ip", "fe80::1ff:fe23:4567:890a"),
        ("key sk-proj-abcDEF1234567890abcdefXYZ", "secret", "sk-proj-abcDEF1234567890abcdefXYZ"),
        ("aws AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
        (
            "gh ghp_aBcD1234567890aBcD1234567890aBcD1234",
            "secret",
            "ghp_aBcD1234567890aBcD1234567890aBcD1234",
        ),
        ("api_key=Zx8Qp2LmN7vR4tY9wK3s", "secret", "Zx8Qp2LmN7vR4tY9wK3s"),
        ('"password": "hX9kq2PzL0vW7mBq"', "secret", "hX9kq2PzL0vW7mBq"),
        (
            "pem -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- end",
            "secret",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        ),
        ("slack xoxb-1234567890-abcdefghij", "secret", "xoxb-1234567890-abcdefghij"),
    ],
)
def test_detects_each_kind(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn-invalid
        "card 4111-1111-1111-1113",  # Luhn-invalid
        "card 1234 5678 9012 3456",  # no card brand starts with 1
        "mixed 4111 1111-1111 1111",  # inconsistent separators: not one card number
        "due 2024-03-15",
        "due 15/03/2024",
        "due 03/15/2024",
        "due 15.03.2024",
        "due 15-03-2024",
        "at 2024-03-15T10:30:00Z",
        "version 1.2.3",
        "version 10.0.19041.1",
        "build v2.14.0-rc1",
        "order ORD-20240315-0042",
        "order #1234567890123",
        "order id 4111111111111112",
        "invoice INV-2024-000123",
        "time 12:30:45",
        "isbn 978-3-16-148410-0",
        "price 1,234,567.89",
        "ssn-like 000-12-3456 666-12-3456 912-34-5678 123-00-4567",
        "iban DE89 3704 0044 0532 0130 01",  # mod-97 fails
        "dni 12345678A",  # wrong check letter
        "nino QQ 12 34 56 C",  # QQ is never issued
        "short 555-0100",
        "token: aaaaaaaaaaaaaaaaaaaa",  # low entropy: not a secret
        "use sk-learn for that",
        "ip 999.1.1.1",
        "id 123e4567-e89b-12d3-a456-426614174000",  # a UUID
        "mac 00:1A:2B:3C:4D:5E",
        "at 10:30:45.123",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "asset icon@2x.png",
        "count 1234567890",
        "call 555-123-4567",  # NANP exchange codes never start with 1
    ],
)
def test_near_misses_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_validators() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert not luhn_valid("12a4")
    assert iban_valid("NL91 ABNA 0417 1643 00")
    assert not iban_valid("NL91 ABNA 0417 1643 0")  # wrong length for NL
    assert dni_valid("Z1234567R") and not dni_valid("Z1234567A")
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)


def test_kinds_can_be_limited() -> None:
    detector = BuiltinPiiDetector(kinds=["email"])
    text = "bob@example.com 4111 1111 1111 1111"
    assert [f.kind for f in detector.detect(text)] == ["email"]
    with pytest.raises(ValueError, match="unknown PII kinds"):
        BuiltinPiiDetector(kinds=["dna"])


def test_every_kind_is_reported_in_one_text() -> None:
    text = (
        "a@b.io, +44 20 7946 0958, 4111111111111111, DE89370400440532013000, 123-45-6789, "
        "10.0.0.1, AKIAIOSFODNN7EXAMPLE"
    )
    assert sorted({f.kind for f in DETECTOR.detect(text)}) == sorted(PII_KINDS)


def test_redaction_is_consistent_and_restorable() -> None:
    text = "mail bob@example.com, again bob@example.com, card 4111 1111 1111 1111"
    redaction = redact_text(text)
    assert redaction.text == "mail <EMAIL_1>, again <EMAIL_1>, card <CARD_1>"
    assert dict(redaction.placeholders) == {
        "<EMAIL_1>": "bob@example.com",
        "<CARD_1>": "4111 1111 1111 1111",
    }
    answer = "Sent the receipt for <CARD_1> to <EMAIL_1>; <EMAIL_9> is unknown."
    assert redaction.restore(answer) == (
        "Sent the receipt for 4111 1111 1111 1111 to bob@example.com; <EMAIL_9> is unknown."
    )


def test_placeholders_already_in_the_text_are_not_reused() -> None:
    redaction = redact_text("template <EMAIL_1> for carol@example.com")
    assert redaction.text == "template <EMAIL_1> for <EMAIL_2>"
    assert redaction.restore("<EMAIL_1> / <EMAIL_2>") == "<EMAIL_1> / carol@example.com"


def test_restore_into_json_escapes_the_value() -> None:
    redactor = Redactor()
    redactor.placeholders["<SECRET_1>"] = 'a"b\\c'
    assert redactor.restore('{"k": "<SECRET_1>"}', json_strings=True) == '{"k": "a\\"b\\\\c"}'


def test_one_redactor_shares_placeholders_across_texts() -> None:
    redactor = Redactor()
    first = redactor.redact("from dan@example.com")
    second = redactor.redact("reply to dan@example.com and eve@example.com")
    assert (first, second) == ("from <EMAIL_1>", "reply to <EMAIL_1> and <EMAIL_2>")


class _CrashingDetector:
    name = "crashy"

    def detect(self, text: str) -> Sequence[PiiFinding]:
        raise RuntimeError("model not loaded")


class _LyingDetector:
    """Reports a span whose text is not the value: redaction must refuse, not guess."""

    name = "liar"

    def detect(self, text: str) -> Sequence[PiiFinding]:
        return [PiiFinding("email", 0, 3, "not-what-is-there")]


class _StubbornDetector:
    """Finds PII in every text, even after redaction: the re-scan must block."""

    name = "stubborn"

    def detect(self, text: str) -> Sequence[PiiFinding]:
        return [PiiFinding("custom", 0, 1, text[0])] if text else []


@pytest.mark.parametrize(
    ("detector", "message"),
    [
        (_CrashingDetector(), "PII detector 'crashy' failed: RuntimeError: model not loaded"),
        (_LyingDetector(), "inconsistent span 0:3"),
        (_StubbornDetector(), r"PII still present after redaction \(custom\)"),
    ],
)
def test_redaction_fails_closed(detector: PiiDetector, message: str) -> None:
    with pytest.raises(RedactionError, match=message):
        redact_text("some text with PII", detector)


def test_third_party_detectors_satisfy_the_protocol() -> None:
    assert isinstance(_CrashingDetector(), PiiDetector)
    assert isinstance(BuiltinPiiDetector(), PiiDetector)


def test_custom_kind_gets_a_placeholder_of_its_own() -> None:
    class Names:
        name = "names"

        def detect(self, text: str) -> Sequence[PiiFinding]:
            start = text.find("Alice")
            return [PiiFinding("person", start, start + 5, "Alice")] if start >= 0 else []

    assert redact_text("ask Alice", Names()).text == "ask <PERSON_1>"
