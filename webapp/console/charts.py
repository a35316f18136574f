"""Charts drawn on the server as SVG: no script, no CDN, readable without JavaScript; each bar's <title> is its
tooltip, and the chart has a text alternative."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 24, 8, 22, 24
MAX_X_LABELS = 10


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    color: str


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, shown: Callable[[int], str] = str
) -> Markup:
    """Stacked bars, one per label; `shown` writes a value for people (e.g. as an amount)."""
    totals = [sum(one.values[i] for one in series) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    parts = [_axis(top, shown)]
    for i, label in enumerate(labels):
        parts.append(_stack(i, label, series, top, slot, shown))
        if _labelled(i, len(labels)):
            x = LEFT + slot * (i + 0.5)
            parts.append(Markup('<text x="{:.1f}" y="{}" class="x">{}</text>').format(x, HEIGHT - 6, label))
    summary = f"{title}: " + ", ".join(f"{label} {shown(total)}" for label, total in zip(labels, totals, strict=True))
    return Markup(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{summary}" xmlns="http://www.w3.org/2000/svg">'
        "<title>{title}</title>{body}</svg>"
    ).format(w=WIDTH, h=HEIGHT, summary=summary, title=title, body=Markup("").join(parts))


def _stack(i: int, label: str, series: Sequence[Series], top: int, slot: float, shown: Callable[[int], str]) -> Markup:
    usable = HEIGHT - TOP - BOTTOM
    y = HEIGHT - BOTTOM
    bars = []
    for one in series:
        value = one.values[i]
        if value <= 0:
            continue
        height = usable * value / top
        y -= height
        tip = f"{label}: {shown(value)} {one.name}"
        bars.append(
            Markup(
                '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}</title></rect>'
            ).format(LEFT + slot * i + slot * 0.1, y, slot * 0.8, height, one.color, tip)
        )
    return Markup("").join(bars)


def _axis(top: int, shown: Callable[[int], str]) -> Markup:
    base, ceiling = HEIGHT - BOTTOM, TOP
    return Markup(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" class="axis"/>'
        '<line x1="{l}" y1="{c}" x2="{r}" y2="{c}" class="grid"/>'
        '<text x="{t}" y="{b}" class="y">0</text><text x="{l}" y="{cy}" class="top">{top}</text>'
    ).format(l=LEFT, r=WIDTH - RIGHT, b=base, c=ceiling, t=LEFT - 4, cy=ceiling - 6, top=escape(shown(top)))


def _labelled(i: int, count: int) -> bool:
    return i % max(1, -(-count // MAX_X_LABELS)) == 0
