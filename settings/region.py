"""The region configuration: one YAML file describes an SWV, its municipalities and every delivery.

Onboarding a municipality or a whole other SWV is a change to this file, never to code. The file is
validated when Definitions load; an error names the file, the key path and the problem, so a data
steward can fix it without reading Python.

Strings may contain ``${NAME}`` or ``${NAME:-default}``: they are filled from the environment when
the file is loaded (used for base URLs that differ per machine). Secrets are never written in the
file: a source names the *environment variable* that holds its token (``token_env``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from settings.constants import AMSTERDAM
from settings.datasets import DATASETS, RAW_RETENTION_YEARS, Dataset  # noqa: F401  (DATASETS: demo, bench)

GEMEENTECODE = re.compile(r"^GM\d{4}$")  # CBS gemeentecode, docs/domain.md §1 and §3
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RegionConfigError(ValueError):
    """The region YAML is unusable; the message names file, key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gemeente(_Strict):
    code: str = Field(description="CBS gemeentecode, GM + 4 digits (docs/domain.md §1).")
    naam: str

    @field_validator("code", mode="before")
    @classmethod
    def _strip_cbs_padding(cls, value: object) -> object:
        # CBS tables pad the key to 10 characters ('GM1690    '): strip on ingest (domain.md §1).
        return value.strip() if isinstance(value, str) else value

    @field_validator("code")
    @classmethod
    def _gemeentecode(cls, value: str) -> str:
        if not GEMEENTECODE.match(value):
            raise ValueError(f"{value!r} is not a CBS gemeentecode (GM followed by 4 digits, e.g. GM0118)")
        return value


class CsvFormat(_Strict):
    type: Literal["csv"] = "csv"
    encoding: Literal["auto", "cp1252", "utf-8", "utf-8-sig", "latin-1"] = "auto"
    delimiter: str | None = Field(default=None, description="None: detected from the header line.")
    quotechar: str = '"'

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("delimiter must be a single character such as ';' or ','")
        return value


class XlsxFormat(_Strict):
    type: Literal["xlsx"]
    sheet: str | None = Field(default=None, description="Sheet name; None: the first sheet.")
    skip_rows: int | None = Field(
        default=None, ge=0, description="Rows above the header; None: the header row is detected."
    )


class JsonFormat(_Strict):
    type: Literal["json"] = "json"


class FileLocation(_Strict):
    kind: Literal["file"]
    path: str = Field(description="Glob relative to the sources folder, e.g. 'po/*.csv'; each matching file is one delivery.")
    format: Annotated[CsvFormat | XlsxFormat, Field(discriminator="type")]


class Auth(_Strict):
    type: Literal["bearer", "api_key"]
    token_env: str = Field(description="Environment variable that holds the token (never the token itself).")
    header: str = Field(default="X-API-Key", description="Header name for api_key auth.")


class PagePagination(_Strict):
    type: Literal["page"]
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = Field(default=500, gt=0)
    first_page: int = 1
    records_key: str = "data"


class CursorPagination(_Strict):
    type: Literal["cursor"]
    cursor_param: str = "cursor"
    size_param: str = "limit"
    page_size: int = Field(default=500, gt=0)
    records_key: str = "items"
    next_cursor_key: str = "next_cursor"


