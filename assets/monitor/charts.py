"""The report's charts: matplotlib figures as inline SVG, each with title, axis labels and units.

Drawn with matplotlib's object API (``Figure``, no pyplot state), so a Dagster step or a backfill can
draw in any thread. The SVG is self-contained: text stays text in the system's sans-serif font (no
font files, nothing fetched), element ids come from a fixed salt and the creation date is left
out, so the same figures give the same bytes. Only published values reach a chart: a suppressed
number is never drawn (a line has a gap, a bar part is not shown). A label that shows a count of
pupils carries an element id starting with ``aantal-`` (and the chart's name) so a test can read
every count in the report.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# Colour-blind safe (Okabe-Ito), dark enough on white paper and in grey print.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
NORM_COLOURS = ("#009E73", "#F0E442", "#E69F00", "#D55E00")  # within norm -> far past it
HIDDEN_COLOUR = "#d9d9d9"
HOLIDAY_COLOUR = "#eeeeee"
DUTCH_MONTHS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")
STYLE = {
    "svg.fonttype": "none",  # text as <text>: readable, searchable, printed sharp
    "svg.hashsalt": "swv-monitor",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
}


@dataclass(frozen=True)
class Chart:
    """A chart as it goes into the report: its SVG, a one-line reading guide and the text alternative."""

    svg: str
    guide: str
    description: str


def _svg(fig: Figure, description: str) -> str:
    """The figure as an inline ``<svg>`` that scales with the page, without XML prologue or metadata."""
    buffer = io.StringIO()
    with mpl.rc_context(STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="grafiek"', text, count=1)
    return text.replace("<svg", f'<svg role="img" aria-label="{_attribute(description)}"', 1)


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _figure(width: float = 7.0, height: float = 2.8) -> Figure:
    with mpl.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _axes(fig: Figure):
    with mpl.rc_context(STYLE):
        return fig.subplots()


def _count_labeller(name: str):
    """Labels that show a number of pupils, with ids ``aantal-<name>-<n>`` (unique in the report)."""
    numbers = itertools.count(1)

    def label(ax, x: float, y: float, text: str, **kwargs) -> None:
        ax.text(x, y, text, **kwargs).set_gid(f"aantal-{name}-{next(numbers)}")

    return label


def _dutch_dates(ax, first: pd.Timestamp, last: pd.Timestamp) -> None:
    """Date ticks as a Dutch reader writes them (``5 okt``), whole days only."""
    days = (last - first).days
    locator = mdates.DayLocator(interval=max(1, days // 6 or 1)) if days <= 21 else mdates.AutoDateLocator(
        minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)

    def label(value, _):
        day = mdates.num2date(value)
        return f"{day.day} {DUTCH_MONTHS[day.month - 1]}" + (f" {day.year}" if day.month == 1 else "")

    ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(label))


def _whole_numbers(axis) -> None:
    axis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))


def trend_chart(series: Mapping[str, pd.Series], *, title: str, ylabel: str, guide: str,
                holidays: Sequence[tuple[dt.date, dt.date]] = (), goal: float | None = None,
                percent: bool = False) -> Chart:
    """Lines over the nights (x: date, y: ``ylabel``); school holidays shaded, the plan's goal dashed.

    Each series is indexed by night and holds published values only (NaN where hidden: a gap).
    """
    fig = _figure()
    ax = _axes(fig)
    nights = [night for values in series.values() for night in values.index]
    first, last = (min(nights), max(nights)) if nights else (None, None)
    shaded = False
    for start, end in holidays:
        if first is not None and pd.Timestamp(end) >= first and pd.Timestamp(start) <= last:
            ax.axvspan(pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1), color=HOLIDAY_COLOUR, lw=0,
                       label=None if shaded else "schoolvakantie", zorder=0)
            shaded = True
    for (label, values), colour in zip(series.items(), COLOURS, strict=False):
        values = values.sort_index()
        marker = "o" if values.notna().sum() <= 12 else None
        ax.plot(values.index, values.to_numpy(dtype=float), label=label, color=colour, lw=2, marker=marker, ms=3)
    if goal is not None:
        ax.axhline(goal, color="#444444", lw=1, ls="--", label=f"doel: {goal:g}{'%' if percent else ''}")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("nacht (peildatum)")
    ax.set_ylim(bottom=0, top=100 if percent else None)
    if not percent:
        _whole_numbers(ax.yaxis)
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    if first is not None:
        margin = pd.Timedelta(days=max(1, (last - first).days // 40))
        ax.set_xlim(first - margin, last + margin)
        _dutch_dates(ax, first - margin, last + margin)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    description = f"{title}. {guide}"
    return Chart(_svg(fig, description), guide, description)


def stacked_bars(name: str, table: pd.DataFrame, totals: pd.Series, *, title: str, xlabel: str, guide: str,
                 colours: Sequence[str] = COLOURS) -> Chart:
    """Horizontal bars, one per row of ``table`` (categories as columns, published values, NaN hidden).

    The whole bar is the row's published total; its shown parts are stacked in colour, and what the
    hidden parts add up to (derivable from the published numbers anyway) is grey. A hidden total draws
    no bar, only its marker.
    """
    rows = list(table.index)
    count_label = _count_labeller(name)
    fig = _figure(height=0.45 * len(rows) + 1.2)
    ax = _axes(fig)
    positions = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    for column, colour in zip(table.columns, itertools.cycle(colours)):
        values = table[column].to_numpy(dtype=float)
        shown = np.nan_to_num(values)
        ax.barh(positions, shown, left=left, color=colour, label=column, height=0.6)
        left = left + shown
    total = totals.reindex(rows).to_numpy(dtype=object)
    known = np.array([isinstance(v, (int, float, np.number)) and not pd.isna(v) for v in total])
    rest = np.where(known, np.array([float(v) if ok else 0.0 for v, ok in zip(total, known)]) - left, 0.0)
    if (rest > 0).any():
        ax.barh(positions, np.clip(rest, 0, None), left=left, color=HIDDEN_COLOUR, height=0.6,
                label="verborgen delen (kleine aantallen)")
    width = max([float(v) for v, ok in zip(total, known) if ok] + [1.0])
    for y, value, ok in zip(positions, total, known):
        text = f"{int(value):,}".replace(",", ".") if ok else str(value)
        count_label(ax, (float(value) if ok else 0) + width * 0.01, y, text, va="center", fontsize=8)
    ax.set_yticks(positions, rows)
    ax.set_xlim(0, width * 1.12)
    _whole_numbers(ax.xaxis)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("gemeente")
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    description = f"{title}. {guide}"
    return Chart(_svg(fig, description), guide, description)


def class_bars(name: str, values: Mapping[str, object], *, title: str, xlabel: str, ylabel: str, guide: str,
               colours: Sequence[str] = NORM_COLOURS, notes: Sequence[str] = ()) -> Chart:
    """Vertical bars of a few classes (e.g. waiting time against the norms); a hidden value draws no bar."""
    count_label = _count_labeller(name)
    fig = _figure(height=2.6)
    ax = _axes(fig)
    labels = list(values)
    numbers = [float(v) if isinstance(v, (int, float, np.number)) and not pd.isna(v) else np.nan
               for v in values.values()]
    top = max([v for v in numbers if not np.isnan(v)] + [1.0])
    bars = ax.bar(range(len(labels)), np.nan_to_num(numbers), color=list(colours)[:len(labels)], width=0.65)
    for bar, value, raw in zip(bars, numbers, values.values()):
        text = f"{int(value):,}".replace(",", ".") if not np.isnan(value) else str(raw)
        count_label(ax, bar.get_x() + bar.get_width() / 2, (0 if np.isnan(value) else value) + top * 0.02, text,
                     ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, top * 1.18)
    _whole_numbers(ax.yaxis)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    for note, x in zip(notes, np.arange(len(notes)) + 0.5):
        ax.axvline(x, color="#444444", lw=1, ls="--")
        ax.text(x, top * 1.12, note, ha="center", va="top", fontsize=7, color="#444444",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    description = f"{title}. {guide}"
    return Chart(_svg(fig, description), guide, description)


def flow_chart(name: str, steps: Sequence[tuple[str, Mapping[str, object], object]], *, title: str,
               guide: str) -> Chart:
    """The continuous line as 100% bars, one per step: ``(label, {part: published count}, published total)``.

    Each part is its share of the step's group, labelled with its count where there is room; a
    hidden part is not drawn (the grey rest is what the hidden parts add up to), a hidden total
    draws nothing.
    """
    count_label = _count_labeller(name)
    fig = _figure(height=0.85 * len(steps) + 0.6)
    with mpl.rc_context(STYLE):
        axes = fig.subplots(len(steps), 1, squeeze=False)[:, 0]
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=10)
    for ax, (label, parts, total) in zip(axes, steps):
        whole = float(total) if isinstance(total, (int, float, np.number)) and not pd.isna(total) else None
        group = f"{int(whole):,}".replace(",", ".") if whole is not None else str(total)
        ax.set_title(f"{label}: {group} leerlingen", loc="left", fontsize=8.5, fontweight="normal")
        left = 0.0
        if whole:
            for (part, value), colour in zip(parts.items(), itertools.cycle(COLOURS)):
                known = isinstance(value, (int, float, np.number)) and not pd.isna(value)
                share = 100 * float(value) / whole if known else 0.0
                ax.barh(0, share, left=left, color=colour, height=0.7, label=part)
                if share >= 8:
                    count_label(ax, left + share / 2, 0, f"{int(value):,}".replace(",", "."), ha="center",
                                va="center", fontsize=7, color="white")
                left += share
            if left < 99.95:
                ax.barh(0, 100 - left, left=left, color=HIDDEN_COLOUR, height=0.7, label="verborgen (kleine aantallen)")
        ax.set_xlim(0, 100)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xticks([0, 25, 50, 75, 100], [] if ax is not axes[-1] else ["0", "25", "50", "75", "100"])
        if ax.get_legend_handles_labels()[0]:  # a hidden group draws no bar, so has nothing to explain
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=7)
    axes[-1].set_xlabel("aandeel van de groep (%)")
    description = f"{title}. {guide}"
    return Chart(_svg(fig, description), guide, description)
