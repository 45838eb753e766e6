"""The kit's lock helpers (:mod:`dvp.testing`) bound to the testbed's assets, for the tests
that open locks directly through an adapter and then try to break them."""

from __future__ import annotations

from typing import Any

from dvp.adapter import LedgerAdapter
from dvp.models import HtlcTerms, LedgerTime
from dvp.testing import fee_in, pass_time  # noqa: F401 - re-exported for the suites
from dvp.testing import htlc as kit

from .testbed import htlc_asset

AMOUNT = 10_000  # above a UTXO chain's dust limit plus the claim fee


def make_terms(adapter: LedgerAdapter, now: LedgerTime, **kw: Any) -> tuple[HtlcTerms, bytes]:
    return kit.make_terms(adapter, now, htlc_asset(adapter.name), **{"amount": AMOUNT, **kw})


async def locked(adapter: LedgerAdapter, **kw: Any) -> tuple[str, HtlcTerms, bytes]:
    return await kit.locked(adapter, htlc_asset(adapter.name), **{"amount": AMOUNT, **kw})
