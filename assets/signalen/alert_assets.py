"""Thuiszitter and outflow alerts: tonight's signals, their lifecycle across nights, and the lists.

``thuiszitter_alerts`` runs the rules of ``docs/alerts.md`` (``assets.signalen.alert_rules``) on the evaluation
date from run configuration, carries each signal through its lifecycle in the warehouse
(``connectors.alert_store``), and writes the lists under ``<outbox>/signalen/<YYYY-MM-DD>/``: one for
the SWV's thuiszitter coordinator, one per municipality with only its own residents
(``gemeenten/<GMcode>/``), each as CSV, XLSX and a printable HTML digest
(``assets.signalen.signal_lists``). ``docs/signalen.md`` tells the readers what each reason means.

Lifecycle (per pupil and reason): ``new`` the first night; ``open`` from the next night while the rule
keeps firing; ``resolved`` (with ``resolved_on``) the first night it no longer fires; ``reopened`` when
it fires again and then ``open``. A recurrence is the same alert when it is the same episode (same
episode start) or comes within ``REOPEN_WITHIN_DAYS`` of the resolution (a pupil back at school for
a week or two is the same case); otherwise it is a new alert. Every transition is kept. A night is
recorded once: re-running it changes nothing and shows the recorded statuses.

Alert ids are ``HMAC-SHA256(salt, pupil_key|reason|episode_start)``, truncated: stable per episode,
and without the salt nobody can test a BSN against an id. The salt is per installation, from the
environment variable ``SWV_ALERT_SALT`` through the ``alert_salt`` resource (``connectors.secrets``);
without it the step fails (there is no default salt).
"""


import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from assets.koppeling.linkage import KEY_FIELDS
from assets.signalen.alert_rules import ABSENCE_FIELDS, DOORSTROOMPUNT, ENROLMENT_FIELDS, REASONS, SWV, evaluate_alerts
from assets.signalen.signal_lists import deliver_signal_lists, rows_of_pupils, signal_lists
from connectors.alert_store import ACTIVE_STATUSES, ALERT_FIELDS, AlertStore, AlertStoreError, HasEngine
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from connectors.secrets import AlertSalt, SecretMissing
from schemas.frames import select_rows
from settings.constants import THUISZITTER_COORDINATOR
from settings.region import Region
from schemas.vocabulary import ALERT_STATUS_LABELS

ALERT_ID_LENGTH = 20  # hex characters: 80 bits
REOPEN_WITHIN_DAYS = 28

GROUP = "signalen"

NIGHT_COLUMNS = ("alert_id", "status", "pupil_key", "reason", "category", "woongemeente_code", "buiten_regio",
                 "vo_brin6", "episode_start", "weeks", "detail", "first_night", "resolved_on")
_KEY = ["pupil_key", "reason"]
_ATTRIBUTES = ["category", "woongemeente_code", "vo_brin6", "episode_start", "weeks", "detail"]


# ---------------------------------------------------------------------------------------------
# Alert ids


def alert_ids(frame: pd.DataFrame, salt: bytes) -> pd.Series:
    """Keyed hash of ``pupil_key|reason|episode_start`` per row: stable, and reveals no BSN."""
    ids = [
        hmac.new(salt, f"{key}|{reason}|{start:%Y-%m-%d}".encode(), hashlib.sha256).hexdigest()[:ALERT_ID_LENGTH]
        for key, reason, start in zip(frame["pupil_key"], frame["reason"], frame["episode_start"], strict=True)
    ]
    return pd.Series(ids, index=frame.index, dtype="str")


# ---------------------------------------------------------------------------------------------
# Lifecycle


@dataclass(frozen=True)
class NightPlan:
    """What one night changes: alerts to insert, alerts to update, and the transitions."""

    inserts: pd.DataFrame
    updates: pd.DataFrame
    events: pd.DataFrame
    active: int


