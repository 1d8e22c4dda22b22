"""``swv night`` on the demo region writes the same outbox as ``make demo`` (``python -m demo run``).

Two runtime folders get the same deliveries (same seed and size): one night runs through
``python -m demo run``, the other through ``swv night`` against the same partner APIs on the same
port. Every output file must be the same, byte for byte; only the moment a manifest was written
(``generated_at``) may differ. The board's report (``monitor/``) is left out: ``make demo`` renders
it once more after the night with a backfilled trend of the school year (docs/monitor.md), which a
real night has from the nights that ran before it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PUPILS = 600
SEED = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_moment(node):
    if isinstance(node, dict):
        return {key: _without_moment(value) for key, value in node.items() if key != "generated_at"}
    if isinstance(node, list):
        return [_without_moment(value) for value in node]
    return node


def _outbox(var: Path) -> dict[str, object]:
    files = {}
    outbox = var / "outbox"
    for path in sorted(p for p in outbox.rglob("*") if p.is_file() and p.relative_to(outbox).parts[0] != "monitor"):
        content = path.read_bytes()
        files[path.relative_to(outbox).as_posix()] = (
            _without_moment(json.loads(content)) if path.name == "manifest.json" else content)
    return files


@pytest.fixture(scope="module")
def outboxes(tmp_path_factory):
    from demo.__main__ import DEMO_FAULTS
    from demo.__main__ import main as demo_main
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from pipelines import cli
    from settings.region import load_region
    from tests.conftest import DEMO_REGION

    demo_var, swv_var = tmp_path_factory.mktemp("make_demo"), tmp_path_factory.mktemp("swv_night")
    port = _free_port()
    saved = dict(os.environ)
    try:
        for name in ("SWV_WAREHOUSE_URL", "SWV_REGION_FILE", "SWV_DEMO_API"):
            os.environ.pop(name, None)
        os.environ.update(SWV_VAR_DIR=str(demo_var), DAGSTER_HOME=str(demo_var / "dagster"))
        with contextlib.redirect_stdout(io.StringIO()):
            assert demo_main(["run", "--pupils", str(PUPILS), "--seed", str(SEED), "--port", str(port)]) == 0

        # The operator's way: the same deliveries, the partner APIs up, `swv night` on a fresh folder.
        os.environ["SWV_VAR_DIR"] = str(swv_var)
        os.environ.pop("DAGSTER_HOME")
        region = load_region(DEMO_REGION)
        generate_region(region, swv_var / "sources", swv_var / "demo" / "truth.json", seed=SEED, pupils=PUPILS)
        out = io.StringIO()
        with DemoApiServer(region, swv_var / "sources" / "api", port=port, faults=DEMO_FAULTS), \
                contextlib.redirect_stdout(out):
            code = cli.main(["night"])
        assert code == 0, out.getvalue()
        yield _outbox(demo_var), _outbox(swv_var)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_swv_night_writes_the_same_files_as_make_demo(outboxes):
    demo, swv = outboxes
    assert len(demo) > 50
    assert sorted(swv) == sorted(demo)


def test_every_output_file_has_the_same_content(outboxes):
    demo, swv = outboxes
    different = [name for name in demo if swv.get(name) != demo[name]]
    assert not different, different[:5]
