"""Bar charts drawn on the server as SVG: the console needs no script library and no CDN."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    label: str
    """What a hover (``<title>``) and a screen reader say: the day, the series, the count."""


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    """(x, text) under the bars: the days."""
    top: int
    legend: list[tuple[str, str]]


def stacked(
    days: list[str], series: dict[str, list[int]], colors: dict[str, str], width: int = 640, height: int = 200
) -> Chart:
    """One bar per day, stacked by series (in the order given); the scale fits the tallest day."""
    top = max([sum(values[i] for values in series.values()) for i in range(len(days))] or [0]) or 1
    slot = width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y = float(height)
        for name, values in series.items():
            if not values[i]:
                continue
            h = values[i] / top * height
            y -= h
            bars.append(Bar(i * slot + slot * 0.15, y, slot * 0.7, h, colors[name], f"{day}: {values[i]} {name}"))
    step = max(1, len(days) // 7)
    ticks = [(i * slot + slot / 2, day[5:]) for i, day in enumerate(days) if i % step == 0]
    return Chart(width, height, bars, ticks, top, [(name, colors[name]) for name in series])