def plan_night(previous: pd.DataFrame, tonight: pd.DataFrame, night: dt.date, *, salt: bytes,
               reopen_within_days: int = REOPEN_WITHIN_DAYS) -> NightPlan:
    """The transitions from the stored alerts (``previous``) to tonight's rule results.

    ``previous`` has the store's columns (``ALERT_FIELDS``); ``tonight`` is ``evaluate_alerts``'s
    output. Pure: the caller records the plan.
    """
    night_ts = pd.Timestamp(night)
    fired = tonight.loc[:, [*_KEY, *_ATTRIBUTES]]
    active = previous.loc[previous["status"].isin(ACTIVE_STATUSES)]
    resolved = previous.loc[previous["status"] == "resolved"]

    before = active.loc[:, ["alert_id", *_KEY, "status", "first_night", *_ATTRIBUTES]]
    matched = fired.merge(before, on=_KEY, how="left", suffixes=("", "_before"))
    continuing = matched.loc[matched["alert_id"].notna()]
    # An open alert whose details did not change is not rewritten.
    changed = continuing["status"].ne("open").to_numpy() | np.any(
        [_differs(continuing[c], continuing[f"{c}_before"]) for c in _ATTRIBUTES], axis=0)
    starting = matched.loc[matched["alert_id"].isna(), [*_KEY, *_ATTRIBUTES]]

    # A signal that starts tonight reopens the same episode's alert, else the pupil's alert for this
    # reason resolved within the reopen window, else it is new.
    starting = starting.assign(candidate=alert_ids(starting, salt))
    recent = resolved.loc[resolved["resolved_on"] >= night_ts - pd.Timedelta(days=reopen_within_days)]
    recent = recent.sort_values("resolved_on", kind="stable").drop_duplicates(_KEY, keep="last")
    starting = starting.merge(recent.loc[:, [*_KEY, "alert_id"]].rename(columns={"alert_id": "recent"}),
                              on=_KEY, how="left")
    same_episode = starting["candidate"].isin(resolved["alert_id"])
    starting = starting.assign(alert_id=starting["candidate"].where(same_episode | starting["recent"].isna(),
                                                                    starting["recent"]))
    reopening = starting.loc[starting["alert_id"].isin(resolved["alert_id"])].merge(
        resolved.loc[:, ["alert_id", "first_night"]], on="alert_id")
    new = starting.loc[~starting["alert_id"].isin(resolved["alert_id"])]

    ending = active.loc[~active.set_index(_KEY).index.isin(fired.set_index(_KEY).index)]

    updates = pd.concat([
        continuing.loc[changed].assign(status="open", resolved_on=pd.NaT),
        reopening.assign(status="reopened", resolved_on=pd.NaT),
        ending.assign(status="resolved", resolved_on=night_ts),
    ], ignore_index=True)
    inserts = new.assign(status="new", first_night=night_ts, resolved_on=pd.NaT)

    events = pd.concat([
        pd.DataFrame({"alert_id": inserts["alert_id"], "from_status": None, "to_status": "new"}),
        pd.DataFrame({"alert_id": continuing["alert_id"], "from_status": continuing["status"], "to_status": "open"}),
        pd.DataFrame({"alert_id": reopening["alert_id"], "from_status": "resolved", "to_status": "reopened"}),
        pd.DataFrame({"alert_id": ending["alert_id"], "from_status": ending["status"], "to_status": "resolved"}),
    ], ignore_index=True)
    events = events.loc[events["from_status"].fillna("") != events["to_status"]].assign(night=night_ts)

    return NightPlan(
        inserts=_alert_rows(inserts),
        updates=_alert_rows(updates),
        events=events.loc[:, ["night", "alert_id", "from_status", "to_status"]].reset_index(drop=True),
        active=len(fired),
    )


def _differs(now: pd.Series, before: pd.Series) -> np.ndarray:
    """Element-wise "changed", where two missing values are equal."""
    same = now.eq(before).fillna(False).to_numpy(dtype=bool) | (now.isna().to_numpy() & before.isna().to_numpy())
    return ~same


def _alert_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[:, list(ALERT_FIELDS)].sort_values("alert_id", kind="stable").reset_index(drop=True)


