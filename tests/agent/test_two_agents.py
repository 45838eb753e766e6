"""Two banks, two processes: each party's `dvp agent` holds only its own keys and journal;
they agree a trade over the mutual-TLS channel and settle it on real ledgers."""

from __future__ import annotations

import pytest

from dvp.models import Role

from ..scenarios import SETTLED, changes, spec_for
from ..testbed import CROSS_PAIRS, CROSS_PARAMS, Pair
from .conftest import Agents, balances, run_async

pytestmark = pytest.mark.agent


# Every pair the testbed runs, the seller holding the secret; both holders on the two base pairs.
SETTLE_CASES = [
    *(pytest.param(p, Role.SELLER, id=f"seller-{p.id}") for p in CROSS_PAIRS),
    *(pytest.param(p, Role.BUYER, id=f"buyer-{p.id}") for p in CROSS_PAIRS),
]
for param in CROSS_PARAMS[len(CROSS_PAIRS) :]:
    SETTLE_CASES.append(pytest.param(param.values[0], Role.SELLER, id=f"seller-{param.id}", marks=param.marks))


@pytest.mark.parametrize(("pair", "holder"), SETTLE_CASES)
def test_two_agents_settle(agents: Agents, pair: Pair, holder: Role):
    spec = spec_for(pair, secret_holder=holder.value)
    before = run_async(balances(agents.run_dir))
    buyer = agents.start("buyer")
    seller = agents.start("seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "240")
    assert seller.wait(timeout=260) == 0, seller.output()
    swap_id = agents.swap_ids("seller")[0]
    theirs = agents.outcome("buyer", swap_id, timeout=60)
    ours = agents.record("seller", swap_id)
    assert (ours.outcome, theirs.outcome) == ("settled", "settled"), (ours.detail, theirs.detail, buyer.output())
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == SETTLED
    # Only the secret holder's journal ever held the secret.
    holder_party = holder.value
    other = "buyer" if holder_party == "seller" else "seller"
    assert agents.record(holder_party, swap_id).data.get("secret")
    assert not agents.record(other, swap_id).data.get("secret")
    # Each side journaled only its own transactions.
    for party in ("seller", "buyer"):
        leg = "lock security" if party == "seller" else "lock cash"
        assert {s.step for s in agents.steps(party, swap_id) if s.step.startswith("lock")} == {leg}
    # What crossed the channel, counted by each side.
    sent = [m["kind"] for m in agents.messages("seller", swap_id) if m["direction"] == "out"]
    assert sent[0] == "propose" and "locked" in sent, (sent, seller.output()[-4000:])
