"""The support-plan monitor's rules, one behaviour per test, on small frames (docs/monitor.md).

The whole night, the report in a browser and the backfill against nights run one by one are in
``tests/test_monitor_night.py``; these run in seconds.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.gemeenten.export_settings import ExportSettings
from assets.gemeenten.suppression import SECONDARY_CELL, SMALL_CELL, WITHHELD_CELL
from assets.monitor.indicators import (
    INDICATORS,
    NOT_RECONSTRUCTABLE,
    Context,
    count_rows,
    first_school_day,
    known_on,
    settings_problems,
    share_rows,
    thuiszitter_duration_class,
    wait_class,
)
from assets.monitor.publish import NOTHING, markers, publish, visible_small_counts
from settings.region import load_region
from tests.conftest import DEMO_REGION, PROJECT
from tests.test_suppression import pinned_by_combining_lines

REGION = load_region(DEMO_REGION)
GEMEENTEN = REGION.gemeente_codes
NIGHT = dt.date(2026, 10, 5)
CTX = Context(REGION, ExportSettings(), pd.DataFrame(columns=["vestigingscode", "brin", "sector", "gemeentecode"]),
              {"1": ("25GP",), "2": ("17GW",)})


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


# --------------------------------------------------------------------------- what was known on a night


def test_a_waitlist_entry_registered_after_the_night_is_not_known_and_later_dates_are_blank():
    waitlist = pd.DataFrame({
        "aanmelddatum": [day("2026-09-01"), day("2026-10-06")],
        "besluitdatum": [day("2026-09-10"), pd.NaT], "intakedatum": [day("2026-10-01"), pd.NaT],
        "startdatum": [day("2026-10-20"), pd.NaT], "einddatum": [pd.NaT, pd.NaT],
        "reden_beeindiging": pd.Series([None, None], dtype="str")})
    known = known_on({"youth_care_waitlist": waitlist}, dt.date(2026, 10, 5))["youth_care_waitlist"]
    assert len(known) == 1
    assert known["intakedatum"].iat[0] == day("2026-10-01") and pd.isna(known["startdatum"].iat[0])


def test_an_enrolment_that_ended_after_the_night_was_still_running_that_night():
    enrolment = pd.DataFrame({"inschrijfdatum": [day("2025-08-01"), day("2026-11-01")],
                              "uitschrijfdatum": [day("2026-10-20"), pd.NaT]})
    known = known_on({"vo_enrolment": enrolment}, NIGHT)["vo_enrolment"]
    assert len(known) == 1 and pd.isna(known["uitschrijfdatum"].iat[0])


def test_a_vva_status_dated_after_the_night_was_not_known_yet():
    flow = pd.DataFrame({"aanmelddatum": [day("2026-03-01"), day("2026-11-01")],
                         "vva_status": ["ingeschreven", "ingeschreven"],
                         "status_datum": [day("2026-09-30"), day("2026-11-02")],
                         "mbo_brin": ["25PW", "25PW"], "crebo": ["25165", "25165"],
                         "mbo_niveau": pd.array([4, 4], dtype="Int64")})
    known = known_on({"mbo_outflow": flow}, dt.date(2026, 9, 1))["mbo_outflow"]
    assert known["vva_status"].tolist()[0] == "aanmelding_ontvangen"
    assert known["status_datum"].iat[0] == day("2026-03-01")
    assert pd.isna(known["vva_status"].iat[1]) and pd.isna(known["mbo_brin"].iat[1])


def test_a_nights_own_data_is_known_as_it_is():
    enrolment = pd.DataFrame({"inschrijfdatum": [day("2025-08-01")], "uitschrijfdatum": [day("2026-09-01")]})
    pd.testing.assert_frame_equal(known_on({"vo_enrolment": enrolment}, NIGHT)["vo_enrolment"], enrolment)


# --------------------------------------------------------------------------- the monitor's rules


def test_time_at_home_is_less_than_four_weeks_four_weeks_to_three_months_or_longer():
    starts = pd.Series([day("2026-09-08"), day("2026-09-07"), day("2026-07-05"), day("2026-07-04")])
    assert thuiszitter_duration_class(starts, NIGHT).tolist() == [
        "korter_dan_4_weken", "4_weken_tot_3_maanden", "4_weken_tot_3_maanden", "langer_dan_3_maanden"]


def test_a_child_waiting_exactly_fourteen_weeks_is_still_within_the_norm():
    days = pd.Series([28, 29, 70, 71, 98, 99])
    assert wait_class(days, ExportSettings()).tolist() == [
        "tot_4_weken", "4_tot_10_weken", "4_tot_10_weken", "10_tot_14_weken", "10_tot_14_weken",
        "meer_dan_14_weken"]


def test_the_first_school_day_is_after_the_summer_holiday():
    assert first_school_day(dt.date(2026, 8, 1), REGION.calendar) == dt.date(2026, 8, 17)


def test_municipalities_and_outside_add_up_to_the_region_and_categories_to_the_total():
    area = np.array(["GM0118", "GM0118", "GM1701", "OVERIG"], dtype=object)
    category = np.array(["korter_dan_4_weken", "langer_dan_3_maanden", "korter_dan_4_weken", "korter_dan_4_weken"],
                        dtype=object)
    rows = count_rows(NIGHT, "thuiszitters", area, category, CTX)
    table = rows.pivot(index="area", columns="category", values="value")
    assert table.loc["REGIO", ""] == 4 == table.drop(index="REGIO")[""].sum()
    assert (table[""] == table.drop(columns="").sum(axis=1)).all()
    assert table.loc["GM0119", ""] == 0  # every municipality, zeros included


def test_a_share_is_its_numerator_categories_over_the_total():
    rows = count_rows(NIGHT, "po_vo_plaatsing", np.array(["GM0118"] * 4, dtype=object),
                      np.array(["ingeschreven_in_regio", "ingeschreven_in_regio", "ingeschreven_buiten_regio",
                                "niet_ingeschreven"], dtype=object), CTX)
    share = share_rows(NIGHT, "po_vo_geplaatst_aandeel", rows).set_index("area")
    assert share.loc["GM0118", "value"] == 75.0 and share.loc["GM0118", "denominator"] == 4
    assert np.isnan(share.loc["GM0119", "value"])


def test_the_region_file_naming_an_unknown_indicator_is_reported_with_its_key():
    broken = REGION.model_copy(update={"monitor": REGION.monitor.model_copy(update={
        "goals": [REGION.monitor.goals[0].model_copy(update={"indicator": "wachtenden"})]})})
    assert settings_problems(broken) == [
        "monitor.goals[0].indicator: 'wachtenden' is not an indicator of docs/monitor.md"]
    assert settings_problems(REGION) == []


def test_docs_monitor_md_defines_every_indicator():
    text = (PROJECT / "docs" / "monitor.md").read_text(encoding="utf-8")
    missing = [code for code in INDICATORS if f"**`{code}`**" not in text]
    assert not missing


# --------------------------------------------------------------------------- publishing


def night_of(tables: dict[str, dict[str, dict[str, int]]]) -> pd.DataFrame:
    """Tidy count rows of one night: indicator -> category -> area -> count (totals added here)."""
    rows = []
    for indicator, by_category in tables.items():
        areas = [*GEMEENTEN, "OVERIG"]
        for area in [*areas, "REGIO"]:
            in_area = {c: (sum(v.get(a, 0) for a in areas) if area == "REGIO" else v.get(area, 0))
                       for c, v in by_category.items()}
            categories = {"": sum(in_area.values())} | ({} if list(in_area) == [""] else in_area)
            for category, count in categories.items():
                rows.append({"night": pd.Timestamp(NIGHT), "indicator": indicator, "area": area,
                             "category": category, "numerator": float(count), "denominator": np.nan,
                             "value": float(count), "unit": "leerlingen"})
    return pd.DataFrame(rows)


def published_grid(published: pd.DataFrame, indicator: str) -> np.ndarray:
    """An indicator's published numbers as the reader sees them: categories by areas, totals last."""
    rows = published.loc[published["indicator"] == indicator]
    categories = [c for c in dict.fromkeys(rows["category"]) if c] + [""]
    areas = [*GEMEENTEN, "OVERIG", "REGIO"]
    shown = rows.set_index(["category", "area"])
    return np.array([[(int(shown.at[(c, a), "value"]) if shown.at[(c, a), "shown"] else shown.at[(c, a), "display"])
                      for a in areas] for c in categories], dtype=object)


