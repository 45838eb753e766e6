"""The counterparty's agent dies for real (SIGKILL, never restarted in time): after the first
lock, and after the secret is revealed.  The honest agent acts alone, by the ledgers."""

from __future__ import annotations

import pytest

from ..scenarios import CASH_AMOUNT, UNCHANGED, changes, spec_for
from ..testbed import CROSS_PAIRS, Pair, platform_matrix
from .conftest import Agents, balances, run_async

pytestmark = pytest.mark.agent

# Short real-time plans: the honest side waits for real expiries here.
PLAN = {"holder_timeout": 30, "counter_timeout": 15}
# evm-a/evm-b and evm-a/btc in `make test`; each Fabric and Elements base pair under `matrix`.
PAIRS = CROSS_PAIRS + platform_matrix()


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.id)
def test_counterparty_vanishes_after_the_first_lock(agents: Agents, pair: Pair):
    """The buyer's agent dies right after it audited the seller's lock, before locking its own:
    the seller refunds its lock after expiry, by itself."""
    before = run_async(balances(agents.run_dir))
    buyer = agents.start("buyer", crash_after_step="audit security")
    seller = agents.start(
        "seller", "--propose", str(agents.scenario(spec_for(pair, **PLAN))), "--until-done", "--max-seconds", "180"
    )
    assert buyer.wait(timeout=120) == -9, buyer.output()  # a real dead process
    assert seller.wait(timeout=200) == 6, seller.output()
    swap_id = agents.swap_ids("seller")[0]
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "refunded", ours.detail
    assert "never appeared" in ours.detail and "refunded my security leg" in ours.detail, ours.detail
    assert "has not answered since" in ours.detail, ours.detail
    assert agents.record("buyer", swap_id).outcome is None  # the dead agent's side stays unfinished
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == UNCHANGED


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.id)
def test_counterparty_vanishes_after_the_secret_is_revealed(agents: Agents, pair: Pair):
    """The buyer's agent dies right after it read the revealed secret, before claiming: the
    seller keeps the cash it claimed and refunds its own leg after expiry; the buyer, back too
    late, finds its principal lost.  Stella's principal risk, from a real dead process."""
    before = run_async(balances(agents.run_dir))
    buyer = agents.start("buyer", crash_after_step="extract secret")
    seller = agents.start(
        "seller", "--propose", str(agents.scenario(spec_for(pair, **PLAN))), "--until-done", "--max-seconds", "180"
    )
    assert buyer.wait(timeout=120) == -9, buyer.output()
    assert seller.wait(timeout=200) == 6, seller.output()
    swap_id = agents.swap_ids("seller")[0]
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "principal_loss", ours.detail
    assert "buyer 'buyer' lost" in ours.detail and "has not answered since" in ours.detail, ours.detail
    # The buyer's agent comes back after the seller's leg expired: it reports its own loss.
    late = agents.start("buyer")
    theirs = agents.outcome("buyer", swap_id, timeout=90)
    late.stop()
    assert theirs.outcome == "principal_loss", theirs.detail
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == {
        "seller_security": 0,
        "buyer_security": 0,
        "seller_cash": CASH_AMOUNT,
        "buyer_cash": -CASH_AMOUNT,
    }
