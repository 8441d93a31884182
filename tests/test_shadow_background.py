"""Shadow calls in the background: the route returns first, ``drain()`` (and route_many,
aclose, the proxy's shutdown) waits for the shadow row, route_sync runs it inline, the backlog is
bounded, and errors are recorded (a failing tier) or raised by ``drain()`` (a ledger that
refused the row)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from paxis_router import ChatRequest, Router, SQLiteLedger, TokenPrice
from paxis_router.config.schema import RouterConfig
from paxis_router.errors import LedgerError, WorkerError
from paxis_router.shadow import ShadowSampling
from paxis_router.skills.model import Skill
from paxis_router.testing import FakeWorker, FunctionWorker
from paxis_router.types import Decision
from paxis_router.verifiers import RegexVerifier

LOCAL = TokenPrice.per_million("0.10", "0.10")
TOP = TokenPrice.per_million("10", "30")


class Gated:
    """A frontier answer that waits until the test opens the gate (made in the test's loop)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls = 0

    async def __call__(self, request: ChatRequest, skill: Skill | None) -> str:
        self.calls += 1
        await self.open.wait()
        return "43"


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    return SQLiteLedger(tmp_path / "ledger.db")


def _router(ledger: SQLiteLedger, top: FakeWorker | FunctionWorker, **kw: object) -> Router:
    local = FakeWorker(["42"], name="local:w", price=LOCAL)
    return Router(
        tiers=[local, top],
        verifiers=[RegexVerifier(must_match=r"\d")],
        ledger=ledger,
        shadow=ShadowSampling(rate=1.0, **kw),  # type: ignore[arg-type]  # the test's options
    )


def _decisions(ledger: SQLiteLedger) -> list[tuple[str, Decision]]:
    return [(r.tier, r.decision) for r in ledger.rows()]


async def test_the_route_returns_before_the_shadow_call_finishes(ledger: SQLiteLedger) -> None:
    gated = Gated()
    router = _router(ledger, FunctionWorker(gated, name="frontier:f", price=TOP))
    result = await router.route(ChatRequest.from_text("6*7?", team="claims"))
    assert (result.content, result.tier) == ("42", "local:w")
    assert router.shadow_pending == 1
    await asyncio.sleep(0)  # let the shadow task start: it now waits at the gate
    assert gated.calls == 1
    assert _decisions(ledger) == [("local:w", Decision.ACCEPT)]  # no shadow row yet
    gated.open.set()
    await router.drain()
    assert router.shadow_pending == 0
    rows = ledger.rows()
    assert _decisions(ledger) == [("local:w", Decision.ACCEPT), ("frontier:f", Decision.SHADOW)]
    assert (rows[1].route_id, rows[1].attempt_index, rows[1].final) == (result.route_id, 1, False)
    assert rows[1].cost_usd is not None and rows[1].cost_usd > 0


def test_route_sync_leaves_the_shadow_row_written(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP))
    result = router.route_sync(ChatRequest.from_text("6*7?"))
    assert result.tier == "local:w"
    assert router.shadow_pending == 0
    assert _decisions(ledger) == [("local:w", Decision.ACCEPT), ("frontier:f", Decision.SHADOW)]


def test_route_sync_from_several_threads_records_every_shadow_row(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP))
    requests = [ChatRequest.from_text(f"q{i}") for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(router.route_sync, requests))
    assert [r.tier for r in results] == ["local:w"] * 8
    shadowed = sorted(r.route_id for r in ledger.rows() if r.decision is Decision.SHADOW)
    assert shadowed == sorted(r.route_id for r in results)


async def test_route_many_drains_its_shadow_calls(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP))
    results = await router.route_many([ChatRequest.from_text(f"q{i}") for i in range(3)])
    assert router.shadow_pending == 0
    shadowed = {r.route_id for r in ledger.rows() if r.decision is Decision.SHADOW}
    assert shadowed == {r.route_id for r in results if not isinstance(r, Exception)}
    assert len(shadowed) == 3


async def test_route_many_waits_for_room_instead_of_skipping(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP), max_pending=1)
    requests = [ChatRequest.from_text(f"q{i}") for i in range(6)]
    await router.route_many(requests, concurrency=3)
    assert router.shadow_skipped == 0
    shadowed = sorted(r.request_id for r in ledger.rows() if r.decision is Decision.SHADOW)
    assert shadowed == sorted(r.request_id for r in requests)


async def test_aclose_drains_before_it_returns(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP))
    await router.route(ChatRequest.from_text("6*7?"))
    assert router.shadow_pending == 1
    await router.aclose()
    assert [d for _, d in _decisions(ledger)] == [Decision.ACCEPT, Decision.SHADOW]


