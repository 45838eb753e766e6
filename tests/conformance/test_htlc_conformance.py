"""The HTLC conformance kit (:class:`dvp.testing.HtlcConformance`) on one ledger per
installed platform of the testbed: every rule tried on a real node."""

from __future__ import annotations

import pytest

from dvp.testing import HtlcConformance

from ..testbed import ELEMENTS_MARKS, FABRIC_MARKS, htlc_asset


class TestEvmA(HtlcConformance):
    asset = htlc_asset("evm-a")

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers["evm-a"]


class TestEvmB(HtlcConformance):
    asset = htlc_asset("evm-b")

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers["evm-b"]


class TestBtc(HtlcConformance):
    asset = htlc_asset("btc")

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers["btc"]


class TestElements(HtlcConformance):
    pytestmark = ELEMENTS_MARKS
    asset = "BOND"  # an issued asset

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers["elements"]


class TestFabricA(HtlcConformance):
    pytestmark = FABRIC_MARKS
    asset = htlc_asset("fabric-a")

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers["fabric-a"]
