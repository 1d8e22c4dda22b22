"""The benchmark's hand-written reference (bench/reference.py) does the pipeline's work, not less.

On a tiny generated region the reference must keep exactly the rows the pipeline's validation
keeps, per dataset: its masks re-implement every rule of docs/validation.md by hand, so any
difference is a rule one of the two gets wrong, and a benchmark against a reference that skips
work would flatter nobody. Exact equality is expected (same deliveries, same evaluation date,
same parsing); there is no tolerance to justify.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from tests.conftest import DEMO_REGION

PUPILS = 800


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A tiny region's deliveries, served by the demo partner APIs (no faults) while the tests run."""
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("bench")
    region = load_region(DEMO_REGION)
    with pytest.MonkeyPatch.context() as env:
        for source in region.sources.values():
            auth = getattr(source.location, "auth", None)
            if auth is not None:
                env.setenv(auth.token_env, f"test-token-{auth.token_env.lower()}")
        generate_region(region, root / "sources", root / "truth.json", seed=11, pupils=PUPILS)
        with DemoApiServer(region, root / "sources" / "api") as server:
            env.setenv("SWV_DEMO_API", server.url)
            yield {"root": root, "region": load_region(DEMO_REGION)}  # reloaded: URLs point at this server


def pipeline_valid_rows(region, sources, evaluation_date: dt.date) -> dict[str, int]:
    """Rows the pipeline keeps: its connectors, its canonical mapping, its validation (no Dagster run)."""
    import pandas as pd

    from assets.bronnen.ingest import to_canonical
    from connectors.files import SourceFiles
    from connectors.http_api import JsonApi
    from schemas.validate import validate_dataset
    from settings.region import DATASETS

    fetched_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    files = SourceFiles(root=str(sources))
    counts = {}
    with dg.build_resources({"api": JsonApi.from_env(region.sources.values())}) as resources:  # tokens resolved
        for dataset in DATASETS:
            frames = []
            for source_id, source in region.sources_for(dataset).items():
                location = source.location
                deliveries = (files.read(location) if location.kind == "file"
                              else [resources.api.fetch(location, name=location.url)])
                frames += [to_canonical(delivery, source_id, source, fetched_at) for delivery in deliveries]
            raw = pd.concat(frames, ignore_index=True)
            counts[dataset] = len(validate_dataset(dataset, raw, region, evaluation_date=evaluation_date).valid)
    return counts


def test_the_reference_keeps_exactly_the_rows_the_pipeline_validation_keeps(night):
    from bench.reference import run_reference

    region, root = night["region"], night["root"]
    evaluation_date = region.evaluation_date()
    report = run_reference(root / "sources", root / "reference", region, evaluation_date=evaluation_date)
    assert report.validated_rows == pipeline_valid_rows(region, root / "sources", evaluation_date)
    assert all(count > 0 for count in report.validated_rows.values())


def test_the_reference_times_every_stage_and_writes_every_kind_of_output(night):
    from bench import STAGES
    from bench.reference import run_reference

    region, root = night["region"], night["root"]
    out = root / "reference-outputs"
    report = run_reference(root / "sources", out, region, evaluation_date=region.evaluation_date())
    assert list(report.stages) == list(STAGES)
    assert all(end >= start for spans in report.stages.values() for start, end in spans)
    assert list((out / "validated").glob("*.parquet")) and (out / "pupils.parquet").exists()
    assert list((out / "overdracht" / "po-vo").rglob("overdracht.csv"))
    assert list((out / "overdracht" / "vo-mbo").rglob("overdracht.csv"))
    assert (out / "signalen" / "signalen_thuiszittercoordinator.csv").exists()
    assert len(list((out / "gemeenten").rglob("monitoring.parquet"))) == len(region.gemeente_codes)
