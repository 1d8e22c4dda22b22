"""The support-plan monitor as Dagster assets (group ``monitor``; docs/monitor.md).

- ``monitor_indicators``: tonight's indicators, one tidy row per (indicator, area, category), kept per
  night in the warehouse (``monitor_indicators``; a re-run replaces its own rows, an unchanged night
  is left alone). Its materializations carry the headline figures as numbers, so the asset page
  plots them over the nights, and a Markdown summary; the WARN check ``indicator_jumps`` flags a
  figure that moved more than the region file allows since the previous night.
- ``monitor_report``: ``<outbox>/monitor/{night}/``: ``monitor.html`` for the board and the same
  figures as ``monitor.xlsx`` and ``monitor.csv``, small numbers suppressed.
- ``leerplichttelling``: per municipality and school year the counts of the yearly art. 25 report in
  ``<outbox>/gemeenten/{GM}/leerplichttelling/{schooljaar}/``, with their legend and manifest, logged
  in the export log.

Nothing here carries a pupil: metadata, previews and files hold counts only.
"""


import json
from collections.abc import Callable, Sequence

import dagster as dg
import pandas as pd

from assets.gemeenten.export_settings import ExportSettings
from assets.monitor.history import (
    DATASETS,
    FIELDS,
    REPORT_FOLDER,
    SmallCountsVisible,
    monitor_context,
    previous_thuiszitters,
    residence_of,
    write_report,
)
from assets.monitor.indicators import (
    REGION,
    TOTAL,
    NightFacts,
    known_on,
    night_indicators,
)
from assets.monitor.indicators import thuiszitter_alerts as open_thuiszitter_alerts
from assets.monitor.leerplichttelling import GRONDSLAG, NOT_KNOWN, alert_episodes, leerplichttellingen, legend
from assets.monitor.publish import MARKER_MEANING, markers
from connectors.alert_store import AlertStore
from connectors.export_log import ExportedFile, ExportLog, HasEngine
from connectors.monitor_store import MonitorStore
from connectors.outbox import Outbox, sha256, table_files, write_folder
from connectors.region_config import RegionConfig
from settings.constants import DATA_STEWARDS
from settings.datasets import raw_asset_name
from settings.region import JumpCheck

GROUP = "monitor"
JUMP_CHECK = "indicator_jumps"
PREVIEW_ROWS = ("absoluut_verzuim", "langdurig_relatief_verzuim", "thuiszitters", "relatief_verzuim", "vrijstellingen")
StaleSources = Callable[[dg.AssetExecutionContext], Sequence[str]]

# The figures on the asset page (plotted over the materializations): metadata key -> (indicator, category).
HEADLINES = {
    "thuiszitters": ("thuiszitters", TOTAL),
    "thuiszitters_langer_dan_3_maanden": ("thuiszitters", "langer_dan_3_maanden"),
    "jeugdhulp_wachtend": ("jeugdhulp_wachtend", TOTAL),
    "jeugdhulp_wachtend_meer_dan_14_weken": ("jeugdhulp_wachtend", "meer_dan_14_weken"),
    "jeugdhulp_wachttijd_mediaan_weken": ("jeugdhulp_wachttijd_mediaan", TOTAL),
    "po_vo_geplaatst_pct": ("po_vo_geplaatst_aandeel", TOTAL),
    "po_vo_dossier_pct": ("po_vo_dossier_aandeel", TOTAL),
    "vo_mbo_aangemeld_pct": ("vo_mbo_aangemeld_aandeel", TOTAL),
    "vo_mbo_vsv_risico": ("vo_mbo_inschrijving", "vsv_risico"),
    "rijen_in_quarantaine": ("rijen_in_quarantaine", TOTAL),
}


def headline_metadata(rows: pd.DataFrame) -> dict[str, float]:
    """The region's headline figures as plain numbers (missing ones left out: nothing to plot)."""
    region = rows.loc[(rows["area"] == REGION).to_numpy()].set_index(["indicator", "category"])["value"]
    out = {}
    for key, (indicator, category) in HEADLINES.items():
        value = region.get((indicator, category))
        if value is not None and not pd.isna(value):
            out[key] = round(float(value), 2)
    return out


