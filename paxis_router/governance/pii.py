"""A built-in PII and secret detector, and reversible redaction with placeholders.

The detector looks for e-mail addresses, phone numbers, payment card numbers (brand prefix,
length and the Luhn check digit), IBANs (country length and the ISO 7064 mod-97 check), national
ids, IP addresses (v4 and v6, validated by :mod:`ipaddress`) and secrets shaped like API keys.
Every candidate is validated, not just pattern-matched, so near-misses stay untouched:
Luhn-invalid card numbers, dates (``2024-03-15``, ``15/03/2024``), version numbers (``1.2.3``,
``10.0.19041.1``) and order ids (``ORD-20240315-0042``).

National ids recognised (``national_id``):

* US SSN, dashed form ``AAA-GG-SSSS`` only, with the SSA issuing rules (area not 000, 666 or
  900-999; group not 00; serial not 0000). An SSN has no check digit; the rules are its check.
* UK National Insurance number (``QQ 12 34 56 C``), with HMRC's prefix rules (no D, F, I, Q, U, V;
  second letter not O; not BG, GB, KN, NK, NT, TN, ZZ) and suffix A-D. No check digit either.
* Spanish DNI / NIE (``12345678Z``, ``X1234567L``): a real check letter, number mod 23.

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
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
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


# --- validators ---------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check.

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


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


# ISO 13616 IBAN lengths by country (the SEPA area and the common others).
_IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) has its country's length and passes mod-97.

    Example:
        >>> iban_valid("DE89 3704 0044 0532 0130 00"), iban_valid("DE89 3704 0044 0532 0130 01")
        (True, False)
    """
    compact = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(value: str) -> bool:
    """True for a Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter) whose
    check letter is right (number mod 23).

    Example:
        >>> dni_valid("12345678Z"), dni_valid("12345678A")
        (True, False)
    """
    value = value.upper()
    body, letter = value[:-1], value[-1]
    if body[:1] in ("X", "Y", "Z"):
        body = str("XYZ".index(body[0])) + body[1:]
    if not body.isdigit() or len(body) != 8:
        return False
    return _DNI_LETTERS[int(body) % 23] == letter


def ssn_valid(value: str) -> bool:
    """True for a dashed US SSN that follows the SSA issuing rules."""
    area, group, serial = value.split("-")
    if area in ("000", "666") or area.startswith("9"):
        return False
    return group != "00" and serial != "0000"


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

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"
)
_CARD = re.compile(_L + r"\d(?:[ \-]?\d){11,18}" + _R)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN = re.compile(_L + r"\d{3}-\d{2}-\d{4}" + _R)
_NINO = re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b[XYZ]?\d{7,8}[A-Z]\b")
_IPV4 = re.compile(_L + r"\d{1,3}(?:\.\d{1,3}){3}" + r"(?![\w\-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_PHONE_INTL = re.compile(_L + r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}" + _R)
_PHONE_NANP = re.compile(r"(?<![\w+/.\-(])(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}" + _R)
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
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
_KEYED_SECRET = re.compile(
    r"(?i)\b(?:api[_\-]?key|secret(?:[_\-]?key)?|access[_\-]?key|auth[_\-]?token|token|"
    r"password|passwd|bearer)\b[\"']?\s*[:=]?\s*[\"']?([A-Za-z0-9/+_.=\-]{16,})"
)
_MIN_KEY_ENTROPY_BITS = 3.5


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# "icon@2x.png" is a file name, not an address: these endings are file types, not TLDs.
_FILE_SUFFIXES = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf", "txt", "json", "yaml", "yml"}
)


def _email_ok(candidate: str) -> bool:
    return candidate.rsplit(".", 1)[-1].lower() not in _FILE_SUFFIXES


def _card_ok(candidate: str) -> bool:
    separators = {ch for ch in candidate if not ch.isdigit()}
    if len(separators) > 1:
        return False
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_valid(digits)


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

Check = tuple[str, re.Pattern[str], "Callable[[str], bool]", "Callable[[str, int], bool]"]

