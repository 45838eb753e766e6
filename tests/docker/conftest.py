"""The docker suite: the testbed's ledgers (evm-a, evm-b, btc, and elements when installed) in containers.

Fixtures come from dvp's pytest plugin (``dvp.pytest_plugin``); they are imported
here too so the suite runs whether or not the plugin's entry point is installed.
The runtime is ``--dvp-runtime`` / ``DVP_RUNTIME`` (default docker); without a
reachable Docker engine every test here is skipped with the reason.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dvp.ledger_set import LedgerSet
from dvp.pytest_plugin import (  # noqa: F401 - fixtures
    dvp_compose_command,
    dvp_compose_projects,
    dvp_runtime_name,
    dvp_testnet,
)

from ..testbed import fund, testbed_topology


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a Docker engine (dvp's docker runtime)")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def dvp_topology():
    """The native testbed's ledgers, block times and assets (Fabric has a docker suite of its own)."""
    return testbed_topology(containers=True)


@pytest.fixture(scope="session")
def docker_run_dir(dvp_testnet) -> Path:  # noqa: F811 - the plugin's fixture, imported to register it
    asyncio.run(fund(dvp_testnet))
    return dvp_testnet


@pytest.fixture
async def ledger_set(docker_run_dir):
    async with LedgerSet.from_run_dir(docker_run_dir) as ledger_set:
        yield ledger_set
