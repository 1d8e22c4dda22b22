"""Row selection through Arrow gives exactly what ``frame.loc[mask]`` gives."""

import numpy as np
import pandas as pd

from schemas.frames import per_distinct, select_rows, take_rows


def _night_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": pd.Series(["a", None, "c", "d"], dtype="str"),
            "day": pd.to_datetime(["2026-10-01", None, "2026-10-03", "2026-10-04"]),
            "hours": [1.5, np.nan, 3.0, 4.0],
            "flag": pd.array([True, None, False, True], dtype="boolean"),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "row": np.arange(4, dtype="int64"),
        },
        index=[10, 11, 12, 13],
    )


def test_select_rows_equals_loc_with_every_dtype_of_the_night():
    frame = _night_frame()
    mask = np.array([True, True, False, True])
    selected = select_rows(frame, mask)
    pd.testing.assert_frame_equal(selected, frame.loc[mask])
    assert select_rows(frame, np.ones(4, dtype=bool)) is frame
    pd.testing.assert_frame_equal(select_rows(frame, np.zeros(4, dtype=bool)), frame.loc[[False] * 4])


def test_take_rows_equals_iloc_with_every_dtype_of_the_night():
    frame = _night_frame()
    positions = np.array([3, 0, 0, 2])
    pd.testing.assert_frame_equal(take_rows(frame, positions), frame.iloc[positions])
    pd.testing.assert_frame_equal(take_rows(frame, np.array([], dtype=np.int64)), frame.iloc[[]])


def test_per_distinct_computes_each_value_once_and_spreads_it_back():
    seen = []

    def upper(texts: pd.Series) -> pd.Series:
        seen.append(list(texts))
        return texts.str.upper()

    values = pd.Series(["a", None, "b", "a", "a", None, "b"], index=[10, 11, 12, 13, 14, 15, 16], dtype="str")
    result = per_distinct(values, upper)
    assert seen == [["a", "b"]]
    assert result.index.equals(values.index)
    assert [None if pd.isna(v) else v for v in result] == ["A", None, "B", "A", "A", None, "B"]
