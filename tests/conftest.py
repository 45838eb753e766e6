"""Shared fixtures: one real testbed per test session, started by the framework itself.

Every platform whose launcher is installed joins the testbed; scenario tests are
parametrized by ledger pair over whatever the testbed holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dvp.ledger_set import LedgerSet
from dvp.runtime.local import LocalRuntime

from .testbed import binary_missing, fund, testbed_topology

ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        layer = Path(str(item.fspath)).relative_to(ROOT).parts[0]
        if layer in ("unit", "conformance", "e2e"):
            item.add_marker(getattr(pytest.mark, layer))
        elif layer == "thirdparty":  # the kit on the in-memory ledger: no node, core only
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test marked ``binary_missing``: skipped with the reason, or failed under CI=true (before any fixture starts)."""
    mark = item.get_closest_marker("binary_missing")
    if mark:
        binary_missing(mark.kwargs["reason"])


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """Start the testbed once; stop every process it started, whatever happens."""
    path = tmp_path_factory.mktemp("testbed")
    runtime = LocalRuntime(path)
    runtime.up(testbed_topology(), progress=lambda m: None)
    try:
        import asyncio

        asyncio.run(fund(path))
        yield path
    finally:
        runtime.down()


@pytest.fixture
async def ledger_set(run_dir):
    async with LedgerSet.from_run_dir(run_dir) as ledger_set:
        yield ledger_set


@pytest.fixture
def journal_path(tmp_path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
def cli_env(run_dir, journal_path) -> dict[str, str]:
    return {**os.environ, "DVP_RUN_DIR": str(run_dir), "DVP_JOURNAL": str(journal_path)}


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the session (dvp.testing.postgres); skipped when PostgreSQL
    is not installed, failed instead under CI=true."""
    from dvp.testing.postgres import pg_bin, postgres_server

    if pg_bin() is None:
        binary_missing("PostgreSQL is not installed (`make setup` installs it; or set DVP_PG_BIN)")
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return pg_server.new_database()
