"""Readiness charts drawn on the server as SVG: no script, no library, no network."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 24


@dataclasses.dataclass(frozen=True)
class Series:
    key: str
    label: str
    css: str
    points: Sequence[tuple[dt.date, int]]


def line_chart(
    *,
    title: str,
    series: Sequence[Series],
    ceiling: int,
    deadline: dt.date | None = None,
    deadline_label: str = "",
) -> SafeString:
    """Draw each series over the days it covers, up to `deadline` when it is later; the
    y axis runs from 0 to `ceiling` (the number that means "everyone")."""
    days = [day for s in series for day, _value in s.points]
    if not days:
        return format_html('<p class="chart-empty">{}</p>', title)
    first = min(days)
    last = max([*days, *([deadline] if deadline else [])])
    span = max(1, (last - first).days)
    top = max(1, ceiling, *(value for s in series for _day, value in s.points))

    def x(day: dt.date) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (day - first).days / span

    def y(value: int) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)

    lines = format_html_join(
        "",
        '<polyline class="{}" fill="none" stroke-width="2" points="{}" data-series="{}"'
        ' data-values="{}"><title>{}</title></polyline>',
        (
            (
                s.css,
                " ".join(f"{x(day):.1f},{y(value):.1f}" for day, value in s.points),
                s.key,
                ",".join(f"{day.isoformat()}:{value}" for day, value in s.points),
                s.label,
            )
            for s in series
        ),
    )
    legend = format_html_join(
        "",
        '<li><span class="{}" aria-hidden="true">■</span> {}</li>',
        ((s.css, s.label) for s in series),
    )
    marker = (
        format_html(
            '<line class="deadline" x1="{x}" x2="{x}" y1="{t}" y2="{b}"'
            ' stroke-dasharray="4 3"/><text x="{x}" y="{t}" text-anchor="end"'
            ' class="small">{label}</text>',
            x=f"{x(deadline):.1f}",
            t=TOP,
            b=HEIGHT - BOTTOM,
            label=deadline_label,
        )
        if deadline is not None
        else ""
    )
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}"'
        ' aria-label="{title}" data-ceiling="{top}"><title>{title}</title>'
        '<line x1="{l}" x2="{l}" y1="{t}" y2="{b}" class="axis"/>'
        '<line x1="{l}" x2="{r}" y1="{b}" y2="{b}" class="axis"/>'
        '<text x="{lt}" y="{tt}" text-anchor="end" class="small">{top}</text>'
        '<text x="{lt}" y="{b}" text-anchor="end" class="small">0</text>'
        '<text x="{l}" y="{bt}" class="small">{first}</text>'
        '<text x="{r}" y="{bt}" text-anchor="end" class="small">{last}</text>'
        "{lines}{marker}</svg>"
        '<ul class="chart-legend">{legend}</ul>',
        w=WIDTH,
        h=HEIGHT,
        title=title,
        top=top,
        l=LEFT,
        r=WIDTH - RIGHT,
        t=TOP,
        b=HEIGHT - BOTTOM,
        lt=LEFT - 6,
        tt=TOP + 4,
        bt=HEIGHT - BOTTOM + 14,
        first=first.isoformat(),
        last=last.isoformat(),
        lines=lines,
        marker=marker,
        legend=legend,
    )
