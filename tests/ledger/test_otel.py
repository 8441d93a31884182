"""The OpenTelemetry sink, its spans checked attribute by attribute (in-memory exporter)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the [otel] extra")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from paxis_router.errors import ConfigError
from paxis_router.ledger.base import check_sinks, drain_sinks
from paxis_router.ledger.otel import OTelLedgerSink
from paxis_router.router import Router
from paxis_router.testing import FakeVerifier, FakeWorker
from paxis_router.types import CallRecord, ChatRequest, Decision, Verdict

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T0_NS = 1_793_534_400_000_000_000  # 2026-11-01T12:00:00Z in ns since the epoch


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def sink(exporter: InMemorySpanExporter) -> OTelLedgerSink:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OTelLedgerSink(tracer_provider=provider)


def worker_attempt() -> CallRecord:
    return CallRecord(
        route_id="r1",
        request_id="q1",
        attempt_index=0,
        ts=T0,
        tier="local:qwen",
        tier_index=0,
        model="qwen-ft",
        decision=Decision.ESCALATE,
        reason="escalate: schema failed",
        final=False,
        team="claims",
        skill="invoice",
        data_class="internal",
        prompt_tokens=100,
        completion_tokens=20,
        latency_s=0.5,
        cost_usd=Decimal("0.001"),
        verdicts=(Verdict("schema", False, None, "missing total"),),
        finish_reason="stop",
    )


def frontier_attempt() -> CallRecord:
    return CallRecord(
        route_id="r1",
        request_id="q1",
        attempt_index=1,
        ts=T0 + timedelta(seconds=1),
        tier="frontier:gpt-4o",
        tier_index=1,
        model="openai/gpt-4o",
        decision=Decision.ACCEPT,
        reason="accept: 1 verifier(s) passed",
        final=True,
        team="claims",
        skill="invoice",
        data_class="internal",
        prompt_tokens=100,
        completion_tokens=25,
        latency_s=2.0,
        cost_usd=Decimal("0.02"),
        counterfactual_usd=Decimal("0.02"),
        verdicts=(Verdict("schema", True, None, ""),),
        passed=True,
        finish_reason="length",
    )


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_route_becomes_one_internal_span_over_client_spans(
    sink: OTelLedgerSink, exporter: InMemorySpanExporter
) -> None:
    sink.record(worker_attempt())
    assert exporter.get_finished_spans() == ()  # buffered until the final row
    assert sink.pending_routes == 1
    sink.record(frontier_attempt())
    assert sink.pending_routes == 0
    spans = by_name(exporter.get_finished_spans())
    assert sorted(spans) == ["chat openai/gpt-4o", "chat qwen-ft", "route"]

    route = spans["route"]
    assert route.kind is SpanKind.INTERNAL
    assert route.parent is None
    assert (route.start_time, route.end_time) == (T0_NS, T0_NS + 3_000_000_000)
    assert dict(route.attributes or {}) == {
        "paxis.route_id": "r1",
        "paxis.request_id": "q1",
        "paxis.decision": "accept",
        "paxis.reason": "accept: 1 verifier(s) passed",
        "paxis.tier": "frontier:gpt-4o",
        "paxis.attempts": 2,
        "paxis.degraded": False,
        "paxis.budget_capped": False,
        "paxis.team": "claims",
        "paxis.skill": "invoice",
        "paxis.data_class": "internal",
        "paxis.cost_usd": "0.021",
        "paxis.counterfactual_usd": "0.02",
    }

    first = spans["chat qwen-ft"]
    assert first.kind is SpanKind.CLIENT
    assert first.parent is not None
    assert first.parent.span_id == route.context.span_id
    assert first.context.trace_id == route.context.trace_id
    assert (first.start_time, first.end_time) == (T0_NS, T0_NS + 500_000_000)
    assert first.status.status_code is StatusCode.UNSET
    attrs = dict(first.attributes or {})
    assert attrs.pop("gen_ai.operation.name") == "chat"
    assert attrs.pop("gen_ai.provider.name") == "local"
    assert attrs.pop("gen_ai.request.model") == "qwen-ft"
    assert attrs.pop("gen_ai.response.model") == "qwen-ft"
    assert attrs.pop("gen_ai.usage.input_tokens") == 100
    assert attrs.pop("gen_ai.usage.output_tokens") == 20
    assert attrs.pop("gen_ai.response.finish_reasons") == ("stop",)
    assert attrs.pop("paxis.cost_usd") == "0.001"
    assert attrs.pop("paxis.decision") == "escalate"
    assert attrs.pop("paxis.reason") == "escalate: schema failed"
    assert attrs.pop("paxis.passed") is False
    assert attrs.pop("paxis.verdicts_failed") == ("schema",)
    assert attrs.pop("paxis.tier") == "local:qwen"
    assert attrs.pop("paxis.tier_index") == 0
    assert attrs.pop("paxis.attempt_index") == 0
    assert attrs.pop("paxis.route_id") == "r1"
    assert attrs.pop("paxis.team") == "claims"
    assert attrs.pop("paxis.skill") == "invoice"
    assert attrs.pop("paxis.data_class") == "internal"
    assert attrs == {}  # nothing else: no counterfactual on a non-final row, no content

    second = dict(spans["chat openai/gpt-4o"].attributes or {})
    assert second["gen_ai.provider.name"] == "openai"
    assert second["gen_ai.response.finish_reasons"] == ("length",)
    assert second["paxis.counterfactual_usd"] == "0.02"
    assert second["paxis.passed"] is True
    assert "paxis.verdicts_failed" not in second
    assert "error.type" not in second


def test_a_failed_call_sets_error_type_and_status(
    sink: OTelLedgerSink, exporter: InMemorySpanExporter
) -> None:
    failed = CallRecord(
        route_id="r2",
        request_id="q2",
        attempt_index=0,
        ts=T0,
        tier="local:qwen",
        tier_index=0,
        model="qwen-ft",
        decision=Decision.STOP,
        reason="stop: WorkerTimeout: no answer in 30 s",
        final=True,
        latency_s=30.0,
        error="no answer in 30 s",
        error_type="WorkerTimeout",
    )
    sink.record(failed)
    spans = by_name(exporter.get_finished_spans())
    client = spans["chat qwen-ft"]
    assert client.status.status_code is StatusCode.ERROR
    attrs = dict(client.attributes or {})
    assert attrs["error.type"] == "WorkerTimeout"
    assert "gen_ai.response.model" not in attrs
    assert "gen_ai.usage.input_tokens" not in attrs
    assert "paxis.cost_usd" not in attrs  # unknown, not 0
    assert spans["route"].status.status_code is StatusCode.ERROR
    assert "paxis.cost_usd" not in dict(spans["route"].attributes or {})


def test_unfinished_routes_are_bounded_and_flushable(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OTelLedgerSink(tracer_provider=provider, max_pending_routes=1)
    sink.record(worker_attempt())
    sink.record(replace(worker_attempt(), route_id="r9"))
    assert [s.name for s in exporter.get_finished_spans()] == ["chat qwen-ft", "route"]
    assert sink.pending_routes == 1
    sink.flush()
    assert sink.pending_routes == 0
    assert len(exporter.get_finished_spans()) == 4


def test_the_sink_lifecycle_helpers_emit_what_is_buffered(
    sink: OTelLedgerSink, exporter: InMemorySpanExporter
) -> None:
    check_sinks([sink])  # never refuses: spans are not the ledger of record
    sink.record(worker_attempt())  # not final: buffered
    assert exporter.get_finished_spans() == ()
    asyncio.run(drain_sinks([sink]))
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["chat qwen-ft", "route"]
    sink.record(replace(worker_attempt(), route_id="r2"))
    asyncio.run(sink.aclose())
    assert len(exporter.get_finished_spans()) == 4


def test_content_capture_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a router hook"):
        OTelLedgerSink(capture_content=True)


def test_router_emits_spans_through_the_sink(
    sink: OTelLedgerSink, exporter: InMemorySpanExporter
) -> None:
    local = FakeWorker(["no"], name="local:w")
    top = FakeWorker(["yes"], name="frontier:f", model="anthropic/claude")
    router = Router(tiers=[local, top], verifiers=[FakeVerifier([False, True])], ledger=sink)
    result = router.route_sync(ChatRequest.from_text("q", team="claims"))
    spans = by_name(exporter.get_finished_spans())
    assert sorted(spans) == ["chat anthropic/claude", "chat local:w", "route"]
    assert spans["route"].attributes is not None
    assert spans["route"].attributes["paxis.route_id"] == result.route_id
    assert dict(spans["chat anthropic/claude"].attributes or {})["gen_ai.provider.name"] == (
        "anthropic"
    )
