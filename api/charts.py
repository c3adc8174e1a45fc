"""A stacked bar chart as plain geometry, drawn as SVG by a template (autoescaped there):
credits per UTC day, one colour per client. No JavaScript, no charting library to vendor."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

# Colour-blind-safe categorical colours (Okabe–Ito), then grey for the rest.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHERS = "#9CA3AF"
WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # shown by the browser on hover


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass
class StackedBars:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: float = WIDTH - LEFT - RIGHT
    plot_height: float = HEIGHT - TOP - BOTTOM
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    day_labels: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str, float]] = field(default_factory=list)  # colour, name, total
    empty: bool = True


def nice_step(top: float, lines: int = 4) -> float:
    """A round step (1, 2 or 5 × 10^n) giving about `lines` grid lines up to `top`."""
    raw = max(top, 1.0) / lines
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def stacked_by_day(
    rows: list[tuple[str, str, float]], first: date, days: int, most: int = len(PALETTE)
) -> StackedBars:
    """rows: (YYYY-MM-DD, client, credits). The `most` biggest clients get a colour each; the
    rest are summed as "others"."""
    chart = StackedBars()
    totals: dict[str, float] = {}
    for _, client, credits in rows:
        totals[client] = totals.get(client, 0.0) + float(credits or 0)
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    named = ranked[:most]
    colour = {name: PALETTE[i] for i, name in enumerate(named)}
    per_day: dict[str, dict[str, float]] = {}
    for day, client, credits in rows:
        key = client if client in colour else "others"
        per_day.setdefault(day, {})
        per_day[day][key] = per_day[day].get(key, 0.0) + float(credits or 0)
    highest = max((sum(v.values()) for v in per_day.values()), default=0.0)
    chart.empty = highest <= 0
    step = nice_step(highest)
    top = step * max(1, math.ceil(highest / step))
    scale = chart.plot_height / top
    slot = chart.plot_width / days
    order = [*named, "others"]
    for n in range(days):
        day = (first + timedelta(days=n)).isoformat()
        x = chart.left + n * slot + slot * 0.15
        base = chart.top + chart.plot_height
        for name in order:
            value = per_day.get(day, {}).get(name, 0.0)
            if value <= 0:
                continue
            height = value * scale
            base -= height
            chart.bars.append(
                Bar(
                    x,
                    base,
                    slot * 0.7,
                    height,
                    colour.get(name, OTHERS),
                    f"{day} · {name}: {value:,.0f} credits",
                )
            )
        if n % max(1, days // 6) == 0 or n == days - 1:
            chart.day_labels.append((x + slot * 0.35, day[5:]))
    value = 0.0
    while value <= top + 1e-9:
        chart.ticks.append(Tick(chart.top + chart.plot_height - value * scale, f"{value:,.0f}"))
        value += step
    chart.legend = [(colour[name], name, totals[name]) for name in named]
    rest = sum(totals[name] for name in ranked[most:])
    if rest > 0:
        chart.legend.append((OTHERS, f"others ({len(ranked) - most})", rest))
    return chart
