"""Fixtures of the core's unit tests: two in-memory ledgers (used by no other layer), and a
journal target on each backend."""

from __future__ import annotations

import pytest

from dvp.testing.memory import MemoryLedger


@pytest.fixture
def ledgers():
    """Ledger ``a`` with the seller's 100 BOND, ledger ``b`` with the buyer's 10,000 EUR."""
    a, b = MemoryLedger("a"), MemoryLedger("b")
    a.balances[("seller", "BOND")] = 100
    b.balances[("buyer", "EUR")] = 10_000
    return {"a": a, "b": b}


@pytest.fixture(params=["sqlite", "postgres"])
def journal_target(request, tmp_path) -> str:
    """Where a fresh journal lives, on each backend: a file, or an empty database's URL on the
    session's PostgreSQL server (tests/conftest.py ``pg_server``)."""
    if request.param == "sqlite":
        return str(tmp_path / "journal.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def journal_for(request, tmp_path):
    """``journal_for(name)``: a fresh journal target per name (one per party), on each backend."""
    if request.param == "sqlite":
        return lambda name: str(tmp_path / f"{name}.sqlite")
    server = request.getfixturevalue("pg_server")
    return lambda name: server.new_database()
