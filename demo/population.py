"""The synthetic world behind the demo region: schools, pupils and what happened to them.

Everything here is clean and canonical (the field names and codes of ``schemas.datasets``);
rendering it as partner deliveries and spoiling some rows is ``demo.render`` and ``demo.generate``.

The world is anchored on the region's evaluation date E: the school year that contains E, the year
before it (absence history, last summer's leavers) and, per rule of docs/alerts.md, a handful of
planted pupils built to raise exactly the reasons recorded for them. Background pupils are kept
clear of every rule: unexcused absence stays far below the thresholds, every groep-8 pupil has a
VO place, leavers without startkwalificatie applied before 1 April and are enrolled, and pupils on
a youth-care waitlist have no unexcused absence. So the planted pupils are *all* the alerts.

Sizes are those of the real region (``REGION_PUPILS`` VO pupils) and scale linearly with ``pupils``.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from schemas.codelists import NATIONAL_SCHOOL_REGISTRY
from schemas.onboarding import pc4_municipalities
from settings.paths import PROJECT_ROOT
from settings.region import Holiday, Region

REFERENCE = PROJECT_ROOT / "reference"

REGION_PUPILS = 9_000  # VO2203: 22 VO locations with 8,729 pupils (DUO 2024, domain.md §1)
PER_REGION = {  # sizes at REGION_PUPILS; everything scales with the number of pupils
    "transfers": 1_800,  # groep-8 pupils moving to VO this school year
    "leavers": 1_600,  # VO leavers of last summer in the VVA outflow
    "waitlist_open": 300,
    "waitlist_started": 120,
    "waitlist_ended": 100,
}

# Schooladvies codes in ordinal order (domain.md §2.2): a definitive advice is never lower (§2.3).
ADVICE = ("pro", "vso", "vmbo_b", "vmbo_b_k", "vmbo_k", "vmbo_k_gt", "vmbo_gt", "vmbo_gt_havo", "havo", "havo_vwo", "vwo")
RANK = {code: rank for rank, code in enumerate(ADVICE)}
# Doorstroomtoets outcomes are combined advices, except vwo (domain.md §2.2).
TOETS = ("vmbo_b_k", "vmbo_k_gt", "vmbo_gt_havo", "havo_vwo", "vwo")
STARTKWALIFICATIE_LEVELS = ("havo", "vwo")  # with a diploma (docs/alerts.md, age scope)

# Provisional advice of groep-8 pupils; vso-advised pupils go to (v)so, not to a VO location.
TRANSFER_ADVICE = {"pro": .04, "vmbo_b": .07, "vmbo_b_k": .04, "vmbo_k": .09, "vmbo_k_gt": .05, "vmbo_gt": .15,
                   "vmbo_gt_havo": .08, "havo": .16, "havo_vwo": .12, "vwo": .20}
LEVELS_BY_YEAR = {  # leerjaar -> level mix; leerjaar 1 follows the definitive advice
    2: TRANSFER_ADVICE,
    3: {"pro": .05, "vmbo_b": .10, "vmbo_k": .13, "vmbo_gt": .24, "havo": .26, "vwo": .22},
    4: {"pro": .05, "vmbo_b": .10, "vmbo_k": .13, "vmbo_gt": .24, "havo": .26, "vwo": .22},
    5: {"pro": .06, "havo": .44, "vwo": .50},
    6: {"vwo": 1.0},
}
YEAR_SHARES = {2: .25, 3: .24, 4: .23, 5: .16, 6: .12}  # of the pupils above leerjaar 1
LEAVER_LEVELS = {"vmbo_b": .20, "vmbo_k": .22, "vmbo_gt": .30, "pro": .05, "havo": .17, "vwo": .06}
FINAL_YEAR = {"pro": 5, "vmbo_b": 4, "vmbo_k": 4, "vmbo_gt": 4, "havo": 5, "vwo": 6}
MBO_LEVEL = {  # VO level of a leaver -> (mbo niveau, probability)
    "pro": {1: .7, 2: .3}, "vmbo_b": {1: .2, 2: .8}, "vmbo_k": {2: .5, 3: .5},
    "vmbo_gt": {3: .4, 4: .6}, "havo": {4: 1.0}, "vwo": {4: 1.0},
}
# What the onderwijstype of a DUO VO location offers; BRUGJAAR locations only hold brugklassen.
OFFERS = {
    "PRO": ("pro",),
    "VBO": ("vmbo_b", "vmbo_b_k", "vmbo_k", "vmbo_k_gt"),
    "MAVO": ("vmbo_k_gt", "vmbo_gt", "vmbo_gt_havo"),
    "HAVO": ("vmbo_gt_havo", "havo", "havo_vwo"),
    "VWO": ("havo_vwo", "vwo"),
    "BRUGJAAR": ("vmbo_b_k", "vmbo_k_gt", "vmbo_gt_havo", "havo_vwo"),
}
# MBO institutions in the north-east (BRIN4): Drenthe College, Alfa-college, Deltion College and
# one synthetic code; the reference files hold no MBO register.
MBO_INSTITUTIONS = {"25PW": .45, "01OE": .15, "25LG": .25, "30RX": .15}
VVA_NOT_ENROLLED = ("aanmelding_ontvangen", "onderwijsovereenkomst_aangeboden", "niet_tot_inschrijving", "ingetrokken")

PRODUCTCATEGORIE = {"45": .42, "54": .28, "41": .05, "43": .04, "44": .02, "46": .01, "50": .06, "51": .06,
                    "52": .04, "40": .01, "42": .01}  # JZ020, ambulant and jeugd-ggz dominate (domain.md §5.2)
VERWIJZER = {"02": .35, "01": .30, "03": .15, "05": .10, "04": .05, "06": .04, "08": .01}  # COD327
REDEN_BEEINDIGING = {"31": .60, "34": .10, "32": .08, "38": .07, "33": .04, "35": .03, "36": .03, "39": .03, "20": .02}
SUPPORT_NEEDS = (
    "Dyslexieverklaring: extra tijd bij toetsen", "Dyscalculie: rekenmachine toegestaan",
    "ASS: vaste plek en voorspelbaar rooster", "ADHD: korte instructies en beweegpauzes",
    "Faalangst: begeleiding bij toetsen", "TOS: visuele ondersteuning bij instructie",
    "Slechtziend: vergrote lesstof", "Meerbegaafd: compacten en verrijken",
    "Sociaal-emotionele begeleiding door mentor", "Motorische beperking: laptop voor schrijfwerk",
    "Rouwverwerking: gesprekken met vertrouwenspersoon", "Werkhouding: planning met coach",
)
ARRANGEMENTS = ("OZA", "Arrangement licht", "Arrangement intensief")
TUSSENVOEGSELS = {"": .74, "de": .06, "van": .05, "van der": .04, "van den": .03, "van de": .03, "ter": .01,
                  "ten": .01, "te": .01, "'t": .005, "in 't": .005}
MAIL_DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "live.nl", "home.nl")
FORBIDDEN_POSTCODE_LETTERS = ("SA", "SD", "SS")  # domain.md §3

# Alert thresholds of docs/alerts.md (their defaults); planted values keep a margin to each of them.
LRV_WEEK_HOURS = 20
V16_HOURS = 16
JZ_ABSENCE_HOURS = 8
JZ_WAIT_DAYS = 14 * 7
T3M_MONTHS = 3
BACKGROUND_UNEXCUSED = (1, 2, 3)  # hours in a week: four such weeks stay below V16_HOURS
V16_WEEK_HOURS = (5, 9)  # planted V16: 20-36 h in 4 weeks, no week at the LRV level
WAITING_WEEK_HOURS = (3, 3, 2, 2)  # planted waiting pupils, +0-1 h on two weeks: 10-12 h in 4 weeks
assert 4 * max(BACKGROUND_UNEXCUSED) < V16_HOURS
assert 4 * V16_WEEK_HOURS[0] > V16_HOURS and V16_WEEK_HOURS[1] < LRV_WEEK_HOURS
assert JZ_ABSENCE_HOURS < sum(WAITING_WEEK_HOURS) and sum(WAITING_WEEK_HOURS) + 2 < V16_HOURS

# Planted pupils per scenario at REGION_PUPILS, the reasons they raise, the datasets they need.
SCENARIOS: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    "abs": (6, ("ABS",), ("vo_enrolment",)),
    "abs_t3m": (4, ("ABS", "T3M"), ("vo_enrolment",)),
    "lrv": (5, ("LRV",), ("vo_enrolment", "vo_absence")),
    "lrv_t3m": (4, ("LRV", "T3M"), ("vo_enrolment", "vo_absence")),
    "v16": (8, ("V16",), ("vo_enrolment", "vo_absence")),
    "po_geen_vo": (8, ("PO_GEEN_VO",), ("po_transfers", "vo_enrolment")),
    "mbo_geen_aanmelding": (8, ("MBO_GEEN_AANMELDING",), ("mbo_outflow",)),
    "mbo_niet_ingeschreven": (8, ("MBO_NIET_INGESCHREVEN",), ("mbo_outflow",)),
    "doorstroompunt": (6, ("DOORSTROOMPUNT",), ("mbo_outflow",)),
    "jz_wacht": (6, ("JZ_WACHT_VERZUIM",), ("youth_care_waitlist", "vo_enrolment", "vo_absence")),
    "jz_wacht_v16": (2, ("JZ_WACHT_VERZUIM", "V16"), ("youth_care_waitlist", "vo_enrolment", "vo_absence")),
}

NAT = np.datetime64("NaT", "D")


def member(values, of) -> np.ndarray:
    """np.isin for person ids, which are small dense integers: a lookup table beats hashing."""
    values, of = np.asarray(values, dtype=np.int64), np.asarray(of, dtype=np.int64)
    return np.isin(values, of, kind="table") if len(of) else np.zeros(len(values), dtype=bool)


def day(value: dt.date | pd.Timestamp) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).date(), "D")


def _between(rng: np.random.Generator, first, last, n: int) -> np.ndarray:
    """n uniform dates in [first, last]; the bounds may be arrays."""
    first = np.asarray(first, dtype="datetime64[D]")
    span = (np.asarray(last, dtype="datetime64[D]") - first).astype(np.int64)
    return first + np.floor(rng.random(n) * (span + 1)).astype("timedelta64[D]")


def _choice(rng: np.random.Generator, shares: dict, n: int) -> np.ndarray:
    options = np.array(list(shares))
    weights = np.array(list(shares.values()), dtype=float)
    return options[rng.choice(len(options), size=n, p=weights / weights.sum())]


def _years_before(value: dt.date, years: int) -> dt.date:
    return (pd.Timestamp(value) - pd.DateOffset(years=years)).date()


# --------------------------------------------------------------------------- identifiers (domain.md §3)


def _checksum(first8: np.ndarray) -> np.ndarray:
    """Weighted sum 9..2 over the first eight digits, mod 11 (BSN/onderwijsnummer elfproef)."""
    digits = (first8[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    return (digits * np.arange(9, 1, -1)).sum(axis=1) % 11


def _unique_numbers(rng: np.random.Generator, n: int, low: int, high: int, target: int) -> np.ndarray:
    """n distinct 9-digit numbers whose first eight digits lie in [low, high) and whose check holds."""
    found = np.empty(0, dtype=np.int64)
    while len(found) < n:
        first8 = rng.integers(low, high, size=int((n - len(found)) * 1.3) + 16, dtype=np.int64)
        last = (_checksum(first8) - target) % 11
        candidates = np.concatenate([found, (first8 * 10 + last)[last <= 9]])
        _, first_seen = np.unique(candidates, return_index=True)
        found = candidates[np.sort(first_seen)]
    return found[:n]


def bsn_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct BSNs: 9 digits, (sum (9-i)*d_i - d_8) mod 11 == 0; no leading zero."""
    return _unique_numbers(rng, n, 10_000_000, 100_000_000, target=0)


