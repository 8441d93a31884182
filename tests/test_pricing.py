"""Pricing: litellm's bundled map, policy overrides, unknown prices, GPU-hours, $/Mtoken."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from paxis_router.config.schema import config_from_mapping
from paxis_router.pricing import (
    GpuHourPrice,
    TokenPrice,
    context_window,
    cost_or_none,
    litellm_price,
    litellm_price_map,
)
from paxis_router.router import Router
from paxis_router.types import Usage


def test_known_model_from_the_map_is_exact() -> None:
    price = litellm_price("gpt-4-1106-preview")
    assert price == TokenPrice(Decimal("0.00001"), Decimal("0.00003"))
    assert price.cost(Usage(1000, 500), held_s=3.0) == Decimal("0.02500")
    assert isinstance(litellm_price_map()["gpt-4o"]["input_cost_per_token"], Decimal)


def test_provider_prefix_is_stripped() -> None:
    assert litellm_price("openai/gpt-4o") == litellm_price("gpt-4o")
    assert context_window("gpt-4o") == 128000


def test_overridden_by_the_policy() -> None:
    cfg = config_from_mapping(
        {
            "tiers": [{"kind": "litellm", "model": "gpt-4-1106-preview"}],
            "policy": {
                "price_overrides": {
                    "gpt-4-1106-preview": {"input_usd_per_mtok": "5", "output_usd_per_mtok": "15"}
                }
            },
        }
    )
    (tier,) = Router.from_config(cfg).tiers
    assert tier.price is not None
    assert tier.price.cost(Usage(1000, 500), held_s=0.0) == Decimal("0.012500")


def test_unknown_model_is_none_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="paxis_router.pricing")
    assert litellm_price("acme-unreleased-model-77") is None
    assert "no price known for model 'acme-unreleased-model-77'" in caplog.text
    assert cost_or_none(None, Usage(10, 10), 1.0) is None


def test_token_price_without_usage_is_unknown() -> None:
    assert TokenPrice.per_million("1", "2").cost(None, held_s=1.0) is None


def test_gpu_hour_by_latency() -> None:
    price = GpuHourPrice(Decimal("3.60"), gpus=2)
    # 2 GPUs × $3.60/h × 0.5 s = $0.001
    assert price.cost(Usage(100, 100), held_s=0.5) == Decimal("0.001")
    assert price.cost(None, held_s=0.5) == Decimal("0.001")
    assert price.usd_per_million_tokens is None


def test_gpu_hour_by_throughput() -> None:
    price = GpuHourPrice(Decimal("2.49"), gpus=2, throughput_tokens_per_s=Decimal(3000))
    # 3000 tokens at 3000 tok/s hold 1 s of 2 GPUs at $2.49/h.
    assert price.cost(Usage(2000, 1000), held_s=99.0) == Decimal("2.49") * 2 / 3600
    assert price.cost(None, held_s=1.0) is None


def test_dollars_per_million_tokens() -> None:
    price = GpuHourPrice(Decimal("3.60"), throughput_tokens_per_s=Decimal(1000))
    assert price.usd_per_million_tokens == Decimal("1")
    assert TokenPrice.per_million("2.50", "10.00") == TokenPrice(
        Decimal("0.0000025"), Decimal("0.00001")
    )
    assert TokenPrice.per_million("2.50", "10.00").cost(Usage(10**6, 10**6), 0.0) == Decimal("12.5")
