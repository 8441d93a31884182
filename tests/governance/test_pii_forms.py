"""PII written so the pattern-only detector missed it (issue 14, item 12): invisible characters,
fullwidth and other Unicode digits, look-alike letters, unusual spaces and separators, lower-case
IBANs, SSNs and Korean RRNs in other forms, bare phone numbers, and numbers split across two
messages; plus near-misses that must stay untouched, and placeholders restored in a stream."""

from __future__ import annotations

import itertools
import json

import pytest

from paxis_router import ChatRequest
from paxis_router.governance.gate import Action, Gate, parse_gate_policy
from paxis_router.governance.pii import (
    BuiltinPiiDetector,
    Redactor,
    StreamRestorer,
    detect_texts,
    normalize_for_detection,
    redact_text,
    restore_placeholders,
    rrn_valid,
    ssn_valid,
)
from paxis_router.types import Message

DETECTOR = BuiltinPiiDetector()
ZWSP, ZWJ, WJ, SHY, NBSP, THIN, NNBSP = (
    "\u200b",
    "\u200d",
    "\u2060",
    "\u00ad",
    "\xa0",
    "\u2009",
    "\u202f",
)


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in DETECTOR.detect(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        # invisible characters inside the value
        (f"mail bob{ZWSP}@example.com now", "email", f"bob{ZWSP}@example.com"),
        (f"mail bob@exa{ZWJ}mple.com now", "email", f"bob@exa{ZWJ}mple.com"),
        (f"card 4111{ZWSP}1111{ZWSP}1111{ZWSP}1111", "card", f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111"),
        (f"ssn 123-4{WJ}5-6789", "national_id", f"123-4{WJ}5-6789"),
        (f"iban DE89 3704 0044 05{SHY}32 0130 00", "iban", f"DE89 3704 0044 05{SHY}32 0130 00"),
        ("card 4\u03031\u03031\u03031 1111 1111 1111", "card",
         "4\u03031\u03031\u03031 1111 1111 1111"),  # combining marks on the digits
        # fullwidth and other compatibility forms
        ("mail ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ", "email", "ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
        ("mail bob﹫example.com", "email", "bob﹫example.com"),
        ("mail bob@example。com", "email", "bob@example。com"),
        ("card ４１１１ １１１１ １１１１ １１１１", "card", "４１１１ １１１１ １１１１ １１１１"),
        ("call ４１５５５５２６７１", "phone", "４１５５５５２６７１"),
        ("card 𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏", "card", "𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏"),
        ("card ٤١١١١١١١١١١١١١١١", "card", "٤١١١١١١١١١١١١١١١"),  # Arabic-Indic digits
        ("call +४४ २० ७९४६ ०९५८", "phone", "+४४ २० ७९४६ ०९५८"),  # Devanagari digits
        # look-alike letters (Cyrillic а, о, Е)
        ("mail bоb@exаmple.com", "email", "bоb@exаmple.com"),
        ("iban DЕ89 3704 0044 0532 0130 00", "iban", "DЕ89 3704 0044 0532 0130 00"),
        ("mail jürgen@müller.de", "email", "jürgen@müller.de"),
        # spaces that are not spaces, dots and dashes as separators
        (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111", "card", f"4111{NBSP}1111{NBSP}1111{NBSP}1111"),
        (f"card 4111{THIN}1111{THIN}1111{THIN}1111", "card", f"4111{THIN}1111{THIN}1111{THIN}1111"),
        (f"card 4111{NNBSP}1111{NNBSP}1111{NNBSP}1111", "card",
         f"4111{NNBSP}1111{NNBSP}1111{NNBSP}1111"),
        ("card 4111.1111.1111.1111.", "card", "4111.1111.1111.1111"),
        ("card 4111\u20131111\u20131111\u20131111", "card", "4111\u20131111\u20131111\u20131111"),
        ("call 415\u2013555\u20132671", "phone", "415\u2013555\u20132671"),
        (f"call +44{NBSP}20{NBSP}7946{NBSP}0958", "phone", f"+44{NBSP}20{NBSP}7946{NBSP}0958"),
        # a card followed by another number is still a card
        ("card 4111 1111 1111 1111 5 times", "card", "4111 1111 1111 1111"),
        # IBANs in lower case, with dashes, compact
        ("iban de89 3704 0044 0532 0130 00", "iban", "de89 3704 0044 0532 0130 00"),
        ("iban DE89-3704-0044-0532-0130-00", "iban", "DE89-3704-0044-0532-0130-00"),
        ("iban de89370400440532013000.", "iban", "de89370400440532013000"),
        ("iban BE68 5390 0754 7034 from me", "iban", "BE68 5390 0754 7034"),
        # SSNs with spaces, dots, or bare after a word that names them
        ("ssn 123 45 6789", "national_id", "123 45 6789"),
        ("ssn 123.45.6789", "national_id", "123.45.6789"),
        ("SSN: 123456789", "national_id", "123456789"),
        ("my social security number is 123456789", "national_id", "123456789"),
        ("SS# 123456789", "national_id", "123456789"),
        # Korean resident registration numbers
        ("rrn 971013-9019902", "national_id", "971013-9019902"),
        ("rrn 971013 9019902", "national_id", "971013 9019902"),
        ("주민등록번호: 9710139019902", "national_id", "9710139019902"),
        ("RRN 9710139019902", "national_id", "9710139019902"),
        # bare ten-digit North American numbers
        ("call 4155552671 today", "phone", "4155552671"),
        ("call 14155552671", "phone", "14155552671"),
    ],
)  # fmt: skip
def test_obfuscated_and_unusual_forms_are_found(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "order 123456789",  # nine digits with no word naming an SSN
        "ssn 123 45 678",  # too short
        "my ssn is 078-05-1120",  # the SSA's advertised sample number
        "account 123-45-6789-0",  # part of a longer id
        "ref 0123456789",  # no NANP area code starts with 0 or 1
        "id 1234567890",
        "epoch 1700000000 and 1700000000000",
        "id 9999999999",  # area codes never have 9 in the middle
        "id 2115550123",  # N11 is a service code, not an area code
        "id 2125110123",  # N11 exchange
        "ean 4006381333931 and 8801234567893",  # barcodes: 13 digits, no RRN word
        "RRN 971013-9019903",  # wrong check digit
        "rrn 971332-1019902",  # no 32nd of the 13th month
        "card ４１１１ １１１１ １１１１ １１１２",  # Luhn-invalid, however it is written
        "nums 1 0 0 0 1 0 0 0 1 0 0 0 1 0 0 0",
        "iban is12 this that word more text",
        "iban de00 0000 0000 0000 0000 00",
        "version 2024.03.15 and 1.2.3",
        "date ２０２４-０３-１５",
        "amount 1.234.567.890.123",
        "call 202 5550123 or 555 1234",
        "Straße ﬁle name ①②③ a·b·c",
        "ISBN 9783161484100, tracking 1Z999AA10123456784",
        "bob.smith at example dot com",
        "zero\u200bwidth\u200bspaces in words",
    ],
)
def test_near_misses_stay_untouched(text: str) -> None:
    assert found(text) == []


def test_validators_come_from_stdnum() -> None:
    assert ssn_valid("123456789") and not ssn_valid("219-09-9999")  # advertised sample
    assert rrn_valid("971013-9019902") and not rrn_valid("971013-9019903")


def test_redaction_replaces_exactly_the_original_characters() -> None:
    text = f"mail ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ{ZWSP}, card 4111{NBSP}1111{NBSP}1111{NBSP}1111!"
    redaction = redact_text(text)
    assert redaction.text == f"mail <EMAIL_1>{ZWSP}, card <CARD_1>!"
    assert redaction.restore(redaction.text) == text
    norm = normalize_for_detection(text)
    assert norm.text.startswith("mail bob@example.com, card 4111 1111 1111 1111!")


# --- across message boundaries ------------------------------------------------------------------

POLICY = parse_gate_policy(
    {
        "version": "split-1",
        "rules": [
            {"id": "redact", "effect": "allow", "data_classes": ["internal"], "pii": "redact"},
            {"id": "block", "effect": "allow", "data_classes": ["confidential"], "pii": "block"},
        ],
    }
)


def split_request(data_class: str, *texts: str) -> tuple[Action, ChatRequest]:
    messages = [Message(role="user", content=t) for t in texts]
    request = ChatRequest(messages=messages, metadata={"data_class": data_class})
    action = Action("call_tier", "frontier:f", destination="openai:us", data_class=data_class)
    return action, request


SPLITS = [
    ("my card is 4111 1111", "1111 1111, thanks", "card"),
    ("card 41111111", "11111111", "card"),
    ("IBAN DE89 3704 0044", "0532 0130 00 please", "iban"),
    ("ssn 123 45", "6789", "national_id"),
    ("call me on +44 20", "7946 0958", "phone"),
    ("key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "q83+bc==\n-----END RSA PRIVATE "
     "KEY-----\nthat was it", "secret"),
]  # fmt: skip


@pytest.mark.parametrize(("first", "second", "kind"), SPLITS)
def test_a_value_split_across_two_messages_is_blocked(first: str, second: str, kind: str) -> None:
    decision = Gate(POLICY).screen(*split_request("confidential", first, second)).decision
    assert (decision.effect, decision.rule_id, decision.pii_kinds) == ("deny", "block", (kind,))


@pytest.mark.parametrize(("first", "second", "kind"), SPLITS)
def test_both_halves_of_a_split_value_are_redacted(first: str, second: str, kind: str) -> None:
    screened = Gate(POLICY).screen(*split_request("internal", first, second))
    assert screened.request is not None
    assert screened.decision.pii_kinds == (kind,)
    sent = [m.text for m in screened.request.messages]
    (placeholder,) = screened.placeholders
    assert all(placeholder in text for text in sent), sent
    assert not detect_texts(sent, DETECTOR)
    whole = screened.placeholders[placeholder]
    assert screened.restore(f"noted: {placeholder}") == f"noted: {whole}"


def test_a_split_card_restores_as_one_number() -> None:
    redactor = Redactor()
    assert redactor.redact_texts(["my card is 4111 1111", "1111 1111, thanks"]) == [
        "my card is <CARD_1>",
        "<CARD_1>, thanks",
    ]
    assert redactor.placeholders == {"<CARD_1>": "4111 1111 1111 1111"}


def test_texts_that_only_touch_are_not_joined_into_pii() -> None:
    assert detect_texts(["count 4111", "1111 more", "text"], DETECTOR) == []
    assert detect_texts(list("1000100010001000"), DETECTOR) == []
    far = ["4111 1111 " + "x " * 300, "1111 1111"]  # far from the boundary: not one number
    assert detect_texts(far, DETECTOR) == []


# --- restoring a streamed answer ----------------------------------------------------------------

PLACEHOLDERS = {"<EMAIL_1>": "bob@example.com", "<CARD_1>": "4111 1111 1111 1111"}
ANSWER = "Wrote <EMAIL_1> <about> <CARD_1>; a<b; <EMAIL_2> unknown; ends <EMA"


def test_every_way_of_cutting_the_stream_restores_the_same_text() -> None:
    expected = restore_placeholders(ANSWER, PLACEHOLDERS)
    assert expected.endswith("ends <EMA")
    for cut_a, cut_b in itertools.combinations(range(1, len(ANSWER)), 2):
        pieces = [ANSWER[:cut_a], ANSWER[cut_a:cut_b], ANSWER[cut_b:]]
        restorer = StreamRestorer(PLACEHOLDERS)
        out = [restorer.feed(p) for p in pieces] + [restorer.flush()]
        assert "".join(out) == expected, pieces
    one_char = StreamRestorer(PLACEHOLDERS)
    assert "".join([*(one_char.feed(c) for c in ANSWER), one_char.flush()]) == expected


def test_the_stream_holds_back_only_what_could_start_a_placeholder() -> None:
    restorer = StreamRestorer(PLACEHOLDERS)
    assert restorer.feed("a <b>c <") == "a <b>c "
    assert restorer.feed("CA") == ""
    assert restorer.feed("RD_1> ok <x") == "4111 1111 1111 1111 ok <x"
    assert restorer.feed("<EMAIL_") == ""
    assert restorer.feed("3> done") == "<EMAIL_3> done"  # not issued: left as it was
    assert restorer.flush() == ""


def test_the_stream_json_escapes_and_screened_builds_the_restorer() -> None:
    policy = parse_gate_policy(
        {"version": "v", "rules": [{"id": "r", "effect": "allow", "pii": "redact"}]}
    )
    request = ChatRequest.from_text("mail bob@example.com").model_copy(
        update={"response_format": {"type": "json_object"}}
    )
    screened = Gate(policy).screen(Action("call_tier", "f", destination="x"), request)
    restorer = screened.stream_restorer()
    out = restorer.feed('{"to": "<EMAIL') + restorer.feed('_1>"}') + restorer.flush()
    assert json.loads(out) == {"to": "bob@example.com"}
    kept = parse_gate_policy(
        {"version": "v", "rules": [{"id": "r", "effect": "allow", "pii": "redact",
                                    "restore": False}]}
    )  # fmt: skip
    silent = Gate(kept).screen(Action("call_tier", "f", destination="x"), request)
    assert silent.stream_restorer().feed("<EMAIL_1>") == "<EMAIL_1>"
