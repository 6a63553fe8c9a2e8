"""The console's charts: pygal's server-side SVG, inlined in the page, styled from our own stylesheet.

pygal draws the bars, axes and legend; we only take out what the console's
CSP forbids inline (pygal's ``<style>`` and its tooltip ``<script>``) and
serve that CSS from ``/admin/dashboard.css`` instead, so a chart needs no
script and no inline style and reads the same with JavaScript off. Each chart
kind has a fixed id (pygal prefixes its CSS with it) and a fixed series order,
so its CSS does not depend on the data and is made once. For screen readers an
SVG is an image named by its ``<title>`` and ``<desc>``; the page shows the
same numbers in a table beside it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pygal  # no type hints (pyproject: mypy overrides)
from lxml import etree
from markupsafe import Markup
from pygal.style import Style

from publisher.lines import one_line


@dataclass(frozen=True)
class ChartKind:
    """One kind of chart: its element id, its series (in order) and their colours."""

    name: str
    series: tuple[str, ...]
    colors: tuple[str, ...]
    horizontal: bool = False


GROWTH = ChartKind("growth", ("confirmed", "unsubscribed", "bounced"), ("#2e7d32", "#b35900", "#c62828"))
DOMAINS = ChartKind(
    "domains",
    ("delivered", "bounced", "complained", "unsubscribed"),
    ("#1565c0", "#c62828", "#6a1b9a", "#b35900"),
    horizontal=True,
)
LINKS = ChartKind("links", ("human clicks", "machine clicks"), ("#1565c0", "#757575"), horizontal=True)
KINDS = (GROWTH, DOMAINS, LINKS)


def _style(kind: ChartKind) -> Style:
    """Transparent, in the page's own text colour and font (so dark mode just works)."""
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="currentColor",
        foreground_strong="currentColor",
        foreground_subtle="rgba(128,128,128,.6)",
        opacity=".85",
        opacity_hover=".95",
        font_family="inherit",
        title_font_size=18,
        label_font_size=14,
        major_label_font_size=14,
        legend_font_size=15,
        colors=kind.colors,
    )


def _chart(kind: ChartKind, title: str, labels: Sequence[str], height: int) -> Any:
    make = pygal.HorizontalBar if kind.horizontal else pygal.Bar
    chart = make(
        style=_style(kind),
        js=[],
        disable_xml_declaration=True,
        width=440,  # small, so its text stays legible on a 375 px phone (the SVG scales to fit)
        height=height,
        title=title,
        legend_at_bottom=True,
        truncate_legend=-1,  # "unsubscribed" in full
        legend_at_bottom_columns=2 if len(kind.series) > 3 else len(kind.series),
        show_minor_y_labels=kind.horizontal,  # the bars' names when horizontal; 0.2-steps otherwise
        x_label_rotation=0 if kind.horizontal else 45,
        print_values=False,
        margin=8,
    )
    chart.uuid = kind.name  # the SVG's id is chart-<name>; its CSS is keyed on that
    chart.x_labels = [one_line(label, 80) for label in labels]  # lxml refuses control characters
    return chart


class _Strip:
    """A pygal xml filter: keeps the CSS aside, drops scripts, tooltips and comments, names the image."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.css = ""

    def __call__(self, root: Any) -> Any:
        ident = root.get("id")
        for node in list(root.iter("style", "script", etree.Comment)):
            if node.tag == "style":
                self.css += node.text or ""
            node.getparent().remove(node)
        for node in list(root.iter()):
            if "tooltip-overlay" in (node.get("class") or ""):  # for pygal's script, which we drop
                node.getparent().remove(node)
            elif "style" in node.attrib:  # the CSP allows no inline style
                del node.attrib["style"]
        title = root.find("title")
        if title is not None:
            title.set("id", f"{ident}-title")
            desc = etree.Element("desc", id=f"{ident}-desc")
            desc.text = self.desc
            title.addnext(desc)
        root.set("role", "img")
        root.set("aria-labelledby", f"{ident}-title {ident}-desc")
        root.set("focusable", "false")
        return root


def _render(chart: Any, desc: str) -> tuple[str, str]:
    strip = _Strip(desc)
    chart.add_xml_filter(strip)
    svg: str = chart.render(is_unicode=True)
    return svg, strip.css


def bar_chart(
    kind: ChartKind, title: str, desc: str, labels: Sequence[str], values: Sequence[Sequence[int]]
) -> Markup:
    """An inline SVG bar chart: one bar per label for each of ``kind``'s series (``values`` in that order)."""
    height = max(260, 90 + 30 * len(labels)) if kind.horizontal else 340
    chart = _chart(kind, title, labels, height)
    for name, series in zip(kind.series, values, strict=True):
        chart.add(name, list(series))
    svg, _css = _render(chart, desc)
    return Markup(svg)  # pygal (lxml) escapes every label, title and description it writes


@functools.cache
def charts_css() -> str:
    """The CSS pygal would have inlined, for every chart kind (the same whatever the data)."""
    out = []
    for kind in KINDS:
        chart = _chart(kind, "", ["a"], 240)
        for name in kind.series:
            chart.add(name, [1])
        out.append(_render(chart, "")[1])
    return re.sub(r"\n+", "\n", "\n".join(out))
