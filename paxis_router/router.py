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
import functools
import logging
import time
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from paxis_router.errors import (
    BudgetExceeded,
    ConfigError,
    EscalationExhausted,
    PaxisError,
    PolicyDenied,
    WorkerError,
)
from paxis_router.governance.budgets import describe as describe_budget
from paxis_router.ledger.base import LedgerSink
from paxis_router.policy.predicates import EscalationPolicy, Predicate, RouteState
from paxis_router.shadow import DEFAULT_MAX_PENDING, ShadowBacklog, ShadowSampling, shadow_call
from paxis_router.skills.model import SkillMatch
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
from paxis_router.workers.resilience import (
    NOT_CALLED,
    UNAVAILABLE_ERRORS,
    OutagePolicy,
    call_tier,
    next_window_floor,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime
    from pathlib import Path

    from paxis_router.config.schema import RouterConfig
    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.budgets import Budget, Budgets
    from paxis_router.governance.gate import Gate, Screened
    from paxis_router.skills.model import Skill, SkillSelector
    from paxis_router.verifiers.base import Verifier

logger = logging.getLogger(__name__)

_UNAVAILABLE_ERRORS = UNAVAILABLE_ERRORS
_ShadowMode = Literal["inline", "skip", "wait"]


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
        gate: an action gate asked before each tier call: deny skips the tier (a zero-cost
            ledger row with error_type "GateDenied"), redact sends PII as placeholders.
        audit: a hash-chained audit log; gets every gate decision and routing decision.
        outage: per skill, serve the best lower-tier answer ``degraded`` or refuse when an
            upper tier is unavailable (default: degrade). A tier whose breaker is open is
            skipped as a zero-cost ``CircuitOpen`` attempt (see ``Tier.resilience``).
        budgets: team budgets (``paxis_router.governance.budgets``): a spent budget stops escalation
            (the answer so far, ``budget_capped``) or refuses (BudgetExceeded), as configured.
        shadow_rate: the share of routes whose accepted lower-tier answer is also sent to the
            next tier as a ``shadow`` ledger row, for ``paxis calibrate --ledger``; off (0) by
            default. Sampled by a hash of the request id and ``shadow_seed`` (reproducible,
            unbiased); the gate and budgets still apply; the answer returned never changes.
            The shadow call runs in the background: ``drain()`` awaits it (``route_many`` and
            ``aclose()`` drain for you; ``route_sync`` runs it inline); see
            ``paxis_router.shadow``.
        shadow_seed: the sampling seed.
        shadow_inline: run the shadow call inside the route instead (the sampled route waits
            for it); for tests and batch jobs.
        shadow_max_pending: at most this many background shadow calls at once; a sampled
            route that finds the backlog full is not shadowed, only counted in
            ``shadow_skipped``.
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
        gate: Gate | None = None,
        audit: AuditLog | None = None,
        outage: OutagePolicy | None = None,
        budgets: Budgets | None = None,
        shadow_rate: float = 0.0,
        shadow_seed: int = 0,
        shadow_inline: bool = False,
        shadow_max_pending: int = DEFAULT_MAX_PENDING,
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
        self.gate = gate
        self.audit = audit
        self.outage = outage or OutagePolicy()
        self.budgets = budgets
        if budgets is not None:
            self.sinks = (*self.sinks, budgets)  # it counts spend from the recorded attempts
        self.shadow = ShadowSampling(shadow_rate, shadow_seed) if shadow_rate else None
        self.shadow_inline = shadow_inline
        self._shadow_backlog = ShadowBacklog(shadow_max_pending)

    @classmethod
    def from_config(cls, cfg: RouterConfig, *, base_dir: str | Path | None = None) -> Router:
        """The Router a policy file describes (``paxis_router.config.schema``); ≡ the constructor.

        ``base_dir`` is where relative paths start (default: the policy file's folder).

        Example:
            >>> from paxis_router.config.schema import RouterConfig
            >>> cfg = RouterConfig.model_validate(
            ...     {"tiers": [{"kind": "litellm", "model": "gpt-4o"}], "verifiers": ["non_empty"]})
            >>> [t.name for t in Router.from_config(cfg).tiers]
            ['frontier:gpt-4o']
        """
        from paxis_router.config.schema import build_router

        return build_router(cfg, base_dir=base_dir)

    # --- public API ---------------------------------------------------------------------------

    async def route(self, request: ChatRequest) -> RouteResult:
        """Route one request. Raises EscalationExhausted when no tier gave an acceptable answer
        (unless the policy says ``return_best``); every attempt is in the ledger either way."""
        return await self._route(request, "inline" if self.shadow_inline else "skip")

    async def _route(self, request: ChatRequest, shadow_mode: _ShadowMode) -> RouteResult:
        """``route``, its shadow call (if sampled) run ``inline`` or in the background; there, a
        full backlog makes the route ``skip`` its sample or ``wait`` for room (``route_many``:
        a batch's caller waits for the whole batch anyway)."""
        route_id = new_id()
        if self.budgets is not None:
            self.budgets.check_start(request)
        matches = self._select_skills(request)
        skill_ids = tuple(m.skill.id for m in matches)
        top_skill = matches[0].skill if matches else None
        prepared = request.with_system(_render_skills(matches))
        attempts: list[Attempt] = []
        spent = Decimal(0)
        unpriced = 0
        n_tiers = len(self.tiers)
        window_floor: int | None = None  # the largest context window the prompt overflowed

        for index, tier in enumerate(self.tiers):
            attempt = await self._attempt(tier, index, prepared, top_skill, window_floor)
            window_floor = next_window_floor(window_floor, tier, attempt)
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
            cap = self._budget_cap(request, decision, attempt)
            if cap is not None:
                decision, reason = Decision.STOP, f"stop: budget: {describe_budget(cap)}"
            attempt = _with_decision(attempt, decision, reason)
            attempts.append(attempt)
            final = decision is not Decision.ESCALATE
            degraded = any(a.error_type in _UNAVAILABLE_ERRORS for a in attempts)
            capped = cap is not None
            self._record(
                prepared, route_id, len(attempts) - 1, attempt, skill_ids, final, degraded, capped
            )
            self._audit_route(request, route_id, tier, attempt, degraded and final)
            if final:
                cost = None if unpriced else spent
                if cap is not None and cap.on_exhausted == "refuse":
                    raise BudgetExceeded(
                        f"{describe_budget(cap)}; escalation refused. The attempts are in the "
                        "ledger.",
                        team=cap.team,
                        request_id=request.request_id,
                    )
                result = self._finish(
                    request, route_id, tuple(attempts), skill_ids, cost, degraded, capped
                )
                if (
                    self.shadow is not None
                    and decision is Decision.ACCEPT
                    and index + 1 < n_tiers
                    and self.shadow.sampled(request.request_id)
                ):
                    call = functools.partial(
                        shadow_call,
                        self,
                        request=request,
                        prepared=prepared,
                        route_id=route_id,
                        accepted=attempt,
                        attempt_index=len(attempts),
                        skill_ids=skill_ids,
                        skill=top_skill,
                        window_floor=window_floor,
                    )
                    if shadow_mode == "inline":
                        await call()
                    else:
                        await self._shadow_backlog.submit(
                            route_id, call, wait_for_room=shadow_mode == "wait"
                        )
                return result
        raise AssertionError("unreachable: the last tier always ends the route")  # pragma: no cover

    def route_sync(self, request: ChatRequest) -> RouteResult:
        """``route`` for synchronous callers. It runs its own event loop, which must outlive
        the route's shadow call, so a sampled route's shadow call runs inline here (the caller
        would wait for it either way; safe from several threads at once)."""
        return asyncio.run(self._route(request, "inline"))

    async def drain(self) -> None:
        """Wait for every background shadow call to finish and be recorded.

        Call it before the event loop closes (``route_many`` and ``aclose`` do). A shadow
        call's ledger or audit error (logged at ERROR when it happens) is re-raised here; a
        shadow tier's own failure is a recorded attempt, not an error.

        Example:
            >>> from paxis_router.testing import FakeWorker
            >>> router = Router(tiers=[FakeWorker(["a"]), FakeWorker(["b"], name="top")],
            ...                 shadow_rate=1.0)
            >>> async def main() -> int:
            ...     await router.route(ChatRequest.from_text("q"))
            ...     pending = router.shadow_pending
            ...     await router.drain()
            ...     return pending - router.shadow_pending
            >>> asyncio.run(main())
            1
        """
        await self._shadow_backlog.drain()

    async def aclose(self) -> None:
        """Drain the shadow calls, then close the workers' HTTP clients (those with
        ``aclose``). The ledger sinks stay open: their owner closes them. A drain error is
        raised after the workers are closed."""
        try:
            await self.drain()
        finally:
            for tier in self.tiers:
                close = getattr(tier.worker, "aclose", None)
                if close is not None:
                    await close()

    @property
    def shadow_pending(self) -> int:
        """Background shadow calls running now."""
        return self._shadow_backlog.pending

    @property
    def shadow_skipped(self) -> int:
        """Sampled routes not shadowed because the backlog was full (``shadow_max_pending``)."""
        return self._shadow_backlog.skipped

    async def route_many(
        self,
        requests: Iterable[ChatRequest],
        *,
        concurrency: int = 8,
        progress: bool = False,
        description: str = "routing",
    ) -> list[RouteResult | PaxisError]:
        """Route a batch with at most ``concurrency`` routes in flight, results in input order.

        A route that fails yields its PaxisError in its slot; the others go on. The batch's
        shadow calls are drained before it returns (a shadow call's ledger error is raised);
        a full shadow backlog slows the batch down rather than skipping samples.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        batch = list(requests)
        mode: _ShadowMode = "inline" if self.shadow_inline else "wait"
        results: list[RouteResult | PaxisError | None] = [None] * len(batch)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int, request: ChatRequest, advance: Callable[[], None]) -> None:
            async with semaphore:
                try:
                    results[i] = await self._route(request, mode)
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
        await self.drain()
        return [r for r in results if r is not None]

    # --- steps --------------------------------------------------------------------------------

    def _select_skills(self, request: ChatRequest) -> Sequence[SkillMatch]:
        if self.skills is None:
            return ()
        named = request.metadata.get("skill")
        get = getattr(self.skills, "get", None)
        if named and callable(get):
            # The request names its skill (metadata["skill"]): use it, skip selection.
            # An unknown id raises SkillError from the library's get().
            return (SkillMatch(get(named), 0.0, ()),)
        return self.skills.select(request.query, k=self.skills_k)

    async def _attempt(
        self,
        tier: Tier,
        index: int,
        request: ChatRequest,
        skill: Skill | None,
        window_floor: int | None = None,
    ) -> Attempt:
        started_at = utc_now()
        screened = self._screen(tier, request, skill)
        if screened is not None and screened.request is None:
            return _denied_attempt(tier, index, screened, started_at)
        t0 = self._clock()
        completion: Completion | None = None
        error: WorkerError | None = None
        try:
            send = screened.request if screened is not None else None
            completion = await call_tier(tier, send or request, skill, window_floor=window_floor)
        except WorkerError as exc:
            error = exc
            logger.warning("tier %s failed: %s", tier.name, exc)
        latency_s = self._clock() - t0
        if completion is not None and screened is not None and screened.placeholders:
            completion = replace(completion, content=screened.restore(completion.content))
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
            cost_usd=(
                Decimal(0)
                if isinstance(error, NOT_CALLED)
                else _attempt_cost(tier, completion, latency_s)
            ),
        )

    def _screen(self, tier: Tier, request: ChatRequest, skill: Skill | None) -> Screened | None:
        """Ask the gate about calling ``tier``; audit its decision. None without a gate."""
        if self.gate is None:
            return None
        from paxis_router.governance.audit import request_payload
        from paxis_router.governance.gate import Action

        action = Action.for_tier(tier, request, skill.id if skill else None)
        screened = self.gate.screen(action, request)
        if self.audit is not None:
            sent = request_payload(screened.request or request)
            self.audit.record_gate(action, screened.decision, request=request, payload=sent)
        return screened

    def _audit_route(
        self, request: ChatRequest, route_id: str, tier: Tier, attempt: Attempt, degraded: bool
    ) -> None:
        if self.gate is not None:
            self.gate.charge(request.team, attempt.cost_usd)
        if self.audit is not None:
            self.audit.record_route(
                attempt,
                request=request,
                route_id=route_id,
                destination=tier.destination,
                degraded=degraded,
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

    def _budget_cap(
        self, request: ChatRequest, decision: Decision, attempt: Attempt
    ) -> Budget | None:
        """The spent team budget that forbids this escalation, if any (counting this attempt,
        which the budget has not seen recorded yet)."""
        if self.budgets is None or decision is not Decision.ESCALATE:
            return None
        return self.budgets.exhausted(request.team, extra_usd=attempt.cost_usd)

    def _record(
        self,
        request: ChatRequest,
        route_id: str,
        attempt_index: int,
        attempt: Attempt,
        skill_ids: tuple[str, ...],
        final: bool,
        degraded: bool,
        budget_capped: bool = False,
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
            budget_capped=budget_capped,
            messages=request.messages,
            content=completion.content if completion else None,
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
        budget_capped: bool = False,
    ) -> RouteResult:
        last = attempts[-1]
        chosen = last
        accepted = last.decision is Decision.ACCEPT
        if not accepted:
            answered = [a for a in attempts if a.completion is not None]
            if all(a.error_type == "GateDenied" for a in attempts):
                raise PolicyDenied(
                    f"the gate denied every tier; last: {last.error}",
                    request_id=request.request_id,
                )
            serve_degraded = self.outage.serve_degraded(request, attempts, skill_ids)
            keep = serve_degraded or budget_capped
            if not answered or (self.policy.on_exhausted == "raise" and not keep):
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
            budget_capped=budget_capped,
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


def _denied_attempt(tier: Tier, index: int, screened: Screened, started_at: datetime) -> Attempt:
    """A tier the gate refused: no call, zero cost, so ledger rows still equal attempts."""
    decision = screened.decision
    return Attempt(
        tier=tier.name,
        tier_index=index,
        model=_model_of(tier),
        started_at=started_at,
        latency_s=0.0,
        error=f"gate denied (rule {decision.rule_id}, policy {decision.policy_version}): "
        f"{decision.reason}",
        error_type="GateDenied",
        cost_usd=Decimal(0),
    )


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
