"""Small-cell suppression (domain.md §7): no count 1-5 is shown, and none can be worked out from totals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.gemeenten.suppression import (
    SECONDARY_CELL,
    SMALL_CELL,
    WITHHELD_CELL,
    count_table,
    secondary_suppression,
    suppress_small_cells,
    suppressed_table,
    with_totals,
)

MAX_SMALL = 5
MARKERS = (SMALL_CELL, SECONDARY_CELL, WITHHELD_CELL)


def counts(rows: list[list[int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, index=[f"r{i}" for i in range(len(rows))],
                         columns=[f"c{j}" for j in range(len(rows[0]))]).astype("int64")
    return frame.rename_axis("dimensie")


def shown(table: pd.DataFrame) -> np.ndarray:
    """The published numbers and markers, without the dimension column."""
    return table.iloc[:, 1:].to_numpy(dtype=object)


# -- the attacker: what a reader can work out from one published line --------------------------


def possible_values(marker: object, limit: int) -> set[int]:
    """What a reader knows a published cell can be (docs/exports.md explains the markers)."""
    if marker == SMALL_CELL:
        return set(range(1, MAX_SMALL + 1))
    if marker == SECONDARY_CELL:
        return set(range(MAX_SMALL + 1, limit + 1))
    if marker == WITHHELD_CELL:
        return set(range(0, limit + 1))
    return {int(marker)}


def recoverable_cells(published: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Hidden cells whose value is the only one consistent with their line (cells add up to the total).

    Exact per line: for each hidden cell, every value up to ``limit`` is tested against the sums the
    other cells of the line can reach. Independent of the implementation's interval reasoning. The
    reader knows only what is published: a hidden total is unknown to them, so ``limit`` lies well
    above any true count.
    """
    found = []
    n_rows, n_cols = published.shape
    lines = [[(i, j) for j in range(n_cols)] for i in range(n_rows)]
    lines += [[(i, j) for i in range(n_rows)] for j in range(n_cols)]
    for line in lines:
        *cells, total = line
        options = {pos: _bits(possible_values(published[pos], limit)) for pos in line}
        for pos in line:
            if published[pos] not in MARKERS:
                continue
            others = _sums([options[c] for c in cells if c != pos])
            if pos == total:
                consistent = [v for v in _values(options[pos]) if others >> v & 1]
            else:
                consistent = [v for v in _values(options[pos]) if (others << v) & options[total]]
            if len(consistent) == 1:
                found.append(pos)
    return sorted(set(found))


def _bits(values: set[int]) -> int:
    """A set of non-negative integers as a bit mask (bit v set when v is in the set)."""
    return sum(1 << v for v in values)


def _values(mask: int) -> list[int]:
    return [v for v in range(mask.bit_length()) if mask >> v & 1]


def _sums(masks: list[int]) -> int:
    """Every sum that one value from each set can make, as a bit mask."""
    sums = 1
    for mask in masks:
        sums = _or_shifts(sums, mask)
    return sums


def _or_shifts(sums: int, mask: int) -> int:
    out = 0
    for v in _values(mask):
        out |= sums << v
    return out


def pinned_by_combining_lines(published: np.ndarray) -> list[tuple[int, int]]:
    """Hidden cells a reader pins down by narrowing ranges through rows and columns in turn.

    A second attacker, one cell at a time in plain Python: start from what the markers say, then
    repeatedly narrow each number by its row and its column (cells add up to the total).
    """
    n_rows, n_cols = published.shape
    low, high = {}, {}
    for pos in np.ndindex(n_rows, n_cols):
        marker = published[pos]
        low[pos], high[pos] = {SMALL_CELL: (1, MAX_SMALL), SECONDARY_CELL: (MAX_SMALL + 1, math.inf),
                               WITHHELD_CELL: (0, math.inf)}.get(marker, (marker, marker))
    lines = [[(i, j) for j in range(n_cols)] for i in range(n_rows)]
    lines += [[(i, j) for i in range(n_rows)] for j in range(n_cols)]
    changed = True
    while changed:
        changed = False
        for line in lines:
            *cells, total = line
            for pos in line:
                if pos == total:
                    lo, hi = sum(low[c] for c in cells), sum(high[c] for c in cells)
                else:
                    others = [c for c in cells if c != pos]
                    lo = low[total] - sum(high[c] for c in others)
                    hi = high[total] - sum(low[c] for c in others)
                if lo > low[pos] or hi < high[pos]:
                    low[pos], high[pos] = max(low[pos], lo), min(high[pos], hi)
                    changed = True
    hidden = [pos for pos in low if published[pos] in MARKERS]
    return [pos for pos in hidden if low[pos] == high[pos]]


# -- properties ---------------------------------------------------------------------------------

