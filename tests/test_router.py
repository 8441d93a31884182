from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router import (
    ChatRequest,
    Completion,
    ConfigError,
    Decision,
    EscalationExhausted,
    EscalationPolicy,
    GpuHourPrice,
    Router,
    SQLiteLedger,
    TokenPrice,
    Usage,
    Verdict,
    WorkerUnavailable,
)
from paxis_router.policy.predicates import spent_over, tiers_exhausted, verdict_failed
from paxis_router.testing import FakeVerifier, FakeWorker, FunctionWorker
from paxis_router.types import CallRecord
from paxis_router.workers.base import Tier, Worker

CHEAP = TokenPrice.per_million("0.10", "0.10")
MID = TokenPrice.per_million("1", "2")
TOP = TokenPrice.per_million("10", "30")


class ContainsVerifier:
    """Passes answers that contain a word (a deterministic stand-in for a real check)."""

    def __init__(self, word: str) -> None:
        self.name = f"contains:{word}"
        self.word = word

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        ok = self.word in completion.content
        return Verdict(self.name, ok, None, "" if ok else f"no {self.word!r}")


def three_tiers(
    answers: tuple[str, str, str], ledger: SQLiteLedger | None = None, **kwargs: object
) -> Router:
    tiers = [
        FakeWorker([answers[0]], name="local:small", price=CHEAP),
        FakeWorker([answers[1]], name="local:big", price=MID),
        FakeWorker([answers[2]], name="frontier:top", price=TOP, destination="openai"),
    ]
    return Router(
        tiers=tiers,
        verifiers=[ContainsVerifier("good")],
        ledger=ledger,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    return SQLiteLedger(tmp_path / "ledger.db")


async def test_accept_at_first_tier(ledger: SQLiteLedger) -> None:
    router = three_tiers(("good one", "good two", "good three"), ledger)
    result = await router.route(ChatRequest.from_text("a b c d", team="claims"))
    assert (result.content, result.tier, result.escalated) == ("good one", "local:small", False)
    assert result.decision is Decision.ACCEPT
    # prompt 4 words, completion 2 words: priced exactly with Decimal
    assert result.cost_usd == Decimal("0.10") * 6 / 1_000_000
    assert result.counterfactual_usd == (Decimal(10) * 4 + Decimal(30) * 2) / 1_000_000
    rows = ledger.rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.team, row.tier, row.decision, row.final, row.passed) == (
        "claims",
        "local:small",
        Decision.ACCEPT,
        True,
        True,
    )
    assert row.route_id == result.route_id
    assert row.cost_usd == result.cost_usd
    assert row.counterfactual_usd == result.counterfactual_usd
    assert (row.prompt_tokens, row.completion_tokens) == (4, 2)


async def test_escalate_to_second_tier_records_both_attempts(ledger: SQLiteLedger) -> None:
    router = three_tiers(("bad", "good two", "good three"), ledger)
    result = await router.route(ChatRequest.from_text("q", team="ops"))
    assert (result.content, result.tier, result.escalated) == ("good two", "local:big", True)
    rows = ledger.rows()
    assert [(r.tier, r.decision, r.final, r.passed) for r in rows] == [
        ("local:small", Decision.ESCALATE, False, False),
        ("local:big", Decision.ACCEPT, True, True),
    ]
    assert "contains:good failed (no 'good')" in rows[0].reason
    assert rows[0].counterfactual_usd is None
    assert rows[0].verdicts[0].passed is False
    assert result.cost_usd == sum((r.cost_usd for r in rows if r.cost_usd), Decimal(0))


async def test_exhausting_the_ladder_raises_with_every_attempt_recorded(
    ledger: SQLiteLedger,
) -> None:
    router = three_tiers(("bad", "worse", "worst"), ledger)
    with pytest.raises(EscalationExhausted, match="after 3 attempt") as info:
        await router.route(ChatRequest.from_text("q"))
    assert [a.tier for a in info.value.attempts] == ["local:small", "local:big", "frontier:top"]
    rows = ledger.rows()
    assert [r.decision for r in rows] == [Decision.ESCALATE, Decision.ESCALATE, Decision.STOP]
    assert rows[-1].final is True
    assert rows[-1].counterfactual_usd == rows[-1].cost_usd


