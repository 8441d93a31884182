"""Inline SVG charts for the HTML report (private to ``html.py``).

Each chart is drawn on a 1000-unit-wide view box and scaled to the page's width, so it fills its
row whatever the window. The y axis carries round ticks (1, 2 or 5 × a power of ten: ``$0.50``,
``$1.00`` ..., never ``$0.7315``). Time axes label at most one column in every ``step`` so the
labels never overlap, however many days there are. Legends are HTML lists under the chart, in
full: a long team or tier name wraps, it is never cut.

Example:
    >>> nice_ticks(7.3)
    [0.0, 2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

WIDTH, HEIGHT = 1000, 300
TOP, BOTTOM, RIGHT = 16, 34, 16
LABEL_PX = 7.0  # the width of one character of an 12px label, in view-box units (generous)
PALETTE = (
    "#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c",
    "#319795", "#b7791f", "#e53e3e", "#4a5568", "#00a3c4",
)  # fmt: skip


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """``count``+1 evenly spaced round ticks from 0 covering ``top``.

    Example:
        >>> nice_ticks(0.0315), nice_ticks(0)
        ([0.0, 0.01, 0.02, 0.03, 0.04], [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    if top <= 0:
        return [i / count for i in range(count + 1)]
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    last = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(last + 1)]


def usd_tick(value: float) -> str:
    """A round dollar tick: ``$0``, ``$0.05``, ``$2.50``, ``$1,200``."""
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    places = max(2, -math.floor(math.log10(value)) + 1) if value < 1 else 2
    text = f"{value:,.{places}f}"
    return f"${text.rstrip('0') if '.' in text and places > 2 else text}"


def percent_tick(value: float) -> str:
    return f"{value:.0%}"


def legend(names: Sequence[str]) -> str:
    """The legend as an HTML list (full names, wrapping)."""
    items = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
        f"{escape(name)}</li>"
        for i, name in enumerate(names)
    )
    return f'<ul class="legend">{items}</ul>'


def empty(label: str) -> str:
    return _svg(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>',
        label,
        HEIGHT,
    )


def _svg(body: str, label: str, height: float) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'preserveAspectRatio="xMidYMid meet">{body}</svg>'
    )


def _y_axis(ticks: list[float], left: float, fmt: Callable[[float], str]) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for tick in ticks:
        y = HEIGHT - BOTTOM - plot_h * tick / ticks[-1]
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="y-tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{left}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}"/>'
    )
    return "".join(parts)


def _left(ticks: list[float], fmt: Callable[[float], str]) -> float:
    return 14 + LABEL_PX * max(len(fmt(t)) for t in ticks)


def _x_labels(columns: Sequence[str], left: float, short: Callable[[str], str]) -> str:
    """A label under every ``step``-th column, so that labels never overlap."""
    slot = (WIDTH - left - RIGHT) / len(columns)
    widest = LABEL_PX * max(len(short(c)) for c in columns) + 12
    step = max(1, math.ceil(widest / slot))
    return "".join(
        f'<text class="x-label" x="{left + (i + 0.5) * slot:.1f}" y="{HEIGHT - BOTTOM + 16}" '
        f'text-anchor="middle">{escape(short(c))}</text>'
        for i, c in enumerate(columns)
        if i % step == 0
    )


def short_day(key: str) -> str:
    """``2026-11-05`` -> ``11-05``; weeks and months as they are."""
    return key[5:] if len(key) == 10 else key


def _rect(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" '
        f'height="{max(h, 0.0):.1f}" fill="{color}"><title>{escape(tip)}</title></rect>'
    )


def stacked_bars(
    columns: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    label: str,
    *,
    tip: Callable[[str, str, float], str],
) -> str:
    """One stacked bar per column (a day, week or month), one colour per series."""
    if not columns or not series:
        return empty(label)
    totals = [sum(values[i] for _, values in series) for i in range(len(columns))]
    ticks = nice_ticks(max(totals))
    left = _left(ticks, usd_tick)
    slot = (WIDTH - left - RIGHT) / len(columns)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [_y_axis(ticks, left, usd_tick)]
    for i, column in enumerate(columns):
        base = float(HEIGHT - BOTTOM)
        for j, (name, values) in enumerate(series):
            if values[i] <= 0:
                continue
            h = values[i] / ticks[-1] * plot_h
            base -= h
            x = left + i * slot + slot * 0.12
            parts.append(_rect(x, base, slot * 0.76, h, PALETTE[j % len(PALETTE)],
                               tip(column, name, values[i])))  # fmt: skip
    parts.append(_x_labels(columns, left, short_day))
    return _svg("".join(parts), label, HEIGHT) + legend([name for name, _ in series])