class HttpLocation(_Strict):
    kind: Literal["http"]
    url: str
    auth: Auth | None = None
    pagination: Annotated[PagePagination | CursorPagination, Field(discriminator="type")]
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_factor: float = Field(default=0.5, ge=0)
    max_pages: int = Field(default=10_000, gt=0)
    max_response_bytes: int = Field(default=50_000_000, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class Cadence(_Strict):
    """How often a partner delivers; drives the freshness check and the 'stale' flag in exports."""

    max_age_hours: float = Field(default=36, gt=0)


class VolumeGuard(_Strict):
    """How small a delivery may be before it is held back (``volume`` of a source; docs/configuration.md).

    The expected volume is learned: it is the row count of the last good delivery of the same file
    (or pull). These keys bound how far a delivery may fall short of it.
    """

    min_rows: int = Field(default=1, ge=0, description="A delivery with fewer data rows is held back (0: never).")
    max_drop: float = Field(
        default=0.5, ge=0, le=1,
        description="Held back when it has fewer rows than (1 - max_drop) x the last good delivery (1: never).",
    )


class Source(_Strict):
    dataset: Dataset
    gemeente: str | None = Field(
        default=None, description="For per-municipality data (youth-care waitlists): the GM code it belongs to."
    )
    partner: str = Field(description="Who delivers it (shown in docs and the UI).")
    location: Annotated[FileLocation | HttpLocation, Field(discriminator="kind")]
    columns: dict[str, str] = Field(description="Delivered column/field name -> canonical field.")
    date_format: str = Field(default="%Y-%m-%d", description="strptime format of date fields; ISO is always accepted too.")
    codes: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per canonical field, extra label -> canonical code entries on top of the region's code lists.",
    )
    cadence: Cadence = Cadence()
    derive: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical field -> how to derive it where the delivery leaves it empty (docs/configuration.md).",
    )
    volume: VolumeGuard = VolumeGuard()
    feedback_per: Literal["source", "file"] = Field(
        default="source",
        description=("Who gets the feedback file of rejected rows (docs/validation.md): the source's partner as one "
                     "('source'), or, where every file of a file source comes from another partner (one per PO "
                     "board or VO school), each file's sender ('file', named by the part the path's '*' matches)."),
    )

    @field_validator("columns")
    @classmethod
    def _one_to_one(cls, value: dict[str, str]) -> dict[str, str]:
        targets = list(value.values())
        doubles = sorted({t for t in targets if targets.count(t) > 1})
        if doubles:
            raise ValueError(f"canonical field(s) {doubles} are mapped from more than one column")
        return value


class Holiday(_Strict):
    name: str
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "Holiday":
        if self.end < self.start:
            raise ValueError(f"holiday {self.name!r} ends ({self.end}) before it starts ({self.start})")
        return self


class Calendar(_Strict):
    """School-calendar facts the alert rules need (docs/domain.md §2.3, §4.3, §6); configuration, not code."""

    holiday_region: Literal["noord", "midden", "zuid"] = "noord"
    holidays: list[Holiday] = Field(default_factory=list)
    mbo_application_deadline: str = Field(default="04-01", description="MM-DD, 1 April (domain.md §6).")
    vsv_count_date: str = Field(default="10-01", description="MM-DD, 1 October (domain.md §6).")
    school_year_start: str = Field(default="08-01", description="MM-DD (domain.md §2.3).")
    tlv_deadline: str = Field(default="06-01", description="MM-DD by which pro/vso advice needs a TLV.")