def record_alert_night(store: AlertStore, tonight: pd.DataFrame, night: dt.date, *, salt: bytes,
                       reopen_within_days: int = REOPEN_WITHIN_DAYS) -> bool:
    """Record ``night`` once; returns False when it had been recorded already (nothing changes)."""
    store.create()
    if store.night_recorded(night):
        return False
    plan = plan_night(store.alerts(), tonight, night, salt=salt, reopen_within_days=reopen_within_days)
    try:
        store.record_night(night, plan.inserts, plan.updates, plan.events, plan.active)
    except AlertStoreError:
        if store.night_recorded(night):  # another run recorded this night meanwhile: it stands
            return False
        raise
    return True


def night_alerts(store: AlertStore, tonight: pd.DataFrame, night: dt.date, pupils: pd.DataFrame) -> pd.DataFrame:
    """The alerts of ``night`` as recorded (active, or resolved that night) with tonight's details.

    Residence is the pupil's current one, so an alert follows a pupil who moves. A resolved alert
    keeps its last known details.
    """
    state = store.as_of(night)
    tonight_details = tonight.loc[:, [*_KEY, *_ATTRIBUTES]]
    merged = state.merge(tonight_details, on=_KEY, how="left", suffixes=("_stored", ""), indicator=True)
    fired = (merged["_merge"] == "both").to_numpy()
    for column in _ATTRIBUTES:
        merged[column] = merged[column].where(fired, merged[f"{column}_stored"])
    residence = rows_of_pupils(pupils, merged["pupil_key"]).drop_duplicates("pupil_key", keep="last")
    residence = residence.set_index("pupil_key")
    current = residence["woongemeente_code"].reindex(merged["pupil_key"]).to_numpy()
    merged["woongemeente_code"] = merged["woongemeente_code"].where(pd.isna(current), current)
    merged["buiten_regio"] = residence["buiten_regio"].astype("boolean").reindex(merged["pupil_key"]).array
    order = pd.Categorical(merged["reason"], categories=list(REASONS), ordered=True)
    merged = merged.assign(_order=order).sort_values(["_order", "pupil_key"], kind="stable")
    out = merged.loc[:, list(NIGHT_COLUMNS)].reset_index(drop=True)
    return out.astype({"weeks": "Int64", "woongemeente_code": "str", "vo_brin6": "str", "detail": "str"})


NAME_FIELDS = ("voornaam", "tussenvoegsel", "achternaam")
# What the alerts and their lists read of a pupil: its key, identifiers, birth date and residence.
PUPIL_FIELDS = ("pupil_key", *KEY_FIELDS, "geboortedatum", "woongemeente_code", "buiten_regio")


# ---------------------------------------------------------------------------------------------
# The asset


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts(dropna=False).sort_index().items()}


def alert_metadata(alerts: pd.DataFrame, transitions: dict[str, int], *, replayed: bool, left_out: int,
                   folder: str) -> dict:
    """Counts only: per reason, per category, per municipality code, and tonight's transitions."""
    active = alerts.loc[alerts["status"].isin(ACTIVE_STATUSES)]
    residence = active["woongemeente_code"].where(~active["buiten_regio"].fillna(False), "buiten_regio")
    table = (alerts.assign(status=alerts["status"].map(ALERT_STATUS_LABELS))
             .pivot_table(index="reason", columns="status", values="alert_id", aggfunc="count", fill_value=0))
    return {
        "dagster/row_count": len(alerts),
        "alerts_active": len(active),
        "alerts_by_reason": dg.MetadataValue.json(_counts(active["reason"])),
        "alerts_by_category": dg.MetadataValue.json(_counts(active["category"])),
        "alerts_by_gemeente": dg.MetadataValue.json(_counts(residence.fillna("onbekend"))),
        "transitions_tonight": dg.MetadataValue.json(transitions),
        "night_replayed": replayed,
        "pupils_left_out_conflicts": left_out,
        "outbox_folder": dg.MetadataValue.path(folder),
        "preview": dg.MetadataValue.md(table.to_markdown() if len(table) else "(geen signalen)"),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn("alert_id", "string", description="Keyed hash of pupil, reason and episode."),
            dg.TableColumn("status", "string", description="new, open, reopened or resolved."),
            dg.TableColumn("pupil_key", "string", description="Linked pupil (contains the BSN) [persoonsgegeven]."),
            dg.TableColumn("reason", "string", description="Reason code, docs/alerts.md."),
            dg.TableColumn("category", "string", description=f"{SWV} or {DOORSTROOMPUNT}."),
            dg.TableColumn("woongemeente_code", "string", description="Current municipality of residence."),
            dg.TableColumn("buiten_regio", "boolean", description="Lives outside the region."),
            dg.TableColumn("vo_brin6", "string", description="Last known school."),
            dg.TableColumn("episode_start", "date", description="When the situation began."),
            dg.TableColumn("weeks", "integer", description="School weeks (waiting: calendar weeks)."),
            dg.TableColumn("detail", "string", description="Short Dutch explanation, no diagnoses."),
            dg.TableColumn("first_night", "date", description="First night the alert was raised."),
            dg.TableColumn("resolved_on", "date", description="Night it was resolved."),
        ]),
    }


