"""On real anvil chains: an unwinding swap in a concurrent batch no longer fast-forwards the
chains' clocks under the others (issue 21's bench hazard; tests/unit/test_clock_guard.py has
the rule on in-memory ledgers).  Without the guard this batch ends with every other swap's claim
refused (LockExpired): the one jump past its own expiries expired all of theirs."""

from __future__ import annotations

import asyncio

from dvp.adapter import Issuing
from dvp.models import Behaviour
from dvp.orchestrator import Outcome

from ..scenarios import CASH_AMOUNT, SECURITY_AMOUNT, spec_for
from ..testbed import CROSS_PAIRS

PAIR = CROSS_PAIRS[0]  # evm-a/evm-b: both clocks can jump
SETTLING = 6
PLAN = {"holder_timeout": 600, "counter_timeout": 300}  # the same plan for every swap of the batch


async def test_an_unwinding_swap_in_a_batch_leaves_the_others_settling(ledger_set, journal_path):
    sec, cash = ledger_set.ledgers[PAIR.security], ledger_set.ledgers[PAIR.cash]
    n = SETTLING + 1
    funded = [
        (sec, await sec.require(Issuing).issue(PAIR.security_asset, "seller", n * SECURITY_AMOUNT)),
        (cash, await cash.require(Issuing).issue(PAIR.cash_asset, "buyer", n * CASH_AMOUNT)),
    ]
    for adapter, sub in funded:
        await adapter.wait_final(sub.tx_id)
    before = await sec.balance("buyer", PAIR.security_asset), await cash.balance("seller", PAIR.cash_asset)
    orch = ledger_set.orchestrator(journal_path)
    specs = [spec_for(PAIR, behaviour=Behaviour(holder_claims=False), **PLAN)]
    specs += [spec_for(PAIR, **PLAN) for _ in range(SETTLING)]
    async with asyncio.timeout(240):
        results = await asyncio.gather(*(orch.run(s) for s in specs))
    assert [r.outcome for r in results] == [Outcome.REFUNDED] + [Outcome.SETTLED] * SETTLING, [
        r.detail for r in results
    ]
    after = await sec.balance("buyer", PAIR.security_asset), await cash.balance("seller", PAIR.cash_asset)
    assert (after[0] - before[0], after[1] - before[1]) == (SETTLING * SECURITY_AMOUNT, SETTLING * CASH_AMOUNT)
