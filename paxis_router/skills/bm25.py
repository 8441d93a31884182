"""``SkillIndex``: BM25 / BM25F over skill fields, exact under updates, log-structured like Lucene.

Modes:
    ``"okapi"``: classic BM25 over one bag of tokens (all fields concatenated), with the
        ATIRE idf ``log((N - n + 0.5) / (n + 0.5))`` and the negative-idf floor
        ``epsilon * mean idf`` of ``rank_bm25.BM25Okapi`` (0.2.2), whose scores it reproduces.
    ``"bm25f"`` (default): BM25F: per-field length normalisation and weights combined into one
        pseudo term frequency before saturation, with the non-negative idf
        ``log(1 + (N - n + 0.5) / (n + 0.5))``.

Layout. Documents live in immutable *segments* (compact CSR arrays: postings with stored
impacts and field term counts, a forward map per document, field lengths, ids) and a small
mutable *delta* that takes additions in O(document). Like Lucene's index writer: the delta is
sealed into a segment once it holds ``delta_docs`` documents (or outgrows every segment
together, as on the first query after a bulk build); segments of the same size tier merge
``merge_factor`` at a time, so a document is rewritten O(log N) times over its life; a removal
sets a tombstone bit in O(document) and a segment is rewritten without its dead documents once
a quarter of it is dead. ``compact()`` merges everything into one segment.

Exactness. Idf is applied at query time, and a segment's stored impacts carry the mean field
lengths of their compile; a query prunes with them under proven bounds
(:meth:`~paxis_router.skills._scoring.Scorer.drift`) and scores its final candidates exactly
with today's statistics, summing in query-term order. So every ranking and score equals that of
an index freshly built from the live documents, whatever the history of adds and removes
(tested), and top-k pruning (MaxScore on large segments) never changes a result. Stored
impacts are refreshed once the mean lengths drift by more than ``refresh_drift`` and a tenth of
the segment has changed since, to keep pruning tight at O(1) amortised cost per change.

Example:
    >>> index = SkillIndex()
    >>> index.add("pdf", {"name": "pdf", "description": "Extract text and tables from PDF files"})
    >>> index.add("csv", {"name": "csv", "description": "Clean and merge CSV spreadsheets"})
    >>> [doc for doc, _ in index.search("merge two spreadsheets", k=1)]
    ['csv']
"""

from __future__ import annotations

import bisect
import json
import math
import shutil
import tempfile
import threading
from array import array
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from paxis_router.errors import SkillError
from paxis_router.skills._ids import IdMap, id_hash
from paxis_router.skills._scoring import Scorer
from paxis_router.skills._segment import (
    DIRECT_POSTINGS,
    MATRIX_MAX_DOCS,
    Delta,
    Query,
    Segment,
    Strings,
)
from paxis_router.skills.tokenize import Tokenizer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