async def test_a_full_backlog_skips_and_counts_the_sample(
    ledger: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    gated = Gated()
    router = _router(ledger, FunctionWorker(gated, name="frontier:f", price=TOP), max_pending=2)
    requests = [ChatRequest.from_text(f"q{i}") for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="paxis_router.shadow"):
        results = [await router.route(r) for r in requests]
    assert [r.tier for r in results] == ["local:w"] * 5  # every route still answered
    assert (router.shadow_pending, router.shadow_skipped) == (2, 3)
    assert "shadow backlog full (2 pending)" in caplog.text
    gated.open.set()
    await router.drain()
    shadowed = [r.route_id for r in ledger.rows() if r.decision is Decision.SHADOW]
    assert shadowed == [results[0].route_id, results[1].route_id]  # the first two, not queued
    await router.route(ChatRequest.from_text("again"))  # room again once drained
    await router.drain()
    assert (router.shadow_skipped, len(ledger.rows())) == (3, 5 + 2 + 2)


async def test_a_failing_shadow_tier_is_a_recorded_failed_attempt(ledger: SQLiteLedger) -> None:
    down = WorkerError("503 service unavailable", worker="frontier:f")
    router = _router(ledger, FakeWorker([down], name="frontier:f", price=TOP))
    result = await router.route(ChatRequest.from_text("6*7?"))
    await router.drain()  # a failed tier is a value: nothing to raise
    assert result.content == "42"
    shadow = ledger.rows()[1]
    assert (shadow.decision, shadow.error_type, shadow.passed) == (
        Decision.SHADOW,
        "WorkerError",
        False,
    )
    assert shadow.error == "frontier:f: 503 service unavailable"


async def test_a_ledger_error_in_the_background_is_logged_and_raised_by_drain(
    ledger: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    gated = Gated()
    router = _router(ledger, FunctionWorker(gated, name="frontier:f", price=TOP))
    result = await router.route(ChatRequest.from_text("6*7?"))
    # The ledger is closed before the shadow call records: the ledger refuses the shadow row.
    ledger.close()
    gated.open.set()
    with (
        caplog.at_level(logging.ERROR, logger="paxis_router.shadow"),
        pytest.raises(LedgerError, match=r"ledger .* is closed"),
    ):
        await router.drain()
    assert f"shadow call paxis-shadow:{result.route_id} failed" in caplog.text
    await router.drain()  # raised once, then cleared


def test_a_shadow_call_cut_off_by_a_closing_loop_is_logged(
    ledger: SQLiteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    async def never(request: ChatRequest, skill: Skill | None) -> str:
        await asyncio.Event().wait()
        return "unreachable"

    router = _router(ledger, FunctionWorker(never, name="frontier:f", price=TOP))

    async def route_without_drain() -> None:
        await router.route(ChatRequest.from_text("6*7?"))
        await asyncio.sleep(0)  # the shadow call starts and blocks

    with caplog.at_level(logging.WARNING, logger="paxis_router.shadow"):
        asyncio.run(route_without_drain())
    assert router.shadow_pending == 0  # cancelled with the loop, no reference left behind
    assert "was cancelled before it finished" in caplog.text
    # what the cut-off call spent is still recorded, as a shadow row (cost unknown: per token)
    assert [d for _, d in _decisions(ledger)] == [Decision.ACCEPT, Decision.SHADOW]
    assert [(r.error_type, r.cost_usd, r.final) for r in ledger.rows()][1] == (
        "Cancelled",
        None,
        False,
    )


async def test_inline_mode_waits_for_the_shadow_call(ledger: SQLiteLedger) -> None:
    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP), inline=True)
    await router.route(ChatRequest.from_text("6*7?"))
    assert router.shadow_pending == 0
    assert [d for _, d in _decisions(ledger)] == [Decision.ACCEPT, Decision.SHADOW]


def test_the_policy_file_sets_inline_and_the_backlog_bound() -> None:
    tiers = [
        {"kind": "local", "name": "local:w", "model": "w", "base_url": "http://127.0.0.1:9/v1"},
        {"kind": "litellm", "model": "gpt-4o"},
    ]
    calibration = {"shadow_rate": 0.1, "inline": True, "max_pending": 8}
    router = Router.from_config(
        RouterConfig.model_validate({"tiers": tiers, "calibration": calibration})
    )
    assert router.shadow == ShadowSampling(rate=0.1, inline=True, max_pending=8)
    default = Router.from_config(RouterConfig.model_validate({"tiers": tiers}))
    assert default.shadow is None
    sampled = {"tiers": tiers, "calibration": {"shadow_rate": 0.1}}
    assert Router.from_config(RouterConfig.model_validate(sampled)).shadow == ShadowSampling(0.1)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RouterConfig.model_validate({"tiers": tiers, "calibration": {"max_pending": 0}})


async def test_the_proxy_drains_on_shutdown(ledger: SQLiteLedger) -> None:
    from paxis_router.proxy.app import create_app

    router = _router(ledger, FakeWorker(["43"], name="frontier:f", price=TOP))
    app = create_app(router)
    async with app.router.lifespan_context(app):
        await router.route(ChatRequest.from_text("6*7?"))
        assert router.shadow_pending == 1
    assert router.shadow_pending == 0
    assert [d for _, d in _decisions(ledger)] == [Decision.ACCEPT, Decision.SHADOW]


def test_router_docstring_examples_run() -> None:
    import doctest

    from paxis_router import router as router_module

    result = doctest.testmod(router_module)
    assert result.attempted > 0
    assert result.failed == 0