def onderwijsnummers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct onderwijsnummers: start with 10, same weighted sum but mod 11 == 5."""
    return _unique_numbers(rng, n, 10_000_000, 11_000_000, target=5)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
POSTCODE_LETTERS = np.array(
    [pair for a in ALPHABET for b in ALPHABET if (pair := a + b) not in FORBIDDEN_POSTCODE_LETTERS]
)


# --------------------------------------------------------------------------- names (Faker nl_NL pools)


def _ascii_slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower())


@dataclass(frozen=True)
class NamePools:
    """Dutch first names and surnames from Faker's nl_NL lists, sampled with numpy."""

    first: np.ndarray
    last: np.ndarray
    last_slug: np.ndarray

    @classmethod
    def dutch(cls) -> "NamePools":
        from faker.providers.person.nl_NL import Provider

        first = sorted({n for n in Provider.first_names_female + Provider.first_names_male if _encodes(n)})
        # Single-word modern surnames; drop medieval patronymics (Jansdr, Aertsz) and nobility.
        last = sorted({
            n for n in Provider.last_names
            if re.fullmatch(r"[A-Z][a-zà-ÿ]+", n) and not n.endswith(("dr", "sz")) and _encodes(n)
        })
        return cls(np.array(first, dtype=object), np.array(last, dtype=object),
                   np.array([_ascii_slug(n) for n in last], dtype=object))

    def garbled_first_names(self) -> list[str]:
        """Names with diacritics as they read when UTF-8 bytes are decoded as Windows-1252 ('Zoë' -> 'ZoÃ«')."""
        garbled = []
        for name in (n for n in self.first if not n.isascii()):
            try:
                text = name.encode("utf-8").decode("cp1252")
            except UnicodeDecodeError:  # a byte Windows-1252 leaves undefined (0x81, 0x8D, ...)
                continue
            if _encodes(text):
                garbled.append(text)
        return garbled


def _encodes(text: str) -> bool:
    """Writable in every encoding a region may choose for its CSV files (Windows-1252, Latin-1)."""
    try:
        text.encode("cp1252"), text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- calendar


def school_weeks(holidays: list[Holiday], first: dt.date, evaluation: dt.date) -> np.ndarray:
    """Mondays of the complete school weeks from ``first`` up to E (docs/alerts.md: holidays skipped)."""
    mondays = pd.date_range(first, evaluation, freq="W-MON").values.astype("datetime64[D]")
    mondays = mondays[mondays + 4 < day(evaluation)]
    in_holiday = np.zeros(len(mondays), dtype=bool)
    for holiday in holidays:
        in_holiday |= (mondays <= day(holiday.end)) & (mondays + 4 >= day(holiday.start))
    return mondays[~in_holiday]


@dataclass(frozen=True)
class SchoolYear:
    """The school year that contains E, and the dates the rules and the world hang on."""

    evaluation: dt.date
    start: dt.date
    weeks: np.ndarray  # school-week Mondays from the previous school year's start up to E

    @classmethod
    def of(cls, region: Region) -> "SchoolYear":
        evaluation = region.evaluation_date()
        month, dom = (int(part) for part in region.calendar.school_year_start.split("-"))
        start = dt.date(evaluation.year, month, dom)
        if start > evaluation:
            start = dt.date(evaluation.year - 1, month, dom)
        return cls(evaluation, start, school_weeks(region.calendar.holidays, _years_before(start, 1), evaluation))

    @property
    def label(self) -> str:
        return f"{self.start.year}-{self.start.year + 1}"

    def on(self, mm_dd: str) -> dt.date:
        """A calendar date (MM-DD) in the calendar year in which the previous school year ended."""
        month, dom = (int(part) for part in mm_dd.split("-"))
        return dt.date(self.start.year, month, dom)

    def months_before(self, months: int) -> np.datetime64:
        return day(pd.Timestamp(self.evaluation) - pd.DateOffset(months=months))


# --------------------------------------------------------------------------- geography and schools


@dataclass(frozen=True)
class Geography:
    """Where pupils live: the region's gemeenten and their PC4 areas, plus neighbours just outside."""

    gemeenten: np.ndarray
    weights: np.ndarray
    pc4: dict[str, np.ndarray]
    neighbours: pd.DataFrame  # pc4, gemeentecode: same PO area, outside the region

    @classmethod
    def of(cls, region: Region, schools: pd.DataFrame, rng: np.random.Generator) -> "Geography":
        codes = np.array(region.gemeente_codes)
        # The regeling's postcode areas on today's municipalities (merged ones placed: schemas.onboarding).
        table = pc4_municipalities()
        inside = table[table.gemeentecode.isin(codes)]
        pc4 = {
            code: inside.loc[inside.gemeentecode == code, "pc4"].to_numpy(dtype=object)
            for code in codes
        }
        for code, areas in pc4.items():  # a municipality the regeling does not know: invent its areas
            if len(areas) == 0:
                pc4[code] = np.array([str(v) for v in rng.integers(1000, 10000, size=8)], dtype=object)
        # PC4 areas outside the region but in the same SWV PO area (PO2203 reaches into Staphorst).
        neighbours = table.loc[table.swv_po.isin(set(inside.swv_po)) & ~table.gemeentecode.isin(codes),
                               ["pc4", "gemeentecode"]]
        # Population proxy: primary-school locations per gemeente (every village has one).
        primary = schools[schools.sector.isin(["BAO", "SBAO"])].gemeentecode.value_counts()
        weights = np.array([primary.get(code, 0) + 1 for code in codes], dtype=float)
        return cls(codes, weights / weights.sum(), pc4, neighbours.reset_index(drop=True))

    def homes(self, rng: np.random.Generator, n: int, *, out_share: float = 0.0,
              gemeenten: np.ndarray | None = None) -> pd.DataFrame:
        """gemeente, pc4 and out_of_region for n people; ``gemeenten`` fixes the gemeente."""
        if gemeenten is None:
            gemeenten = self.gemeenten[rng.choice(len(self.gemeenten), size=n, p=self.weights)]
        gemeente = np.asarray(gemeenten, dtype=object).copy()
        pc4 = np.empty(n, dtype=object)
        for code in pd.unique(gemeente):
            mask = gemeente == code
            pc4[mask] = self.pc4[code][rng.integers(0, len(self.pc4[code]), size=mask.sum())]
        outside = (rng.random(n) < out_share) & (len(self.neighbours) > 0)
        picks = self.neighbours.iloc[rng.integers(0, max(len(self.neighbours), 1), size=outside.sum())]
        gemeente[outside] = picks.gemeentecode.to_numpy()
        pc4[outside] = picks.pc4.to_numpy()
        return pd.DataFrame({"woongemeente_code": gemeente, "pc4": pc4, "out_of_region": outside})


