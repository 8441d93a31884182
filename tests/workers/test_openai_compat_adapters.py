"""LoRA adapters over real HTTP (``OpenAICompatWorker(adapters=...)``): a skill's subtasks go to
its adapter, the rest to the base model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.config.schema import RouterConfig
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.model import Skill
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.types import ChatRequest
from paxis_router.workers.openai_compat import OpenAICompatWorker

INVOICES = Skill(
    "invoices", "invoices", "Read invoice totals.", metadata={"paxis-adapter": "invoice-lora"}
)
TICKETS = Skill("tickets", "tickets", "Triage support tickets.", metadata={})
ROGUE = Skill("rogue", "rogue", "Names an adapter nobody serves.", metadata={"paxis-adapter": "x"})


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(answer="42", model="base-model", logprobs=False) as up:
        yield up


@pytest.fixture
async def worker(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatWorker]:
    lora = OpenAICompatWorker(
        "local:lora", "base-model", upstream.base_url, adapters=["invoice-lora"], timeout_s=10
    )
    yield lora
    await lora.aclose()


def _router(worker: OpenAICompatWorker, ledger: SQLiteLedger) -> Router:
    return Router(tiers=[worker], ledger=ledger, skills=SkillLibrary([INVOICES, TICKETS, ROGUE]))


async def test_skill_adapter_and_base_model_over_http(
    upstream: FakeUpstream, worker: OpenAICompatWorker, tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = _router(worker, ledger)
    for skill in ("invoices", "tickets", "invoices"):
        await router.route(ChatRequest.from_text("total?", skill=skill))
    assert [body["model"] for body in upstream.requests] == [
        "invoice-lora",
        "base-model",
        "invoice-lora",
    ]
    assert [(r.skill, r.model, r.tier) for r in ledger.rows()] == [
        ("invoices", "invoice-lora", "local:lora"),
        ("tickets", "base-model", "local:lora"),
        ("invoices", "invoice-lora", "local:lora"),
    ]


async def test_unknown_adapter_falls_back_to_base_with_warning(
    upstream: FakeUpstream,
    worker: OpenAICompatWorker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = _router(worker, SQLiteLedger(tmp_path / "l.db"))
    with caplog.at_level(logging.WARNING, logger="paxis_router.workers.openai_compat"):
        result = await router.route(ChatRequest.from_text("?", skill="rogue"))
    assert upstream.requests[-1]["model"] == "base-model"
    assert result.attempts[0].model == "base-model"
    assert "names adapter 'x'" in caplog.text


def test_model_for_without_adapter_list_trusts_the_skill() -> None:
    worker = OpenAICompatWorker("local:l", "base", "http://127.0.0.1:1/v1")
    assert worker.model_for(ROGUE) == "x"
    assert worker.model_for(TICKETS) == "base"


def test_policy_tier_with_adapters_builds_a_worker_with_them() -> None:
    cfg = RouterConfig.model_validate(
        {
            "tiers": [
                {
                    "kind": "local",
                    "name": "local:q",
                    "model": "q",
                    "base_url": "http://127.0.0.1:8000/v1",
                    "adapters": ["invoice-lora"],
                    "usd_per_gpu_hour": "2.5",
                    "resilience": {"connect_timeout_s": 2, "read_timeout_s": 7},
                }
            ]
        }
    )
    tier = Router.from_config(cfg).tiers[0]
    assert isinstance(tier.worker, OpenAICompatWorker)
    assert tier.worker.adapters == frozenset({"invoice-lora"})
    assert tier.worker.model_for(INVOICES) == "invoice-lora"
    assert (tier.worker.connect_timeout_s, tier.worker.read_timeout_s) == (2, 7)
    assert tier.price is not None
    assert getattr(tier.price, "usd_per_gpu_hour", None) == Decimal("2.5")


async def test_every_adapter_shares_one_connection_pool(
    upstream: FakeUpstream, worker: OpenAICompatWorker, tmp_path: Path
) -> None:
    router = _router(worker, SQLiteLedger(tmp_path / "l.db"))
    for skill in ("invoices", "tickets", "invoices", "tickets"):
        await router.route(ChatRequest.from_text("total?", skill=skill))
    # Sequential calls to two models of one server reuse one keep-alive connection.
    assert upstream.connections == 1


async def test_adapter_streams_like_any_openai_compatible_worker(
    upstream: FakeUpstream, worker: OpenAICompatWorker
) -> None:
    pieces = [p async for p in worker.stream(ChatRequest.from_text("total?"), INVOICES)]
    assert "".join(p for p in pieces if isinstance(p, str)) == "42"
    assert upstream.requests[-1]["model"] == "invoice-lora"