def grouped_bars(
    columns: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    label: str,
    *,
    tip: Callable[[str, str, float], str],
) -> str:
    """Side-by-side bars per column (e.g. spend beside frontier-only)."""
    if not columns or not series:
        return empty(label)
    ticks = nice_ticks(max(max(values) for _, values in series))
    left = _left(ticks, usd_tick)
    slot = (WIDTH - left - RIGHT) / len(columns)
    width = slot * 0.8 / len(series)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [_y_axis(ticks, left, usd_tick)]
    for i, column in enumerate(columns):
        for j, (name, values) in enumerate(series):
            h = values[i] / ticks[-1] * plot_h
            x = left + i * slot + slot * 0.1 + j * width
            color = PALETTE[j % len(PALETTE)]
            tip_text = tip(column, name, values[i])
            parts.append(_rect(x, HEIGHT - BOTTOM - h, width * 0.92, h, color, tip_text))
    parts.append(_x_labels(columns, left, short_day))
    return _svg("".join(parts), label, HEIGHT) + legend([name for name, _ in series])


def hbars(
    rows: Sequence[tuple[str, float, str]],
    label: str,
    *,
    fmt: Callable[[float], str],
    top: float | None = None,
) -> str:
    """One horizontal bar per (name, value, tip); names in full on the left."""
    if not rows:
        return empty(label)
    ticks = nice_ticks(top if top is not None else max(v for _, v, _ in rows))
    left = min(WIDTH * 0.45, 16 + LABEL_PX * max(len(name) for name, _, _ in rows))
    bar_h, gap = 22, 8
    height = max(HEIGHT * 0.6, TOP + len(rows) * (bar_h + gap) + 28)
    plot_w = WIDTH - left - RIGHT - 70
    parts = []
    for tick in ticks:
        x = left + plot_w * tick / ticks[-1]
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{height - 24}"/>'
            f'<text class="x-label" x="{x:.1f}" y="{height - 8}" text-anchor="middle">'
            f"{escape(fmt(tick))}</text>"
        )
    for i, (name, value, tip) in enumerate(rows):
        y = TOP + i * (bar_h + gap)
        w = plot_w * value / ticks[-1]
        parts.append(
            f'<text class="y-tick" x="{left - 6:.1f}" y="{y + bar_h * 0.7:.1f}" '
            f'text-anchor="end">{escape(name)}</text>'
            + _rect(left, y, w, bar_h, PALETTE[0], tip)
            + f'<text x="{left + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}">{escape(fmt(value))}</text>'
        )
    return _svg("".join(parts), label, height)


def lines(
    columns: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    label: str,
    *,
    rules: Sequence[tuple[float, str]] = (),
    forecasts: Mapping[str, Sequence[float | None]] | None = None,
) -> str:
    """One line per series over the columns (None: no point), each series' forecast dashed in
    its colour, and horizontal ``rules`` (value, text) such as alert thresholds; y as a share
    (0.8 = 80 %)."""
    forecasts = forecasts or {}
    points = [v for values in (*(v for _, v in series), *forecasts.values()) for v in values]
    known = [v for v in points if v is not None]
    if not columns or not known:
        return empty(label)
    ticks = nice_ticks(max([*known, *(v for v, _ in rules)]))
    left = _left(ticks, percent_tick)
    slot = (WIDTH - left - RIGHT) / len(columns)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [_y_axis(ticks, left, percent_tick)]

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - value / ticks[-1] * plot_h

    for value, text in rules:
        y = y_of(value)
        parts.append(
            f'<line class="rule" x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="rule-label" x="{left + 4}" y="{y - 4:.1f}">{escape(text)}</text>'
        )
    for j, (name, values) in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        for kind, line in (("line", values), ("forecast", forecasts.get(name, ()))):
            xy = [(left + (i + 0.5) * slot, y_of(v)) for i, v in enumerate(line) if v is not None]
            if not xy:
                continue
            dash = ' stroke-dasharray="6 4"' if kind == "forecast" else ""
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(
                f'<polyline class="{kind}" points="{path}" fill="none" stroke="{color}" '
                f'stroke-width="2.5"{dash}><title>{escape(name)} ({kind})</title></polyline>'
            )
    parts.append(_x_labels(columns, left, short_day))
    return _svg("".join(parts), label, HEIGHT) + legend([name for name, _ in series])


def scatter(
    points: Sequence[tuple[str, float, float, str]],
    label: str,
    *,
    x_title: str,
) -> str:
    """(name, x in $, y as a share, tip) points, each named beside its dot."""
    if not points:
        return empty(label)
    x_ticks = nice_ticks(max(x for _, x, _, _ in points))
    y_ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    left = _left(y_ticks, percent_tick)
    plot_w, plot_h = WIDTH - left - RIGHT - 120, HEIGHT - TOP - BOTTOM
    parts = [_y_axis(y_ticks, left, percent_tick)]
    for tick in x_ticks:
        x = left + plot_w * tick / x_ticks[-1]
        parts.append(
            f'<text class="x-label" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(usd_tick(tick))}</text>'
        )
    for i, (name, x_value, y_value, tip) in enumerate(sorted(points, key=lambda p: p[1])):
        x = left + plot_w * x_value / x_ticks[-1]
        y = HEIGHT - BOTTOM - y_value * plot_h
        above = i % 2 == 0 or y > HEIGHT - BOTTOM - 24  # alternate, so neighbours' names part
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="6" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(tip)}</title></circle>'
            f'<text x="{x + 9:.1f}" y="{y - 8 if above else y + 18:.1f}">{escape(name)}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" text-anchor="end">{escape(x_title)}</text>'
    )
    return _svg("".join(parts), label, HEIGHT)
