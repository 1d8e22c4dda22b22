"""``swv check``: is the region file valid, and what would each source deliver tonight?

    swv check [--region FILE]

Without running anything: the region file is validated as the code location validates it; every
file a source's glob matches is read as the night reads it (header, rows, the mapped columns);
every API is asked for its headers once, with its token; the secrets the night needs are looked
up in the environment. Each finding is ``ok``, ``WARN`` (the night runs, but look) or ``ERROR``
(something of the night fails); the exit code is 1 when there is an ERROR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.commands import add_region_argument, region_or_report
from settings.paths import var_layout
from settings.region import Region, Source


@dataclass
class Report:
    """Findings in the order they were made, printed as they come."""

    errors: int = 0
    warnings: int = 0
    lines: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self._print(f"\n{text}")

    def ok(self, text: str) -> None:
        self._print(f"  ok     {text}")

    def note(self, text: str) -> None:
        self._print(f"         {text}")

    def warn(self, text: str) -> None:
        self.warnings += 1
        self._print(f"  WARN   {text}")

    def error(self, text: str) -> None:
        self.errors += 1
        self._print(f"  ERROR  {text}")

    def _print(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swv check", description="Validate the region file and say, per source, what it would read tonight: "
        "the files that match (read as the night reads them), whether each API answers and its token is set, and "
        "whether the mappings cover the delivered columns. Pulls no API data. Exit code 1 on any ERROR.")
    add_region_argument(parser)
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    region_path, region = region_or_report(args.region)
    if region is None:
        return 1
    report = Report()
    check_region(region, region_path, report)
    report.heading("Sources")
    root = var_layout().sources
    for source_id, source in region.sources.items():
        check_source(source_id, source, root, report)
    check_secrets(region, report)
    check_instance(report)
    verdict = "ready for a night" if not report.errors else "not ready: fix the errors above"
    print(f"\n{report.errors} error(s), {report.warnings} warning(s): {verdict}.")
    return 1 if report.errors else 0


def check_region(region: Region, path: Path, report: Report) -> None:
    from schemas.codelists import known_schools

    report.heading(f"Region file {path}")
    report.ok(f"valid: {region.swv.code} {region.swv.naam}; {len(region.gemeenten)} municipalities, "
              f"{len(region.sources)} sources")
    if region.reference_date is not None:
        report.warn(f"reference_date {region.reference_date} is set: every night evaluates on that date "
                    "(for demos and replays; remove it in production)")
    evaluation = region.evaluation_date()
    first, last = _school_year(evaluation, region.calendar.school_year_start)
    holidays = [h for h in region.calendar.holidays if h.start <= last and h.end >= first]
    if holidays:
        report.ok(f"calendar: regio {region.calendar.holiday_region}, {len(holidays)} holiday(s) in school year "
                  f"{first.year}-{last.year}")
    else:
        report.warn(f"calendar.holidays has no holiday in school year {first.year}-{last.year} (evaluation date "
                    f"{evaluation}): every week counts as a school week for the 16-hour and LRV rules")
    registry = region.school_registry or None
    which = ", ".join(registry) if registry else "the national registry (reference/duo_schoolvestigingen_nl_2024.csv)"
    report.ok(f"school registry: {which}, {len(known_schools(registry)):,} school locations")


def _school_year(day: dt.date, start: str) -> tuple[dt.date, dt.date]:
    month, dom = (int(part) for part in start.split("-"))
    first = dt.date(day.year, month, dom)
    if first > day:
        first = dt.date(day.year - 1, month, dom)
    return first, dt.date(first.year + 1, month, dom) - dt.timedelta(days=1)


def check_source(source_id: str, source: Source, root: Path, report: Report) -> None:
    from schemas.datasets import canonical_fields

    where = f", {source.gemeente}" if source.gemeente else ""
    report.heading(f"  {source_id} ({source.dataset}{where}; {source.partner})")
    fields = canonical_fields(source.dataset)
    required = [name for name, column in fields.items() if not column.nullable]
    mapped = set(source.columns.values())
    derived = "".join(f"; derives {name} ({how})" for name, how in source.derive.items())
    report.ok(f"columns map {len(mapped)} of its {len(fields)} fields, the required ones among them "
              f"({', '.join(required) or 'none'}){derived}")
    if source.location.kind == "file":
        check_files(source_id, source, root, report)
    else:
        check_api(source, report)


def check_files(source_id: str, source: Source, root: Path, report: Report) -> None:
    from connectors.probe import read_files

    reads = read_files(root, source.location)
    if not reads:
        report.error(f"no file matches {root / source.location.path}: the night has nothing to read "
                     "(a file source's path is relative to $SWV_VAR_DIR/sources)")
        return
    readable = [r for r in reads if r.problem is None]
    for read in reads:
        if read.problem is not None:
            report.error(f"cannot be read, the night rejects it: {read.problem}")
            continue
        missing = [column for column in source.columns if column not in read.columns]
        if missing:
            report.error(f"{read.name}: lacks the mapped column(s) {missing}: the night rejects it "
                         f"(sources.{source_id}.columns)")
    if readable:
        newest = max(readable, key=lambda r: r.modified)
        age = (time.time() - newest.modified) / 3600
        report.ok(f"{len(readable)} file(s) readable, {sum(r.rows for r in readable):,} rows; newest {newest.name} "
                  f"({dt.datetime.fromtimestamp(newest.modified):%Y-%m-%d %H:%M})")
        if age > source.cadence.max_age_hours:
            report.warn(f"the newest file is {age:,.0f} hours old; cadence.max_age_hours is "
                        f"{source.cadence.max_age_hours:g}: freshness will say it is stale")
        unmapped = sorted({c for r in readable for c in r.columns} - set(source.columns))
        if unmapped:
            report.note(f"delivered but not mapped (ignored): {', '.join(unmapped)}")


def check_api(source: Source, report: Report) -> None:
    from connectors.probe import ask

    location = source.location
    auth = location.auth
    if auth is not None:
        if os.environ.get(auth.token_env):
            report.ok(f"token: {auth.token_env} is set")
        else:
            report.error(f"token: environment variable {auth.token_env} is not set: the pull fails")
    answer = ask(location)
    if answer.status is None:
        report.error(f"{location.url} does not answer: {answer.problem}")
    elif answer.refused_token:
        report.error(f"{location.url} answers but refuses the token (HTTP {answer.status}): check {auth.token_env}"
                     if auth else f"{location.url} asks for a token (HTTP {answer.status}): configure auth")
    elif answer.status == 404:
        report.error(f"{location.url} answers HTTP 404: no such endpoint, check the url")
    elif answer.status >= 500:
        report.warn(f"{location.url} answers HTTP {answer.status} now: the partner has a problem")
    else:
        report.ok(f"{location.url} answers (HTTP {answer.status} to a HEAD request)")


def check_secrets(region: Region, report: Report) -> None:
    from connectors.secrets import ALERT_SALT_ENV, export_key_variable

    report.heading("Secrets (environment)")
    missing = [export_key_variable(code) for code in region.gemeente_codes
               if not os.environ.get(export_key_variable(code), "").strip()]
    if missing:
        report.error(f"not set: {', '.join(missing)}: those municipalities' exports fail (docs/exports.md)")
    else:
        report.ok(f"every municipality's export key is set ({export_key_variable('GMxxxx')})")
    if os.environ.get(ALERT_SALT_ENV, "").strip():
        report.ok(f"{ALERT_SALT_ENV} is set")
    else:
        report.error(f"{ALERT_SALT_ENV} is not set: the night records no alerts and sends no signal lists "
                     "(docs/configuration.md, 'Secrets')")


def check_instance(report: Report) -> None:
    home = os.environ.get("DAGSTER_HOME")
    report.heading("Dagster instance")
    if home and (Path(home) / "dagster.yaml").exists():
        report.ok(f"DAGSTER_HOME {home} with its dagster.yaml")
    else:
        default = Path(home) if home else var_layout().dagster_home
        report.note(f"{'DAGSTER_HOME is not set; ' if not home else ''}`swv night` creates the instance at {default} "
                    "with deploy/dagster.local.yaml")