class Validation(_Strict):
    """How loud the ``row_rejects`` check is (docs/validation.md): passed up to ``warn_reject_share``, WARN
    above it, ERROR above ``max_reject_share``; a few bad rows every night are normal, a jump is not."""

    warn_reject_share: float = Field(
        default=0.05, ge=0, le=1, description="Share of quarantined rows above which the row_rejects check warns."
    )
    max_reject_share: float = Field(
        default=0.2, ge=0, le=1, description="Share of quarantined rows above which the row_rejects check is ERROR."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "Validation":
        if self.warn_reject_share > self.max_reject_share:
            raise ValueError(f"warn_reject_share ({self.warn_reject_share}) is above max_reject_share "
                             f"({self.max_reject_share}): a check would be ERROR before it warns")
        return self


class AlertThresholds(_Strict):
    """The numbers in docs/alerts.md, as configuration with the documented defaults (``alerts:`` key)."""

    lrv_week_hours: float = Field(default=20, gt=0, description="Unexcused hours that make a week count for LRV.")
    lrv_more_than_weeks: int = Field(default=4, ge=1, description="LRV fires when the run is longer than this.")
    window_weeks: int = Field(default=4, ge=1, description="School weeks in the V16 and JZ_WACHT_VERZUIM window.")
    v16_hours: float = Field(default=16, gt=0, description="Unexcused hours in the window for V16 (domain.md §4.3).")
    jz_absence_hours: float = Field(default=8, gt=0, description="Unexcused hours in the window for JZ_WACHT_VERZUIM.")
    jz_wait_more_than_weeks: int = Field(default=14, ge=1,
                                         description="Waiting-time norm, aanmelding to start (domain.md §5.3).")
    t3m_more_than_months: int = Field(default=3, ge=1,
                                      description="Thuiszitterspact: months without a place (domain.md §4.2).")


def secure_url(url: str) -> bool:
    """https, or plain http to this machine only (tests, the demo): a token or personal data never
    crosses a network in clear (AVG art. 32)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    try:
        loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    return parts.scheme == "http" and loopback


class UploadTarget(_Strict):
    """Where one municipality receives its export over HTTPS (docs/exports.md, 'Upload')."""

    url: str = Field(description="Base URL; files go to {url}/{periode}/{file}.")
    token_env: str | None = Field(default=None, description="Environment variable holding the bearer token.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_factor: float = Field(default=0.5, ge=0)

    @field_validator("url")
    @classmethod
    def _secure(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password:  # checked first: the message must not repeat a password
            raise ValueError("the URL holds a user or password: name the variable with the token in token_env instead")
        if not secure_url(value):
            raise ValueError(f"{value!r}: exports go over https (plain http only to 127.0.0.1 or localhost)")
        return value.rstrip("/")


EXPORT_FORMATS = ("csv", "xlsx", "parquet")


class Exports(_Strict):
    """What each municipality's export holds and where it goes (``exports:`` key, docs/exports.md)."""

    formats: list[Literal["csv", "xlsx", "parquet"]] = Field(
        default_factory=lambda: list(EXPORT_FORMATS), min_length=1,
        description="File formats of every table; the manifest is always written.",
    )
    upload: dict[str, UploadTarget] = Field(
        default_factory=dict, description="Per GM code: the receiver of that municipality's files (optional)."
    )

    @field_validator("formats")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a format occurs twice in {value}")
        return value


class RetentionPeriods(_Strict):
    """How long each kind of data is kept (``retention:`` key; ``assets/gemeenten/retention.py``)."""

    raw_years: dict[Dataset, int] = Field(
        default_factory=lambda: dict(RAW_RETENTION_YEARS),
        description="Per canonical dataset: years a raw snapshot is kept; datasets left out keep their default.",
    )
    exports_days: int = Field(default=365, gt=0, description="Days an export folder is kept in the outbox.")
    alert_history_years: int = Field(default=5, gt=0, description="Years alert history is kept (verzuim, §7).")

    @field_validator("raw_years")
    @classmethod
    def _over_the_defaults(cls, value: dict[str, int]) -> dict[str, int]:
        short = sorted(dataset for dataset, years in value.items() if years < 1)
        if short:
            raise ValueError(f"raw_years of {short}: at least 1 year")
        return {**RAW_RETENTION_YEARS, **value}


class Goal(_Strict):
    """One goal of the support plan (ondersteuningsplan) as the monitor's report shows it (docs/monitor.md).

    Every SWV writes its own plan, so the goals are configuration. A goal the pipeline's data cannot
    measure is listed all the same, with ``note`` saying why: the board sees the whole plan.
    """

    number: int | None = Field(default=None, ge=1, description="The goal's number in the plan.")
    title: str = Field(min_length=1, description="The goal in the plan's own words (Dutch).")
    indicator: str | None = Field(default=None, description="Indicator code (docs/monitor.md) that measures it; "
                                                            "left out when the pipeline's data cannot.")
    category: str = Field(default="", description="A category of the indicator instead of its total.")
    target: float | None = Field(default=None, description="The plan's target in the indicator's unit.")
    better: Literal["lower", "higher"] = Field(default="lower", description="Which direction is progress.")
    note: str = Field(default="", description="Shown with the goal: how it is measured, or why it cannot be.")


def _default_goals() -> list[Goal]:
    """The goals the issue names for every SWV (domain.md §10: goals 6 and 9, the thuiszitter theme)."""
    return [
        Goal(number=9, title="Geen kinderen die wachten op jeugdhulp", indicator="jeugdhulp_wachtend", target=0),
        Goal(title="Geen thuiszitters", indicator="thuiszitters", target=0),
        Goal(number=6, title="Doorgaande lijn PO → VO: geplaatst op de eerste schooldag",
             indicator="po_vo_geplaatst_aandeel", target=100, better="higher"),
        Goal(number=6, title="Doorgaande lijn VO → MBO: aangemeld vóór 1 april",
             indicator="vo_mbo_aangemeld_aandeel", target=100, better="higher"),
    ]


class JumpThreshold(_Strict):
    """How far an indicator may move from one night to the next before the monitor check warns."""

    max_change: float = Field(default=10, ge=0, description="Change in the indicator's own unit (pupils, "
                                                            "percentage points, weeks, rows).")
    max_relative: float = Field(default=0.25, ge=0, description="Change as a share of last night's value.")


class JumpCheck(_Strict):
    """The ``indicator_jumps`` check: a jump beyond *both* limits warns (docs/monitor.md)."""

    default: JumpThreshold = JumpThreshold()
    indicators: dict[str, JumpThreshold] = Field(
        default_factory=lambda: {"thuiszitters": JumpThreshold(max_change=3, max_relative=0.25)},
        description="Indicator code -> its own limits.",
    )


class MonitorSettings(_Strict):
    """The support-plan monitor (``monitor:`` key; docs/monitor.md, docs/configuration.md)."""

    goals: list[Goal] = Field(default_factory=_default_goals)
    jump_check: JumpCheck = JumpCheck()
    cluster_institutions: dict[Literal["1", "2"], list[str]] | None = Field(
        default=None, description="BRIN (4 characters) of the cluster 1 and 2 institutions; "
                                  "None: reference/cluster_instellingen.csv.")
    trend_weeks: int = Field(default=52, ge=1, description="Weeks of history the report's trend charts show.")

    @field_validator("cluster_institutions")
    @classmethod
    def _brin4(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for cluster, codes in (value or {}).items():
            wrong = [code for code in codes if not re.match(r"^\d{2}[A-Z]{2}$", code)]
            if wrong:
                raise ValueError(f"cluster {cluster}: {wrong} are not BRIN codes (2 digits, 2 letters, e.g. 17GW)")
        return value


class Swv(_Strict):
    code: str
    naam: str

    @field_validator("code")
    @classmethod
    def _swv_code(cls, value: str) -> str:
        if not re.match(r"^(PO|VO)\d{4}$", value):
            raise ValueError(f"{value!r} is not an SWV code like VO2203 (domain.md §1)")
        return value


class Region(_Strict):
    swv: Swv
    reference_date: dt.date | None = Field(
        default=None, description="Evaluation date; None means today in Europe/Amsterdam."
    )
    gemeenten: list[Gemeente] = Field(min_length=1)
    calendar: Calendar = Calendar()
    validation: Validation = Validation()
    alerts: AlertThresholds = AlertThresholds()
    exports: Exports = Exports()
    retention: RetentionPeriods = RetentionPeriods()
    monitor: MonitorSettings = MonitorSettings()
    codelists: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Per code list (e.g. schooladvies): delivered label -> canonical code."
    )
    school_registry: list[str] | None = Field(
        default=None,
        description="The SWV's own DUO school file(s), relative to the region file; None: the national registry.",
    )
    sources: dict[str, Source] = Field(min_length=1)
    mbo_instellingen: dict[str, str] = Field(
        default_factory=dict,
        description="MBO institution BRIN (4 characters) -> name, for the VO -> MBO handovers: the DUO school "
                    "registry holds no MBO institutions (docs/handover.md).",
    )

    @field_validator("mbo_instellingen")
    @classmethod
    def _institution_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code, name in value.items():
            if not re.fullmatch(r"\d{2}[A-Z]{2}", code):
                raise ValueError(f"{code!r} is not an MBO institution code (BRIN: 2 digits, 2 capitals, e.g. 25PW)")
            if not name.strip():
                raise ValueError(f"{code}: the name is empty")
        return {code: name.strip() for code, name in value.items()}

    @field_validator("school_registry", mode="before")
    @classmethod
    def _one_or_more_files(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("sources")
    @classmethod
    def _source_ids(cls, value: dict[str, Source]) -> dict[str, Source]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"source id {name!r} must be lower-case letters, digits and '_'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Region":
        codes = [g.code for g in self.gemeenten]
        if len(set(codes)) != len(codes):
            raise ValueError(f"gemeenten: a code occurs twice in {codes}")
        for name, source in self.sources.items():
            if source.gemeente is not None and source.gemeente not in codes:
                raise ValueError(f"sources.{name}.gemeente: {source.gemeente} is not one of the gemeenten {codes}")
            if source.dataset == "youth_care_waitlist" and source.gemeente is None:
                raise ValueError(f"sources.{name}.gemeente: a youth_care_waitlist source must name its gemeente")
        strangers = sorted(set(self.exports.upload) - set(codes))
        if strangers:
            raise ValueError(f"exports.upload: {strangers} are not among the gemeenten {codes}")
        return self

    @property
    def gemeente_codes(self) -> list[str]:
        return [g.code for g in self.gemeenten]

    def sources_for(self, dataset: str, gemeente: str | None = None) -> dict[str, Source]:
        return {
            name: s
            for name, s in self.sources.items()
            if s.dataset == dataset and (gemeente is None or s.gemeente == gemeente)
        }

    def evaluation_date(self) -> dt.date:
        if self.reference_date is not None:
            return self.reference_date
        return dt.datetime.now(AMSTERDAM).date()


def _expand_env(node: object) -> object:
    if isinstance(node, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name, default)
            if value is None:
                raise RegionConfigError(f"environment variable {name} is not set and has no default")
            return value

        return _ENV_REF.sub(repl, node)
    if isinstance(node, dict):
        return {k: _expand_env(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v) for v in node]
    return node


def _describe(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and p in {"file", "http", "csv", "xlsx", "page", "cursor"}))
    return f"{key or '<top level>'}: {error['msg']}"


# libyaml's safe loader where PyYAML was built with it (the wheels are): the same documents and
# errors as ``yaml.safe_load``, in C. Every run of a night loads the region once.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_region(path: str | os.PathLike[str]) -> Region:
    """Read and validate a region YAML; raise RegionConfigError naming the file and every bad key.

    This checks the file on its own; whether its mappings fit the canonical datasets (fields, codes,
    derivations, school files) is the contract's question: ``schemas.region_contract.load_checked_region``
    asks both, as the code location and the ``swv`` commands do.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegionConfigError(f"{path}: cannot read the region file ({exc.strerror})") from exc
    try:
        raw = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise RegionConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegionConfigError(f"{path}: the top level must be a mapping with keys swv, gemeenten, sources")
    try:
        raw = _expand_env(raw)
        region = Region.model_validate(raw)
    except RegionConfigError as exc:
        raise RegionConfigError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e)}" for e in exc.errors())
        raise RegionConfigError(f"{path}: invalid region configuration:\n{problems}") from None
    if region.school_registry:  # relative to the region file's folder
        files = [str((path.parent / name).resolve()) for name in region.school_registry]
        region = region.model_copy(update={"school_registry": files})
    return region