async def test_return_best_gives_the_answer_that_passed_most(ledger: SQLiteLedger) -> None:
    policy = EscalationPolicy(
        escalate_when=verdict_failed(), stop_when=tiers_exhausted(), on_exhausted="return_best"
    )
    router = Router(
        tiers=[
            FakeWorker(["alpha"], name="a", price=CHEAP),
            FakeWorker(["beta"], name="b", price=TOP),
        ],
        verifiers=[ContainsVerifier("alpha"), ContainsVerifier("z")],
        policy=policy,
        ledger=ledger,
    )
    result = await router.route(ChatRequest.from_text("q"))
    assert result.accepted is False
    assert result.decision is Decision.STOP
    assert result.tier == "a"
    assert result.content == "alpha"


async def test_worker_error_escalates_and_marks_degraded(ledger: SQLiteLedger) -> None:
    down = WorkerUnavailable("connection refused", worker="local:w", transient=False)
    router = Router(
        tiers=[
            FakeWorker([down], name="local:w", price=GpuHourPrice(Decimal("2"))),
            FakeWorker(["good"], name="frontier:f", price=TOP),
        ],
        verifiers=[ContainsVerifier("good")],
        ledger=ledger,
        clock=iter([0.0, 1.8, 2.0, 2.5]).__next__,
    )
    result = await router.route(ChatRequest.from_text("q"))
    assert result.degraded is True
    assert result.tier == "frontier:f"
    rows = ledger.rows()
    assert rows[0].error_type == "WorkerUnavailable"
    assert "connection refused" in (rows[0].error or "")
    # a local GPU held 1.8 s at $2/h is still paid for: 2 * 1.8 / 3600
    assert rows[0].cost_usd == Decimal("0.001")
    assert rows[0].latency_s == pytest.approx(1.8)
    assert rows[1].degraded is True


async def test_every_tier_down_raises_and_keeps_rows(ledger: SQLiteLedger) -> None:
    router = Router(
        tiers=[
            FakeWorker([WorkerUnavailable("oom", worker="a")], name="a", price=CHEAP),
            FakeWorker([WorkerUnavailable("gone", worker="b")], name="b", price=TOP),
        ],
        ledger=ledger,
    )
    with pytest.raises(EscalationExhausted, match="b: gone"):
        await router.route(ChatRequest.from_text("q"))
    assert [r.error_type for r in ledger.rows()] == ["WorkerUnavailable", "WorkerUnavailable"]
    assert [r.cost_usd for r in ledger.rows()] == [Decimal(0), Decimal(0)]


async def test_unknown_price_is_none_never_zero(ledger: SQLiteLedger) -> None:
    router = Router(tiers=[FakeWorker(["x"], name="a"), FakeWorker(["y"], name="b")], ledger=ledger)
    result = await router.route(ChatRequest.from_text("q"))
    assert result.cost_usd is None
    assert result.counterfactual_usd is None
    assert ledger.rows()[0].cost_usd is None


async def test_missing_usage_makes_token_cost_unknown(ledger: SQLiteLedger) -> None:
    bare = Completion(content="ok", model="m", usage=None)
    router = Router(tiers=[FakeWorker([bare], name="a", price=CHEAP)], ledger=ledger)
    result = await router.route(ChatRequest.from_text("q"))
    assert result.cost_usd is None
    assert ledger.rows()[0].prompt_tokens is None


async def test_spend_limit_stops_escalation(ledger: SQLiteLedger) -> None:
    policy = EscalationPolicy(
        escalate_when=verdict_failed(),
        stop_when=spent_over("0.000001"),
        on_exhausted="return_best",
    )
    router = Router(
        tiers=[FakeWorker(["bad " * 20], name="a", price=MID), FakeWorker(["good"], name="b")],
        verifiers=[ContainsVerifier("good")],
        policy=policy,
        ledger=ledger,
    )
    result = await router.route(ChatRequest.from_text("q"))
    assert result.tier == "a"
    assert result.accepted is False
    assert "spent_over" in result.reason
    assert len(ledger.rows()) == 1


async def test_low_confidence_escalates() -> None:
    router = Router(
        tiers=[FakeWorker(["x"], name="a"), FakeWorker(["y"], name="b")],
        verifiers=[FakeVerifier([0.6, 0.9])],
        policy=0.7,
    )
    result = await router.route(ChatRequest.from_text("q"))
    assert result.tier == "b"
    assert "confidence 0.600 too low" in result.attempts[0].reason


async def test_a_crashing_verifier_is_a_rejection(ledger: SQLiteLedger) -> None:
    class Broken:
        name = "broken"

        async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
            raise ZeroDivisionError("bug in user code")

    router = Router(
        tiers=[FakeWorker(["x"], name="a"), FakeWorker(["y"], name="b")],
        verifiers=[Broken()],
        policy=EscalationPolicy(on_exhausted="return_best"),
        ledger=ledger,
    )
    result = await router.route(ChatRequest.from_text("q"))
    assert result.accepted is False
    assert "verifier raised ZeroDivisionError: bug in user code" in ledger.rows()[0].reason


