"""``make ui`` runs the scheduled night with the demo's secrets, as ``make demo`` does: without an
export key a municipality's export fails, without the alert salt the signal lists do (connectors/secrets.py)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from connectors.secrets import ALERT_SALT_ENV, export_key_variable
from settings.region import load_region
from tests.conftest import DEMO_REGION, PROJECT


def _demo_env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWV_")}
    clean |= {"SWV_VAR_DIR": str(tmp_path), "SWV_REGION_FILE": str(DEMO_REGION)}
    printed = subprocess.run([sys.executable, "-m", "demo", "env"], cwd=PROJECT, env=clean, check=True,
                             capture_output=True, text=True).stdout
    exported = {}
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exported[name] = shlex.split(value)[0] if value else ""
    return exported


def test_the_demo_environment_holds_every_secret_the_night_needs(tmp_path):
    exported = _demo_env(tmp_path)
    region = load_region(DEMO_REGION)
    needed = {export_key_variable(code) for code in region.gemeente_codes} | {ALERT_SALT_ENV}
    needed |= {s.location.auth.token_env for s in region.sources.values() if getattr(s.location, "auth", None)}
    assert needed <= set(exported), sorted(needed - set(exported))
    assert all(exported[name] for name in needed)


def test_make_ui_starts_dagster_with_the_demo_environment():
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^ui:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert recipe.index("python -m demo env") < recipe.index("dagster dev")
