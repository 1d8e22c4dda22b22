"""Small-cell suppression of published counts (domain.md §7, §9 item 14).

Counts 1 to ``max_small`` are shown as ``"<5"``; secondary suppression hides more numbers until no
hidden one can be worked out from the totals; a table that cannot be protected is withheld. The
exports and the monitor publish through these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SMALL_CELL = "<5"  # a count of 1 to 5 (DUO's notation, domain.md §7)
SECONDARY_CELL = "x"  # hidden so that a "<5" elsewhere cannot be worked out (CBS: "x = geheim")
WITHHELD_CELL = "."  # the whole table is withheld: too small to show anything safely
TOTAL = "totaal"


def count_table(frame: pd.DataFrame, rows: str, columns: str, row_order: Sequence[str],
                column_order: Sequence[str]) -> pd.DataFrame:
    """Counts of ``frame`` by two categorical columns; every listed category is present (zeros
    included) and categories not listed follow in sorted order, so the totals count every row."""
    counts = frame.groupby([rows, columns], sort=False).size()
    table = counts.unstack(columns, fill_value=0) if len(counts) else pd.DataFrame()
    extra_rows = sorted(r for r in table.index if r not in row_order)
    extra_columns = sorted(c for c in table.columns if c not in column_order)
    table = table.reindex(index=[*row_order, *extra_rows], columns=[*column_order, *extra_columns], fill_value=0)
    return table.rename_axis(index=rows, columns=None).astype("int64")


def with_totals(counts: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``totaal`` column and a ``totaal`` row."""
    table = counts.assign(**{TOTAL: counts.sum(axis=1)})
    return pd.concat([table, table.sum().to_frame(TOTAL).T.rename_axis(counts.index.name)]).astype("int64")


