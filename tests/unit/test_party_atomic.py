"""Single-ledger DvP between two agents (issue 22 item 3), in one process on an in-memory
ledger with DvP orders: the protocol's logic.  The real-node, two-process versions are in
tests/agent/test_atomic_agents.py."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, DvpOrder, HtlcPlan, Leg, OrderStatus, SwapSpec, Trade
from dvp.orchestrator import Outcome
from dvp.party import run as run_module
from dvp.party.agent import Agent
from dvp.party.agreement import propose
from dvp.party.atomic import AtomicPartyRun
from dvp.party.channel import LocalChannel
from dvp.party.messages import Kind, Message, next_seq
from dvp.party.policy import AcceptPolicy
from dvp.state import LegName
from dvp.testing.memory import MemoryDvpLedger
from dvp.testing.scenarios import DEV_POLICY

ASSETS = [
    Asset(symbol="BOND", ledger="d", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="d", kind=AssetKind.CASH),
]


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(run_module, "POLL_SECONDS", 0.05)


@pytest.fixture
def ledger():
    d = MemoryDvpLedger("d")
    d.balances[("seller", "BOND")] = 100
    d.balances[("buyer", "EUR")] = 10_000
    return d


def spec(amount: int = 10, **plan) -> SwapSpec:
    return SwapSpec(
        kind="atomic",
        trade=Trade(
            security=Leg(ledger="d", asset="BOND", amount=amount), cash=Leg(ledger="d", asset="EUR", amount=500)
        ),
        plan=HtlcPlan(**{"holder_timeout": 100, "counter_timeout": 2, "reaction_window": 5, **plan}),
    )


class WalksAway(AtomicPartyRun):
    """A buyer that agreed, then never accepts."""

    async def as_buyer(self):
        return Outcome.ABORTED, "walked away"


class TamperedOrder(AtomicPartyRun):
    """A seller that proposes an order for fewer bonds than agreed and names it to the buyer."""

    async def as_seller(self):
        order = self.order.model_copy(update={"security_amount": self.order.security_amount - 1})
        await self.run.adapter.propose_dvp(order)
        await self._notify(self.steps.id, Kind.LOCKED, LegName.SECURITY, self.run.adapter.order_id(order))
        return Outcome.ABORTED, "tampered"


@contextlib.asynccontextmanager
async def agents(ledger, tmp_path, seller_run=None, buyer_run=None, buyer_policy=DEV_POLICY):
    """The seller's and the buyer's agents on ``ledger``, started; closed at the end."""
    one, two = LocalChannel.pair("seller", "buyer")
    made = []
    for party, peer, channel, policy, run_class in (
        ("seller", "buyer", one, DEV_POLICY, seller_run),
        ("buyer", "seller", two, buyer_policy, buyer_run),
    ):
        agent = Agent(
            party,
            peer,
            {"d": ledger},
            ASSETS,
            Journal(tmp_path / f"{party}.sqlite"),
            channel,
            policy=policy,
            progress=lambda s, m, p=party: print(p, s, m),
        )
        if run_class:
            agent.atomic_run_class = run_class
        await agent.start()
        made.append(agent)
    try:
        yield made
    finally:
        for agent in made:
            await agent.aclose()


async def ends(agent: Agent, swap_id: str, seconds: float = 15.0):
    for _ in range(int(seconds / 0.05)):
        task = agent.tasks.get(swap_id)
        if task is not None and task.done():
            return task.result()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{agent.party}'s drive of {swap_id} did not end")


async def aborted(agent: Agent, swap_id: str, *said: str) -> None:
    """``agent``'s drive of the swap ends aborted, saying each of ``said``."""
    result = await ends(agent, swap_id)
    assert result.outcome is Outcome.ABORTED, result.detail
    for text in said:
        assert text in result.detail, result.detail


async def test_two_agents_settle_a_single_ledger_dvp(ledger, tmp_path):
    async with agents(ledger, tmp_path) as (seller, buyer):
        swap_id = await seller.propose(spec(counter_timeout=30))
        ours, theirs = await ends(seller, swap_id), await ends(buyer, swap_id)
        assert (ours.outcome, theirs.outcome) == (Outcome.SETTLED, Outcome.SETTLED), (ours.detail, theirs.detail)
        assert ledger.balances[("seller", "BOND")] == 90 and ledger.balances[("buyer", "BOND")] == 10
        assert ledger.balances[("seller", "EUR")] == 500 and ledger.balances[("buyer", "EUR")] == 9_500
        # Each journal holds only its own party's step: the seller's proposal, the buyer's acceptance.
        assert {s.step for s in seller.journal.steps(swap_id) if s.phase == "result"} == {"propose"}
        assert "settle" in {s.step for s in buyer.journal.steps(swap_id) if s.phase == "result"}
        assert "propose" not in {s.step for s in buyer.journal.steps(swap_id)}


