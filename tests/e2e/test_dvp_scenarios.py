"""Whole DvP scenarios on real local ledgers: the scenario kit (:mod:`dvp.testing.scenarios`)
for every ledger pair of the testbed."""

from __future__ import annotations

import pytest

from dvp.testing.scenarios import AtomicSuite, ScenarioSuite

from ..scenarios import spec_for
from ..testbed import CROSS_PARAMS, SINGLE_PARAMS, Pair


class TestSingleLedger(AtomicSuite):
    @pytest.fixture(params=SINGLE_PARAMS)
    def ledger(self, request):
        return request.param

    def pair(self, ledger):
        return Pair(ledger, ledger)

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)


class TestCrossLedger(ScenarioSuite):
    @pytest.fixture(params=CROSS_PARAMS, ids=lambda p: p.id)
    def pair(self, request):
        return request.param

    def spec(self, pair, **kw):
        return spec_for(pair, **kw)