Mode = Literal["bm25f", "okapi"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Field weights of the default BM25F index: a term in the name says more than one in the body.
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {"name": 3.0, "description": 2.0, "body": 1.0}
#: Per-field length normalisation (BM25F ``b_f``): short fields barely need it.
DEFAULT_FIELD_B: dict[str, float] = {"name": 0.3, "description": 0.5, "body": 0.75}
#: Memory for dense rows of the most frequent terms in each small segment.
DENSE_BYTES = 16_000_000

_FORMAT_VERSION = 2
# Distinct query chunks whose terms are cached before the cache starts over ...
_CHUNK_CACHE_SIZE = 100_000
# ... and how many new ones one query adds to it.
_CHUNKS_LEARNED_PER_QUERY = 3
# A segment is rewritten without its dead documents once this fraction of it is dead.
_PURGE_FRACTION = 0.25
# Stored impacts this far from today's are refreshed however few changes caused it.
_FORCE_REFRESH = 0.25
_ARRAYS = (
    "seq", "id_hash", "dl", "indptr", "post_doc", "post_tf", "fwd_off", "fwd_pos", "post_imp",
)  # fmt: skip


class _Vocabulary(dict[str, int]):
    """Term -> id; looking up an unknown term with ``[]`` gives it the next id."""

    def __init__(self, terms: Iterable[str] = ()):
        self.terms: list[str] = []
        super().__init__()
        for term in terms:
            self[term]  # assigns the id

    def __missing__(self, term: str) -> int:
        tid = len(self.terms)
        self[term] = tid
        self.terms.append(term)
        return tid


class MatchedTerms:
    """The matched query terms of one ranked result list, computed for all of it on first use:
    ``terms[i]`` are the query terms (as indexed) the i-th result contains, in query order."""

    __slots__ = ("_done", "_find", "_names")

    def __init__(self, find: Callable[[], list[list[int]]], names: list[str]):
        self._find = find
        self._names = names
        self._done: list[tuple[str, ...]] | None = None

    def __getitem__(self, i: int) -> tuple[str, ...]:
        if self._done is None:
            names = self._names
            self._done = [tuple([names[j] for j in found]) for found in self._find()]
        return self._done[i]


_NO_TERMS = MatchedTerms(list, [])


class SkillIndex:
    """BM25 / BM25F index over named text fields, with add/remove/save/load.

    Not safe for a mutation concurrent with anything else; concurrent queries are.

    Args:
        mode: ``"bm25f"`` (field weights) or ``"okapi"`` (rank_bm25.BM25Okapi-compatible).
        field_weights: field name -> weight (BM25F); in okapi mode only the names matter.
        field_b: field name -> length normalisation ``b_f`` (BM25F); missing fields use ``b``.
        k1: term-frequency saturation; default 1.5 (okapi, as rank_bm25) or 1.2 (bm25f).
        b: length normalisation (okapi, and BM25F fields without ``field_b``).
        epsilon: okapi's negative-idf floor factor (``epsilon * mean idf``).
        tokenizer: how text becomes terms (stemming and stopwords on by default).
        delta_docs: documents the mutable delta holds before it is sealed into a segment.
        merge_factor: segments of one size tier merged together (Lucene's merge factor).
        matrix_docs: segments up to this size score every document through a matrix (float64
            impacts); larger ones prune with MaxScore (float32 impacts). Same results.
        direct_postings: a large segment skips pruning for a query whose terms have at most
            this many postings there (scoring them all is cheaper). Same results.
        dense_bytes: memory for dense rows of the most frequent terms in each small segment
            (faster queries; 0 turns it off). Scores and rankings are the same either way.
        refresh_drift: a segment's stored impacts are recomputed once today's mean field
            lengths could move them by more than this fraction and a tenth of its size has
            changed since (so a refresh costs O(1) per change), or once they could move by
            25%. Pruning gets looser as they drift; results stay exact either way.

    Example:
        >>> index = SkillIndex(mode="okapi", tokenizer=Tokenizer(stem=False, stopwords=False))
        >>> index.add_tokens("a", {"text": ["hello", "world"]})
        >>> index.add_tokens("b", {"text": ["goodbye", "world"]})
        >>> index.add_tokens("c", {"text": ["nothing", "here"]})
        >>> round(float(index.get_scores(["hello"])[0]), 4)
        0.5108
    """

    def __init__(
        self,
        *,
        mode: Mode = "bm25f",
        field_weights: Mapping[str, float] | None = None,
        field_b: Mapping[str, float] | None = None,
        k1: float | None = None,
        b: float = 0.75,
        epsilon: float = 0.25,
        tokenizer: Tokenizer | None = None,
        delta_docs: int = 1024,
        merge_factor: int = 8,
        matrix_docs: int = MATRIX_MAX_DOCS,
        direct_postings: int = DIRECT_POSTINGS,
        dense_bytes: int = DENSE_BYTES,
        refresh_drift: float = 0.01,
    ):
        if mode not in ("bm25f", "okapi"):
            raise ValueError(f"mode must be 'bm25f' or 'okapi', got {mode!r}")
        weights = dict(field_weights) if field_weights is not None else dict(DEFAULT_FIELD_WEIGHTS)
        if mode == "okapi" and field_weights is None:
            weights = {"text": 1.0}
        if not weights or any(w < 0 for w in weights.values()):
            raise ValueError(f"field_weights must be non-empty and non-negative, got {weights}")
        if delta_docs < 1 or merge_factor < 2:
            raise ValueError("delta_docs must be >= 1 and merge_factor >= 2")
        self.mode: Mode = mode
        self.fields: tuple[str, ...] = tuple(weights)
        self.field_weights = weights
        fb = dict(DEFAULT_FIELD_B) if field_b is None and mode == "bm25f" else dict(field_b or {})
        self.field_b = {f: float(fb.get(f, b)) for f in self.fields}
        self.k1 = float(k1 if k1 is not None else (1.5 if mode == "okapi" else 1.2))
        self.b = float(b)
        self.epsilon = float(epsilon)
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.delta_docs = delta_docs
        self.merge_factor = merge_factor
        self.matrix_docs = matrix_docs
        self.direct_postings = direct_postings
        self.dense_bytes = dense_bytes
        self.refresh_drift = refresh_drift
        self._scorer = Scorer(
            okapi=mode == "okapi",
            k1=self.k1,
            b=self.b,
            weights=[weights[f] for f in self.fields],
            field_b=[self.field_b[f] for f in self.fields],
            epsilon=self.epsilon,
        )
        self._field_pos = {f: i for i, f in enumerate(self.fields)}
        self._vocab = _Vocabulary()
        self._df = np.zeros(1024, dtype=np.int64)
        self._len_sum = [0.0] * len(self.fields)
        self._n_live = 0
        self._next_seq = 0
        self._changes = 0  # documents added or removed, ever
        self._segments: list[Segment] = []
        self._first_seqs: list[int] = []
        self._delta = Delta(len(self.fields))
        self._ids = IdMap()
        #: Bumped by every change; caches of query results key on it.
        self.generation = 0
        self._prepared = -1
        self._floor_cache: tuple[int, float] = (-1, 0.0)
        self._avg_cache: tuple[int, FloatArray] = (-1, np.zeros(len(self.fields)))
        self._idf_cache: tuple[int, dict[int, float]] = (-1, {})
        self._lock = threading.RLock()
        # Query chunk (whitespace-separated, as typed) -> its terms; see query_terms_of_text.
        self._chunk_terms: dict[str, tuple[str, ...]] = {}

    # --- the collection ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._seq_of(doc_id) is not None

    @property
    def _terms(self) -> list[str]:
        return self._vocab.terms

    def ids(self) -> list[str]:
        """Live document ids, in insertion order (the order of :meth:`get_scores`)."""
        out: list[str] = []
        for segment in self._segments:
            ids = segment.ids.tolist()
            out.extend(ids if not segment.n_dead else [ids[i] for i in segment.live().tolist()])
        delta = self._delta
        out.extend(delta.ids if not delta.n_dead else [delta.ids[i] for i in delta.live()])
        return out

    def _seq_of(self, doc_id: str) -> int | None:
        return self._ids.get(doc_id, self._id_at)

    def seq_of(self, doc_id: str) -> int | None:
        """The insertion sequence number of the live document ``doc_id`` (None if absent).
        Numbers only grow and survive merges, save and load."""
        return self._seq_of(doc_id)

    def seqs(self) -> IntArray:
        """Sequence numbers of the live documents, in :meth:`ids` order (ascending)."""
        parts = [s.seq[s.live()] if s.n_dead else np.asarray(s.seq) for s in self._segments]
        delta = self._delta
        parts.append(np.asarray(delta.seq, dtype=np.int64)[delta.live()])
        return np.concatenate(parts).astype(np.int64)

    def _id_at(self, seq: int) -> str | None:
        """The id of the live document with ``seq``, or None."""
        found = self._locate(seq)
        if found is None:
            return None
        container, local = found
        if container.dead[local]:
            return None
        return container.ids[local]

    def _rebuild_ids(self) -> None:
        """Rebuild the id table from every live document (amortised: when a quarter is new)."""
        hashes: list[IntArray] = []
        seqs: list[IntArray] = []
        for segment in self._segments:
            live = segment.live()
            hashes.append(segment.id_hash[live])
            seqs.append(segment.seq[live])
        delta = self._delta
        live = delta.live()
        hashes.append(np.asarray(delta.hashes, dtype=np.int64)[live])
        seqs.append(np.asarray(delta.seq, dtype=np.int64)[live])
        self._ids.rebuild(np.concatenate(hashes), np.concatenate(seqs))

    def add(self, doc_id: str, fields: Mapping[str, str]) -> None:
        """Index ``fields`` (field name -> text) under ``doc_id``; unknown fields are an error.

        In okapi mode all given fields are concatenated into the single field.

        Raises:
            SkillError: ``doc_id`` is already indexed (remove it first).
        """
        self.add_tokens(doc_id, self.field_tokens(fields))

    def field_tokens(self, fields: Mapping[str, str]) -> dict[str, list[str]]:
        """The tokens :meth:`add` indexes for ``fields`` (okapi: all in its single field)."""
        tokenize = self.tokenizer.tokens
        if self.mode == "okapi" and len(self.fields) == 1:
            return {self.fields[0]: [t for text in fields.values() for t in tokenize(text)]}
        return {f: tokenize(text) for f, text in fields.items()}

    def add_tokens(self, doc_id: str, field_tokens: Mapping[str, Sequence[str]]) -> None:
        """Index already-tokenised fields (for parity tests and custom tokenisers). O(tokens)."""
        if self._seq_of(doc_id) is not None:
            raise _duplicate(doc_id)
        n_fields = len(self.fields)
        rows: dict[int, list[int]] = {}
        lengths = [0.0] * n_fields
        lookup = self._vocab.__getitem__
        for field_name, tokens in field_tokens.items():
            f = self._field_pos.get(field_name)
            if f is None:
                raise ValueError(
                    f"unknown field {field_name!r} for {doc_id!r}; the index has {self.fields}"
                )
            lengths[f] += len(tokens)
            for tid, count in Counter(map(lookup, tokens)).items():
                row = rows.get(tid)
                if row is None:
                    row = rows[tid] = [0] * n_fields
                row[f] += count
        tids = sorted(rows)
        n_terms = len(self._vocab.terms)
        if n_terms > len(self._df):
            self._df = np.concatenate((self._df, np.zeros(max(n_terms, len(self._df)), np.int64)))
        if tids:
            self._df[tids] += 1
        len_sum = self._len_sum
        for f in range(n_fields):
            len_sum[f] += lengths[f]
        seq = self._next_seq
        self._next_seq = seq + 1
        self._n_live += 1
        self._delta.append(seq, doc_id, id_hash(doc_id), tids, [rows[t] for t in tids], lengths)
        self._ids.add(doc_id, seq)
        if self._ids.n_recent > max(4096, self._ids.n_table // 4):
            self._rebuild_ids()
        self._changes += 1
        self.generation += 1

    def add_many(self, docs: Iterable[tuple[str, Mapping[str, Sequence[str]]]]) -> None:
        """Index many already-tokenised documents at once, with array operations: the same index
        as :meth:`add_tokens` one by one, several times faster (a million skills in seconds).

        Raises:
            SkillError: a duplicate id (nothing of the batch is indexed then).
            ValueError: an unknown field.
        """
        n_fields = len(self.fields)
        lookup = self._vocab.__getitem__
        field_pos = self._field_pos
        tokens_tid = array("q")
        run_field: list[int] = []
        run_len: list[int] = []
        run_doc: list[int] = []
        ids: list[str] = []
        batch: set[str] = set()
        for doc_id, field_tokens in docs:
            if doc_id in batch or self._seq_of(doc_id) is not None:
                raise _duplicate(doc_id)
            batch.add(doc_id)
            n = len(ids)
            ids.append(doc_id)
            for field_name, tokens in field_tokens.items():
                f = field_pos.get(field_name)
                if f is None:
                    raise ValueError(
                        f"unknown field {field_name!r} for {doc_id!r}; the index has {self.fields}"
                    )
                tokens_tid.extend(map(lookup, tokens))
                run_field.append(f)
                run_len.append(len(tokens))
                run_doc.append(n)
        if not ids:
            return
        with self._lock:
            self._add_batch(ids, tokens_tid, run_field, run_len, run_doc, n_fields)

    def _add_batch(
        self,
        ids: list[str],
        tokens_tid: array[int],
        run_field: list[int],
        run_len: list[int],
        run_doc: list[int],
        n_fields: int,
    ) -> None:
        n_docs, n_terms = len(ids), len(self._vocab.terms)
        lens = np.asarray(run_len, dtype=np.int64)
        dl = np.zeros((n_docs, n_fields))
        np.add.at(dl, (np.asarray(run_doc), np.asarray(run_field)), lens)
        tid = np.frombuffer(tokens_tid, dtype=np.int64)
        doc = np.repeat(np.asarray(run_doc, dtype=np.int64), lens)
        field = np.repeat(np.asarray(run_field, dtype=np.int64), lens)
        keys, counts = np.unique((doc * n_terms + tid) * n_fields + field, return_counts=True)
        pair = keys // n_fields
        first = np.ones(len(pair), dtype=np.bool_)
        first[1:] = pair[1:] != pair[:-1]
        entry = np.cumsum(first) - 1
        e_doc, e_tid = np.divmod(pair[first], n_terms)
        e_tf = np.zeros((len(e_doc), n_fields), dtype=np.int64)
        e_tf[entry, keys % n_fields] = counts
        if n_terms > len(self._df):
            self._df = np.concatenate((self._df, np.zeros(n_terms, dtype=np.int64)))
        self._df[:n_terms] += np.bincount(e_tid, minlength=n_terms)
        for f, total in enumerate(dl.sum(axis=0).tolist()):
            self._len_sum[f] += total
        seq = np.arange(self._next_seq, self._next_seq + n_docs, dtype=np.int64)
        self._next_seq += n_docs
        self._n_live += n_docs
        self._changes += n_docs
        self.generation += 1  # the statistics are today's from here on
        if self._delta.n_docs:  # keep insertion order: what the delta holds comes first
            if self._delta.n_docs > self._delta.n_dead:
                self._segments.append(self._merge([self._delta]))
            self._delta = Delta(len(self.fields))
        segment = Segment.compile(
            e_doc=e_doc,
            e_tid=e_tid,
            e_tf=e_tf.astype(_count_dtype(e_tf)),
            dl=dl.astype(np.float32),
            seq=seq,
            ids=Strings.from_list(ids),
            id_hash=np.fromiter(map(id_hash, ids), dtype=np.int64, count=n_docs),
            n_terms=n_terms,
            scorer=self._scorer,
            avg=self._avg(),
            dense_bytes=self.dense_bytes,
            matrix_docs=self.matrix_docs,
            idf_of=self._idf_now,
            generation=self.generation,
        )
        segment.changes_at = self._changes
        self._segments.append(segment)
        self._merge_tiers(self._segments)
        self._first_seqs = [s.first_seq for s in self._segments]
        self._rebuild_ids()

    def remove(self, doc_id: str) -> None:
        """Drop ``doc_id`` from the index: a tombstone now, O(document); purged on a merge.

        Raises:
            KeyError: ``doc_id`` is not indexed.
        """
        with self._lock:
            seq = self._seq_of(doc_id)
            found = None if seq is None else self._locate(seq)
            if found is None:
                raise KeyError(doc_id)
            container, local = found
            self._ids.discard(doc_id)
            tids = container.terms_of(local)
            self._df[tids] -= 1
            lengths = container.dl[local].tolist()
            for f, length in enumerate(lengths):
                self._len_sum[f] -= length
            container.kill(local)
            self._n_live -= 1
            self._changes += 1
            self.generation += 1

    def _locate(self, seq: int) -> tuple[Segment | Delta, int] | None:
        """Where the document with ``seq`` is (dead or alive), or None if it was purged."""
        delta = self._delta
        if delta.n_docs and seq >= delta.seq[0]:
            local = delta.local_of(seq)
            return None if local is None else (delta, local)
        at = bisect.bisect_right(self._first_seqs, seq) - 1
        if at < 0:
            return None
        segment = self._segments[at]
        local = segment.local_of(seq)
        return None if local is None else (segment, local)

    def compact(self) -> None:
        """Merge every segment and the delta into one segment with current statistics."""
        with self._lock:
            parts: list[Segment | Delta] = [s for s in self._segments if s.n_docs > s.n_dead]
            if self._delta.n_docs > self._delta.n_dead:
                parts.append(self._delta)
            if len(parts) == 1 and isinstance(parts[0], Segment) and not parts[0].n_dead:
                only = parts[0]
                if only.exact_at != self.generation:
                    self._refresh(only)
                self._segments = [only]
            else:
                self._segments = [self._merge(parts)] if parts else []
            self._delta = Delta(len(self.fields))
            self._mark_prepared()

    # --- maintenance (on the first query after a change) ---------------------------------------

    def _avg(self) -> FloatArray:
        """Today's mean field lengths (read-only; recomputed once per change)."""
        generation, avg = self._avg_cache
        if generation != self.generation:
            avg = np.asarray(self._len_sum, dtype=np.float64) / max(self._n_live, 1)
            avg.flags.writeable = False
            self._avg_cache = (self.generation, avg)
        return avg

    def _prepare(self) -> None:
        """Seal a full delta, merge same-tier segments, purge dead ones, refresh stale impacts."""
        if self._prepared == self.generation:
            return
        with self._lock:
            segments = [s for s in self._segments if s.n_docs > s.n_dead]
            delta = self._delta
            in_segments = sum(s.n_docs - s.n_dead for s in segments)
            live_delta = delta.n_docs - delta.n_dead
            if delta.n_docs and (delta.n_docs >= self.delta_docs or live_delta > in_segments):
                if live_delta:
                    segments.append(self._merge([delta]))
                self._delta = Delta(len(self.fields))
                self._merge_tiers(segments)
            segments = [
                self._merge([s]) if s.n_dead > _PURGE_FRACTION * s.n_docs else s for s in segments
            ]
            avg = self._avg()
            for segment in segments:
                lo, hi = self._scorer.drift(segment.avg_ref, avg)
                changed = 10 * (self._changes - segment.changes_at) >= segment.n_docs
                if hi > (1 + _FORCE_REFRESH) * lo or (
                    hi > (1 + self.refresh_drift) * lo and changed
                ):
                    self._refresh(segment)
            self._segments = segments
            self._mark_prepared()

    def _refresh(self, segment: Segment) -> None:
        segment.refresh(self._scorer, self._avg(), self.dense_bytes, self._idf_now, self.generation)
        segment.changes_at = self._changes

    def _mark_prepared(self) -> None:
        """Record the segments' layout and freshness for the queries until the next change."""
        self._first_seqs = [s.first_seq for s in self._segments]
        self._prepared = self.generation

    def _tier(self, segment: Segment) -> int:
        live = segment.n_docs - segment.n_dead
        if live <= self.delta_docs:
            return 0
        return int(math.log(live / self.delta_docs, self.merge_factor)) + 1

    def _merge_tiers(self, segments: list[Segment]) -> None:
        factor = self.merge_factor
        while len(segments) >= factor:
            tail = segments[-factor:]
            tier = self._tier(tail[-1])
            if any(self._tier(s) != tier for s in tail):
                return
            del segments[-factor:]
            segments.append(self._merge(tail))

    def _merge(self, parts: Sequence[Segment | Delta]) -> Segment:
        """One segment holding the live documents of ``parts`` (in order), current statistics."""
        docs, tids, tfs, dls, seqs, hashes = [], [], [], [], [], []
        id_parts: list[tuple[Strings, npt.NDArray[np.intp] | None]] = []
        offset = 0
        for part in parts:
            doc, tid, tf = part.entries()
            live = part.live()
            docs.append(doc + offset)
            tids.append(tid)
            tfs.append(tf)
            offset += len(live)
            if isinstance(part, Delta):
                dls.append(part.dl[live])
                seqs.append(np.asarray(part.seq, dtype=np.int64)[live])
                hashes.append(np.asarray(part.hashes, dtype=np.int64)[live])
                id_parts.append((Strings.from_list([part.ids[i] for i in live.tolist()]), None))
            else:
                dls.append(part.dl[live])
                seqs.append(part.seq[live])
                hashes.append(part.id_hash[live])
                id_parts.append((part.ids, live if part.n_dead else None))
        if len(id_parts) == 1 and id_parts[0][1] is None:
            ids = id_parts[0][0]
        else:
            ids = Strings.gather(
                [(col, rows if rows is not None else np.arange(len(col))) for col, rows in id_parts]
            )
        tf_all = np.concatenate(tfs) if tfs else np.zeros((0, len(self.fields)), np.uint8)
        empty = np.zeros(0, dtype=np.int64)
        merged = Segment.compile(
            e_doc=np.concatenate(docs) if docs else empty,
            e_tid=np.concatenate(tids) if tids else empty,
            e_tf=tf_all.astype(_count_dtype(tf_all)),
            dl=(np.concatenate(dls) if dls else np.zeros((0, len(self.fields)))).astype(np.float32),
            seq=np.concatenate(seqs).astype(np.int64) if seqs else empty,
            ids=ids,
            id_hash=np.concatenate(hashes).astype(np.int64) if hashes else empty,
            n_terms=len(self._vocab.terms),
            scorer=self._scorer,
            avg=self._avg(),
            dense_bytes=self.dense_bytes,
            matrix_docs=self.matrix_docs,
            idf_of=self._idf_now,
            generation=self.generation,
        )
        merged.changes_at = self._changes
        return merged

    # --- scoring -------------------------------------------------------------------------------

    def query_terms(self, tokens: Iterable[str]) -> list[tuple[int, int]]:
        """Known query terms as (term id, count) pairs, in first-occurrence order."""
        counts: dict[int, int] = {}
        vocab = self._vocab
        for token in tokens:
            tid = vocab.get(token)
            if tid is not None:
                counts[tid] = counts.get(tid, 0) + 1
        return list(counts.items())

    def query_terms_of_text(self, text: str) -> list[tuple[int, int]]:
        """:meth:`query_terms` of ``tokenizer.tokens(text)``, computed per whitespace-separated
        chunk through a cache (a task's words repeat across queries), when the tokenizer says
        its tokens never span whitespace (``whitespace_local``); else tokenised whole."""
        if not getattr(self.tokenizer, "whitespace_local", False):
            return self.query_terms(self.tokenizer.tokens(text))
        cache, vocab, tokens = self._chunk_terms, self._vocab, self.tokenizer.tokens
        chunks = text.split()
        found = [cache.get(chunk) for chunk in chunks]
        if None in found:
            # Learn a few new chunks per query (tokenising one alone costs about as much as a
            # whole short query); with more unseen ones, tokenise the text whole this time.
            missed = [chunk for chunk, terms in zip(chunks, found, strict=True) if terms is None]
            if len(cache) + _CHUNKS_LEARNED_PER_QUERY > _CHUNK_CACHE_SIZE:
                cache.clear()
            for chunk in missed[:_CHUNKS_LEARNED_PER_QUERY]:
                cache[chunk] = tuple(tokens(chunk))
            if len(missed) > _CHUNKS_LEARNED_PER_QUERY:
                return self.query_terms(tokens(text))
            found = [cache[chunk] for chunk in chunks]
        counts: dict[int, int] = {}
        for terms in found:
            for term in terms:  # type: ignore[union-attr]  # every chunk is known here
                tid = vocab.get(term)
                if tid is not None:
                    counts[tid] = counts.get(tid, 0) + 1
        return list(counts.items())

    def _query(self, terms: Sequence[tuple[int, int]]) -> Query | None:
        """The query's live terms with their idf and count under today's statistics."""
        n_live = self._n_live
        if not n_live:
            return None
        generation, idfs = self._idf_cache
        if generation != self.generation:
            idfs = {}
            self._idf_cache = (self.generation, idfs)
        tids: list[int] = []
        kept: list[float] = []
        counts: list[int] = []
        for tid, count in terms:
            idf = idfs.get(tid)
            if idf is None:
                idf = idfs[tid] = self._idf(tid, n_live)
            if idf != idf or idf == 0.0:  # NaN: no live document has the term
                continue
            tids.append(tid)
            kept.append(idf)
            counts.append(count)
        return Query(tids, kept, counts, self._avg()) if tids else None

    def _idf_now(self, tid: int) -> float:
        """:meth:`_idf` under today's statistics (the dense rows of a segment use it)."""
        return self._idf(tid, self._n_live)

    def _idf(self, tid: int, n_live: int) -> float:
        """The idf of term ``tid`` today (NaN when no live document has it)."""
        n = int(self._df[tid])
        if n <= 0:
            return math.nan
        scorer = self._scorer
        idf = scorer.idf(n, n_live)
        if idf < 0.0 and scorer.okapi:
            idf = self._okapi_floor()
        return idf

    def _okapi_floor(self) -> float:
        generation, value = self._floor_cache
        if generation != self.generation:
            value = self._scorer.okapi_floor(self._df[: len(self._vocab.terms)], self._n_live)
            self._floor_cache = (self.generation, value)
        return value

    def get_scores(self, tokens: Sequence[str]) -> FloatArray:
        """Scores of every live document (in :meth:`ids` order) for already-tokenised ``tokens``."""
        self._prepare()
        query = self._query(self.query_terms(tokens))
        if query is None:
            return np.zeros(self._n_live)
        parts = []
        for segment in self._segments:
            parts.append(segment.all_exact(query, self._scorer)[~segment.dead])
        delta = self._delta
        parts.append(delta.all_exact(query, self._scorer)[~delta.dead[: delta.n_docs]])
        return np.concatenate(parts)

    def search(
        self, query: str, k: int = 10, min_score: float | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (doc id, score) for ``query``; only documents sharing a term with it."""
        return self.rank_text(query, k, min_score)[0]

    def search_text(
        self, query: str, k: int = 10, min_score: float | None = None
    ) -> list[tuple[str, float, tuple[str, ...]]]:
        """Top ``k`` (doc id, score, matched query terms) for the text ``query``."""
        return self._search(self.query_terms_of_text(query), k, min_score)

    def rank_text(
        self, query: str, k: int = 10, min_score: float | None = None
    ) -> tuple[list[tuple[str, float]], MatchedTerms]:
        """Top ``k`` (doc id, score) for the text ``query``, and their matched query terms as a
        :class:`MatchedTerms`, which computes them (all at once) on first use."""
        return self._rank(self.query_terms_of_text(query), k, min_score)

    def search_terms(
        self, tokens: Sequence[str], k: int = 10, min_score: float | None = None
    ) -> list[tuple[str, float, tuple[str, ...]]]:
        """Top ``k`` (doc id, score, matched query terms) for already-tokenised ``tokens``."""
        return self._search(self.query_terms(tokens), k, min_score)

    def _search(
        self, query: list[tuple[int, int]], k: int, min_score: float | None
    ) -> list[tuple[str, float, tuple[str, ...]]]:
        ranked, terms = self._rank(query, k, min_score)
        return [(doc, score, terms[i]) for i, (doc, score) in enumerate(ranked)]

    def _rank(
        self, terms: list[tuple[int, int]], k: int, min_score: float | None
    ) -> tuple[list[tuple[str, float]], MatchedTerms]:
        if not terms or k <= 0:
            return [], _NO_TERMS
        self._prepare()
        query = self._query(terms)
        if query is None:
            return [], _NO_TERMS
        floor = 0.0 if min_score is None else min_score
        scorer = self._scorer
        hits: list[tuple[float, int, int, Segment | Delta]] = []
        generation = self.generation
        segments, delta = self._segments, self._delta
        for segment in segments:
            found = segment.top(query, k, floor, scorer, generation, self.direct_postings)
            for score, seq, local in found:
                hits.append((score, seq, local, segment))
        if delta.n_docs:
            for score, seq, local in delta.top(query, k, floor, scorer):
                hits.append((score, seq, local, delta))
        if len(segments) + (delta.n_docs > 0) > 1:  # one part gives its hits in order
            hits.sort(key=lambda h: (-h[0], h[1]))
            del hits[k:]
        ranked = [(where.id_of(local), score) for score, _, local, where in hits]

        def find() -> list[list[int]]:
            return [where.matched(local, query, scorer) for _, _, local, where in hits]

        names = self._vocab.terms
        return ranked, MatchedTerms(find, [names[t] for t in query.tids])

    @property
    def nbytes(self) -> int:
        """Bytes held in numpy arrays and id blobs (segments, delta, statistics)."""
        total = sum(s.nbytes for s in self._segments) + self._delta.nbytes + self._df.nbytes
        return int(total)

    # --- persistence ---------------------------------------------------------------------------

    def config(self) -> dict[str, object]:
        """The constructor settings, JSON-serialisable."""
        return {
            "mode": self.mode,
            "field_weights": self.field_weights,
            "field_b": self.field_b,
            "k1": self.k1,
            "b": self.b,
            "epsilon": self.epsilon,
            "tokenizer": self.tokenizer.config(),
            "delta_docs": self.delta_docs,
            "merge_factor": self.merge_factor,
            "matrix_docs": self.matrix_docs,
            "direct_postings": self.direct_postings,
            "dense_bytes": self.dense_bytes,
            "refresh_drift": self.refresh_drift,
        }

    def save(self, path: str | Path) -> None:
        """Write the index to the directory ``path``: ``index.json`` and one ``.npy`` file per
        array (no pickle; arrays are memory-mapped by :meth:`load`). Written to a temporary
        folder first and moved into place, so a reader never sees half an index."""
        self.compact()
        folder = Path(path)
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".index-", dir=folder.parent))
        try:
            self._write(scratch)
            folder.mkdir(exist_ok=True)
            for item in scratch.iterdir():
                item.replace(folder / item.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _write(self, folder: Path) -> None:
        segment = self._segments[0] if self._segments else self._merge([])
        terms = Strings.from_list(self._vocab.terms)
        arrays: dict[str, npt.NDArray[np.generic]] = {
            name: getattr(segment, name) for name in _ARRAYS
        }
        blob = segment.ids.blob
        arrays["ids_blob"] = np.frombuffer(blob, np.uint8) if isinstance(blob, bytes) else blob
        arrays["ids_off"] = segment.ids.offsets
        arrays["terms_blob"] = np.frombuffer(terms.blob, np.uint8)
        arrays["terms_off"] = terms.offsets
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(values), allow_pickle=False)
        meta = {
            "format": _FORMAT_VERSION,
            "config": self.config(),
            "n_docs": segment.n_docs,
            "avg_ref": segment.avg_ref.tolist(),
            "len_sum": self._len_sum,
            "next_seq": self._next_seq,
        }
        # index.json last: its presence says the arrays beside it are complete.
        (folder / "index.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> SkillIndex:
        """Read an index written by :meth:`save` (its arrays memory-mapped unless ``mmap`` is
        False: loading a million skills takes well under a second and pages in on use).

        Raises:
            SkillError: the files are missing, of another format version, or inconsistent.
        """
        folder = Path(path)
        mode: Literal["r"] | None = "r" if mmap else None
        try:
            meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            if meta.get("format") != _FORMAT_VERSION:
                raise SkillError(
                    f"index format {meta.get('format')!r} is not {_FORMAT_VERSION}; rebuild the "
                    "index",
                    path=str(folder),
                )
            names = [*_ARRAYS, "ids_blob", "ids_off", "terms_blob", "terms_off"]
            arrays = {
                name: np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
                for name in names
            }
        except (OSError, ValueError, KeyError) as exc:
            raise SkillError(f"cannot read a saved index: {exc}", path=str(folder)) from exc
        config = dict(meta["config"])
        tokenizer = Tokenizer.from_config(dict(config.pop("tokenizer")))
        index = cls(tokenizer=tokenizer, **config)
        terms = Strings(arrays["terms_blob"].tobytes(), np.asarray(arrays["terms_off"]))
        index._vocab = _Vocabulary(terms.tolist())
        n_docs = int(meta["n_docs"])
        n_fields = len(index.fields)
        if (
            len(arrays["seq"]) != n_docs
            or len(arrays["ids_off"]) != n_docs + 1
            or arrays["dl"].shape != (n_docs, n_fields)
            or len(arrays["indptr"]) != len(index._vocab.terms) + 1
        ):
            raise SkillError(
                "the index's arrays do not match index.json; rebuild", path=str(folder)
            )
        segment = Segment(
            seq=arrays["seq"],
            ids=Strings(arrays["ids_blob"], np.asarray(arrays["ids_off"])),
            id_hash=arrays["id_hash"],
            dl=arrays["dl"],
            indptr=np.asarray(arrays["indptr"]),
            post_doc=arrays["post_doc"],
            post_tf=arrays["post_tf"],
            fwd_off=arrays["fwd_off"],
            fwd_pos=arrays["fwd_pos"],
            matrix=n_docs <= index.matrix_docs,
        )
        index._df = np.diff(segment.indptr).astype(np.int64)
        if len(index._df) < 1024:
            index._df = np.concatenate((index._df, np.zeros(1024 - len(index._df), np.int64)))
        index._len_sum = [float(x) for x in meta["len_sum"]]
        index._n_live = n_docs
        index._next_seq = int(meta["next_seq"])
        avg = np.asarray(meta["avg_ref"], dtype=np.float64)
        segment.post_imp = arrays["post_imp"]
        segment.avg_ref = avg
        segment.max_imp = _max_per_term(segment.post_imp, segment.indptr)
        if n_docs and segment.matrix:  # dense rows (small segments), with today's idf
            segment.refresh(index._scorer, avg, index.dense_bytes, index._idf_now, 0)
        index._segments = [segment] if n_docs else []
        index._first_seqs = [segment.first_seq] if n_docs else []
        index._ids.rebuild(np.asarray(segment.id_hash), np.asarray(segment.seq))
        index._mark_prepared()
        return index


def _max_per_term(
    impacts: npt.NDArray[np.floating], indptr: npt.NDArray[np.int64]
) -> npt.NDArray[np.floating]:
    out = np.zeros(len(indptr) - 1, dtype=impacts.dtype)
    nonempty = np.flatnonzero(np.diff(indptr))
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(impacts, indptr[nonempty])
    return out


def _duplicate(doc_id: str) -> SkillError:
    return SkillError(
        "duplicate skill id: it is already in the index; remove it first or rename the folder",
        path=doc_id,
    )


def _count_dtype(counts: npt.NDArray[np.generic]) -> type[np.unsignedinteger[Any]]:
    """The narrowest unsigned dtype that holds every term count."""
    top = int(counts.max()) if counts.size else 0
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
