"""The BM25 / BM25F formula, in one place, so every code path computes the same bits.

A posting's contribution to a query is ``count * (idf * impact)``: the term's count in the query
and its idf are computed per query term at query time (Python floats: idf depends on the live
collection size and document frequency), and ``impact`` is the term-frequency part, which
depends on the document's field term counts and lengths and on the collection's mean field
lengths. Segments store impacts
computed with the mean lengths of their compile time; :meth:`Scorer.drift` bounds how far those
are from the impacts with today's means, so a query can prune with stored impacts and then
score its few candidates exactly with :meth:`Scorer.impacts` and :func:`combine`.

Every formula here is elementwise (no reductions whose association depends on array length, no
transcendental functions on arrays), so an impact is the same number whichever array it is
computed in: an index that grew by adds and removes ranks exactly like one built afresh.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

#: Relative slack on every bound (float32 impacts round at 6e-8; sums add a little more).
BOUND_SLACK = 1e-6


class Scorer:
    """BM25F (per-field weights and length normalisation) or Okapi BM25 (rank_bm25-compatible).

    Example:
        >>> s = Scorer(okapi=False, k1=1.2, b=0.75, weights=[1.0], field_b=[0.75], epsilon=0.25)
        >>> tf, dl = np.array([[2.0]]), np.array([[4.0]])
        >>> round(float(s.impacts(tf, dl, np.array([4.0]))[0]), 4)
        1.375
    """

    __slots__ = (
        "_any_full_b", "_b", "_one_minus_b", "_w", "_weighted",
        "b", "epsilon", "field_b", "k1", "n_fields", "okapi", "weights",
    )  # fmt: skip

    def __init__(
        self,
        *,
        okapi: bool,
        k1: float,
        b: float,
        weights: list[float],
        field_b: list[float],
        epsilon: float,
    ):
        self.okapi = okapi
        self.k1 = float(k1)
        self.b = float(b)
        self.weights = [float(w) for w in weights]
        self.field_b = [float(x) for x in field_b]
        self.epsilon = float(epsilon)
        self.n_fields = len(self.weights)
        self._weighted = [f for f, w in enumerate(self.weights) if w != 0.0]
        self._w = np.asarray([self.weights[f] for f in self._weighted])
        self._b = np.asarray([self.field_b[f] for f in self._weighted])
        self._one_minus_b = 1.0 - self._b
        self._any_full_b = bool((self._b >= 1.0).any())

    def impacts(
        self, tf: npt.NDArray[np.generic], dl: npt.NDArray[np.generic], avg: FloatArray
    ) -> FloatArray:
        """Impacts of postings with field term counts ``tf`` (P, F) in documents of field
        lengths ``dl`` (P, F), given the collection's mean field lengths ``avg`` (F,)."""
        k1 = self.k1
        if self.okapi:
            # rank_bm25's operation order, over the total of all fields.
            q = tf[:, 0].astype(np.float64)
            length = dl[:, 0].astype(np.float64)
            for f in range(1, self.n_fields):
                q = q + tf[:, f].astype(np.float64)
                length = length + dl[:, f].astype(np.float64)
            mean = float(avg[0])
            for f in range(1, self.n_fields):
                mean += float(avg[f])
            b = self.b
            out: FloatArray = q * (k1 + 1) / (q + k1 * (1 - b + b * length / mean))
            return out
        fields = self._weighted
        if not fields:
            return np.zeros(len(tf))
        # All weighted fields at once: norm = (1 - b) + b * (dl / mean), part = tf * w / norm.
        means = np.asarray([float(avg[f]) if avg[f] > 0 else 1.0 for f in fields])
        lengths = dl[:, fields] if len(fields) < self.n_fields else dl
        counts = tf[:, fields] if len(fields) < self.n_fields else tf
        norm = self._one_minus_b + self._b * (lengths.astype(np.float64) / means)
        if self._any_full_b:  # an empty field (no term in it) has norm 0 at b = 1: adds 0
            norm[norm == 0.0] = 1.0
        parts = counts.astype(np.float64) * self._w / norm
        pseudo = parts[:, 0]
        for f in range(1, len(fields)):  # field order, left to right
            pseudo = pseudo + parts[:, f]
        out = pseudo * (k1 + 1) / (pseudo + k1)
        return out

    def idf(self, df: int, n_docs: int) -> float:
        """The idf of a term in ``df`` of ``n_docs`` live documents (okapi: may be negative,
        before the epsilon floor that :meth:`okapi_floor` gives)."""
        if self.okapi:
            return math.log(n_docs - df + 0.5) - math.log(df + 0.5)
        return math.log1p((n_docs - df + 0.5) / (df + 0.5))

    def okapi_floor(self, df: npt.NDArray[np.int64], n_docs: int) -> float:
        """rank_bm25's replacement for a negative idf: ``epsilon`` times the mean idf of every
        term present in the collection. O(vocabulary): computed only when a query needs it."""
        present = df[df > 0].tolist()
        if not present:
            return 0.0
        log = math.log
        total = math.fsum(log(n_docs - d + 0.5) - log(d + 0.5) for d in present)
        return self.epsilon * total / len(present)

    def drift(self, avg_ref: FloatArray, avg_now: FloatArray) -> tuple[float, float]:
        """``(lo, hi)`` with ``lo * stored <= exact <= hi * stored`` for every impact stored
        with mean field lengths ``avg_ref`` and exact under ``avg_now``.

        An impact's length norm ``1 - b + b * dl / avg`` moves by a factor between 1 and
        ``avg_now / avg_ref`` when the mean moves; the saturation ``x (k1 + 1) / (x + k1)``
        moves by a factor between 1 and that of its argument. So the bounds are the extreme
        ratios over the fields that count (weight and b non-zero, both means positive)."""
        lo = hi = 1.0
        if self.okapi:
            ref, now = float(avg_ref.sum()), float(avg_now.sum())
            if ref > 0 and now > 0 and self.b != 0.0:
                ratio = now / ref
                lo, hi = min(lo, ratio), max(hi, ratio)
            return lo, hi
        for f, weight in enumerate(self.weights):
            ref, now = float(avg_ref[f]), float(avg_now[f])
            if weight == 0.0 or self.field_b[f] == 0.0 or ref <= 0 or now <= 0:
                continue
            ratio = now / ref
            lo, hi = min(lo, ratio), max(hi, ratio)
        return lo, hi


