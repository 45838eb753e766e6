"""A lock the ledger refuses never strands the other leg nor poisons the journal (issue 10,
item 1): the swap unwinds (refund after expiry) and says why, and the next swap on the same
journal runs."""

from __future__ import annotations

import secrets

from dvp.models import HtlcTerms
from dvp.orchestrator import Outcome

from ..htlc_helpers import pass_time
from ..scenarios import CASH_AMOUNT, UNCHANGED, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS
from ..cli_helpers import dvp, one_line_error

PAIR = CROSS_PAIRS[0]


async def test_a_lock_refused_after_the_first_leg_unwinds_with_the_real_cause(net, journal_path):
    seller_ledger, buyer_ledger = net.ledgers[PAIR.security], net.ledgers[PAIR.cash]
    sent_lock = seller_ledger.lock
    side: list[HtlcTerms] = []

    async def lock_then_buyer_spends(terms):
        submitted = await sent_lock(terms)
        # Every check has passed and the seller's bonds are locked: now the buyer's cash
        # goes elsewhere (here: into a lock of its own), so its swap lock is refused.
        have = await buyer_ledger.balance("buyer", "EUR")
        spend = HtlcTerms(sender="buyer", recipient="seller", asset="EUR", amount=have - CASH_AMOUNT + 1,
                          hashlock=secrets.token_hex(32), expiry=buyer_ledger.expiry_after(await buyer_ledger.now(), 20),
                          nonce=secrets.token_hex(32))
        await buyer_ledger.wait_final((await buyer_ledger.lock(spend)).tx_id)
        side.append(spend)
        return submitted

    before = await snapshot(net)
    seller_ledger.lock = lock_then_buyer_spends
    try:
        result = await net.orchestrator(journal_path).run(spec_for(PAIR))
    finally:
        del seller_ledger.lock
        for spend in side:  # give the buyer its cash back for the rest of the session
            await pass_time(buyer_ledger, 21)
            lock_id = buyer_ledger.lock_id(spend)
            await buyer_ledger.wait_final((await buyer_ledger.refund(lock_id, submitter="buyer")).tx_id)
    assert side, "the buyer's cash was never spent elsewhere"
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert "cash lock refused by evm-b" in result.detail and "insufficient balance" in result.detail, result.detail
    assert changes(before, await snapshot(net), PAIR, result.steps) == UNCHANGED
    journal = net.orchestrator(journal_path).journal
    assert journal.swaps(unfinished=True) == []


async def test_locks_the_ledger_would_refuse_are_refused_before_anything_is_locked(net, cli_env, journal_path):
    # The cases: a 1 sat cash leg on btc (below dust), and the buyer's whole btc
    # balance (nothing left for the fee).  Both legs are checked before the first lock.
    whole = await net.ledgers["btc"].balance("buyer", "BTC")
    before = await snapshot(net)
    for cash, text in ((f"btc:BTC:1", "below"), (f"btc:BTC:{whole}", "plus fee")):
        refused = dvp(["swap", "--security", "evm-a:BOND:1", "--cash", cash, "--holder-timeout", "100",
                       "--counter-timeout", "60", "--fast-forward"], cli_env)
        one_line_error(refused, 3, text)
    assert await snapshot(net) == before
    nothing = dvp(["resume"], cli_env)
    assert nothing.returncode == 0 and "no unfinished swaps" in nothing.stdout, nothing.stderr
    ok = dvp(["swap", "--security", "evm-a:BOND:1", "--cash", "btc:BTC:100000"], cli_env)
    assert ok.returncode == 0 and "resuming" not in ok.stderr, ok.stderr
