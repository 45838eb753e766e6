"""Two parties' agents in one process (LocalChannel) on in-memory ledgers: the protocol's
logic; the real-node, two-process suite is tests/agent."""

from __future__ import annotations

import asyncio
import time

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, Role, SwapSpec, Trade
from dvp.orchestrator import Outcome
from dvp.party import agent as agent_module
from dvp.party.agent import Agent
from dvp.party.channel import LocalChannel
from dvp.party.messages import REPLY_KINDS, Kind, Message, next_seq
from dvp.party.run import PartyRun
from dvp.testing.scenarios import DEV_POLICY

ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]


def spec(holder: Role = Role.SELLER, **plan) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(
            **{"secret_holder": holder, "holder_timeout": 100, "counter_timeout": 50, "reaction_window": 5, **plan}
        ),
        fast_forward=True,
    )


@pytest.fixture
async def agents(ledgers, journal_for):  # each party's journal on each backend: SQLite and PostgreSQL
    one, two = LocalChannel.pair("seller", "buyer")
    seller = Agent(
        "seller",
        "buyer",
        ledgers,
        ASSETS,
        Journal(journal_for("seller")),
        one,
        policy=DEV_POLICY,
        progress=lambda s, m: print("seller", s, m),
    )
    buyer = Agent(
        "buyer",
        "seller",
        ledgers,
        ASSETS,
        Journal(journal_for("buyer")),
        two,
        policy=DEV_POLICY,
        progress=lambda s, m: print("buyer", s, m),
    )
    await seller.start()
    await buyer.start()
    yield seller, buyer
    await seller.aclose()
    await buyer.aclose()


def holdings(ledgers):
    a, b = ledgers["a"], ledgers["b"]
    return (
        a.balances[("seller", "BOND")],
        a.balances[("buyer", "BOND")],
        b.balances[("seller", "EUR")],
        b.balances[("buyer", "EUR")],
    )


async def settle_both(seller, buyer, swap_id):
    for _ in range(200):  # the acceptor's drive starts when the proposal reaches it
        if swap_id in seller.tasks and swap_id in buyer.tasks:
            break
        await asyncio.sleep(0.05)
    async with asyncio.timeout(8):
        return await asyncio.gather(seller.tasks[swap_id], buyer.tasks[swap_id])


async def settle_one(agent, swap_id):
    for _ in range(200):
        if swap_id in agent.tasks:
            break
        await asyncio.sleep(0.05)
    async with asyncio.timeout(8):
        return await agent.tasks[swap_id]


@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
@pytest.mark.parametrize("proposer", ["seller", "buyer"])
async def test_two_agents_settle(agents, ledgers, holder, proposer):
    seller, buyer = agents
    by = seller if proposer == "seller" else buyer
    swap_id = await by.propose(spec(holder))
    await asyncio.sleep(0)
    results = await settle_both(seller, buyer, swap_id)
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED], [r.detail for r in results]
    assert holdings(ledgers) == (90, 10, 1000, 9000)
    # Only the holder's journal ever held the secret.
    holder_agent = seller if holder is Role.SELLER else buyer
    other = buyer if holder_agent is seller else seller
    assert holder_agent.journal.get(swap_id).data.get("secret")
    assert not other.journal.get(swap_id).data.get("secret")
    # Messages were counted from the channel: a proposal and its answer, and notices.
    kinds = [m["kind"] for m in seller.journal.messages(swap_id) if m["direction"] == "out"]
    assert kinds, "the seller sent nothing"


async def test_policy_rejects_with_reason(ledgers, tmp_path):
    one, two = LocalChannel.pair("seller", "buyer")
    seller = Agent("seller", "buyer", ledgers, ASSETS, Journal(tmp_path / "s.sqlite"), one, policy=DEV_POLICY)
    buyer = Agent(
        "buyer",
        "seller",
        ledgers,
        ASSETS,
        Journal(tmp_path / "b.sqlite"),
        two,
        policy=DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 500}}),
    )
    await seller.start()
    await buyer.start()
    try:
        swap_id = await seller.propose(spec())
        async with asyncio.timeout(10):
            [result] = await seller.wait_all()
        assert result.outcome is Outcome.ABORTED
        assert "above this party's policy.max_send of 500" in result.detail
        assert buyer.journal.get(swap_id) is None
        assert holdings(ledgers) == (100, 0, 0, 10_000)
    finally:
        await seller.aclose()
        await buyer.aclose()


async def test_replayed_message_is_refused(agents):
    seller, buyer = agents
    swap_id = await seller.propose(spec())
    await settle_both(seller, buyer, swap_id)
    last = buyer.journal.last_seq(swap_id, "seller", "in", leaving_out=tuple(k.value for k in REPLY_KINDS))
    old = Message(
        kind=Kind.LOCKED,
        swap_id=swap_id,
        sender="seller",
        recipient="buyer",
        seq=last,
        body={"leg": "security", "lock_id": "x"},
    )
    with pytest.raises(errors.MessageRefused, match="replayed or reordered"):
        await buyer.handle(old)
    with pytest.raises(errors.MessageRefused, match="not a peer of"):
        await buyer.handle(old.model_copy(update={"sender": "mallory", "seq": last + 10}))


