"""A built-in PII and secret detector, and reversible redaction with placeholders.

The detector looks for e-mail addresses, phone numbers, payment card numbers (brand prefix,
length and the Luhn check digit), IBANs (country format and the ISO 7064 mod-97 check), national
ids, IP addresses (v4 and v6, validated by :mod:`ipaddress`) and secrets shaped like API keys.
Every candidate is validated, not just pattern-matched, so near-misses stay untouched:
Luhn-invalid card numbers, dates (``2024-03-15``, ``15/03/2024``), version numbers (``1.2.3``,
``10.0.19041.1``) and order ids (``ORD-20240315-0042``). Check digits and issuing rules come from
python-stdnum where it covers the identifier (Luhn, IBAN, US SSN, Spanish DNI/NIE, Korean RRN).

Text is normalised before detection (:func:`normalize_for_detection`): NFKC (fullwidth digits
and ``＠``, no-break and thin spaces), invisible characters dropped (zero-width spaces and
joiners, soft hyphens, combining marks), every Unicode digit read as its ASCII digit, dashes as
``-``, ideographic and middle dots as ``.``, and Cyrillic/Greek letters that look Latin as Latin.
Findings are mapped back to the original text's offsets, so redaction replaces exactly the
characters that were there.

National ids recognised (``national_id``):

* US SSN: ``AAA-GG-SSSS`` (or with spaces or dots), with the SSA issuing rules (area not 000,
  666 or 900-999; group not 00; serial not 0000; no advertised sample numbers). Nine bare digits
  count only after a word such as "SSN" or "social security" (Presidio's context rule): an SSN
  has no check digit, and nine digits alone are too often something else.
* UK National Insurance number (``QQ 12 34 56 C``), with HMRC's prefix rules (no D, F, I, Q, U, V;
  second letter not O; not BG, GB, KN, NK, NT, TN, ZZ) and suffix A-D. No check digit either.
* Spanish DNI / NIE (``12345678Z``, ``X1234567L``): a real check letter, number mod 23.
* Korean resident registration number (``YYMMDD-GNNNNNC``): birth date, place and check digit;
  thirteen bare digits only after "RRN" or "주민등록번호" (an EAN-13 barcode looks the same).

Phone numbers: international (``+44 20 7946 0958``), North American with separators
(``(415) 555-2671``) or as ten bare digits that follow the NANP numbering plan (``4155552671``),
and national trunk-prefixed forms (``020 7946 0958``).

Texts a request carries are read together as well as one by one (:func:`detect_texts`), so a
number split across two messages is found; a redaction then replaces each part.

Any stronger detector (Microsoft Presidio, a cloud DLP service) fits the :class:`PiiDetector`
protocol without becoming a dependency; wrap its results as :class:`PiiFinding`::

    class PresidioDetector:
        name = "presidio"

        def __init__(self) -> None:
            from presidio_analyzer import AnalyzerEngine
            self._engine = AnalyzerEngine()

        def detect(self, text: str) -> list[PiiFinding]:
            return [PiiFinding(r.entity_type.lower(), r.start, r.end, text[r.start:r.end])
                    for r in self._engine.analyze(text=text, language="en")]

Example:
    >>> redaction = redact_text("mail jane.doe@example.com or call +44 20 7946 0958")
    >>> redaction.text
    'mail <EMAIL_1> or call <PHONE_1>'
    >>> redaction.restore("I wrote to <EMAIL_1>.")
    'I wrote to jane.doe@example.com.'
    >>> redact_text("mail jane\\u200b.doe＠example.com").text
    'mail <EMAIL_1>'
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from paxis_router.errors import RedactionError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

PII_KINDS: tuple[str, ...] = (
    "secret",
    "iban",
    "card",
    "national_id",
    "email",
    "ip",
    "phone",
)
"""Every kind the built-in detector reports, highest priority first (wins an overlap)."""


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One piece of PII found in a text: its kind and the span ``text[start:end]``."""

    kind: str
    start: int
    end: int
    value: str


@runtime_checkable
class PiiDetector(Protocol):
    """Finds PII in a text. Any detector (e.g. Presidio) can fill this role.

    ``detect`` returns findings with character offsets into ``text``; overlapping findings are
    allowed (the redactor keeps the longest). It may raise: the gate then blocks (fail closed).
    """

    name: str

    def detect(self, text: str) -> Sequence[PiiFinding]: ...


