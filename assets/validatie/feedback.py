"""Feedback to the partners: every delivering partner hears which of its rows were rejected, and why.

Without it the same defects come back every night. Per partner (a source of the region file, or, with
``feedback_per: file``, each file's sender: one PO board, one VO school) a folder
``terugkoppeling/<partner>/`` in the outbox holds ``afgekeurde_rijen.csv`` and ``.xlsx`` (and
``manifest.json``): the open quarantine entries of the deliveries read tonight, one line per row, rule
and column, with the column as the partner named it, the rule's message, what to do (``RULE_FIXES``)
and whether the row was corrected since: a row with the same pupil identifier from the same source is
valid in a later delivery (file names sort by date). Only that partner's rows, and never a BSN,
onderwijsnummer or other personal value: the partner finds its row by delivery and row number in its
own file (docs/validation.md, "Feedback to the partners"; privacy docs/domain.md §7). A partner whose
rows all passed gets an empty list, so last night's list never stands as tonight's.
"""

import re
from pathlib import PurePosixPath

import dagster as dg
import numpy as np
import pandas as pd

from assets.validatie.validated import VALIDATED_GROUP
from connectors import xlsx
from connectors.outbox import Outbox, table_files, write_folder
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from schemas.checks import RULE_FIXES
from schemas.datasets import IDENTIFIERS
from schemas.parse import normalise_bsn, normalise_identifier
from schemas.validate import WHOLE_ROW, delivery_ids
from settings.constants import AMSTERDAM, DATA_STEWARDS as OWNERS
from settings.datasets import DATASETS
from settings.region import Region, Source

