"""The Router: select -> gate -> worker -> verify -> decide -> record.

Only this module knows the order of the steps. The decision after each attempt is one pure
function (``paxis_router.policy.decide``); the router carries it out. Every attempt, accepted or
rejected, becomes one ``CallRecord`` handed to the observers (ledger sinks, team budgets, the
audit log) before the router moves on, so a crash later in the route loses nothing recorded.
Before each tier call the router asks every observer that can tell (``check()``) whether it can
record: a ledger or audit log that cannot refuses the route before any money is spent.

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
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from paxis_router._eager import eager_gather
from paxis_router.errors import (
    BudgetExceeded,
    ConfigError,
    DegradedRefused,
    EscalationExhausted,
    PaxisError,
    PolicyDenied,
    TiersUnavailable,
    WorkerError,
)
from paxis_router.ledger.base import LedgerSink, drain_sinks, flush_sinks
from paxis_router.policy.decide import Decided, Ending, decide
from paxis_router.policy.outage import OutagePolicy
from paxis_router.policy.predicates import EscalationPolicy, Predicate, RouteState
from paxis_router.shadow import ShadowBacklog, ShadowSampling
from paxis_router.skills.model import SkillMatch
from paxis_router.skills.prompt import arender_instructions
from paxis_router.types import (
    Attempt,
    AttemptStatus,
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
from paxis_router.verifiers.implicit import implicit_verifiers
from paxis_router.workers.background_loop import run_sync
from paxis_router.workers.base import (
    RelaysStream,
    Tier,
    Worker,
    as_tier,
    classify_error,
    overflowed_window,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime
    from pathlib import Path

    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.budgets import Budgets
    from paxis_router.governance.gate import Gate, Screened
    from paxis_router.skills.model import Skill, SkillSelector
    from paxis_router.verifiers.base import Verifier

logger = logging.getLogger(__name__)

_ShadowMode = Literal["inline", "skip", "wait"]


@runtime_checkable
class RouteBuilder(Protocol):
    """A config that builds a Router (``paxis_router.config.RouterConfig``)."""

    def build_router(self, *, base_dir: str | Path | None = None) -> Router: ...


@runtime_checkable
class _Checked(Protocol):
    def check(self) -> None: ...


class SkillHints(Protocol):
    """Builds what a skill's SKILL.md asks for (``paxis-verifier``, ``paxis-policy``) into live
    objects; the policy file provides one (``paxis_router.config``), which checks the kinds."""

    def verifiers(self, skill: Skill) -> Sequence[Verifier]: ...

    def policy(self, skill: Skill) -> EscalationPolicy | None: ...


# Data classes from the least to the most guarded: a skill's hint can only raise a request's.
DATA_CLASS_ORDER = ("public", "internal", "confidential", "restricted")


class Router:
    """Routes a request up a ladder of tiers until an answer passes the policy.

    Args:
        tiers: the ladder, cheapest first (workers or ``Tier``s); at least one.
        verifiers: judge each answer; all run concurrently.
        policy: an ``EscalationPolicy``, a confidence threshold (``0.7``), or a predicate.
        ledger: where each attempt is recorded (one sink or several); None records nothing.
        skills: a skill library; its top ``skills_k`` matches go into the system prompt.
        skills_k: how many skills to put in the prompt.
        gate: an action gate asked before each tier call: deny skips the tier (a zero-cost
            ``denied`` attempt), redact sends PII as placeholders and restores them after.
        audit: a hash-chained audit log; gets every gate decision and routing decision.
        outage: per skill, serve the best lower-tier answer ``degraded`` or refuse when an
            upper tier is unavailable (default: degrade). A tier whose breaker is open is
            skipped as a zero-cost ``CircuitOpen`` attempt (see ``Tier.resilience``).
        budgets: team budgets (``paxis_router.governance.budgets``): a spent budget stops
            escalation (the answer so far, ``budget_capped``) or refuses (BudgetExceeded).
        shadow: calibration sampling (``ShadowSampling``, or a rate such as ``0.05``): that
            share of routes whose lower-tier answer was accepted also calls the next tier, as a
            ``shadow`` ledger row, for ``paxis calibrate --ledger``; off by default. The shadow
            call runs in the background (``drain()``/``aclose()`` await it).
        skill_hints: builds the verifiers and the policy a skill's SKILL.md names
            (``paxis-verifier``, ``paxis-policy``); a policy file's Router has one. The other
            hints need nothing built: the top skill's ``paxis-tier`` starts its ladder at that
            tier, and the most guarded ``paxis-data-class`` of the chosen skills raises the
            request's data class (the gate decides on it).
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
        gate: Gate | None = None,
        audit: AuditLog | None = None,
        outage: OutagePolicy | None = None,
        budgets: Budgets | None = None,
        shadow: ShadowSampling | float | None = None,
        skill_hints: SkillHints | None = None,
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
        self.gate = gate
        self.audit = audit
        self.outage = outage or OutagePolicy()
        self.budgets = budgets
        self.shadow = ShadowSampling.coerce(shadow)
        self.skill_hints = skill_hints
        self._clock = clock
        self._backlog = ShadowBacklog(self.shadow.max_pending if self.shadow else None)
        # One stream of records, several observers: the ledger, the budgets that count spend
        # from it, and the audit log's route records.
        observers: list[LedgerSink] = list(self.sinks)
        if budgets is not None:
            observers.append(budgets)
        if audit is not None:
            observers.append(_AuditedRoutes(audit))
        self._observers = tuple(observers)
        checked: list[Any] = [o for o in (*observers, audit) if isinstance(o, _Checked)]
        self._checked: tuple[_Checked, ...] = tuple(checked)

    @classmethod
    def from_config(cls, cfg: RouteBuilder, *, base_dir: str | Path | None = None) -> Router:
        """The Router a policy file describes (``paxis_router.config``); ≡ the constructor.

        ``base_dir`` is where relative paths start (default: the policy file's folder).

        Example:
            >>> from paxis_router.config import RouterConfig
            >>> cfg = RouterConfig.model_validate(
            ...     {"tiers": [{"kind": "litellm", "model": "gpt-4o"}], "verifiers": ["non_empty"]})
            >>> [t.name for t in Router.from_config(cfg).tiers]
            ['frontier:gpt-4o']
        """
        return cfg.build_router(base_dir=base_dir)

    # --- public API ---------------------------------------------------------------------------

    async def route(self, request: ChatRequest) -> RouteResult:
        """Route one request. Raises EscalationExhausted when no tier gave an acceptable answer
        (unless the policy says ``return_best``); every attempt is in the ledger either way."""
        inline = self.shadow is not None and self.shadow.inline
        return await self._route(request, "inline" if inline else "skip")

    def route_sync(self, request: ChatRequest) -> RouteResult:
        """``route`` for synchronous callers, on the process's shared background event loop (so
        sync calls reuse the workers' keep-alive connections). A sampled route's shadow call runs
        inline here (the caller would wait for it either way), and the ledger's queued rows are
        committed before it returns (a sync caller may read them at once, from any connection).
        Safe from several threads at once, and from a thread that runs an event loop of its own."""
        result = run_sync(self._route(request, "inline"))
        flush_sinks(self.sinks)
        return result

    async def drain(self) -> None:
        """Wait for every background shadow call to finish and be recorded, then make the
        ledger and audit records durable (sinks with ``aflush``).

        Call it before the event loop closes (``route_many`` and ``aclose`` do). A shadow
        call's ledger or audit error (logged at ERROR when it happens) is re-raised here, and
        so is a sink's background write error; a shadow tier's own failure is a recorded
        attempt, not an error.

        Example:
            >>> from paxis_router.testing import FakeWorker
            >>> router = Router(tiers=[FakeWorker(["a"]), FakeWorker(["b"], name="top")],
            ...                 shadow=1.0)
            >>> async def main() -> int:
            ...     await router.route(ChatRequest.from_text("q"))
            ...     pending = router.shadow_pending
            ...     await router.drain()
            ...     return pending - router.shadow_pending
            >>> asyncio.run(main())
            1
        """
        await self._backlog.drain()
        await drain_sinks(self.sinks)  # committed now; a writer's error surfaces here
        if self.audit is not None:
            await self.audit.aflush()

    async def aclose(self) -> None:
        """Drain the shadow calls and flush the sinks, then close the workers' HTTP clients
        and the audit log (a later record reopens it). The ledger sinks stay open: their owner
        closes them. A drain error is raised after everything is closed."""
        try:
            await self.drain()
        finally:
            for tier in self.tiers:
                close = getattr(tier.worker, "aclose", None)
                if close is not None:
                    await close()
            if self.audit is not None:
                await self.audit.aclose()

    @property
    def shadow_pending(self) -> int:
        """Background shadow calls running now."""
        return self._backlog.pending

    @property
    def shadow_skipped(self) -> int:
        """Sampled routes not shadowed because the backlog was full (``max_pending``)."""
        return self._backlog.skipped

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
        mode: _ShadowMode = "inline" if self.shadow is not None and self.shadow.inline else "wait"
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

    # --- one route ----------------------------------------------------------------------------

    async def _route(self, request: ChatRequest, shadow_mode: _ShadowMode) -> RouteResult:
        """``route``, its shadow call (if sampled) run ``inline`` or in the background; there, a
        full backlog makes the route ``skip`` its sample or ``wait`` for room (``route_many``:
        a batch's caller waits for the whole batch anyway)."""
        if self.budgets is not None:
            self.budgets.check_start(request)
        matches = self._select_skills(request)
        skills = [m.skill for m in matches]
        request = _with_skill_data_class(request, skills)
        top = skills[0] if skills else None
        instructions = await arender_instructions(skills)
        route = _Route(
            request=request,
            prepared=request.with_system(instructions),
            skill_ids=tuple(s.id for s in skills),
            skill=top,
            outage_mode=self.outage.mode_for(
                [*(s.id for s in skills), request.metadata.get("skill", "")]
            ),
            verifiers=self._verifiers_for(top),
            policy=self._policy_for(top),
        )
        for index in range(self._first_tier(top), len(self.tiers)):
            tier = self.tiers[index]
            attempt = await self._attempt(route, tier, index)
            decided = decide(self._state(route, attempt, index), route.policy)
            attempt = replace(attempt, decision=decided.decision, reason=decided.reason)
            route.add(attempt)
            self._emit(route, attempt, tier, decided)
            if not decided.final:
                continue
            result = self._result(route, decided)
            if self._shadow_sampled(route, decided, index):
                await self._submit_shadow(route, index, shadow_mode)
            return result
        raise AssertionError("unreachable: the last tier always ends the route")  # pragma: no cover

    def _select_skills(self, request: ChatRequest) -> Sequence[SkillMatch]:
        if self.skills is None:
            return ()
        named = request.metadata.get("skill")
        get = getattr(self.skills, "get", None)
        if named and callable(get):
            # The request names its skills (metadata["skill"], ids separated by commas, as an
            # orchestrator pins a task's skills on each step): use them, skip selection.
            # An unknown id raises SkillError from the library's get().
            return tuple(SkillMatch(get(s.strip()), 0.0, ()) for s in named.split(",") if s)
        return self.skills.select(request.query, k=self.skills_k)

    def _first_tier(self, skill: Skill | None) -> int:
        """Where the ladder starts: the tier the top skill pins (``paxis-tier``), else 0."""
        if skill is None or skill.pin_tier is None:
            return 0
        for index, tier in enumerate(self.tiers):
            if tier.name == skill.pin_tier:
                return index
        names = ", ".join(t.name for t in self.tiers)
        raise ConfigError(
            f"skill {skill.id!r} pins tier {skill.pin_tier!r} (paxis-tier), which is not in the "
            f"ladder ({names}); fix the SKILL.md or the policy's tier names"
        )

    def _verifiers_for(self, skill: Skill | None) -> tuple[Verifier, ...]:
        if skill is None or not skill.verifiers or self.skill_hints is None:
            return self.verifiers
        return (*self.verifiers, *self.skill_hints.verifiers(skill))

    def _policy_for(self, skill: Skill | None) -> EscalationPolicy:
        if skill is None or skill.policy is None or self.skill_hints is None:
            return self.policy
        return self.skill_hints.policy(skill) or self.policy

    def _state(self, route: _Route, attempt: Attempt, index: int) -> RouteState:
        spent = route.spent_usd + (attempt.cost_usd or 0)
        unpriced = route.unpriced + (attempt.cost_usd is None)
        budget = None
        if self.budgets is not None:
            budget = self.budgets.exhausted(route.request.team, extra_usd=attempt.cost_usd)
        return RouteState(
            request=route.request,
            attempts=(*route.attempts, attempt),
            tier_index=index,
            n_tiers=len(self.tiers),
            spent_usd=spent,
            skills=route.skill_ids,
            unpriced_attempts=unpriced,
            budget_exhausted=None if budget is None else _describe_budget(budget),
            budget_refuses=budget is not None and budget.on_exhausted == "refuse",
            outage_mode=route.outage_mode,
        )

    async def _attempt(
        self, route: _Route, tier: Tier, index: int, *, shadow: bool = False
    ) -> Attempt:
        """One call to ``tier``: gate, check the observers can record, call, verify."""
        started_at = utc_now()
        screened = self._screen(tier, route.prepared, route.skill)
        if screened is not None and screened.request is None:
            return _denied_attempt(tier, index, screened, started_at)
        for observer in self._checked:
            observer.check()  # a sink that cannot record refuses before anything is spent
        send = screened.request if screened is not None and screened.request else route.prepared
        if screened is not None and screened.placeholders and isinstance(tier.worker, RelaysStream):
            tier.worker.filter_relayed_text(screened.stream_restorer())
        t0 = self._clock()
        completion: Completion | None = None
        error: WorkerError | None = None
        try:
            completion = await tier.call(send, route.skill, window_floor=route.window_floor)
        except WorkerError as exc:
            error = exc
            logger.warning("tier %s failed: %s", tier.name, exc)
            overflowed = overflowed_window(exc, tier)
            if overflowed is not None:  # a later tier whose window is no larger is skipped
                route.window_floor = max(route.window_floor or 0, overflowed)
        except asyncio.CancelledError:
            held_s = self._clock() - t0
            self._record_cancelled(route, tier, index, started_at, held_s, shadow=shadow)
            raise
        latency_s = self._clock() - t0
        if completion is not None and screened is not None:
            completion = screened.restore(completion)  # placeholders out, originals back in
        verdicts: tuple[Verdict, ...] = ()
        if completion is not None:
            # the checks the request itself asks for (JSON answers, tool calls) come with it
            implicit = implicit_verifiers(route.request, completion, route.verifiers)
            verdicts = await _verify((*route.verifiers, *implicit), route.request, completion)
        status, called = (AttemptStatus.ANSWERED, True) if error is None else classify_error(error)
        attempt = Attempt(
            tier=tier.name,
            tier_index=index,
            model=completion.model if completion else _model_of(tier),
            started_at=started_at,
            latency_s=latency_s,
            completion=completion,
            error=str(error) if error else None,
            error_type=type(error).__name__ if error else None,
            verdicts=verdicts,
            cost_usd=_attempt_cost(tier, completion, latency_s) if called else Decimal(0),
            status=status,
            called=called,
        )
        return attempt

    def _record_cancelled(
        self,
        route: _Route,
        tier: Tier,
        index: int,
        started_at: datetime,
        held_s: float,
        *,
        shadow: bool,
    ) -> None:
        """The caller cancelled the route (or the loop its shadow call) while ``tier`` was
        answering: record what was spent.

        The tokens are unknown (a provider may bill the whole answer, it was asked for), so a
        per-token price records the cost as unknown; a GPU tier priced by the hour records the
        time it was held. A cancelled shadow call is a ``shadow`` row, never the route's end.
        """
        attempt = Attempt(
            tier=tier.name,
            tier_index=index,
            model=_model_of(tier),
            started_at=started_at,
            latency_s=held_s,
            error="cancelled by the caller before the tier answered",
            error_type="Cancelled",
            cost_usd=tier.price.cost(None, held_s) if tier.price is not None else None,
            decision=Decision.SHADOW if shadow else Decision.STOP,
            reason="shadow: cancelled" if shadow else "stop: cancelled by the caller",
        )
        if shadow:
            self._emit(route, attempt, tier, None)
            return
        route.add(attempt)
        self._emit(route, attempt, tier, Decided(Decision.STOP, attempt.reason, Ending.CANCELLED))

    def _screen(self, tier: Tier, request: ChatRequest, skill: Skill | None) -> Screened | None:
        """Ask the gate about calling ``tier``; audit its decision. None without a gate."""
        if self.gate is None:
            return None
        from paxis_router.governance.gate import Action

        action = Action.for_tier(tier, request, skill.id if skill else None)
        screened = self.gate.screen(action, request)
        if self.audit is not None:
            sent = screened.request or request
            self.audit.submit_gate(action, screened.decision, request=request, sent=sent)
        return screened

    def _emit(self, route: _Route, attempt: Attempt, tier: Tier, decided: Decided | None) -> None:
        """One record of ``attempt`` to every observer (ledger, budgets, audit log)."""
        entry = self._call_record(route, attempt, tier, decided)
        for observer in self._observers:
            observer.record(entry)

    def _call_record(
        self, route: _Route, attempt: Attempt, tier: Tier, decided: Decided | None
    ) -> CallRecord:
        request = route.request
        usage = attempt.usage
        completion = attempt.completion
        task_id, step = request.task
        final = decided is not None and decided.final
        degraded = final and any(a.status is AttemptStatus.UNAVAILABLE for a in route.attempts)
        return CallRecord(
            route_id=route.route_id,
            request_id=request.request_id,
            attempt_index=len(route.attempts) - 1 if decided is not None else route.next_index(),
            ts=attempt.started_at,
            tier=attempt.tier,
            tier_index=attempt.tier_index,
            model=attempt.model,
            decision=attempt.decision,
            reason=attempt.reason,
            final=final,
            team=request.team,
            skill=",".join(route.skill_ids) or None,
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
            degraded=degraded,
            budget_capped=decided is not None and decided.budget_capped,
            messages=route.prepared.messages,
            content=completion.content if completion else None,
            cached_prompt_tokens=usage.cached_prompt_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            tools=tuple(c.name for c in completion.tool_calls) if completion else (),
            destination=tier.destination,
            task_id=task_id,
            step=step,
            tags=request.tags,
        )

    def _counterfactual(self, attempt: Attempt) -> Decimal | None:
        """What this attempt's tokens would have cost on the ladder's top tier."""
        top = self.tiers[-1]
        if attempt.tier_index == len(self.tiers) - 1:
            return attempt.cost_usd
        if top.price is None or attempt.usage is None:
            return None
        return top.price.cost(attempt.usage, attempt.latency_s)

    def _result(self, route: _Route, decided: Decided) -> RouteResult:
        """The route's answer, or the error its ending names."""
        ending = decided.ending
        attempts = tuple(route.attempts)
        request = route.request
        if ending is None or not ending.answers or decided.answer_index is None:
            raise _ending_error(ending, decided, attempts, request)
        chosen = attempts[decided.answer_index]
        assert chosen.completion is not None
        return RouteResult(
            route_id=route.route_id,
            request_id=request.request_id,
            completion=chosen.completion,
            tier=chosen.tier,
            attempts=attempts,
            decision=decided.decision,
            reason=decided.reason,
            cost_usd=None if route.unpriced else route.spent_usd,
            counterfactual_usd=self._counterfactual(chosen),
            skills=route.skill_ids,
            degraded=any(a.status is AttemptStatus.UNAVAILABLE for a in attempts),
            budget_capped=ending is Ending.BUDGET_CAPPED,
            accepted=ending is Ending.ANSWER,
        )

    # --- shadow sampling ----------------------------------------------------------------------

    def _shadow_sampled(self, route: _Route, decided: Decided, index: int) -> bool:
        return (
            self.shadow is not None
            and decided.decision is Decision.ACCEPT
            and index + 1 < len(self.tiers)
            and self.shadow.sampled(route.request.request_id)
        )

    async def _submit_shadow(self, route: _Route, index: int, mode: _ShadowMode) -> None:
        async def call() -> None:
            await self._shadow_call(route, index + 1)

        if mode == "inline":
            await call()
        else:
            await self._backlog.submit(route.route_id, call, wait_for_room=mode == "wait")

    async def _shadow_call(self, route: _Route, index: int) -> None:
        """Call the tier above the accepted answer and record it as a ``shadow`` row; not called
        when the gate denies it, the budget is spent, the breaker is open. A failed call is
        recorded like any failed attempt; ledger and audit errors propagate (to ``drain()``)."""
        if self.budgets is not None and self.budgets.exhausted(route.request.team) is not None:
            return
        tier = self.tiers[index]
        attempt = await self._attempt(route, tier, index, shadow=True)
        if not attempt.called:
            logger.debug("shadow call to %s skipped: %s", tier.name, attempt.error)
            return
        assert self.shadow is not None
        accepted = route.attempts[-1].tier
        attempt = replace(
            attempt,
            decision=Decision.SHADOW,
            reason=f"shadow: calibration sample (rate {self.shadow.rate:g}); the answer of "
            f"{accepted} stands",
        )
        self._emit(route, attempt, tier, None)