# --- normalisation ------------------------------------------------------------------------------

# Cyrillic and Greek letters drawn like Latin ones (Unicode's confusables, the common subset).
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТУХЅІЈԀԌԚԜаеорсухѕіјԁԛԝһӏүҮΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοκνρυχ",
    "ABEKMHOPCTYXSIJDGQWaeopcyxsijdqwhlyYABEZHIKMNOPTYXaoKvpux",
)
# Dashes that are not "-" (every Pd character is mapped as well) and dots that are not ".".
_DASHES = frozenset("\u2212\u2043\ufe63\uff0d")
_DOTS = frozenset("\u3002\uff61\u00b7\u2027\u2219\u22c5\u30fb")
# Default-ignorable characters that are not format (Cf) characters: the combining grapheme
# joiner, Hangul fillers, Mongolian variation selectors.
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_IGNORABLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u180b\u180c\u180d\u180f")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A text as the detector reads it, and the way back to the original's offsets.

    ``origin[i]`` is the offset in the original of the character ``text[i]`` came from; None
    when the text needed no change (offsets are the same).
    """

    text: str
    origin: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of ``text[start:end]`` (it covers every original character those
        come from, dropped invisible ones between them included)."""
        if self.origin is None or end <= start:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def _normalize_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Cf", "Mn", "Me") or ch in _IGNORABLE or "\ufe00" <= ch <= "\ufe0f":
        return ""
    out = unicodedata.normalize("NFKC", ch)
    mapped: list[str] = []
    for c in out:
        digit = unicodedata.decimal(c, None)
        if digit is not None:
            mapped.append(str(digit))
        elif c in _DASHES or unicodedata.category(c) == "Pd":
            mapped.append("-")
        elif c in _DOTS:
            mapped.append(".")
        elif unicodedata.category(c) in ("Cf", "Mn", "Me"):
            continue
        else:
            mapped.append(c.translate(_LOOKALIKES))
    return "".join(mapped)


def normalize_for_detection(text: str) -> NormalizedText:
    """``text`` as the detector reads it (see the module docstring), with the offsets back.

    Example:
        >>> norm = normalize_for_detection("card ４１１１\\u200b1111")
        >>> norm.text
        'card 41111111'
        >>> norm.span(5, 13)
        (5, 14)
    """
    if text.isascii():
        return NormalizedText(text)
    chars: list[str] = []
    origin: list[int] = []
    pos = 0
    for run in _NON_ASCII.finditer(text):
        chars.append(text[pos : run.start()])  # ASCII is read as it is
        origin.extend(range(pos, run.start()))
        for i in range(run.start(), run.end()):
            out = _normalize_char(text[i])
            chars.append(out)
            origin.extend([i] * len(out))
        pos = run.end()
    chars.append(text[pos:])
    origin.extend(range(pos, len(text)))
    return NormalizedText("".join(chars), tuple(origin))


# --- validators ---------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check (python-stdnum's).

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    from stdnum import luhn  # here: keeps `import paxis_router` light

    return digits.isascii() and digits.isdigit() and luhn.is_valid(digits)


