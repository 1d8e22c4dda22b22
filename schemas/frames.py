"""Row selection on large frames through Arrow, and work done once per distinct value.

``frame.loc[mask]`` on Arrow-backed text columns goes through pandas' ``take`` per column and block;
Arrow's ``Table.filter`` does the same selection three to four times faster on the night's largest
frames (2.9 M absence rows: 0.26 s against 0.75–1.5 s). The result has the same columns, dtypes and
index labels as ``frame.loc[mask]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def select_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series) -> pd.DataFrame:
    """``frame.loc[mask]`` (a boolean mask, one value per row), index labels kept."""
    keep = np.asarray(mask, dtype=bool)
    if keep.all():
        return frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.filter(pa.array(keep)).to_pandas().set_axis(frame.index[keep])


def per_distinct(values: pd.Series, compute) -> pd.Series:
    """``compute`` (a function of a Series) of each distinct value, spread back over the rows; missing
    where the value is missing. A school year or an advice code has a handful of values in up to a
    million rows: parsed or looked up a handful of times."""
    codes, distinct = pd.factorize(values)  # missing: -1
    result = compute(pd.Series(distinct, dtype=values.dtype)).array
    return pd.Series(result.take(codes, allow_fill=True), index=values.index)
