"""Warme overdracht files: PO → VO per receiving school location, VO → MBO per MBO institution.

The rules (routing, consent, signals) are in ``assets.overdracht.handover``; this module delivers their tables
through the ``outbox`` resource (``connectors.outbox.write_folder``: atomic, byte-identical on an
unchanged re-run, earlier versions kept under ``_versies/``) and reports what was delivered.
``docs/handover.md`` tells schools what the files hold and how to verify them.

Layout under the outbox root (folder names only from validated codes, ``assets.overdracht.handover.brin_segment``):

- ``overdracht/po-vo/<schooljaar>/<vo_brin6>/``: ``overdracht.csv``, ``overdracht.xlsx``, ``manifest.json``
- ``overdracht/po-vo/<schooljaar>/``: ``swv_signalen.csv``/``.xlsx`` (counts per school) and its manifest
- ``overdracht/vo-mbo/<uitstroomjaar>/<mbo_brin>/``: ``overdracht.csv``, ``overdracht.xlsx``, ``manifest.json``

A school that had pupils in an earlier delivery of the same year and has none now (the pupil
registered or enrolled elsewhere) gets an empty file: its current folder must not keep a pupil who is
no longer theirs (domain.md §2.1). The earlier version stays under ``_versies/`` as the delivery record.
Each workbook prints on A4 landscape with the school's name and the page number on every page.
"""

from collections.abc import Mapping

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.overdracht.handover import (
    ABSENCE_COLUMNS,
    BRIN_CODE,
    FLAGS,
    Handover,
    brin_segment,
    po_vo_handover,
    swv_signal_overview,
    vo_mbo_handover,
    year_segment,
)
from connectors.outbox import Outbox, table_files, write_folder
from connectors.region_config import RegionConfig
from connectors.xlsx import Print
from schemas.vocabulary import names_of
from settings.constants import DATA_STEWARDS

GROUP = "overdracht"
PO_VO = ("overdracht", "po-vo")
VO_MBO = ("overdracht", "vo-mbo")
STEM = "overdracht"
OVERVIEW_STEM = "swv_signalen"
NAME_COLUMNS = ("Roepnaam", "Tussenvoegsel", "Achternaam")  # repeated on every printed page across
DELIVERY_COLUMNS = ("school", "year", "file", "rows", "sha256", "changed", "folder")

DELIVERY_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("school", "string", description="Receiving school (BRIN code), or the SWV code for its overview."),
    dg.TableColumn("year", "string", description="School year (PO → VO) or year of uitstroom (VO → MBO)."),
    dg.TableColumn("file", "string", description="File name in the folder."),
    dg.TableColumn("rows", "integer", description="Data rows in the file."),
    dg.TableColumn("sha256", "string", description="sha256 of the file, as in its manifest.json."),
    dg.TableColumn("changed", "boolean", description="Written tonight (False: unchanged, not rewritten)."),
    dg.TableColumn("folder", "string", description="Folder relative to the outbox root."),
])


def _previous_schools(outbox: Outbox, route: tuple[str, ...], year: str) -> list[str]:
    """School folders of ``year`` that exist from earlier deliveries."""
    folder = outbox.folder(*route, year)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and BRIN_CODE.fullmatch(p.name))


def _log(written, school: str, year: str, root: Path) -> list[dict]:
    return [{"school": school, "year": year, "file": name, "rows": entry["rows"], "sha256": entry["sha256"],
             "changed": written.changed, "folder": written.folder.relative_to(root).as_posix()}
            for name, entry in written.files.items()]


