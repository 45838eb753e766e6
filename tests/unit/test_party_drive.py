"""A swap's drive does not depend on the channel (issue 23, item 4), in one process on
in-memory ledgers: a send cut off under the drive is a failed hint, a drive that ends without
an outcome is started again, and an acceptor that stopped right after journaling a proposal
answers the proposer's retry from its journal.  The real-node, two-process versions are in
tests/agent."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dvp.journal import Journal
from dvp.models import Role
from dvp.orchestrator import Outcome
from dvp.party import agent as agent_module
from dvp.party import run as run_module
from dvp.party.agent import Agent
from dvp.party.channel import LocalChannel
from dvp.party.messages import Kind, Message
from dvp.party.run import PartyRun
from dvp.state import HtlcSwapState, PartySide
from dvp.testing.scenarios import DEV_POLICY

from .test_party_agents import ASSETS, holdings, spec


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Waits of a unit test's length: polls, pings and restarts within a second."""
    monkeypatch.setattr(run_module, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(agent_module, "SEND_TIMEOUT", 2.0)
    monkeypatch.setattr(agent_module, "NOTICE_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(agent_module, "RESTART_FIRST_SECONDS", 0.05)


class Said:
    """An agent's progress lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, swap_id: str, line: str) -> None:
        self.lines.append(line)

    def any(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def pair(ledgers, tmp_path, seller_said=None, buyer_said=None):
    one, two = LocalChannel.pair("seller", "buyer")
    seller = Agent(
        "seller",
        "buyer",
        ledgers,
        ASSETS,
        Journal(tmp_path / "seller.sqlite"),
        one,
        policy=DEV_POLICY,
        progress=seller_said or Said(),
    )
    buyer = Agent(
        "buyer",
        "seller",
        ledgers,
        ASSETS,
        Journal(tmp_path / "buyer.sqlite"),
        two,
        policy=DEV_POLICY,
        progress=buyer_said or Said(),
    )
    return seller, buyer


def unanswered_pings(agent: Agent) -> asyncio.Event:
    """The agent's own pings of the peer never come back (a paused peer): the sender's call
    stays in flight until its timeout.  Set the event to answer them again."""
    answering = asyncio.Event()
    handle = agent.handle

    async def paused(message: Message) -> Message | None:
        if message.kind is Kind.PING and not answering.is_set():
            await answering.wait()
        return await handle(message)

    agent.handle = paused  # type: ignore[method-assign]
    return answering


class ClaimsWhenTold(PartyRun):
    """A secret holder that waits for the test before it claims."""

    go: asyncio.Event

    async def holder_claim(self) -> bool:
        async with asyncio.timeout(20):  # not wait_for: on 3.11 it can swallow the stop's cancel
            await self.go.wait()
        return await super().holder_claim()


async def until(check, what: str, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def outcome_of(task: asyncio.Task, seconds: float = 15.0):
    done, _ = await asyncio.wait({task}, timeout=seconds)
    assert done, "the swap's task is still running"
    assert not task.cancelled(), "the swap's task died of a CancelledError: no outcome, nothing logged"
    return task.result()


@contextlib.asynccontextmanager
async def seller_pinging_a_paused_buyer(ledgers, tmp_path):
    """The buyer holds the secret; the seller has locked its bonds and waits for the buyer's
    claim, with a ping in flight that the buyer's agent does not answer; the buyer claims
    when the test sets ``ClaimsWhenTold.go``.  Yields (seller, buyer, the seller's lines,
    the event that makes the buyer answer pings again, the swap id)."""
    said = Said()
    seller, buyer = pair(ledgers, tmp_path, seller_said=said)
    buyer.run_class = ClaimsWhenTold
    ClaimsWhenTold.go = asyncio.Event()
    answering = unanswered_pings(buyer)
    await seller.start()
    await buyer.start()
    try:
        swap_id = await seller.propose(spec(Role.BUYER))
        await until(
            lambda: any(s.step == "lock security" and s.phase == "result" for s in seller.journal.steps(swap_id)),
            "the seller's lock",
        )
        await until(lambda: seller.channel._in_flight, "a ping in flight")
        yield seller, buyer, said, answering, swap_id
    finally:
        ClaimsWhenTold.go.set()
        await seller.aclose()
        await buyer.aclose()


async def test_a_cut_ping_does_not_end_the_counterpartys_drive(ledgers, tmp_path):
    """The issue's case: the seller (counterparty) waits for the buyer's claim and pings it;
    the buyer's agent does not answer; the connection the ping is on is closed under it.
    The seller's drive goes on, reads the secret from the ledger and claims: settled."""
    async with seller_pinging_a_paused_buyer(ledgers, tmp_path) as (seller, buyer, said, answering, swap_id):
        assert seller.channel.cut() >= 1
        await asyncio.sleep(0.2)
        ClaimsWhenTold.go.set()
        answering.set()
        ours = await outcome_of(seller.tasks[swap_id])
        theirs = await outcome_of(buyer.tasks[swap_id])
    assert ours is not None and ours.outcome is Outcome.SETTLED, (ours and ours.detail, said.lines)
    assert theirs.outcome is Outcome.SETTLED, theirs.detail
    assert holdings(ledgers) == (90, 10, 1000, 9000)


async def test_a_stop_still_stops_a_drive_with_a_send_in_flight(ledgers, tmp_path):
    """aclose() while a ping is in flight: the drive ends at once, not restarted, unfinished."""
    async with seller_pinging_a_paused_buyer(ledgers, tmp_path) as (seller, _, said, _, swap_id):
        task = seller.tasks[swap_id]
        async with asyncio.timeout(3):
            await seller.aclose()
        assert task.cancelled()
        assert not said.any("driving it again")
        assert seller.journal.get(swap_id).outcome is None  # a restarted agent drives it on


async def both_outcomes(seller: Agent, buyer: Agent, swap_id: str):
    """Both agents' results for the swap (the buyer's drive starts when the proposal reaches
    it); both agents stopped after."""
    try:
        await until(lambda: swap_id in buyer.tasks, "the buyer's drive")
        return await outcome_of(seller.tasks[swap_id]), await outcome_of(buyer.tasks[swap_id])
    finally:
        await seller.aclose()
        await buyer.aclose()


class FailsOnce(PartyRun):
    """A run whose first drive dies of a bug right after its own lock."""

    failed = False

    async def lock_own(self, role):
        await super().lock_own(role)
        if not FailsOnce.failed:
            FailsOnce.failed = True
            raise RuntimeError("a bug after the lock")


async def test_a_drive_that_ends_without_an_outcome_is_restarted(ledgers, tmp_path):
    said = Said()
    seller, buyer = pair(ledgers, tmp_path, seller_said=said)
    seller.run_class = FailsOnce
    FailsOnce.failed = False
    await seller.start()
    await buyer.start()
    swap_id = await seller.propose(spec(Role.BUYER))
    ours, theirs = await both_outcomes(seller, buyer, swap_id)
    assert FailsOnce.failed
    assert said.any("internal error: RuntimeError: a bug after the lock; driving it again"), said.lines
    assert ours.outcome is Outcome.SETTLED and theirs.outcome is Outcome.SETTLED, (ours.detail, theirs.detail)
    assert holdings(ledgers) == (90, 10, 1000, 9000)


class Killed(Exception):
    """The acceptor's process dies here (in-process: its handler never answers)."""


def dies_after_journaling_the_proposal(agent: Agent) -> asyncio.Event:
    """``agent`` "dies" right after its first journal write for an incoming proposal: its
    handler never answers (the proposer's send times out).  The event is set then."""
    create = agent.journal.acreate
    dead = asyncio.Event()

    async def create_then_die(*args, **kwargs):
        await create(*args, **kwargs)
        raise Killed

    agent.journal.acreate = create_then_die  # type: ignore[method-assign]
    handle = agent.handle

    async def dies(message: Message) -> Message | None:
        try:
            return await handle(message)
        except Killed:
            dead.set()
            await asyncio.sleep(3600)
            raise

    agent.handle = dies  # type: ignore[method-assign]
    return dead


@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
async def test_an_acceptor_killed_after_its_first_journal_write_answers_the_retry(ledgers, tmp_path, holder):
    """The drill's evm-a->evm-b-buyer-1: the buyer's agent dies right after its first journal
    write for the incoming proposal and restarts; the seller's retried proposal gets the
    answer the first would have got, from the buyer's journal, and both settle."""
    seller, buyer = pair(ledgers, tmp_path)
    dead = dies_after_journaling_the_proposal(buyer)
    await seller.start()
    await buyer.start()
    swap_id = await seller.propose(spec(holder))
    async with asyncio.timeout(10):
        await dead.wait()
    await buyer.aclose()
    # The restarted agent: its journal, its channel end.
    again = Agent(
        "buyer", "seller", ledgers, ASSETS, Journal(tmp_path / "buyer.sqlite"), buyer.channel, policy=DEV_POLICY
    )
    await again.start()
    ours, theirs = await both_outcomes(seller, again, swap_id)
    assert ours.outcome is Outcome.SETTLED and theirs.outcome is Outcome.SETTLED, (ours.detail, theirs.detail)
    assert holdings(ledgers) == (90, 10, 1000, 9000)


async def test_a_proposal_journaled_but_never_agreed_ends_aborted_on_both_sides(ledgers, tmp_path):
    """A journal an agent left with the proposal's swap but no agreement (it stopped in
    between): on restart that swap ends aborted, and the proposer's retry is rejected, so
    the proposer ends aborted too; nothing is locked."""
    seller, buyer = pair(ledgers, tmp_path)
    swap_id = "halfjournaled"
    side = PartySide(party="buyer", role=Role.BUYER, peer="seller", proposer="seller")
    buyer.journal.create(swap_id, "htlc", spec().model_dump(mode="json"), HtlcSwapState(side=side).dump())
    await buyer.start()
    await seller.start()
    try:
        theirs = await outcome_of(buyer.tasks[swap_id])
        await seller.propose(spec(), swap_id=swap_id)
        ours = await outcome_of(seller.tasks[swap_id])
    finally:
        await seller.aclose()
        await buyer.aclose()
    assert theirs.outcome is Outcome.ABORTED and "nothing locked" in theirs.detail, theirs.detail
    assert ours.outcome is Outcome.ABORTED and "called the swap off" in ours.detail, ours.detail
    assert holdings(ledgers) == (100, 0, 0, 10_000)


@pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
async def test_an_acceptor_back_after_the_proposer_gave_up_locks_nothing(ledgers, tmp_path, holder):
    """The acceptor dies right after journaling the agreed proposal and is back only after the
    proposer stopped waiting for its answer (aborted, nothing moved): the acceptor's swap ends
    aborted too, nothing of its own locked, whichever of them holds the secret."""
    seller, buyer = pair(ledgers, tmp_path)
    dead = dies_after_journaling_the_proposal(buyer)
    await seller.start()
    await buyer.start()
    swap_id = await seller.propose(spec(holder, holder_timeout=24, counter_timeout=12, reaction_window=5))
    async with asyncio.timeout(10):
        await dead.wait()
    await buyer.aclose()
    ours = await outcome_of(seller.tasks[swap_id], 15)
    assert ours.outcome is Outcome.ABORTED and "never answered" in ours.detail, ours.detail
    again = Agent(
        "buyer", "seller", ledgers, ASSETS, Journal(tmp_path / "buyer.sqlite"), buyer.channel, policy=DEV_POLICY
    )
    await again.start()
    _, theirs = await both_outcomes(seller, again, swap_id)
    assert theirs.outcome is Outcome.ABORTED, theirs.detail
    assert holdings(ledgers) == (100, 0, 0, 10_000)
    assert not ledgers["a"].locks and not ledgers["b"].locks
