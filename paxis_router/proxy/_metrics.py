"""Prometheus text exposition for the proxy, written by hand (no client library needed).

Counters: requests by route, team and status; escalations by route and team; spend in USD by
tier and team (attempts whose price is unknown are counted in ``paxis_spend_unknown_total``).
Histograms: request latency and the proxy's own overhead (request time minus worker time).

``status`` is the HTTP status sent; 499 (nginx's code) counts a client that went away before
its answer was complete; a stream that failed after it began counts with the status its error
would have had. Spend counts every attempt, those of failed routes too. Money is summed at full
precision and shown rounded to 6 decimal places (``pricing.format_usd``): a Prometheus sample
is a float64 anyway, and 6 places keep the micro-dollar costs of a local tier visible to
``rate()``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

from paxis_router.pricing import format_usd

if TYPE_CHECKING:
    from collections.abc import Iterable

    from paxis_router.types import Attempt, RouteResult

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OVERHEAD_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Histogram:
    __slots__ = ("buckets", "counts", "sum", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.total = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.sum += value
        self.total += 1


class Metrics:
    """In-process counters for one proxy; ``render()`` gives the /metrics text."""

    def __init__(self) -> None:
        self.requests: defaultdict[Labels, int] = defaultdict(int)
        self.escalations: defaultdict[Labels, int] = defaultdict(int)
        self.spend_usd: defaultdict[Labels, Decimal] = defaultdict(Decimal)
        self.spend_unknown: defaultdict[Labels, int] = defaultdict(int)
        self.latency: dict[Labels, _Histogram] = {}
        self.overhead: dict[Labels, _Histogram] = {}

    def observe_request(
        self, route: str, team: str, status: int, latency_s: float, overhead_s: float | None
    ) -> None:
        """Count one finished request (any status)."""
        self.requests[(("route", route), ("team", team), ("status", str(status)))] += 1
        key: Labels = (("route", route),)
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = _Histogram(LATENCY_BUCKETS_S)
        hist.observe(latency_s)
        if overhead_s is not None:
            over = self.overhead.get(key)
            if over is None:
                over = self.overhead[key] = _Histogram(OVERHEAD_BUCKETS_S)
            over.observe(max(overhead_s, 0.0))

    def observe_route(self, route: str, team: str, result: RouteResult) -> None:
        """Count a route's escalation and each attempt's spend."""
        if result.escalated:
            self.escalations[(("route", route), ("team", team))] += 1
        self.observe_attempts(team, result.attempts)

    def observe_attempts(self, team: str, attempts: Iterable[Attempt]) -> None:
        """Count each attempt's spend (for a route that failed, from its error's attempts)."""
        for attempt in attempts:
            key: Labels = (("tier", attempt.tier), ("team", team))
            if attempt.cost_usd is None:
                self.spend_unknown[key] += 1
            else:
                self.spend_usd[key] += attempt.cost_usd

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        _counter(
            lines, "paxis_requests_total", "Requests by route, team and status.", self.requests
        )
        _counter(
            lines,
            "paxis_escalations_total",
            "Routes that tried more than one tier.",
            self.escalations,
        )
        lines.append("# HELP paxis_spend_usd_total Spend in USD by tier and team (known prices).")
        lines.append("# TYPE paxis_spend_usd_total counter")
        for labels, usd in sorted(self.spend_usd.items()):
            lines.append(f"paxis_spend_usd_total{_fmt_labels(labels)} {format_usd(usd)}")
        _counter(
            lines,
            "paxis_spend_unknown_total",
            "Attempts whose price is unknown, by tier and team.",
            self.spend_unknown,
        )
        _histograms(
            lines,
            "paxis_request_latency_seconds",
            "Time from request to response.",
            self.latency,
        )
        _histograms(
            lines,
            "paxis_overhead_seconds",
            "Proxy time outside worker calls.",
            self.overhead,
        )
        return "\n".join(lines) + "\n"


def _counter(lines: list[str], name: str, help_: str, values: dict[Labels, int]) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} counter")
    for labels, count in sorted(values.items()):
        lines.append(f"{name}{_fmt_labels(labels)} {count}")


def _histograms(lines: list[str], name: str, help_: str, hists: dict[Labels, _Histogram]) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} histogram")
    for labels, hist in sorted(hists.items()):
        cumulative = 0
        for bound, count in zip(hist.buckets, hist.counts, strict=True):
            cumulative += count
            le = f'le="{bound}"'
            lines.append(f"{name}_bucket{_fmt_labels(labels, le)} {cumulative}")
        inf = 'le="+Inf"'
        lines.append(f"{name}_bucket{_fmt_labels(labels, inf)} {hist.total}")
        lines.append(f"{name}_sum{_fmt_labels(labels)} {hist.sum}")
        lines.append(f"{name}_count{_fmt_labels(labels)} {hist.total}")