def deliver_handover(outbox: Outbox, route: tuple[str, ...], handover: Handover, manifest: dict,
                     *, year_key: str, institutions: Mapping[str, str] | None = None) -> list[dict]:
    """Write one folder per receiving school and year; returns one log row per delivered file.

    Each folder holds only its own school's rows (domain.md §2.1, §6) as CSV and XLSX plus the manifest,
    which names the school (``schemas.vocabulary.names_of``; ``institutions``: the region's MBO names).

    Every folder name is checked before anything is written, so a bad code refuses the whole
    delivery instead of leaving half of it. Schools with an earlier delivery in a year that is
    delivered now but without rows for them get an empty file (see the module docstring).
    """
    schools = list(handover.schools())
    for year, school, _, _ in schools:
        year_segment(year)
        brin_segment(school)
    current = {(year, school) for year, school, _, _ in schools}
    empty = handover.table.loc[:, handover.columns].iloc[0:0]
    withdrawn = [(year, school, empty, [])
                 for year in sorted({year for year, _ in current})
                 for school in _previous_schools(outbox, route, year) if (year, school) not in current]
    root = Path(outbox.root)
    log = []
    folders = sorted(schools + withdrawn, key=lambda item: (item[0], item[1]))
    codes = pd.Series(sorted({school for _, school, _, _ in folders}), dtype="str")
    names = dict(zip(codes, names_of(codes, institutions), strict=True))

    for year, school, table, sources in folders:
        title = f"Warme overdracht {route[-1].upper()} {year}: {school} {names[school]}"
        written = write_folder(
            outbox.folder(*route, year, school),
            table_files(STEM, table, sheet="Overdracht", printing=Print(title, NAME_COLUMNS)),
            {**manifest, year_key: year, "school": school, "schoolnaam": names[school], "bronleveringen": sources},
        )
        log.extend(_log(written, school, year, root))
    return log


def deliver_overview(outbox: Outbox, overview: dict[str, pd.DataFrame], swv_code: str) -> list[dict]:
    """The SWV-wide signal counts per school year, next to the school folders of that year."""
    root = Path(outbox.root)
    log = []
    for year, table in overview.items():
        written = write_folder(
            outbox.folder(*PO_VO, year_segment(year)),
            table_files(OVERVIEW_STEM, table, sheet="Signalen",
                        printing=Print(f"Signalen warme overdracht PO-VO {year}: aantallen per school ({swv_code})")),
            {"swv": swv_code, "soort": "signalen warme overdracht PO-VO (aantallen)", "schooljaar": year,
             "signalen": FLAGS},
        )
        log.extend(_log(written, swv_code, year, root))
    return log


