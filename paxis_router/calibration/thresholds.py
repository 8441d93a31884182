"""Calibration: labelled outcomes -> an escalation policy fitted to a quality, cost or rate target.

Two kinds of policy:

(a) a threshold on one existing score (a verifier's score, the logprob confidence): give the
    per-example scores to :func:`calibrate_scores`; the result's threshold goes into
    ``confidence_below``;
(b) a learned scorer (:class:`LearnedScorer`) that combines verifier verdicts, answer features
    (final answer present, integer, supported by the working, calculations right, hedges,
    length, ...), query features and hashed TF-IDF of query and answer: :func:`calibrate`.

Both are chosen on *cross-fitted* scores: every example is scored by a model fitted on the other
folds (or, with ``groups``, on the other groups), so no route is ever scored by a model that saw
its label. The shipped scorer is then refitted on all examples; the threshold is a probability
difference, which transfers between the fold models and the final one.

The Router reads the learned scorer through the ``score_below`` predicate::

    escalate_when: {score_below: {threshold: -0.21, scorer: {format: paxis-scorer/1, ...}}}

(``scorer`` is the scorer inline, or a path to its JSON file, relative to the working
directory). The predicate escalates when the worker's answer scores below the threshold; it never
escalates from the last tier.

``calibrate(..., scorer="knn" | "mix")`` fits the embedding-neighbour scorer instead
(:class:`~paxis_router.calibration.knn.KnnScorer`, format ``paxis-knn-scorer/2``: the weighted
mean gain of the query's nearest training queries), alone or mixed 50/50 with the learned one;
it is saved as a JSON file plus an ``.npz`` of embeddings, and the policy names the JSON file.

Example:
    >>> cal = calibrate_scores([0.9, 0.2, 0.6, 0.4], [1, 0, 1, 0], [1, 1, 1, 1],
    ...                        target_quality=1.0)
    >>> cal.point.threshold, cal.point.strong_call_share
    (0.5, 0.5)
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paxis_router.calibration.datasets import quality
from paxis_router.calibration.knn import KnnScorer
from paxis_router.calibration.metrics import Curve, apgr, cpt, sweep
from paxis_router.calibration.scorer import LearnedScorer
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from paxis_router.calibration.datasets import Example
    from paxis_router.calibration.knn import Encoder
    from paxis_router.policy.predicates import Predicate, RouteState
    from paxis_router.pricing import Price
    from paxis_router.types import Verdict
    from paxis_router.verifiers.base import Verifier

__all__ = [
    "SCORER_KINDS",
    "Calibration",
    "KnnScorer",
    "LearnedScorer",
    "OperatingPoint",
    "calibrate",
    "calibrate_scores",
    "crossfit_scores",
    "example_costs",
    "score_below",
    "score_below_from_spec",
]

logger = logging.getLogger(__name__)
_MILLE = Decimal(1000)
SCORER_KINDS = ("learned", "knn", "mix")


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """One threshold's outcome on the calibration data (cross-fitted scores).

    ``quality_share`` is the router's quality over the strong model's; ``usd_per_1k`` is what
    1,000 requests cost (every request pays the worker; escalated ones pay the top tier too),
    None when a price is unknown.
    """

    threshold: float
    strong_call_share: float
    quality: float
    quality_share: float
    usd_per_1k: Decimal | None

    def to_dict(self) -> dict[str, float | str | None]:
        """JSON-able form (money as a string)."""
        return {
            "threshold": self.threshold,
            "strong_call_share": self.strong_call_share,
            "quality": self.quality,
            "quality_share": self.quality_share,
            "usd_per_1k": None if self.usd_per_1k is None else str(self.usd_per_1k),
        }


@dataclass(frozen=True)
class Calibration:
    """A fitted policy: the chosen point, the whole cost/quality frontier, RouteLLM metrics."""

    point: OperatingPoint
    frontier: tuple[OperatingPoint, ...]
    curve: Curve
    scorer: LearnedScorer | KnnScorer | None = None
    weak: str = ""
    strong: str = ""
    n: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def apgr(self) -> float:
        return apgr(self.curve)

    @property
    def cpt50(self) -> float | None:
        return cpt(self.curve, 0.5)

    @property
    def cpt80(self) -> float | None:
        return cpt(self.curve, 0.8)

    def summary(self) -> dict[str, Any]:  # Any: JSON values
        """The chosen point and the RouteLLM metrics, JSON-able."""
        return {
            "n": self.n,
            "weak": self.weak,
            "strong": self.strong,
            "weak_quality": self.curve.weak_quality,
            "strong_quality": self.curve.strong_quality,
            "point": self.point.to_dict(),
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "notes": list(self.notes),
        }

    def escalate_when(self, scorer_file: str | None = None) -> dict[str, Any]:  # Any: YAML
        """The ``escalate_when`` predicate in YAML form.

        A :class:`KnnScorer` is referred to by its file (``scorer_file``, written by its
        ``save``); a learned scorer is inline unless ``scorer_file`` is given.
        """
        if self.scorer is None:
            return {"confidence_below": self.point.threshold}
        scorer: object = scorer_file
        if scorer_file is None:
            if isinstance(self.scorer, KnnScorer):
                raise ConfigError("a kNN scorer is referred to by its file: save it, pass the path")
            scorer = self.scorer.to_dict()
        return {"score_below": {"threshold": self.point.threshold, "scorer": scorer}}


# --- costs ----------------------------------------------------------------------------------------


def example_costs(
    examples: Sequence[Example], model: str, price: Price | None
) -> list[Decimal | None]:
    """Each example's cost on ``model``: the recorded ``cost_usd``, else ``price`` × tokens."""
    out: list[Decimal | None] = []
    for example in examples:
        outcome = example.outcomes[model]
        if outcome.cost_usd is not None:
            out.append(outcome.cost_usd)
        elif price is None:
            out.append(None)
        else:
            out.append(price.cost(outcome.usage, 0.0))
    return out


