"""What every connector hands to the pipeline: the rows of one delivery, as text, with its fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class DeliveryError(Exception):
    """A delivery that cannot be read as a whole (unreachable, unreadable, empty, truncated, no header).

    The message always names the delivery (file path or URL) and, where it applies, the line or page.
    """


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
