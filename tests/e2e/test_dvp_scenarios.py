"""Whole DvP scenarios on real local ledgers, parametrized by ledger pair."""

from __future__ import annotations

import pytest

from dvp import errors
from dvp.models import Behaviour, LockStatus, Role
from dvp.orchestrator import Outcome

from ..scenarios import SETTLED, UNCHANGED, assert_conserved, changes, snapshot, spec_for, CASH_AMOUNT, SECURITY_AMOUNT
from ..testbed import CROSS_PARAMS, SINGLE_PARAMS, Pair, cash_asset

cross = pytest.mark.parametrize("pair", CROSS_PARAMS, ids=lambda p: p.id)


async def run(net, journal_path, spec):
    before = await snapshot(net)
    result = await net.orchestrator(journal_path).run(spec)
    after = await snapshot(net)
    assert_conserved(before, after, result.steps)
    return result, before, after


@pytest.mark.parametrize("ledger", SINGLE_PARAMS)
async def test_single_ledger_dvp_moves_both_legs_in_one_transaction(net, journal_path, ledger):
    pair = Pair(ledger, ledger)
    result, before, after = await run(net, journal_path, spec_for(pair))
    assert result.kind == "atomic"
    assert result.outcome is Outcome.SETTLED
    assert changes(before, after, pair, result.steps) == SETTLED
    settle = [s for s in result.steps if s.step == "settle" and s.phase == "result"]
    assert len(settle) == 1 and settle[0].tx_id


@cross
@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
async def test_cross_ledger_happy_path(net, journal_path, pair, holder):
    result, before, after = await run(net, journal_path, spec_for(pair, secret_holder=holder))
    assert result.outcome is Outcome.SETTLED, result.detail
    assert changes(before, after, pair, result.steps) == SETTLED
    done = [s.step for s in result.steps if s.phase == "result"]
    first, second = ("security", "cash") if holder is Role.SELLER else ("cash", "security")
    assert done == [f"lock {first}", f"audit {first}", f"lock {second}", f"audit {second}",
                    f"claim {second}", "extract secret", f"claim {first}"]
    # The secret reached the other party through the ledger, and it is the journaled one.
    lock = await net.ledgers[getattr(pair, second)].get_lock(result.data[f"lock_{second}"])
    assert lock.status is LockStatus.CLAIMED and lock.preimage == result.data["secret"]


@cross
async def test_counterparty_locks_first_when_asked(net, journal_path, pair):
    result, before, after = await run(net, journal_path, spec_for(pair, first_locker=Role.BUYER))
    assert result.outcome is Outcome.SETTLED, result.detail
    assert [s.step for s in result.steps if s.phase == "result"][0] == "lock cash"
    assert changes(before, after, pair, result.steps) == SETTLED


@cross
async def test_buyer_never_locks_seller_refunds(net, journal_path, pair):
    result, before, after = await run(net, journal_path, spec_for(pair, behaviour=Behaviour(counter_locks=False)))
    assert result.outcome is Outcome.REFUNDED
    assert changes(before, after, pair, result.steps) == UNCHANGED
    steps = [s.step for s in result.steps if s.phase == "result"]
    assert "lock cash" not in steps and "refund security" in steps


@cross
async def test_seller_never_claims_both_refund(net, journal_path, pair):
    result, before, after = await run(net, journal_path, spec_for(pair, behaviour=Behaviour(holder_claims=False)))
    assert result.outcome is Outcome.REFUNDED
    assert changes(before, after, pair, result.steps) == UNCHANGED
    steps = [s.step for s in result.steps if s.phase == "result"]
    assert steps[-2:] == ["refund cash", "refund security"]
    for leg in ("security", "cash"):
        lock = await net.ledgers[getattr(pair, leg)].get_lock(result.data[f"lock_{leg}"])
        assert lock.status is LockStatus.REFUNDED and lock.preimage is None


@cross
async def test_buyer_misses_its_window_principal_risk_is_reported(net, journal_path, pair):
    """The Stella principal-risk case: the secret is public, the buyer does not claim in time."""
    result, before, after = await run(net, journal_path, spec_for(pair, behaviour=Behaviour(counter_claims=False)))
    assert result.outcome is Outcome.PRINCIPAL_LOSS
    assert "buyer" in result.detail and f"lost {CASH_AMOUNT} {cash_asset(pair.cash)}" in result.detail
    assert changes(before, after, pair, result.steps) == {
        "seller_security": 0, "buyer_security": 0, "seller_cash": CASH_AMOUNT, "buyer_cash": -CASH_AMOUNT,
    }
    # Too late: the buyer's claim with the now-public secret is refused by the ledger.
    secret = bytes.fromhex(result.data["secret"])
    with pytest.raises(errors.LockError):
        await net.ledgers[pair.security].claim(result.data["lock_security"], secret, submitter="buyer")
    assert await snapshot(net) == after


@cross
async def test_two_swaps_at_once_on_the_same_accounts(net, journal_path, pair):
    import asyncio

    orch = net.orchestrator(journal_path)
    before = await snapshot(net)
    results = await asyncio.gather(orch.run(spec_for(pair)), orch.run(spec_for(pair, secret_holder=Role.BUYER)))
    after = await snapshot(net)
    steps = [s for r in results for s in r.steps]
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED]
    assert_conserved(before, after, steps)
    assert changes(before, after, pair, steps) == {k: 2 * v for k, v in SETTLED.items()}
