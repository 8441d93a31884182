"""Document id -> insertion sequence number, in 16 bytes per document instead of a dict entry.

A sorted table of 64-bit id hashes (BLAKE2b, stable across processes, so a saved index keeps
its table) with their sequence numbers, plus a dict of the ids added since the table was last
rebuilt. A hash match is confirmed by reading the id back (``id_at``), so a collision costs a
comparison, never a wrong answer; removed documents are recognised the same way.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    IntArray = npt.NDArray[np.int64]


def id_hash(doc_id: str) -> int:
    """A stable signed 64-bit hash of ``doc_id``.

    Example:
        >>> id_hash("pdf") == id_hash("pdf") != id_hash("csv")
        True
    """
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class IdMap:
    """Live id -> seq. ``id_at(seq)`` returns the live id with that seq, or None."""

    __slots__ = ("_hashes", "_recent", "_seqs")

    def __init__(self) -> None:
        self._hashes: IntArray = np.zeros(0, dtype=np.int64)
        self._seqs: IntArray = np.zeros(0, dtype=np.int64)
        self._recent: dict[str, int] = {}

    def rebuild(self, hashes: IntArray, seqs: IntArray) -> None:
        """Replace the table with these (hash, seq) pairs of every live document."""
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._seqs = seqs[order]
        self._recent = {}

    @property
    def n_recent(self) -> int:
        return len(self._recent)

    @property
    def n_table(self) -> int:
        return len(self._hashes)

    def get(self, doc_id: str, id_at: Callable[[int], str | None]) -> int | None:
        seq = self._recent.get(doc_id)
        if seq is not None:
            return seq
        hashes = self._hashes
        if not len(hashes):
            return None
        h = id_hash(doc_id)
        at = int(np.searchsorted(hashes, h))
        while at < len(hashes) and int(hashes[at]) == h:
            candidate = int(self._seqs[at])
            if id_at(candidate) == doc_id:
                return candidate
            at += 1
        return None

    def add(self, doc_id: str, seq: int) -> None:
        self._recent[doc_id] = seq

    def discard(self, doc_id: str) -> None:
        """Forget ``doc_id`` if it is among the recent additions (table entries of removed
        documents are recognised as dead by ``id_at`` until the next rebuild)."""
        self._recent.pop(doc_id, None)

    @property
    def nbytes(self) -> int:
        return int(self._hashes.nbytes + self._seqs.nbytes) + 100 * len(self._recent)
