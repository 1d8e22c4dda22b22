"""The benchmark: the nightly pipeline against a hand-written pandas/pyarrow reference, at three scales.

``python -m bench`` (``make bench``) generates the demo region at each scale, runs the whole night
and the reference (``bench.reference``) on the same deliveries, each in its own child process
(``python -m bench.measure``); then the same pupils over several numbers of municipalities
(``bench.regions``, ``bench.municipalities``) and the night as production launches it
(``bench.production``). It writes ``bench/results.md``, ``results.json`` and ``results.png``.
``bench/README.md`` says what is measured and how.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored working folders

SCALES = {9_000: "region", 150_000: "province", 1_000_000: "national"}
DEFAULT_SCALES = tuple(SCALES)
SEED = 2203

# Stages of a night. The pipeline's steps are grouped by their asset group; every group not named
# here (handovers, alerts, exports, retention) is an output.
STAGES = ("ingest", "validate", "link", "outputs")
STAGE_OF_GROUP = {"bronnen": "ingest", "validatie": "validate", "koppeling": "link"}
OVERHEAD = "startup"  # process start, imports, loading the definitions
ORCHESTRATION = "other"  # what lies between the steps: run launch, resource set-up, event log writes


def scale_name(pupils: int) -> str:
    return SCALES.get(pupils, f"{pupils:,} pupils")
