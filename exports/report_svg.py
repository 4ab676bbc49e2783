"""The report's charts as inline SVG, drawn here from the aggregates: no chart library, no script, nothing fetched.

Every label comes from the data (class names), so every text is HTML-escaped; each bar carries a ``<title>``,
which browsers show as a tooltip with the exact count.
"""

from __future__ import annotations

from html import escape
from typing import Callable

ROW = 18
"""Height of one bar of a bar chart, in pixels."""
LABEL_WIDTH = 150
BAR_WIDTH = 420
MAX_LABEL = 22
"""Characters of a label shown before it is cut with an ellipsis (the tooltip has it whole)."""
BAR_COLOUR = "#4f7cac"


def bar_chart(items: list[tuple[str, int]], colour: Callable[[str], str] = lambda _: BAR_COLOUR) -> str:
    """Horizontal bars, one per (label, count), in the order given, the longest bar scaled to ``BAR_WIDTH``."""
    most = max((count for _, count in items), default=0) or 1
    width, height = LABEL_WIDTH + BAR_WIDTH + 70, ROW * len(items) + 4
    parts = [_open(width, height, "bar chart")]
    for row, (label, count) in enumerate(items):
        y = 2 + row * ROW
        length = max(1.0, BAR_WIDTH * count / most)
        parts.append(
            f"<g><title>{escape(label)}: {count:,}</title>"
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{escape(_short(label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{length:.1f}" height="{ROW - 4}" fill="{colour(label)}"/>'
            f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 13}">{count:,}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(bins: list[tuple[str, int]], x_title: str, ticks: dict[float, str]) -> str:
    """Vertical bars, one per (bin label, count); ``ticks`` puts labels under the axis at positions in bins
    (0 the left edge of the first bin, 0.5 its middle, ``len(bins)`` the right edge of the last)."""
    plot_w, plot_h, left, bottom = 480, 160, 44, 36
    width, height = left + plot_w + 16, plot_h + bottom + 12
    most = max((count for _, count in bins), default=0) or 1
    step = plot_w / max(1, len(bins))
    axis_y = 8 + plot_h
    parts = [
        _open(width, height, f"histogram of {x_title}"),
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{8 + 10}" text-anchor="end">{most:,}</text>',
        f'<text x="{left - 6}" y="{axis_y}" text-anchor="end">0</text>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_title)}</text>',
    ]
    for i, (label, count) in enumerate(bins):
        bar_h = plot_h * count / most
        parts.append(
            f"<g><title>{escape(label)}: {count:,}</title>"
            f'<rect x="{left + i * step + 1:.1f}" y="{axis_y - bar_h:.1f}" width="{max(1.0, step - 2):.1f}" '
            f'height="{bar_h:.1f}" fill="{BAR_COLOUR}"/></g>'
        )
    for position, text in ticks.items():
        x = left + position * step
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#888"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int | float, height: int | float, what: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(what)}">'
    )


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"
