"""The monitor's figures as they may be published: small numbers suppressed as in the exports.

The report goes beyond the SWV's staff (OPR, municipalities, the OOGO), so every count of 1 to 5
pupils is hidden, and so is every number from which a hidden one could be worked out (docs/domain.md
§7, §9 item 14). The suppression functions are the exports' own (``assets.gemeenten.suppression``); here
they are applied per night to each count as a table of categories by area, with totals:

- a count's categories add up to its total (category ``""``) and the municipalities and ``OVERIG``
  add up to the region, so a count is exactly the exports' cross-table with totals; where a number
  must be hidden to protect another, a cell goes before a total (the totals are the headline figures);
- counts over the same group (``Indicator.total_with``: waiting children by waiting time and by
  school) share their total, and the region's product table shares numbers with the waiting-time
  count (``Indicator.aliases``): a number hidden in one is hidden in the other, and each is suppressed
  again until nothing changes;
- ``thuiszitters_nieuw`` and ``thuiszitters_beeindigd`` are hidden together: with the two nights'
  totals, either one gives the other;
- a share is shown only when the counts it is made of are shown; a median or percentile only over
  more than 5 children;
- a table too small to protect is withheld (``.``) except its grand total when that is above 5: with
  every other number unknown, a sum of several cells pins none of them.

Markers as in the exports: ``<5`` (1 to 5), ``x`` (hidden so a ``<5`` cannot be worked out, or a
share or statistic of hidden counts), ``.`` (the whole table withheld), ``–`` (nothing to show: no
one in the group). The warehouse keeps the exact numbers, each with the marker it is published with
(``published``, set when the night is written), so a report of a year of nights suppresses nothing again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.gemeenten.suppression import (
    SECONDARY_CELL,
    SMALL_CELL,
    WITHHELD_CELL,
    secondary_suppression,
    suppress_small_cells,
    with_totals,
    withhold_unprotectable_table,
)
from assets.monitor.indicators import COUNT, INDICATORS, REGION, ROWS, SHARE, STATISTIC, TOTAL

NOTHING = "–"  # no one in the group: no share, no median
PAIRED = ("thuiszitters_nieuw", "thuiszitters_beeindigd")
MARKER_MEANING = {
    SMALL_CELL: "1 tot en met 5: te klein om te tonen",
    SECONDARY_CELL: "verborgen, zodat een klein aantal niet uit een totaal of verschil te herleiden is",
    WITHHELD_CELL: "tabel niet getoond: te klein om veilig te tonen",
    NOTHING: "niemand in de groep",
}


def equal_cells(present: set[str], areas: list[str]) -> list[tuple[tuple[str, str, str], tuple[str, str, str]]]:
    """Pairs of published counts that are the same number: the totals of counts over the same group
    (``Indicator.total_with``) in every area, and a cross count's ``aliases`` in the region."""
    pairs = []
    for code in present:
        definition = INDICATORS[code]
        if definition.total_with in present:
            pairs += [((code, area, TOTAL), (definition.total_with, area, TOTAL)) for area in areas]
        pairs += [((code, REGION, own), (other, REGION, theirs)) for own, other, theirs in definition.aliases
                  if other in present]
    return pairs


@dataclass
class _Table:
    """One count of one night as the table the exports suppress: ``counts`` without totals (``with_totals``
    adds a last row and column), categories by area, or for a cross count its two dimensions."""

    counts: pd.DataFrame
    status: np.ndarray | None = None  # per number of with_totals(counts): 0 shown, 1 "<5", 2 "x", 3 withheld
    forced: np.ndarray | None = None  # numbers another table makes this one hide

    def place(self, code: str, area: str, category: str) -> tuple[int, int]:
        """(row, column) of (indicator, area, category) in ``with_totals(counts)``."""
        if INDICATORS[code].cross:
            row, _, column = category.partition("|")
        else:
            row, column = category, ("" if area == REGION else area)
        rows, columns = self.counts.index, self.counts.columns
        i = rows.get_loc(row) if row in rows else len(rows)
        j = columns.get_loc(column) if column in columns else len(columns)
        return i, j