def sum_terms(matrix: FloatArray) -> FloatArray:
    """Column sums of a (query terms x documents) matrix, added row after row in query order.

    A reduction over axis 0 of a C-ordered array with at least two columns runs along the slow
    axis, where NumPy adds the rows one after the other (pairwise summation is only used along
    the fast axis: see ``numpy.sum``); callers pad to two columns. So each document's sum is
    ``((t0 + t1) + t2) + ...`` whatever the number of documents: tested.
    """
    assert matrix.ndim == 2 and matrix.shape[1] >= 2 and matrix.flags.c_contiguous
    out: FloatArray = np.add.reduce(matrix, axis=0)
    return out


def combine(
    impacts: FloatArray,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    n_cols: int,
    idfs: list[float],
    counts: list[int],
) -> FloatArray:
    """Scores of ``n_cols`` documents: per query term ``i`` (in query order) the contribution
    ``counts[i] * (idfs[i] * impact)`` of each posting ``(rows[j], cols[j])`` (query term,
    document column), summed left to right in query-term order.

    ``np.bincount`` adds its weights one after the other into each bin, starting from 0.0; with
    the postings in query-term order that is ``((0 + c0) + c1) + ...``, the same bits as
    :func:`sum_terms` gives for the rows of a (terms x documents) matrix (adding a 0.0 for an
    absent term changes nothing). So a document gets the same score in any layout.
    """
    if len(rows) > 1 and bool((rows[1:] < rows[:-1]).any()):
        order = np.argsort(rows, kind="stable")
        impacts, rows, cols = impacts[order], rows[order], cols[order]
    contributions = impacts * np.asarray(idfs)[rows]
    if any(c != 1 for c in counts):
        contributions *= np.asarray(counts, dtype=np.float64)[rows]
    out: FloatArray = np.bincount(cols, weights=contributions, minlength=n_cols).astype(
        np.float64, copy=False
    )
    return out
