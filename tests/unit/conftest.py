"""Fixtures of the core's unit tests: two in-memory ledgers (used by no other layer)."""

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