class LateLock(PartyRun):
    """A counterparty whose lock lands just inside the holder's safety margin (its ledger's
    clock jumps right after it locks)."""

    async def lock_own(self, role):
        await super().lock_own(role)
        ledger = self.steps.adapter_of(role)
        left = ledger.seconds_left(await ledger.now(), self.steps.known_terms(role).expiry)
        await ledger.advance_time(int(left) - self.steps.budget.claim_window + 1)


async def test_holder_never_reveals_inside_its_margin(ledgers, tmp_path):
    one, two = LocalChannel.pair("seller", "buyer")
    seller = Agent("seller", "buyer", ledgers, ASSETS, Journal(tmp_path / "s.sqlite"), one, policy=DEV_POLICY)
    buyer = Agent("buyer", "seller", ledgers, ASSETS, Journal(tmp_path / "b.sqlite"), two, policy=DEV_POLICY)
    buyer.run_class = LateLock
    await seller.start()
    await buyer.start()
    try:
        swap_id = await seller.propose(spec())
        await settle_one(seller, swap_id)
        await ledgers["b"].advance_time(60)  # the buyer's clock runs on to its own lock's expiry
        ours, theirs = await settle_both(seller, buyer, swap_id)
    finally:
        await seller.aclose()
        await buyer.aclose()
    assert ours.outcome is Outcome.REFUNDED and "nothing revealed" in ours.detail, ours.detail
    assert theirs.outcome is Outcome.REFUNDED, theirs.detail
    skipped = [s for s in seller.journal.steps(swap_id) if s.step == "claim cash" and s.phase == "skipped"]
    assert skipped and "safety margin" in skipped[0].detail["reason"]
    assert ledgers["b"].locks[seller.journal.get(swap_id).data["lock_cash"]].preimage is None  # never revealed
    assert holdings(ledgers) == (100, 0, 0, 10_000)


async def test_a_reply_does_not_move_the_request_window(agents):
    """A request numbered just before a reply its sender made, arriving just after it, is taken."""
    seller, buyer = agents
    swap_id = await seller.propose(spec())
    await settle_both(seller, buyer, swap_id)
    request = Message(kind=Kind.PING, swap_id=swap_id, sender="seller", recipient="buyer", seq=time.time_ns() + 10**12)
    reply = Message(kind=Kind.ACK, swap_id=swap_id, sender="seller", recipient="buyer", seq=time.time_ns() + 2 * 10**12)
    buyer.journal.message(swap_id, "seller", "in", reply.kind.value, reply.seq)  # the reply came first
    answer = await buyer.handle(request)
    assert answer is not None and answer.kind is Kind.ACK


async def test_an_agent_lets_go_of_finished_swaps(agents, monkeypatch):
    """Over N swaps a long-running agent holds the tasks of the swaps it drives and of the last
    KEEP_FINISHED ended (for a caller to read), never one per swap it ever drove; no hints are
    kept for an ended swap, and a late notice about one adds none."""
    monkeypatch.setattr(agent_module, "KEEP_FINISHED", 3)
    seller, buyer = agents
    swaps = 8  # what the in-memory holdings allow (10 BOND each of the seller's 100)
    for batch in range(swaps // 4):
        ids = [await seller.propose(spec()) for _ in range(4)]
        results = await asyncio.gather(*(settle_both(seller, buyer, swap_id) for swap_id in ids))
        assert all(r.outcome is Outcome.SETTLED for pair in results for r in pair), batch
    for agent in (seller, buyer):
        assert len(agent.tasks) == 3 and all(t.done() for t in agent.tasks.values()), agent.party
        assert agent.hints == {} and agent.ended == {"settled": swaps}, agent.party
    # The last ended ones are still there to read; a notice about an ended swap keeps nothing.
    assert set(seller.tasks) < set(ids) and ids[0] not in buyer.tasks
    late = Message(
        kind=Kind.LOCKED,
        swap_id=ids[0],
        sender="seller",
        recipient="buyer",
        seq=next_seq(buyer.journal.last_seq(ids[0], "seller", "in")),
        body={"leg": "security", "lock_id": "0x" + "ab" * 32},
    )
    assert (await buyer.handle(late)).kind is Kind.ACK and buyer.hints == {}


@pytest.mark.parametrize("lost_spawn", [False, True], ids=["handler-cancelled", "drive-lost"])
async def test_an_agreed_swap_is_driven_though_the_call_that_agreed_timed_out(agents, ledgers, monkeypatch, lost_spawn):
    """The acceptor's row is written after the proposer's call timed out (cancelling the
    handler): the acceptor still drives the swap it agreed to, and it settles.  drive-lost: its
    first drive never starts (as before the fix); the proposer's resend of the proposal, answered
    from the journal, starts it."""
    monkeypatch.setattr(agent_module, "SEND_TIMEOUT", 0.2)
    monkeypatch.setattr(agent_module, "NOTICE_RETRY_SECONDS", 2.0)  # the proposer sends again after 2.2 s
    seller, buyer = agents
    create, spawn, calls = buyer.journal.acreate, buyer.spawn, []

    async def slow_create(*args, **kwargs):
        if not calls:
            calls.append("create")
            await asyncio.sleep(0.6)  # longer than the proposer's call
        return await create(*args, **kwargs)

    def first_spawn_lost(swap_id):
        calls.append("spawn")
        if lost_spawn and calls.count("spawn") == 1:
            return None
        return spawn(swap_id)

    monkeypatch.setattr(buyer.journal, "acreate", slow_create)
    monkeypatch.setattr(buyer, "spawn", first_spawn_lost)
    started = time.monotonic()
    swap_id = await seller.propose(spec())
    for _ in range(80):  # before the proposer's resend (2.2 s after the proposal)
        if swap_id in buyer.tasks or time.monotonic() - started > 1.8:
            break
        await asyncio.sleep(0.05)
    assert buyer.journal.get(swap_id) is not None, "the acceptor's row was not written"
    assert (swap_id in buyer.tasks) is not lost_spawn, calls
    results = await settle_both(seller, buyer, swap_id)
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED], [r.detail for r in results]
    assert holdings(ledgers) == (90, 10, 1000, 9000)


