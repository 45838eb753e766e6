"""The HTLC conformance kit on a geth ledger.  No time travel: the refund test waits for
geth's own clock."""

from __future__ import annotations

import pytest

from dvp.testing import HtlcConformance

from ..testbed import GETH, htlc_asset


class TestGeth(HtlcConformance):
    asset = htlc_asset(GETH.name)

    @pytest.fixture
    def adapter(self, ledger_set):
        return ledger_set.ledgers[GETH.name]
