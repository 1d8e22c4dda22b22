"""What every connector hands to the pipeline: the rows of one delivery, as text, with its fingerprint."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class DeliveryError(Exception):
    """A delivery that cannot be read as a whole (unreachable, unreadable, empty, truncated, no header).

    The message always names the delivery (file path or URL) and, where it applies, the line or page,
    and says the cause in plain words, never a delivered value. ``delivery``: the name of the one
    delivery it is about, when it is about one (not, e.g., "no file matches").
    """

    def __init__(self, message: str, *, delivery: str | None = None):
        super().__init__(message)
        self.delivery = delivery


CELL_FLAG_COLUMNS = ["delivery_row", "column", "rule", "cell"]


@dataclass(frozen=True)
class Delivery:
    """One delivered file or one complete API pull.

    ``frame`` holds the delivered columns exactly as named by the partner, every value as text
    (``str`` dtype, missing/empty cells as NA) so identifiers keep their leading zeros, plus an
    integer column ``delivery_row``: the row's number in the delivery (1 = first data row; for an
    API, the position of the record across all pages).
    """

    name: str
    size: int
    sha256: str
    modified_at: str | None
    frame: pd.DataFrame = field(repr=False)
    # Cells whose delivered value cannot be trusted (a formula without a value, a covered merged cell):
    # columns delivery_row, column (as delivered), rule and cell (e.g. "C7"). Validation quarantines them.
    cell_flags: pd.DataFrame | None = field(default=None, repr=False)


def text_value(value: object) -> str | None:
    """One delivered scalar as text, the same whether it came from Excel or JSON; blank is None.

    Integral numbers lose their '.0' (Excel stores 12345678 as a float), dates become ISO text,
    booleans ``"true"``/``"false"``, nested JSON stays JSON. Text is stripped of surrounding spaces.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


@functools.cache
def _whitespace() -> str:
    """Every character ``str.strip()`` removes (``str.isspace``), for Arrow's trim to strip the same."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def _ints_or_booleans(values: list) -> pa.Array | None:
    """``values`` as one Arrow array when they are all integers or all booleans (or missing), else None.

    JSON numbers and flags (``"niveau": 4``, ``"diploma": true``) fill whole columns; Arrow infers
    int64 or bool for them and refuses a mix, a float, text or an integer beyond 64 bits.
    """
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    return array if pa.types.is_int64(array.type) or pa.types.is_boolean(array.type) else None


def text_column(values: list) -> pd.api.extensions.ExtensionArray:
    """``text_value`` of every value, as a text column.

    A column of text and missing values only (most JSON fields, most spreadsheet columns) is
    stripped and blanked by Arrow kernels in one pass; any other value sends the column through
    ``text_value`` value by value. The result is the same either way.
    """
    try:
        text = pa.array(values, type=pa.string())  # refuses anything but str and None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        numbers = _ints_or_booleans(values)
        if numbers is not None:  # text_value's digits and true/false, by one cast
            return pd.array(numbers.cast(pa.string()), dtype="str")
        return pd.array([text_value(value) for value in values], dtype="str")
    stripped = pc.utf8_trim(text, _whitespace())
    blank = pc.equal(stripped, "")
    return pd.array(pc.if_else(blank, pa.scalar(None, pa.string()), stripped), dtype="str")
