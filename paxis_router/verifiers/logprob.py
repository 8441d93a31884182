"""LogprobConfidenceVerifier: the worker's own token probabilities must be high enough."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from paxis_router.types import Verdict

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion

MissingLogprobs = Literal["fail", "pass"]


class LogprobConfidenceVerifier:
    """Judges an answer by its token probabilities (``completion.token_logprobs``).

    Passes when the mean token probability (exp of the mean log-probability) is at least
    ``min_mean_prob`` and every token's probability is at least ``min_token_prob`` (either
    threshold may be None to skip it). ``score`` is the mean probability. Without logprobs the
    verdict fails (``missing="fail"``, the default) or passes with no score (``missing="pass"``);
    ask the worker for them with ``ChatRequest(logprobs=True)``. A logprob that is not a
    log-probability (NaN, infinite, above 0) fails the verdict with score 0, naming the token.

    Example:
        >>> import asyncio, math
        >>> from paxis_router.types import ChatRequest, Completion
        >>> sure = Completion("42", "m", token_logprobs=(math.log(0.9), math.log(0.95)))
        >>> v = LogprobConfidenceVerifier(min_mean_prob=0.8)
        >>> asyncio.run(v.verify(ChatRequest.from_text("6*7?"), sure)).passed
        True
    """

    def __init__(
        self,
        *,
        min_mean_prob: float | None = 0.7,
        min_token_prob: float | None = None,
        missing: MissingLogprobs = "fail",
        name: str = "logprob_confidence",
    ):
        for label, value in (("min_mean_prob", min_mean_prob), ("min_token_prob", min_token_prob)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if missing not in ("fail", "pass"):
            raise ValueError(f"missing must be 'fail' or 'pass', got {missing!r}")
        self.name = name
        self.min_mean_prob = min_mean_prob
        self.min_token_prob = min_token_prob
        self.missing = missing

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        logprobs = completion.token_logprobs
        if not logprobs:
            if self.missing == "pass":
                return Verdict(self.name, True, None, "no logprobs returned; passed as configured")
            return Verdict(
                self.name,
                False,
                None,
                "logprobs are missing: request them (ChatRequest.logprobs=True) from a backend "
                "that returns them, or set missing='pass'",
            )
        for index, logprob in enumerate(logprobs):
            if not (math.isfinite(logprob) and logprob <= 0.0):
                return Verdict(
                    self.name,
                    False,
                    0.0,
                    f"token {index} has logprob {logprob!r}, which is not a log-probability "
                    "(finite and <= 0): the backend's logprobs cannot be trusted",
                )
        mean_prob = math.exp(sum(logprobs) / len(logprobs))
        min_index = min(range(len(logprobs)), key=logprobs.__getitem__)
        min_prob = math.exp(logprobs[min_index])
        problems = []
        if self.min_mean_prob is not None and mean_prob < self.min_mean_prob:
            problems.append(f"mean token probability {mean_prob:.3f} < {self.min_mean_prob}")
        if self.min_token_prob is not None and min_prob < self.min_token_prob:
            problems.append(
                f"token {min_index} has probability {min_prob:.3f} < {self.min_token_prob}"
            )
        if problems:
            return Verdict(self.name, False, mean_prob, "; ".join(problems))
        return Verdict(
            self.name,
            True,
            mean_prob,
            f"mean token probability {mean_prob:.3f}, lowest {min_prob:.3f}",
        )
