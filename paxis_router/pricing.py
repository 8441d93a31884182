"""Usage -> Decimal USD.

Provider models are priced per token from a price map: the snapshot of litellm's
``model_prices_and_context_window.json`` that ships inside paxis_router
(``paxis_router/data/prices/``, MIT, trimmed to the columns read here; ``make prices`` refreshes
it) and, when litellm is installed (the ``[litellm]`` extra), litellm's own bundled copy. Both are
read as local JSON files: litellm is never imported for a price and nothing is fetched over the
network. For a model both maps know, the map from the newer litellm version wins (litellm's own
on a tie): a price cut reaches the ledger as soon as either the snapshot or litellm is upgraded,
and an old litellm never overrides a newer snapshot. A policy's ``price_overrides`` and a tier's
explicit price win over both maps (``paxis_router.config``).

What a :class:`TokenPrice` charges, for the token counts a provider reports in :class:`Usage`
(OpenAI's convention, which the workers normalise to: cached tokens are *part of* the prompt
tokens, reasoning tokens *part of* the completion tokens, so nothing is counted twice):

* prompt tokens not served from the cache: the input rate (``input_cost_per_token``);
* ``cached_prompt_tokens``: the cached-input rate (``cache_read_input_token_cost``), or the input
  rate when the map has none;
* completion tokens other than reasoning: the output rate (``output_cost_per_token``);
* ``reasoning_tokens``: the reasoning rate (``output_cost_per_reasoning_token``), or the output
  rate when the map has none (OpenAI bills reasoning as output).

A count above its total (more cached than prompt tokens) is capped at the total. Writing to a
provider's cache (Anthropic's ``cache_creation_input_token_cost``) is not reported in Usage and is
charged at the input rate.

Local GPU tiers are priced by the GPU time they hold: $/GPU-hour × seconds, where the seconds are
either the measured latency or, for a batched server, tokens / throughput. An unknown price is
``None`` plus a logged warning, never 0.

Example:
    >>> from paxis_router.types import Usage
    >>> TokenPrice.per_million("2.50", "10.00").cost(Usage(1000, 100), held_s=0.0)
    Decimal('0.0035000')
    >>> cached = TokenPrice.per_million("2.50", "10.00", cached_input="1.25")
    >>> cached.cost(Usage(1000, 100, cached_prompt_tokens=800), held_s=0.0)  # 800 cached
    Decimal('0.00250000')
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from paxis_router.types import Usage

logger = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
_SECONDS_PER_HOUR = Decimal(3600)
SHIPPED_PRICE_MAP = Path(__file__).with_name("data") / "prices" / "model_prices.json"
"""The price map paxis_router ships (a trimmed snapshot of litellm's; see its SOURCE.md)."""


class Price(Protocol):
    """Turns one call's tokens and held time into dollars (``None`` when unknown)."""

    def cost(self, usage: Usage | None, held_s: float) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """A per-token price, as providers charge (see the module docstring for what each rate
    applies to). ``cached_input_usd_per_token`` / ``reasoning_usd_per_token``: None charges
    those tokens at the input / output rate."""

    input_usd_per_token: Decimal
    output_usd_per_token: Decimal
    cached_input_usd_per_token: Decimal | None = None
    reasoning_usd_per_token: Decimal | None = None

    @classmethod
    def per_million(
        cls,
        input_usd: str | Decimal,
        output_usd: str | Decimal,
        *,
        cached_input: str | Decimal | None = None,
        reasoning: str | Decimal | None = None,
    ) -> TokenPrice:
        """Build from $ per million input, output (and cached-input, reasoning) tokens."""
        return cls(
            Decimal(input_usd) / _MILLION,
            Decimal(output_usd) / _MILLION,
            None if cached_input is None else Decimal(cached_input) / _MILLION,
            None if reasoning is None else Decimal(reasoning) / _MILLION,
        )

    def cost(self, usage: Usage | None, held_s: float) -> Decimal | None:
        if usage is None:
            return None
        cached = min(max(usage.cached_prompt_tokens, 0), usage.prompt_tokens)
        reasoning = min(max(usage.reasoning_tokens, 0), usage.completion_tokens)
        cost = self.input_usd_per_token * (
            usage.prompt_tokens - cached
        ) + self.output_usd_per_token * (usage.completion_tokens - reasoning)
        if cached:
            cost += (self.cached_input_usd_per_token or self.input_usd_per_token) * cached
        if reasoning:
            cost += (self.reasoning_usd_per_token or self.output_usd_per_token) * reasoning
        return cost


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


_PriceMap = dict[str, dict[str, object]]


def _version_key(version: str) -> tuple[int, ...]:
    """``"1.110.2"`` -> (1, 110, 2); leading digits of each part (``"3rc1"`` -> 3)."""
    key = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        key.append(int(digits.group()))
    return tuple(key)


@functools.cache
def _shipped_map() -> tuple[str, _PriceMap]:
    """The shipped snapshot: (the litellm version it was taken from, its models)."""
    raw = json.loads(SHIPPED_PRICE_MAP.read_text(encoding="utf-8"))
    columns: list[str] = raw["meta"]["columns"]
    models: dict[str, dict[str, object]] = {}
    for name, row in raw["models"].items():
        entry: dict[str, object] = {}
        for column, value in zip(columns, row, strict=True):
            if value is not None:
                entry[column] = int(value) if column == "max_input_tokens" else Decimal(value)
        models[name] = entry
    return str(raw["meta"]["litellm_version"]), models


def _installed_map() -> tuple[str, _PriceMap] | None:
    """The map inside the installed litellm and litellm's version; None without litellm."""
    path = _litellm_price_file()
    if path is None:
        return None
    try:
        version = importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a broken install
        version = "0"
    with path.open(encoding="utf-8") as handle:
        data: _PriceMap = json.load(handle, parse_float=Decimal)
    return version, data


def _merge(
    shipped: tuple[str, _PriceMap], installed: tuple[str, _PriceMap] | None
) -> tuple[str, _PriceMap]:
    """(what is read, the merged map): per model, the map of the newer litellm version wins."""
    shipped_version, ours = shipped
    source = f"paxis_router's snapshot of litellm {shipped_version}'s map"
    if installed is None:
        return source, ours
    version, theirs = installed
    if _version_key(version) >= _version_key(shipped_version):
        return f"litellm {version}'s map (installed), then {source}", {**ours, **theirs}
    return f"{source}, then litellm {version}'s map (installed, older)", {**theirs, **ours}


@functools.cache
def _merged() -> tuple[str, _PriceMap]:
    return _merge(_shipped_map(), _installed_map())


def litellm_price_map() -> dict[str, dict[str, object]]:
    """The model price map (litellm's format), with exact Decimal prices: the shipped snapshot
    merged with the installed litellm's map, the newer one winning (module docstring).

    Read once, then cached; never fetched over the network.

    Example:
        >>> litellm_price_map()["gpt-4-1106-preview"]["input_cost_per_token"]
        Decimal('0.00001')
    """
    return _merged()[1]


def price_map_source() -> str:
    """Which price maps :func:`litellm_price_map` reads, in the order they win.

    Example:
        >>> "paxis_router's snapshot of litellm" in price_map_source()
        True
    """
    return _merged()[0]


def _map_entry(model: str) -> dict[str, object] | None:
    prices = litellm_price_map()
    entry = prices.get(model)
    if entry is None and "/" in model:
        # "openai/gpt-4o" -> "gpt-4o": litellm keys most first-party models without a prefix.
        entry = prices.get(model.split("/", 1)[1])
    return entry


def _rate(entry: dict[str, object], key: str) -> Decimal | None:
    value = entry.get(key)
    return Decimal(value) if isinstance(value, Decimal | int) else None


def litellm_price(model: str) -> TokenPrice | None:
    """The per-token price of ``model`` in the price map, or None (with a warning).

    Example:
        >>> litellm_price("gpt-4o").cached_input_usd_per_token
        Decimal('0.00000125')
    """
    entry = _map_entry(model)
    if entry is not None:
        inp = _rate(entry, "input_cost_per_token")
        out = _rate(entry, "output_cost_per_token")
        if inp is not None and out is not None:
            return TokenPrice(
                inp,
                out,
                _rate(entry, "cache_read_input_token_cost"),
                _rate(entry, "output_cost_per_reasoning_token"),
            )
    _warn_unknown(model)
    return None


def context_window(model: str) -> int | None:
    """The model's input context window from the price map, when known."""
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