counts = st.integers(0, 3).flatmap(lambda size: st.lists(st.integers(0, 12 * size + 2), min_size=18, max_size=18))


@settings(max_examples=40, deadline=None)
@given(values=counts)
def test_no_count_of_one_to_five_is_shown_and_none_can_be_worked_out(values):
    categories = list(INDICATORS["thuiszitters"].categories)
    areas = [*GEMEENTEN, "OVERIG"]
    table = {c: {a: values[i * len(areas) + j] for j, a in enumerate(areas)} for i, c in enumerate(categories)}
    published = publish(night_of({"thuiszitters": table}))
    assert visible_small_counts(published).empty
    assert pinned_by_combining_lines(published_grid(published, "thuiszitters")) == []


def test_a_total_hidden_in_one_count_is_hidden_in_the_count_over_the_same_group():
    # Waiting children: by waiting time every cell is large; by school one municipality has 2.
    waiting = {"tot_4_weken": {a: 20 for a in GEMEENTEN}, "meer_dan_14_weken": {a: 30 for a in GEMEENTEN}}
    school = {"vo_met_verzuim": {**{a: 10 for a in GEMEENTEN}, "GM0118": 2},
              "vo_zonder_verzuim": {a: 20 for a in GEMEENTEN}, "geen_vo": {**{a: 20 for a in GEMEENTEN},
                                                                       "GM0118": 28}}
    published = publish(night_of({"jeugdhulp_wachtend": waiting, "jeugdhulp_onderwijs": school}))
    totals = published.loc[published["category"] == ""].set_index(["indicator", "area"])["shown"]
    for area in [*GEMEENTEN, "REGIO"]:
        assert totals[("jeugdhulp_wachtend", area)] == totals[("jeugdhulp_onderwijs", area)], area
    for indicator in ("jeugdhulp_wachtend", "jeugdhulp_onderwijs"):
        assert pinned_by_combining_lines(published_grid(published, indicator)) == []