cell = st.one_of(st.integers(0, 6), st.integers(0, 40))
tables = st.integers(1, 5).flatmap(lambda cols: st.lists(st.lists(cell, min_size=cols, max_size=cols),
                                                         min_size=1, max_size=5))


@settings(max_examples=50, deadline=None)
@given(rows=tables)
def test_no_published_number_is_between_one_and_five(rows):
    values = shown(suppressed_table(counts(rows), MAX_SMALL))
    numbers = [v for v in values.ravel() if v not in MARKERS]
    assert not [n for n in numbers if 1 <= n <= MAX_SMALL]


@settings(max_examples=50, deadline=None)
@given(rows=tables)
def test_every_published_number_is_the_true_count(rows):
    truth = with_totals(counts(rows)).to_numpy()
    values = shown(suppressed_table(counts(rows), MAX_SMALL))
    published = np.array([[v not in MARKERS for v in row] for row in values])
    assert (values[published].astype(int) == truth[published]).all()


@settings(max_examples=50, deadline=None)
@given(rows=tables)
def test_no_hidden_cell_can_be_recovered_from_the_totals(rows):
    far_above_any_count = 10 * int(counts(rows).to_numpy().sum()) + 50
    assert recoverable_cells(shown(suppressed_table(counts(rows), MAX_SMALL)), far_above_any_count) == []


@settings(max_examples=50, deadline=None)
@given(rows=tables)
def test_no_hidden_cell_can_be_recovered_by_combining_rows_and_columns(rows):
    assert pinned_by_combining_lines(shown(suppressed_table(counts(rows), MAX_SMALL))) == []


@settings(max_examples=50, deadline=None)
@given(rows=tables)
def test_a_hidden_cell_is_never_alone_in_its_row_or_column(rows):
    values = shown(suppressed_table(counts(rows), MAX_SMALL))
    hidden = np.isin(values, MARKERS)
    assert not (hidden.sum(axis=1) == 1).any()
    assert not (hidden.sum(axis=0) == 1).any()


# -- the rules on examples ----------------------------------------------------------------------


def test_counts_one_to_five_are_shown_as_less_than_five_and_zero_as_zero():
    table = with_totals(counts([[0, 3, 20], [7, 1, 30]]))
    primary = suppress_small_cells(table, MAX_SMALL)
    assert primary.to_numpy().tolist() == [[False, True, False, False], [False, True, False, False],
                                           [False, True, False, False]]  # the column total 3 + 1 = 4 too


def test_a_single_small_cell_in_a_row_takes_the_next_smallest_cell_with_it():
    published = shown(suppressed_table(counts([[3, 12, 40], [9, 15, 30]]), MAX_SMALL))
    assert published[0].tolist() == [SMALL_CELL, SECONDARY_CELL, 40, 55]  # 12 is the next smallest in row 0
    assert published[:, 0].tolist() == [SMALL_CELL, SECONDARY_CELL, 12]  # and 9 in column 0


def test_a_small_total_is_suppressed_too():
    published = suppressed_table(counts([[2, 1], [0, 0]]), MAX_SMALL)
    assert shown(published)[0, 2] == SMALL_CELL


def test_a_table_without_small_counts_is_published_unchanged():
    published = suppressed_table(counts([[10, 20], [0, 7]]), MAX_SMALL)
    assert shown(published).tolist() == [[10, 20, 30], [0, 7, 7], [10, 27, 37]]


def test_secondary_suppression_stops_where_no_shown_number_is_left_to_hide():
    table = with_totals(counts([[3, 0], [0, 0]]))
    secondary = secondary_suppression(table, suppress_small_cells(table, MAX_SMALL), MAX_SMALL)
    assert not secondary.to_numpy().any()


def test_two_small_cells_that_could_only_both_be_one_are_protected_further():
    # 1 + 1 = 2 would give both cells away: a reader knows "<5" means 1 to 5.
    published = shown(suppressed_table(counts([[1, 1, 30], [20, 20, 20]]), MAX_SMALL))
    assert published[0].tolist() == [SMALL_CELL, SMALL_CELL, SECONDARY_CELL, 32]


def test_a_table_that_cannot_be_protected_is_withheld_entirely():
    # Five cells of "<5" adding up to a total of at most 5: every cell must be 1.
    published = shown(suppressed_table(counts([[1], [1], [1], [1], [1]]), MAX_SMALL))
    assert (published == WITHHELD_CELL).all()


def test_count_table_lists_every_category_and_counts_unlisted_ones_too():
    frame = pd.DataFrame({"school": ["A", "A", "B"], "status": ["wacht", "geen", "onverwacht"]})
    table = count_table(frame, "school", "status", ["A", "B", "C"], ["wacht", "in zorg", "geen"])
    assert list(table.columns) == ["wacht", "in zorg", "geen", "onverwacht"]
    assert table.loc["C"].sum() == 0 and table.to_numpy().sum() == 3
