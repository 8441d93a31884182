"""Shadow sampling: a seeded share of accepted worker answers also calls the next tier, recorded
as a ``shadow`` row at its real cost; the answer never changes and the gate still decides."""

from __future__ import annotations

import doctest
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paxis_router import ChatRequest, Router, SQLiteLedger, TokenPrice
from paxis_router.config.schema import RouterConfig
from paxis_router.errors import ConfigError
from paxis_router.governance.audit import AuditLog
from paxis_router.governance.budgets import Budgets
from paxis_router.governance.gate import Gate, parse_gate_policy
from paxis_router.reports import cost_report as report
from paxis_router.shadow import ShadowSampling
from paxis_router.testing import FakeWorker
from paxis_router.types import Decision
from paxis_router.verifiers import RegexVerifier

LOCAL = TokenPrice.per_million("0.10", "0.10")
TOP = TokenPrice.per_million("10", "30")
SOVEREIGN = parse_gate_policy(
    {
        "version": "shadow-test-1",
        "rules": [
            {"id": "restricted-home", "effect": "deny", "data_classes": ["restricted"],
             "destinations": ["!local"]},
            {"id": "allow-all", "effect": "allow"},
        ],
    }
)  # fmt: skip


def _ladder(worker_answer: str = "42") -> tuple[FakeWorker, FakeWorker]:
    local = FakeWorker([worker_answer], name="local:w", price=LOCAL)
    frontier = FakeWorker(["43"], name="frontier:f", price=TOP, destination="openai:us")
    return local, frontier