@dataclass(frozen=True)
class Schools:
    """Real DUO school locations of the region (national registry; synthetic codes for a region without schools)."""

    reference: pd.DataFrame  # the whole DUO file
    vo: pd.DataFrame  # brin6, weight, levels
    po: pd.DataFrame  # brin6, gemeentecode, board

    @classmethod
    def of(cls, region: Region, rng: np.random.Generator, gemeenten: Sequence[str] | None = None) -> "Schools":
        """The school locations in ``gemeenten`` (default: the region's municipalities)."""
        reference = pd.read_csv(NATIONAL_SCHOOL_REGISTRY, dtype=str, keep_default_na=False)
        codes = region.gemeente_codes if gemeenten is None else list(gemeenten)
        mine = reference[reference.gemeentecode.isin(codes)].sort_values("vestigingscode")
        vo = mine[mine.sector == "VO"]
        po = mine[mine.sector.isin(["BAO", "SBAO"])]
        if vo.empty or po.empty:
            vo, po = _synthetic_schools(region, rng, set(reference.vestigingscode))
        pupils = pd.to_numeric(vo.leerlingen, errors="coerce")
        vo = pd.DataFrame({
            "brin6": vo.vestigingscode.to_numpy(),
            "weight": pupils.fillna(pupils.median() if pupils.notna().any() else 400).to_numpy(),
            "levels": [frozenset(lv for part in kind.split("/") for lv in OFFERS.get(part, ())) or frozenset(ADVICE)
                       for kind in vo.onderwijstype],
        })
        return cls(reference, vo, _boards(po))

    @property
    def known_brin6(self) -> frozenset[str]:
        return frozenset(self.reference.vestigingscode)

    def vo_for(self, rng: np.random.Generator, levels: np.ndarray) -> np.ndarray:
        """A VO location offering each level, drawn by location size."""
        out = np.empty(len(levels), dtype=object)
        for level in pd.unique(levels):
            offering = self.vo[[level in lv for lv in self.vo.levels]]
            if offering.empty:
                offering = self.vo
            mask = levels == level
            p = offering.weight.to_numpy() / offering.weight.sum()
            out[mask] = offering.brin6.to_numpy()[rng.choice(len(offering), size=mask.sum(), p=p)]
        return out

    def po_for(self, rng: np.random.Generator, gemeenten: np.ndarray) -> np.ndarray:
        """A primary school in the pupil's own gemeente (any region school for those living outside)."""
        out = np.empty(len(gemeenten), dtype=object)
        for code in pd.unique(gemeenten):
            local = self.po[self.po.gemeentecode == code]
            if local.empty:
                local = self.po
            mask = gemeenten == code
            out[mask] = local.brin6.to_numpy()[rng.integers(0, len(local), size=mask.sum())]
        return out

    def board_of(self, po_brin6: np.ndarray) -> np.ndarray:
        return self.po.set_index("brin6").board.reindex(po_brin6).to_numpy()


