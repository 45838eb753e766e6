"""The geth suite: an anvil chain and a geth --dev chain, started once for these tests.

Skipped, with the reason, when the geth binary is not built (a failure under CI=true)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dvp.runtime.local import LocalRuntime
from dvp_ethereum.geth import geth_missing

from ..testbed import binary_marks, binary_missing, fund, geth_topology

MISSING = geth_missing()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/geth/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.geth)
            for mark in binary_marks(MISSING):
                item.add_marker(mark)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """Overrides the session testbed for this directory: anvil evm-a and geth."""
    if MISSING:
        binary_missing(MISSING)
    path = tmp_path_factory.mktemp("geth-testbed")
    runtime = LocalRuntime(path)
    runtime.up(geth_topology(), progress=lambda m: None)
    try:
        asyncio.run(fund(path))
        yield path
    finally:
        runtime.down()
