"""The HTLC conformance kit (:class:`dvp.testing.HtlcConformance`) on one ledger per
installed platform of the testbed: every rule tried on a real node."""

from __future__ import annotations

import pytest

from dvp.testing import HtlcConformance

from ..testbed import ELEMENTS_MISSING, FABRIC_MISSING, htlc_asset


class TestEvmA(HtlcConformance):
    asset = htlc_asset("evm-a")

    @pytest.fixture
    def adapter(self, net):
        return net.ledgers["evm-a"]


class TestEvmB(HtlcConformance):
    asset = htlc_asset("evm-b")

    @pytest.fixture
    def adapter(self, net):
        return net.ledgers["evm-b"]


class TestBtc(HtlcConformance):
    asset = htlc_asset("btc")

    @pytest.fixture
    def adapter(self, net):
        return net.ledgers["btc"]


@pytest.mark.skipif(ELEMENTS_MISSING is not None, reason=ELEMENTS_MISSING or "")
class TestElements(HtlcConformance):
    asset = "BOND"  # an issued asset

    @pytest.fixture
    def adapter(self, net):
        return net.ledgers["elements"]


@pytest.mark.skipif(FABRIC_MISSING is not None, reason=f"Fabric: {FABRIC_MISSING}")
class TestFabricA(HtlcConformance):
    asset = htlc_asset("fabric-a")

    @pytest.fixture
    def adapter(self, net):
        return net.ledgers["fabric-a"]