def test_a_cell_is_hidden_before_a_total_to_protect_a_small_count():
    placed = {"ingeschreven_in_regio": {a: 300 for a in GEMEENTEN}, "niet_ingeschreven": {a: 2 for a in GEMEENTEN}}
    published = publish(night_of({"po_vo_plaatsing": placed})).set_index(["area", "category"])
    assert published["shown"].loc[[(a, "") for a in [*GEMEENTEN, "REGIO"]]].all()  # every total stays
    assert published.at[("REGIO", "niet_ingeschreven"), "display"] == "10"
    assert (published.loc[[(a, "ingeschreven_in_regio") for a in GEMEENTEN], "display"] == SECONDARY_CELL).all()


def test_a_share_of_hidden_counts_is_hidden_and_a_share_of_no_one_is_empty():
    placed = {"ingeschreven_in_regio": {"GM0118": 300, "GM0119": 0}, "niet_ingeschreven": {"GM0118": 2}}
    rows = night_of({"po_vo_plaatsing": placed})
    rows = pd.concat([rows, share_rows(NIGHT, "po_vo_geplaatst_aandeel", rows)], ignore_index=True)
    shares = publish(rows).query("indicator == 'po_vo_geplaatst_aandeel'").set_index("area")["display"]
    assert shares["GM0118"] == SECONDARY_CELL
    assert shares["GM0119"] == NOTHING


def test_a_waiting_time_statistic_over_five_children_or_fewer_is_hidden():
    rows = pd.DataFrame({"night": pd.Timestamp(NIGHT), "indicator": "jeugdhulp_wachttijd_mediaan",
                         "area": ["GM0118", "GM0119", "GM1690"], "category": "", "numerator": np.nan,
                         "denominator": [5.0, 6.0, 0.0], "value": [12.0, 13.5, np.nan], "unit": "weken"})
    assert publish(rows)["display"].tolist() == [SECONDARY_CELL, "13,5", NOTHING]


