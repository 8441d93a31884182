"""Degraded mode: a 19-day frontier outage on a fake clock, and the per-skill outage policy."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from paxis_router.config.schema import RouterConfig
from paxis_router.errors import DegradedRefused, PaxisError, WorkerUnavailable
from paxis_router.policy.outage import OutagePolicy
from paxis_router.router import Router
from paxis_router.testing import FakeClock, FakeWorker, FunctionWorker
from paxis_router.types import CallRecord, ChatRequest, Completion, Verdict
from paxis_router.workers.base import Tier
from paxis_router.workers.resilience import (
    BreakerConfig,
    BreakerState,
    Resilience,
    ResilienceConfig,
)

DAY_S = 86_400.0
OUTAGE_S = 19 * DAY_S
BREAKER = BreakerConfig(failure_threshold=3, error_rate=None, open_s=30, max_open_s=3600)


class ListSink:
    """A ledger sink that keeps rows in memory (the SQLite ledger is tested elsewhere)."""

    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, entry: CallRecord) -> None:
        self.rows.append(entry)


class SaysOk:
    name = "says-ok"

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        passed = completion.content.startswith("ok")
        return Verdict(self.name, passed, None, "" if passed else "not sure")


def local_answer(request: ChatRequest, skill: object) -> str:
    return request.metadata["local"]


def make_router(clock: FakeClock, frontier: FunctionWorker, sink: ListSink) -> Router:
    guard = Resilience(
        ResilienceConfig(max_attempts=2, breaker=BREAKER), clock=clock, sleep=clock.sleep
    )
    return Router(
        tiers=[
            Tier(FunctionWorker(local_answer, name="local:w")),
            Tier(frontier, destination="openai:us", resilience=guard),
        ],
        verifiers=[SaysOk()],
        ledger=sink,
        outage=OutagePolicy(default="degrade", skills={"legal": "refuse"}),
        clock=clock,
    )


def ask(local: str, skill: str) -> ChatRequest:
    return ChatRequest.from_text("q", team="t", skill=skill, local=local)


async def test_nineteen_day_frontier_outage_serves_degraded_or_refuses_with_few_probes() -> None:
    clock = FakeClock()
    frontier_calls: list[float] = []

    def frontier_fn(request: ChatRequest, skill: object) -> str:
        frontier_calls.append(clock())
        if clock() < OUTAGE_S:
            raise WorkerUnavailable(
                "HTTP 404: model withdrawn by export-control order",
                worker="frontier:f",
                transient=False,
                status_code=404,
            )
        return "ok from the frontier"

    sink = ListSink()
    router = make_router(clock, FunctionWorker(frontier_fn, name="frontier:f"), sink)
    outcomes: Counter[str] = Counter()
    wrong: list[tuple[float, str, set[str]]] = []
    attempts = 0
    step_s = 600.0  # a request every 10 minutes, for 20 days
    for n in range(int(20 * DAY_S / step_s)):
        clock.advance(step_s)
        local = "ok local" if n % 2 == 0 else "maybe"
        skill = "legal" if n % 4 == 1 else "faq"
        try:
            result = await router.route(ask(local, skill))
            attempts += len(result.attempts)
            got = "served" if result.accepted else "degraded"
            got += f":{result.tier}"
            if not result.accepted:
                assert result.degraded and "frontier:f" in result.reason
        except DegradedRefused as exc:
            attempts += len(exc.attempts)
            got = "refused"
            assert "model withdrawn" in str(exc)
        # what the policy says: sure answers from the worker; unsure ones need the frontier,
        # and while it is out (or its breaker has not probed yet) faq degrades, legal refuses
        fallback = "refused" if skill == "legal" else "degraded:local:w"
        if local.startswith("ok"):
            allowed = {"served:local:w"}
        elif clock() < OUTAGE_S:
            allowed = {fallback}
        elif clock() < OUTAGE_S + BREAKER.max_open_s:
            allowed = {fallback, "served:frontier:f"}
        else:
            allowed = {"served:frontier:f"}
        if got not in allowed:
            wrong.append((clock(), got, allowed))
        outcomes[f"{'outage' if clock() < OUTAGE_S else 'after'}:{got}"] += 1

    assert wrong == []
    assert outcomes["outage:degraded:local:w"] > 0 and outcomes["outage:refused"] > 0
    assert outcomes["after:served:frontier:f"] > 0
    in_outage = [t for t in frontier_calls if t < OUTAGE_S]
    bound = math.log2(BREAKER.max_open_s / BREAKER.open_s) + OUTAGE_S / BREAKER.max_open_s + 3
    assert len(in_outage) <= bound  # ~one probe an hour, whatever the traffic
    escalations = outcomes["outage:degraded:local:w"] + outcomes["outage:refused"]
    assert len(in_outage) < escalations / 2  # most escalations skip the tier without a call
    assert len(sink.rows) == attempts  # every attempt, refused routes included, is a row
    breaker = router.tiers[1].resilience
    assert breaker is not None and breaker.breaker.state is BreakerState.CLOSED


async def test_upper_tier_down_serves_the_lower_answer_degraded_with_the_reason() -> None:
    clock = FakeClock()
    down = FakeWorker([WorkerUnavailable("HTTP 503", worker="frontier:f")], name="frontier:f")
    sink = ListSink()
    router = Router(
        tiers=[FunctionWorker(local_answer, name="local:w"), down],
        verifiers=[SaysOk()],
        ledger=sink,
        clock=clock,
    )
    result = await router.route(ask("maybe", "faq"))
    assert (result.content, result.degraded, result.accepted) == ("maybe", True, False)
    assert result.reason == "stop: WorkerUnavailable: frontier:f: HTTP 503"
    assert [r.degraded for r in sink.rows] == [False, True]


async def test_refuse_mode_raises_a_typed_error_and_keeps_the_rows() -> None:
    down = FakeWorker([WorkerUnavailable("HTTP 503", worker="frontier:f")], name="frontier:f")
    sink = ListSink()
    router = Router(
        tiers=[FunctionWorker(local_answer, name="local:w"), down],
        verifiers=[SaysOk()],
        ledger=sink,
        outage=OutagePolicy(default="refuse"),
    )
    with pytest.raises(DegradedRefused, match=r"frontier:f: WorkerUnavailable \(frontier:f: HTTP"):
        await router.route(ask("maybe", "faq"))
    assert [(r.tier, r.final) for r in sink.rows] == [("local:w", False), ("frontier:f", True)]


async def test_a_rejection_without_an_outage_follows_the_escalation_policy() -> None:
    router = Router(
        tiers=[FunctionWorker(local_answer, name="local:w"), FakeWorker(["meh"], name="f")],
        verifiers=[SaysOk()],
        outage=OutagePolicy(default="degrade"),
    )
    with pytest.raises(PaxisError, match="no tier gave an acceptable answer"):
        await router.route(ask("maybe", "faq"))


@pytest.mark.parametrize(
    ("skills", "expected"),
    [((), "degrade"), (("faq",), "degrade"), (("faq", "legal"), "refuse"), (("legal",), "refuse")],
)
def test_outage_mode_per_skill(skills: tuple[str, ...], expected: str) -> None:
    policy = OutagePolicy(skills={"legal": "refuse", "faq": "degrade"})
    assert policy.mode_for(skills) == expected


def test_outage_policy_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="degrade"):
        OutagePolicy(skills={"legal": "panic"})  # type: ignore[dict-item]
    tiers = [{"kind": "litellm", "model": "gpt-4o"}]
    with pytest.raises(ValueError, match="degrade"):
        RouterConfig.model_validate({"tiers": tiers, "policy": {"outage": {"default": "panic"}}})
    with pytest.raises(ValueError, match="skillz"):
        RouterConfig.model_validate({"tiers": tiers, "policy": {"outage": {"skillz": {}}}})
