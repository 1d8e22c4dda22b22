"""One place for runtime state.

Everything the pipeline writes lives under one folder, ``var/`` in the project by default, or the
folder named by ``SWV_VAR_DIR``. Read at call time, never at import time, so tests can point it at
``tmp_path``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGION_FILE = PROJECT_ROOT / "regions" / "vo2203.yaml"


@dataclass(frozen=True)
class VarLayout:
    """The folders under the runtime-state root (see README, 'Where outputs land')."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def tmp(self) -> Path:
        """Temporary files of atomic writes; a restart cleans what a killed writer left."""
        return self.root / "tmp"

    @property
    def warehouse_url(self) -> str:
        return f"sqlite:///{self.root / 'warehouse.sqlite'}"


def var_layout() -> VarLayout:
    return VarLayout(Path(os.environ.get("SWV_VAR_DIR", PROJECT_ROOT / "var")).resolve())


def region_file() -> Path:
    return Path(os.environ.get("SWV_REGION_FILE", DEFAULT_REGION_FILE))