# (kind, pattern, validator of a match, prefilter(text, digit count))
_CHECKS: tuple[Check, ...] = (
    ("secret", _PRIVATE_KEY, _always, lambda t, d: "PRIVATE KEY" in t),
    ("secret", _SECRET_SHAPES, _secret_shape_ok, lambda t, d: any(n in t for n in _SECRET_NEEDLES)),
    ("iban", _IBAN, iban_valid, lambda t, d: d >= 4),
    ("card", _CARD, _card_ok, lambda t, d: d >= 12),
    ("national_id", _SSN, ssn_valid, lambda t, d: d >= 9 and "-" in t),
    ("national_id", _NINO, nino_valid, lambda t, d: d >= 6),
    ("national_id", _DNI, dni_valid, lambda t, d: d >= 7),
    ("email", _EMAIL, _email_ok, lambda t, d: "@" in t),
    ("ip", _IPV4, _ipv4_ok, lambda t, d: d >= 4 and "." in t),
    ("ip", _IPV6, _ipv6_ok, lambda t, d: t.count(":") >= 2),
    ("phone", _PHONE_INTL, _phone_intl_ok, lambda t, d: d >= 8 and "+" in t),
    ("phone", _PHONE_NANP, _phone_nanp_ok, lambda t, d: d >= 10),
    ("phone", _PHONE_TRUNK, _phone_trunk_ok, lambda t, d: d >= 10 and "0" in t),
)


class BuiltinPiiDetector:
    """The built-in detector: regular expressions plus checksum and format validation.

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
        found: list[PiiFinding] = []
        digits = len(_NOT_DIGITS.sub("", text))  # how many digit characters the text holds
        for kind, pattern, check, could_match in _CHECKS:
            if kind not in self.kinds or not could_match(text, digits):
                continue
            for match in pattern.finditer(text):
                value = match.group(0)
                if check(value):
                    found.append(PiiFinding(kind, match.start(), match.end(), value))
        lowered = text.lower()
        if "secret" in self.kinds and any(word in lowered for word in _KEY_WORDS):
            for match in _KEYED_SECRET.finditer(text):
                value = match.group(1)
                if shannon_entropy(value) >= _MIN_KEY_ENTROPY_BITS:
                    found.append(PiiFinding("secret", match.start(1), match.end(1), value))
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


# --- redaction ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")


@dataclass
class Redactor:
    """Replaces PII with numbered placeholders (``<EMAIL_1>``), one mapping across many texts.

    The same value always gets the same placeholder, so a request's messages stay consistent.
    After replacing, the text is scanned again; anything still found raises RedactionError
    (fail closed). A detector that raises is wrapped in RedactionError too.
    """

    detector: PiiDetector = field(default_factory=BuiltinPiiDetector)
    placeholders: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    findings: list[PiiFinding] = field(default_factory=list)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: Counter[str] = field(default_factory=Counter)

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        found = self._detect(text)
        if not found:
            return text
        taken = {m.group(0) for m in _PLACEHOLDER.finditer(text)}
        parts: list[str] = []
        pos = 0
        for finding in resolve_overlaps(found):
            if finding.start < pos or text[finding.start : finding.end] != finding.value:
                raise RedactionError(
                    f"detector {self.detector.name!r} returned an inconsistent span "
                    f"{finding.start}:{finding.end} for {finding.kind}; blocking instead"
                )
            parts.append(text[pos : finding.start])
            parts.append(self._placeholder(finding, taken))
            pos = finding.end
            self.findings.append(finding)
        parts.append(text[pos:])
        redacted = "".join(parts)
        leftover = self._detect(redacted)
        if leftover:
            kinds = sorted({f.kind for f in leftover})
            raise RedactionError(f"PII still present after redaction ({', '.join(kinds)})")
        return redacted

    def _detect(self, text: str) -> Sequence[PiiFinding]:
        try:
            return self.detector.detect(text)
        except Exception as exc:  # any third-party detector: a crash must block, not leak
            raise RedactionError(
                f"PII detector {getattr(self.detector, 'name', '?')!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

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


def restore_placeholders(
    text: str, placeholders: Mapping[str, str], *, json_strings: bool = False
) -> str:
    """Replace each issued placeholder in ``text`` with its original value."""
    if not placeholders:
        return text

    def swap(match: re.Match[str]) -> str:
        original = placeholders.get(match.group(0))
        if original is None:
            return match.group(0)
        return json.dumps(original)[1:-1] if json_strings else original

    return _PLACEHOLDER.sub(swap, text)


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
