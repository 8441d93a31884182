"""Pricing: the shipped and litellm's price maps, overrides, unknown prices, cached and reasoning
tokens, GPU-hours, $/Mtoken."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router import pricing
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


# --- the shipped price map, cached and reasoning tokens ------------------------------------------


def test_cached_prompt_tokens_at_the_cached_input_rate() -> None:
    price = litellm_price("gpt-4o")  # $2.50 input, $1.25 cached input, $10 output per Mtok
    assert price is not None
    assert price.cached_input_usd_per_token == Decimal("0.00000125")
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=800)
    # 200 uncached × 2.5e-6 + 800 cached × 1.25e-6 + 100 × 1e-5
    assert price.cost(usage, held_s=0.0) == Decimal("0.0005") + Decimal("0.001") + Decimal("0.001")


def test_reasoning_tokens_are_part_of_the_completion_tokens_never_counted_twice() -> None:
    # o3-mini's map entry has no reasoning rate: reasoning is billed as output, once.
    o3 = litellm_price("o3-mini")
    assert o3 is not None and o3.reasoning_usd_per_token is None
    with_reasoning = Usage(prompt_tokens=100, completion_tokens=1000, reasoning_tokens=900)
    assert o3.cost(with_reasoning, 0.0) == o3.cost(Usage(100, 1000), 0.0)
    # qwen-turbo has one: 5e-8 in, 2e-7 out, 5e-7 per reasoning token.
    qwen = litellm_price("dashscope/qwen-turbo")
    assert qwen == TokenPrice(Decimal("5E-8"), Decimal("2E-7"), None, Decimal("5E-7"))
    assert (
        qwen.cost(with_reasoning, 0.0)
        == Decimal("5E-8") * 100 + Decimal("2E-7") * 100 + Decimal("5E-7") * 900
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(10, 5, cached_prompt_tokens=50), Decimal("0.5") * 10 + 5 * Decimal(2)),
        (Usage(10, 5, reasoning_tokens=50), 10 * Decimal(1) + 5 * Decimal(3)),
        (
            Usage(10, 5, cached_prompt_tokens=-3, reasoning_tokens=-1),
            10 * Decimal(1) + 5 * Decimal(2),
        ),
    ],
)
def test_counts_above_their_total_are_capped(usage: Usage, expected: Decimal) -> None:
    price = TokenPrice(Decimal(1), Decimal(2), Decimal("0.5"), Decimal(3))
    assert price.cost(usage, 0.0) == expected


def test_per_million_with_cached_and_reasoning_rates() -> None:
    price = TokenPrice.per_million("3", "15", cached_input="0.30", reasoning="20")
    assert price == TokenPrice(
        Decimal("0.000003"), Decimal("0.000015"), Decimal("3E-7"), Decimal("0.00002")
    )


def test_the_shipped_map_is_read_without_litellm() -> None:
    version, models = pricing._shipped_map()
    assert pricing._version_key(version) >= (1, 50)
    assert models["gpt-4-1106-preview"] == {
        "input_cost_per_token": Decimal("0.00001"),
        "output_cost_per_token": Decimal("0.00003"),
        "max_input_tokens": 128000,
    }
    # Every row prices input and output: a model without both is left out of the snapshot.
    assert all(
        isinstance(m["input_cost_per_token"], Decimal)
        and isinstance(m["output_cost_per_token"], Decimal)
        for m in models.values()
    )


def _map(price: str) -> dict[str, dict[str, object]]:
    return {"m": {"input_cost_per_token": Decimal(price), "output_cost_per_token": Decimal(price)}}


@pytest.mark.parametrize(
    ("installed_version", "winner", "source_starts"),
    [
        ("1.111.0", "2", "litellm 1.111.0's map (installed)"),
        ("1.110.2", "2", "litellm 1.110.2's map (installed)"),  # a tie: litellm's own
        ("1.99.9", "1", "paxis_router's snapshot of litellm 1.110.2"),
        ("1.110.1rc2", "1", "paxis_router's snapshot"),
    ],
)
def test_the_newer_map_wins(installed_version: str, winner: str, source_starts: str) -> None:
    shipped = ("1.110.2", {**_map("1"), "only-ours": _map("7")["m"]})
    installed = (installed_version, {**_map("2"), "only-theirs": _map("9")["m"]})
    source, merged = pricing._merge(shipped, installed)
    assert source.startswith(source_starts)
    assert merged["m"]["input_cost_per_token"] == Decimal(winner)
    # A model only one map knows is still priced.
    assert merged["only-ours"]["input_cost_per_token"] == Decimal(7)
    assert merged["only-theirs"]["input_cost_per_token"] == Decimal(9)


def test_without_litellm_only_the_snapshot_is_read() -> None:
    source, merged = pricing._merge(("1.110.2", _map("1")), None)
    assert source == "paxis_router's snapshot of litellm 1.110.2's map"
    assert merged == _map("1")


def test_refresh_script_trims_litellms_map(tmp_path: Path) -> None:
    source = tmp_path / "litellm.json"
    source.write_text(
        json.dumps(
            {
                "sample_spec": {"mode": "one of: chat, ..."},
                "acme/chat": {
                    "mode": "chat",
                    "input_cost_per_token": 2.5e-06,
                    "output_cost_per_token": 1e-05,
                    "cache_read_input_token_cost": 1.25e-06,
                    "max_input_tokens": 128000,
                    "supports_vision": True,
                },
                "acme/embed": {"mode": "embedding", "input_cost_per_token": 1e-07},
                "acme/free-text": {"mode": "chat", "input_cost_per_token": 1e-07},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "prices.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "refresh_prices.py"
    argv = [str(script), "--from", str(source), "--litellm-version", "9.9.9", "-o", str(out)]
    done = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote 1 models from litellm 9.9.9")
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["meta"]["litellm_version"] == "9.9.9"
    assert written["models"] == {"acme/chat": ["0.0000025", "0.00001", "0.00000125", None, 128000]}


def test_a_price_override_can_set_cached_and_reasoning_rates() -> None:
    from paxis_router.config.schema import RouterConfig
    from paxis_router.router import Router

    overrides = {
        "o4": {
            "input_usd_per_mtok": "2",
            "output_usd_per_mtok": "8",
            "cached_input_usd_per_mtok": "0.5",
            "reasoning_usd_per_mtok": "8",
        }
    }
    cfg = RouterConfig.model_validate(
        {"tiers": [{"kind": "litellm", "model": "o4"}], "policy": {"price_overrides": overrides}}
    )
    price = Router.from_config(cfg).tiers[0].price
    assert price is not None
    usage = Usage(1_000_000, 1_000_000, cached_prompt_tokens=500_000, reasoning_tokens=250_000)
    # 0.5M uncached at $2 + 0.5M cached at $0.5 + 1M output (reasoning included) at $8
    assert price.cost(usage, 0.0) == Decimal("1.00") + Decimal("0.25") + Decimal("8")


def test_a_routes_usage_sums_cached_and_reasoning_tokens() -> None:
    from paxis_router.router import Router
    from paxis_router.testing import FakeWorker
    from paxis_router.types import ChatRequest, Completion

    answer = Completion("ok", "m", Usage(10, 5, cached_prompt_tokens=4, reasoning_tokens=2))
    result = Router(tiers=[FakeWorker([answer])]).route_sync(ChatRequest.from_text("q"))
    assert result.usage == Usage(10, 5, cached_prompt_tokens=4, reasoning_tokens=2)
