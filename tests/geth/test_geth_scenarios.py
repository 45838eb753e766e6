"""The DvP scenario kit on anvil (securities) against geth (cash), and single-ledger DvP
on geth.  Refund paths wait for real expiry (30 s / 15 s timeouts)."""

from __future__ import annotations

import pytest

from dvp.testing.scenarios import AtomicSuite, ScenarioSuite

from ..scenarios import settles_once, spec_for
from ..testbed import GETH, GETH_ONCE_PARAMS, Pair


class TestGethSingleLedger(AtomicSuite):
    @pytest.fixture
    def ledger(self):
        return GETH.name

    def pair(self, ledger):
        return Pair(ledger, ledger)

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)


class TestAnvilAgainstGeth(ScenarioSuite):
    @pytest.fixture
    def pair(self):
        return Pair("evm-a", GETH.name)

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)


@pytest.mark.parametrize("pair", GETH_ONCE_PARAMS)
async def test_geth_against_another_family_settles_once(ledger_set, journal_path, pair):
    """btc, Elements and Fabric securities against geth cash, once each (README: Tests)."""
    await settles_once(ledger_set, journal_path, pair)
