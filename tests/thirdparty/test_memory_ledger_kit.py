"""An adapter written outside the adapters tree gets the HTLC conformance kit by
subclassing it with one fixture: here the in-memory ledger, with and without a dev clock."""

from __future__ import annotations

import pytest

from dvp.testing import HtlcConformance
from dvp.testing.memory import MemoryLedger, MemoryLiveLedger


async def funded(ledger: MemoryLiveLedger, asset: str) -> MemoryLiveLedger:
    for party in ("seller", "buyer"):
        await ledger.wait_all(await ledger.issue(asset, party, 1_000_000))
    return ledger


class TestMemoryLedger(HtlcConformance):
    asset = "BOND"

    @pytest.fixture
    async def adapter(self):
        async with MemoryLedger("mem") as ledger:
            yield await funded(ledger, self.asset)


class _Ticking(MemoryLiveLedger):
    """No TimeTravel: its clock moves one second per clock read, as a live ledger's would."""

    async def now(self):
        self.time += 1
        return await super().now()


class TestMemoryLedgerWithoutTimeTravel(HtlcConformance):
    asset = "EUR"
    amount = 50_000

    @pytest.fixture
    async def adapter(self):
        async with _Ticking("mem-live") as ledger:
            yield await funded(ledger, self.asset)
