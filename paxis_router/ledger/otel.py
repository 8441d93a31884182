"""A LedgerSink that turns attempts into OpenTelemetry spans (the ``[otel]`` extra).

For each route: one INTERNAL span named ``route``, and under it one CLIENT span per attempt named
``"{gen_ai.operation.name} {gen_ai.request.model}"`` (e.g. ``chat gpt-4o``) with the GenAI
semantic-convention attributes and ``paxis.*`` attributes (keys in
``paxis_router.ledger.otel_keys``).
Spans are created after the fact with explicit start and end times (the attempt's ``ts`` and
``ts + latency_s``), so the sink buffers a route's attempts until its final row arrives.

``gen_ai.provider.name`` is the model's ``provider/`` prefix when it has one (``openai/gpt-4o``),
else the tier name's prefix (``local`` for ``local:qwen``).

Content capture: prompt and completion text are never put on spans by this sink. A CallRecord
carries no text, so capturing content needs a router hook that passes the request and the
completion; until one exists ``capture_content=True`` is refused. The attempt error message is
also left out (it may quote the prompt); only ``error.type`` is set.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> sink = OTelLedgerSink(tracer_provider=TracerProvider())
    >>> sink.pending_routes
    0
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from paxis_router.errors import ConfigError
from paxis_router.ledger import otel_keys as k

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from opentelemetry.util.types import AttributeValue

    from paxis_router.types import CallRecord

_NS = 1_000_000_000


class OTelLedgerSink:
    """Emit spans for recorded attempts.

    Args:
        tracer_provider: where spans go; None uses the global provider.
        capture_content: must stay False (see the module docstring).
        max_pending_routes: routes buffered while waiting for their final row; beyond it the
            oldest route is flushed as it stands (so a crashed route cannot leak memory).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        capture_content: bool = False,
        max_pending_routes: int = 10_000,
    ):
        if capture_content:
            raise ConfigError(
                "capture_content=True needs a router hook that passes prompt and completion "
                "text; CallRecord carries none. Leave it off.",
                field="capture_content",
            )
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._pending: dict[str, list[CallRecord]] = {}
        self._lock = threading.Lock()
        self.max_pending_routes = max_pending_routes

    @property
    def pending_routes(self) -> int:
        """Routes waiting for their final row."""
        return len(self._pending)

    def record(self, entry: CallRecord) -> None:
        """Buffer the attempt; on the route's final row, emit the route's spans."""
        ready: list[list[CallRecord]] = []
        with self._lock:
            self._pending.setdefault(entry.route_id, []).append(entry)
            if entry.final:
                ready.append(self._pending.pop(entry.route_id))
            while len(self._pending) > self.max_pending_routes:
                oldest = next(iter(self._pending))
                ready.append(self._pending.pop(oldest))
        for attempts in ready:
            self._emit(attempts)

    def check(self) -> None:
        """Never refuses: spans go to the OpenTelemetry SDK, whose span processor never blocks
        (it drops spans when its own queue is full, as OpenTelemetry specifies). This sink is
        a trace of the routes, not the ledger of record, so it does not stop a paid call."""

    def flush(self) -> None:
        """Emit every buffered route as it stands (e.g. at shutdown)."""
        with self._lock:
            ready = list(self._pending.values())
            self._pending.clear()
        for attempts in ready:
            self._emit(attempts)

    async def drain(self) -> None:
        """``flush`` for async callers."""
        self.flush()

    def close(self) -> None:
        """``flush``: the tracer provider belongs to its owner, who shuts it down."""
        self.flush()

    async def aclose(self) -> None:
        """``close`` for async callers."""
        self.close()

    def _emit(self, attempts: Sequence[CallRecord]) -> None:
        attempts = sorted(attempts, key=lambda r: r.attempt_index)
        first, last = attempts[0], attempts[-1]
        start = min(_ns(a.ts) for a in attempts)
        end = max(_ns(a.ts) + round(a.latency_s * _NS) for a in attempts)
        costs = [a.cost_usd for a in attempts]
        route_attrs: dict[str, AttributeValue] = {
            k.PAXIS_ROUTE_ID: first.route_id,
            k.PAXIS_REQUEST_ID: first.request_id,
            k.PAXIS_DECISION: str(last.decision),
            k.PAXIS_REASON: last.reason,
            k.PAXIS_TIER: last.tier,
            k.PAXIS_ATTEMPTS: len(attempts),
            k.PAXIS_DEGRADED: last.degraded,
            k.PAXIS_BUDGET_CAPPED: last.budget_capped,
        }
        _set_common(route_attrs, first)
        if all(c is not None for c in costs):
            route_attrs[k.PAXIS_COST_USD] = str(sum(c for c in costs if c is not None))
        if last.final and last.counterfactual_usd is not None:
            route_attrs[k.PAXIS_COUNTERFACTUAL_USD] = str(last.counterfactual_usd)
        route = self._tracer.start_span(
            "route", kind=SpanKind.INTERNAL, start_time=start, attributes=route_attrs
        )
        context = trace.set_span_in_context(route)
        for attempt in attempts:
            span = self._tracer.start_span(
                f"{k.OPERATION_CHAT} {attempt.model}",
                context=context,
                kind=SpanKind.CLIENT,
                start_time=_ns(attempt.ts),
                attributes=attempt_attributes(attempt),
            )
            if attempt.error_type:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=_ns(attempt.ts) + round(attempt.latency_s * _NS))
        if last.error_type and not any(a.passed for a in attempts):
            route.set_status(Status(StatusCode.ERROR))
        route.end(end_time=end)