# --- choosing a point -----------------------------------------------------------------------------


def _frontier(
    scores: NDArray[np.float64],
    weak_q: NDArray[np.float64],
    strong_q: NDArray[np.float64],
    weak_cost: Sequence[Decimal | None] | None,
    strong_cost: Sequence[Decimal | None] | None,
) -> list[OperatingPoint]:
    """One point per distinct threshold: escalate every example scoring below it."""
    n = len(scores)
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    gain = (strong_q - weak_q)[order]
    strong_mean = float(strong_q.mean())
    base = float(weak_q.mean())
    known = (
        weak_cost is not None
        and strong_cost is not None
        and all(c is not None for c in weak_cost)
        and all(c is not None for c in strong_cost)
    )
    weak_total = sum((c for c in weak_cost or () if c is not None), Decimal(0))
    strong_sorted = [strong_cost[i] for i in order] if known and strong_cost else []
    points = []
    cum_gain = 0.0
    cum_strong = Decimal(0)
    k = 0
    cuts = [*np.flatnonzero(s[1:] != s[:-1]).tolist(), n - 1]
    thresholds = [float(s[0]) - 1e-9]
    for cut in cuts:
        nxt = float(s[cut + 1]) if cut + 1 < n else float(s[cut]) + 1e-9
        thresholds.append((float(s[cut]) + nxt) / 2 if cut + 1 < n else nxt)
    for t_index, threshold in enumerate(thresholds):
        if t_index > 0:
            end = cuts[t_index - 1] + 1
            cum_gain += float(gain[k:end].sum())
            if known:
                cum_strong += sum((c for c in strong_sorted[k:end] if c is not None), Decimal(0))
            k = end
        q = base + cum_gain / n
        usd = (weak_total + cum_strong) * _MILLE / n if known else None
        points.append(
            OperatingPoint(
                threshold=threshold,
                strong_call_share=k / n,
                quality=q,
                quality_share=q / strong_mean if strong_mean else float("nan"),
                usd_per_1k=None if usd is None else usd.quantize(Decimal("0.000001")),
            )
        )
    return points


def _choose(
    points: Sequence[OperatingPoint],
    *,
    target_quality: float | None,
    max_usd_per_1k: Decimal | None,
    max_escalation: float | None,
) -> tuple[OperatingPoint, list[str]]:
    given = [x is not None for x in (target_quality, max_usd_per_1k, max_escalation)]
    if sum(given) != 1:
        raise ConfigError(
            "give exactly one target: target_quality, max_usd_per_1k or max_escalation"
        )
    notes: list[str] = []
    if target_quality is not None:
        ok = [p for p in points if p.quality_share >= target_quality - 1e-12]
        if ok:
            return min(ok, key=lambda p: p.strong_call_share), notes
        best = max(points, key=lambda p: p.quality_share)
        notes.append(
            f"target quality {target_quality:.3f} of the top tier is unreachable on this data; "
            f"chose the best point ({best.quality_share:.3f})"
        )
        return best, notes
    if max_usd_per_1k is not None:
        if any(p.usd_per_1k is None for p in points):
            raise ConfigError("a --max-usd-per-1k target needs known prices for both models")
        ok = [p for p in points if p.usd_per_1k is not None and p.usd_per_1k <= max_usd_per_1k]
        if not ok:
            notes.append(f"even the worker alone costs more than ${max_usd_per_1k} per 1,000")
            return points[0], notes
        return max(ok, key=lambda p: (p.strong_call_share, p.quality)), notes
    assert max_escalation is not None
    ok = [p for p in points if p.strong_call_share <= max_escalation + 1e-12]
    return max(ok, key=lambda p: p.strong_call_share), notes


