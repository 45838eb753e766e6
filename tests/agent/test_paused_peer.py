"""The counterparty's agent process is paused (SIGSTOP) for a while and then continued
(SIGCONT), as in issue 23 item 4: the buyer holds the secret and its agent stops as soon as
its cash lock is journaled.  The seller's pings and notices go unanswered meanwhile, its
channel drops the connection they are on, and the seller's drive must go on regardless:
when the buyer claims the bonds, the seller claims the cash, both settled, the seller whole.

(Before: the dropped connection cancelled the seller's ping in flight, the CancelledError
ended its swap task silently, and the buyer claimed the bonds and refunded its cash; this
test failed so, the buyer still waiting for the seller's claim 60 s after it was continued.)"""

from __future__ import annotations

import signal
import time

import pytest

from ..scenarios import SETTLED, changes, spec_for
from ..testbed import CROSS_PAIRS, Pair
from .conftest import Agents, balances, run_async

# About a minute (the pause itself is 35 s): under `make test-drills`; `make test` has the
# same cut in one process (tests/unit/test_party_drive.py).
pytestmark = [pytest.mark.agent, pytest.mark.slow, pytest.mark.matrix]

# The plan and pause: time enough for the holder to claim after it is continued.
PLAN = {"secret_holder": "buyer", "holder_timeout": 120, "counter_timeout": 60}
PAUSE = 35.0


def lock_journaled(agents: Agents, party: str, step: str, swap_id: str) -> bool:
    return any(s.step == step and s.phase == "result" for s in agents.steps(party, swap_id))


@pytest.mark.parametrize("pair", [CROSS_PAIRS[0]], ids=lambda p: p.id)
def test_a_paused_peer_does_not_stop_the_honest_drive(agents: Agents, pair: Pair):
    before = run_async(balances(agents.run_dir))
    buyer = agents.start("buyer").ready()
    agents.start("seller", "--propose", str(agents.scenario(spec_for(pair, **PLAN)))).ready()
    swap_id = agents.first_swap("seller", timeout=60)
    end = time.monotonic() + 90
    while not lock_journaled(agents, "buyer", "lock cash", swap_id):
        assert time.monotonic() < end, "the buyer never locked its cash"
        time.sleep(0.05)
    buyer.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(PAUSE)
        # The seller locked meanwhile and waits, pinging an agent that does not answer.
        assert lock_journaled(agents, "seller", "lock security", swap_id)
    finally:
        buyer.proc.send_signal(signal.SIGCONT)
    continued = time.monotonic()
    theirs = agents.outcome("buyer", swap_id, timeout=60)
    ours = agents.outcome("seller", swap_id, timeout=60)
    settled_in = time.monotonic() - continued
    agents.stop_all()
    assert (ours.outcome, theirs.outcome) == ("settled", "settled"), (ours.detail, theirs.detail)
    # By the ledgers as soon as the buyer claimed, not at an expiry or a restart.
    assert settled_in < 45, settled_in
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == SETTLED