def delivery_frame(log: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(log, columns=list(DELIVERY_COLUMNS))
    return frame.astype({"school": "str", "year": "str", "file": "str", "rows": "int64", "sha256": "str",
                         "changed": "bool", "folder": "str"})


def handover_metadata(handover: Handover, deliveries: pd.DataFrame, outbox: Outbox, route: tuple[str, ...]) -> dict:
    """Counts and codes only: no pupil, no name, no consent-gated value (domain.md §7)."""
    per_school: dict[str, dict[str, int]] = {}
    for (year, school), size in handover.table.groupby(["year", "school"], sort=True).size().items():
        per_school.setdefault(year, {})[school] = int(size)
    shown = deliveries.loc[deliveries["file"].str.endswith(".csv")].drop(columns=["sha256"]).assign(
        sha256=deliveries["sha256"].str[:12])
    return {
        "dagster/row_count": len(deliveries),
        "dagster/column_schema": DELIVERY_SCHEMA,
        "handover_rows": len(handover.table),
        "schools": len(handover.table.drop_duplicates(["year", "school"])),
        "rows_per_school": dg.MetadataValue.json(per_school),
        "flag_counts": dg.MetadataValue.json({code: int(handover.flags[code].sum()) for code in handover.flags}),
        "consent_blanked_rows": int(handover.blanked.sum()),
        "left_out": dg.MetadataValue.json(handover.left_out),
        "folders_changed": int(deliveries.drop_duplicates("folder")["changed"].sum()),
        "outbox_folder": dg.MetadataValue.path(str(outbox.folder(*route))),
        "preview": dg.MetadataValue.md(shown.head(20).to_markdown(index=False) if len(shown) else "(niets geleverd)"),
    }


@dg.asset(
    description=(
        "Warme overdracht PO → VO (docs/handover.md): per receiving school location and school year, the "
        "dossiers of the pupils aangemeld there, or enrolled there once enrolled (overdracht.csv/.xlsx + manifest.json "
        "under overdracht/po-vo/{schooljaar}/{vo_brin6}/; the current and the coming school year), school names "
        "beside codes, consent-gated fields only with parents' consent, signals "
        "TLV_ONTBREEKT, OPP_ZONDER_INSTEMMING and CLUSTER_LANDELIJK, and an SWV overview of signal counts "
        "(docs/domain.md §2.1, §2.4, §7). The output lists the delivered files (codes, rows, sha256), no pupils."
    ),
    group_name=GROUP,
    owners=DATA_STEWARDS,
    kinds={"xlsx", "csv"},
    io_manager_key="lake_io_manager",
)
def po_vo_handovers(
    context: dg.AssetExecutionContext,
    region_config: RegionConfig,
    outbox: Outbox,
    po_transfers: pd.DataFrame,
    vo_enrolment: pd.DataFrame,
    pupil_conflicts: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    region = region_config.region
    handover = po_vo_handover(po_transfers, vo_enrolment, pupil_conflicts,
                              evaluation_date=pd.Timestamp(region_config.evaluation()),
                              tlv_deadline=region.calendar.tlv_deadline,
                              school_year_start=region.calendar.school_year_start)
    log = deliver_handover(outbox, PO_VO, handover, {"swv": region.swv.code, "soort": "warme overdracht PO-VO"},
                           year_key="schooljaar")
    log += deliver_overview(outbox, swv_signal_overview(handover), region.swv.code)
    deliveries = delivery_frame(log)
    context.log.info(f"PO-VO: {len(handover.table)} rows for {deliveries['school'].nunique()} recipients; "
                     f"folders changed: {int(deliveries.drop_duplicates('folder')['changed'].sum())}")
    return dg.Output(deliveries, metadata=handover_metadata(handover, deliveries, outbox, PO_VO))


@dg.asset(
    description=(
        "Warme overdracht VO → MBO (docs/handover.md): per MBO institution and year of uitstroom, the leavers who "
        "applied there (once ingeschreven somewhere, only there) with VVA status, crebo, level, VO school and level, "
        "support/OPP and consent as the VO school delivered them (else from the PO dossier, with the source named), "
        "absence in the last school year, consent-gated (overdracht.csv/.xlsx + manifest.json under "
        "overdracht/vo-mbo/{jaar}/{mbo_brin}/; docs/domain.md §6, §7). The output lists the delivered files "
        "(codes, rows, sha256), no pupils."
    ),
    group_name=GROUP,
    owners=DATA_STEWARDS,
    kinds={"xlsx", "csv"},
    io_manager_key="lake_io_manager",
    ins={"vo_absence": dg.AssetIn(metadata={"columns": list(ABSENCE_COLUMNS)})},
)
def vo_mbo_handovers(
    context: dg.AssetExecutionContext,
    region_config: RegionConfig,
    outbox: Outbox,
    mbo_outflow: pd.DataFrame,
    po_transfers: pd.DataFrame,
    vo_enrolment: pd.DataFrame,
    vo_absence: pd.DataFrame,
    pupil_conflicts: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    region = region_config.region
    handover = vo_mbo_handover(mbo_outflow, po_transfers, vo_enrolment, pupil_conflicts,
                               school_year_start=region.calendar.school_year_start,
                               evaluation_date=pd.Timestamp(region_config.evaluation()), vo_absence=vo_absence)
    log = deliver_handover(outbox, VO_MBO, handover, {"swv": region.swv.code, "soort": "warme overdracht VO-MBO"},
                           year_key="uitstroomjaar", institutions=region.mbo_instellingen)
    deliveries = delivery_frame(log)
    context.log.info(f"VO-MBO: {len(handover.table)} rows for {deliveries['school'].nunique()} institutions; "
                     f"folders changed: {int(deliveries.drop_duplicates('folder')['changed'].sum())}")
    return dg.Output(deliveries, metadata=handover_metadata(handover, deliveries, outbox, VO_MBO))
