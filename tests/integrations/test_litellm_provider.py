"""litellm.completion(model="paxis/auto") routes through a Router in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paxis_router import Router, SQLiteLedger
from paxis_router.integrations.litellm import register
from paxis_router.testing import FakeVerifier, FakeWorker
from paxis_router.workers.litellm import load_litellm

MESSAGES = [{"role": "user", "content": "What is 6*7?"}]


@pytest.fixture
def litellm() -> Iterator[Any]:  # Any: the litellm module
    module: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(module.custom_provider_map)
    yield module
    module.custom_provider_map = saved


def _router(tmp_path: Path) -> tuple[Router, SQLiteLedger]:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
        verifiers=[FakeVerifier([False, True])],
        ledger=ledger,
    )
    return router, ledger


def test_completion_routes_escalates_and_records_the_team(litellm: Any, tmp_path: Path) -> None:
    router, ledger = _router(tmp_path)
    register(router, team="claims")
    response = litellm.completion(model="paxis/auto", messages=MESSAGES)
    assert response.choices[0].message.content == "42"
    assert response.model == "paxis/auto"
    # 3 prompt words on each of two attempts; 2 + 1 answer words.
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (6, 3)
    assert response._hidden_params["paxis"]["tier"] == "frontier:f"
    rows = ledger.rows()
    assert [(r.tier, r.team) for r in rows] == [("local:w", "claims"), ("frontier:f", "claims")]


async def test_acompletion_takes_the_team_from_metadata(litellm: Any, tmp_path: Path) -> None:
    router, ledger = _router(tmp_path)
    register({"ladder": router}, team="default-team")
    response = await litellm.acompletion(
        model="paxis/ladder", messages=MESSAGES, metadata={"team": "search"}
    )
    assert response.choices[0].message.content == "42"
    assert {r.team for r in ledger.rows()} == {"search"}


def test_unknown_route_names_the_registered_ones(litellm: Any, tmp_path: Path) -> None:
    register(_router(tmp_path)[0])
    with pytest.raises(Exception, match=r"unknown paxis route .*\['paxis/auto'\]"):
        litellm.completion(model="paxis/nope", messages=MESSAGES)


def test_stream_yields_the_verified_answer(litellm: Any, tmp_path: Path) -> None:
    router, ledger = _router(tmp_path)
    register(router, team="claims")
    chunks = list(litellm.completion(model="paxis/auto", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "42"
    assert ledger.count() == 2


async def test_astream_reports_the_paid_usage(litellm: Any, tmp_path: Path) -> None:
    register(_router(tmp_path)[0], team="claims")
    stream = await litellm.acompletion(
        model="paxis/auto",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [c.usage for c in [chunk async for chunk in stream] if getattr(c, "usage", None)]
    assert (usages[-1].prompt_tokens, usages[-1].completion_tokens) == (6, 3)
