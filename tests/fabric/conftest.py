"""Fabric tests: launcher unit tests (no binaries) and the real-network test."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "fabric: Hyperledger Fabric launcher and network tests")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/fabric/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.fabric)
