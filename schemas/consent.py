"""The consent rule: support details reach a school only with a recorded, dated consent.

docs/domain.md §2.4 (the OPP goes along only if parents agree) and §7 (consent as the ground for
sharing health and behaviour data). One rule, ``consent_given``, used wherever a consent-gated
field could travel on: when the validated table is made (``without_withheld_fields``) and when a
handover file is written (``assets.overdracht.handover``).
"""

from __future__ import annotations

import pandas as pd

from schemas.datasets import consent_gated_fields


def consent_given(frame: pd.DataFrame) -> pd.Series:
    """Consent to share support details: ``toestemming_ouders`` true **and** dated.

    An undated "ja" cannot be shown to anyone and counts as no consent.
    """
    return frame["toestemming_ouders"].fillna(False).astype(bool) & frame["toestemming_datum"].notna()


def without_withheld_fields(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The validated rows with every consent-gated field emptied where consent is not given.

    Data minimisation (AVG art. 5(1)(c), docs/domain.md §7): the only use of a consent-gated field
    is to be handed over with consent, so without consent the pipeline has no ground to keep it
    beyond the delivery's immutable raw snapshot. Datasets without consent-gated fields pass as
    they are.
    """
    gated = sorted(field for field in consent_gated_fields(dataset) if field in frame.columns)
    if not gated:
        return frame
    consent = consent_given(frame)
    if consent.all():
        return frame
    return frame.assign(**{field: frame[field].where(consent) for field in gated})