async def test_many_concurrent_routes_on_one_router(ledger: SQLiteLedger) -> None:
    async def echo(request: ChatRequest, skill: object) -> str:
        await asyncio.sleep(0)
        return "good " + request.query

    router = Router(
        tiers=[FunctionWorker(echo, name="local:echo", price=CHEAP)],
        verifiers=[ContainsVerifier("good")],
        ledger=ledger,
    )
    requests = [ChatRequest.from_text(f"n{i}", team=f"t{i % 3}") for i in range(200)]
    results = await router.route_many(requests, concurrency=32)
    assert [r.content for r in results if not isinstance(r, Exception)] == [
        f"good n{i}" for i in range(200)
    ]
    assert ledger.count() == 200
    assert len({r.route_id for r in ledger.rows()}) == 200


async def test_route_many_keeps_failures_in_their_slot() -> None:
    router = Router(
        tiers=[FunctionWorker(lambda r, s: r.query, name="echo")],
        verifiers=[ContainsVerifier("ok")],
    )
    results = await router.route_many(
        [ChatRequest.from_text("ok 1"), ChatRequest.from_text("no"), ChatRequest.from_text("ok 3")]
    )
    assert isinstance(results[1], EscalationExhausted)
    assert [getattr(r, "content", None) for r in results] == ["ok 1", None, "ok 3"]


async def test_route_many_rejects_zero_concurrency() -> None:
    router = Router(tiers=[FakeWorker(["x"])])
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        await router.route_many([], concurrency=0)


def test_route_sync_and_usage_counts_all_attempts() -> None:
    router = three_tiers(("bad", "bad", "good"), None)
    result = router.route_sync(ChatRequest.from_text("one two"))
    assert result.tier == "frontier:top"
    assert result.usage == Usage(prompt_tokens=6, completion_tokens=3)


def test_router_rejects_an_empty_ladder_and_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="at least one tier"):
        Router(tiers=[])
    with pytest.raises(ConfigError, match="unique"):
        Router(tiers=[FakeWorker(["x"], name="a"), FakeWorker(["y"], name="a")])


class _ListSink:
    """Keeps the records the router hands its observers (the SQLite ledger is tested apart)."""

    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def record(self, entry: CallRecord) -> None:
        self.rows.append(entry)


async def test_a_cancelled_route_records_the_attempt_in_flight_then_cancels() -> None:
    started = asyncio.Event()

    async def hang(request: ChatRequest, skill: object) -> str:
        started.set()
        await asyncio.Event().wait()  # never answers
        return "never"

    sink = _ListSink()
    gpu = GpuHourPrice(Decimal("3.60"), gpus=1)
    tiers: list[Worker | Tier] = [
        Tier(FunctionWorker(hang, name="local:w"), price=gpu),
        FakeWorker(["x"], name="frontier:f", price=TOP),
    ]
    clock = iter([0.0, 2.0, 2.0, 2.0])
    router = Router(tiers=tiers, ledger=sink, clock=lambda: next(clock))
    task = asyncio.create_task(router.route(ChatRequest.from_text("q", team="t")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = sink.rows
    assert (row.tier, row.error_type, row.final, row.decision) == (
        "local:w",
        "Cancelled",
        True,
        Decision.STOP,
    )
    assert row.cost_usd == Decimal("0.002")  # 2 s of one GPU at $3.60/h: the time it held


async def test_a_cancelled_call_on_a_per_token_tier_costs_unknown_not_zero() -> None:
    started = asyncio.Event()

    async def hang(request: ChatRequest, skill: object) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    sink = _ListSink()
    router = Router(tiers=[FunctionWorker(hang, name="frontier:f", price=TOP)], ledger=sink)
    task = asyncio.create_task(router.route(ChatRequest.from_text("q")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(r.error_type, r.cost_usd) for r in sink.rows] == [("Cancelled", None)]


async def test_records_carry_tags_task_and_step_from_metadata() -> None:
    sink = _ListSink()
    router = Router(tiers=[FakeWorker(["ok"], name="local:w")], ledger=sink)
    request = ChatRequest.from_text(
        "q", team="claims", project="renewals", cost_centre="cc-7", task_id="t1", step="3"
    )
    await router.route(request)
    (row,) = sink.rows
    assert (row.team, row.task_id, row.step) == ("claims", "t1", 3)
    assert dict(row.tags) == {"project": "renewals", "cost_centre": "cc-7"}
