"""The layers import one way, and nothing outside the tests leans on Dagster's private modules.

Data flows connectors → schemas → assets → pipelines (README, "Layout"): ``connectors`` knows bytes,
not the pipeline; ``schemas`` depends on neither connectors nor assets; ``settings`` (the region
file, the dataset registry, the shared constants) is the bottom layer and imports none of ours, so
settings and schemas never import each other in a cycle; ``assets`` never imports ``pipelines``;
only ``demo``, ``bench`` and ``tests`` may import ``demo``. ``dagster._*`` is Dagster's private
code: any release may change it without notice, so only tests may touch it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipelines", "assets", "schemas", "connectors", "settings", "demo", "bench")
MAY_NOT_IMPORT = {
    "connectors": {"assets", "pipelines", "schemas", "demo", "bench"},
    "schemas": {"assets", "pipelines", "connectors", "demo", "bench"},
    "settings": {"assets", "pipelines", "connectors", "schemas", "demo", "bench"},
    "assets": {"pipelines", "demo", "bench"},
    "pipelines": {"demo", "bench"},
}


def _imports(path: Path) -> list[str]:
    """Every module name imported anywhere in the file (also inside functions and TYPE_CHECKING blocks)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (PROJECT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_no_module_outside_the_tests_imports_dagster_private_code(path):
    private = [name for name in _imports(path) if name == "dagster._" or name.startswith("dagster._")]
    assert not private, f"{path.relative_to(PROJECT)} imports {private}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_each_layer_imports_only_the_layers_below_it(path):
    layer = path.relative_to(PROJECT).parts[0]
    forbidden = MAY_NOT_IMPORT.get(layer, set())
    wrong = [name for name in _imports(path) if name.split(".")[0] in forbidden]
    assert not wrong, f"{path.relative_to(PROJECT)} ({layer}) imports {wrong}"
