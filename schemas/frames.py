"""Row selection on large frames through Arrow, and work done once per distinct value.

``frame.loc[mask]`` on Arrow-backed text columns goes through pandas' ``take`` per column and block;
Arrow's ``filter`` and ``take`` do the same selection faster on the night's largest frames
(bench/README.md, "Design notes"). The result has the same columns, dtypes and index labels as
``frame.loc[mask]`` or ``frame.iloc[positions]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def select_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series) -> pd.DataFrame:
    """``frame.loc[mask]`` (a boolean mask, one value per row), index labels kept."""
    keep = np.asarray(mask, dtype=bool)
    if keep.all():
        return frame
    selector = pa.array(keep)
    return _columnwise(frame, lambda column: pc.filter(column, selector)).set_axis(frame.index[keep])


def take_rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]`` (integer positions, each in range), index labels kept."""
    positions = np.asarray(positions, dtype=np.int64)
    selector = pa.array(positions)
    return _columnwise(frame, lambda column: column.take(selector)).set_axis(frame.index[positions])


def _columnwise(frame: pd.DataFrame, kernel) -> pd.DataFrame:
    """``kernel`` applied to every column of ``frame`` as Arrow, back as a frame with the same dtypes."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = [kernel(column) for column in table.columns]
    # The schema carries pandas' metadata, so nullable integers, booleans and dates come back as they were.
    return pa.Table.from_arrays(columns, schema=table.schema).to_pandas()


def per_distinct(values: pd.Series, compute) -> pd.Series:
    """``compute`` (a function of a Series) of each distinct value, spread back over the rows; missing
    where the value is missing. A school year or an advice code has a handful of values in up to a
    million rows: parsed or looked up a handful of times."""
    codes, distinct = pd.factorize(values)  # missing: -1
    result = compute(pd.Series(distinct, dtype=values.dtype)).array
    return pd.Series(result.take(codes, allow_fill=True), index=values.index)
