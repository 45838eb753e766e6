"""Fabric tests: launcher unit tests (no binaries) and the real-network test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:  # until pyproject maps the package (requested from the lead)
    import dvp_fabric  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "adapters"))


def pytest_configure(config):
    config.addinivalue_line("markers", "fabric: Hyperledger Fabric launcher and network tests")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/fabric/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.fabric)