def _router(
    local: FakeWorker, frontier: FakeWorker, ledger: SQLiteLedger, **options: Any
) -> Router:  # Any: Router keyword arguments
    """The ladder under test; an answer with a digit in it passes the verifier."""
    return Router(
        tiers=[local, frontier],
        verifiers=[RegexVerifier(must_match=r"\d")],
        ledger=ledger,
        **options,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    return SQLiteLedger(tmp_path / "ledger.db")


async def test_a_sampled_route_records_a_shadow_row_and_keeps_its_answer(
    ledger: SQLiteLedger,
) -> None:
    local, frontier = _ladder()
    router = _router(local, frontier, ledger, shadow=1.0)
    result = await router.route(ChatRequest.from_text("6*7?", team="claims"))
    await router.drain()
    assert (result.content, result.tier, result.escalated) == ("42", "local:w", False)
    assert [a.tier for a in result.attempts] == ["local:w"]
    assert len(frontier.calls) == 1
    rows = ledger.rows()
    assert [(r.tier, r.attempt_index, r.decision, r.final) for r in rows] == [
        ("local:w", 0, Decision.ACCEPT, True),
        ("frontier:f", 1, Decision.SHADOW, False),
    ]
    shadow = rows[1]
    assert shadow.cost_usd is not None and shadow.cost_usd > 0
    assert shadow.counterfactual_usd is None
    assert shadow.reason.startswith("shadow: calibration sample (rate 1)")
    assert [v.passed for v in shadow.verdicts] == [True]  # the shadow answer is verified too


async def test_shadow_spend_counts_in_reports_but_never_as_the_answer(
    ledger: SQLiteLedger,
) -> None:
    local, frontier = _ladder()
    router = _router(local, frontier, ledger, shadow=1.0)
    results = [await router.route(ChatRequest.from_text(f"q{i}", team="t")) for i in range(3)]
    await router.drain()
    rows = ledger.rows()
    spend = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    counterfactual = sum(
        (r.counterfactual_usd for r in rows if r.final and r.counterfactual_usd), Decimal(0)
    )
    built = report.build(ledger, by=("tier",))
    assert built.routes == 3
    assert built.attempts == 6
    assert built.escalation_rate == 0
    assert built.total_cost_usd == spend
    assert built.total_cost_usd > sum((r.cost_usd or Decimal(0) for r in results), Decimal(0))
    assert built.counterfactual_cost_usd == counterfactual
    frontier_row = next(g for g in built.breakdowns["tier"] if g.key == "frontier:f")
    assert (frontier_row.routes, frontier_row.attempts) == (0, 3)
    assert frontier_row.cost_usd == sum(
        (r.cost_usd or Decimal(0) for r in rows if r.decision is Decision.SHADOW), Decimal(0)
    )


async def test_sovereign_data_is_never_shadowed(ledger: SQLiteLedger, tmp_path: Path) -> None:
    local, frontier = _ladder()
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    router = _router(local, frontier, ledger, gate=Gate(SOVEREIGN), audit=audit, shadow=1.0)
    result = await router.route(ChatRequest.from_text("secret", data_class="restricted"))
    await router.drain()
    assert result.tier == "local:w"
    assert frontier.calls == []
    assert [r.decision for r in ledger.rows()] == [Decision.ACCEPT]
    # The same ladder with internal data is shadowed: the gate, not the rate, said no.
    await router.route(ChatRequest.from_text("plain", data_class="internal"))
    await router.drain()
    assert len(frontier.calls) == 1


async def test_escalated_routes_and_the_last_tier_are_never_shadowed(
    ledger: SQLiteLedger,
) -> None:
    local, frontier = _ladder(worker_answer="no idea")
    router = _router(local, frontier, ledger, shadow=1.0)
    result = await router.route(ChatRequest.from_text("6*7?"))
    assert result.tier == "frontier:f"
    assert [r.decision for r in ledger.rows()] == [Decision.ESCALATE, Decision.ACCEPT]
    assert len(frontier.calls) == 1


async def test_a_spent_budget_skips_the_shadow_call(ledger: SQLiteLedger) -> None:
    local, frontier = _ladder()
    budgets = Budgets.from_config({"teams": {"t": {"day": "0.0000001"}}}, ledger=ledger)
    router = _router(local, frontier, ledger, budgets=budgets, shadow=1.0)
    await router.route(ChatRequest.from_text("a long enough question", team="t"))
    await router.drain()
    assert frontier.calls == []
    assert [r.decision for r in ledger.rows()] == [Decision.ACCEPT]


def test_sampling_is_seeded_reproducible_and_near_the_rate() -> None:
    ids = [f"req-{i}" for i in range(4000)]
    sample = ShadowSampling(0.1, seed=3)
    chosen = {i for i in ids if sample.sampled(i)}
    assert chosen == {i for i in ids if ShadowSampling(0.1, seed=3).sampled(i)}
    assert 0.085 < len(chosen) / len(ids) < 0.115
    other = {i for i in ids if ShadowSampling(0.1, seed=4).sampled(i)}
    assert other != chosen
    assert not any(ShadowSampling(0.0).sampled(i) for i in ids[:100])
    with pytest.raises(ConfigError, match="shadow_rate must be in"):
        ShadowSampling(1.5)


async def test_off_by_default_and_a_partial_rate_shadows_only_sampled_routes(
    ledger: SQLiteLedger,
) -> None:
    local, frontier = _ladder()
    assert Router(tiers=[local, frontier]).shadow is None
    router = _router(local, frontier, ledger, shadow=ShadowSampling(0.5, seed=11))
    requests = [ChatRequest.from_text(f"q{i}") for i in range(40)]
    for request in requests:
        await router.route(request)
    await router.drain()
    expected = sorted(
        r.request_id for r in requests if ShadowSampling(0.5, 11).sampled(r.request_id)
    )
    shadowed = sorted(r.request_id for r in ledger.rows() if r.decision is Decision.SHADOW)
    assert shadowed == expected
    assert 0 < len(shadowed) < 40


def test_the_policy_file_sets_the_rate() -> None:
    tiers = [
        {"kind": "local", "name": "local:w", "model": "w", "base_url": "http://127.0.0.1:9/v1"},
        {"kind": "litellm", "model": "gpt-4o"},
    ]
    cfg = RouterConfig.model_validate(
        {"tiers": tiers, "calibration": {"shadow_rate": 0.05, "shadow_seed": 9}}
    )
    router = Router.from_config(cfg)
    assert router.shadow == ShadowSampling(0.05, 9)
    assert Router.from_config(RouterConfig.model_validate({"tiers": tiers})).shadow is None
    with pytest.raises(ValueError, match="less than or equal to 1"):
        RouterConfig.model_validate({"tiers": tiers, "calibration": {"shadow_rate": 2}})


def test_docstring_examples_run() -> None:
    from paxis_router import shadow as _shadow

    result = doctest.testmod(_shadow)
    assert result.attempted > 0
    assert result.failed == 0
