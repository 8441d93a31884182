"""Which rows a policy was fitted on: a compact fingerprint, so a replay can tell held-out data.

A policy fitted by ``paxis calibrate`` scores the rows it was fitted on better than any new
row (its kNN half has them as their own nearest neighbours; its logistic heads have seen their
labels), so replaying the same rows measures memory, not routing. The fingerprint, written into
the policy as ``fitted_on:``, answers "was this row fitted on?" for any later data:

- each row is keyed by its prompt (NFC, whitespace collapsed): the same question in another
  file or format is the same row;
- the set of keys is stored as a Golomb-coded-set-style sorted list of hashes reduced modulo
  ``unique_rows * 2**bits`` (delta + LEB128 varint, base64): about 3 bytes a row at ``bits=20``,
  where a row that was not fitted on matches by chance with probability about ``2**-bits``
  (one in a million) — the compact membership filter Bitcoin's BIP 158 uses, without its
  bit-level Rice coding;
- ``rows`` (fitted rows, duplicates included) and ``digest`` (SHA-256 over the sorted unique
  keys) say whether a replay's data is exactly the fitted data.

Example:
    >>> fp = RowFingerprint.of_prompts(["What is 2+2?", "Name a prime."])
    >>> fp.overlap(["What is  2+2?", "What is 3+3?"]).fitted
    1
    >>> RowFingerprint.from_dict(fp.to_dict()) == fp
    True
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["FORMAT", "Overlap", "RowFingerprint", "row_key"]

FORMAT = "paxis-fitted-rows/1"
DEFAULT_BITS = 20


def row_key(prompt: str) -> bytes:
    """A row's key: SHA-256 of its prompt, Unicode-NFC and whitespace-collapsed.

    Example:
        >>> row_key("a  b\\n") == row_key("a b")
        True
    """
    text = " ".join(unicodedata.normalize("NFC", prompt).split())
    return hashlib.sha256(text.encode("utf-8")).digest()


def _digest(keys: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for key in sorted(set(keys)):
        h.update(key)
    return "sha256:" + h.hexdigest()


def _reduce(key: bytes, modulus: int) -> int:
    return int.from_bytes(key[:8], "big") % modulus


def _encode(values: list[int]) -> str:
    out = bytearray()
    previous = 0
    for value in values:
        delta = value - previous
        previous = value
        while True:
            low = delta & 0x7F
            delta >>= 7
            if delta:
                out.append(low | 0x80)
            else:
                out.append(low)
                break
    return base64.b64encode(bytes(out)).decode("ascii")


def _decode(text: str) -> list[int]:
    data = base64.b64decode(text.encode("ascii"), validate=True)
    values: list[int] = []
    current = shift = delta = 0
    for byte in data:
        delta |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        current += delta
        values.append(current)
        delta = shift = 0
    if shift:
        raise ValueError("truncated varint")
    return values


@dataclass(frozen=True)
class Overlap:
    """How much of some data a policy was fitted on.

    ``rows``: rows checked; ``fitted``: of those, rows whose prompt the policy was fitted on;
    ``fitted_rows``: how many rows the policy was fitted on; ``same_data``: the checked rows'
    prompts are exactly the fitted ones.

    Example:
        >>> o = Overlap(rows=200, fitted=100, fitted_rows=100, same_data=False)
        >>> o.in_sample, o.share
        (True, 0.5)
    """

    rows: int
    fitted: int
    fitted_rows: int
    same_data: bool

    @property
    def in_sample(self) -> bool:
        """True when any checked row was fitted on."""
        return self.fitted > 0

    @property
    def share(self) -> float:
        """The share of the checked rows the policy was fitted on."""
        return self.fitted / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """One sentence for a warning or an error."""
        if self.same_data:
            return (
                f"these {self.rows} rows are exactly the {self.fitted_rows} rows the policy was "
                "fitted on: its figures on them are in-sample"
            )
        return (
            f"{self.fitted} of {self.rows} rows ({self.share:.1%}) were in the data the policy "
            f"was fitted on ({self.fitted_rows} rows): its figures on them are in-sample"
        )


@dataclass(frozen=True)
class RowFingerprint:
    """The set of prompts a policy was fitted on, compactly (see the module docstring).

    ``rows``: fitted rows (duplicates included); ``unique_rows``: distinct prompts; ``values``:
    their hashes reduced modulo ``modulus`` (= ``unique_rows * 2**bits``).
    """

    rows: int
    unique_rows: int
    digest: str
    bits: int
    modulus: int
    values: frozenset[int]

    @classmethod
    def of_prompts(cls, prompts: Iterable[str], *, bits: int = DEFAULT_BITS) -> RowFingerprint:
        """The fingerprint of the rows with these prompts."""
        keys = [row_key(p) for p in prompts]
        unique = set(keys)
        modulus = max(1, len(unique)) << bits
        return cls(
            rows=len(keys),
            unique_rows=len(unique),
            digest=_digest(unique),
            bits=bits,
            modulus=modulus,
            values=frozenset(_reduce(k, modulus) for k in unique),
        )

    def contains(self, prompt: str) -> bool:
        """True when ``prompt`` was (very probably: see ``bits``) one of the fitted rows."""
        return _reduce(row_key(prompt), self.modulus) in self.values

    def overlap(self, prompts: Iterable[str]) -> Overlap:
        """How many of these rows' prompts the policy was fitted on."""
        keys = [row_key(p) for p in prompts]
        fitted = sum(1 for k in keys if _reduce(k, self.modulus) in self.values)
        return Overlap(
            rows=len(keys),
            fitted=fitted,
            fitted_rows=self.rows,
            same_data=bool(keys) and _digest(keys) == self.digest,
        )

    def to_dict(self) -> dict[str, Any]:  # Any: YAML values
        """The ``fitted_on:`` section a policy file carries."""
        return {
            "format": FORMAT,
            "key": "prompt",
            "rows": self.rows,
            "unique_rows": self.unique_rows,
            "digest": self.digest,
            "bits": self.bits,
            "modulus": self.modulus,
            "hashes": _encode(sorted(self.values)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<policy>") -> RowFingerprint:
        """Read a ``fitted_on:`` section (ConfigError naming the field when malformed)."""
        if data.get("format") != FORMAT:
            raise ConfigError(
                f"unknown fingerprint format {data.get('format')!r}; expected {FORMAT!r}",
                source=source,
                field="fitted_on.format",
            )
        try:
            fp = cls(
                rows=int(data["rows"]),
                unique_rows=int(data["unique_rows"]),
                digest=str(data["digest"]),
                bits=int(data["bits"]),
                modulus=int(data["modulus"]),
                values=frozenset(_decode(str(data["hashes"]))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"malformed fingerprint: {exc!r}", source=source, field="fitted_on"
            ) from exc
        if fp.modulus < 1 or len(fp.values) > fp.unique_rows or fp.unique_rows > fp.rows:
            raise ConfigError(
                "the fingerprint's counts do not add up (rows >= unique_rows >= hashes)",
                source=source,
                field="fitted_on",
            )
        if fp.values and max(fp.values) >= fp.modulus:
            raise ConfigError(
                "a hash is not below the modulus", source=source, field="fitted_on.hashes"
            )
        return fp