FEEDBACK_FOLDER = "terugkoppeling"
FEEDBACK_FILE = "afgekeurde_rijen"
COLUMNS = ["Bron", "Levering", "Rij", "Kolom", "Regel", "Melding", "Hoe op te lossen", "Later gecorrigeerd",
           "Eerst gemeld"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def partner_of(source_id: str, source: Source, delivery: str) -> str:
    """The folder name of the partner that sent ``delivery``: the source id, or with ``feedback_per: file``
    the part of the file's path that the source's ``*`` matches (``vo/verzuim_*.csv`` and
    ``vo/verzuim_07NU00.csv``: ``07NU00``, so a school's enrolment and absence land in one folder)."""
    if source.feedback_per != "file" or source.location.kind != "file":
        return source_id
    pattern = "".join("([^/]*)" if c == "*" else "([^/])" if c == "?" else re.escape(c) for c in source.location.path)
    match = re.fullmatch(pattern, delivery)
    part = "_".join(match.groups()) if match else PurePosixPath(delivery).stem
    name = _UNSAFE.sub("_", part).strip("_.-")[:64]
    return name or source_id


def _identifier(frame: pd.DataFrame, dataset: str) -> pd.Series:
    """The row's pupil identifier as validation reads it (BSN, else onderwijsnummer), tidied."""
    key = pd.Series(pd.NA, index=frame.index, dtype="str")
    for name in IDENTIFIERS[dataset]:
        if name in frame.columns:
            tidy = normalise_bsn if name == "bsn" else normalise_identifier
            key = key.fillna(tidy(frame[name].astype("str")))
    return key


def _entry_identifiers(entries: pd.DataFrame, raw: pd.DataFrame, dataset: str) -> pd.Series:
    """Per entry the identifier (``_identifier``) of the first raw row with its provenance (source_id,
    delivery, delivery_sha256, delivery_row), missing where there is none. A night's entries are a few
    per cent of its rows: only their rows are tidied, found by number (delivery, row), not merged on text."""
    delivery_of_row, deliveries = delivery_ids(raw)
    rows = raw["delivery_row"].to_numpy(dtype=np.int64)
    span = int(rows.max()) + 1 if len(rows) else 1
    codes = delivery_of_row * span + rows
    first = np.flatnonzero(~pd.Series(codes).duplicated(keep="first").to_numpy())
    number = {key: i for i, key in enumerate(deliveries)}
    delivery = np.array([number.get(key, -1) for key in zip(
        entries["source_id"].astype("str"), entries["delivery"].astype("str"),
        entries["delivery_sha256"].astype("str"))], dtype=np.int64)
    row = entries["delivery_row"].to_numpy(dtype=np.int64)
    known = (delivery >= 0) & (row >= 0) & (row < span)
    found = pd.Index(codes[first]).get_indexer(np.where(known, delivery * span + row, -1))
    found = np.where(known, found, -1)
    key = pd.Series(pd.NA, index=entries.index, dtype="str")
    if (found >= 0).any():
        picked = raw.iloc[first[found[found >= 0]]]
        key.iloc[np.flatnonzero(found >= 0)] = _identifier(picked, dataset).to_numpy()
    return key


def feedback_rows(dataset: str, entries: pd.DataFrame, raw: pd.DataFrame, valid: pd.DataFrame,
                  region: Region) -> pd.DataFrame:
    """Tonight's open quarantine entries of ``dataset`` as feedback lines, with their partner (column
    ``partner``, not written to the file). ``raw`` and ``valid`` are tonight's tables of the dataset
    (provenance and identifier columns suffice)."""
    tonight = raw.loc[:, ["source_id", "delivery"]].drop_duplicates()
    entries = entries.merge(tonight, on=["source_id", "delivery"])
    if entries.empty:
        return pd.DataFrame(columns=["partner", *COLUMNS])
    entries = entries.astype({"delivery_row": "int64"})
    entries["key"] = _entry_identifiers(entries, raw, dataset)
    key = _identifier(valid, dataset)
    candidate = key.isin(entries["key"].dropna().unique()).to_numpy()  # the few valid rows an entry can match
    later = valid.loc[candidate, ["source_id", "delivery"]].assign(key=key[candidate])
    later = later.loc[:, ["source_id", "key", "delivery"]].rename(columns={"delivery": "valid_delivery"})
    matched = entries.reset_index().merge(later, on=["source_id", "key"], how="inner")
    corrected = set(matched.loc[matched["valid_delivery"] > matched["delivery"], "index"])
    sources = region.sources
    delivered_as = {sid: {canonical: delivered for delivered, canonical in s.columns.items()}
                    for sid, s in sources.items()}
    pairs = list(zip(entries["source_id"], entries["delivery"]))
    partners = {(s, d): partner_of(s, sources[s], d) for s, d in set(pairs)}  # a pattern per delivery, not per row
    first_seen = pd.to_datetime(entries["first_seen"], utc=True).dt.tz_convert(AMSTERDAM).dt.strftime("%d-%m-%Y")
    lines = pd.DataFrame({
        "partner": [partners[s, d] for s, d in pairs],
        "Bron": [sources[s].partner for s in entries["source_id"]],
        "Levering": entries["delivery"].astype("str"),
        "Rij": entries["delivery_row"].astype("int64"),
        "Kolom": ["(hele rij)" if c == WHOLE_ROW else delivered_as[s].get(c, c)
                  for s, c in zip(entries["source_id"], entries["column"])],
        "Regel": entries["rule"].astype("str"),
        "Melding": entries["message"].astype("str"),
        "Hoe op te lossen": [RULE_FIXES.get(rule, "") for rule in entries["rule"]],
        "Later gecorrigeerd": ["ja" if i in corrected else "nee" for i in entries.index],
        "Eerst gemeld": first_seen.to_numpy(),
    })
    return lines.sort_values(["partner", "Levering", "Rij", "Kolom", "Regel"]).reset_index(drop=True)


def partners_tonight(raw: pd.DataFrame, region: Region) -> dict[str, str]:
    """Every partner that delivered tonight (folder name -> who it is), also those without a rejected row."""
    pairs = raw.loc[:, ["source_id", "delivery"]].drop_duplicates()
    return {partner_of(s, region.sources[s], d): region.sources[s].partner
            for s, d in zip(pairs["source_id"], pairs["delivery"])}


def deliver_feedback(outbox: Outbox, partner: str, who: str, lines: pd.DataFrame) -> bool:
    """One partner's feedback files, written atomically; True when they changed."""
    table = lines.loc[:, COLUMNS].reset_index(drop=True)
    files = table_files(FEEDBACK_FILE, table, sheet="Afgekeurde rijen",
                        printing=xlsx.Print(title=f"Afgekeurde rijen - {who}", repeat=("Levering", "Rij")))
    written = write_folder(outbox.folder(FEEDBACK_FOLDER, partner), files,
                           {"partner": partner, "afzender": who, "soort": "terugkoppeling afgekeurde rijen"})
    return written.changed


def build_feedback_asset(region: Region) -> dg.AssetsDefinition:
    """``partner_feedback``: downstream of every validated dataset the region delivers."""
    datasets = [d for d in DATASETS if region.sources_for(d)]
    provenance = ["source_id", "delivery", "delivery_sha256", "delivery_row"]
    ins = {}
    for dataset in datasets:
        ins[dataset] = dg.AssetIn(metadata={"columns": ["source_id", "delivery", *IDENTIFIERS[dataset]]})
        ins[f"{dataset}_raw"] = dg.AssetIn(metadata={"columns": [*provenance, *IDENTIFIERS[dataset]]})

    @dg.asset(
        name="partner_feedback",
        description=(
            "Feedback to every delivering partner (PO board, VO school, municipality, VVA): its rejected rows of "
            "tonight's deliveries with the rule, what to do and whether a later delivery corrected the row, in "
            "terugkoppeling/{partner}/afgekeurde_rijen.csv/.xlsx (docs/validation.md). Only the partner's own rows, "
            "no personal values. The output counts lines per partner."
        ),
        group_name=VALIDATED_GROUP,
        owners=OWNERS,
        kinds={"csv", "xlsx"},
        io_manager_key="lake_io_manager",
        ins=ins,
    )
    def partner_feedback(context: dg.AssetExecutionContext, region_config: RegionConfig, warehouse: Warehouse,
                         outbox: Outbox, **frames: pd.DataFrame):
        current = region_config.region
        warehouse.ensure_schema()
        lines, partners = [], {}
        for dataset in datasets:
            raw = frames[f"{dataset}_raw"]
            partners |= partners_tonight(raw, current)
            lines.append(feedback_rows(dataset, warehouse.quarantine_entries(dataset), raw, frames[dataset], current))
        every = pd.concat(lines, ignore_index=True) if lines else pd.DataFrame(columns=["partner", *COLUMNS])
        summary = []
        for partner, who in sorted(partners.items()):
            own = every.loc[every["partner"] == partner]
            changed = deliver_feedback(outbox, partner, who, own)
            summary.append({"partner": partner, "afzender": who, "regels": len(own),
                            "gecorrigeerd": int((own["Later gecorrigeerd"] == "ja").sum()), "gewijzigd": changed})
        table = pd.DataFrame(summary, columns=["partner", "afzender", "regels", "gecorrigeerd", "gewijzigd"])
        context.log.info(f"feedback for {len(table)} partner(s), {len(every)} line(s) in all")
        return dg.Output(table, metadata={
            "dagster/row_count": len(table),
            "lines": len(every),
            "per_partner": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "(no deliveries)"),
            "outbox_folder": dg.MetadataValue.path(str(outbox.folder(FEEDBACK_FOLDER))),
        })

    return partner_feedback