def test_new_and_ended_thuiszitters_are_hidden_together():
    rows = night_of({"thuiszitters_nieuw": {"": {"GM0118": 3, "GM0119": 7}},
                     "thuiszitters_beeindigd": {"": {"GM0118": 9, "GM0119": 8}}})
    published = publish(rows).set_index(["indicator", "area"])["display"]
    assert published[("thuiszitters_nieuw", "GM0118")] == SMALL_CELL
    assert published[("thuiszitters_beeindigd", "GM0118")] == SECONDARY_CELL


def test_a_table_too_small_to_protect_keeps_its_grand_total_when_that_is_above_five():
    tiny = {"korter_dan_4_weken": {a: 1 for a in GEMEENTEN}, "langer_dan_3_maanden": {"GM0118": 2}}
    published = publish(night_of({"thuiszitters": tiny})).set_index(["area", "category"])["display"]
    assert published[("REGIO", "")] == "7"
    assert set(published.drop(("REGIO", ""))) <= {WITHHELD_CELL}


def test_a_grand_total_hidden_in_the_count_over_the_same_group_stays_hidden_in_a_withheld_table():
    # Waiting children by waiting time: too small to protect (withheld, its grand total of 9 would stay);
    # by school the same 9 children, whose grand total is hidden. The first must then hide its total too
    # (and the night must end: showing it again used to loop for ever).
    waiting = {"tot_4_weken": {"GM1690": 1, "GM0118": 1}, "4_tot_10_weken": {a: 1 for a in GEMEENTEN},
               "10_tot_14_weken": {"GM1690": 1}, "meer_dan_14_weken": {"GM0118": 1}}
    school = {"vo_met_verzuim": {"GM1690": 1, "GM0119": 1}, "vo_zonder_verzuim": {"GM1701": 1},
              "geen_vo": {"GM1690": 2, "GM0118": 3, "GM1708": 1}}
    published = publish(night_of({"jeugdhulp_wachtend": waiting, "jeugdhulp_onderwijs": school}))
    totals = published.loc[published["category"] == ""].set_index(["indicator", "area"])
    assert totals.at[("jeugdhulp_onderwijs", "REGIO"), "display"] == SECONDARY_CELL
    assert totals.at[("jeugdhulp_wachtend", "REGIO"), "display"] == WITHHELD_CELL


def test_stored_markers_are_used_as_they_are():
    rows = night_of({"po_vo_opp": {"": {"GM0118": 2, "GM0119": 30}}})
    stored = rows.assign(published=markers(rows))
    assert publish(stored)["display"].tolist() == publish(rows)["display"].tolist()


# --------------------------------------------------------------------------- the history


def test_re_writing_a_night_with_the_same_rows_changes_nothing(engine):
    from connectors.monitor_store import MonitorStore

    store = MonitorStore(engine)
    store.create()
    rows = night_of({"thuiszitters": {"korter_dan_4_weken": {"GM0118": 7}}})
    assert store.replace_night(NIGHT, rows, source="night") is True
    first = store.history()
    with engine.connect() as conn:
        stamped = conn.execute(sa.text("SELECT MAX(recorded_at) FROM monitor_indicators")).scalar_one()
    assert store.replace_night(NIGHT, rows, source="backfill") is False
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT MAX(recorded_at) FROM monitor_indicators")).scalar_one() == stamped
    pd.testing.assert_frame_equal(store.history(), first)
    assert set(first["source"]) == {"night"}


def test_a_backfill_replaces_a_night_but_keeps_its_delivery_figures(engine):
    from connectors.monitor_store import MonitorStore

    store = MonitorStore(engine)
    store.create()
    deliveries = pd.DataFrame([{"night": pd.Timestamp(NIGHT), "indicator": "rijen_geleverd", "area": "REGIO",
                                "category": "", "numerator": 100.0, "denominator": np.nan, "value": 100.0,
                                "unit": "rijen"}])
    ran = pd.concat([night_of({"po_vo_opp": {"": {"GM0118": 8}}}), deliveries], ignore_index=True)
    store.replace_night(NIGHT, ran, source="night")
    assert store.replace_night(NIGHT, night_of({"po_vo_opp": {"": {"GM0118": 9}}}), source="backfill",
                               keep=NOT_RECONSTRUCTABLE) is True
    history = store.history().set_index(["indicator", "area"])
    assert history.at[("po_vo_opp", "GM0118"), "value"] == 9
    assert history.at[("rijen_geleverd", "REGIO"), "source"] == "night"
    assert store.nights() == [NIGHT] and store.night_before(NIGHT) is None


