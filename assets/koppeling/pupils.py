"""The linked pupil table and the identities in conflict (assets around ``assets.koppeling.linkage``)."""


import datetime as dt
import hashlib

import dagster as dg
import pandas as pd

from assets.koppeling.linkage import link_pupils
from connectors.pupil_store import record_pupils
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from settings.constants import DATA_STEWARDS

LINKAGE_GROUP = "koppeling"


def conflict_rejects(conflicts: pd.DataFrame) -> pd.DataFrame:
    """Conflicts in the quarantine table's shape: the identity is fingerprinted, never stored as such."""
    fingerprint = conflicts["pupil_key"].map(lambda key: hashlib.sha256(f"koppeling|{key}".encode()).hexdigest())
    return pd.DataFrame({
        "source_id": "koppeling", "delivery": "pupils", "delivery_sha256": "", "delivery_row": 0,
        "row_fingerprint": fingerprint, "column": "pupil_key", "rule": conflicts["rule"],
        "message": conflicts["message"], "value_masked": "***",
    })


@dg.multi_asset(
    outs={
        "pupils": dg.AssetOut(
            description="One row per pupil identity (BSN, else onderwijsnummer; never by name) with current "
                        "residence, school and level; history with validity periods in the warehouse.",
            group_name=LINKAGE_GROUP, owners=DATA_STEWARDS, kinds={"pandas", "sql"}, io_manager_key="lake_io_manager"),
        "pupil_conflicts": dg.AssetOut(
            description="Identities with contradictory facts (two birth dates, two schools on one day); left out "
                        "of every output and quarantined with the reason.",
            group_name=LINKAGE_GROUP, owners=DATA_STEWARDS, kinds={"pandas"}, io_manager_key="lake_io_manager"),
    },
)
def linked_pupils(
    context: dg.AssetExecutionContext,
    region_config: RegionConfig,
    warehouse: Warehouse,
    po_transfers: pd.DataFrame,
    vo_enrolment: pd.DataFrame,
    mbo_outflow: pd.DataFrame,
    youth_care_waitlist: pd.DataFrame,
):
    night = region_config.evaluation()
    pupils, conflicts = link_pupils(
        {"po_transfers": po_transfers, "vo_enrolment": vo_enrolment, "mbo_outflow": mbo_outflow,
         "youth_care_waitlist": youth_care_waitlist},
        pd.Timestamp(night),
    )
    warehouse.ensure_schema()
    per_gemeente = pupils.loc[~pupils["buiten_regio"], "woongemeente_code"].value_counts().sort_index()
    metadata = {
        "dagster/row_count": len(pupils),
        "per_woongemeente": dg.MetadataValue.json({k: int(v) for k, v in per_gemeente.items()}),
        "buiten_regio": int(pupils["buiten_regio"].sum()),
        "active_in_vo": int(pupils["vo_brin6"].notna().sum()),
    }
    # Side effects first (the pupil history and the conflicts' quarantine entries), outputs after: an
    # output is recorded as materialized when it is yielded, so a failed write must come before it.
    history = record_pupils(warehouse.engine, pupils, night)
    warehouse.record_quarantine("pupils", conflict_rejects(conflicts), [("koppeling", "pupils", "")],
                                dt.datetime.now(dt.UTC))
    yield dg.Output(pupils, output_name="pupils", metadata=metadata)
    yield dg.AssetObservation(
        asset_key=dg.AssetKey("pupils"),
        description=f"Pupil history (warehouse table pupil_history) brought up to {night.isoformat()}.",
        metadata={"history_opened": history["opened"], "history_closed": history["closed"],
                  "history_unchanged": history["unchanged"]},
    )
    yield dg.Output(conflicts, output_name="pupil_conflicts", metadata={
        "dagster/row_count": len(conflicts),
        "per_rule": dg.MetadataValue.json(conflicts["rule"].value_counts().to_dict()),
    })
