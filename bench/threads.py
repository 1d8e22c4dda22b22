"""``python -m bench.threads LAKE``: every helper thread of the pipeline, with it and without it, on a kept lake.

A helper thread is worth its code only where the benchmark shows its gain (bench/README.md, "Design
notes"). This runs the steps that hold one on the lake a ``python -m bench --keep`` night left
behind (``bench/out/.../<pupils>/pipeline-1``), each time once as the code stands and once with the
thread's executor swapped for one that runs the work in the calling thread, alternating which goes
first, and reports the time of the function that holds the thread (all its calls, summed).

    .venv/bin/python -m bench.threads bench/out/run-*/1000000/pipeline-1 --rounds 3
    .venv/bin/python -m bench.threads LAKE_RUN --only validation

A new helper thread is measured by adding its site to ``SITES`` (the module whose
``ThreadPoolExecutor`` is swapped, the function that holds it, and a workload that calls it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from connectors import arrow_memory  # noqa: F401  (the pipeline's allocator, as in a night)


class InlineExecutor:
    """``ThreadPoolExecutor``'s interface, the work done in the calling thread at ``submit``."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller as a thread would
            future.set_exception(error)
        return future

    def map(self, fn, *iterables):
        return list(map(fn, *iterables))


@dataclass(frozen=True)
class Site:
    name: str
    module: str  # whose ThreadPoolExecutor is swapped
    timed: str  # "module:function" whose calls are timed
    workload: str  # which of the workloads below calls it


SITES = [  # the threads that stayed (bench/README.md, "Design notes", names those removed and why)
    Site("validation", "schemas.validate", "schemas.validate:validate_dataset", "validate"),
    Site("xlsx", "connectors.outbox", "connectors.outbox:table_files", "exports"),
]


WORKLOAD_MODULES = ("schemas.validate", "assets.signalen.alert_assets", "assets.gemeenten.export_assets",
                    "assets.gemeenten.published_tables", "assets.overdracht.handover_assets")


class Lake:
    """The inputs of the threaded steps, read once from a kept night."""

    def __init__(self, run: Path):
        from connectors.lake import read_asset
        from settings.paths import region_file
        from settings.region import load_region

        root = run / "lake"
        for module in WORKLOAD_MODULES:  # imported before any function is wrapped: they import it by name
            importlib.import_module(module)
        self.region = load_region(region_file())
        self.evaluation_date = self.region.evaluation_date()
        self.read = lambda asset, columns=None: read_asset(root, asset, columns)
        self.cache: dict = {}

    def get(self, asset: str, columns=None) -> pd.DataFrame:
        key = (asset, tuple(columns) if columns else None)
        if key not in self.cache:
            self.cache[key] = self.read(asset, list(columns) if columns else None)
        return self.cache[key]


def run_validate(lake: Lake) -> None:
    from schemas.validate import validate_dataset

    for dataset in ("vo_absence", "vo_enrolment"):
        validate_dataset(dataset, lake.get(f"{dataset}_raw"), lake.region, evaluation_date=lake.evaluation_date)


def run_alerts(lake: Lake) -> None:
    from assets.koppeling.linkage import KEY_FIELDS
    from assets.signalen.alert_assets import NAME_FIELDS, PUPIL_FIELDS
    from assets.signalen.alert_rules import ABSENCE_FIELDS, ENROLMENT_FIELDS, alert_facts

    alert_facts(vo_enrolment=lake.get("vo_enrolment", [*KEY_FIELDS, *ENROLMENT_FIELDS, *NAME_FIELDS]),
                vo_absence=lake.get("vo_absence", [*KEY_FIELDS, *ABSENCE_FIELDS]),
                po_transfers=lake.get("po_transfers"), mbo_outflow=lake.get("mbo_outflow"),
                youth_care_waitlist=lake.get("youth_care_waitlist"), pupils=lake.get("pupils", PUPIL_FIELDS),
                calendar=lake.region.calendar, evaluation_date=lake.evaluation_date,
                thresholds=lake.region.alerts, pupil_conflicts=lake.get("pupil_conflicts"))


def run_facts(lake: Lake) -> None:
    from assets.gemeenten.export_settings import ExportSettings
    from assets.gemeenten.resident_facts import ExportInputs, RESIDENT_FIELDS, resident_facts
    from assets.koppeling.linkage import KEY_FIELDS
    from assets.signalen.alert_rules import ABSENCE_FIELDS

    inputs = ExportInputs(lake.get("pupils", RESIDENT_FIELDS), lake.get("vo_absence", [*KEY_FIELDS, *ABSENCE_FIELDS]),
                          lake.get("youth_care_waitlist"), lake.get("po_transfers"), lake.get("mbo_outflow"),
                          lake.get("thuiszitter_alerts"))
    resident_facts(inputs, lake.region.gemeente_codes, lake.evaluation_date, lake.region.calendar, ExportSettings())