def test_a_jump_beyond_both_limits_warns_and_a_small_move_does_not():
    from assets.monitor.monitor_assets import indicator_jumps

    before = night_of({"thuiszitters": {"": {"GM0118": 10, "GM0119": 40}}})
    tonight = night_of({"thuiszitters": {"": {"GM0118": 12, "GM0119": 60}}})
    jumps = indicator_jumps(tonight, before, REGION.monitor.jump_check)
    assert set(jumps["area"]) == {"GM0119", "REGIO"}  # +2 of 10 stays under 3; +20 of 40 is a jump


# --------------------------------------------------------------------------- the backfill command


def test_the_backfill_command_says_what_to_do_without_a_night(tmp_path, monkeypatch, capsys):
    from pipelines.commands.monitor_backfill import main

    monkeypatch.setenv("SWV_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SWV_WAREHOUSE_URL", raising=False)
    assert main(["--region", str(DEMO_REGION)]) == 1
    assert "no night has run yet" in capsys.readouterr().err


def test_the_backfill_command_needs_the_validated_deliveries(tmp_path, monkeypatch, capsys):
    from pipelines.commands.monitor_backfill import main

    monkeypatch.setenv("SWV_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("SWV_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("SWV_LAKE_URL", raising=False)
    assert main(["--to", "2026-10-05", "--region", str(DEMO_REGION)]) == 1
    assert "has never been materialized" in capsys.readouterr().err


def test_the_backfill_command_refuses_a_first_night_after_the_last(tmp_path, monkeypatch, capsys):
    from pipelines.commands.monitor_backfill import main

    monkeypatch.setenv("SWV_VAR_DIR", str(tmp_path))
    assert main(["--from", "2026-10-06", "--to", "2026-10-05", "--region", str(DEMO_REGION)]) == 1
    assert "is after" in capsys.readouterr().err


def test_every_week_means_the_mondays_and_the_last_night():
    from pipelines.commands.monitor_backfill import nights_between

    assert nights_between(dt.date(2026, 9, 1), dt.date(2026, 9, 17), "week") == [
        dt.date(2026, 9, 7), dt.date(2026, 9, 14), dt.date(2026, 9, 17)]


# --------------------------------------------------------------------------- the report


def history_with_trend() -> pd.DataFrame:
    nights = []
    for weeks, extra in ((2, 0), (1, 10), (0, 20)):
        rows = night_of({"thuiszitters": {"4_weken_tot_3_maanden": {a: 8 + extra for a in GEMEENTEN},
                                          "langer_dan_3_maanden": {a: 6 for a in GEMEENTEN}},
                         "jeugdhulp_wachtend": {"tot_4_weken": {a: 9 for a in GEMEENTEN},
                                                "meer_dan_14_weken": {a: 12 + extra for a in GEMEENTEN}}})
        nights.append(rows.assign(night=pd.Timestamp(NIGHT - dt.timedelta(weeks=weeks)), source="night"))
    return publish(pd.concat(nights, ignore_index=True))


def test_the_report_is_dutch_self_contained_and_explains_every_chart():
    from assets.monitor.report import render_report

    html = render_report(history_with_trend(), NIGHT, REGION)
    assert '<html lang="nl">' in html and "maandag 5 oktober 2026" in html
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html) and "<img" not in html
    assert html.count("<svg") == html.count("Zo lees je deze grafiek:") >= 4
    assert html.count('aria-label="') >= html.count("<svg")
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        assert "xlink:href=\"http" not in svg and "<image" not in svg


def test_the_same_history_gives_the_same_report_bytes():
    from assets.monitor.report import report_files

    first = report_files(history_with_trend(), NIGHT, REGION)
    assert first == report_files(history_with_trend(), NIGHT, REGION)
    assert set(first) == {"monitor.html", "monitor.csv", "monitor.xlsx"}