def _card_brand_ok(digits: str) -> bool:
    n = len(digits)
    two, three, four, six = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925:  # Discover
        return 16 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= three <= 305:  # Diners Club
        return 14 <= n <= 19
    if two == 62:  # UnionPay
        return 16 <= n <= 19
    if two in (50, 56, 57, 58, 67) or two == 63:  # Maestro
        return 12 <= n <= 19
    return False


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces, dashes and lower case allowed) has its country's length and
    BBAN structure and passes mod-97 (python-stdnum's check; not its per-country bank-code
    lists, which would let an IBAN of a bank they do not list through).

    Example:
        >>> iban_valid("DE89 3704 0044 0532 0130 00"), iban_valid("de89-3704-0044-0532-0130-01")
        (True, False)
    """
    from stdnum import iban as stdnum_iban

    return stdnum_iban.is_valid(iban, check_country=False)


def dni_valid(value: str) -> bool:
    """True for a Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter) whose
    check letter is right (number mod 23).

    Example:
        >>> dni_valid("12345678Z"), dni_valid("12345678A")
        (True, False)
    """
    from stdnum.es import dni, nie

    return dni.is_valid(value) or nie.is_valid(value)


def ssn_valid(value: str) -> bool:
    """True for a US SSN (``123-45-6789``, spaces, dots or none) that follows the SSA's
    issuing rules and is not an advertised sample number.

    Example:
        >>> ssn_valid("123-45-6789"), ssn_valid("123 45 6789"), ssn_valid("666-12-3456")
        (True, True, False)
    """
    from stdnum.us import ssn

    digits = _digits(value)
    return len(digits) == 9 and ssn.is_valid(digits)


def rrn_valid(value: str) -> bool:
    """True for a Korean resident registration number (``YYMMDD-GNNNNNC``) with a real birth
    date, place code and check digit.

    Example:
        >>> rrn_valid("971013-9019902"), rrn_valid("971013-9019903")
        (True, False)
    """
    from stdnum.kr import rrn

    return rrn.is_valid(_digits(value))


_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(value: str) -> bool:
    """True for a UK National Insurance number that follows HMRC's allocation rules."""
    compact = value.replace(" ", "").upper()
    prefix = compact[:2]
    if prefix in _NINO_BAD_PREFIXES:
        return False
    if prefix[0] in "DFIQUV" or prefix[1] in "DFIQUVO":
        return False
    return compact[-1] in "ABCD"


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` (0.0 for an empty string)."""
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# --- patterns -----------------------------------------------------------------------------------

# A number glued to a word, a hyphen, a dot or a slash on either side is part of something else
# (an order id, a date, a version, a path): none of the numeric patterns may start or end there.
_L = r"(?<![\w+/.\-])"
_R = r"(?![\w/\-]|\.\w)"

_EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}\b")
_CARD = re.compile(_L + r"\d(?:[ \-.]?\d){11,18}" + _R)
_IBAN = re.compile(
    r"(?<![\w\-])[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]{4}){2,7}(?:[ \-]?[A-Z0-9]{1,3})?\b", re.IGNORECASE
)
_SSN = re.compile(_L + r"\d{3}([ \-.])\d{2}\1\d{4}" + _R)
_SSN_BARE = re.compile(_L + r"\d{9}" + _R)
_SSN_CONTEXT = re.compile(r"(?i)(?:\bssn|\bss\s?#|\bs\.s\.n|social\s+security)[^\d\n]{0,30}$")
_NINO = re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b[XYZ]?\d{7,8}[A-Z]\b")
_RRN = re.compile(_L + r"\d{6}[ \-]\d{7}" + _R)
_RRN_BARE = re.compile(_L + r"\d{13}" + _R)
_RRN_CONTEXT = re.compile(r"(?i)(?:\brrn|resident\s+registration|주민(?:등록)?번호)[^\d\n]{0,30}$")
_IPV4 = re.compile(_L + r"\d{1,3}(?:\.\d{1,3}){3}" + r"(?![\w\-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_PHONE_INTL = re.compile(_L + r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}" + _R)
_PHONE_NANP = re.compile(r"(?<![\w+/.\-(])(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}" + _R)
_PHONE_BARE = re.compile(_L + r"1?[2-9]\d{9}" + _R)
_PHONE_TRUNK = re.compile(_L + r"\(?0\d{2,4}\)?[ \-]\d{3,4}[ \-]?\d{3,4}" + _R)
_SECRET_SHAPES = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,})"
)
# A whole PEM private key, or the part of one a text holds (a key split across two messages:
# its beginning up to the text's end, or the base64 lines before its end marker).
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"
    r"|(?:[A-Za-z0-9+/=]{1,100}\r?\n)*-----END [A-Z ]*PRIVATE KEY-----"
)
_KEYED_SECRET = re.compile(
    r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|access[_\-]?key|auth[_\-]?token|token|"
    r"password|passwd|bearer)\b[\"']?\s*[:=]?\s*[\"']?([A-Za-z0-9/+_.=\-]{16,})"
)
_MIN_KEY_ENTROPY_BITS = 3.5
_SEPARATORS = re.compile(r"[ \-.]")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


# "icon@2x.png" is a file name, not an address: these endings are file types, not TLDs.
_FILE_SUFFIXES = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf", "txt", "json", "yaml", "yml"}
)

# A validator gets the normalised text and a candidate match; it returns the span (in the
# normalised text) of the PII it confirms, or None.
Span = tuple[int, int]


def _whole(check: Callable[[str], bool]) -> Callable[[str, re.Match[str]], Span | None]:
    def validate(text: str, match: re.Match[str]) -> Span | None:
        return match.span() if check(match.group(0)) else None

    return validate


def _email_ok(candidate: str) -> bool:
    return candidate.rsplit(".", 1)[-1].lower() not in _FILE_SUFFIXES


def _card_number_ok(candidate: str) -> bool:
    if len({ch for ch in candidate if not ch.isdigit()}) > 1:
        return False  # "4111 1111-1111 1111": mixed separators are not one number
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_valid(digits)


def _groups(match: re.Match[str]) -> list[Span]:
    """The separator-delimited groups of a match, as spans of the text."""
    spans: list[Span] = []
    pos = match.start()
    for sep in _SEPARATORS.finditer(match.group(0)):
        spans.append((pos, match.start() + sep.start()))
        pos = match.start() + sep.end()
    spans.append((pos, match.end()))
    return spans


def _longest_valid_run(
    text: str, match: re.Match[str], check: Callable[[str], bool], min_groups: int
) -> Span | None:
    """The whole match when ``check`` accepts it, else the longest run of whole groups it
    accepts ("4111 1111 1111 1111 5": a card followed by another number)."""
    if check(match.group(0)):
        return match.span()
    groups = _groups(match)
    for size in range(len(groups) - 1, min_groups - 1, -1):
        for first in range(len(groups) - size + 1):
            start, end = groups[first][0], groups[first + size - 1][1]
            if check(text[start:end]):
                return start, end
    return None


def _card_ok(text: str, match: re.Match[str]) -> Span | None:
    return _longest_valid_run(text, match, _card_number_ok, 2)


def _iban_ok(text: str, match: re.Match[str]) -> Span | None:
    groups = _groups(match)
    if len(groups) == 1:
        return match.span() if iban_valid(match.group(0)) else None
    for size in range(len(groups), 2, -1):  # drop trailing groups: "... 7034 from"
        end = groups[size - 1][1]
        if iban_valid(text[match.start() : end]):
            return match.start(), end
    return None


def _after_word(
    context: re.Pattern[str], check: Callable[[str], bool]
) -> Callable[[str, re.Match[str]], Span | None]:
    """A validator for bare digits: valid only right after a word naming the identifier."""

    def validate(text: str, match: re.Match[str]) -> Span | None:
        before = text[max(0, match.start() - 60) : match.start()]
        return match.span() if context.search(before) and check(match.group(0)) else None

    return validate


def _ipv4_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def _ipv6_ok(candidate: str) -> bool:
    if sum(ch in "0123456789abcdefABCDEF" for ch in candidate) < 4:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _phone_intl_ok(candidate: str) -> bool:
    return 8 <= len(_digits(candidate)) <= 15


def _phone_nanp_ok(candidate: str) -> bool:
    digits = _digits(candidate)
    return digits[0] in "23456789" and digits[3] in "23456789"


def _phone_bare_ok(candidate: str) -> bool:
    """Ten digits (or 1 and ten) that follow the NANP plan: area code and exchange start with
    2-9 and are not N11 service codes; an area code's middle digit is never 9."""
    digits = candidate[1:] if len(candidate) == 11 else candidate
    area, exchange = digits[:3], digits[3:6]
    return (
        area[1] != "9" and area[1:] != "11" and exchange[0] in "23456789" and exchange[1:] != "11"
    )


def _phone_trunk_ok(candidate: str) -> bool:
    return 10 <= len(_digits(candidate)) <= 11


def _secret_shape_ok(candidate: str) -> bool:
    return any(ch.isdigit() for ch in candidate)


def _always(candidate: str) -> bool:
    return True


# Needles: a pattern can only match a text holding these; checking first skips most regex scans.
_SECRET_NEEDLES = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
                   "xox", "AIza", "glpat-")  # fmt: skip
_KEY_WORDS = ("key", "secret", "token", "passw", "bearer")
_NOT_DIGITS = re.compile(r"\D+")

Check = tuple[
    str,
    re.Pattern[str],
    "Callable[[str, re.Match[str]], Span | None]",
    "Callable[[str, int, bool], bool]",
]
_NINE_DIGITS = re.compile(r"\d{9}")

# (kind, pattern, validator, prefilter(normalised text, digit count, has 9 digits in a row))
_CHECKS: tuple[Check, ...] = (
    ("secret", _PRIVATE_KEY, _whole(_always), lambda t, d, r: "PRIVATE KEY" in t),
    ("secret", _SECRET_SHAPES, _whole(_secret_shape_ok),
     lambda t, d, r: any(n in t for n in _SECRET_NEEDLES)),
    ("iban", _IBAN, _iban_ok, lambda t, d, r: d >= 4),
    ("card", _CARD, _card_ok, lambda t, d, r: d >= 12),
    ("national_id", _SSN, _whole(ssn_valid), lambda t, d, r: d >= 9),
    ("national_id", _SSN_BARE, _after_word(_SSN_CONTEXT, ssn_valid), lambda t, d, r: r),
    ("national_id", _NINO, _whole(nino_valid), lambda t, d, r: d >= 6),
    ("national_id", _DNI, _whole(dni_valid), lambda t, d, r: d >= 7),
    ("national_id", _RRN, _whole(rrn_valid), lambda t, d, r: d >= 13),
    ("national_id", _RRN_BARE, _after_word(_RRN_CONTEXT, rrn_valid), lambda t, d, r: r),
    ("email", _EMAIL, _whole(_email_ok), lambda t, d, r: "@" in t),
    ("ip", _IPV4, _whole(_ipv4_ok), lambda t, d, r: d >= 4 and "." in t),
    ("ip", _IPV6, _whole(_ipv6_ok), lambda t, d, r: t.count(":") >= 2),
    ("phone", _PHONE_INTL, _whole(_phone_intl_ok), lambda t, d, r: d >= 8 and "+" in t),
    ("phone", _PHONE_NANP, _whole(_phone_nanp_ok), lambda t, d, r: d >= 10),
    ("phone", _PHONE_BARE, _whole(_phone_bare_ok), lambda t, d, r: r),
    ("phone", _PHONE_TRUNK, _whole(_phone_trunk_ok), lambda t, d, r: d >= 10 and "0" in t),
)  # fmt: skip


class BuiltinPiiDetector:
    """The built-in detector: regular expressions plus checksum and format validation, on the
    normalised text (see :func:`normalize_for_detection`), offsets mapped back.

    Args:
        kinds: the kinds to report (default: all of :data:`PII_KINDS`).

    Example:
        >>> found = BuiltinPiiDetector().detect("card 4111 1111 1111 1111, not 2024-03-15")
        >>> [f.kind for f in found]
        ['card']
    """

    name = "builtin"

    def __init__(self, kinds: Iterable[str] = PII_KINDS):
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")

    def detect(self, text: str) -> list[PiiFinding]:
        """Every validated finding in ``text``, in order, overlaps resolved by priority."""
        norm = normalize_for_detection(text)
        seen = norm.text
        spans: list[tuple[str, int, int]] = []
        digits = len(_NOT_DIGITS.sub("", seen))  # how many digit characters the text holds
        run = digits >= 9 and _NINE_DIGITS.search(seen) is not None
        for kind, pattern, validate, could_match in _CHECKS:
            if kind not in self.kinds or not could_match(seen, digits, run):
                continue
            for match in pattern.finditer(seen):
                span = validate(seen, match)
                if span is not None:
                    spans.append((kind, *span))
        lowered = seen.lower()
        if "secret" in self.kinds and any(word in lowered for word in _KEY_WORDS):
            for match in _KEYED_SECRET.finditer(seen):
                if shannon_entropy(match.group(1)) >= _MIN_KEY_ENTROPY_BITS:
                    spans.append(("secret", *match.span(1)))
        found = []
        for kind, start, end in spans:
            first, last = norm.span(start, end)
            found.append(PiiFinding(kind, first, last, text[first:last]))
        return resolve_overlaps(found)


def resolve_overlaps(findings: Iterable[PiiFinding]) -> list[PiiFinding]:
    """Findings sorted by position; of overlapping ones, the higher-priority kind (then the
    longer span) wins. Kinds unknown to the built-in detector rank after the known ones."""
    rank = {kind: i for i, kind in enumerate(PII_KINDS)}
    ordered = sorted(
        findings, key=lambda f: (rank.get(f.kind, len(rank)), -(f.end - f.start), f.start)
    )
    kept: list[PiiFinding] = []
    for finding in ordered:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


# --- several texts read as one ------------------------------------------------------------------

TEXT_JOINER = " "
"""What separates the texts of one request when they are read together: a space, so a number
split across two messages reads as one number."""

BOUNDARY_WINDOW = 256
"""Characters read on each side of the boundary between two texts, for what crosses it: more
than any identifier, address or key-shaped secret is long (a PEM key is found in parts)."""


def _detect_one(detector: PiiDetector, text: str) -> Sequence[PiiFinding]:
    try:
        return detector.detect(text)
    except Exception as exc:  # any third-party detector: a crash must block, not leak
        raise RedactionError(
            f"PII detector {getattr(detector, 'name', '?')!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def detect_texts(texts: Sequence[str], detector: PiiDetector) -> list[PiiFinding]:
    """PII in ``texts`` read one by one and joined by :data:`TEXT_JOINER`, so a number split
    across two messages is found too; offsets are into the joined text.

    Raises:
        RedactionError: the detector failed (callers block: fail closed).

    Example:
        >>> [(f.kind, f.value) for f in detect_texts(["card 4111 1111", "1111 1111"],
        ...                                          BuiltinPiiDetector())]
        [('card', '4111 1111 1111 1111')]
    """
    if len(texts) == 1:
        return list(_detect_one(detector, texts[0]))
    found: list[PiiFinding] = []
    joints: list[int] = []  # where each TEXT_JOINER sits in the joined text
    offset = 0
    for text in texts:
        for f in _detect_one(detector, text):
            found.append(PiiFinding(f.kind, f.start + offset, f.end + offset, f.value))
        offset += len(text)
        joints.append(offset)
        offset += len(TEXT_JOINER)
    joints.pop()
    joined = TEXT_JOINER.join(texts)
    for lo, hi in _windows(joined, joints):
        for f in _detect_one(detector, joined[lo:hi]):
            start, end = f.start + lo, f.end + lo
            if any(start <= joint < end for joint in joints):  # it crosses a boundary
                found.append(PiiFinding(f.kind, start, end, f.value))
    return resolve_overlaps(found)


def _windows(joined: str, joints: Sequence[int]) -> list[Span]:
    """The stretches of ``joined`` around each joint, widened to whitespace (so no word is cut
    in two) and merged where they overlap."""
    merged: list[Span] = []
    for joint in joints:
        lo = max(0, joint - BOUNDARY_WINDOW)
        hi = min(len(joined), joint + len(TEXT_JOINER) + BOUNDARY_WINDOW)
        floor, ceiling = max(0, lo - BOUNDARY_WINDOW), min(len(joined), hi + BOUNDARY_WINDOW)
        while lo > floor and not joined[lo - 1].isspace():
            lo -= 1
        while hi < ceiling and not joined[hi].isspace():
            hi += 1
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# --- redaction ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")


@dataclass
class Redactor:
    """Replaces PII with numbered placeholders (``<EMAIL_1>``), one mapping across many texts.

    The same value always gets the same placeholder, so a request's messages stay consistent.
    After replacing, the texts are scanned again; anything still found raises RedactionError
    (fail closed). A detector that raises is wrapped in RedactionError too.
    """

    detector: PiiDetector = field(default_factory=BuiltinPiiDetector)
    placeholders: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    findings: list[PiiFinding] = field(default_factory=list)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: Counter[str] = field(default_factory=Counter)

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        return self.redact_texts([text])[0]

    def redact_texts(self, texts: Sequence[str]) -> list[str]:
        """``texts`` redacted as one document (see :func:`detect_texts`): a value split across
        two texts has each part replaced by the same placeholder, which restores the whole.

        Example:
            >>> Redactor().redact_texts(["card 4111 1111", "1111 1111 please"])
            ['card <CARD_1>', '<CARD_1> please']
        """
        texts = list(texts)
        found = detect_texts(texts, self.detector)
        if not found:
            return texts
        joined = TEXT_JOINER.join(texts)
        taken = {m.group(0) for text in texts for m in _PLACEHOLDER.finditer(text)}
        bounds: list[Span] = []
        offset = 0
        for text in texts:
            bounds.append((offset, offset + len(text)))
            offset += len(text) + len(TEXT_JOINER)
        cuts: list[list[tuple[int, int, str]]] = [[] for _ in texts]  # per text: start, end, ph
        pos = 0
        for finding in found:
            if finding.start < pos or joined[finding.start : finding.end] != finding.value:
                raise RedactionError(
                    f"detector {self.detector.name!r} returned an inconsistent span "
                    f"{finding.start}:{finding.end} for {finding.kind}; blocking instead"
                )
            placeholder = self._placeholder(finding, taken)
            for i, (first, last) in enumerate(bounds):
                start, end = max(first, finding.start), min(last, finding.end)
                if start < end:
                    cuts[i].append((start - first, end - first, placeholder))
            pos = finding.end
            self.findings.append(finding)
        redacted = [_cut(text, spans) for text, spans in zip(texts, cuts, strict=True)]
        leftover = detect_texts(redacted, self.detector)
        if leftover:
            kinds = sorted({f.kind for f in leftover})
            raise RedactionError(f"PII still present after redaction ({', '.join(kinds)})")
        return redacted

    def _placeholder(self, finding: PiiFinding, taken: set[str]) -> str:
        key = (finding.kind, finding.value)
        existing = self._by_value.get(key)
        if existing is not None:
            return existing
        label = re.sub(r"[^A-Z]+", "_", finding.kind.upper()).strip("_") or "PII"
        while True:
            self._counts[label] += 1
            placeholder = f"<{label}_{self._counts[label]}>"
            if placeholder not in taken and placeholder not in self.placeholders:
                break
        self._by_value[key] = placeholder
        self.placeholders[placeholder] = finding.value
        return placeholder

    def restore(self, text: str, *, json_strings: bool = False) -> str:
        """Put the originals back where the answer carries placeholders this redactor issued.

        With ``json_strings=True`` (the answer is a JSON document) each value is JSON-escaped, so a
        restored quote or backslash cannot break the document's structure. Placeholders this
        redactor did not issue are left as they are.
        """
        return restore_placeholders(text, self.placeholders, json_strings=json_strings)


def _cut(text: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for start, end, placeholder in spans:
        parts.append(text[pos:start])
        parts.append(placeholder)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def restore_placeholders(
    text: str, placeholders: Mapping[str, str], *, json_strings: bool = False
) -> str:
    """Replace each issued placeholder in ``text`` with its original value."""
    if not placeholders or "<" not in text:
        return text

    def swap(match: re.Match[str]) -> str:
        original = placeholders.get(match.group(0))
        if original is None:
            return match.group(0)
        return json.dumps(original)[1:-1] if json_strings else original

    return _PLACEHOLDER.sub(swap, text)


class StreamRestorer:
    """Restores placeholders in an answer that arrives in pieces (a streamed response).

    A placeholder may be split across pieces (``"<EMA"`` then ``"IL_1>"``): :meth:`feed` holds
    back the shortest tail that could still start an issued placeholder and returns the rest,
    restored; :meth:`flush` returns what is held at the end of the stream. What comes out,
    joined, equals ``restore_placeholders`` of the whole answer.

    Args:
        placeholders: placeholder -> original, as the gate issued them (``Screened.placeholders``).
        json_strings: JSON-escape restored values (the answer is a JSON document).

    Example:
        >>> restorer = StreamRestorer({"<EMAIL_1>": "bob@example.com"})
        >>> [restorer.feed(piece) for piece in ["Mail <EM", "AIL_1", ">, now."]]
        ['Mail ', '', 'bob@example.com, now.']
        >>> restorer.flush()
        ''
    """

    def __init__(self, placeholders: Mapping[str, str], *, json_strings: bool = False):
        self.placeholders = dict(placeholders)
        self.json_strings = json_strings
        self._held = ""

    def feed(self, piece: str) -> str:
        """The restored text that is safe to send now (possibly empty)."""
        if not self.placeholders:
            return piece
        text = self._held + piece
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:]:
            tail = text[cut:]
            if any(p.startswith(tail) for p in self.placeholders):
                self._held = tail
                text = text[:cut]
            else:
                self._held = ""
        else:
            self._held = ""
        return restore_placeholders(text, self.placeholders, json_strings=self.json_strings)

    def flush(self) -> str:
        """What is still held (a placeholder's start the stream never finished), as it was."""
        held, self._held = self._held, ""
        return held


@dataclass(frozen=True, slots=True)
class Redaction:
    """The result of :func:`redact_text`: the redacted text and how to undo it."""

    text: str
    placeholders: Mapping[str, str]
    findings: tuple[PiiFinding, ...]

    def restore(self, text: str, *, json_strings: bool = False) -> str:
        """See :meth:`Redactor.restore`."""
        return restore_placeholders(text, self.placeholders, json_strings=json_strings)


def redact_text(text: str, detector: PiiDetector | None = None) -> Redaction:
    """Redact one text; raises RedactionError when it cannot be done safely."""
    redactor = Redactor(detector=detector or BuiltinPiiDetector())
    redacted = redactor.redact(text)
    return Redaction(redacted, dict(redactor.placeholders), tuple(redactor.findings))