def indicator_jumps(tonight: pd.DataFrame, before: pd.DataFrame, check: JumpCheck) -> pd.DataFrame:
    """Figures that moved more than both limits of ``check`` since the previous night (``monitor.jump_check``).

    Every indicator, area and category with a value on both nights is compared: a jump in thuiszitters
    or in a partner's delivered rows is more often a delivery problem than a real change.
    """
    key = ["indicator", "area", "category"]
    both = tonight.loc[:, [*key, "value", "unit"]].merge(before.loc[:, [*key, "value"]], on=key,
                                                         suffixes=("", "_before")).dropna(subset=["value",
                                                                                                  "value_before"])
    limits = both["indicator"].map(lambda code: check.indicators.get(code, check.default))
    change = both["value"] - both["value_before"]
    jumped = (change.abs() > limits.map(lambda t: t.max_change)) & (
        change.abs() > limits.map(lambda t: t.max_relative) * both["value_before"].abs())
    out = both.loc[jumped.to_numpy()].assign(change=change[jumped])
    return out.loc[:, [*key, "value_before", "value", "change", "unit"]].reset_index(drop=True)


def summary_markdown(rows: pd.DataFrame, before: pd.DataFrame | None) -> str:
    """Tonight's headline figures for the region beside the previous night's (counts, no pupils)."""
    previous = ({} if before is None else
                before.loc[(before["area"] == REGION).to_numpy()].set_index(["indicator", "category"])["value"])
    now = rows.loc[(rows["area"] == REGION).to_numpy()].set_index(["indicator", "category"])["value"]
    lines = ["| figure | tonight | previous night |", "|---|---:|---:|"]
    for key, slot in HEADLINES.items():
        if slot in now.index:
            old = previous.get(slot) if len(previous) else None
            lines.append(f"| {key} | {now[slot]:.4g} | {'' if old is None or pd.isna(old) else f'{old:.4g}'} |")
    return "\n".join(lines) + "\n\n_Exact figures (the warehouse); the report suppresses counts of 1 to 5._"


def deliveries_tonight(raw: dict[str, pd.DataFrame], valid: dict[str, pd.DataFrame], stale: Sequence[str],
                       sources: Sequence[str]) -> pd.DataFrame:
    """Per source: rows in tonight's raw snapshot, rows that passed validation, and whether it is stale."""
    delivered = pd.concat([frame["source_id"] for frame in raw.values()]).value_counts()
    usable = pd.concat([frame["source_id"] for frame in valid.values()]).value_counts()
    return pd.DataFrame({"source_id": list(sources),
                         "delivered": [int(delivered.get(s, 0)) for s in sources],
                         "usable": [int(usable.get(s, 0)) for s in sources],
                         "stale": [s in set(stale) for s in sources]})


def _column_schema() -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn("night", "date", description="The night (evaluation date)."),
        dg.TableColumn("indicator", "string", description="Indicator code, docs/monitor.md."),
        dg.TableColumn("area", "string", description="REGIO, a GM code, or OVERIG (outside the region, unknown)."),
        dg.TableColumn("category", "string", description="'' for the total, else a category of the indicator."),
        dg.TableColumn("numerator", "float", description="Count (counts, shares)."),
        dg.TableColumn("denominator", "float", description="Group (shares: the total; statistics: group size)."),
        dg.TableColumn("value", "float", description="The figure in its unit."),
        dg.TableColumn("unit", "string", description="leerlingen, kinderen, procent, weken, rijen, bronnen."),
    ])