def run_exports(lake: Lake) -> None:
    from assets.gemeenten.export_assets import privacy_problems
    from assets.gemeenten.export_settings import ExportSettings
    from assets.gemeenten.identifier_leaks import GUARDED_IDENTIFIERS
    from assets.gemeenten.published_tables import export_from_facts

    settings = ExportSettings()
    facts = lake.get("export_facts").set_index("pupil_key")
    pupils = lake.get("pupils", GUARDED_IDENTIFIERS)
    alerts = lake.get("thuiszitter_alerts")
    for gemeente, rows in facts.groupby("woongemeente_code", sort=False, observed=True).indices.items():
        export = export_from_facts(facts.iloc[rows], alerts, gemeente=gemeente, evaluation_date=lake.evaluation_date,
                                   key=b"bench-threads-key-" + gemeente.encode(), swv_code=lake.region.swv.code,
                                   settings=settings)
        assert not privacy_problems(export, pupils, settings.max_small_count)
        _ = export.files


def run_handovers(lake: Lake) -> None:
    from assets.overdracht import handover_assets as h
    from assets.overdracht.handover import po_vo_handover, vo_mbo_handover
    from connectors.outbox import Outbox

    region, night = lake.region, pd.Timestamp(lake.evaluation_date)
    with tempfile.TemporaryDirectory() as folder:
        outbox = Outbox(root=folder)
        po_vo = po_vo_handover(lake.get("po_transfers"), lake.get("vo_enrolment"), lake.get("pupil_conflicts"),
                               evaluation_date=night, tlv_deadline=region.calendar.tlv_deadline,
                               school_year_start=region.calendar.school_year_start)
        h.deliver_handover(outbox, h.PO_VO, po_vo, {"swv": region.swv.code}, year_key="schooljaar")
        vo_mbo = vo_mbo_handover(lake.get("mbo_outflow"), lake.get("po_transfers"), lake.get("vo_enrolment"),
                                 lake.get("pupil_conflicts"), school_year_start=region.calendar.school_year_start,
                                 evaluation_date=night, vo_absence=lake.get("vo_absence", list(h.ABSENCE_COLUMNS)))
        h.deliver_handover(outbox, h.VO_MBO, vo_mbo, {"swv": region.swv.code}, year_key="uitstroomjaar",
                           institutions=region.mbo_instellingen)


WORKLOADS = {"validate": [run_validate], "alerts": [run_alerts], "facts": [run_facts], "exports": [run_exports],
             "handovers": [run_handovers],
             "all": [run_validate, run_alerts, run_facts, run_exports, run_handovers]}


@contextlib.contextmanager
def timed(target: str, spent: list[float]):
    """Every call of ``module:function`` timed into ``spent`` (outermost calls per thread only)."""
    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    depth = threading.local()

    def wrapper(*args, **kwargs):
        depth.calls = getattr(depth, "calls", 0) + 1
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            depth.calls -= 1
            if not depth.calls:
                spent.append(time.perf_counter() - start)

    setattr(module, name, wrapper)
    # Callers that imported the function by name see the wrapper too.
    patched = []
    for other in list(sys.modules.values()):
        if other is not module and getattr(other, name, None) is original and getattr(other, "__name__", "").split(".")[0] in {
                "assets", "schemas", "connectors", "bench"}:
            setattr(other, name, wrapper)
            patched.append(other)
    try:
        yield
    finally:
        setattr(module, name, original)
        for other in patched:
            setattr(other, name, original)


@contextlib.contextmanager
def threads_off(module_name: str):
    module = importlib.import_module(module_name)
    original = module.ThreadPoolExecutor
    module.ThreadPoolExecutor = InlineExecutor
    try:
        yield
    finally:
        module.ThreadPoolExecutor = original


def measure(site: Site, lake: Lake, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"with": [], "without": []}
    for number in range(rounds):
        order = ("with", "without") if number % 2 == 0 else ("without", "with")
        for mode in order:
            spent: list[float] = []
            with contextlib.ExitStack() as stack:
                if mode == "without":
                    stack.enter_context(threads_off(site.module))
                stack.enter_context(timed(site.timed, spent))
                for work in WORKLOADS[site.workload]:
                    work(lake)
            times[mode].append(sum(spent))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a kept night: bench/out/.../<pupils>/pipeline-1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="site names")
    args = parser.parse_args(argv)
    lake = Lake(args.run)
    for site in SITES:
        if args.only and site.name not in args.only:
            continue
        if not hasattr(importlib.import_module(site.module), "ThreadPoolExecutor"):
            print(f"{site.name}: no thread in {site.module}, skipped", flush=True)
            continue
        times = measure(site, lake, args.rounds)
        with_, without = statistics.median(times["with"]), statistics.median(times["without"])
        print(f"{site.name:16} {site.timed:55} with {with_:6.2f} s  without {without:6.2f} s  "
              f"saves {without - with_:+.2f} s   (with {', '.join(f'{t:.2f}' for t in times['with'])}; "
              f"without {', '.join(f'{t:.2f}' for t in times['without'])})", flush=True)


if __name__ == "__main__":
    main()
