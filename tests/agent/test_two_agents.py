"""Two banks, two processes: each party's `dvp agent` holds only its own keys and journal;
they agree a trade over the mutual-TLS channel and settle it on real ledgers."""

from __future__ import annotations

import pytest

from dvp.models import Role
from dvp.network import Network

from ..scenarios import SETTLED, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS, Pair
from .conftest import Agents, run_async

pytestmark = pytest.mark.agent


async def balances(run_dir):
    async with Network.from_run_dir(run_dir) as net:
        return await snapshot(net)


@pytest.mark.parametrize("pair", CROSS_PAIRS, ids=lambda p: p.id)
@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
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
    assert sent[0] == "propose" and "locked" in sent, sent
