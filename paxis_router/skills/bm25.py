"""``SkillIndex``: BM25 over skill fields with precomputed per-term impact arrays.

Layout. Each term has a posting list (doc slots, ascending, and the doc's precomputed BM25 weight
for that term) stored CSR-style in three numpy arrays, so scoring a query is one slice-and-add per
query term followed by an ``argpartition``: no Python loop over documents.

Modes:
    ``"okapi"``: classic BM25 over one bag of tokens (all fields concatenated), with the
        ATIRE idf ``log((N - n + 0.5) / (n + 0.5))`` and the negative-idf floor
        ``epsilon * mean idf`` of ``rank_bm25.BM25Okapi`` (0.2.2), whose scores it reproduces.
    ``"bm25f"`` (default): BM25F: per-field length normalisation and weights combined into one
        pseudo term frequency before saturation, with the non-negative idf
        ``log(1 + (N - n + 0.5) / (n + 0.5))``.

Incremental updates and staleness. ``add`` and ``remove`` never rebuild the whole index. Added
documents go to a small *delta* segment, compiled lazily on the next query with the collection
statistics (N, document frequencies, mean field lengths) of that moment; removed documents are
masked out at query time. The *main* segment's weights keep the statistics of its last compile,
so they drift as the collection changes. When the changes since the last compile (additions plus
removals) exceed ``merge_ratio`` of the main segment (at least ``merge_min``), the next query
recompiles everything with fresh statistics: each full O(N) rebuild is paid for by Θ(N ·
merge_ratio) changes, i.e. amortised O(1/merge_ratio) per change. ``compact()`` forces it, after
which scores are exact. A freshly built or loaded index is exact.

Example:
    >>> index = SkillIndex()
    >>> index.add("pdf", {"name": "pdf", "description": "Extract text and tables from PDF files"})
    >>> index.add("csv", {"name": "csv", "description": "Clean and merge CSV spreadsheets"})
    >>> [doc for doc, _ in index.search("merge two spreadsheets", k=1)]
    ['csv']
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import numpy.typing as npt

from paxis_router.errors import SkillError
from paxis_router.skills.tokenize import Tokenizer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

Mode = Literal["bm25f", "okapi"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]

#: Field weights of the default BM25F index: a term in the name says more than one in the body.
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {"name": 3.0, "description": 2.0, "body": 1.0}
#: Per-field length normalisation (BM25F ``b_f``): short fields barely need it.
DEFAULT_FIELD_B: dict[str, float] = {"name": 0.3, "description": 0.5, "body": 0.75}

_FORMAT_VERSION = 1
#: Segments of at most this many documents keep dense rows for their most frequent terms ...
DENSE_MAX_DOCS = 20_000
#: ... in at most this many bytes (float64 rows of one weight per document).
DENSE_BYTES = 16_000_000
# Matched terms of a sparse-only query ride along as float64 bit masks: exact up to 52 bits.
_MAX_MASK_TERMS = 52
# Distinct query chunks whose terms are cached before the cache starts over ...
_CHUNK_CACHE_SIZE = 100_000
# ... and how many new ones one query adds to it.
_CHUNKS_LEARNED_PER_QUERY = 3
# Posting lists up to this long are searched as a Python set when finding matched terms.
_SHORT_POSTINGS = 64
# Up to this many top candidates are ranked by sorting in Python, without argpartition.
_SORT_DIRECTLY = 48
# Top-k by k argmax scans when k * documents is at most this (about 5 scans of 50k documents).
_ARGMAX_WORK = 250_000


class _Segment:
    """Compiled postings for doc slots ``[start, start + n_docs)``.

    Small segments (at most :data:`DENSE_MAX_DOCS` documents) also keep the weights of their
    most frequent terms as dense rows (at most :data:`DENSE_BYTES` in all): a query then costs
    one gather-and-multiply over those rows instead of a scatter per posting, which is what
    makes a ~1,000-skill select a few dozen microseconds. The rarer terms stay sparse.
    """

    __slots__ = (
        "dense",
        "dense_row",
        "doc",
        "indptr",
        "n_docs",
        "n_terms",
        "start",
        "starts",
        "weight",
    )

    def __init__(
        self,
        start: int,
        n_docs: int,
        indptr: npt.NDArray[np.int64],
        doc: IntArray,
        weight: FloatArray,
        *,
        dense_bytes: int = 0,
    ):
        self.start = start
        self.n_docs = n_docs
        self.indptr = indptr  # len = vocabulary size at compile time + 1
        self.starts: list[int] = indptr.tolist()  # Python ints: no numpy scalar per lookup
        self.n_terms = len(indptr) - 1
        self.doc = doc  # slot - start, ascending within a term
        self.weight = weight
        self.dense: FloatArray | None = None
        self.dense_row: list[int] = []  # term id -> row of ``dense``, or -1
        if n_docs and dense_bytes >= 8 * n_docs:
            self._densify(dense_bytes // (8 * n_docs))

    def _densify(self, max_rows: int) -> None:
        df = np.diff(self.indptr)
        by_df = np.argsort(-df, kind="stable")[: min(max_rows, int(np.count_nonzero(df)))]
        rows = np.full(self.n_terms, -1, dtype=np.int64)
        rows[by_df] = np.arange(len(by_df))
        dense = np.zeros((len(by_df), self.n_docs))
        sizes = df[by_df]
        take = np.concatenate([np.arange(self.indptr[t], self.indptr[t + 1]) for t in by_df])
        dense[np.repeat(np.arange(len(by_df)), sizes), self.doc[take]] = self.weight[take]
        self.dense = dense
        self.dense_row = rows.tolist()

    def score(self, query: Sequence[tuple[int, int]]) -> tuple[FloatArray, _Matcher]:
        """Scores per doc (in slot order) and a matcher for the query terms each doc contains."""
        starts, n_terms, dense_row = self.starts, self.n_terms, self.dense_row
        rows: list[int] = []
        row_counts: list[int] = []
        row_positions: list[int] = []
        docs: list[IntArray] = []
        weights: list[FloatArray] = []
        positions: list[int] = []
        for position, (tid, count) in enumerate(query):
            if tid >= n_terms:
                continue
            if dense_row and dense_row[tid] >= 0:
                rows.append(dense_row[tid])
                row_counts.append(count)
                row_positions.append(position)
                continue
            lo, hi = starts[tid], starts[tid + 1]
            if lo == hi:
                continue
            docs.append(self.doc[lo:hi])
            w = self.weight[lo:hi]
            weights.append(w if count == 1 else count * w)
            positions.append(position)
        gathered = None
        if rows:
            assert self.dense is not None
            gathered = self.dense.take(rows, axis=0)  # take: cheaper than fancy indexing
            scores = np.asarray(row_counts, dtype=np.float64) @ gathered
            for d, w in zip(docs, weights, strict=True):
                scores[d] += w  # a term's docs are distinct: no lost updates
        elif docs:
            flat = np.concatenate(docs) if len(docs) > 1 else docs[0]
            summed = np.bincount(
                flat,
                np.concatenate(weights) if len(weights) > 1 else weights[0],
                minlength=self.n_docs,
            )
            scores = cast("FloatArray", summed)  # with weights, bincount returns float64
            if positions[-1] < _MAX_MASK_TERMS:
                return scores, _Matcher(None, [], docs, positions, flat)
        else:
            scores = np.zeros(self.n_docs)
        return scores, _Matcher(gathered, row_positions, docs, positions)

    @property
    def nbytes(self) -> int:
        dense = self.dense.nbytes if self.dense is not None else 0
        return int(self.indptr.nbytes + self.doc.nbytes + self.weight.nbytes + dense)


class _Matcher:
    """Which query terms (by position) occur in given docs of one segment, after scoring."""

    __slots__ = ("docs", "flat", "gathered", "positions", "row_positions")

    def __init__(
        self,
        gathered: FloatArray | None,
        row_positions: list[int],
        docs: list[IntArray],
        positions: list[int],
        flat: IntArray | None = None,
    ):
        self.gathered = gathered
        self.row_positions = row_positions
        self.docs = docs
        self.positions = positions
        self.flat = flat  # all of docs concatenated (sparse-only segments)

    def __call__(self, slots: list[int]) -> list[list[int]]:
        """For each local slot, the sorted positions of the query terms it contains."""
        if not slots:
            return []
        if self.flat is not None:
            # Long postings: a per-doc bit mask of query positions (exact float64 integers),
            # one bincount over the postings already gathered instead of a search per term.
            bits = np.repeat(np.exp2(self.positions), [len(d) for d in self.docs])
            mask = np.bincount(self.flat, bits, minlength=max(slots) + 1)
            return [_bit_positions(int(b)) for b in mask[slots].tolist()]
        out: list[list[int]] = [[] for _ in slots]
        if self.gathered is not None:
            present = (self.gathered.take(slots, axis=1) != 0.0).tolist()  # dense row x slot
            for position, row in zip(self.row_positions, present, strict=True):
                for i, hit in enumerate(row):
                    if hit:
                        out[i].append(position)
        for position, d in zip(self.positions, self.docs, strict=True):
            if len(d) <= _SHORT_POSTINGS:
                members = set(d.tolist())
                hits = [slot in members for slot in slots]
            else:
                wanted = np.asarray(slots, dtype=np.int64)
                at = np.minimum(np.searchsorted(d, wanted), len(d) - 1)
                hits = (d[at] == wanted).tolist()
            for i, hit in enumerate(hits):
                if hit:
                    out[i].append(position)
        if self.docs and self.gathered is not None:
            for found in out:
                found.sort()
        return out


class MatchedTerms:
    """The matched query terms of one ranked result list, computed for all of it on first use:
    ``terms[i]`` are the query terms (as indexed) the i-th result contains, in query order."""

    __slots__ = ("_done", "_matcher", "_query", "_slots", "_vocabulary")

    def __init__(
        self,
        matcher: Callable[[list[int]], list[list[int]]],
        slots: list[int],
        vocabulary: list[str],
        query: Sequence[tuple[int, int]],
    ):
        self._matcher = matcher
        self._slots = slots
        self._vocabulary = vocabulary  # the index's term list (only ever appended to)
        self._query = query
        self._done: list[tuple[str, ...]] | None = None

    def __getitem__(self, i: int) -> tuple[str, ...]:
        if self._done is None:
            names = [self._vocabulary[t] for t, _ in self._query]
            positions = self._matcher(self._slots)
            self._done = [tuple([names[j] for j in found]) for found in positions]
        return self._done[i]

    def __len__(self) -> int:
        return len(self._slots)


_NO_TERMS = MatchedTerms(lambda slots: [], [], [], ())


class SkillIndex:
    """BM25 / BM25F index over named text fields, with add/remove/save/load.

    Args:
        mode: ``"bm25f"`` (field weights) or ``"okapi"`` (rank_bm25.BM25Okapi-compatible).
        field_weights: field name -> weight (BM25F); in okapi mode only the names matter.
        field_b: field name -> length normalisation ``b_f`` (BM25F); missing fields use ``b``.
        k1: term-frequency saturation; default 1.5 (okapi, as rank_bm25) or 1.2 (bm25f).
        b: length normalisation (okapi, and BM25F fields without ``field_b``).
        epsilon: okapi's negative-idf floor factor (``epsilon * mean idf``).
        tokenizer: how text becomes terms (stemming and stopwords on by default).
        merge_ratio: changes, relative to the main segment, that trigger a full recompile.
        merge_min: ... but never fewer than this many changes.
        dense_bytes: memory for dense rows of the most frequent terms when the index has at most
            :data:`DENSE_MAX_DOCS` documents (faster queries; 0 turns it off). Scores and
            rankings are the same either way.

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
        merge_ratio: float = 0.1,
        merge_min: int = 64,
        dense_bytes: int = DENSE_BYTES,
    ):
        if mode not in ("bm25f", "okapi"):
            raise ValueError(f"mode must be 'bm25f' or 'okapi', got {mode!r}")
        weights = dict(field_weights) if field_weights is not None else dict(DEFAULT_FIELD_WEIGHTS)
        if mode == "okapi" and field_weights is None:
            weights = {"text": 1.0}
        if not weights or any(w < 0 for w in weights.values()):
            raise ValueError(f"field_weights must be non-empty and non-negative, got {weights}")
        self.mode: Mode = mode
        self.fields: tuple[str, ...] = tuple(weights)
        self.field_weights = weights
        fb = dict(DEFAULT_FIELD_B) if field_b is None and mode == "bm25f" else dict(field_b or {})
        self.field_b = {f: float(fb.get(f, b)) for f in self.fields}
        self.k1 = float(k1 if k1 is not None else (1.5 if mode == "okapi" else 1.2))
        self.b = float(b)
        self.epsilon = float(epsilon)
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.merge_ratio = merge_ratio
        self.merge_min = merge_min
        self.dense_bytes = dense_bytes
        n_fields = len(self.fields)
        # Vocabulary and slots.
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._dead: set[int] = set()
        # Per-doc term stats: frozen concatenated arrays for slots < _n_frozen, lists after.
        self._n_frozen = 0
        self._f_offsets: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._f_tids: IntArray = np.zeros(0, dtype=np.int32)
        self._f_tf: npt.NDArray[np.float32] = np.zeros((0, n_fields), dtype=np.float32)
        self._new_tids: list[IntArray] = []
        self._new_tf: list[npt.NDArray[np.float32]] = []
        self._doc_len: list[FloatArray] = []  # per slot, tokens per field
        # Running collection statistics over live documents.
        self._df = np.zeros(0, dtype=np.int64)
        self._len_sum = np.zeros(n_fields)
        # Compiled state.
        self._main: _Segment | None = None
        self._delta: _Segment | None = None
        self._dead_slots: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._changes = 0
        # Query chunk (whitespace-separated, as typed) -> its terms; see query_terms_of_text.
        self._chunk_terms: dict[str, tuple[str, ...]] = {}

    # --- building ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot

    def ids(self) -> list[str]:
        """Live document ids, in slot order (the order of :meth:`get_scores`)."""
        return [doc for slot, doc in enumerate(self._ids) if slot not in self._dead]

    def add(self, doc_id: str, fields: Mapping[str, str]) -> None:
        """Index ``fields`` (field name -> text) under ``doc_id``; unknown fields are an error.

        In okapi mode all given fields are concatenated into the single field.

        Raises:
            SkillError: ``doc_id`` is already indexed (remove it first).
        """
        tokenize = self.tokenizer.tokens
        if self.mode == "okapi" and len(self.fields) == 1:
            tokens = [t for text in fields.values() for t in tokenize(text)]
            self.add_tokens(doc_id, {self.fields[0]: tokens})
        else:
            self.add_tokens(doc_id, {f: tokenize(text) for f, text in fields.items()})

    def add_tokens(self, doc_id: str, field_tokens: Mapping[str, Sequence[str]]) -> None:
        """Index already-tokenised fields (for parity tests and custom tokenisers)."""
        if doc_id in self._slot:
            raise SkillError(
                "duplicate skill id: it is already in the index; remove it first or rename the "
                "folder",
                path=doc_id,
            )
        n_fields = len(self.fields)
        rows: dict[int, list[float]] = {}
        lengths = np.zeros(n_fields)
        vocab = self._vocab
        for field_name, tokens in field_tokens.items():
            try:
                f = self.fields.index(field_name)
            except ValueError:
                raise ValueError(
                    f"unknown field {field_name!r} for {doc_id!r}; the index has {self.fields}"
                ) from None
            lengths[f] += len(tokens)
            for term, count in Counter(tokens).items():
                tid = vocab.get(term)
                if tid is None:
                    tid = len(self._terms)
                    vocab[term] = tid
                    self._terms.append(term)
                row = rows.get(tid)
                if row is None:
                    row = rows[tid] = [0.0] * n_fields
                row[f] += count
        tids = np.fromiter(sorted(rows), dtype=np.int32, count=len(rows))
        tf = np.array([rows[int(t)] for t in tids], dtype=np.float32).reshape(-1, n_fields)
        if len(self._df) < len(self._terms):
            grown = np.zeros(max(len(self._terms), 2 * len(self._df)), dtype=np.int64)
            grown[: len(self._df)] = self._df
            self._df = grown
        self._df[tids] += 1
        self._len_sum += lengths
        self._slot[doc_id] = len(self._ids)
        self._ids.append(doc_id)
        self._new_tids.append(tids)
        self._new_tf.append(tf)
        self._doc_len.append(lengths)
        self._delta = None
        self._changes += 1

    def remove(self, doc_id: str) -> None:
        """Drop ``doc_id`` from the index (masked now, purged at the next full recompile).

        Raises:
            KeyError: ``doc_id`` is not indexed.
        """
        slot = self._slot.pop(doc_id)
        tids, _ = self._doc_terms(slot)
        self._df[tids] -= 1
        self._len_sum -= self._doc_len[slot]
        self._dead.add(slot)
        self._dead_slots = np.fromiter(sorted(self._dead), dtype=np.int64, count=len(self._dead))
        self._changes += 1

    def compact(self) -> None:
        """Recompile everything now with fresh statistics (scores become exact)."""
        self._rebuild()

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

    def get_scores(self, tokens: Sequence[str]) -> FloatArray:
        """Scores of every live document (in :meth:`ids` order) for already-tokenised ``tokens``."""
        scores, _ = self._score_slots(self.query_terms(tokens))
        if self._dead:
            scores = np.delete(scores, self._dead_slots)
        return scores

    def search(
        self, query: str, k: int = 10, min_score: float | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` (doc id, score) for ``query``; only documents sharing a term with it."""
        return [(doc, score) for doc, score, _ in self.search_text(query, k, min_score)]

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
        self, query: list[tuple[int, int]], k: int, min_score: float | None
    ) -> tuple[list[tuple[str, float]], MatchedTerms]:
        if not query or k <= 0 or not self._slot:
            return [], _NO_TERMS
        scores, matcher = self._score_slots(query)
        if self._dead:
            scores[self._dead_slots] = 0.0
        ranked = _top_k(scores, k, 0.0 if min_score is None else min_score)
        if not ranked:
            return [], _NO_TERMS
        ids = self._ids
        terms = MatchedTerms(matcher, [slot for _, slot in ranked], self._terms, query)
        return [(ids[slot], score) for score, slot in ranked], terms

    def _score_slots(
        self, query: Sequence[tuple[int, int]]
    ) -> tuple[FloatArray, Callable[[list[int]], list[list[int]]]]:
        """Scores over all slots (main then delta) and a matcher taking slots."""
        self._ensure_compiled()
        main, delta = self._main, self._delta
        assert main is not None
        scores, matcher = main.score(query)
        if delta is None or not delta.n_docs:
            return scores, matcher
        more, more_matcher = delta.score(query)
        split = main.n_docs

        def both(slots: list[int]) -> list[list[int]]:
            low = matcher([s for s in slots if s < split])
            high = more_matcher([s - split for s in slots if s >= split])
            return [low.pop(0) if s < split else high.pop(0) for s in slots]

        return np.concatenate((scores, more)), both

    # --- compiling -----------------------------------------------------------------------------

    def _ensure_compiled(self) -> None:
        main = self._main
        if main is None:
            self._rebuild()
            return
        threshold = max(self.merge_min, self.merge_ratio * main.n_docs)
        if self._changes > threshold:
            self._rebuild()
        elif self._delta is None:
            start = main.start + main.n_docs
            self._delta = self._compile(range(start, len(self._ids)), start)

    def _doc_terms(self, slot: int) -> tuple[IntArray, npt.NDArray[np.float32]]:
        if slot < self._n_frozen:
            lo, hi = int(self._f_offsets[slot]), int(self._f_offsets[slot + 1])
            return self._f_tids[lo:hi], self._f_tf[lo:hi]
        i = slot - self._n_frozen
        return self._new_tids[i], self._new_tf[i]

    def _rebuild(self) -> None:
        """Purge removed docs, freeze all per-doc arrays, compile one main segment."""
        live = [s for s in range(len(self._ids)) if s not in self._dead]
        parts = [self._doc_terms(s) for s in live]
        n_fields = len(self.fields)
        if parts:
            self._f_tids = np.concatenate([p[0] for p in parts]).astype(np.int32, copy=False)
            self._f_tf = np.concatenate([p[1] for p in parts]).reshape(-1, n_fields)
        else:
            self._f_tids = np.zeros(0, dtype=np.int32)
            self._f_tf = np.zeros((0, n_fields), dtype=np.float32)
        sizes = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=len(parts))
        self._f_offsets = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(sizes)))
        self._ids = [self._ids[s] for s in live]
        self._doc_len = [self._doc_len[s] for s in live]
        self._slot = {doc: i for i, doc in enumerate(self._ids)}
        self._dead = set()
        self._dead_slots = np.zeros(0, dtype=np.int64)
        self._n_frozen = len(self._ids)
        self._new_tids, self._new_tf = [], []
        self._main = self._compile(range(len(self._ids)), 0, dense=True)
        self._delta = _Segment(len(self._ids), 0, np.zeros(1, np.int64), *_empty_postings())
        self._changes = 0

    def _idf(self) -> FloatArray:
        n_docs = len(self._slot)
        df = self._df[: len(self._terms)].astype(np.float64)
        if self.mode == "okapi":
            idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
            present = df > 0
            if present.any():
                eps = self.epsilon * float(idf[present].sum()) / int(present.sum())
                idf[present & (idf < 0)] = eps
            return idf
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))

    def _compile(self, slots: range, start: int, *, dense: bool = False) -> _Segment:
        n_docs = len(slots)
        n_terms = len(self._terms)
        if n_docs == 0:
            return _Segment(start, 0, np.zeros(n_terms + 1, np.int64), *_empty_postings())
        parts = [self._doc_terms(s) for s in slots]
        tids = np.concatenate([p[0] for p in parts])
        tf = np.concatenate([p[1] for p in parts]).astype(np.float64)
        sizes = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=n_docs)
        doc = np.repeat(np.arange(n_docs, dtype=np.int32), sizes)
        dl = np.stack([self._doc_len[s] for s in slots])[doc]  # (M, F)
        n_live = max(len(self._slot), 1)
        avgdl = self._len_sum / n_live
        idf = self._idf()[tids]
        k1 = self.k1
        if self.mode == "okapi":
            b = self.b
            # Total length over all fields, in rank_bm25's operation order (parity to 1e-9).
            q_freq = tf.sum(axis=1)
            doc_len = dl.sum(axis=1)
            mean_len = float(avgdl.sum())
            weight = idf * (q_freq * (k1 + 1) / (q_freq + k1 * (1 - b + b * doc_len / mean_len)))
        else:
            fw = np.array([self.field_weights[f] for f in self.fields])
            fb = np.array([self.field_b[f] for f in self.fields])
            safe_avg = np.where(avgdl > 0, avgdl, 1.0)
            norm = 1.0 - fb + fb * dl / safe_avg
            pseudo_tf = (tf * fw / norm).sum(axis=1)
            weight = idf * pseudo_tf * (k1 + 1) / (pseudo_tf + k1)
        nonzero = weight != 0.0  # a posting that adds nothing is no match (zero field weight)
        if not nonzero.all():
            tids, doc, weight = tids[nonzero], doc[nonzero], weight[nonzero]
        order = np.argsort(tids, kind="stable")
        counts = np.bincount(tids, minlength=n_terms)
        indptr = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(counts)))
        weight = weight[order]
        doc = doc[order]
        dense_bytes = self.dense_bytes if dense and n_docs <= DENSE_MAX_DOCS else 0
        return _Segment(start, n_docs, indptr, doc, weight, dense_bytes=dense_bytes)

    @property
    def nbytes(self) -> int:
        """Bytes held in numpy arrays (postings and per-doc term statistics)."""
        total = self._f_offsets.nbytes + self._f_tids.nbytes + self._f_tf.nbytes + self._df.nbytes
        total += sum(a.nbytes for a in self._new_tids) + sum(a.nbytes for a in self._new_tf)
        total += sum(seg.nbytes for seg in (self._main, self._delta) if seg is not None)
        return int(total + 8 * len(self.fields) * len(self._doc_len))

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
            "merge_ratio": self.merge_ratio,
            "merge_min": self.merge_min,
            "dense_bytes": self.dense_bytes,
        }

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` (a directory: ``index.json`` + ``index.npz``, no pickle)."""
        self.compact()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT_VERSION,
            "config": self.config(),
            "ids": self._ids,
            "terms": self._terms,
        }
        (folder / "index.json").write_text(json.dumps(meta), encoding="utf-8")
        doc_len = np.stack(self._doc_len) if self._doc_len else np.zeros((0, len(self.fields)))
        with (folder / "index.npz").open("wb") as fh:
            np.savez(
                fh,
                offsets=self._f_offsets,
                tids=self._f_tids,
                tf=self._f_tf,
                doc_len=doc_len,
            )

    @classmethod
    def load(cls, path: str | Path) -> SkillIndex:
        """Read an index written by :meth:`save`.

        Raises:
            SkillError: the files are missing, of another format version, or inconsistent.
        """
        folder = Path(path)
        try:
            meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            with np.load(folder / "index.npz", allow_pickle=False) as data:
                arrays = {key: data[key] for key in ("offsets", "tids", "tf", "doc_len")}
        except (OSError, ValueError, KeyError) as exc:
            raise SkillError(f"cannot read a saved index: {exc}", path=str(folder)) from exc
        if meta.get("format") != _FORMAT_VERSION:
            raise SkillError(
                f"index format {meta.get('format')!r} is not {_FORMAT_VERSION}; rebuild the index",
                path=str(folder),
            )
        config = dict(meta["config"])
        tokenizer = Tokenizer.from_config(dict(config.pop("tokenizer")))
        index = cls(tokenizer=tokenizer, **config)
        ids: list[str] = list(meta["ids"])
        index._terms = list(meta["terms"])
        index._vocab = {term: i for i, term in enumerate(index._terms)}
        index._ids = ids
        index._slot = {doc: i for i, doc in enumerate(ids)}
        if len(arrays["offsets"]) != len(ids) + 1 or len(arrays["doc_len"]) != len(ids):
            raise SkillError("index.npz does not match index.json; rebuild", path=str(folder))
        index._f_offsets = arrays["offsets"].astype(np.int64)
        index._f_tids = arrays["tids"].astype(np.int32)
        index._f_tf = arrays["tf"].astype(np.float32)
        index._doc_len = list(arrays["doc_len"].astype(np.float64))
        index._n_frozen = len(ids)
        index._df = np.bincount(index._f_tids, minlength=len(index._terms)).astype(np.int64)
        index._len_sum = arrays["doc_len"].astype(np.float64).sum(axis=0)
        index._rebuild()
        return index


def _top_k(scores: FloatArray, k: int, floor: float) -> list[tuple[float, int]]:
    """The ``k`` best (score, slot) pairs with a positive score >= ``floor``: score descending,
    then slot ascending. May overwrite ``scores``.

    Small ``k`` over a small index: ``k`` argmax scans (each finds the lowest slot among equal
    best scores), a microsecond each at 1,000 documents. Otherwise a full ``argpartition``
    over every document would be the slow part (100k skills): take the documents within a
    fraction of the best score instead — if at least ``k`` qualify, the top ``k`` are all among
    them, so ranking only them is exact — lowering the fraction until ``k`` qualify.
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
    # Sorting (-score, slot) pairs gives score descending, then slot ascending, without a key.
    pairs = sorted(zip((-scores[top]).tolist(), top.tolist(), strict=True))[:k]
    return [(-neg, slot) for neg, slot in pairs]


def _bit_positions(bits: int) -> list[int]:
    """The positions of the set bits of ``bits``, ascending."""
    out = []
    position = 0
    while bits:
        if bits & 1:
            out.append(position)
        bits >>= 1
        position += 1
    return out


def _empty_postings() -> tuple[IntArray, FloatArray]:
    return np.zeros(0, dtype=np.int32), np.zeros(0)
