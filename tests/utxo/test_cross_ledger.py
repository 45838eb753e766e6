"""Whole DvP swaps between an EVM chain (anvil: the bond) and btcd regtest (the cash).

The framework starts both ledgers through their launchers (LocalRuntime), found through
the ``dvp.launchers``/``dvp.adapters`` entry points; the orchestrator drives the swap
through the adapter protocol only.  Unlike the shared testbed, btcd here runs with its
block clock (a block every 0.25 s), not with blocks mined on demand.

Cash on a UTXO chain is the native coin, so fees are paid in the traded asset:
the seller receives the cash amount less the claim fee, the buyer pays the cash
amount plus the lock fee.  Both fees are read from the journal (TxStatus.fee).
"""

from __future__ import annotations

import pytest

from dvp.ledger_set import LedgerSet
from dvp.models import Asset, AssetKind, Behaviour, HtlcPlan, Leg, LockStatus, Role, SwapSpec, Trade
from dvp.orchestrator import Outcome
from dvp.runtime.local import LocalRuntime
from dvp.topology import LedgerSpec, Topology

pytestmark = pytest.mark.utxo

BOND, CASH = 7, 70_000
ETH, BTC = "evm-a", "btc"


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    path = tmp_path_factory.mktemp("eth-btc")
    topology = Topology(
        ledgers=[
            LedgerSpec(name=ETH, kind="ethereum", options={"block_time": 0.25}),
            LedgerSpec(name=BTC, kind="utxo", options={"block_time": 0.25}),
        ],
        assets=[
            Asset(symbol="BOND", ledger=ETH, kind=AssetKind.SECURITY),
            Asset(symbol="EUR", ledger=BTC, kind=AssetKind.CASH, decimals=2),
        ],
    )
    runtime = LocalRuntime(path)
    runtime.up(topology, progress=lambda m: None)
    try:
        import asyncio

        asyncio.run(_fund(path))
        yield path
    finally:
        stopped = runtime.down()
        from dvp.runtime.processes import alive

        assert stopped and not [p for p in stopped if alive(p)]


async def _fund(path):
    async with LedgerSet.from_run_dir(path) as ledger_set:
        subs = [
            (ledger_set.ledgers[ETH], await ledger_set.ledgers[ETH].issue("BOND", "seller", 1_000)),
            (ledger_set.ledgers[BTC], await ledger_set.ledgers[BTC].issue("EUR", "buyer", 10_000_000)),
        ]
        for adapter, sub in subs:
            await adapter.wait_final(sub.tx_id)


def spec(**plan) -> SwapSpec:
    behaviour = plan.pop("behaviour", Behaviour())
    return SwapSpec(
        trade=Trade(
            security=Leg(ledger=ETH, asset="BOND", amount=BOND), cash=Leg(ledger=BTC, asset="EUR", amount=CASH)
        ),
        plan=HtlcPlan(**{"holder_timeout": 60, "counter_timeout": 30, "reaction_window": 5, **plan}),
        behaviour=behaviour,
        fast_forward=True,
    )


def fee(result, step: str) -> int:
    """The fees of ``step``'s transactions, journaled on their ``final`` rows."""
    fees = [s.detail.get("fee") for s in result.steps if s.step == step and s.phase == "final"]
    assert fees and all(fees), f"no fee journaled for {step}"
    return sum(fees)


async def run(testbed, tmp_path, s):
    async with LedgerSet.from_run_dir(testbed) as ledger_set:
        before = await ledger_set.balances(["seller", "buyer"])
        result = await ledger_set.orchestrator(tmp_path / "journal.sqlite").run(s)
        after = await ledger_set.balances(["seller", "buyer"])
        d = {k: after[k] - before[k] for k in after}
        lock = await ledger_set.ledgers[BTC].get_lock(result.data["lock_cash"]) if "lock_cash" in result.data else None
    return result, d, lock


@pytest.mark.asyncio
@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
async def test_bond_against_btc_cash_settles(testbed, tmp_path, holder):
    result, d, lock = await run(testbed, tmp_path, spec(secret_holder=holder))
    assert result.outcome is Outcome.SETTLED, result.detail
    assert d[(ETH, "BOND", "seller")] == -BOND and d[(ETH, "BOND", "buyer")] == BOND
    assert d[(BTC, "EUR", "seller")] == CASH - fee(result, "claim cash")
    assert d[(BTC, "EUR", "buyer")] == -CASH - fee(result, "lock cash")
    assert lock.status is LockStatus.CLAIMED and lock.preimage == result.data["secret"]


@pytest.mark.asyncio
async def test_seller_never_claims_both_legs_refund(testbed, tmp_path):
    result, d, lock = await run(testbed, tmp_path, spec(behaviour=Behaviour(holder_claims=False)))
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert d[(ETH, "BOND", "seller")] == 0 and d[(ETH, "BOND", "buyer")] == 0
    assert d[(BTC, "EUR", "seller")] == 0
    assert d[(BTC, "EUR", "buyer")] == -fee(result, "lock cash") - fee(result, "refund cash")
    assert lock.status is LockStatus.REFUNDED and lock.preimage is None