@dg.asset(
    description=(
        "Thuiszitter and outflow signals of the night (docs/alerts.md): one row per alert with its status "
        "(new, open, reopened, resolved) kept across nights in the warehouse, and the lists for the thuiszitter "
        "coordinator and each municipality under signalen/{datum}/ in the outbox."
    ),
    group_name=GROUP,
    owners=THUISZITTER_COORDINATOR,
    kinds={"pandas", "xlsx", "csv"},
    io_manager_key="lake_io_manager",
    ins={"vo_absence": dg.AssetIn(metadata={"columns": [*KEY_FIELDS, *ABSENCE_FIELDS]}),
         "vo_enrolment": dg.AssetIn(metadata={"columns": [*KEY_FIELDS, *ENROLMENT_FIELDS, *NAME_FIELDS]}),
         "pupils": dg.AssetIn(metadata={"columns": list(PUPIL_FIELDS)})},
)
def thuiszitter_alerts(
    context: dg.AssetExecutionContext,
    region_config: RegionConfig,
    outbox: Outbox,
    warehouse: dg.ResourceParam[HasEngine],
    alert_salt: AlertSalt,
    vo_enrolment: pd.DataFrame,
    vo_absence: pd.DataFrame,
    po_transfers: pd.DataFrame,
    mbo_outflow: pd.DataFrame,
    youth_care_waitlist: pd.DataFrame,
    pupils: pd.DataFrame,
    pupil_conflicts: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    region = region_config.region
    night = region_config.evaluation()
    try:
        salt = alert_salt.value()
    except SecretMissing as error:
        raise dg.Failure(description=str(error)) from None

    tonight = evaluate_alerts(
        vo_enrolment=vo_enrolment, vo_absence=vo_absence, po_transfers=po_transfers, mbo_outflow=mbo_outflow,
        youth_care_waitlist=youth_care_waitlist, pupils=pupils, calendar=region.calendar,
        evaluation_date=night, pupil_conflicts=pupil_conflicts, thresholds=region.alerts,
    )

    store = AlertStore(warehouse.engine)
    try:
        recorded = record_alert_night(store, tonight, night, salt=salt)
    except AlertStoreError as exc:
        raise dg.Failure(description=str(exc)) from exc
    alerts = night_alerts(store, tonight, night, pupils)
    if not recorded:
        recorded_keys = pd.MultiIndex.from_frame(alerts.loc[alerts["status"].isin(ACTIVE_STATUSES), _KEY])
        differs = len(recorded_keys.symmetric_difference(pd.MultiIndex.from_frame(tonight.loc[:, _KEY])))
        context.log.info(f"night {night} was recorded before; its statuses stand (signals that differ now: {differs})")

    coordinator, municipal = signal_lists(alerts, pupils, vo_enrolment, po_transfers, region, night=night)
    written = deliver_signal_lists(outbox, night, coordinator, municipal, region)
    context.log.info(f"{len(alerts)} alerts for {night}; lists changed: {sum(w.changed for w in written.values())}")

    left_out = int(pupils["pupil_key"].isin(pupil_conflicts["pupil_key"]).sum())
    return dg.Output(alerts, metadata=alert_metadata(
        alerts, store.transitions(night), replayed=not recorded, left_out=left_out,
        folder=str(written["coordinator"].folder)))