def suppress_small_cells(table: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """Primary suppression: every published number from 1 to ``max_small``, totals included.

    domain.md §7: CBS/NCO publish nothing about groups of 5 or fewer; DUO writes ``"<5"``. A zero is
    shown: it describes nobody.
    """
    return (table >= 1) & (table <= max_small)


def _others_sum(matrix: np.ndarray) -> np.ndarray:
    """Per element: the sum of the other elements of its row (infinite where another one is)."""
    infinite = np.isinf(matrix)
    finite = np.where(infinite, 0.0, matrix)
    others_finite = finite.sum(axis=1, keepdims=True) - finite
    others_infinite = infinite.sum(axis=1, keepdims=True) - infinite > 0
    return np.where(others_infinite, np.inf, others_finite)


def _tighten_rows(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass of ``cells of a row add up to its last element`` over every row at once."""
    cells_low, cells_high = low[:, :-1], high[:, :-1]
    total_low, total_high = low[:, -1:], high[:, -1:]
    new_low = np.hstack([total_low - _others_sum(cells_high), cells_low.sum(axis=1, keepdims=True)])
    new_high = np.hstack([total_high - _others_sum(cells_low), cells_high.sum(axis=1, keepdims=True)])
    return np.maximum(low, new_low), np.minimum(high, new_high)


def reader_bounds(values: np.ndarray, status: np.ndarray, max_small: int,
                  max_passes: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """The narrowest range a reader can give every number of a published table with totals.

    The reader knows every shown number, that ``"<5"`` is 1..max_small, that ``"x"`` is more than
    max_small (it would have been ``"<5"`` otherwise), and that in every row and every column the
    cells add up to the total. Ranges are narrowed row by row and column by column until nothing
    changes (interval reasoning over the whole table, stronger than looking at one line).
    """
    shown = status == 0
    low = np.where(shown, values, np.where(status == 1, 1.0, max_small + 1.0)).astype(float)
    high = np.where(shown, values, np.where(status == 1, float(max_small), np.inf)).astype(float)
    for _ in range(max_passes):
        new_low, new_high = _tighten_rows(low, high)
        new_low, new_high = (m.T for m in _tighten_rows(new_low.T, new_high.T))
        if np.array_equal(new_low, low) and np.array_equal(new_high, high):
            break
        low, high = new_low, new_high
    return low, high


def secondary_suppression(table: pd.DataFrame, primary: pd.DataFrame, max_small: int = 5,
                          hidden: pd.DataFrame | None = None, keep_totals: bool = False) -> pd.DataFrame:
    """Secondary suppression: hide more numbers until no hidden number can be worked out.

    domain.md §7 and §9 item 14. ``table`` has totals (``with_totals``). While ``reader_bounds``
    pins some hidden number to one value (a hidden cell alone in its row, ``"<5" + "<5" = 2``, or a
    chain of such steps through rows and columns), one more number is hidden: a shown non-zero
    number in as many of the pinned numbers' rows and columns as possible (so a 2x2 pattern closes
    in one step), the smallest such, a cell before a total; repeat until stable. Returns the
    numbers hidden by this rule (not the primary ones).

    ``hidden``: numbers above ``max_small`` that must be hidden anyway, e.g. a total that another
    published table with the same total hides; they are hidden from the start and returned too.
    ``keep_totals``: among the candidates a cell goes before a total whatever their sizes, for a
    table whose totals are the figures its readers need most (the support-plan monitor's region and
    municipalities).
    """
    values = table.to_numpy(dtype=np.int64)
    status = np.where(primary.to_numpy(dtype=bool), 1, 0)  # 0 shown, 1 "<5", 2 "x"
    if hidden is not None:
        status[hidden.to_numpy(dtype=bool) & (status == 0)] = 2
    n_rows, n_cols = values.shape
    rows, cols = np.indices(values.shape)
    is_total = (rows == n_rows - 1) | (cols == n_cols - 1)
    while True:
        low, high = reader_bounds(values, status, max_small)
        pinned = (status > 0) & (low == high)
        candidates = (status == 0) & (values > 0)
        if not pinned.any() or not candidates.any():
            break
        lines = pinned.any(axis=1)[rows].astype(int) + pinned.any(axis=0)[cols].astype(int)
        keys = (values[candidates], is_total[candidates]) if keep_totals else (is_total[candidates],
                                                                                values[candidates])
        order = np.lexsort((*keys, -lines[candidates]))
        status[tuple(np.argwhere(candidates)[order[0]])] = 2
    return pd.DataFrame(status == 2, index=table.index, columns=table.columns)


def withhold_unprotectable_table(table: pd.DataFrame, primary: pd.DataFrame, secondary: pd.DataFrame,
                                 max_small: int = 5) -> bool:
    """Withhold every number of a table that secondary suppression could not protect.

    domain.md §7. Happens only in tiny tables with nothing left to hide: five rows of 1 with a
    total of 5 shown as ``"<5"`` everywhere still tells the reader every cell is 1. Then no number
    of the table is published (``"."``), not even the zeros.
    """
    status = np.where(primary.to_numpy(dtype=bool), 1, np.where(secondary.to_numpy(dtype=bool), 2, 0))
    low, high = reader_bounds(table.to_numpy(dtype=np.int64), status, max_small)
    return bool(((status > 0) & (low == high)).any())


def published(table: pd.DataFrame, primary: pd.DataFrame, secondary: pd.DataFrame,
              withheld: bool = False) -> pd.DataFrame:
    """Numbers as they are shown: ints, ``"<5"``, ``"x"``, or ``"."`` everywhere (dimension column first)."""
    cells = table.to_numpy(dtype=object)
    if withheld:
        cells[:] = WITHHELD_CELL
    else:
        cells[primary.to_numpy(dtype=bool)] = SMALL_CELL
        cells[secondary.to_numpy(dtype=bool)] = SECONDARY_CELL
    return pd.DataFrame(cells, index=table.index, columns=table.columns).reset_index()


def suppressed_table(counts: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """``counts`` with totals and every suppression rule applied: ready to publish."""
    table = with_totals(counts)
    primary = suppress_small_cells(table, max_small)
    secondary = secondary_suppression(table, primary, max_small)
    withheld = withhold_unprotectable_table(table, primary, secondary, max_small)
    return published(table, primary, secondary, withheld)