def test_the_figures_table_shows_markers_instead_of_hidden_numbers():
    from assets.monitor.report import figures_table

    history = publish(night_of({"thuiszitters": {"korter_dan_4_weken": {"GM0118": 3, "GM0119": 20}}})
                      .assign(source="night"))
    table = figures_table(history, REGION)
    small = table.loc[(table["gebied"] == "GM0118") & (table["categorie"] == "korter_dan_4_weken"), "waarde"]
    assert small.tolist() == [SMALL_CELL]
    assert table.loc[table["gebied"] == "GM0119", "gebiedsnaam"].iat[0] == "Meppel"
    assert not [v for v in table["waarde"] if not isinstance(v, str) and v is not None and 1 <= v <= 5]


def test_a_chart_never_draws_a_hidden_number_and_its_count_labels_are_findable():
    from assets.monitor.charts import class_bars

    chart = class_bars("wachttijd", {"0 tot 4": 32.0, "4 tot 10": SMALL_CELL, "meer dan 14": 204.0},
                       title="Wachttijd", xlabel="weken", ylabel="aantal kinderen", guide="Lees zo.")
    labels = re.findall(r'<g id="aantal-wachttijd-\d+">.*?<text[^>]*>(.*?)</text>', chart.svg, flags=re.S)
    assert labels == ["32", "&lt;5", "204"]
    assert "Wachttijd" in chart.svg and "aantal kinderen" in chart.svg and "weken" in chart.svg


# --------------------------------------------------------------------------- the leerplichttelling


def test_an_alert_history_gives_each_time_an_alert_was_open():
    from assets.monitor.leerplichttelling import alert_episodes

    alerts = pd.DataFrame({"alert_id": ["a"], "pupil_key": ["bsn:1"], "reason": ["ABS"],
                           "woongemeente_code": ["GM0118"], "episode_start": [day("2026-09-01")]})
    events = pd.DataFrame({"alert_id": ["a"] * 4, "night": [day("2026-09-07"), day("2026-09-08"),
                                                             day("2026-09-20"), day("2026-09-25")],
                           "to_status": ["new", "open", "resolved", "reopened"]})
    episodes = alert_episodes(alerts, events)
    assert episodes["opened"].tolist() == [day("2026-09-07"), day("2026-09-25")]
    assert episodes["closed"].iloc[0] == day("2026-09-20") and pd.isna(episodes["closed"].iloc[1])


def test_a_youth_counts_once_under_the_kind_of_their_longest_episode_and_small_counts_are_suppressed():
    from assets.monitor.leerplichttelling import count_school_year, _layout

    episodes = pd.DataFrame({
        "pupil_key": ["bsn:1", "bsn:1", "bsn:2"], "reason": ["LRV", "ABS", "V16"],
        "woongemeente_code": ["GM0118"] * 3, "episode_start": [day("2026-08-24"), day("2026-09-28"),
                                                               day("2026-09-14")],
        "opened": [day("2026-09-28"), day("2026-10-01"), day("2026-09-21")],
        "closed": [day("2026-10-01"), pd.NaT, pd.NaT]})
    enrolment = pd.DataFrame({"bsn": ["3"], "onderwijsnummer": pd.Series([None], dtype="str"),
                              "woongemeente_code": ["GM0118"], "inschrijfdatum": [day("2024-08-01")],
                              "uitschrijfdatum": [day("2026-09-01")], "vrijstelling": ["5a"]})
    counts = count_school_year(episodes, enrolment, pd.Series(dtype="str"), REGION, dt.date(2026, 8, 1), NIGHT)
    mine = counts["GM0118"]
    assert mine["thuiszitters"].to_numpy().sum() == 1
    assert mine["thuiszitters"].at["langdurig_relatief_verzuim", "4_weken_tot_3_maanden"] == 1
    assert mine["relatief"].iat[0, 0] == 2 and mine["vrijstellingen"].at["5a", "aantal"] == 1
    public = _layout(mine, True, 5)
    assert not [v for v in public["totaal"] if isinstance(v, (int, np.integer)) and 1 <= v <= 5]
    assert _layout(mine, False, 5).set_index("categorie").at["thuiszitters", "totaal"] == 1
