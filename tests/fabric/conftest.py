"""Fabric tests: launcher unit tests (no binaries) and the real-network test."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "fabric: Hyperledger Fabric launcher and network tests")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/fabric/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.fabric)


@pytest.fixture
def fabric_network(run_dir):
    """The testbed's Fabric network, to restart a peer as a crash would."""
    from dvp_fabric.network import FabricNetwork

    return FabricNetwork.attach(run_dir / "fabric")
