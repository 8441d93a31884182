"""Fitting the learned scorer (scikit-learn, extra ``[calibrate]``) and scoring many rows at once.

``Design`` holds every row's signals computed once (answer features, hashed text counts), so
cross-fitting refits on index subsets without recomputing them. ``score_rows`` gives exactly
what ``LearnedScorer.score`` gives row by row, vectorised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from paxis_router.calibration.features import FEATURE_NAMES, answer_features
from paxis_router.calibration.scorer import (
    CLIP,
    TEXT_FIELDS,
    Head,
    LearnedScorer,
    hashed_counts,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from paxis_router.types import Verdict


@dataclass(frozen=True)
class Design:
    """Every row's signals: ``hand`` (n × features) and hashed text counts per field."""

    hand: NDArray[np.float64]
    counts: dict[str, Any]  # Any: scipy.sparse.csr_matrix per text field (vendor type)
    buckets: int

    @property
    def n(self) -> int:
        return int(self.hand.shape[0])


def prepare(
    prompts: Sequence[str],
    responses: Sequence[str],
    verdicts: Sequence[Sequence[Verdict]] | None = None,
    *,
    buckets: int = 1024,
    text_fields: Sequence[str] = TEXT_FIELDS,
) -> Design:
    """Compute the signals of every (prompt, response) pair once."""
    from scipy.sparse import csr_matrix

    n = len(prompts)
    per_row = verdicts if verdicts is not None else [()] * n
    hand = np.array(
        [
            [f[name] for name in FEATURE_NAMES]
            for f in (
                answer_features(p, r, v)
                for p, r, v in zip(prompts, responses, per_row, strict=True)
            )
        ],
        dtype=float,
    ).reshape(n, len(FEATURE_NAMES))
    texts = {"prompt": prompts, "response": responses}
    counts: dict[str, Any] = {}  # Any: scipy sparse matrices
    for field in text_fields:
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, text in enumerate(texts[field]):
            for bucket, tf in hashed_counts(text, buckets).items():
                rows.append(i)
                cols.append(bucket)
                vals.append(tf)
        counts[field] = csr_matrix((vals, (rows, cols)), shape=(n, buckets))
    return Design(hand=hand, counts=counts, buckets=buckets)


def _idf(counts: Any, idx: NDArray[np.int64]) -> NDArray[np.float64]:  # Any: scipy sparse
    df = np.asarray((counts[idx] > 0).sum(axis=0)).ravel()
    return np.log((1.0 + len(idx)) / (1.0 + df)) + 1.0


def _tfidf(counts: Any, idf: NDArray[np.float64]) -> Any:  # Any: scipy sparse in and out
    from scipy.sparse import csr_matrix, diags

    weighted = counts @ diags(idf)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return csr_matrix(diags(1.0 / norms) @ weighted)


def _matrix(
    design: Design,
    idx: NDArray[np.int64],
    mean: NDArray[np.float64],
    scale: NDArray[np.float64],
    idf: dict[str, NDArray[np.float64]],
) -> Any:  # Any: scipy sparse
    from scipy.sparse import csr_matrix, hstack

    parts = [csr_matrix(np.clip((design.hand[idx] - mean) / scale, -CLIP, CLIP))]
    parts += [_tfidf(design.counts[f][idx], idf[f]) for f in idf]
    return hstack(parts).tocsr()


def _fit_head(
    m: Any, labels: NDArray[np.float64], c: float, n_hand: int, fields: Sequence[str], buckets: int
) -> Head:  # Any: scipy sparse
    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression

    # Fractional labels (a judge score scaled to 0..1) become two weighted rows.
    y = np.r_[np.ones(len(labels)), np.zeros(len(labels))]
    weights = np.r_[labels, 1.0 - labels]
    keep = weights > 0
    x = vstack([m, m]).tocsr()[keep]
    if len(set(y[keep].tolist())) < 2:
        p = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
        zeros = (0.0,) * buckets
        return Head(math.log(p / (1 - p)), (0.0,) * n_hand, {f: zeros for f in fields})
    model = LogisticRegression(C=c, solver="liblinear", max_iter=5000).fit(
        x, y[keep], sample_weight=weights[keep]
    )
    coef = model.coef_[0]
    text = {
        f: tuple(coef[n_hand + i * buckets : n_hand + (i + 1) * buckets])
        for i, f in enumerate(fields)
    }
    return Head(float(model.intercept_[0]), tuple(coef[:n_hand]), text)


def fit(
    design: Design,
    idx: NDArray[np.int64],
    weak_quality: NDArray[np.float64],
    strong_quality: NDArray[np.float64] | None,
    *,
    c_weak: float = 3.0,
    c_strong: float = 1.0,
) -> LearnedScorer:
    """Fit the weak head (and the strong head when ``strong_quality`` is given) on rows ``idx``.

    Qualities are in 0..1 (1/0 correctness, or a score scaled to 0..1).
    """
    hand = design.hand[idx]
    mean = hand.mean(axis=0)
    scale = hand.std(axis=0)
    scale[scale < 1e-6] = 1.0  # constant features (up to float noise) stay unscaled
    fields = list(design.counts)
    idf = {f: _idf(design.counts[f], idx) for f in fields}
    m = _matrix(design, idx, mean, scale, idf)
    n_hand = len(FEATURE_NAMES)
    weak = _fit_head(m, weak_quality[idx], c_weak, n_hand, fields, design.buckets)
    strong = None
    if strong_quality is not None:
        strong = _fit_head(m, strong_quality[idx], c_strong, n_hand, fields, design.buckets)
    return LearnedScorer(
        features=FEATURE_NAMES,
        mean=tuple(mean.tolist()),
        scale=tuple(scale.tolist()),
        buckets=design.buckets,
        idf={f: tuple(v.tolist()) for f, v in idf.items()},
        weak=weak,
        strong=strong,
    )


def score_rows(
    scorer: LearnedScorer, design: Design, idx: NDArray[np.int64]
) -> NDArray[np.float64]:
    """``scorer.score`` for rows ``idx`` of ``design`` (same features, same fields), vectorised."""
    positions = [FEATURE_NAMES.index(f) for f in scorer.features]
    x = (design.hand[idx][:, positions] - np.asarray(scorer.mean)) / np.asarray(scorer.scale)
    x = np.clip(x, -CLIP, CLIP)
    vectors = {f: _tfidf(design.counts[f][idx], np.asarray(v)) for f, v in scorer.idf.items()}

    def head(h: Head) -> NDArray[np.float64]:
        z = h.intercept + (x @ np.asarray(h.hand) if h.hand else np.zeros(len(idx)))
        for f, coef in h.text.items():
            z = z + vectors[f] @ np.asarray(coef)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=float)

    out = head(scorer.weak)
    if scorer.strong is not None:
        out = out - head(scorer.strong)
    return out