def calibrate_scores(
    scores: Sequence[float],
    weak_quality: Sequence[float],
    strong_quality: Sequence[float],
    *,
    target_quality: float | None = None,
    max_usd_per_1k: Decimal | None = None,
    max_escalation: float | None = None,
    weak_cost: Sequence[Decimal | None] | None = None,
    strong_cost: Sequence[Decimal | None] | None = None,
) -> Calibration:
    """Pick a threshold on given per-example scores (higher = keep the worker's answer).

    Exactly one target: ``target_quality`` (router quality ≥ this share of the strong model's),
    ``max_usd_per_1k`` (the most escalation within this spend) or ``max_escalation`` (the most
    escalation within this share of requests). Escalate when ``score < point.threshold``.
    """
    s = np.asarray(scores, dtype=float)
    w = np.asarray(weak_quality, dtype=float)
    g = np.asarray(strong_quality, dtype=float)
    if len(w) and float(w.mean()) == float(g.mean()):
        raise ConfigError(
            "the two models have the same quality on this data: there is no gap to calibrate for"
        )
    points = _frontier(s, w, g, weak_cost, strong_cost)
    point, notes = _choose(
        points,
        target_quality=target_quality,
        max_usd_per_1k=max_usd_per_1k,
        max_escalation=max_escalation,
    )
    return Calibration(
        point=point,
        frontier=tuple(points),
        curve=sweep(s, w, g),
        n=len(s),
        notes=tuple(notes),
    )


# --- the learned scorer ---------------------------------------------------------------------------


def _folds(n: int, folds: int, groups: Sequence[str] | None, seed: int) -> NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    if groups is None:
        return np.asarray(rng.permutation(n) % folds, dtype=np.int64)
    names = sorted(set(groups))
    if len(names) < folds:
        raise ConfigError(f"group cross-fitting needs at least {folds} groups, got {len(names)}")
    shuffled = [names[i] for i in rng.permutation(len(names))]
    fold_of = {name: i % folds for i, name in enumerate(shuffled)}
    return np.asarray([fold_of[g] for g in groups], dtype=np.int64)


def worker_verdicts(
    examples: Sequence[Example], weak: str, verifiers: Sequence[Verifier]
) -> list[tuple[Verdict, ...]]:
    """The verdicts ``verifiers`` give each example's worker answer (the scorer's inputs)."""
    if not verifiers:
        return [() for _ in examples]
    from paxis_router.types import ChatRequest, Completion

    async def one(example: Example) -> tuple[Verdict, ...]:
        request = ChatRequest.from_text(example.prompt)
        completion = Completion(example.outcomes[weak].response, weak)
        return tuple([await v.verify(request, completion) for v in verifiers])

    async def run() -> list[tuple[Verdict, ...]]:
        return list(await asyncio.gather(*(one(e) for e in examples)))

    return asyncio.run(run())


