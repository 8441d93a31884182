"""Usage -> Decimal USD.

Frontier tiers are priced per token from litellm's bundled price map, read straight from the JSON
file that ships inside the litellm package (litellm itself is not imported, and nothing is fetched
over the network). Local GPU tiers are priced by the GPU time they hold: $/GPU-hour × seconds, where
the seconds are either the measured latency or, for a batched server, tokens / throughput.
An unknown price is ``None`` plus a logged warning, never 0.

Example:
    >>> from paxis_router.types import Usage
    >>> TokenPrice.per_million("2.50", "10.00").cost(Usage(1000, 100), held_s=0.0)
    Decimal('0.0035000')
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from paxis_router.types import Usage

logger = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
_SECONDS_PER_HOUR = Decimal(3600)


class Price(Protocol):
    """Turns one call's tokens and held time into dollars (``None`` when unknown)."""

    def cost(self, usage: Usage | None, held_s: float) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """A per-token price, as providers charge."""

    input_usd_per_token: Decimal
    output_usd_per_token: Decimal

    @classmethod
    def per_million(cls, input_usd: str | Decimal, output_usd: str | Decimal) -> TokenPrice:
        """Build from $ per million input and output tokens."""
        return cls(Decimal(input_usd) / _MILLION, Decimal(output_usd) / _MILLION)

    def cost(self, usage: Usage | None, held_s: float) -> Decimal | None:
        if usage is None:
            return None
        return (
            self.input_usd_per_token * usage.prompt_tokens
            + self.output_usd_per_token * usage.completion_tokens
        )


@dataclass(frozen=True, slots=True)
class GpuHourPrice:
    """A local GPU tier: $/GPU-hour × the GPU time a call held.

    With ``throughput_tokens_per_s`` (the server's aggregate throughput under batching), a call
    holds ``total_tokens / throughput`` GPU-seconds — the amortised cost of a share of a busy
    server. Without it, the call's measured latency is charged in full (a conservative upper
    bound for a server that batches).
    """

    usd_per_gpu_hour: Decimal
    gpus: int = 1
    throughput_tokens_per_s: Decimal | None = None

    def cost(self, usage: Usage | None, held_s: float) -> Decimal | None:
        if self.throughput_tokens_per_s is not None:
            if usage is None:
                return None
            seconds = Decimal(usage.total_tokens) / self.throughput_tokens_per_s
        else:
            seconds = Decimal(repr(held_s))
        return self.usd_per_gpu_hour * self.gpus * seconds / _SECONDS_PER_HOUR

    @property
    def usd_per_million_tokens(self) -> Decimal | None:
        """The equivalent $/Mtoken when a throughput is configured."""
        if self.throughput_tokens_per_s is None:
            return None
        per_second = self.usd_per_gpu_hour * self.gpus / _SECONDS_PER_HOUR
        return per_second / self.throughput_tokens_per_s * _MILLION


def _litellm_price_file() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model_prices_and_context_window_backup.json"
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def litellm_price_map() -> dict[str, dict[str, object]]:
    """litellm's bundled model price map, read locally with exact Decimal prices.

    Empty when litellm is not installed. Cached after the first read.
    """
    path = _litellm_price_file()
    if path is None:
        logger.warning("litellm is not installed: provider prices are unknown")
        return {}
    with path.open(encoding="utf-8") as handle:
        data: dict[str, dict[str, object]] = json.load(handle, parse_float=Decimal)
    return data


def _map_entry(model: str) -> dict[str, object] | None:
    prices = litellm_price_map()
    entry = prices.get(model)
    if entry is None and "/" in model:
        # "openai/gpt-4o" -> "gpt-4o": litellm keys most first-party models without a prefix.
        entry = prices.get(model.split("/", 1)[1])
    return entry


def litellm_price(model: str) -> TokenPrice | None:
    """The per-token price of ``model`` in litellm's bundled map, or None (with a warning)."""
    entry = _map_entry(model)
    if entry is not None:
        inp = entry.get("input_cost_per_token")
        out = entry.get("output_cost_per_token")
        if isinstance(inp, Decimal | int) and isinstance(out, Decimal | int):
            return TokenPrice(Decimal(inp), Decimal(out))
    _warn_unknown(model)
    return None


def context_window(model: str) -> int | None:
    """The model's input context window from litellm's map, when known."""
    entry = _map_entry(model)
    value = entry.get("max_input_tokens") if entry else None
    return int(value) if isinstance(value, int | Decimal) else None


@functools.cache
def _warn_unknown(model: str) -> None:
    logger.warning("no price known for model %r: its cost is recorded as unknown", model)


def cost_or_none(price: Price | None, usage: Usage | None, held_s: float) -> Decimal | None:
    """``price.cost(...)``, or None when there is no price."""
    if price is None:
        return None
    return price.cost(usage, held_s)


def format_usd(value: Decimal | None, *, places: int = 6) -> str:
    """A dollar amount for display: rounded to ``places`` decimals (half to even), written out
    in full (never in exponent notation); ``"unknown"`` for None (an unknown price).

    Display only: amounts are stored and summed at full precision. Use 6 places for one
    request's cost, 2-4 for totals a person reads.

    Example:
        >>> format_usd(Decimal("0.000017500000000000000000000000001"))
        '0.000018'
        >>> format_usd(Decimal("1234.5"), places=2), format_usd(None)
        ('1234.50', 'unknown')
    """
    if value is None or not value.is_finite():
        return "unknown"
    with localcontext() as context:
        context.prec = max(context.prec, value.adjusted() + places + 2)
        rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if rounded.is_zero():
        rounded = abs(rounded)  # never "-0.000000"
    return f"{rounded:f}"