def attempt_attributes(entry: CallRecord) -> dict[str, AttributeValue]:
    """The CLIENT span attributes of one attempt (GenAI semconv + paxis.*)."""
    attrs: dict[str, AttributeValue] = {
        k.GEN_AI_OPERATION_NAME: k.OPERATION_CHAT,
        k.GEN_AI_PROVIDER_NAME: provider_name(entry),
        k.GEN_AI_REQUEST_MODEL: entry.model,
        k.PAXIS_ROUTE_ID: entry.route_id,
        k.PAXIS_ATTEMPT_INDEX: entry.attempt_index,
        k.PAXIS_TIER: entry.tier,
        k.PAXIS_TIER_INDEX: entry.tier_index,
        k.PAXIS_DECISION: str(entry.decision),
        k.PAXIS_REASON: entry.reason,
        k.PAXIS_PASSED: entry.passed,
    }
    _set_common(attrs, entry)
    if entry.error_type is None:
        attrs[k.GEN_AI_RESPONSE_MODEL] = entry.model
    else:
        attrs[k.ERROR_TYPE] = entry.error_type
    if entry.prompt_tokens is not None:
        attrs[k.GEN_AI_USAGE_INPUT_TOKENS] = entry.prompt_tokens
    if entry.completion_tokens is not None:
        attrs[k.GEN_AI_USAGE_OUTPUT_TOKENS] = entry.completion_tokens
    if entry.finish_reason is not None:
        attrs[k.GEN_AI_RESPONSE_FINISH_REASONS] = (entry.finish_reason,)
    if entry.cost_usd is not None:
        attrs[k.PAXIS_COST_USD] = str(entry.cost_usd)
    if entry.counterfactual_usd is not None:
        attrs[k.PAXIS_COUNTERFACTUAL_USD] = str(entry.counterfactual_usd)
    failed = tuple(v.verifier for v in entry.verdicts if not v.passed)
    if failed:
        attrs[k.PAXIS_VERDICTS_FAILED] = failed
    return attrs


def provider_name(entry: CallRecord) -> str:
    """``openai`` for ``openai/gpt-4o``; else the tier prefix (``local`` for ``local:qwen``)."""
    if "/" in entry.model:
        return entry.model.split("/", 1)[0]
    return entry.tier.split(":", 1)[0]


def _set_common(attrs: dict[str, AttributeValue], entry: CallRecord) -> None:
    if entry.team is not None:
        attrs[k.PAXIS_TEAM] = entry.team
    if entry.skill is not None:
        attrs[k.PAXIS_SKILL] = entry.skill
    if entry.data_class is not None:
        attrs[k.PAXIS_DATA_CLASS] = entry.data_class


def _ns(ts: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (exact, no float rounding)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def _epoch() -> datetime:
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC)


_EPOCH = _epoch()
