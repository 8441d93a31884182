"""The learned escalation scorer: logistic heads over answer features and hashed TF-IDF text.

A scorer is plain data (JSON / YAML): the feature names with their standardisation, the hashed
text vocabulary's IDF per text field, and one or two logistic-regression heads. ``weak``
estimates P(the worker's answer is good | query, answer); the optional ``strong`` head
estimates P(the top tier would be good | the same signals). The score is
``P(weak good) - P(strong good)``: minus the expected gain of escalating, so the lowest scores
are escalated first. Scoring needs only numpy-free Python; fitting needs scikit-learn
(extra ``[calibrate]``).
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paxis_router.calibration.features import FEATURE_NAMES, answer_features
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from paxis_router.types import Verdict

FORMAT = "paxis-scorer/1"
TEXT_FIELDS = ("prompt", "response")
_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")


def hashed_counts(text: str, buckets: int) -> dict[int, float]:
    """Sublinear term frequencies of unigrams and bigrams, hashed (CRC-32) into ``buckets``."""
    tokens = _TOKEN.findall(text.lower())
    grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    counts: dict[int, int] = {}
    for gram in grams:
        bucket = zlib.crc32(gram.encode("utf-8")) % buckets
        counts[bucket] = counts.get(bucket, 0) + 1
    return {b: 1.0 + math.log(c) for b, c in counts.items()}


def tfidf(counts: Mapping[int, float], idf: Sequence[float]) -> dict[int, float]:
    """L2-normalised TF-IDF from hashed counts."""
    weighted = {b: tf * idf[b] for b, tf in counts.items()}
    norm = math.sqrt(sum(v * v for v in weighted.values())) or 1.0
    return {b: v / norm for b, v in weighted.items()}


CLIP = 5.0  # standardised features are clipped: a value far outside the fitted range says little


def _clip(value: float) -> float:
    return max(-CLIP, min(CLIP, value))


@dataclass(frozen=True)
class Head:
    """One logistic-regression head: ``sigmoid(intercept + hand·x + Σ text_f·tfidf_f)``."""

    intercept: float
    hand: tuple[float, ...]
    text: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class LearnedScorer:
    """A fitted escalation scorer; higher scores mean "keep the worker's answer".

    Example:
        >>> scorer = LearnedScorer.constant(0.7)
        >>> scorer.score("What is 2+2?", "#### 4")
        0.7
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    buckets: int
    idf: Mapping[str, tuple[float, ...]]
    weak: Head
    strong: Head | None = None

    @classmethod
    def constant(cls, p_weak: float) -> LearnedScorer:
        """A scorer that gives every answer the same score (a baseline, and for tests)."""
        logit = math.log(p_weak / (1.0 - p_weak))
        return cls((), (), (), 1, {}, Head(logit, (), {}))

    def probabilities(
        self, prompt: str, response: str, verdicts: Sequence[Verdict] = ()
    ) -> tuple[float, float | None]:
        """(P(weak good), P(strong good) or None without a strong head)."""
        raw = answer_features(prompt, response, verdicts) if self.features else {}
        x = [
            _clip((raw[name] - m) / s)
            for name, m, s in zip(self.features, self.mean, self.scale, strict=True)
        ]
        texts = {"prompt": prompt, "response": response}
        vectors = {
            field: tfidf(hashed_counts(texts[field], self.buckets), idf)
            for field, idf in self.idf.items()
        }

        def head(h: Head) -> float:
            z = h.intercept + sum(w * v for w, v in zip(h.hand, x, strict=True))
            for field, coef in h.text.items():
                z += sum(coef[b] * v for b, v in vectors[field].items())
            return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

        return head(self.weak), head(self.strong) if self.strong is not None else None

    def score(self, prompt: str, response: str, verdicts: Sequence[Verdict] = ()) -> float:
        """``P(weak good) - P(strong good)`` (just ``P(weak good)`` without a strong head)."""
        p_weak, p_strong = self.probabilities(prompt, response, verdicts)
        return p_weak - (p_strong if p_strong is not None else 0.0)

    # --- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:  # Any: JSON values
        """Plain JSON-able data (floats rounded to 6 significant digits)."""

        def r(values: Sequence[float]) -> list[float]:
            return [float(f"{v:.6g}") for v in values]

        def head(h: Head) -> dict[str, Any]:  # Any: JSON values
            return {
                "intercept": float(f"{h.intercept:.6g}"),
                "hand": r(h.hand),
                "text": {f: r(c) for f, c in h.text.items()},
            }

        out: dict[str, Any] = {  # Any: JSON values
            "format": FORMAT,
            "features": list(self.features),
            "mean": r(self.mean),
            "scale": r(self.scale),
            "buckets": self.buckets,
            "idf": {f: r(v) for f, v in self.idf.items()},
            "weak": head(self.weak),
        }
        if self.strong is not None:
            out["strong"] = head(self.strong)
        return out

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<scorer>") -> LearnedScorer:
        """Validate and build a scorer from its JSON form (errors: ConfigError naming the field)."""
        if not isinstance(data, Mapping):
            raise ConfigError("a scorer is a mapping (see paxis calibrate)", source=source)
        if data.get("format") != FORMAT:
            raise ConfigError(
                f"unknown scorer format {data.get('format')!r}; expected {FORMAT!r}",
                source=source,
                field="format",
            )
        try:
            features = tuple(str(f) for f in data["features"])
            unknown = [f for f in features if f not in FEATURE_NAMES]
            if unknown:
                raise ConfigError(f"unknown feature(s) {unknown}", source=source, field="features")
            buckets = int(data["buckets"])
            idf = {str(f): _floats(v) for f, v in data["idf"].items()}
            bad = [f for f in idf if f not in TEXT_FIELDS or len(idf[f]) != buckets]
            if bad:
                raise ConfigError(
                    f"text field(s) {bad}: expected {TEXT_FIELDS} with {buckets} values each",
                    source=source,
                    field="idf",
                )
            scorer = cls(
                features=features,
                mean=_floats(data["mean"]),
                scale=_floats(data["scale"]),
                buckets=buckets,
                idf=idf,
                weak=_head(data["weak"]),
                strong=_head(data["strong"]) if data.get("strong") is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed scorer: {exc!r}", source=source) from exc
        n = len(features)
        for name, h in (("weak", scorer.weak), ("strong", scorer.strong)):
            if h is None:
                continue
            if len(h.hand) != n or any(len(h.text.get(f, ())) != buckets for f in idf):
                raise ConfigError(
                    f"head sizes do not match {n} features and {buckets} buckets",
                    source=source,
                    field=name,
                )
        if len(scorer.mean) != n or len(scorer.scale) != n:
            raise ConfigError("mean/scale sizes do not match the features", source=source)
        return scorer


def _floats(values: Any) -> tuple[float, ...]:  # Any: parsed JSON
    return tuple(float(v) for v in values)


def _head(data: Any) -> Head:  # Any: parsed JSON
    return Head(
        intercept=float(data["intercept"]),
        hand=_floats(data["hand"]),
        text={str(f): _floats(v) for f, v in data.get("text", {}).items()},
    )