def build_monitor_assets(*, stale_sources: StaleSources | None = None,
                         settings: ExportSettings | None = None) -> list[dg.AssetsDefinition]:
    """``monitor_indicators`` (with the ``indicator_jumps`` check), ``monitor_report`` and ``leerplichttelling``.

    ``stale_sources`` returns tonight's stale source ids (the freshness verdict, wired in by the code
    location); ``settings``: small numbers and waiting norms, as in the exports.
    """
    settings = settings or ExportSettings()
    key = dg.AssetKey("monitor_indicators")
    dataset_ins = {name: dg.AssetIn(metadata={"columns": FIELDS[name]}) for name in DATASETS}
    raw_ins = {raw_asset_name(name): dg.AssetIn(metadata={"columns": ["source_id"]}) for name in DATASETS}

    @dg.asset(
        name="monitor_indicators",
        description=(
            "The support plan's indicators of the night (docs/monitor.md): thuiszitters, youth-care waiting and its "
            "norms, PO-VO and VO-MBO transfers, (v)so and cluster 1/2, data quality; one row per indicator, area "
            "(region, municipality, outside) and category, kept per night in the warehouse table monitor_indicators."
        ),
        group_name=GROUP,
        owners=DATA_STEWARDS,
        kinds={"pandas", "sql"},
        io_manager_key="lake_io_manager",
        ins={**dataset_ins, **raw_ins,
             "pupils": dg.AssetIn(metadata={"columns": ["pupil_key", "woongemeente_code"]}),
             "thuiszitter_alerts": dg.AssetIn(metadata={"columns": ["pupil_key", "reason", "category", "status",
                                                                    "episode_start"]})},
        check_specs=[dg.AssetCheckSpec(JUMP_CHECK, asset=key, description=(
            "WARN when a figure moved more than monitor.jump_check of the region file allows since the previous "
            "night: more often a delivery problem than a real change."))],
    )
    def monitor_indicators(context: dg.AssetExecutionContext, region_config: RegionConfig,
                           warehouse: dg.ResourceParam[HasEngine], pupils: pd.DataFrame,
                           thuiszitter_alerts: pd.DataFrame, **frames: pd.DataFrame):
        region, night = region_config.region, region_config.evaluation()
        datasets = {name: frames[name] for name in DATASETS}
        engine = warehouse.engine
        store = MonitorStore(engine)
        store.create()
        stale = list(stale_sources(context)) if stale_sources else []
        deliveries = deliveries_tonight({name: frames[raw_asset_name(name)] for name in DATASETS}, datasets, stale,
                                        list(region.sources))
        facts = NightFacts(night, known_on(datasets, night), residence_of(pupils),
                           open_thuiszitter_alerts(thuiszitter_alerts),
                           previous_thuiszitters(store, night, datasets, region, engine), deliveries)
        rows = night_indicators(facts, monitor_context(region, settings))
        rows = rows.assign(published=markers(rows, settings.max_small_count))
        changed = store.replace_night(night, rows, source="night")
        before_night = store.night_before(night)
        before = store.history(since=before_night, until=before_night) if before_night else None
        context.log.info(f"{len(rows)} indicator rows for {night} ({'written' if changed else 'unchanged'}); "
                         f"previous night in the history: {before_night or 'none'}")
        yield dg.Output(rows, metadata={
            "dagster/row_count": len(rows),
            "dagster/column_schema": _column_schema(),
            **headline_metadata(rows),
            "night": night.isoformat(),
            "history_nights": len(store.nights()),
            "summary": dg.MetadataValue.md(summary_markdown(rows, before)),
        })
        jumps = indicator_jumps(rows, before, region.monitor.jump_check) if before is not None else rows.iloc[:0]
        yield dg.AssetCheckResult(
            check_name=JUMP_CHECK,
            passed=jumps.empty,
            severity=dg.AssetCheckSeverity.WARN,
            description=("no previous night to compare with" if before is None else
                         f"{len(jumps)} figure(s) moved more than allowed since {before_night}"),
            metadata={"previous_night": str(before_night or ""), "jumps": len(jumps),
                      "moved": dg.MetadataValue.md(jumps.head(30).to_markdown(index=False) if len(jumps) else
                                                   "(none)")},
        )

    @dg.asset(
        name="monitor_report",
        description=(
            "The board's report of the night: monitor/{night}/monitor.html (self-contained, Dutch, printable) with "
            "the plan's goals, trends, municipalities, waiting time against the norms and the line PO-VO-MBO, and "
            "the same figures as monitor.xlsx and monitor.csv; counts of 1 to 5 suppressed (docs/monitor.md)."
        ),
        group_name=GROUP,
        owners=DATA_STEWARDS,
        kinds={"html", "xlsx", "csv"},
        deps=[key],
    )
    def monitor_report(region_config: RegionConfig, outbox: Outbox,
                       warehouse: dg.ResourceParam[HasEngine]) -> dg.MaterializeResult:
        region, night = region_config.region, region_config.evaluation()
        try:
            written = write_report(MonitorStore(warehouse.engine), outbox, night, region, settings)
        except SmallCountsVisible as error:
            raise dg.Failure(description=str(error)) from None
        manifest = json.loads((written.folder / "manifest.json").read_text(encoding="utf-8"))
        figures = pd.read_csv(written.folder / "monitor.csv", sep=";", dtype=str, encoding="utf-8-sig",
                              keep_default_na=False)
        tonight = figures.loc[(figures["nacht"] == night.strftime("%d-%m-%Y")) & (figures["gebied"] == REGION)
                              & (figures["categorie"] == TOTAL), ["omschrijving", "waarde", "eenheid"]]
        return dg.MaterializeResult(metadata={
            "dagster/row_count": written.files["monitor.csv"]["rows"],
            "preview": dg.MetadataValue.md(tonight.to_markdown(index=False) + "\n\n_As published: counts of 1 to 5 "
                                           "show as <5, x hides a number that would reveal one._"),
            "folder": f"{REPORT_FOLDER}/{night.isoformat()}",
            "report": dg.MetadataValue.path(str(written.folder / "monitor.html")),
            "nights_in_report": manifest["nachten"]["aantal"],
            "nights_recomputed": manifest["nachten"]["herberekend"],
            "changed": written.changed,
            "privacy": "counts of 1 to 5 suppressed, secondary suppression; no pupil-level data",
        })

    @dg.asset(
        name="leerplichttelling",
        description=(
            "Per municipality and school year the counts of the yearly leerplicht report (art. 25 Leerplichtwet): "
            "absoluut and langdurig relatief verzuim by duration, relatief verzuim, vrijstellingen; exact and "
            "suppressed, with a legend of what the pipeline cannot know, in gemeenten/{GM}/leerplichttelling/"
            "{schooljaar}/ (docs/monitor.md)."
        ),
        group_name=GROUP,
        owners=DATA_STEWARDS,
        kinds={"pandas", "csv", "xlsx"},
        ins={"vo_enrolment": dg.AssetIn(metadata={"columns": FIELDS["vo_enrolment"]}),
             "pupils": dg.AssetIn(metadata={"columns": ["pupil_key", "woongemeente_code"]})},
        deps=[dg.AssetKey("thuiszitter_alerts")],
    )
    def leerplichttelling(context: dg.AssetExecutionContext, region_config: RegionConfig, outbox: Outbox,
                          warehouse: dg.ResourceParam[HasEngine], vo_enrolment: pd.DataFrame,
                          pupils: pd.DataFrame) -> dg.MaterializeResult:
        region, night = region_config.region, region_config.evaluation()
        store = AlertStore(warehouse.engine)
        store.create()
        events = store.events()
        since = None if events.empty else pd.Timestamp(events["night"].min()).date()
        episodes = alert_episodes(store.alerts(), events)
        counts = leerplichttellingen(episodes, known_on({"vo_enrolment": vo_enrolment}, night)["vo_enrolment"],
                                     residence_of(pupils), region, night, since, settings.max_small_count)
        log = ExportLog(warehouse.engine)
        log.create()
        names = {g.code: g.naam for g in region.gemeenten}
        written, preview = [], []
        for telling in counts:
            files = (table_files("leerplichttelling", telling.exact, sheet="leerplichttelling")
                     | table_files("leerplichttelling_openbaar", telling.public, sheet="openbaar")
                     | table_files("legenda", legend(region, telling.gemeente, telling.schooljaar, telling.period,
                                                     since), sheet="legenda"))
            folder = outbox.folder("gemeenten", telling.gemeente, "leerplichttelling", telling.schooljaar)
            result = write_folder(folder, files, {
                "swv": region.swv.code, "gemeente": telling.gemeente, "gemeentenaam": names[telling.gemeente],
                "schooljaar": telling.schooljaar,
                "periode": {"van": telling.period[0].isoformat(), "tot": telling.period[1].isoformat()},
                "gegevens_vanaf": since.isoformat() if since else None,
                "grondslag": GRONDSLAG, "niet_bekend": list(NOT_KNOWN),
                "onderdrukking_openbaar": {marker: meaning for marker, meaning in MARKER_MEANING.items()
                                           if marker != "–"},
            })
            manifest = json.loads((result.folder / "manifest.json").read_text(encoding="utf-8"))
            relative = f"gemeenten/{telling.gemeente}/leerplichttelling/{telling.schooljaar}"
            logged = [ExportedFile(name, entry["rows"], entry["sha256"], GRONDSLAG[name.rsplit(".", 1)[0]])
                      for name, entry in result.files.items()]
            logged.append(ExportedFile("manifest.json", len(result.files),
                                       sha256((result.folder / "manifest.json").read_bytes()), GRONDSLAG["manifest"]))
            log.record_export(telling.gemeente, relative, logged,
                              pd.Timestamp(manifest["generated_at"]).to_pydatetime())
            written.append((relative, result.changed, telling.exact.loc[
                telling.exact["categorie"] == "thuiszitters", "totaal"].iat[0]))
            totals = telling.public.set_index("categorie")["totaal"]
            preview.append({"folder": relative, **{c: str(totals[c]) for c in PREVIEW_ROWS}})
        context.log.info(f"leerplichttelling: {len(written)} folder(s), {sum(w[1] for w in written)} changed")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": sum(len(t.exact) for t in counts),
            "folders": dg.MetadataValue.md("\n".join(f"- {w[0]} ({'written' if w[1] else 'unchanged'})"
                                                     for w in written) or "(no school year with alert history)"),
            "thuiszitters_per_folder": dg.MetadataValue.json({w[0]: int(w[2]) for w in written}),
            "preview": dg.MetadataValue.md(pd.DataFrame(preview).to_markdown(index=False) + "\n\n_The public "
                                           "version's totals (<5: 1 to 5)._" if preview else "(nothing written)"),
            "data_since": since.isoformat() if since else "",
        })

    return [monitor_indicators, monitor_report, leerplichttelling]