@dataclass(slots=True)
class _Route:
    """What one route has gathered so far."""

    request: ChatRequest
    prepared: ChatRequest
    skill_ids: tuple[str, ...]
    skill: Skill | None
    outage_mode: Literal["degrade", "refuse"]
    verifiers: tuple[Verifier, ...]
    policy: EscalationPolicy
    route_id: str = field(default_factory=new_id)
    attempts: list[Attempt] = field(default_factory=list)
    spent_usd: Decimal = Decimal(0)
    unpriced: int = 0
    window_floor: int | None = None  # the largest context window the prompt overflowed
    shadows: int = 0

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        if attempt.cost_usd is None:
            self.unpriced += 1
        else:
            self.spent_usd += attempt.cost_usd

    def next_index(self) -> int:
        """The ledger index of a shadow row: after the route's attempts and earlier shadows."""
        self.shadows += 1
        return len(self.attempts) + self.shadows - 1


class _AuditedRoutes:
    """The audit log as an observer of the record stream: one ``route`` record per attempt."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def record(self, entry: CallRecord) -> None:
        self.audit.submit(  # written before the next call is paid for (check), or at turn end
            kind="route",
            request_id=entry.request_id,
            route_id=entry.route_id,
            principal=entry.team,
            action="call_tier",
            target=entry.tier,
            model=entry.model,
            destination=entry.destination,
            data_class=entry.data_class,
            decision=str(entry.decision),
            reason=entry.reason,
            error_type=entry.error_type,
            cost_usd=entry.cost_usd,
            degraded=entry.degraded or None,
            payload=entry.content,
        )


# --- helpers ------------------------------------------------------------------------------------


def _ending_error(
    ending: Ending | None,
    decided: Decided,
    attempts: tuple[Attempt, ...],
    request: ChatRequest,
) -> PaxisError:
    rid = request.request_id
    last = attempts[-1]
    causes = "; ".join(f"{a.tier}: {a.error_type} ({a.error})" for a in attempts if a.error)
    if ending is Ending.DENIED:
        return PolicyDenied(f"the gate denied every tier; last: {last.error}", request_id=rid)
    if ending is Ending.UNAVAILABLE:
        return TiersUnavailable(
            f"no tier could answer request {rid}: {causes}. Every attempt is in the ledger; "
            "retry later or add a tier that is up.",
            attempts=attempts,
            request_id=rid,
        )
    if ending is Ending.DEGRADED_REFUSED:
        return DegradedRefused(
            f"request {rid} refused: an upper tier is unavailable ({causes}) and the outage "
            "policy for its skill refuses degraded answers",
            attempts=attempts,
            request_id=rid,
        )
    if ending is Ending.BUDGET_REFUSED:
        return BudgetExceeded(
            f"{decided.reason.removeprefix('stop: budget: ')}; escalation refused. The attempts "
            "are in the ledger.",
            team=request.team,
            request_id=rid,
        )
    return EscalationExhausted(
        f"no tier gave an acceptable answer after {len(attempts)} attempt(s); "
        f"last: {last.reason}. The attempts are in .attempts and in the ledger.",
        attempts=attempts,
        request_id=rid,
    )


def _describe_budget(budget: Any) -> str:  # Any: governance.budgets.Budget (a layer above)
    from paxis_router.governance.budgets import describe

    return describe(budget)


async def _verify(
    verifiers: Sequence[Verifier], request: ChatRequest, completion: Completion
) -> tuple[Verdict, ...]:
    """Every verifier's verdict on ``completion``, run concurrently."""
    if not verifiers:
        return ()
    return tuple(await eager_gather([_safe_verify(v, request, completion) for v in verifiers]))


def _with_skill_data_class(request: ChatRequest, skills: Sequence[Skill]) -> ChatRequest:
    """``request`` with its data class raised to the most guarded one its skills declare
    (``paxis-data-class``). A class outside ``DATA_CLASS_ORDER`` (``pci``, say) ranks just below
    ``restricted``: it replaces a lesser known class, never ``restricted``."""
    declared = [s.data_class for s in skills if s.data_class]
    if not declared:
        return request
    current = request.data_class
    strictest = max([current, *declared], key=_data_class_rank)
    if _data_class_rank(strictest) == _data_class_rank(current):
        return request
    return request.model_copy(update={"metadata": {**request.metadata, "data_class": strictest}})


def _data_class_rank(data_class: str) -> float:
    if data_class in DATA_CLASS_ORDER:
        return DATA_CLASS_ORDER.index(data_class)
    return len(DATA_CLASS_ORDER) - 1.5  # unknown: between confidential and restricted


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
        status=AttemptStatus.DENIED,
        called=False,
    )


def _model_of(tier: Tier) -> str:
    return str(getattr(tier.worker, "model", tier.name))
