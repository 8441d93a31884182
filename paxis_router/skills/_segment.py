"""Postings segments of a :class:`~paxis_router.skills.bm25.SkillIndex` and the mutable delta.

A :class:`Segment` is an immutable run of documents (consecutive in insertion order) compiled to
compact arrays: CSR postings by term (document, stored impact, field term counts), a forward map
from each document to its postings (to purge, rescore and find matched terms), per-document
field lengths, insertion sequence numbers and ids. Only its tombstone mask changes after
compile, plus :meth:`Segment.refresh` (new impacts for new collection statistics).

Every segment answers a query with its exact top ``k``: it prunes with its stored impacts and
:meth:`~paxis_router.skills._scoring.Scorer.drift` bounds, then scores the surviving candidates
exactly with today's statistics (:meth:`Segment.exact`). Small segments score every document
through a (terms x documents) matrix, with dense rows for their most frequent terms; when their
stored impacts are current that matrix is already exact. Large segments use MaxScore (Turtle
and Flood, 1995): terms in decreasing order of their best possible contribution are scored in
full only until the rest could not lift an unseen document into the top ``k``; the rest are
looked up for the candidates alone.

The :class:`Delta` holds documents added since the last seal, scored exactly on every query
from per-term entry lists that grow as documents arrive (O(document) per add).
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

from paxis_router.skills._scoring import BOUND_SLACK, combine, sum_terms

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy.typing as npt

    from paxis_router.skills._scoring import Scorer

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]

#: Default size up to which a segment scores through a dense matrix with float64 impacts
#: (exact without rescoring while the statistics hold); larger ones use MaxScore over float32
#: impacts.
MATRIX_MAX_DOCS = 8192
# Up to this many top results are found by repeated argmax instead of a partition.
_ARGMAX_WORK = 250_000
_SORT_DIRECTLY = 48
# MaxScore's first threshold comes from scoring this many documents of its first term in full.
_PROBE_DOCS = 256
#: A large segment scores a query whose terms have at most this many postings directly.
DIRECT_POSTINGS = 16_384

Hit = tuple[float, int, int]  # (score, seq, local document)


class Strings:
    """A compact read-only column of strings: one UTF-8 blob and offsets (no object per item).

    Example:
        >>> col = Strings.from_list(["a", "bé", ""])
        >>> len(col), col[1], col.tolist()
        (3, 'bé', ['a', 'bé', ''])
    """

    __slots__ = ("blob", "offsets")

    def __init__(self, blob: bytes | npt.NDArray[np.uint8], offsets: IntArray):
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def from_list(cls, items: Sequence[str]) -> Strings:
        encoded = [s.encode("utf-8") for s in items]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        if encoded:
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        blob = self.blob
        if isinstance(blob, bytes):
            return blob[lo:hi].decode("utf-8")
        return blob[lo:hi].tobytes().decode("utf-8")

    def tolist(self) -> list[str]:
        blob = self.blob if isinstance(self.blob, bytes) else self.blob.tobytes()
        bounds = self.offsets.tolist()
        return [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]

    @staticmethod
    def gather(parts: Sequence[tuple[Strings, npt.NDArray[np.intp]]]) -> Strings:
        """The strings at ``rows`` of each column, concatenated, without decoding them."""
        pieces: list[npt.NDArray[np.uint8]] = []
        sizes: list[IntArray] = []
        for column, rows in parts:
            blob = column.blob
            data = np.frombuffer(blob, dtype=np.uint8) if isinstance(blob, bytes) else blob
            lo = column.offsets[rows]
            lens = column.offsets[rows + 1] - lo
            pieces.append(data[_ranges(lo, lens)])
            sizes.append(lens)
        lengths = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        joined = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
        return Strings(joined.tobytes(), offsets)

    @property
    def nbytes(self) -> int:
        return len(self.blob) + int(self.offsets.nbytes)


class Query:
    """A query prepared for the segments: its known terms in query order with their idf and
    count (under today's statistics), ``coefs`` = count x idf, and today's mean field lengths."""

    __slots__ = ("_sorted", "avg", "coefs", "counts", "idfs", "negative", "tids")

    def __init__(self, tids: list[int], idfs: list[float], counts: list[int], avg: FloatArray):
        self.tids = tids
        self.idfs = idfs
        self.counts = counts
        self.coefs = [c * idf for c, idf in zip(counts, idfs, strict=True)]
        self.avg = avg
        self.negative = min(idfs) < 0
        self._sorted: tuple[IntArray, IntArray] | None = None

    def positions(self, term_ids: IntArray) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """For each term id: whether it is a query term, and (where it is) its query position."""
        if self._sorted is None:
            order = np.argsort(np.asarray(self.tids, dtype=np.int64), kind="stable")
            self._sorted = (np.asarray(self.tids, dtype=np.int64)[order], order.astype(np.int64))
        st, pos = self._sorted
        at = np.searchsorted(st, term_ids)
        at[at >= len(st)] = len(st) - 1
        hit = st[at] == term_ids
        return hit, pos[at[hit]]


def top_k(scores: FloatArray, k: int, floor: float) -> list[tuple[float, int]]:
    """The ``k`` best (score, index) pairs with a positive score >= ``floor``: score descending,
    then index ascending. May overwrite ``scores``.

    Small ``k`` over a small array: ``k`` argmax scans (each finds the lowest index among equal
    best scores). Otherwise the entries within a fraction of the best score: if at least ``k``
    qualify, the top ``k`` are among them; the fraction is lowered until ``k`` qualify.
    """
    if not len(scores):
        return []
    if k * len(scores) <= _ARGMAX_WORK:
        out: list[tuple[float, int]] = []
        for _ in range(min(k, len(scores))):
            slot = int(scores.argmax())
            score = float(scores[slot])
            if score <= 0.0 or score < floor:
                break
            out.append((score, slot))
            scores[slot] = -np.inf
        return out
    best = float(scores.max())
    if best <= 0.0 or best < floor:
        return []
    for fraction in (0.5, 0.2, 0.0):
        top = np.flatnonzero(scores >= max(fraction * best, floor))
        if len(top) >= k:
            break
    if fraction == 0.0 and floor <= 0.0:
        top = top[scores[top] > 0.0]
    if len(top) > max(k, _SORT_DIRECTLY):
        top = top[np.argpartition(scores[top], len(top) - k)[len(top) - k :]]
    pairs = sorted(zip((-scores[top]).tolist(), top.tolist(), strict=True))[:k]
    return [(-neg, slot) for neg, slot in pairs]


def _kth_largest(values: FloatArray, k: int) -> float:
    n = len(values)
    if n < k or k <= 0:
        return -np.inf
    return float(np.partition(values, n - k)[n - k])


def _ranges(lo: IntArray, lens: IntArray) -> IntArray:
    """The concatenation of ``arange(lo[i], lo[i] + lens[i])`` over ``i``."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    out: IntArray = starts + np.arange(total, dtype=np.int64)
    return out


class Segment:
    """Compiled postings for a run of documents; see the module docstring."""

    __slots__ = (
        "_pool",
        "avg_ref",
        "changes_at",
        "dead",
        "dense",
        "dense_row",
        "dl",
        "exact_at",
        "fwd_off",
        "fwd_pos",
        "id_hash",
        "id_list",
        "ids",
        "indptr",
        "matrix",
        "max_imp",
        "n_dead",
        "n_docs",
        "n_terms",
        "post_doc",
        "post_imp",
        "post_tf",
        "seq",
        "starts",
    )

    def __init__(
        self,
        *,
        seq: IntArray,
        ids: Strings,
        id_hash: IntArray,
        dl: npt.NDArray[np.float32],
        indptr: IntArray,
        post_doc: npt.NDArray[np.int32],
        post_tf: npt.NDArray[np.unsignedinteger],
        fwd_off: IntArray,
        fwd_pos: npt.NDArray[np.signedinteger[Any]],
        dead: npt.NDArray[np.bool_] | None = None,
        matrix: bool = True,
    ):
        self.matrix = matrix
        self.seq = seq
        self.ids = ids
        self.id_hash = id_hash
        self.id_list: list[str] | None = None  # small segments: ids decoded once
        self.dl = dl
        self.indptr = indptr
        self.starts = array("q", np.ascontiguousarray(indptr, dtype=np.int64).tobytes())
        self.n_terms = len(indptr) - 1
        self.post_doc = post_doc
        self.post_tf = post_tf
        self.fwd_off = fwd_off
        self.fwd_pos = fwd_pos
        self.n_docs = len(seq)
        self.dead: npt.NDArray[np.bool_] = (
            dead if dead is not None else np.zeros(self.n_docs, dtype=np.bool_)
        )
        self.n_dead = int(self.dead.sum())
        self.post_imp: npt.NDArray[np.floating] = np.zeros(0)
        self.max_imp: npt.NDArray[np.floating] = np.zeros(0)
        self.avg_ref: FloatArray = np.zeros(dl.shape[1] if dl.ndim == 2 else 0)
        self.dense: FloatArray | None = None
        self.dense_row: list[int] = []
        #: The index generation whose statistics the stored impacts and dense rows have.
        self.exact_at = -1
        #: The index's change count (documents added or removed) at the last refresh.
        self.changes_at = 0
        self._pool: list[tuple[FloatArray, npt.NDArray[np.int32]]] = []

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def compile(
        cls,
        *,
        e_doc: IntArray,
        e_tid: IntArray,
        e_tf: npt.NDArray[np.unsignedinteger],
        dl: npt.NDArray[np.float32],
        seq: IntArray,
        ids: Strings,
        id_hash: IntArray,
        n_terms: int,
        scorer: Scorer,
        avg: FloatArray,
        dense_bytes: int,
        matrix_docs: int,
        idf_of: Callable[[int], float],
        generation: int,
    ) -> Segment:
        """A segment from entries (document, term, field counts) in document order; it scores
        through a matrix if it has at most ``matrix_docs`` documents, else with MaxScore."""
        n_docs = len(seq)
        counts = np.bincount(e_tid, minlength=n_terms) if len(e_tid) else np.zeros(n_terms, int)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        order = np.argsort(e_tid, kind="stable")  # documents stay ascending within a term
        n_entries = len(e_tid)
        pos_dtype = np.int32 if n_entries < 2**31 else np.int64
        # Any: numpy's bit-width parameter (int32 or int64 by size).
        fwd_pos: npt.NDArray[np.signedinteger[Any]] = np.empty(n_entries, dtype=pos_dtype)
        fwd_pos[order] = np.arange(n_entries, dtype=pos_dtype)
        per_doc = np.bincount(e_doc, minlength=n_docs) if n_entries else np.zeros(n_docs, int)
        fwd_off = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(per_doc, out=fwd_off[1:])
        segment = cls(
            seq=seq,
            ids=ids,
            id_hash=id_hash,
            dl=dl,
            indptr=indptr,
            post_doc=e_doc[order].astype(np.int32),
            post_tf=e_tf[order],
            fwd_off=fwd_off,
            fwd_pos=fwd_pos,
            matrix=n_docs <= matrix_docs,
        )
        segment.refresh(scorer, avg, dense_bytes, idf_of, generation)
        return segment

    def refresh(
        self,
        scorer: Scorer,
        avg: FloatArray,
        dense_bytes: int,
        idf_of: Callable[[int], float],
        generation: int,
    ) -> None:
        """Recompute the stored impacts for the mean field lengths ``avg``, and the dense rows
        (``idf * impact``, with today's ``idf_of(term)``), as of index ``generation``."""
        impacts = scorer.impacts(self.post_tf, self.dl[self.post_doc], avg)
        matrix = self.matrix
        self.post_imp = impacts if matrix else impacts.astype(np.float32)
        nonempty = np.flatnonzero(np.diff(self.indptr))
        max_imp = np.zeros(self.n_terms, dtype=self.post_imp.dtype)
        if len(nonempty):
            max_imp[nonempty] = np.maximum.reduceat(self.post_imp, self.indptr[nonempty])
        self.max_imp = max_imp
        self.avg_ref = avg.copy()
        self.dense, self.dense_row = None, []
        if matrix and self.n_docs and dense_bytes >= 8 * self.n_docs:
            self._densify(dense_bytes // (8 * self.n_docs), idf_of)
        self.exact_at = generation

    def _densify(self, max_rows: int, idf_of: Callable[[int], float]) -> None:
        df = np.diff(self.indptr)
        by_df = np.argsort(-df, kind="stable")[: min(max_rows, int(np.count_nonzero(df)))]
        idfs = [idf_of(t) for t in by_df.tolist()]
        # NaN: no live document has the term; 0: it adds nothing. Both stay sparse.
        known = [i for i, idf in enumerate(idfs) if idf == idf and idf != 0.0]
        by_df, idfs = by_df[known], [idfs[i] for i in known]
        if not len(by_df):
            return
        rows = np.full(self.n_terms, -1, dtype=np.int64)
        rows[by_df] = np.arange(len(by_df))
        # As wide as _matrix rows, plus a last all-zero row that stands for any other term.
        dense = np.zeros((len(by_df) + 1, max(self.n_docs, 2)))
        take = _ranges(self.indptr[by_df], df[by_df])
        dense[np.repeat(np.arange(len(by_df)), df[by_df]), self.post_doc[take]] = self.post_imp[
            take
        ] * np.repeat(np.asarray(idfs), df[by_df])
        self.dense = dense
        self.dense_row = rows.tolist()

    def entries(self) -> tuple[IntArray, IntArray, npt.NDArray[np.unsignedinteger]]:
        """(document, term, field counts) of every live document's postings, document order,
        documents renumbered 0.. over the live ones."""
        term_of_posting = np.repeat(np.arange(self.n_terms, dtype=np.int64), np.diff(self.indptr))
        per_doc = np.diff(self.fwd_off)
        doc = np.repeat(np.arange(self.n_docs, dtype=np.int64), per_doc)
        pos = self.fwd_pos
        if self.n_dead:
            live = ~self.dead
            keep = live[doc]
            pos = pos[keep]
            renumber = np.cumsum(live) - 1
            doc = renumber[doc[keep]]
        return doc, term_of_posting[pos], self.post_tf[pos]

    def live(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero(~self.dead)

    def terms_of(self, local: int) -> IntArray:
        """The term ids of document ``local``."""
        pos = self.fwd_pos[int(self.fwd_off[local]) : int(self.fwd_off[local + 1])]
        out: IntArray = np.searchsorted(self.indptr, pos, side="right") - 1
        return out

    def kill(self, local: int) -> None:
        self.dead[local] = True
        self.n_dead += 1

    def id_of(self, local: int) -> str:
        if self.matrix:  # small: keep the decoded ids
            if self.id_list is None:
                self.id_list = self.ids.tolist()
            return self.id_list[local]
        return self.ids[local]

    def local_of(self, seq: int) -> int | None:
        """The local number of the document with ``seq``, or None if it is not here."""
        at = int(np.searchsorted(self.seq, seq))
        return at if at < self.n_docs and int(self.seq[at]) == seq else None

    @property
    def first_seq(self) -> int:
        return int(self.seq[0])

    @property
    def nbytes(self) -> int:
        arrays = (
            self.seq, self.id_hash, self.dl, self.indptr, self.post_doc, self.post_tf,
            self.fwd_off, self.fwd_pos, self.dead, self.post_imp, self.max_imp,
        )  # fmt: skip
        total = sum(int(a.nbytes) for a in arrays) + self.ids.nbytes
        total += 8 * len(self.starts) + sum(a.nbytes + b.nbytes for a, b in self._pool)
        if self.dense is not None:
            total += int(self.dense.nbytes) + 8 * len(self.dense_row)
        return total

    # --- querying ------------------------------------------------------------------------------

    def top(
        self,
        query: Query,
        k: int,
        floor: float,
        scorer: Scorer,
        generation: int,
        direct_postings: int = DIRECT_POSTINGS,
    ) -> list[Hit]:
        """The segment's exact top ``k`` live documents with a positive score >= ``floor``;
        ``generation`` is the index's now (its statistics are the query's). A large segment
        prunes with MaxScore unless the query's terms have at most ``direct_postings``."""
        if self.n_docs == self.n_dead:
            return []
        if not self.matrix:
            starts, n_terms = self.starts, self.n_terms
            postings = sum(starts[t + 1] - starts[t] for t in query.tids if t < n_terms)
            if postings <= direct_postings:  # few postings: pruning would cost more
                return self._direct(query, k, floor, scorer)
            return self._pruned(query, k, floor, scorer)
        if self.exact_at != generation:  # stale dense rows: score the postings directly
            return self._direct(query, k, floor, scorer)
        scores = self._matrix(query)
        if self.n_dead:
            scores[self.dead] = 0.0
        return [(s, int(self.seq[i]), i) for s, i in top_k(scores, k, floor)]

    def _matrix(self, query: Query) -> FloatArray:
        """Scores of every document through the (terms x documents) matrix of
        :func:`~paxis_router.skills._scoring.combine`: one gather of dense rows (``idf *
        impact`` as of today: the caller checks), the zero row for other terms, a scatter per
        sparse term, one sum. The same bits as ``combine`` gives."""
        starts, n_terms, dense_row, dense = self.starts, self.n_terms, self.dense_row, self.dense
        post_doc, post_imp = self.post_doc, self.post_imp
        counts, idfs = query.counts, query.idfs
        if dense is None:
            matrix = np.zeros((len(query.tids), max(self.n_docs, 2)))
            rows = [-1] * len(query.tids)
        else:
            zero = len(dense) - 1
            rows = [dense_row[t] if t < n_terms and dense_row[t] >= 0 else -1 for t in query.tids]
            matrix = dense.take([zero if r < 0 else r for r in rows], axis=0)
        for i, tid in enumerate(query.tids):
            if rows[i] < 0 and tid < n_terms:
                lo, hi = starts[tid], starts[tid + 1]
                if lo < hi:
                    matrix[i, post_doc[lo:hi]] = post_imp[lo:hi] * idfs[i]
            if counts[i] != 1:
                matrix[i] *= counts[i]
        return sum_terms(matrix)[: self.n_docs]

    def _query_terms(self, query: Query) -> list[tuple[int, int, int]]:
        starts, n_terms = self.starts, self.n_terms
        out = []
        for i, tid in enumerate(query.tids):
            if tid < n_terms:
                lo, hi = starts[tid], starts[tid + 1]
                if lo < hi:
                    out.append((i, lo, hi))
        return out

    def _union(self, terms: list[tuple[int, int, int]]) -> npt.NDArray[np.intp]:
        docs = [self.post_doc[lo:hi] for _, lo, hi in terms]
        cands = docs[0] if len(docs) == 1 else np.unique(np.concatenate(docs))
        if self.n_dead:
            cands = cands[~self.dead[cands]]
        return cands.astype(np.intp)

    def _pruned(self, query: Query, k: int, floor: float, scorer: Scorer) -> list[Hit]:
        """MaxScore over the stored impacts, then exact scores for the candidates left.

        Terms are taken in decreasing order of their largest possible contribution. A probe
        (the first term's documents, scored over every term) gives a first threshold theta: a
        lower bound on the k-th best score. The shortest prefix of terms whose remaining terms
        together stay below theta is scored in full (the "essential" terms); a document outside
        their postings cannot reach the top k. The other terms are looked up for the surviving
        candidates only, pruning them as the bound on what is left shrinks.
        """
        terms = self._query_terms(query)
        if not terms:
            return []
        if query.negative:
            return self._exact_top(self._union(terms), query, k, floor, scorer)
        coefs = query.coefs
        lo, hi = scorer.drift(self.avg_ref, query.avg)
        lam, mu = lo * (1 - BOUND_SLACK), hi * (1 + BOUND_SLACK)
        max_imp, tids = self.max_imp, query.tids
        bound = [coefs[i] * float(max_imp[tids[i]]) * mu for i, _, _ in terms]
        order = sorted(range(len(terms)), key=lambda j: -bound[j])
        terms = [terms[j] for j in order]
        bound = [bound[j] for j in order]
        rest = [0.0] * (len(terms) + 1)  # rest[j]: the most terms j.. can add to a score
        for j in range(len(terms) - 1, -1, -1):
            rest[j] = rest[j + 1] + bound[j]
        post_doc, post_imp, dead = self.post_doc, self.post_imp, self.dead
        theta = max(floor, 0.0)
        _, a0, b0 = terms[0]
        if len(terms) > 1 and rest[1] >= theta and b0 - a0 >= k:
            # The probe: the first term's documents with the largest impacts in it.
            probe = post_doc[a0:b0]
            if len(probe) > _PROBE_DOCS:
                best = np.argpartition(post_imp[a0:b0], len(probe) - _PROBE_DOCS)
                probe = np.sort(probe[best[len(probe) - _PROBE_DOCS :]])
            if self.n_dead:
                probe = probe[~dead[probe]]
            theta = max(theta, lam * _kth_largest(self._lookup(probe, terms, coefs), k))
        essential = 1
        while essential < len(terms) and rest[essential] >= theta:
            essential += 1
        acc, marker = self._pool.pop() if self._pool else self._scratch()
        touched = [post_doc[a:b] for _, a, b in terms[:essential]]
        everything = touched[0] if essential == 1 else np.concatenate(touched)
        try:
            for (i, a, b), docs in zip(terms[:essential], touched, strict=True):
                acc[docs] += post_imp[a:b] * coefs[i]
            partial = acc[everything]
        finally:
            acc[everything] = 0.0
            self._pool.append((acc, marker))
        left = rest[essential]
        # mu * partial + left >= theta, and partial > 0 (a document with a posting here).
        survive = partial >= max((theta - left) / mu, np.nextafter(0.0, 1.0))
        cands, approx = everything[survive], partial[survive]
        if essential > 1:  # a document is in several essential lists: keep one copy
            slots = np.arange(len(cands), dtype=np.int32)
            marker[cands] = slots
            once = marker[cands] == slots
            cands, approx = cands[once], approx[once]
        if self.n_dead:
            live = ~dead[cands]
            cands, approx = cands[live], approx[live]
        if len(cands) > k:
            theta = max(theta, lam * _kth_largest(approx, k))
            keep = mu * approx + left >= theta
            cands, approx = cands[keep], approx[keep]
        for m in range(essential, len(terms)):
            if not len(cands):
                return []
            i, a, b = terms[m]
            docs = post_doc[a:b]
            at = np.searchsorted(docs, cands)
            at[at >= len(docs)] = len(docs) - 1
            hit = docs[at] == cands
            approx = approx + np.where(hit, post_imp[a:b][at] * coefs[i], 0.0)
            left = rest[m + 1]
            theta = max(theta, lam * _kth_largest(approx, k))
            keep = mu * approx + left >= theta
            cands, approx = cands[keep], approx[keep]
        return self._exact_top(cands.astype(np.intp), query, k, floor, scorer)

    def _scratch(self) -> tuple[FloatArray, npt.NDArray[np.int32]]:
        return np.zeros(self.n_docs), np.zeros(self.n_docs, dtype=np.int32)

    def _lookup(
        self, docs: npt.NDArray[np.int32], terms: list[tuple[int, int, int]], coefs: list[float]
    ) -> FloatArray:
        """Scores with the stored impacts of ``docs`` (ascending), term by term."""
        post_doc, post_imp = self.post_doc, self.post_imp
        out = np.zeros(len(docs))
        for i, a, b in terms:
            postings = post_doc[a:b]
            at = np.searchsorted(postings, docs)
            at[at >= len(postings)] = len(postings) - 1
            hit = postings[at] == docs
            out += np.where(hit, post_imp[a:b][at] * coefs[i], 0.0)
        return out

    def _exact_top(
        self, cands: npt.NDArray[np.intp], query: Query, k: int, floor: float, scorer: Scorer
    ) -> list[Hit]:
        if not len(cands):
            return []
        cands = np.sort(cands)  # index order = insertion order: top_k breaks ties by it
        scores = self.exact(cands, query, scorer)
        seq = self.seq
        return [(s, int(seq[cands[i]]), int(cands[i])) for s, i in top_k(scores, k, floor)]

    def _direct(self, query: Query, k: int, floor: float, scorer: Scorer) -> list[Hit]:
        """Exact top ``k`` computed from every posting of the query's terms (no stored impact):
        what a small segment does once its stored impacts are stale."""
        terms = self._query_terms(query)
        if not terms:
            return []
        lo = np.asarray([a for _, a, _ in terms], dtype=np.int64)
        lens = np.asarray([b - a for _, a, b in terms], dtype=np.int64)
        pos = _ranges(lo, lens)
        rows = np.repeat(np.asarray([i for i, _, _ in terms], dtype=np.int64), lens)
        docs = self.post_doc[pos]
        if self.n_dead:
            live = ~self.dead[docs]
            pos, rows, docs = pos[live], rows[live], docs[live]
        present = np.zeros(self.n_docs, dtype=np.bool_)
        present[docs] = True
        cands = np.flatnonzero(present)
        cols = (np.cumsum(present) - 1)[docs]
        impacts = scorer.impacts(self.post_tf[pos], self.dl[docs], query.avg)
        scores = combine(impacts, rows, cols, len(cands), query.idfs, query.counts)
        seq = self.seq
        return [(s, int(seq[cands[i]]), int(cands[i])) for s, i in top_k(scores, k, floor)]

    def exact(self, cands: npt.NDArray[np.intp], query: Query, scorer: Scorer) -> FloatArray:
        """Exact scores (today's statistics) of local documents ``cands``."""
        rows, cols, pos = self._entries_of(cands, query)
        impacts = scorer.impacts(self.post_tf[pos], self.dl[cands[cols]], query.avg)
        return combine(impacts, rows, cols, len(cands), query.idfs, query.counts)

    def _entries_of(
        self, cands: npt.NDArray[np.intp], query: Query
    ) -> tuple[IntArray, IntArray, IntArray]:
        """(query position, candidate column, posting) of each query term in each candidate:
        from the candidates' forward lists, or, when those are long (skills with bodies), by
        looking the candidates up in each query term's postings."""
        lo = self.fwd_off[cands]
        lens = self.fwd_off[cands + 1] - lo
        if int(lens.sum()) > 16 * len(cands) * len(query.tids):
            return self._entries_by_term(cands, query)
        entry = _ranges(lo, lens)
        pos = self.fwd_pos[entry].astype(np.int64)
        term = np.searchsorted(self.indptr, pos, side="right") - 1
        hit, rows = query.positions(term)
        cols = np.repeat(np.arange(len(cands), dtype=np.int64), lens)[hit]
        return rows, cols, pos[hit]

    def _entries_by_term(
        self, cands: npt.NDArray[np.intp], query: Query
    ) -> tuple[IntArray, IntArray, IntArray]:
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        found: list[IntArray] = []
        starts, n_terms, post_doc = self.starts, self.n_terms, self.post_doc
        order = np.argsort(cands, kind="stable")
        ordered = cands[order]
        for i, tid in enumerate(query.tids):
            if tid >= n_terms:
                continue
            a, b = starts[tid], starts[tid + 1]
            if a == b:
                continue
            postings = post_doc[a:b]
            at = np.searchsorted(postings, ordered)
            at[at >= len(postings)] = len(postings) - 1
            hit = postings[at] == ordered
            rows.append(np.full(int(hit.sum()), i, dtype=np.int64))
            cols.append(order[hit].astype(np.int64))
            found.append(at[hit].astype(np.int64) + a)
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(found)

    def matched(self, local: int, query: Query, scorer: Scorer) -> list[int]:
        """Query positions of the terms document ``local`` contains (with a non-zero impact)."""
        cands = np.array([local], dtype=np.intp)
        rows, cols, pos = self._entries_of(cands, query)
        impacts = scorer.impacts(self.post_tf[pos], self.dl[cands[cols]], query.avg)
        return sorted(rows[impacts != 0.0].tolist())

    def all_exact(self, query: Query, scorer: Scorer) -> FloatArray:
        """Exact scores of every document (dead ones included), for ``get_scores``."""
        out = np.zeros(self.n_docs)
        terms = self._query_terms(query)
        if terms:
            docs = [self.post_doc[lo:hi] for _, lo, hi in terms]
            cands = np.unique(np.concatenate(docs)).astype(np.intp)
            out[cands] = self.exact(cands, query, scorer)
        return out


class Delta:
    """Documents added since the last seal: appended in O(document), scored exactly per query.

    Entries (document, term, field counts) live in growable arrays; each term's entries are
    listed in a dict that a query extends with the entries added since the previous query.
    """

    __slots__ = (
        "_by_term",
        "_indexed",
        "dead",
        "dl",
        "doc_start",
        "e_doc",
        "e_tf",
        "e_tid",
        "hashes",
        "ids",
        "n_dead",
        "n_docs",
        "n_entries",
        "n_fields",
        "seq",
    )

    def __init__(self, n_fields: int):
        self.n_fields = n_fields
        self.n_docs = 0
        self.n_entries = 0
        self.n_dead = 0
        self.seq: list[int] = []
        self.ids: list[str] = []
        self.hashes: list[int] = []
        self.doc_start: list[int] = [0]  # entries of local document i: doc_start[i:i + 2]
        self.dl = np.zeros((16, n_fields), dtype=np.float32)
        self.dead = np.zeros(16, dtype=np.bool_)
        self.e_doc = np.zeros(64, dtype=np.int64)
        self.e_tid = np.zeros(64, dtype=np.int64)
        self.e_tf = np.zeros((64, n_fields), dtype=np.uint32)
        self._by_term: dict[int, list[int]] = {}
        self._indexed = 0

    def append(
        self,
        seq: int,
        doc_id: str,
        hashed: int,
        tids: list[int],
        tf: list[list[int]],
        lengths: list[float],
    ) -> None:
        n, m = self.n_docs, self.n_entries
        if n == len(self.dl):
            self.dl = np.concatenate((self.dl, np.zeros_like(self.dl)))
            self.dead = np.concatenate((self.dead, np.zeros_like(self.dead)))
        need = m + len(tids)
        if need > len(self.e_tid):
            size = max(need, 2 * len(self.e_tid))
            self.e_doc = np.resize(self.e_doc, size)
            self.e_tid = np.resize(self.e_tid, size)
            self.e_tf = np.resize(self.e_tf, (size, self.n_fields))
        self.dl[n] = lengths
        self.e_doc[m:need] = n
        self.e_tid[m:need] = tids
        if tids:
            self.e_tf[m:need] = tf
        self.seq.append(seq)
        self.ids.append(doc_id)
        self.hashes.append(hashed)
        self.doc_start.append(need)
        self.n_docs = n + 1
        self.n_entries = need

    def _index(self) -> None:
        """List the entries added since the last query under their terms."""
        if self._indexed == self.n_entries:
            return
        by_term = self._by_term
        start = self._indexed
        for offset, tid in enumerate(self.e_tid[start : self.n_entries].tolist()):
            entries = by_term.get(tid)
            if entries is None:
                by_term[tid] = [start + offset]
            else:
                entries.append(start + offset)
        self._indexed = self.n_entries

    def id_of(self, local: int) -> str:
        return self.ids[local]

    def local_of(self, seq: int) -> int | None:
        at = bisect.bisect_left(self.seq, seq)
        return at if at < self.n_docs and self.seq[at] == seq else None

    def terms_of(self, local: int) -> IntArray:
        return self.e_tid[self.doc_start[local] : self.doc_start[local + 1]]

    def kill(self, local: int) -> None:
        self.dead[local] = True
        self.n_dead += 1

    def _gather(self, query: Query) -> tuple[IntArray, IntArray] | None:
        self._index()
        rows: list[int] = []
        entries: list[int] = []
        by_term = self._by_term
        for i, tid in enumerate(query.tids):
            found = by_term.get(tid)
            if found:
                entries.extend(found)
                rows.extend([i] * len(found))
        if not entries:
            return None
        return np.asarray(rows, dtype=np.int64), np.asarray(entries, dtype=np.int64)

    def top(self, query: Query, k: int, floor: float, scorer: Scorer) -> list[Hit]:
        scores, cands = self._scores(query, scorer)
        if cands is None:
            return []
        seq = self.seq
        return [(s, seq[int(cands[i])], int(cands[i])) for s, i in top_k(scores, k, floor)]

    def _scores(self, query: Query, scorer: Scorer) -> tuple[FloatArray, IntArray | None]:
        found = self._gather(query)
        if found is None:
            return np.zeros(0), None
        rows, entries = found
        docs = self.e_doc[entries]
        if self.n_dead:
            live = ~self.dead[docs]
            rows, entries, docs = rows[live], entries[live], docs[live]
            if not len(docs):
                return np.zeros(0), None
        present = np.zeros(self.n_docs, dtype=np.bool_)
        present[docs] = True
        cands = np.flatnonzero(present)
        cols = (np.cumsum(present) - 1)[docs]
        impacts = scorer.impacts(self.e_tf[entries], self.dl[docs], query.avg)
        return combine(impacts, rows, cols, len(cands), query.idfs, query.counts), cands

    def matched(self, local: int, query: Query, scorer: Scorer) -> list[int]:
        mine = np.arange(self.doc_start[local], self.doc_start[local + 1], dtype=np.int64)
        hit, rows = query.positions(self.e_tid[mine])
        entries = mine[hit]
        impacts = scorer.impacts(
            self.e_tf[entries], self.dl[np.full(len(entries), local)], query.avg
        )
        return sorted(rows[impacts != 0.0].tolist())

    def all_exact(self, query: Query, scorer: Scorer) -> FloatArray:
        out = np.zeros(self.n_docs)
        scores, cands = self._scores(query, scorer)
        if cands is not None:
            out[cands] = scores
        return out

    def entries(self) -> tuple[IntArray, IntArray, npt.NDArray[np.unsignedinteger]]:
        n = self.n_entries
        doc, tid, tf = self.e_doc[:n], self.e_tid[:n], self.e_tf[:n]
        if self.n_dead:
            live = ~self.dead[: self.n_docs]
            keep = live[doc]
            doc = (np.cumsum(live) - 1)[doc[keep]]
            tid, tf = tid[keep], tf[keep]
        return doc, tid, tf

    def live(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero(~self.dead[: self.n_docs])

    @property
    def nbytes(self) -> int:
        arrays = (self.dl, self.dead, self.e_doc, self.e_tid, self.e_tf)
        return sum(int(a.nbytes) for a in arrays) + 8 * self.n_entries + 64 * self.n_docs
