"""Whole DvP scenarios on real local ledgers: the scenario kit (:mod:`dvp.testing.scenarios`)
for every ledger pair of the testbed."""

from __future__ import annotations

import pytest

from dvp.testing.scenarios import AtomicSuite, ScenarioSuite
from dvp_ethereum.adapter import EthereumAdapter

from ..scenarios import settles_once, spec_for
from ..testbed import CROSS_PARAMS, ONCE_PARAMS, SINGLE_PARAMS, Pair


class TestSingleLedger(AtomicSuite):
    @pytest.fixture(params=SINGLE_PARAMS)
    def ledger(self, request):
        return request.param

    def pair(self, ledger):
        return Pair(ledger, ledger)

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)

    async def fee_coin(self, ledger_set, ledger, party):
        adapter = ledger_set.ledgers[ledger]
        if not isinstance(adapter, EthereumAdapter):
            return None
        return await adapter._w3.eth.get_balance(adapter.address_of(party))


class TestCrossLedger(ScenarioSuite):
    @pytest.fixture(params=CROSS_PARAMS, ids=lambda p: p.id)
    def pair(self, request):
        return request.param

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)


@pytest.mark.parametrize("pair", ONCE_PARAMS)
async def test_a_pair_outside_the_full_suite_settles_once(ledger_set, journal_path, pair):
    """elements/fabric-a, both ways: the two platforms of different families meet once (README: Tests)."""
    await settles_once(ledger_set, journal_path, pair)
