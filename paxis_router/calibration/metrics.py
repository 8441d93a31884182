"""RouteLLM's routing metrics: PGR, APGR and CPT (arXiv 2406.18665, section 5).

A router decides, per query, whether to call the strong model. Sweeping its threshold moves the
share of strong calls ``c`` from 0 to 1; at each ``c`` the router's quality ``r(router)`` gives the
*performance gap recovered*::

    PGR(c) = (r(router) - r(weak)) / (r(strong) - r(weak))

APGR is the area under PGR(c) over c in [0, 1] (trapezoid rule on a 1 % grid), and CPT(x) the
smallest strong-call share whose PGR reaches ``x``. Random routing has APGR 0.5.

``sweep`` builds the curve from per-query scores: at share ``c`` the ``round(c * n)`` queries
with the *lowest* scores go to the strong model (a score is "how fine the weak answer is").
Tied scores are split in expectation — as a threshold with random tie-breaking would — so a
constant scorer gives exactly the random-routing line.

Example:
    >>> curve = sweep([0.9, 0.1], weak_quality=[1.0, 0.0], strong_quality=[1.0, 1.0], steps=2)
    >>> curve.shares, curve.pgr
    ((0.0, 0.5, 1.0), (0.0, 1.0, 1.0))
    >>> apgr(curve), cpt(curve, 0.5)
    (0.75, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    Values = Sequence[float] | NDArray[np.float64]

__all__ = ["Curve", "apgr", "cpt", "pgr", "sweep"]


def pgr(router_quality: float, weak_quality: float, strong_quality: float) -> float:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong model's.

    Raises ValueError when the two models are equally good (the gap is 0: nothing to recover).

    Example:
        >>> pgr(0.75, 0.5, 1.0)
        0.5
    """
    gap = strong_quality - weak_quality
    if gap == 0:
        raise ValueError("PGR is undefined: the weak and strong models have the same quality")
    return (router_quality - weak_quality) / gap


@dataclass(frozen=True, slots=True)
class Curve:
    """Quality against strong-call share, one point per grid step.

    ``shares[i]`` is the share of strong calls, ``quality[i]`` the router's mean quality there
    (accuracy, or a mean judge score), ``pgr[i]`` its PGR; ``weak_quality`` and
    ``strong_quality`` are the two models' own means on the same queries.
    """

    shares: tuple[float, ...]
    quality: tuple[float, ...]
    pgr: tuple[float, ...]
    weak_quality: float
    strong_quality: float


def sweep(
    scores: Values,
    weak_quality: Values,
    strong_quality: Values,
    *,
    steps: int = 100,
) -> Curve:
    """The router's curve when the lowest-scored queries go to the strong model first.

    Args:
        scores: one per query; higher means "keep the weak answer".
        weak_quality: the weak model's quality on each query (1/0 for correct, or a score).
        strong_quality: the strong model's quality on each query.
        steps: grid steps over [0, 1] (100 gives RouteLLM's 1 % grid).

    Example:
        >>> sweep([0.2, 0.8], [0.0, 1.0], [1.0, 1.0], steps=2).quality
        (0.5, 1.0, 1.0)
    """
    s = np.asarray(scores, dtype=float)
    w = np.asarray(weak_quality, dtype=float)
    g = np.asarray(strong_quality, dtype=float) - w
    n = len(s)
    if n == 0 or len(w) != n or len(g) != n:
        raise ValueError(
            f"sweep needs equal, non-empty lengths; got scores={n}, weak={len(w)}, strong={len(g)}"
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    order = np.argsort(s, kind="stable")
    s_sorted, g_sorted = s[order], g[order]
    # Split into groups of tied scores; within a group every member is equally likely to go first.
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    group_gain = np.add.reduceat(g_sorted, starts)
    gain_before = np.r_[0.0, np.cumsum(group_gain)]
    weak_mean = float(w.mean())
    strong_mean = float(weak_mean + g.mean())
    shares: list[float] = []
    quality: list[float] = []
    for i in range(steps + 1):
        share = i / steps
        k = round(share * n)
        j = int(np.searchsorted(ends, k, side="left"))  # the group holding the k-th query
        if j >= len(starts):
            gained = float(gain_before[-1])
        else:
            taken = k - int(starts[j])
            size = int(ends[j] - starts[j])
            gained = float(gain_before[j] + group_gain[j] * taken / size)
        shares.append(share)
        quality.append(weak_mean + gained / n)
    gap = strong_mean - weak_mean
    if gap == 0:
        raise ValueError("PGR is undefined: the weak and strong models have the same quality")
    return Curve(
        shares=tuple(shares),
        quality=tuple(quality),
        pgr=tuple((q - weak_mean) / gap for q in quality),
        weak_quality=weak_mean,
        strong_quality=strong_mean,
    )


def apgr(curve: Curve) -> float:
    """Area under PGR against strong-call share (trapezoid rule).

    Example:
        >>> apgr(Curve((0.0, 1.0), (0.0, 1.0), (0.0, 1.0), 0.0, 1.0))
        0.5
    """
    x = np.asarray(curve.shares)
    y = np.asarray(curve.pgr)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def cpt(curve: Curve, target_pgr: float) -> float | None:
    """The smallest strong-call share whose PGR is at least ``target_pgr`` (None: never).

    Example:
        >>> cpt(Curve((0.0, 0.5, 1.0), (0.0, 0.6, 1.0), (0.0, 0.6, 1.0), 0.0, 1.0), 0.5)
        0.5
    """
    for share, value in zip(curve.shares, curve.pgr, strict=True):
        if value >= target_pgr - 1e-12:
            return share
    return None