async def test_proposals_checked_at_once_are_counted_against_the_unfinished_swaps_cap(agents, ledgers, monkeypatch):
    """limits.unfinished_swaps N, 3N proposals at once whose rows are slow to write: at most N
    are agreed (each proposal counts from before its checks, not from its row), the others are
    rejected naming the limit; the agreed ones settle."""
    seller, buyer = agents
    cap = 2
    buyer.limits = buyer.limits.model_copy(update={"unfinished_swaps": cap})
    create = buyer.journal.acreate

    async def slow_create(*args, **kwargs):
        await asyncio.sleep(0.3)  # every proposal's checks pass while the first rows are written
        return await create(*args, **kwargs)

    monkeypatch.setattr(buyer.journal, "acreate", slow_create)
    ids = await asyncio.gather(*(seller.propose(spec()) for _ in range(3 * cap)))
    async with asyncio.timeout(20):
        results = await asyncio.gather(*(seller.tasks[swap_id] for swap_id in ids))
    agreed = [swap_id for swap_id in ids if buyer.journal.get(swap_id) is not None]
    assert len(agreed) == cap, [r.detail for r in results]
    by_id = dict(zip(ids, results, strict=True))
    assert all(by_id[s].outcome is Outcome.SETTLED for s in agreed), [by_id[s].detail for s in agreed]
    refused = [r for s, r in by_id.items() if s not in agreed]
    assert all(r.outcome is Outcome.ABORTED and "limits.unfinished_swaps" in r.detail for r in refused), [
        r.detail for r in refused
    ]
    assert buyer._being_agreed == {}
    assert holdings(ledgers) == (100 - 10 * cap, 10 * cap, 1000 * cap, 10_000 - 1000 * cap)


async def test_a_proposal_whose_row_is_readable_before_its_writer_resumes_counts_once(agents, ledgers, monkeypatch):
    """limits.unfinished_swaps N and exactly N proposals at once, each row readable by the other
    proposals' checks while its writer has not resumed yet (a group commit is visible before the
    future that reports it runs): all N are agreed.  Counted as a row and as a proposal being
    checked, the last ones were rejected naming the limit (dvp bench --agents at K=50: 3 of 200)."""
    seller, buyer = agents
    cap = 3
    buyer.limits = buyer.limits.model_copy(update={"unfinished_swaps": cap})
    create = buyer.journal.acreate

    resumed = []

    async def visible_before_resumed(*args, **kwargs):
        await create(*args, **kwargs)
        await asyncio.sleep(1.0)  # the row is on disk; the last proposal is checked meanwhile
        resumed.append(args[0])

    monkeypatch.setattr(buyer.journal, "acreate", visible_before_resumed)
    first = [asyncio.create_task(seller.propose(spec())) for _ in range(cap - 1)]
    for _ in range(100):  # until their rows are readable, their writers still asleep
        if len(buyer.journal.swaps(unfinished=True)) == cap - 1:
            break
        await asyncio.sleep(0.01)
    assert not resumed, "the writers resumed too soon for this test"
    ids = [*await asyncio.gather(*first, seller.propose(spec()))]
    async with asyncio.timeout(20):
        results = await asyncio.gather(*(seller.tasks[swap_id] for swap_id in ids))
    assert [r.outcome for r in results] == [Outcome.SETTLED] * cap, [r.detail for r in results]
    assert buyer._being_agreed == {}
    assert holdings(ledgers) == (100 - 10 * cap, 10 * cap, 1000 * cap, 10_000 - 1000 * cap)
