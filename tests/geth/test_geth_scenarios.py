"""The DvP scenario suite on anvil (securities) against geth (cash), and single-ledger DvP
on geth.  Refund paths wait for real expiry (30 s / 15 s timeouts)."""

from __future__ import annotations

import pytest

from dvp.models import Role

from ..e2e import test_dvp_scenarios as scenarios
from ..testbed import GETH, Pair

PAIR = Pair("evm-a", GETH.name)


async def test_single_ledger_dvp_on_geth(net, journal_path):
    await scenarios.test_single_ledger_dvp_moves_both_legs_in_one_transaction(net, journal_path, GETH.name)


@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
async def test_cross_ledger_happy_path(net, journal_path, holder):
    await scenarios.test_cross_ledger_happy_path(net, journal_path, PAIR, holder)


async def test_counterparty_locks_first_when_asked(net, journal_path):
    await scenarios.test_counterparty_locks_first_when_asked(net, journal_path, PAIR)


async def test_buyer_never_locks_seller_refunds(net, journal_path):
    await scenarios.test_buyer_never_locks_seller_refunds(net, journal_path, PAIR)


async def test_seller_never_claims_both_refund(net, journal_path):
    await scenarios.test_seller_never_claims_both_refund(net, journal_path, PAIR)


async def test_buyer_misses_its_window_principal_risk_is_reported(net, journal_path):
    await scenarios.test_buyer_misses_its_window_principal_risk_is_reported(net, journal_path, PAIR)


async def test_two_swaps_at_once_on_the_same_accounts(net, journal_path):
    await scenarios.test_two_swaps_at_once_on_the_same_accounts(net, journal_path, PAIR)
