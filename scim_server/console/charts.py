"""Charts drawn on the server as SVG geometry: no chart library, no script, nothing inline.

These functions only compute coordinates; the template (``console/log/_charts.html``)
draws them with CSS classes, so the strict CSP holds and the numbers are also
in a table beside each chart for people who read rather than look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim_server.audit.insights import HourCount

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, BOTTOM, TOP = 44, 24, 28, 10


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


def _nice_max(value: int) -> int:
    """A round top for the axis (1, 2, 5 times 10^n) at or above ``value``."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def hourly(counts: list[HourCount]) -> dict[str, Any]:
    """Bars per hour: all SCIM requests, and over them the failures."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP
    top = _nice_max(max([c.requests for c in counts] + [1]))
    slot = plot_w / max(len(counts), 1)
    gap = min(2.0, slot / 4)
    requests: list[Bar] = []
    failures: list[Bar] = []
    labels: list[tuple[float, str]] = []
    every = max(1, len(counts) // 8)
    for i, c in enumerate(counts):
        x = LEFT + i * slot + gap / 2
        label = c.hour.strftime("%d %b %H:00")
        for value, out in ((c.requests, requests), (c.failures, failures)):
            h = plot_h * value / top
            out.append(Bar(x, TOP + plot_h - h, slot - gap, h, label, value))
        if i % every == 0:
            labels.append((x + (slot - gap) / 2, c.hour.strftime("%H:00")))
    values = (0, top // 2, top) if top % 2 == 0 else (0, top)
    ticks = [Tick(TOP + plot_h - plot_h * v / top, str(v)) for v in values]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "baseline": TOP + plot_h,
        "right": WIDTH - RIGHT,
        "requests": requests,
        "failures": failures,
        "ticks": ticks,
        "labels": labels,
        "rows": [
            (c.hour.strftime("%Y-%m-%d %H:00"), c.requests, c.failures)
            for c in counts
            if c.requests
        ],
        "total": sum(c.requests for c in counts),
        "failed": sum(c.failures for c in counts),
    }


def seats(licenses: list[dict[str, Any]]) -> dict[str, Any]:
    """One horizontal bar per license: seats used against its limit (or against the largest)."""
    row_h, label_w, plot_w = 30, 170, WIDTH - 170 - 70
    top = max([lic["seat_limit"] or lic["used"] for lic in licenses] + [1])
    rows = []
    for i, lic in enumerate(licenses):
        limit = lic["seat_limit"]
        scale = limit or top
        y = 6 + i * row_h
        used_w = plot_w * min(lic["used"], scale) / scale if scale else 0
        rows.append(
            {
                "y": y,
                "name": lic["name"],
                "used": lic["used"],
                "limit": limit,
                "used_width": used_w,
                "full": limit is not None and lic["used"] >= limit,
                "track_width": plot_w if limit else plot_w * lic["used"] / top,
            }
        )
    return {
        "width": WIDTH,
        "height": 12 + row_h * max(len(licenses), 1),
        "label_width": label_w,
        "plot_width": plot_w,
        "rows": rows,
    }
