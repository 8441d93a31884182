"""litellm is an extra: without it a litellm tier says which extra to install, and provider
models are still priced (from the shipped price map)."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest

from paxis_router.errors import ConfigError
from paxis_router.pricing import TokenPrice, _merge, _shipped_map
from paxis_router.types import ChatRequest
from paxis_router.workers.litellm import LiteLLMWorker, load_litellm


async def test_a_litellm_tier_without_litellm_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # what `import litellm` sees uninstalled
    with pytest.raises(ConfigError, match=r"pip install 'paxis-router\[litellm\]'"):
        load_litellm()
    worker = LiteLLMWorker("gpt-4o")  # building needs no litellm: its price is from the map
    assert isinstance(worker.price, TokenPrice)
    with pytest.raises(
        ConfigError, match=r"kind: litellm tiers .* need litellm, an optional extra"
    ):
        await worker.complete(ChatRequest.from_text("hi"), None)


def test_without_litellm_the_snapshot_still_prices_frontier_models() -> None:
    _, merged = _merge(_shipped_map(), None)
    assert (
        merged["gpt-4o"]["input_cost_per_token"]
        == TokenPrice.per_million("2.5", "10").input_usd_per_token
    )
    assert isinstance(merged["claude-sonnet-4-5"]["output_cost_per_token"], Decimal)