def _tables(rows: pd.DataFrame) -> dict[str, _Table]:
    """The night's counts as tables (built from plain lists: a night has hundreds of numbers)."""
    cells: dict[str, dict[tuple[str, str], float]] = {}
    with_categories = {code for code, category in zip(rows["indicator"], rows["category"], strict=True)
                       if category != TOTAL}
    for code, area, category, value in zip(rows["indicator"], rows["area"], rows["category"], rows["numerator"],
                                           strict=True):
        definition = INDICATORS[code]
        if definition.kind != COUNT:
            continue
        if definition.cross:
            row, _, column = category.partition("|")
            if not row or not column:
                continue
        else:
            if area == REGION or (category == TOTAL and code in with_categories):
                continue
            row, column = category, area
        cells.setdefault(code, {})[(row, column)] = value
    tables = {}
    for code, numbers in cells.items():
        row_labels = list(dict.fromkeys(r for r, _ in numbers))
        column_labels = (list(INDICATORS[code].categories) if INDICATORS[code].cross
                         else list(dict.fromkeys(c for _, c in numbers)))
        matrix = np.zeros((len(row_labels), len(column_labels)), dtype=np.int64)
        at_row = {label: i for i, label in enumerate(row_labels)}
        at_column = {label: j for j, label in enumerate(column_labels)}
        for (r, c), value in numbers.items():
            matrix[at_row[r], at_column[c]] = int(value)
        tables[code] = _Table(pd.DataFrame(matrix, index=row_labels, columns=column_labels))
    return tables


def _suppress(table: _Table, max_small: int) -> np.ndarray:
    """Status per number of ``with_totals(table.counts)``: 0 shown, 1 ``<5``, 2 ``x``, 3 withheld."""
    full = with_totals(table.counts)
    primary = suppress_small_cells(full, max_small)
    hidden = None if table.forced is None else pd.DataFrame(table.forced, index=full.index, columns=full.columns)
    secondary = secondary_suppression(full, primary, max_small, hidden=hidden, keep_totals=True)
    status = np.where(primary.to_numpy(), 1, np.where(secondary.to_numpy(), 2, 0))
    if withhold_unprotectable_table(full, primary, secondary, max_small):
        status[:] = 3
        # The grand total alone pins none of several unknown cells: a region's headline figure stays,
        # unless another table hides the same number (then showing it here would undo that).
        forced_total = table.forced is not None and table.forced[-1, -1]
        if full.size > 4 and full.iat[-1, -1] > max_small and not forced_total:
            status[-1, -1] = 0
    return status


def _count_status(night_rows: pd.DataFrame, max_small: int) -> dict[tuple[str, str, str], int]:
    """(indicator, area, category) -> status of every count of one night (0 shown, 1 ``<5``, 2 ``x``, 3 withheld).

    Each count is suppressed as a table; a number hidden in one table and shown as the same number
    in another (``equal_cells``) is then hidden there too, and that table suppressed again, until
    nothing changes. Every round forces at least one more number hidden and none is ever shown again,
    so this ends.
    """
    tables = _tables(night_rows)
    areas = list(dict.fromkeys(night_rows["area"]))
    pairs = [(a, b, tables[a[0]].place(*a), tables[b[0]].place(*b)) for a, b in equal_cells(set(tables), areas)]
    pending = set(tables)
    while pending:
        for code in pending:
            tables[code].status = _suppress(tables[code], max_small)
        pending, forced_now = set(), set()
        for a, b, at_a, at_b in pairs:
            for (code, here), (other, there) in (((a[0], at_a), (b[0], at_b)), ((b[0], at_b), (a[0], at_a))):
                # A withheld table (status 3) publishes nothing: its numbers need no company.
                if tables[code].status[here] in (1, 2) and tables[other].status[there] == 0:
                    table = tables[other]
                    if table.forced is None:
                        table.forced = np.zeros(table.status.shape, dtype=bool)
                    if table.forced[there]:
                        if (other, there) in forced_now:  # by another equal number in this round
                            continue
                        # Forced in an earlier round and shown anyway: looping would never end.
                        raise RuntimeError(f"suppression of {other} shows a number it was told to hide "
                                           f"(equal to a hidden number of {code}); nothing is published")
                    table.forced[there] = True
                    forced_now.add((other, there))
                    pending.add(other)
    out = {}
    for code, area, category in zip(night_rows["indicator"], night_rows["area"], night_rows["category"], strict=True):
        if code in tables:
            out[(code, area, category)] = int(tables[code].status[tables[code].place(code, area, category)])
    return out


