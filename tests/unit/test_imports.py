"""Every module of every package imports alone, first, in a fresh interpreter: an import
cycle that only works in one order (``import dvp_agent.cli`` before ``dvp.cli`` failed so)
shows here.  The layers themselves are import-linter's contracts in pyproject.toml, run by
``make lint``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGES = ("dvp", "dvp_ethereum", "dvp_utxo", "dvp_fabric", "dvp_agent")


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join((package, *parts)))
    return found


MODULES = _modules()


def test_every_package_has_modules():
    assert len(MODULES) > 100 and {"dvp.cli", "dvp_agent.cli", "dvp_fabric.gateway.events"} <= set(MODULES)


def _import_alone(module: str) -> str:
    """'' if ``import module`` succeeds first thing in a fresh interpreter, else its last error line."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120, check=False
    )
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


@pytest.fixture(scope="module")
def imported() -> dict[str, str]:
    """Each module's fresh-interpreter import, a few at a time (about 0.5 s each, most of it
    the interpreter and the libraries, so run side by side)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(MODULES, pool.map(_import_alone, MODULES)))


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_alone(module, imported):
    assert imported[module] == "", f"import {module} alone: {imported[module]}"