def _labels(
    examples: Sequence[Example], weak: str, strong: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w = np.asarray([quality(e.outcomes[weak]) for e in examples], dtype=float)
    g = np.asarray([quality(e.outcomes[strong]) for e in examples], dtype=float)
    return w, g


def _unit(values: NDArray[np.float64], other: NDArray[np.float64]) -> NDArray[np.float64]:
    """Labels in 0..1 for the logistic heads (scores are scaled by the joint range)."""
    lo = min(float(values.min()), float(other.min()))
    hi = max(float(values.max()), float(other.max()))
    if lo >= 0.0 and hi <= 1.0:
        return values
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def crossfit_scores(
    examples: Sequence[Example],
    *,
    weak: str,
    strong: str,
    folds: int = 5,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    verifiers: Sequence[Verifier] = (),
    buckets: int = 1024,
    scorer: str = "learned",
    encoder: str = "minilm",
    encode: Encoder | None = None,
    neighbours: int = 50,
    temperature: float = 10.0,
) -> NDArray[np.float64]:
    """Every example's score from a scorer fitted without it (K folds, or whole groups held out).

    ``scorer``: ``learned`` (default), ``knn`` or ``mix`` (see :func:`calibrate`).

    Example:
        >>> crossfit_scores(examples, weak="w", strong="s")  # doctest: +SKIP
    """
    w, g = _labels(examples, weak, strong)
    fold = _folds(len(examples), folds, groups, seed)
    knn = _KnnSpec(scorer, encoder, encode, neighbours, temperature)
    verdicts = worker_verdicts(examples, weak, verifiers) if scorer != "knn" else None
    scores, _ = _crossfit(examples, weak, w, g, fold, verdicts, buckets, knn, refit=False)
    return scores


@dataclass(frozen=True)
class _KnnSpec:
    kind: str
    encoder: str
    encode: Encoder | None
    neighbours: int
    temperature: float


def _crossfit(
    examples: Sequence[Example],
    weak: str,
    w: NDArray[np.float64],
    g: NDArray[np.float64],
    fold: NDArray[np.int64],
    verdicts: Sequence[tuple[Verdict, ...]] | None,
    buckets: int,
    knn: _KnnSpec,
    *,
    refit: bool = True,
) -> tuple[NDArray[np.float64], LearnedScorer | KnnScorer | None]:
    """Cross-fitted scores of the chosen kind, and the scorer refitted on every example
    (None when not ``refit``)."""
    from paxis_router.calibration.fit import fit, prepare, score_rows
    from paxis_router.calibration.knn import crossfit_neighbours, embed_prompts, encoder_by_name

    if knn.kind not in SCORER_KINDS:
        raise ConfigError(f"unknown scorer kind {knn.kind!r}; expected one of {SCORER_KINDS}")
    wu, gu = _unit(w, g), _unit(g, w)
    prompts = [e.prompt for e in examples]
    scores = np.zeros(len(examples))
    learned: LearnedScorer | None = None
    if knn.kind != "knn":
        design = prepare(
            prompts, [e.outcomes[weak].response for e in examples], verdicts, buckets=buckets
        )
        for k in np.unique(fold).tolist():
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            scores[test] = score_rows(fit(design, train, wu, gu), design, test)
        learned = fit(design, np.arange(len(examples)), wu, gu) if refit else None
        if knn.kind == "learned":
            return scores, learned
    encode = knn.encode or encoder_by_name(knn.encoder, source="calibrate")
    embeddings = embed_prompts(encode, prompts)
    values = wu - gu
    near = crossfit_neighbours(
        embeddings, values, fold, k=knn.neighbours, temperature=knn.temperature
    )
    if knn.kind == "mix":
        near = (scores + near) / 2.0
    if not refit:
        return near, None
    final = KnnScorer(
        embeddings,
        values,
        k=knn.neighbours,
        temperature=knn.temperature,
        encoder=knn.encoder,
        learned=learned,
        weights=(1.0, 0.0) if learned is None else (0.5, 0.5),
        encode=encode,
    )
    return near, final


def calibrate(
    examples: Sequence[Example],
    *,
    weak: str,
    strong: str,
    target_quality: float | None = None,
    max_usd_per_1k: Decimal | None = None,
    max_escalation: float | None = None,
    weak_price: Price | None = None,
    strong_price: Price | None = None,
    verifiers: Sequence[Verifier] = (),
    folds: int = 5,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    buckets: int = 1024,
    verdicts: Sequence[tuple[Verdict, ...]] | None = None,
    scorer: str = "learned",
    encoder: str = "minilm",
    encode: Encoder | None = None,
    neighbours: int = 50,
    temperature: float = 10.0,
) -> Calibration:
    """Fit a learned escalation scorer and the threshold that meets one target.

    The threshold is chosen on cross-fitted scores (see :func:`crossfit_scores`); the returned
    ``scorer`` is refitted on all examples. ``verifiers`` run on the worker's answers and their
    verdicts become features — the policy must run the same verifiers. ``verdicts`` (one tuple
    per example, e.g. as recorded in a ledger) replaces running ``verifiers``.

    ``scorer="knn"`` fits a :class:`KnnScorer` instead: each query's ``neighbours`` most similar
    training queries (embedded by the ``encoder`` named, or by ``encode``), weighted by
    ``exp(temperature * cosine)``; cross-fitted, a row's neighbours come from the other folds
    only. ``scorer="mix"`` is the mean of that and the learned scorer.

    Example:
        >>> cal = calibrate(examples, weak="w", strong="s", target_quality=0.95)  # doctest: +SKIP
        >>> cal.point.strong_call_share  # doctest: +SKIP
    """
    if len(examples) < 2 * folds:
        raise ConfigError(f"calibration needs at least {2 * folds} examples, got {len(examples)}")
    w, g = _labels(examples, weak, strong)
    if verdicts is None and scorer != "knn":
        verdicts = worker_verdicts(examples, weak, verifiers)
    fold = _folds(len(examples), folds, groups, seed)
    knn = _KnnSpec(scorer, encoder, encode, neighbours, temperature)
    scores, final = _crossfit(examples, weak, w, g, fold, verdicts, buckets, knn)
    base = calibrate_scores(
        scores.tolist(),
        w.tolist(),
        g.tolist(),
        target_quality=target_quality,
        max_usd_per_1k=max_usd_per_1k,
        max_escalation=max_escalation,
        weak_cost=example_costs(examples, weak, weak_price),
        strong_cost=example_costs(examples, strong, strong_price),
    )
    return Calibration(
        point=base.point,
        frontier=base.frontier,
        curve=base.curve,
        scorer=final,
        weak=weak,
        strong=strong,
        n=len(examples),
        notes=base.notes,
    )


# --- the policy predicate -------------------------------------------------------------------------


def score_below(scorer: LearnedScorer | KnnScorer, threshold: float) -> Predicate:
    """True when the last answer's learned score is below ``threshold`` (escalate).

    Never true on the ladder's last tier (there is nowhere to escalate to); true for a failed
    call. The scorer reads the request's last user message, the answer and the verdicts.

    Example:
        >>> from paxis_router.testing import make_state
        >>> score_below(LearnedScorer.constant(0.3), 0.5)(make_state(tier_index=0))
        True
    """

    def predicate(state: RouteState) -> bool:
        last = state.last
        if state.tier_index >= state.n_tiers - 1:
            return False
        if last is None or last.completion is None:
            return True
        value = scorer.score(state.request.query, last.completion.content, last.verdicts)
        return value < threshold

    predicate.__name__ = f"score_below({threshold:.4g})"
    return predicate


def load_scorer(spec: object, *, encode: Encoder | None = None) -> LearnedScorer | KnnScorer:
    """A scorer from its inline mapping or from a JSON file path.

    Either format: ``paxis-scorer/1`` (:class:`LearnedScorer`) or ``paxis-knn-scorer/2`` (or 1)
    (:class:`KnnScorer`, whose ``data`` is read relative to its file, or to the working
    directory when inline). ``encode`` replaces a kNN scorer's named encoder.
    """
    KNN_FAMILY = "paxis-knn-scorer/"  # any version: KnnScorer names the ones it reads

    base, source, data = Path.cwd(), "score_below.scorer", spec
    if isinstance(spec, str | Path):
        path = Path(spec)
        base, source = path.parent, str(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read scorer: {exc}", source=str(path)) from exc
    if isinstance(data, dict) and str(data.get("format", "")).startswith(KNN_FAMILY):
        return KnnScorer.from_dict(data, base=base, source=source, encode=encode)
    return LearnedScorer.from_dict(data, source=source)


def score_below_from_spec(spec: object) -> Predicate:
    """``score_below: {threshold: T, scorer: {...} | path}`` -> the predicate (for YAML)."""
    if not isinstance(spec, dict) or set(spec) != {"threshold", "scorer"}:
        raise ValueError("score_below takes {threshold: number, scorer: mapping or path}")
    threshold = float(spec["threshold"])
    return score_below(load_scorer(spec["scorer"]), threshold)


def find_score_below(spec: object) -> Mapping[str, Any] | None:  # Any: YAML
    """The first ``score_below`` argument inside a predicate's YAML form, if any."""
    if isinstance(spec, dict):
        if "score_below" in spec:
            found: Mapping[str, Any] = spec["score_below"]
            return found
        for value in spec.values():
            inner = find_score_below(value)
            if inner is not None:
                return inner
    if isinstance(spec, list):
        for item in spec:
            inner = find_score_below(item)
            if inner is not None:
                return inner
    return None
