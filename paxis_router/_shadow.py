"""Shadow sampling: on a small, seeded share of routes the worker answered alone, also ask the
next tier, so labelled history holds both tiers' answers on an unbiased sample (for
``paxis calibrate --ledger``).

A route is sampled when a hash of its ``request_id`` and the seed falls below the rate, so the
choice is reproducible and independent of the answer (unbiased). The shadow call runs after the
route's answer is decided and never changes it; it is recorded as its own ledger row with
decision ``shadow`` and ``final`` False, at its real cost (reports count it in spend, never in
the counterfactual or as the route's answer). The gate still decides: a tier the request may not
reach (e.g. sovereign data and a frontier provider) is never called; a spent team budget, an
open breaker or a context window too small also skip the shadow call.

Example:
    >>> ShadowSampling(rate=1.0).sampled("req-1"), ShadowSampling(rate=0.0).sampled("req-1")
    (True, False)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError
from paxis_router.resilience import NOT_CALLED
from paxis_router.types import Decision

if TYPE_CHECKING:
    from paxis_router.router import Router
    from paxis_router.skills.model import Skill
    from paxis_router.types import Attempt, ChatRequest

logger = logging.getLogger(__name__)

_NOT_CALLED = frozenset({"GateDenied", *(e.__name__ for e in NOT_CALLED)})
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class ShadowSampling:
    """Which routes get a shadow call: ``rate`` of them (0..1), chosen by a hash of the
    request id and ``seed``.

    Example:
        >>> s = ShadowSampling(rate=0.5, seed=7)
        >>> s.sampled("req-42") == ShadowSampling(rate=0.5, seed=7).sampled("req-42")
        True
    """

    rate: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"shadow_rate must be in [0, 1], got {self.rate}")

    def sampled(self, request_id: str) -> bool:
        """True when the route of ``request_id`` is in the shadow sample."""
        if self.rate >= 1.0:
            return True
        digest = hashlib.blake2b(
            f"{self.seed}:{request_id}".encode(), digest_size=8, person=b"paxis-shadow"
        ).digest()
        return int.from_bytes(digest, "big") / _SCALE < self.rate


async def shadow_call(
    router: Router,
    *,
    request: ChatRequest,
    prepared: ChatRequest,
    route_id: str,
    accepted: Attempt,
    attempt_index: int,
    skill_ids: tuple[str, ...],
    skill: Skill | None,
    window_floor: int | None,
) -> Attempt | None:
    """Call the tier above the accepted one and record it as a ``shadow`` row; the recorded
    attempt, or None when it was not called (gate denied, budget spent, breaker open). A failed
    call is recorded like any failed attempt (a rejection is a value); ledger and audit errors
    propagate, as on the route's own attempts (lost cost data is a bug)."""
    index = accepted.tier_index + 1
    tier = router.tiers[index]
    budgets = router.budgets
    if budgets is not None and budgets.exhausted(request.team) is not None:
        return None
    attempt = await router._attempt(tier, index, prepared, skill, window_floor)
    if attempt.error_type in _NOT_CALLED:
        logger.debug(
            "shadow call to %s for route %s skipped: %s", tier.name, route_id, attempt.error
        )
        return None
    rate = router.shadow.rate if router.shadow is not None else 1.0
    attempt = replace(
        attempt,
        decision=Decision.SHADOW,
        reason=f"shadow: calibration sample (rate {rate:g}); the answer of {accepted.tier} stands",
    )
    router._record(prepared, route_id, attempt_index, attempt, skill_ids, False, False)
    router._audit_route(request, route_id, tier, attempt, False)
    return attempt
