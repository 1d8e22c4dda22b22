"""The benchmark's hand-written reference (bench/reference.py) does the pipeline's work, not less.

On a tiny generated region the pipeline's whole night runs as the benchmark runs it (``python -m
bench.measure pipeline``), the reference beside it, and ``bench.crosscheck`` compares what they
produced by content: the validated rows of every dataset, the quarantine (row, column, rule), the
alerts and the handover rows must hash-equal. The reference re-implements every rule by hand, so a
difference is a rule one of the two gets wrong, and a benchmark against a reference that skips work
would flatter nobody. Exact equality is expected (same deliveries, same evaluation date, same
parsing); there is no tolerance to justify. The cross-check itself must be able to say "unequal".
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import DEMO_REGION

PUPILS = 800
PROJECT = Path(__file__).resolve().parent.parent
THINGS = ("validated", "quarantine", "alerts", "handovers")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A tiny region's deliveries, served by the demo partner APIs (no faults), one pipeline night
    (its own process, as the benchmark measures it) and one reference night on them."""
    from bench.__main__ import child_environment
    from bench.reference import run_reference
    from demo.__main__ import _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("bench")
    region = load_region(DEMO_REGION)
    with mock.patch.dict(os.environ):  # the demo's tokens, keys and alert salt, for this module only
        _demo_environment(region)
        generate_region(region, root / "sources", root / "truth.json", seed=11, pupils=PUPILS)
        with DemoApiServer(region, root / "sources" / "api") as server:
            os.environ["SWV_DEMO_API"] = server.url
            region = load_region(DEMO_REGION)  # reloaded: URLs point at this server
            env = child_environment(server.url) | {"SWV_REGION_FILE": str(DEMO_REGION)}
            pipeline = subprocess.run(
                [sys.executable, "-m", "bench.measure", "pipeline", "--var", str(root / "pipeline"),
                 "--sources", str(root / "sources"), "--result", str(root / "pipeline.json")],
                env=env, cwd=PROJECT, capture_output=True, text=True, check=False)
            assert pipeline.returncode == 0, pipeline.stderr[-2000:]
            assert json.loads((root / "pipeline.json").read_text())["success"]
            report = run_reference(root / "sources", root / "reference", region,
                                   evaluation_date=region.evaluation_date())
            yield {"root": root, "region": region, "report": report}


def test_the_reference_and_the_pipeline_night_produce_the_same_content(night):
    from bench.crosscheck import crosscheck

    results = crosscheck(night["root"] / "pipeline", night["root"] / "reference")
    assert {thing: results[thing].examples for thing in THINGS} == {thing: [] for thing in THINGS}
    assert all(results[thing].equal for thing in THINGS)
    assert all(results[thing].pipeline_rows > 0 for thing in THINGS)


@pytest.mark.parametrize("thing", THINGS)
def test_one_changed_row_makes_the_crosscheck_say_unequal(night, thing):
    import pandas as pd

    from bench.crosscheck import compare, pipeline_outputs, reference_outputs

    pipeline = pipeline_outputs(night["root"] / "pipeline")
    reference = reference_outputs(night["root"] / "reference")
    if thing == "validated":
        table = reference["validated"]["vo_enrolment"]
        table.loc[table.index[0], "inschrijfdatum"] += pd.Timedelta(days=1)
    else:
        table = reference[thing]["all"]
        column = {"quarantine": "rule", "alerts": "reason", "handovers": "school"}[thing]
        table.loc[table.index[0], column] = "CHANGED"
    results = compare(pipeline, reference)
    assert not results[thing].equal
    assert results[thing].pipeline_rows == results[thing].reference_rows  # the counts alone would agree
    assert any("pipeline only" in e for e in results[thing].examples)
    assert any("reference only" in e for e in results[thing].examples)
    assert all(results[other].equal for other in THINGS if other != thing)
    if thing == "validated":
        assert any("columns differ: inschrijfdatum" in e for e in results[thing].examples)


def test_the_crosscheck_examples_show_no_pupil_identifier(night):
    from bench.crosscheck import compare, pipeline_outputs, reference_outputs

    pipeline = pipeline_outputs(night["root"] / "pipeline")
    reference = reference_outputs(night["root"] / "reference")
    alerts = reference["alerts"]["all"]
    key = alerts["pupil_key"].iloc[0]
    reference["alerts"]["all"] = alerts.iloc[1:]
    examples = " ".join(compare(pipeline, reference)["alerts"].examples)
    assert examples and key not in examples and key.split(":")[1] not in examples


def test_the_reference_times_every_stage_and_writes_every_kind_of_output(night):
    from bench import STAGES

    region, root, report = night["region"], night["root"], night["report"]
    out = root / "reference"
    assert list(report.stages) == list(STAGES)
    assert all(end >= start for spans in report.stages.values() for start, end in spans)
    assert all(count > 0 for count in report.validated_rows.values())
    assert list((out / "validated").glob("*.parquet")) and (out / "pupils.parquet").exists()
    assert list((out / "overdracht" / "po-vo").rglob("overdracht.csv"))
    assert list((out / "overdracht" / "vo-mbo").rglob("overdracht.csv"))
    assert (out / "signalen" / "signalen_thuiszittercoordinator.csv").exists()
    assert len(list((out / "gemeenten").rglob("monitoring.parquet"))) == len(region.gemeente_codes)


def test_the_reference_uses_none_of_the_pipelines_code():
    """Independent by construction: the reference shares techniques with the pipeline, not code."""
    tree = ast.parse((PROJECT / "bench" / "reference.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    pipeline = {"assets", "schemas", "connectors", "settings", "pipelines"}
    assert not {name for name in imported if name.split(".")[0] in pipeline}
