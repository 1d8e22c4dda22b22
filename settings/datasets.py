"""The canonical datasets: the one registry the region file, the contract and the assets read.

A dataset is named here once, with what it holds, how long its raw snapshots are kept and what its
assets are called. ``schemas.datasets`` gives each name its Pandera model, ``settings.region`` lets
a source deliver it, ``assets.bronnen`` and ``assets.validatie`` build its raw and validated asset.
This module imports nothing of the project, so every layer may read it (tests/test_architecture.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str  # shown on its raw and validated assets in the UI
    raw_retention_years: int  # docs/domain.md §7


# Retention of raw snapshots (docs/domain.md §7): verzuim and in/uitschrijving 5 years, the
# leerlingdossier 2; youth care has none of its own: the shortest.
_REGISTRY = (
    DatasetInfo("po_transfers",
                "PO→VO transfers (overstapdossiers) from the PO school boards' LAS exports.", 2),
    DatasetInfo("youth_care_waitlist",
                "Youth-care (jeugdhulp) waitlists, one delivery per municipality.", 2),
    DatasetInfo("vo_enrolment",
                "VO enrolments (inschrijvingen) from each VO school location.", 5),
    DatasetInfo("vo_absence",
                "Weekly absence per pupil from each VO school location.", 5),
    DatasetInfo("mbo_outflow",
                "VO leavers and their MBO application status (VVA).", 5),
)

DATASET_INFO: dict[str, DatasetInfo] = {info.name: info for info in _REGISTRY}
DATASETS: tuple[str, ...] = tuple(DATASET_INFO)
Dataset = Literal["po_transfers", "youth_care_waitlist", "vo_enrolment", "vo_absence", "mbo_outflow"]
assert DATASETS == Dataset.__args__, "Dataset must list the registry's names, in its order"

DESCRIPTIONS = {info.name: info.description for info in _REGISTRY}
RAW_RETENTION_YEARS = {info.name: info.raw_retention_years for info in _REGISTRY}


def raw_asset_name(dataset: str) -> str:
    """The raw asset of a dataset (``assets.bronnen.ingest``): every delivery as text."""
    return f"{dataset}_raw"


def validated_asset_name(dataset: str) -> str:
    """The validated asset of a dataset (``assets.validatie.validated``): typed, checked rows."""
    return dataset