def _boards(po: pd.DataFrame) -> pd.DataFrame:
    """Group PO locations into 10-15 synthetic school boards; an instelling (BRIN4) stays whole."""
    po = po.sort_values(["gemeentecode", "brin", "vestigingscode"])
    instellingen = po.groupby("brin", sort=False).size()
    n_boards = int(np.clip(round(len(po) / 8), 10, 15))
    board_of_brin = np.minimum((instellingen.cumsum() - instellingen) * n_boards // len(po), n_boards - 1) + 1
    boards = po.brin.map(board_of_brin)
    return pd.DataFrame({
        "brin6": po.vestigingscode.to_numpy(),
        "gemeentecode": po.gemeentecode.to_numpy(),
        "board": [f"{b:02d}" for b in boards],
    })


def _synthetic_schools(region: Region, rng: np.random.Generator, taken: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Well-formed BRIN6 codes for a region the DUO file does not cover: 3 VO and 15 PO per gemeente."""
    codes: list[str] = []
    while len(codes) < 18 * len(region.gemeenten):
        digits, letters = rng.integers(0, 100), rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ"), 2)
        code = f"{digits:02d}{letters[0]}{letters[1]}00"
        if code not in taken and code not in codes:
            codes.append(code)
    rows = [
        {"vestigingscode": code, "brin": code[:4], "gemeentecode": g.code, "sector": "VO" if i < 3 else "BAO",
         "onderwijstype": "VBO/MAVO/HAVO/VWO/PRO" if i < 3 else "basisschool", "leerlingen": ""}
        for k, g in enumerate(region.gemeenten) for i, code in enumerate(codes[18 * k:18 * (k + 1)])
    ]
    table = pd.DataFrame(rows)
    return table[table.sector == "VO"], table[table.sector == "BAO"]


# --------------------------------------------------------------------------- the world

DESIGN_WEEKS = 16  # planted pupils' absence is designed over the last weeks before E
AANMELDWEEK = "03-23"  # first day of the VO aanmeldweek (after the definitive advice, domain.md §2.3)


@dataclass
class World:
    """Clean canonical data of the region, keyed by person id (``pid``).

    ``persons`` holds identity and address fields; ``rows[dataset]`` the other canonical fields of
    each dataset the region delivers, plus ``pid``, ``group`` (school board, school location, or '' for one file),
    ``defect_ok`` (this row may be spoiled) and ``dup_ok`` (this row may be delivered twice).
    ``alerts`` lists the planted pupils with the reasons they must raise.
    """

    year: SchoolYear
    schools: Schools
    names: NamePools
    persons: pd.DataFrame
    rows: dict[str, pd.DataFrame]
    alerts: pd.DataFrame


def build_world(region: Region, *, seed: int, pupils: int, progress: Callable[[str], None],
                school_gemeenten: Sequence[str] | None = None) -> World:
    """The clean world of a region; the same seed, region and size give the same world.

    ``school_gemeenten``: the municipalities whose school locations the pupils attend (default: the
    region's own). Pupils of the other municipalities go to school there, as pupils of villages
    without a school of their own do.
    """
    return _Builder(region, seed, pupils, progress, school_gemeenten).build()


class _Builder:
    """Builds the world cohort by cohort; every draw comes from one seeded generator, in order."""

    def __init__(self, region: Region, seed: int, pupils: int, progress: Callable[[str], None],
                 school_gemeenten: Sequence[str] | None = None):
        self.region, self.pupils, self.say = region, pupils, progress
        self.rng = np.random.default_rng(seed)
        # The VO schools' support records and the aanmeldingen elsewhere draw from their own stream, so
        # adding them left every other generated value as it was.
        self.support_rng = np.random.default_rng([seed, 2])
        # Scheduled hours only for a region whose absence sources deliver them, from a stream of their own:
        # every other region's world stays draw for draw what it was.
        self.timetable_rng = np.random.default_rng([seed, 3]) if any(
            "uren_rooster" in source.columns.values() for source in region.sources_for("vo_absence").values()) else None
        self.year = SchoolYear.of(region)
        self.schools = Schools.of(region, self.rng, school_gemeenten)
        self.geo = Geography.of(region, self.schools.reference, self.rng)
        self.names = NamePools.dutch()
        self.delivered = {source.dataset for source in region.sources.values()}
        self.waitlist_gemeenten = np.array(sorted(
            {s.gemeente for s in region.sources_for("youth_care_waitlist").values() if s.gemeente}
        ), dtype=object)
        # AGB codes of the youth-care providers: 8 digits, a provider-type prefix (domain.md §3).
        prefixes = self.rng.choice(["73", "75", "94", "98"], size=24)
        self.providers = np.array([f"{p}{v:06d}" for p, v in zip(prefixes, self.rng.integers(0, 10**6, 24))], dtype=object)
        self.persons: list[pd.DataFrame] = []
        self.enrolments: list[pd.DataFrame] = []
        self.transfers: list[pd.DataFrame] = []
        self.leavers: list[pd.DataFrame] = []
        self.waitlist: list[pd.DataFrame] = []
        self.designed_absence = [pd.DataFrame({"pid": np.empty(0, np.int64), "week_start": np.empty(0, "datetime64[D]"),
                                               "uren_ongeoorloofd": np.empty(0)})]
        self.alerts = [pd.DataFrame({"pid": np.empty(0, np.int64), "reasons": []})]
        self.taken: set[int] = set()  # background pupils already turned into a planted case
        self.waiting: list[np.ndarray] = []  # planted pupils who wait for youth care
        self.quiet = np.empty(0, dtype=np.int64)  # VO pupils on a waitlist: no unexcused absence
        self.bsn_required: list[np.ndarray] = []  # youth care identifies clients by BSN (domain.md §5.1)
        self.next_pid = 0
        self.rotation = 0

    # -- sizes and helpers

    def size(self, key: str) -> int:
        return round(PER_REGION[key] * self.pupils / REGION_PUPILS)

    def planted(self, scenario: str) -> int:
        count, _, needs = SCENARIOS[scenario]
        if not set(needs) <= self.delivered:
            return 0
        return max(1, round(count * self.pupils / REGION_PUPILS))

    def spread(self, n: int, pool: np.ndarray | None = None) -> np.ndarray:
        """n gemeenten cycling over the region, so planted cases land in every municipality."""
        pool = self.geo.gemeenten if pool is None else pool
        self.rotation += 1
        return np.resize(np.roll(pool, -self.rotation), n)

    def add_persons(self, births: np.ndarray, homes: pd.DataFrame, *, core=False) -> np.ndarray:
        """Register people; ``core`` marks background pupils whose rows may carry defects."""
        n = len(births)
        pids = np.arange(self.next_pid, self.next_pid + n)
        self.next_pid += n
        outside = homes.out_of_region.to_numpy()
        self.persons.append(homes.reset_index(drop=True).assign(
            pid=pids, geboortedatum=births, core=np.asarray(core) & ~outside))
        return pids

    def births_in_year(self, leerjaar: np.ndarray, school_year_start: dt.date, older_share: float = 0.0) -> np.ndarray:
        """Birth dates of pupils in a leerjaar: born 1 Oct - 30 Sep, twelve years before leerjaar 1."""
        years = school_year_start.year - 12 - leerjaar - (self.rng.random(len(leerjaar)) < older_share)
        october = (years - 1970).astype("datetime64[Y]").astype("datetime64[M]") + np.timedelta64(9, "M")
        return october.astype("datetime64[D]") + self.rng.integers(0, 365, size=len(leerjaar)).astype("timedelta64[D]")

    def enrol(self, pids, schools, leerjaar, levels, start, end=None, vrijstelling=None) -> None:
        n = len(pids)
        self.enrolments.append(pd.DataFrame({
            "pid": pids, "vo_brin6": schools, "leerjaar": leerjaar, "onderwijsniveau": levels,
            "inschrijfdatum": np.broadcast_to(np.asarray(start, dtype="datetime64[D]"), n),
            "uitschrijfdatum": np.broadcast_to(np.asarray(NAT if end is None else end, dtype="datetime64[D]"), n),
            "vrijstelling": np.full(n, None, dtype=object) if vrijstelling is None else vrijstelling,
        }))

    def alert(self, pids: np.ndarray, scenario: str) -> None:
        self.alerts.append(pd.DataFrame({"pid": pids, "reasons": [tuple(sorted(SCENARIOS[scenario][1]))] * len(pids)}))

    def pick(self, pool: pd.DataFrame, gemeenten: np.ndarray) -> np.ndarray:
        """Background pupils to turn into planted cases, as many per gemeente as ``gemeenten`` asks."""
        pool = pool[~pool.pid.isin(self.taken)]
        pool = pool.iloc[self.rng.permutation(len(pool))]
        wanted = pd.Series(gemeenten).value_counts()
        rank = pool.groupby("woongemeente_code").cumcount().to_numpy()
        chosen = pool.pid.to_numpy()[rank < pool.woongemeente_code.map(wanted).fillna(0).to_numpy()]
        self.taken.update(chosen.tolist())
        return chosen

    # -- cohorts

    def build(self) -> World:
        self.say(f"world: {len(self.schools.vo)} VO and {len(self.schools.po)} PO locations in "
                 f"{len(self.geo.gemeenten)} gemeenten, evaluation date {self.year.evaluation}")
        active = self.vo_pupils()
        self.absence_cases(active)
        self.youth_care(active)
        self.transfers_without_place()
        self.dropouts()
        self.leavers_of_last_summer()
        persons = self.identities()
        enrolment = self.vo_support(pd.concat(self.enrolments, ignore_index=True))
        self.last_years_transfers(active, enrolment, persons)
        self.say(f"world: {len(active):,} VO pupils, {sum(map(len, self.transfers)):,} PO transfers, "
                 f"{sum(map(len, self.leavers)):,} leavers, {sum(map(len, self.waitlist)):,} waitlist entries")
        absence = self.absence(enrolment)
        self.say(f"world: {len(absence):,} weekly absence records over {len(self.year.weeks)} school weeks")
        alerts = pd.concat(self.alerts, ignore_index=True)
        planted = alerts.pid.to_numpy()
        finish = {
            "po_transfers": lambda: self.transfer_rows(persons),
            "vo_enrolment": lambda: _finish(enrolment, persons, planted, self.sort_key, group="vo_brin6"),
            "vo_absence": lambda: _finish(absence, persons, planted, self.sort_key, group="vo_brin6", ordered=True),
            "youth_care_waitlist": lambda: _finish(pd.concat(self.waitlist, ignore_index=True), persons, planted,
                                                   self.sort_key),
            "mbo_outflow": self.outflow_rows,
        }
        rows = {dataset: rows_of() for dataset, rows_of in finish.items() if dataset in self.delivered}
        return World(self.year, self.schools, self.names, persons, rows, alerts)

    def vo_pupils(self) -> pd.DataFrame:
        """Pupils enrolled on E.

        Leerjaar 1 holds this year's groep-8 transfers (enrolled where they were aangemeld) and a
        few newcomers from PO schools elsewhere; 2% of leerjaar 2-4 changed school this summer and
        still have last year's ended enrolment at their old school.
        """
        rng, start = self.rng, self.year.start
        n_transfers = self.size("transfers") - self.planted("po_geen_vo")
        advice = self.advice(_choice(rng, TRANSFER_ADVICE, n_transfers))
        n_newcomers = round(0.03 * n_transfers)
        n_upper = max(self.pupils - n_transfers - n_newcomers, 0)
        leerjaar = np.concatenate([np.ones(n_transfers + n_newcomers, dtype=int),
                                   _choice(rng, YEAR_SHARES, n_upper).astype(int)])
        n = len(leerjaar)
        levels = np.concatenate([advice.definitief_advies.to_numpy(dtype=object),
                                 _choice(rng, TRANSFER_ADVICE, n_newcomers).astype(object), np.empty(n_upper, dtype=object)])
        for year, mix in LEVELS_BY_YEAR.items():
            mask = leerjaar == year
            levels[mask] = _choice(rng, mix, int(mask.sum()))
        homes = self.geo.homes(rng, n, out_share=0.02)
        births = self.births_in_year(leerjaar, start, older_share=0.08)
        schools = self.schools.vo_for(rng, levels)
        entered = np.array([day(_years_before(start, k)) for k in range(6)])[leerjaar - 1]
        candidates = np.flatnonzero((leerjaar >= 2) & (leerjaar <= 4) & (rng.random(n) < 0.02))
        previous = self.schools.vo_for(rng, levels[candidates])
        moved = previous != schools[candidates]
        switchers, previous = candidates[moved], previous[moved]
        core = np.arange(n) >= n_transfers
        core[switchers] = False
        pids = self.add_persons(births, homes, core=core)
        self.enrol(pids[switchers], previous, leerjaar[switchers] - 1, levels[switchers], entered[switchers],
                   end=day(start) - 1)
        entered[switchers] = day(start)
        self.enrol(pids, schools, leerjaar, levels, entered)
        gemeenten = homes.woongemeente_code.to_numpy()
        aangemeld = rng.random(n_transfers) < 0.97
        self.transfers.append(self.transfer_fields(pids[:n_transfers], advice, gemeenten[:n_transfers],
                                                   self.registered_at(schools[:n_transfers], levels[:n_transfers]),
                                                   aangemeld=aangemeld))
        return pd.DataFrame({"pid": pids, "leerjaar": leerjaar, "woongemeente_code": gemeenten,
                             "core": self.persons[-1].core.to_numpy()})

    def registered_at(self, enrolled: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The school of each transfer's aanmelding: the school that enrolled the pupil, except for about
        3% who registered at one school and enrolled at another (routing follows the enrolment)."""
        rng = self.support_rng
        registered = enrolled.copy()
        changed = np.flatnonzero(rng.random(len(enrolled)) < 0.03)
        registered[changed] = self.schools.vo_for(rng, levels[changed])
        return registered

    def last_years_transfers(self, active: pd.DataFrame, enrolment: pd.DataFrame, persons: pd.DataFrame) -> None:
        """Last school year's groep-8 transfers, still in a PO board's export: a fifth of the background
        pupils now in leerjaar 2 at the school they entered last year. Only the current and the coming
        school year are handed over, so the pipeline must leave these out (docs/handover.md). Their VO
        rows are never spoiled: without its enrolment a transfer reads as PO_GEEN_VO."""
        last_year = SchoolYear(self.year.evaluation, _years_before(self.year.start, 1), self.year.weeks)
        planted = np.concatenate([a.pid.to_numpy() for a in self.alerts])
        running = np.isnat(enrolment.uitschrijfdatum.to_numpy(dtype="datetime64[D]"))
        entered = enrolment[(enrolment.leerjaar == 2) & running
                            & (enrolment.inschrijfdatum.to_numpy(dtype="datetime64[D]") == day(last_year.start))]
        pupils = active[active.core.to_numpy(dtype=bool) & ~member(active.pid, planted)
                        & ~member(active.pid, np.fromiter(self.taken, dtype=np.int64))]
        pupils = pupils.merge(entered[["pid", "vo_brin6", "onderwijsniveau"]], on="pid")
        pupils = pupils[self.support_rng.random(len(pupils)) < 0.2]
        if not len(pupils):
            return
        persons.loc[pupils.pid.to_numpy(), "core"] = False
        levels = pupils.onderwijsniveau.to_numpy(dtype=object)
        advice = self.advice(np.where(np.isin(levels, list(RANK)), levels, "vmbo_gt").astype(object))
        self.transfers.append(self.transfer_fields(pupils.pid.to_numpy(), advice, pupils.woongemeente_code.to_numpy(),
                                                   pupils.vo_brin6.to_numpy(dtype=object),
                                                   aangemeld=np.ones(len(pupils), dtype=bool), year=last_year))

    def vo_support(self, enrolment: pd.DataFrame) -> pd.DataFrame:
        """What each VO school's LAS export says of support: extra support for about 12%, an OPP for a third
        of those, and the consent (of parents, or the pupil of 16+) to pass details on to the MBO."""
        rng, n = self.support_rng, len(enrolment)
        support = rng.random(n) < 0.12
        consent = np.where(support, rng.random(n) < 0.8, None)
        first = rng.integers(0, len(SUPPORT_NEEDS), n)
        mentor = np.array(["mentor", "zorgcoördinator", "intern begeleider"], dtype=object)[rng.integers(0, 3, n)]
        details = np.array(SUPPORT_NEEDS, dtype=object)[first] + ". Afgestemd met " + mentor + "."
        return enrolment.assign(
            ondersteuningsbehoefte=support,
            opp=support & (rng.random(n) < 0.35),
            toestemming_ouders=consent,
            toestemming_datum=np.where(consent == True, np.minimum(  # noqa: E712
                enrolment.inschrijfdatum.to_numpy(dtype="datetime64[D]")
                + rng.integers(10, 60, n).astype("timedelta64[D]"), day(self.year.evaluation) - 1), NAT),
            # Filled in the export even without consent: the pipeline must drop them (domain.md §2.4, §7).
            ondersteuning_details=np.where(support, details, None),
        )

    def advice(self, voorlopig: np.ndarray) -> pd.DataFrame:
        """Toets outcome near the provisional advice; a higher toets often raises the definitive one (§2.3)."""
        rng = self.rng
        rank = np.array([RANK[v] for v in voorlopig], dtype=int)
        target = rank + rng.choice([-1, 0, 0, 1, 2], size=len(rank))
        toets_ranks = np.array([RANK[t] for t in TOETS])
        nearest = np.abs(target[:, None] - toets_ranks[None, :]).argmin(axis=1)
        toets = np.array(TOETS, dtype=object)[nearest]
        raised = (toets_ranks[nearest] > rank) & (rng.random(len(rank)) < 0.6)
        definitief = np.where(raised, toets, voorlopig).astype(object)
        toets[voorlopig == "pro"] = None  # praktijkonderwijs pupils are exempt from the toets
        return pd.DataFrame({"voorlopig_advies": voorlopig.astype(object), "toets_advies": toets,
                             "definitief_advies": definitief})

    def transfer_fields(self, pids, advice: pd.DataFrame, gemeenten, vo_brin6, *, aangemeld,
                        year: SchoolYear | None = None) -> pd.DataFrame:
        """A PO school's export of its groep-8 pupils of ``year`` (default: this school year): advice,
        aanmelding and support (§2.3, §2.4)."""
        year = year or self.year
        rng, n, on = self.rng, len(pids), year.on
        definitief = advice.definitief_advies.to_numpy()
        support = (definitief == "pro") | (rng.random(n) < 0.12)
        opp = (definitief == "pro") | (support & (rng.random(n) < 0.35))
        consent = np.where(support, rng.random(n) < 0.85, None)
        first = rng.integers(0, len(SUPPORT_NEEDS), n)
        second = (first + rng.integers(1, len(SUPPORT_NEEDS), n)) % len(SUPPORT_NEEDS)
        needs = np.array(SUPPORT_NEEDS, dtype=object)
        discussed = pd.Series(_between(rng, on("01-10"), on("03-01"), n)).dt.strftime("%d-%m-%Y").to_numpy(dtype=object)
        details = needs[first] + ". " + needs[second] + ". Besproken met ouders op " + discussed + "."
        po_brin6 = self.schools.po_for(rng, np.asarray(gemeenten, dtype=object))
        is_pro = definitief == "pro"
        fields = pd.DataFrame({
            "pid": pids,
            "group": self.schools.board_of(po_brin6),
            "po_brin6": po_brin6,
            "vo_brin6": np.where(aangemeld, vo_brin6, None),
            "aanmelddatum": np.where(aangemeld, _between(rng, on(AANMELDWEEK), day(on(AANMELDWEEK)) + 4, n), NAT),
            "schooljaar": year.label,
            **{field: advice[field].to_numpy() for field in advice},
            "ondersteuningsbehoefte": support,
            "opp": opp,
            "opp_instemming_datum": np.where(opp & (rng.random(n) < 0.9),
                                             _between(rng, on("10-01") - dt.timedelta(365), on("03-01"), n), NAT),
            "arrangement": np.where(support & (rng.random(n) < 0.25),
                                    rng.choice(np.array(ARRANGEMENTS, dtype=object), n), None),
            "tlv_soort": np.where(is_pro, "pro", None),
            "tlv_datum": np.where(is_pro, _between(rng, on("02-01"), day(on(self.region.calendar.tlv_deadline)) - 7, n), NAT),
            "cluster": np.where(support & (rng.random(n) < 0.03), rng.choice(np.array(["1", "2"], dtype=object), n), None),
            "toestemming_ouders": consent,
            "toestemming_datum": np.where(consent == True, _between(rng, on("01-10"), on("03-01"), n), NAT),  # noqa: E712
            # Filled in the export even without consent: the pipeline must drop them (domain.md §2.4, §7).
            "ondersteuning_details": np.where(support, details, None),
            "jeugdhulp_betrokken": np.where(support, rng.random(n) < 0.3, None),
        })
        # The same instemming as yes/no, for a partner that delivers it so (docs/configuration.md).
        return fields.assign(opp_instemming=np.where(opp, fields.opp_instemming_datum.notna(), None))

    def lrv_run_lengths(self) -> dict[str, np.ndarray]:
        """Run lengths (> 4 school weeks) that start clearly after / clearly before E minus 3 months.

        Runs that cross a holiday come first, so the first LRV+T3M case spans one.
        """
        weeks = self.year.weeks
        runs = np.arange(5, min(DESIGN_WEEKS, len(weeks) + 1))
        first = weeks[len(weeks) - runs]
        crosses = (weeks[-1] - first).astype(np.int64) > 7 * (runs - 1)
        runs = np.concatenate([runs[crosses], runs[~crosses]])
        first = weeks[len(weeks) - runs]
        cutoff, margin = self.year.months_before(T3M_MONTHS), np.timedelta64(7, "D")
        return {"lrv": runs[first > cutoff + margin], "lrv_t3m": runs[first < cutoff - margin]}

    def absence_cases(self, active: pd.DataFrame) -> None:
        """LRV, LRV+T3M, V16 and absent-while-waiting pupils: designed weeks up to E (docs/alerts.md)."""
        weeks = self.year.weeks
        if len(weeks) < 4:
            return
        pool = active[active.core & (active.leerjaar >= 2) & (active.leerjaar <= 4)]
        lengths = self.lrv_run_lengths()
        for scenario in ("lrv", "lrv_t3m", "v16", "jz_wacht", "jz_wacht_v16"):
            waits = scenario.startswith("jz")
            n = self.planted(scenario) if len(lengths.get(scenario, [None])) else 0
            gemeenten = self.waitlist_gemeenten if waits else self.geo.gemeenten
            pids = self.pick(pool[pool.woongemeente_code.isin(gemeenten)], self.spread(n, gemeenten))
            hours = [self.designed_hours(scenario, case, lengths) for case in range(len(pids))]
            self.designed_absence.append(pd.DataFrame({
                "pid": np.repeat(pids, [len(h) for h in hours]).astype(np.int64),
                "week_start": np.concatenate([weeks[len(weeks) - len(h):] for h in hours] or [weeks[:0]]),
                "uren_ongeoorloofd": np.concatenate(hours or [np.empty(0)]).astype(float),
            }))
            if waits:
                self.waiting.append(pids)
                self.bsn_required.append(pids)
            self.alert(pids, scenario)

    def designed_hours(self, scenario: str, case: int, lengths: dict[str, np.ndarray]) -> np.ndarray:
        """Unexcused hours in the last school weeks before E, oldest week first."""
        rng = self.rng
        if scenario in lengths:  # a run of weeks of at least 20 h; the week before it has none
            return rng.integers(LRV_WEEK_HOURS, 31, size=int(lengths[scenario][case % len(lengths[scenario])]))
        if scenario == "jz_wacht":
            return rng.permutation(np.array(WAITING_WEEK_HOURS) + [0, 0, *rng.integers(0, 2, size=2)])
        return rng.integers(V16_WEEK_HOURS[0], V16_WEEK_HOURS[1] + 1, size=4)

    def youth_care(self, active: pd.DataFrame) -> None:
        """Waitlist entries (open, in care, ended) in the gemeenten that deliver a waitlist.

        About 40% are VO pupils (they get no unexcused absence, so a long wait raises nothing), the
        rest children who are not in VO. The planted waiting pupils get a long open entry.
        """
        rng, E = self.rng, day(self.year.evaluation)
        if not len(self.waitlist_gemeenten):  # the region delivers no waitlist
            return
        status = np.repeat(np.array(["open", "started", "ended"]),
                           [self.size("waitlist_open"), self.size("waitlist_started"), self.size("waitlist_ended")])
        n = len(status)
        pool = active[active.core & active.woongemeente_code.isin(self.waitlist_gemeenten) & ~active.pid.isin(self.taken)]
        n_pupils = min(round(0.4 * n), len(pool))
        self.quiet = pool.pid.to_numpy()[rng.choice(len(pool), size=n_pupils, replace=False)]
        weights = pd.Series(self.geo.weights, index=self.geo.gemeenten)[self.waitlist_gemeenten].to_numpy()
        gemeenten = self.waitlist_gemeenten[rng.choice(len(self.waitlist_gemeenten), size=n - n_pupils,
                                                       p=weights / weights.sum())]
        evaluation = self.year.evaluation
        births = _between(rng, day(_years_before(evaluation, 17)), day(_years_before(evaluation, 4)), n - n_pupils)
        youth = self.add_persons(births, self.geo.homes(rng, n - n_pupils, gemeenten=gemeenten), core=True)
        pids = rng.permutation(np.concatenate([self.quiet, youth]))
        self.bsn_required.append(pids)

        def days(low: int, high: int) -> np.ndarray:
            return rng.integers(low, high, n).astype("timedelta64[D]")

        is_open, ended = status == "open", status == "ended"
        end = np.where(ended, E - days(1, 200), NAT)
        start = np.where(is_open, NAT, np.where(ended, end - days(30, 300), E - days(7, 300)))
        intake = start - days(14, 70)
        besluit = intake - days(7, 35)
        aanmeld = np.where(is_open, E - days(3, 40 * 7), besluit - days(14, 42))
        decided = aanmeld + days(14, 56)
        seen = decided + days(7, 35)
        besluit = np.where(is_open, np.where((decided <= E) & (rng.random(n) < 0.7), decided, NAT), besluit)
        intake = np.where(is_open, np.where((seen <= E) & ~np.isnat(besluit) & (rng.random(n) < 0.4), seen, NAT), intake)
        self.waitlist.append(self.care_fields(pids, aanmeld, besluit, intake, start, end, PRODUCTCATEGORIE))
        for pids in self.waiting:  # JZ_WACHT_VERZUIM: open and waiting longer than 14 weeks (§5.3)
            m = len(pids)
            aanmeld = E - rng.integers(JZ_WAIT_DAYS + 10, 40 * 7, m).astype("timedelta64[D]")
            besluit = np.where(rng.random(m) < 0.5, aanmeld + np.timedelta64(21, "D"), NAT)
            self.waitlist.append(self.care_fields(pids, aanmeld, besluit, np.full(m, NAT), np.full(m, NAT), np.full(m, NAT),
                                                  {"45": .6, "54": .4}).assign(planted=True))

    def care_fields(self, pids, aanmeld, besluit, intake, start, end, categories: dict) -> pd.DataFrame:
        rng, n = self.rng, len(pids)
        return pd.DataFrame({
            "pid": pids,
            "verwijzer": _choice(rng, VERWIJZER, n),
            "productcategorie": _choice(rng, categories, n),
            "zorgaanbieder_agb": self.providers[np.minimum(rng.zipf(1.6, n) - 1, len(self.providers) - 1)],
            "aanmelddatum": aanmeld, "besluitdatum": besluit, "intakedatum": intake,
            "startdatum": start, "einddatum": end,
            "reden_beeindiging": np.where(np.isnat(end), None, _choice(rng, REDEN_BEEINDIGING, n)),
            "planted": False,
        })

    def transfers_without_place(self) -> None:
        """PO_GEEN_VO: groep-8 pupils of this school year who are not enrolled in VO on E."""
        n = self.planted("po_geen_vo")
        if not n:
            return
        rng = self.rng
        homes = self.geo.homes(rng, n, gemeenten=self.spread(n))
        pids = self.add_persons(self.births_in_year(np.ones(n, dtype=int), self.year.start), homes)
        advice = self.advice(_choice(rng, TRANSFER_ADVICE, n))
        school = self.schools.vo_for(rng, advice.definitief_advies.to_numpy())
        aangemeld = np.arange(n) % 2 == 0  # half were aangemeld somewhere, half never were
        fields = self.transfer_fields(pids, advice, homes.woongemeente_code.to_numpy(), school, aangemeld=aangemeld)
        self.transfers.append(fields.assign(planted=True))
        self.alert(pids, "po_geen_vo")

    def dropouts(self) -> None:
        """ABS (and T3M) pupils who left school without a new one; background pupils left with a vrijstelling."""
        rng, E = self.rng, day(self.year.evaluation)
        cutoff = self.year.months_before(T3M_MONTHS)
        for scenario, left in (
            ("abs", np.maximum(E - rng.integers(14, 60, self.planted("abs")).astype("timedelta64[D]"), cutoff + 7)),
            ("abs_t3m", cutoff - rng.integers(14, 200, self.planted("abs_t3m")).astype("timedelta64[D]")),
        ):
            if len(left):
                self.alert(self.left_school(left, self.spread(len(left))), scenario)
        n = round(0.0015 * self.pupils)  # exempted pupils are not absoluut verzuim (§4.4)
        left = _between(rng, day(self.year.start) - 200, E - 1, n)
        self.left_school(left, None, vrijstelling=_choice(rng, {"5a": .7, "5b": .1, "5c": .2}, n))

    def left_school(self, left: np.ndarray, gemeenten, *, vrijstelling=None) -> np.ndarray:
        """Leerplichtige pupils (leerjaar 2-3) whose only enrolment ended on ``left``."""
        rng, start = self.rng, self.year.start
        n = len(left)
        leerjaar = rng.integers(2, 4, n)
        levels = _choice(rng, LEVELS_BY_YEAR[3], n).astype(object)
        levels[levels == "pro"] = "vmbo_b"
        pids = self.add_persons(self.births_in_year(leerjaar, start), self.geo.homes(rng, n, gemeenten=gemeenten))
        year_left = np.where(left >= day(start), start.year, start.year - 1)
        entered = np.array([day(dt.date(int(y - k + 1), start.month, start.day)) for y, k in zip(year_left, leerjaar)],
                           dtype="datetime64[D]")
        self.enrol(pids, self.schools.vo_for(rng, levels), leerjaar, levels, entered, end=left, vrijstelling=vrijstelling)
        return pids

    def leavers_of_last_summer(self) -> None:
        """VO leavers of last summer in the VVA outflow (domain.md §6), background and planted.

        Background leavers without startkwalificatie applied before 1 April and are enrolled;
        planted ones did not apply in time, are not enrolled, or are 18+ (Doorstroompunt). A region
        without a VVA feed gets no leavers: their ended enrolments would all read as absoluut verzuim.
        """
        rng = self.rng
        if "mbo_outflow" not in self.delivered:
            return
        n = self.size("leavers")
        levels = _choice(rng, LEAVER_LEVELS, n).astype(object)
        havo_vwo = np.isin(levels, STARTKWALIFICATIE_LEVELS)
        diploma = havo_vwo | ((levels != "pro") & (rng.random(n) < 0.93))
        births = self.births_in_year(np.array([FINAL_YEAR[lv] for lv in levels], dtype=int),
                                     _years_before(self.year.start, 1), older_share=0.1)
        applied = ~havo_vwo | (rng.random(n) < 0.75)
        status = np.where(havo_vwo, _choice(rng, {"ingeschreven": .7, "onderwijsovereenkomst_aangeboden": .1,
                                                  "ingetrokken": .1, "niet_tot_inschrijving": .1}, n), "ingeschreven")
        homes = self.geo.homes(rng, n, out_share=0.02)
        # Without its VVA record a leaver under 18 looks like absoluut verzuim (the pipeline cannot
        # see a startkwalificatie then), so only records of leavers who are 18 on E may be spoiled.
        adult = births < day(_years_before(self.year.evaluation, 18)) - 7
        self.leave(levels, diploma, births, homes, applied=applied, late=np.zeros(n, bool), status=status,
                   spoilable=adult & ~homes.out_of_region.to_numpy())

        # Birth windows with two weeks' margin: 16 before this school year and under 18 on E; or 18-20 on E.
        kwalificatieplichtig = (day(_years_before(self.year.evaluation, 18)) + 14,
                                day(_years_before(self.year.start, 16)) - 14)
        adult = (day(_years_before(self.year.evaluation, 21)) + 30, day(_years_before(self.year.evaluation, 18)) - 30)
        not_enrolled = np.array(VVA_NOT_ENROLLED, dtype=object)
        for scenario, ages in (("mbo_geen_aanmelding", kwalificatieplichtig), ("mbo_niet_ingeschreven", kwalificatieplichtig),
                               ("doorstroompunt", adult)):
            m = self.planted(scenario)
            if not m:
                continue
            variant = np.arange(m) % 3
            levels = np.array(["vmbo_b", "vmbo_k", "vmbo_gt"], dtype=object)[rng.integers(0, 3, m)]
            if scenario == "doorstroompunt":
                levels[variant == 2] = "pro"
            if scenario == "mbo_geen_aanmelding":  # no application; late and enrolled; late and pending
                applied, late = variant > 0, variant > 0
                status = np.where(variant == 1, "ingeschreven", "aanmelding_ontvangen")
            elif scenario == "mbo_niet_ingeschreven":  # applied in time, not enrolled by 1 October
                applied, late, status = np.ones(m, bool), np.zeros(m, bool), np.resize(not_enrolled, m)
            else:  # 18+ without startkwalificatie: never applied, or not enrolled
                applied, late, status = variant > 0, np.zeros(m, bool), np.resize(not_enrolled, m)
            diploma = (levels != "pro") & (rng.random(m) < 0.7)
            homes = self.geo.homes(rng, m, gemeenten=self.spread(m))
            pids = self.leave(levels, diploma, _between(rng, *ages, m), homes, applied=applied, late=late, status=status,
                              spoilable=np.zeros(m, bool))
            self.alert(pids, scenario)

    def leave(self, levels, diploma, births, homes, *, applied, late, status, spoilable) -> np.ndarray:
        """Leavers of last summer: an ended enrolment at their school and a VVA record."""
        rng, E, start = self.rng, day(self.year.evaluation), self.year.start
        n = len(levels)
        deadline = day(self.year.on(self.region.calendar.mbo_application_deadline))
        pids = self.add_persons(births, homes)
        final = np.array([FINAL_YEAR[lv] for lv in levels], dtype=int)
        school = self.schools.vo_for(rng, levels)
        entered = np.array([day(_years_before(start, k)) for k in range(7)])[final]
        self.enrol(pids, school, final, levels, entered, end=day(start) - 1)
        aanmeld = np.where(late, deadline + rng.integers(14, 75, n).astype("timedelta64[D]"),
                           _between(rng, deadline - 75, deadline - 3, n))
        niveau = np.zeros(n, dtype=int)
        for level, mix in MBO_LEVEL.items():
            mask = levels == level
            niveau[mask] = _choice(rng, mix, int(mask.sum()))
        niveau = np.where(diploma | (levels == "pro"), niveau, np.minimum(niveau, 2))  # no diploma: entree or level 2
        self.leavers.append(pd.DataFrame({
            "pid": pids, "vo_brin6": school, "vo_niveau": levels, "vo_diploma": diploma.astype(bool),
            "uitstroomdatum": np.full(n, day(start) - 1),
            "mbo_brin": np.where(applied, _choice(rng, MBO_INSTITUTIONS, n), None),
            "crebo": np.where(applied, self.crebo_for(niveau), None),
            "mbo_niveau": np.where(applied, niveau, None),
            "aanmelddatum": np.where(applied, aanmeld, NAT),
            "vva_status": np.where(applied, status, None),
            "status_datum": np.where(applied, _between(rng, np.minimum(aanmeld + 30, E - 1), E - 1, n), NAT),
            "spoilable": spoilable, "applied": applied,
        }))
        return pids

    def crebo_for(self, niveau: np.ndarray) -> np.ndarray:
        """A real crebo (2015 qualification list) of the given MBO level."""
        table = pd.read_csv(REFERENCE / "mbo_kwalificaties_crebo_2015.csv", dtype=str, keep_default_na=False)
        table = table[table.crebo.str.fullmatch(r"\d{5}")]
        out = np.empty(len(niveau), dtype=object)
        for level in pd.unique(niveau):
            codes = table.loc[table.niveau == str(level), "crebo"].to_numpy(dtype=object)
            mask = niveau == level
            out[mask] = codes[self.rng.integers(0, len(codes), int(mask.sum()))]
        return out

    # -- identity and absence

    def identities(self) -> pd.DataFrame:
        """BSN for almost everyone, an onderwijsnummer for ~2% of pupils; names and postcodes."""
        rng, names = self.rng, self.names
        persons = pd.concat(self.persons, ignore_index=True).sort_values("pid", ignore_index=True)
        n = len(persons)
        needs_bsn = member(persons.pid, np.concatenate(self.bsn_required)) if self.bsn_required else np.zeros(n, bool)
        has_onderwijsnummer = ~needs_bsn & (rng.random(n) < 0.02)
        bsn = bsn_numbers(rng, n).astype(str).astype(object)
        bsn[has_onderwijsnummer] = None
        onderwijsnummer = np.full(n, None, dtype=object)
        onderwijsnummer[has_onderwijsnummer] = onderwijsnummers(rng, int(has_onderwijsnummer.sum())).astype(str)
        tussenvoegsel = _choice(rng, TUSSENVOEGSELS, n).astype(object)
        last = rng.integers(0, len(names.last), n)
        letters = POSTCODE_LETTERS.astype(object)[rng.integers(0, len(POSTCODE_LETTERS), n)]
        persons = persons.assign(
            bsn=pd.array(bsn, dtype="str"),
            onderwijsnummer=pd.array(onderwijsnummer, dtype="str"),
            voornaam=pd.array(names.first[rng.integers(0, len(names.first), n)], dtype="str"),
            tussenvoegsel=pd.array(np.where(tussenvoegsel == "", None, tussenvoegsel), dtype="str"),
            achternaam=pd.array(names.last[last], dtype="str"),
            mail_name=pd.Series(tussenvoegsel).map({t: _ascii_slug(t) for t in TUSSENVOEGSELS}).to_numpy(dtype=object)
            + names.last_slug[last],
            postcode=pd.array(persons.pc4.to_numpy(dtype=object) + letters, dtype="str"),
            woongemeente_code=pd.array(persons.woongemeente_code.to_numpy(dtype=object), dtype="str"),
            geboortedatum=persons.geboortedatum.astype("datetime64[s]"),
        )
        self.sort_key = rng.permutation(n)  # files list pupils in no telling order
        return persons.set_index("pid", drop=False)

    def absence(self, enrolment: pd.DataFrame) -> pd.DataFrame:
        """Weekly absence, only weeks with absence > 0, while each enrolment runs (domain.md §4.3).

        Each enrolment has an absence propensity; unexcused hours are 1-3 a week, so no background
        pupil reaches 16 hours in 4 weeks, and pupils on a waitlist have excused absence only.
        Planted pupils get their designed weeks instead of background ones at the end.
        """
        rng, weeks = self.rng, self.year.weeks
        begins = enrolment.inschrijfdatum.to_numpy().astype("datetime64[D]")
        ends = enrolment.uitschrijfdatum.to_numpy().astype("datetime64[D]")
        first = np.searchsorted(weeks, begins)
        span = np.maximum(np.where(np.isnat(ends), len(weeks), np.searchsorted(weeks, ends, side="right")) - first, 0)
        count = rng.binomial(span, rng.choice([0.03, 0.12, 0.3], p=[.7, .25, .05], size=len(enrolment)))
        row = np.repeat(np.arange(len(enrolment)), count)
        week = first[row] + np.floor(rng.random(len(row)) * span[row]).astype(np.int64)
        seen = np.zeros(len(enrolment) * len(weeks), dtype=bool)  # one record per enrolment-week
        seen[row.astype(np.int64) * len(weeks) + week] = True
        row, week = np.divmod(np.flatnonzero(seen), len(weeks))
        pid = enrolment.pid.to_numpy()[row]
        designed = pd.concat(self.designed_absence, ignore_index=True)
        keep = ~(member(pid, designed.pid) & (week >= len(weeks) - DESIGN_WEEKS))
        row, week, pid = row[keep], week[keep], pid[keep]
        n = len(row)
        kind = rng.random(n)
        unexcused = np.where(kind < 0.4, rng.choice(BACKGROUND_UNEXCUSED, size=n), 0)
        excused = np.where(kind >= 0.3, rng.choice([1, 2, 3, 4, 6, 12, 18, 24, 30], size=n), 0)
        quiet = member(pid, self.quiet)
        excused = np.where(quiet & (excused == 0), unexcused, excused)
        unexcused = np.where(quiet, 0, unexcused)
        running = pd.Series(enrolment.vo_brin6.to_numpy()[np.isnat(ends)], index=enrolment.pid.to_numpy()[np.isnat(ends)])
        frame = pd.concat([
            pd.DataFrame({"pid": pid, "vo_brin6": enrolment.vo_brin6.to_numpy()[row], "week_start": weeks[week],
                          "uren_ongeoorloofd": unexcused.astype(float), "uren_geoorloofd": excused.astype(float)}),
            designed.assign(vo_brin6=running.reindex(designed.pid).to_numpy(), uren_geoorloofd=0.0),
        ], ignore_index=True)
        if self.timetable_rng is not None:
            frame["uren_rooster"] = self.scheduled_hours(frame)
        school_code = pd.factorize(frame.vo_brin6, sort=True)[0]
        order = np.lexsort((frame.week_start.to_numpy(), self.sort_key[frame.pid.to_numpy()], school_code))
        return frame.iloc[order].reset_index(drop=True)

    def scheduled_hours(self, absence: pd.DataFrame) -> np.ndarray:
        """Each week's scheduled lesson hours: a timetable of 28-32 hours, at least the week's absence.

        A planted LRV week (``LRV_WEEK_HOURS`` or more unexcused) is a week with every scheduled lesson
        missed, so its timetable is exactly its unexcused hours (docs/alerts.md, LRV).
        """
        unexcused, excused = absence.uren_ongeoorloofd.to_numpy(), absence.uren_geoorloofd.to_numpy()
        timetable = self.timetable_rng.choice([28.0, 30.0, 32.0], size=len(absence))
        return np.where(unexcused >= LRV_WEEK_HOURS, unexcused, np.maximum(timetable, unexcused + excused))

    # -- rows per dataset

    def transfer_rows(self, persons: pd.DataFrame) -> pd.DataFrame:
        """PO rows with parent contact; pupils without consent and planted ones are never spoiled."""
        rows = pd.concat(self.transfers, ignore_index=True)
        rng, n = self.rng, len(rows)
        planted = rows.pop("planted").fillna(False).to_numpy(dtype=bool) if "planted" in rows else np.zeros(n, bool)
        no_consent = (rows.toestemming_ouders == False).to_numpy(dtype=bool)  # noqa: E712
        inside = ~persons.out_of_region.reindex(rows.pid).to_numpy(dtype=bool)
        rows["defect_ok"] = ~planted & ~no_consent & inside
        # A duplicate must not duplicate a handover: only last year's rows, which are not handed over, are doubled.
        rows["dup_ok"] = rows.defect_ok & (rows.schooljaar != self.year.label).to_numpy()
        initial = np.array(list("abcdefghijklmnopqrstuvwxyz"), dtype=object)[rng.integers(0, 26, n)]
        domain = np.array(MAIL_DOMAINS, dtype=object)[rng.integers(0, len(MAIL_DOMAINS), n)]
        rows["ouder_email"] = initial + "." + persons.mail_name.reindex(rows.pid).to_numpy(dtype=object) + "@" + domain
        rows["ouder_telefoon"] = [f"06-{v}" for v in rng.integers(10_000_000, 100_000_000, n)]
        rows = rows.iloc[np.lexsort((self.sort_key[rows.pid.to_numpy()], rows.group.to_numpy(dtype=str)))]
        return _typed(rows.reset_index(drop=True))

    def outflow_rows(self) -> pd.DataFrame:
        """VVA rows; only those of background leavers aged 18 or more may be spoiled."""
        rows = pd.concat(self.leavers, ignore_index=True)
        spoilable, applied = rows.pop("spoilable").to_numpy(dtype=bool), rows.pop("applied").to_numpy(dtype=bool)
        rows = rows.assign(group="", defect_ok=spoilable, dup_ok=spoilable & ~applied)
        rows = rows.iloc[np.argsort(self.sort_key[rows.pid.to_numpy()], kind="stable")]
        return _typed(rows.reset_index(drop=True))


def _finish(rows: pd.DataFrame, persons: pd.DataFrame, planted: np.ndarray, sort_key: np.ndarray, *,
            group: str | None = None, ordered: bool = False) -> pd.DataFrame:
    """Typed rows in file order; only rows of background (core) persons may be spoiled."""
    spoilable = persons.core.to_numpy(dtype=bool)[rows.pid.to_numpy()] & ~member(rows.pid, planted)
    if "planted" in rows:
        spoilable &= ~rows.pop("planted").to_numpy(dtype=bool)
    rows = rows.assign(group=rows[group].astype(str) if group else "", defect_ok=spoilable, dup_ok=spoilable)
    if not ordered:
        rows = rows.iloc[np.lexsort((sort_key[rows.pid.to_numpy()], pd.factorize(rows.group, sort=True)[0]))]
    return _typed(rows.reset_index(drop=True))


BOOLEAN_FIELDS = ("ondersteuningsbehoefte", "opp", "opp_instemming", "toestemming_ouders", "jeugdhulp_betrokken",
                  "vo_diploma")


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes: dates datetime64, flags boolean, counts Int64, hours float, text str."""
    out = {}
    for name, values in rows.items():
        if name in ("pid", "defect_ok", "dup_ok") or name.startswith("uren"):
            out[name] = values
        elif name.endswith("datum") or name == "week_start":
            out[name] = pd.Series(values.to_numpy().astype("datetime64[D]")).astype("datetime64[s]")
        elif name in BOOLEAN_FIELDS:
            out[name] = pd.array(values.to_numpy(dtype=object), dtype="boolean")
        elif name in ("leerjaar", "mbo_niveau"):
            out[name] = pd.array(values.to_numpy(dtype=object), dtype="Int64")
        else:
            out[name] = pd.array(values.to_numpy(dtype=object), dtype="str")
    return pd.DataFrame(out)