@pytest.mark.parametrize("holder", ["seller", "buyer"])
async def test_the_orders_deadline_is_the_holder_timeout_whoever_the_plan_names(ledger, tmp_path, holder):
    """No secret in a single-ledger DvP: the plan's secret holder does not move the order's
    deadline.  Before, a plan naming the buyer put it at counter_timeout, inside the accept
    window, and the seller rejected the buyer's proposal."""
    async with agents(ledger, tmp_path) as (seller, buyer):
        swap_id = await buyer.propose(spec(counter_timeout=30, secret_holder=holder))
        deadline = buyer.journal.get(swap_id).data["side"]["proposal"]["security"]["expiry"]
        assert 99 <= ledger.seconds_left(await ledger.now(), deadline) <= 100
        ours, theirs = await ends(buyer, swap_id), await ends(seller, swap_id)
        assert (ours.outcome, theirs.outcome) == (Outcome.SETTLED, Outcome.SETTLED), (ours.detail, theirs.detail)


async def test_a_buyer_that_walks_away_finds_the_order_cancelled(ledger, tmp_path):
    async with agents(ledger, tmp_path, buyer_run=WalksAway) as (seller, buyer):
        swap_id = await seller.propose(spec(counter_timeout=2))
        await aborted(seller, swap_id, "did not accept within the accept window", "order cancelled on d")
        order_id = seller.journal.get(swap_id).data["order_id"]
        assert (await ledger.get_order(order_id)).status is OrderStatus.CANCELLED
        assert ledger.balances[("seller", "BOND")] == 100 and ledger.balances[("buyer", "EUR")] == 10_000
        # The buyer's acceptance after the cancellation is refused by the ledger itself.
        order = seller.journal.get(swap_id).data["order"]
        with pytest.raises(errors.SubmitError, match="no open order"):
            await ledger.accept_dvp(DvpOrder.model_validate(order))


async def test_the_buyer_refuses_an_order_other_than_the_agreed_one(ledger, tmp_path):
    async with agents(ledger, tmp_path, seller_run=TamperedOrder) as (seller, buyer):
        swap_id = await seller.propose(spec(counter_timeout=30))
        await aborted(buyer, swap_id, "is not the agreed order", "nothing of mine moved")
        assert ledger.balances[("buyer", "EUR")] == 10_000 and ledger.balances[("buyer", "BOND")] == 0
        assert "settle" not in {s.step for s in buyer.journal.steps(swap_id)}


async def test_policy_applies_to_a_single_ledger_proposal(ledger, tmp_path):
    strict = AcceptPolicy(reaction_window=5, max_send={"d:EUR": 100})
    async with agents(ledger, tmp_path, buyer_policy=strict) as (seller, buyer):
        swap_id = await seller.propose(spec(counter_timeout=30))
        await aborted(seller, swap_id, "500 EUR on d is above this party's policy.max_send of 100")
        assert buyer.journal.get(swap_id) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expiry": 1000}, "more than plan.holder_timeout 100s"),
        ({"expiry": -90}, "inside the accept window"),
        ({"hashlock": "11" * 32}, "a single-ledger DvP has no hashlock"),
    ],
)
async def test_the_buyer_refuses_an_order_off_the_plan(ledger, tmp_path, change, reason):
    """The order's deadline within the plan (after the accept window, not beyond the holder
    timeout) and no hashlock: else the proposal is rejected with the rule, nothing journaled."""
    async with agents(ledger, tmp_path) as (_, buyer):
        proposal = await propose("0123456789ab", "seller", spec(counter_timeout=30), {"d": ledger}, None)
        if "expiry" in change:
            security = proposal.security.model_copy(update={"expiry": proposal.security.expiry + change["expiry"]})
            proposal = proposal.model_copy(update={"security": security})
        else:
            proposal = proposal.model_copy(update=change)
        message = Message(
            kind=Kind.PROPOSE,
            swap_id=proposal.swap_id,
            sender="seller",
            recipient="buyer",
            seq=next_seq(0),
            body=proposal.model_dump(mode="json"),
        )
        answer = await buyer.handle(message)
        assert answer is not None and answer.kind is Kind.REJECT, answer
        assert reason in answer.body["reason"], answer.body
        assert buyer.journal.get(proposal.swap_id) is None