def _format(value: float, unit: str) -> str:
    """A number as a Dutch reader writes it: 1.234 pupils, 87,5%, 12,3 weeks."""
    if pd.isna(value):
        return NOTHING
    if unit == "procent":
        return f"{value:.1f}%".replace(".", ",")
    if unit == "weken":
        return f"{value:.1f}".replace(".", ",")
    return f"{int(round(value)):,}".replace(",", ".")


def publish(rows: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """``rows`` (one or more nights) with ``shown`` (the number may be published) and ``display`` (the
    number as shown, or its marker). A night whose rows carry their ``published`` marker (as the
    history stores them) keeps it; other nights are suppressed here (``markers``)."""
    parts = []
    for _, night_rows in rows.groupby("night", sort=True):
        night_rows = night_rows.reset_index(drop=True)
        stored = night_rows["published"] if "published" in night_rows.columns else None
        marker = stored if stored is not None and stored.notna().all() else markers(night_rows, max_small)
        shown = (marker == "").to_numpy(dtype=bool)
        display = [_format(v, u) if ok else m for v, u, ok, m in
                   zip(night_rows["value"], night_rows["unit"], shown, marker, strict=True)]
        parts.append(night_rows.assign(published=marker.astype("str"), shown=shown,
                                       display=pd.Series(display, index=night_rows.index, dtype="str")))
    if not parts:
        return rows.assign(published=pd.Series(dtype="str"), shown=pd.Series(dtype=bool),
                           display=pd.Series(dtype="str"))
    return pd.concat(parts, ignore_index=True)


def markers(rows: pd.DataFrame, max_small: int = 5) -> pd.Series:
    """How each figure of one night is published: ``""`` shown, else its marker (module docstring)."""
    status = _count_status(rows, max_small)
    codes, areas, categories = rows["indicator"].tolist(), rows["area"].tolist(), rows["category"].tolist()
    values, denominators = rows["value"].tolist(), rows["denominator"].tolist()
    marker = [""] * len(rows)
    for i, code in enumerate(codes):
        kind, key = INDICATORS[code].kind, (code, areas[i], categories[i])
        if kind == COUNT:
            marker[i] = ("", SMALL_CELL, SECONDARY_CELL, WITHHELD_CELL)[status[key]]
        elif kind == SHARE:
            definition = INDICATORS[code]
            needed = [(definition.share_of, areas[i], c) for c in (*definition.numerator, TOTAL)]
            if denominators[i] == 0 or pd.isna(values[i]):
                marker[i] = NOTHING
            elif any(status.get(n, 0) for n in needed):
                marker[i] = SECONDARY_CELL
        elif kind == STATISTIC:
            marker[i] = NOTHING if denominators[i] == 0 else SECONDARY_CELL if denominators[i] <= max_small else ""
        elif kind == ROWS and pd.isna(values[i]):
            marker[i] = NOTHING
    # Either of the night's changes gives the other (with the two nights' totals): hidden together.
    hidden_change = defaultdict(bool)
    for i, code in enumerate(codes):
        if code in PAIRED:
            hidden_change[areas[i]] |= marker[i] != ""
    for i, code in enumerate(codes):
        if code in PAIRED and hidden_change[areas[i]] and marker[i] == "":
            marker[i] = SECONDARY_CELL
    return pd.Series(marker, index=rows.index, dtype="str")


def visible_small_counts(published: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """Counts of 1 to ``max_small`` pupils that would be shown: must be empty before anything is written."""
    kinds = published["indicator"].map({code: d.kind for code, d in INDICATORS.items()})
    small = published["value"].between(1, max_small) & published["shown"] & kinds.eq(COUNT)
    return published.loc[small.fillna(False).to_numpy(dtype=bool), ["night", "indicator", "area", "category"]]
