"""The benchmark's municipality dimension (bench/regions.py): a region of any number of municipalities
with the same pupils, generated and run as the benchmark does.

The builder keeps the demo region's five municipalities and adds real neighbours, each with a waitlist
partner of its own; the generator writes every municipality's waitlist while the pupils attend the
demo region's schools only; and a night over seven municipalities, run by the benchmark's own measured
child (``bench.measure pipeline``), reads every waitlist and writes every municipality's export.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DEMO_REGION, PROJECT

PUPILS = 1200
COUNT = 7


@pytest.fixture(scope="module")
def region_path(tmp_path_factory) -> Path:
    from bench.regions import write_region

    return write_region(COUNT, tmp_path_factory.mktemp("regions"))


@pytest.fixture(scope="module")
def generated(region_path, tmp_path_factory):
    from bench.regions import template_gemeenten
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("deliveries")
    counts = generate_region(load_region(region_path), root / "sources", root / "truth.json", seed=11, pupils=PUPILS,
                             school_gemeenten=template_gemeenten())
    return {"root": root, "counts": counts}


def test_the_builder_gives_the_region_that_many_municipalities_each_with_its_own_waitlist_partner(region_path):
    from schemas.region_contract import load_checked_region
    from settings.region import load_region

    region = load_checked_region(region_path)
    demo = load_region(DEMO_REGION)
    assert len(region.gemeente_codes) == COUNT
    assert region.gemeente_codes[:5] == demo.gemeente_codes
    waitlists = region.sources_for("youth_care_waitlist")
    assert sorted(s.gemeente for s in waitlists.values()) == sorted(region.gemeente_codes)
    where = [s.location.path if s.location.kind == "file" else s.location.url for s in waitlists.values()]
    assert len(set(where)) == COUNT
    tokens = [s.location.auth.token_env for s in waitlists.values() if s.location.kind == "http"]
    assert len(set(tokens)) == len(tokens)
    assert {sid for sid, s in region.sources.items() if s.dataset != "youth_care_waitlist"} == \
        {sid for sid, s in demo.sources.items() if s.dataset != "youth_care_waitlist"}


def test_fewer_municipalities_than_the_demo_region_keeps_its_first_ones():
    import yaml

    from bench.regions import region_yaml

    raw = yaml.safe_load(region_yaml(3))
    assert [g["code"] for g in raw["gemeenten"]] == ["GM1690", "GM0118", "GM0119"]
    assert sum(s["dataset"] == "youth_care_waitlist" for s in raw["sources"].values()) == 3


def test_the_generator_writes_a_waitlist_for_every_municipality_and_keeps_the_demo_schools(region_path, generated):
    from bench.regions import template_gemeenten
    from schemas.codelists import NATIONAL_SCHOOL_REGISTRY
    from settings.region import load_region

    region = load_region(region_path)
    rows = {sid: c["rows"] for sid, c in generated["counts"]["sources"].items()}
    assert all(rows[sid] > 0 for sid in region.sources_for("youth_care_waitlist"))
    registry = pd.read_csv(NATIONAL_SCHOOL_REGISTRY, dtype=str, keep_default_na=False)
    demo_schools = set(registry.loc[registry.gemeentecode.isin(template_gemeenten()), "vestigingscode"])
    enrolled = {path.stem.removeprefix("inschrijvingen_")
                for path in (generated["root"] / "sources" / "vo").glob("inschrijvingen_*.csv")}
    assert enrolled and enrolled <= demo_schools


@pytest.mark.slow
def test_a_night_over_seven_municipalities_reads_every_waitlist_and_writes_every_export(region_path, generated,
                                                                                       tmp_path):
    from bench.__main__ import api_server, child_environment, demo_environment
    from bench.measure import run_measured

    saved = dict(os.environ)
    try:
        demo_environment(region_path)  # tokens, export keys and salt, as the benchmark sets them
        sources = generated["root"] / "sources"
        with api_server(sources / "api", cache=True, region_path=region_path) as server:
            measured = run_measured(["pipeline", "--var", str(tmp_path / "var"), "--sources", str(sources),
                                     "--region", str(region_path)], env=child_environment(server.url),
                                    result_path=tmp_path / "night.json", cwd=PROJECT)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert measured.returncode == 0
    outcomes = measured.result["municipality_outcomes"]
    assert sum(key.startswith("waitlist ") for key in outcomes) == COUNT
    assert sum(key.startswith("export ") for key in outcomes) == COUNT
    assert measured.result["success"] and all(outcomes.values())
