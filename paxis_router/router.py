"""The Router: select -> gate -> worker -> verify -> policy -> escalate -> record.

Only this module knows the order of the steps. Every attempt, accepted or rejected, becomes one
ledger row before the router moves on, so a crash later in the route loses nothing recorded.

Example:
    >>> from paxis_router.testing import FakeWorker
    >>> from paxis_router.verifiers import RegexVerifier
    >>> router = Router(
    ...     tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
    ...     verifiers=[RegexVerifier(must_match=r"\\d")],
    ... )
    >>> result = router.route_sync(ChatRequest.from_text("6*7?", team="claims"))
    >>> result.content, result.tier, result.escalated
    ('42', 'frontier:f', True)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError, EscalationExhausted, PaxisError, WorkerError
from paxis_router.ledger.base import LedgerSink
from paxis_router.policy import EscalationPolicy, Predicate, RouteState
from paxis_router.types import (
    Attempt,
    CallRecord,
    ChatRequest,
    Completion,
    Decision,
    RouteResult,
    Usage,
    Verdict,
    new_id,
    utc_now,
)
from paxis_router.workers.base import Tier, Worker, as_tier

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from paxis_router.skills.model import Skill, SkillMatch, SkillSelector
    from paxis_router.verifiers.base import Verifier

logger = logging.getLogger(__name__)

_UNAVAILABLE_ERRORS = frozenset({"WorkerUnavailable", "WorkerTimeout"})


class Router:
    """Routes a request up a ladder of tiers until an answer passes the policy.

    Args:
        tiers: the ladder, cheapest first (workers or ``Tier``s); at least one.
        verifiers: judge each answer; all run concurrently.
        policy: an ``EscalationPolicy``, a confidence threshold (``0.7``), or a predicate.
        ledger: where each attempt is recorded (one sink or several); None records nothing.
        skills: a skill library; its top ``skills_k`` matches go into the system prompt.
        skills_k: how many skills to put in the prompt.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        tiers: Sequence[Worker | Tier],
        verifiers: Sequence[Verifier] = (),
        policy: EscalationPolicy | float | Predicate | None = None,
        ledger: LedgerSink | Sequence[LedgerSink] | None = None,
        skills: SkillSelector | None = None,
        skills_k: int = 3,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if not tiers:
            raise ConfigError("a Router needs at least one tier")
        self.tiers: tuple[Tier, ...] = tuple(as_tier(t) for t in tiers)
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"tier names must be unique, got {names}")
        self.verifiers: tuple[Verifier, ...] = tuple(verifiers)
        self.policy = EscalationPolicy.coerce(policy)
        if ledger is None:
            self.sinks: tuple[LedgerSink, ...] = ()
        elif isinstance(ledger, LedgerSink):
            self.sinks = (ledger,)
        else:
            self.sinks = tuple(ledger)
        self.skills = skills
        self.skills_k = skills_k
        self._clock = clock

    # --- public API ---------------------------------------------------------------------------

    async def route(self, request: ChatRequest) -> RouteResult:
        """Route one request. Raises EscalationExhausted when no tier gave an acceptable answer
        (unless the policy says ``return_best``); every attempt is in the ledger either way."""
        route_id = new_id()
        matches = self._select_skills(request)
        skill_ids = tuple(m.skill.id for m in matches)
        top_skill = matches[0].skill if matches else None
        prepared = request.with_system(_render_skills(matches))
        attempts: list[Attempt] = []
        spent = Decimal(0)
        unpriced = 0
        n_tiers = len(self.tiers)

        for index, tier in enumerate(self.tiers):
            attempt = await self._attempt(tier, index, prepared, top_skill)
            if attempt.cost_usd is None:
                unpriced += 1
            else:
                spent += attempt.cost_usd
            state = RouteState(
                request=request,
                attempts=(*attempts, attempt),
                tier_index=index,
                n_tiers=n_tiers,
                spent_usd=spent,
                skills=skill_ids,
                unpriced_attempts=unpriced,
            )
            decision, reason = self._decide(state)
            attempt = _with_decision(attempt, decision, reason)
            attempts.append(attempt)
            final = decision is not Decision.ESCALATE
            degraded = any(a.error_type in _UNAVAILABLE_ERRORS for a in attempts)
            self._record(request, route_id, len(attempts) - 1, attempt, skill_ids, final, degraded)
            if final:
                cost = None if unpriced else spent
                return self._finish(request, route_id, tuple(attempts), skill_ids, cost, degraded)
        raise AssertionError("unreachable: the last tier always ends the route")  # pragma: no cover

    def route_sync(self, request: ChatRequest) -> RouteResult:
        """``route`` for synchronous callers (runs its own event loop)."""
        return asyncio.run(self.route(request))

    async def route_many(
        self,
        requests: Iterable[ChatRequest],
        *,
        concurrency: int = 8,
        progress: bool = False,
        description: str = "routing",
    ) -> list[RouteResult | PaxisError]:
        """Route a batch with at most ``concurrency`` routes in flight, results in input order.

        A route that fails yields its PaxisError in its slot; the others go on.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        batch = list(requests)
        results: list[RouteResult | PaxisError | None] = [None] * len(batch)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int, request: ChatRequest, advance: Callable[[], None]) -> None:
            async with semaphore:
                try:
                    results[i] = await self.route(request)
                except PaxisError as exc:
                    results[i] = exc
                advance()

        if progress:
            from rich.progress import Progress

            with Progress(transient=False) as bar:
                task = bar.add_task(description, total=len(batch))
                await asyncio.gather(
                    *(one(i, r, lambda: bar.advance(task)) for i, r in enumerate(batch))
                )
        else:
            await asyncio.gather(*(one(i, r, lambda: None) for i, r in enumerate(batch)))
        return [r for r in results if r is not None]

    # --- steps --------------------------------------------------------------------------------

    def _select_skills(self, request: ChatRequest) -> Sequence[SkillMatch]:
        if self.skills is None:
            return ()
        return self.skills.select(request.query, k=self.skills_k)

    async def _attempt(
        self, tier: Tier, index: int, request: ChatRequest, skill: Skill | None
    ) -> Attempt:
        started_at = utc_now()
        t0 = self._clock()
        completion: Completion | None = None
        error: WorkerError | None = None
        try:
            completion = await tier.worker.complete(request, skill)
        except WorkerError as exc:
            error = exc
            logger.warning("tier %s failed: %s", tier.name, exc)
        latency_s = self._clock() - t0
        verdicts = await self._verify(request, completion) if completion is not None else ()
        return Attempt(
            tier=tier.name,
            tier_index=index,
            model=completion.model if completion else _model_of(tier),
            started_at=started_at,
            latency_s=latency_s,
            completion=completion,
            error=str(error) if error else None,
            error_type=type(error).__name__ if error else None,
            verdicts=verdicts,
            cost_usd=_attempt_cost(tier, completion, latency_s),
        )

    async def _verify(self, request: ChatRequest, completion: Completion) -> tuple[Verdict, ...]:
        if not self.verifiers:
            return ()
        if len(self.verifiers) == 1:
            return (await _safe_verify(self.verifiers[0], request, completion),)
        return tuple(
            await asyncio.gather(*(_safe_verify(v, request, completion) for v in self.verifiers))
        )

    def _decide(self, state: RouteState) -> tuple[Decision, str]:
        last = state.last
        assert last is not None
        policy = self.policy
        if last.completion is None:
            why = f"{last.error_type}: {last.error}"
            if state.tier_index >= state.n_tiers - 1 or policy.stop_when(state):
                return Decision.STOP, f"stop: {why}"
            return Decision.ESCALATE, f"escalate: {why}"
        if not policy.escalate_when(state):
            return Decision.ACCEPT, f"accept: {_describe_pass(state)}"
        why = _describe_failure(state)
        if policy.stop_when(state):
            return Decision.STOP, f"stop: {why}; {policy.stop_when.__name__}"
        return Decision.ESCALATE, f"escalate: {why}"

    def _record(
        self,
        request: ChatRequest,
        route_id: str,
        attempt_index: int,
        attempt: Attempt,
        skill_ids: tuple[str, ...],
        final: bool,
        degraded: bool,
    ) -> None:
        if not self.sinks:
            return
        usage = attempt.usage
        completion = attempt.completion
        entry = CallRecord(
            route_id=route_id,
            request_id=request.request_id,
            attempt_index=attempt_index,
            ts=attempt.started_at,
            tier=attempt.tier,
            tier_index=attempt.tier_index,
            model=attempt.model,
            decision=attempt.decision,
            reason=attempt.reason,
            final=final,
            team=request.team,
            skill=",".join(skill_ids) or None,
            data_class=request.data_class,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_s=attempt.latency_s,
            cost_usd=attempt.cost_usd,
            counterfactual_usd=self._counterfactual(attempt) if final else None,
            verdicts=attempt.verdicts,
            passed=attempt.passed,
            error=attempt.error,
            error_type=attempt.error_type,
            finish_reason=completion.finish_reason if completion else None,
            degraded=degraded and final,
        )
        for sink in self.sinks:
            sink.record(entry)

    def _counterfactual(self, attempt: Attempt) -> Decimal | None:
        """What this attempt's tokens would have cost on the ladder's top tier."""
        top = self.tiers[-1]
        if attempt.tier_index == len(self.tiers) - 1:
            return attempt.cost_usd
        if top.price is None or attempt.usage is None:
            return None
        return top.price.cost(attempt.usage, attempt.latency_s)

    def _finish(
        self,
        request: ChatRequest,
        route_id: str,
        attempts: tuple[Attempt, ...],
        skill_ids: tuple[str, ...],
        spent: Decimal | None,
        degraded: bool,
    ) -> RouteResult:
        last = attempts[-1]
        chosen = last
        accepted = last.decision is Decision.ACCEPT
        if not accepted:
            answered = [a for a in attempts if a.completion is not None]
            if not answered or self.policy.on_exhausted == "raise":
                raise EscalationExhausted(
                    f"no tier gave an acceptable answer after {len(attempts)} attempt(s); "
                    f"last: {last.reason}. The attempts are in .attempts and in the ledger.",
                    attempts=attempts,
                    request_id=request.request_id,
                )
            chosen = max(answered, key=lambda a: (sum(v.passed for v in a.verdicts), a.tier_index))
        assert chosen.completion is not None
        return RouteResult(
            route_id=route_id,
            request_id=request.request_id,
            completion=chosen.completion,
            tier=chosen.tier,
            attempts=attempts,
            decision=last.decision,
            reason=last.reason,
            cost_usd=spent,
            counterfactual_usd=self._counterfactual(chosen),
            skills=skill_ids,
            degraded=degraded,
            accepted=accepted,
        )


# --- helpers ------------------------------------------------------------------------------------


async def _safe_verify(verifier: Verifier, request: ChatRequest, completion: Completion) -> Verdict:
    try:
        return await verifier.verify(request, completion)
    except Exception as exc:  # user-supplied verifier code: a crash is a rejection, not a lost row
        logger.exception("verifier %s raised", verifier.name)
        return Verdict(verifier.name, False, None, f"verifier raised {type(exc).__name__}: {exc}")


def _attempt_cost(tier: Tier, completion: Completion | None, latency_s: float) -> Decimal | None:
    if tier.price is None:
        return None
    if completion is None:
        # A failed call: providers bill no tokens; a local GPU still held its time.
        return tier.price.cost(Usage(0, 0), latency_s)
    return tier.price.cost(completion.usage, latency_s)


def _model_of(tier: Tier) -> str:
    return str(getattr(tier.worker, "model", tier.name))


def _with_decision(attempt: Attempt, decision: Decision, reason: str) -> Attempt:
    return replace(attempt, decision=decision, reason=reason)


def _describe_pass(state: RouteState) -> str:
    n = len(state.verdicts)
    confidence = state.confidence
    text = f"{n} verifier(s) passed" if n else "no verifiers"
    if confidence is not None:
        text += f", confidence {confidence:.3f}"
    return text


def _describe_failure(state: RouteState) -> str:
    failed = [v for v in state.verdicts if not v.passed]
    if failed:
        return "; ".join(
            f"{v.verifier} failed ({v.reason})" if v.reason else v.verifier for v in failed
        )
    confidence = state.confidence
    if confidence is not None:
        return f"confidence {confidence:.3f} too low"
    return "policy asked to escalate"


def _render_skills(matches: Sequence[SkillMatch]) -> str:
    if not matches:
        return ""
    parts = ["Use these skills where they apply."]
    for match in matches:
        skill = match.skill
        parts.append(f"## Skill: {skill.name}\n{skill.description}\n\n{skill.body()}".rstrip())
    return "\n\n".join(parts)
