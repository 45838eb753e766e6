"""A hostile counterparty against a real honest agent process, on real ledgers.

The honest seller is a `dvp agent run` process; the buyer is played in the test process by a
hostile agent (:mod:`dvp.testing.hostile`) from the buyer's own agent folder: its keys, its
certificate, its journal.  Whatever the buyer does, the seller ends whole and says why."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager

import pytest

from dvp import errors
from dvp.adapter import TimeTravel
from dvp.journal import Journal
from dvp.ledger_set import LedgerSet
from dvp.models import Role
from dvp.orchestrator import Outcome
from dvp.party.agent import Agent
from dvp.party.keys import load_party_file
from dvp.party.messages import Kind, Message, next_seq
from dvp.testing.hostile import LIES, MALFORMED_LOCK_ID, Misbehaviour, Replay, hostile_agent
from dvp_agent import grpc_channel
from dvp_agent.config import load_config
from dvp_agent.envelope import seal
from dvp_agent.grpc_channel import GrpcChannel, PeerEndpoint
from dvp_agent.identity import create_identity, load_identity, load_peer_cert

from ..scenarios import CASH_AMOUNT, SETTLED, UNCHANGED, changes, spec_for
from ..testbed import CROSS_PAIRS, LEDGERS, Pair, platform_matrix
from .conftest import AgentProcess, Agents, balances, run_async

pytestmark = [pytest.mark.agent, pytest.mark.timeout(420)]

NOT_SETTLED = 6  # `dvp agent run --until-done`: a swap ended other than settled
# Where the buyer never locks, the seller waits out the counter leg's time by the wall clock:
# the shortest plan every pair accepts.
SHORT_PLAN = {"holder_timeout": 30, "counter_timeout": 15}


@asynccontextmanager
async def buyer_agent(agents: Agents, agent_class: type[Agent] = Agent, party: str = "buyer"):
    """The buyer's (or ``party``'s) agent, in this process, from its own folder (as `dvp agent
    run` builds it), with every peer it pinned."""
    folder = agents.folders[party]
    config = load_config(folder)
    identity = load_identity(config.path(folder, config.key), config.path(folder, config.cert))
    peers = {
        p.party: PeerEndpoint(p.endpoint, load_peer_cert(config.path(folder, p.cert_file), p.party))
        for p in config.peers
    }
    channel = GrpcChannel(identity, config.listen, peers)
    async with LedgerSet.from_state(load_party_file(config.path(folder, config.ledgers))) as ledger_set:
        journal = Journal(config.path(folder, config.journal))
        buyer = agent_class(
            config.party,
            list(peers),
            ledger_set.ledgers,
            ledger_set.assets,
            journal,
            channel,
            policy=config.policy,
            policies=config.policies(),
            progress=lambda swap_id, message: print(party, swap_id, message),
        )
        await buyer.start()
        try:
            yield buyer, ledger_set
        finally:
            await buyer.aclose()
            journal.close()


async def exited(process: AgentProcess, seconds: float) -> int:
    """The process's exit code, waiting without blocking this process's agent."""
    deadline = time.monotonic() + seconds
    while (code := process.proc.poll()) is None:
        assert time.monotonic() < deadline, f"{process.party}'s agent still running after {seconds:.0f}s"
        await asyncio.sleep(0.25)
    return code


async def let_expire(buyer: Agent, ledger_set: LedgerSet, pair: Pair, swap_id: str) -> None:
    """Move the pair's ledgers past the locks' expiries (a dev chain's clock stands still
    between blocks; a late revealer watches the seller's ledger, a refund the buyer's own)
    until the buyer's drive, refunding whatever it locked, ends."""
    task = buyer.tasks.get(swap_id)
    adapters = [ledger_set.ledgers[name] for name in dict.fromkeys((pair.cash, pair.security))]
    for _ in range(60):
        if task is None or task.done():
            return
        for adapter in adapters:
            if isinstance(adapter, TimeTravel):
                await adapter.advance_time(20)
        await asyncio.sleep(1)
    raise AssertionError(f"the hostile buyer's drive of {swap_id} did not end")


def refusal(misbehaviour: Misbehaviour, pair: Pair) -> str:
    """What the honest seller names as the cause, by ledger: an EVM lock id covers every term,
    so a tampered lock is another lock, named by the buyer's notice; a Bitcoin lock id is its
    script, which has no amount, so a smaller lock sits under the agreed id and fails its audit."""
    if misbehaviour in LIES:
        return re.escape(f"the 'buyer' lock never appeared on {pair.cash} while there was time to claim it")
    if misbehaviour is Misbehaviour.OTHER_HASHLOCK:
        return rf"the cash lock \w+ on {pair.cash} differs from the agreed terms: hashlock [0-9a-f]{{64}} \(agreed [0-9a-f]{{64}}\)"
    if pair.cash == "btc":
        return rf"refused the cash lock: .*amount.*{CASH_AMOUNT // 2}"
    return re.escape(f"differs from the agreed terms: amount {CASH_AMOUNT // 2} (agreed {CASH_AMOUNT})")


# `make test` runs every case on evm-a/evm-b and the tampered amount on btc too (its audit is the
# script's, not a lock id's); the rest on btc, and every case on each Fabric and Elements base
# pair (a Fabric lock id covers every term, as an EVM one), have the marker `matrix` (`make test-drills`).
ON_BOTH = (Misbehaviour.SMALLER_AMOUNT,)
MATRIX = [pytest.mark.matrix]
COUNTER_MISBEHAVIOURS = (Misbehaviour.SMALLER_AMOUNT, Misbehaviour.OTHER_HASHLOCK, Misbehaviour.NEVER_LOCKS)
HOSTILE_CASES = [
    pytest.param(pair, m, id=f"{m.value}-{pair.id}", marks=[] if pair == CROSS_PAIRS[0] or m in ON_BOTH else MATRIX)
    for pair in CROSS_PAIRS
    for m in COUNTER_MISBEHAVIOURS
] + [case for m in COUNTER_MISBEHAVIOURS for case in platform_matrix(m, name=f"{m.value}-")]
# The channel's and the journal's refusals do not depend on the ledgers: btc under `matrix`.
PAIRS_EVM_FIRST = [CROSS_PAIRS[0], pytest.param(CROSS_PAIRS[1], id=CROSS_PAIRS[1].id, marks=MATRIX)]


def against_evm(*values, name: str = "") -> list:
    """A case per Fabric and Elements base pair against EVM cash (fabric-a/evm-a, elements/evm-a),
    each under `matrix`: the lies and tampered terms the honest side must see through there too."""
    return [case for case in platform_matrix(*values, name=name) if case.values[0].cash == "evm-a"]


# Replays are refused by the agent's journal, whatever the ledgers: one pair in `make test`.
HOSTILE_CASES += [
    pytest.param(CROSS_PAIRS[0], Misbehaviour.REPLAY, id=f"replay-{CROSS_PAIRS[0].id}"),
    *against_evm(Misbehaviour.REPLAY, name="replay-"),
]


@pytest.mark.parametrize(("pair", "misbehaviour"), HOSTILE_CASES)
def test_honest_agent_refuses_a_hostile_counterparty(agents: Agents, pair: Pair, misbehaviour: Misbehaviour):
    """The seller holds the secret and locks first; the hostile buyer cheats on its own lock
    (a real lock of its own funds, announced by a notice naming it) or never locks."""
    before = run_async(balances(agents.run_dir))
    plan = SHORT_PLAN if misbehaviour in LIES else {}
    spec = spec_for(pair, secret_holder=Role.SELLER.value, **plan)

    async def play() -> tuple[str, str, list[Replay]]:
        async with buyer_agent(agents, hostile_agent(misbehaviour)) as (buyer, ledger_set):
            seller = agents.start(
                "seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "240"
            )
            assert await exited(seller, 280) == NOT_SETTLED, seller.output()
            [swap_id] = agents.swap_ids("seller")
            await let_expire(buyer, ledger_set, pair, swap_id)
            hostile = buyer.tasks[swap_id].result()
            return swap_id, f"{hostile.outcome}: {hostile.detail}" if hostile else "unfinished", buyer.replays

    swap_id, hostile, replays = run_async(play())
    ours = agents.record("seller", swap_id)
    print("honest seller:", ours.outcome, ours.detail)
    assert ours.outcome == "refunded", ours.detail
    assert re.search(refusal(misbehaviour, pair), ours.detail), ours.detail
    assert ours.detail.endswith("; refunded my security leg"), ours.detail
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    # Nobody gained or lost a leg: the hostile buyer took its own lock back too.
    assert changes(before, after, pair, steps) == UNCHANGED, hostile
    if misbehaviour is Misbehaviour.REPLAY:  # its LOCKED notice again, as signed, then with another lock id
        assert [r.message.seq for r in replays] == [replays[0].message.seq] * 2, replays
        assert all(r.refused and "replayed or reordered message" in r.refused for r in replays), replays


@pytest.mark.parametrize("pair", PAIRS_EVM_FIRST + against_evm(), ids=lambda p: p.id)
def test_false_notices(agents: Agents, pair: Pair):
    """The buyer never locks and names locks that do not exist (one under an id its ledger
    cannot even read) and a claim it did not make: the seller refunds its own lock."""
    before = run_async(balances(agents.run_dir))
    spec = spec_for(pair, secret_holder=Role.SELLER.value, **SHORT_PLAN)

    async def play() -> tuple[str, str]:
        async with buyer_agent(agents, hostile_agent(Misbehaviour.FALSE_NOTICES)):
            seller = agents.start(
                "seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "240"
            )
            assert await exited(seller, 280) == NOT_SETTLED, seller.output()
        [swap_id] = agents.swap_ids("seller")
        return swap_id, seller.output()

    swap_id, output = run_async(play())
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "refunded", output[-2000:]
    assert re.search(refusal(Misbehaviour.NEVER_LOCKS, pair), ours.detail), ours.detail
    named = {
        s.detail.get("lock_id")
        for s in agents.steps("seller", swap_id)
        if s.phase == "skipped" and s.detail.get("reason", "").startswith("false notice")
    }
    assert MALFORMED_LOCK_ID in named and len(named) >= 2, named
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, pair, agents.steps("seller", swap_id)) == UNCHANGED


# Refused before anything is locked, so cheap: fabric-a/evm-a in `make test` as well.
WRONG_KEY_PAIRS = PAIRS_EVM_FIRST + [
    pytest.param(case.values[0], id=case.id, marks=[m for m in case.marks if m.name != "matrix"])
    if case.values[0].security == "fabric-a"
    else case
    for case in against_evm()
]


@pytest.mark.parametrize("pair", WRONG_KEY_PAIRS, ids=lambda p: p.id)
def test_message_signed_by_the_wrong_key(agents: Agents, pair: Pair, tmp_path, monkeypatch):
    """The buyer's own TLS identity but every message signed by another key, then a client
    whose certificate names the buyer but is not the pinned one: the honest seller takes
    nothing from either, agrees nothing, and says why."""
    mallory = create_identity(tmp_path / "mallory", "buyer")
    before = run_async(balances(agents.run_dir))
    # Every envelope this process seals (the buyer's requests and its replies) is mallory's.
    monkeypatch.setattr(grpc_channel, "seal", lambda message, identity: seal(message, mallory))

    async def play() -> tuple[str, str]:
        async with buyer_agent(agents) as (buyer, _net):
            serving = agents.start("seller", "--max-seconds", "120")
            # The buyer proposes (retrying until the seller's agent listens): refused.
            theirs = await buyer.propose(spec_for(pair, secret_holder=Role.BUYER.value))
            async with asyncio.timeout(60):
                result = await buyer.tasks[theirs]
            assert result is not None and result.outcome is Outcome.ABORTED, result
            assert (
                "refused the propose message: signature of message from 'buyer' does not verify with buyer's "
                "certificate" in result.detail
            ), result.detail
            # mallory's own certificate: the seller's agent ends the TLS handshake.
            endpoint = PeerEndpoint(buyer.channel.peers["seller"].endpoint, buyer.channel.peers["seller"].cert)
            impostor = GrpcChannel(mallory, "127.0.0.1:0", {"seller": endpoint})
            try:
                with pytest.raises(errors.PeerUnreachable, match="did not answer"):
                    await impostor.send(
                        Message(
                            kind=Kind.PROPOSE, swap_id="mallory1", sender="buyer", recipient="seller", seq=next_seq(0)
                        ),
                        timeout=5,
                    )
            finally:
                await impostor.aclose()
            serving.stop()
            # The seller proposes: the buyer's acceptance does not verify, so nothing is agreed.
            spec = spec_for(pair, secret_holder=Role.SELLER.value)
            seller = agents.start(
                "seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "120"
            )
            assert await exited(seller, 150) == NOT_SETTLED, seller.output()
            [ours] = agents.swap_ids("seller")
            return theirs, ours

    theirs, ours = run_async(play())
    assert agents.record("seller", theirs) is None and agents.record("seller", "mallory1") is None
    record = agents.record("seller", ours)
    assert record.outcome == "aborted", record.detail
    assert record.detail == (
        "the proposal was refused: signature of message from 'buyer' does not verify with "
        "buyer's certificate; nothing moved"
    ), record.detail
    assert not [m for m in agents.messages("seller", ours) if m["direction"] == "in"], agents.messages("seller", ours)
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, pair) == UNCHANGED


async def block_clock(ledger_set: LedgerSet, pair: Pair) -> None:
    """A block a second on the pair's testbed chains that mine none by themselves (btc,
    Elements: block_time 0), as a real chain's clock moves while both sides wait: a counterparty
    waiting for the holder's claim does not mine, nor does a holder waiting for the last second."""
    clockless = [
        ledger_set.ledgers[spec.name]
        for spec in LEDGERS
        if spec.name in (pair.security, pair.cash) and spec.options.get("block_time") == 0
    ]
    for _ in range(600):
        for adapter in clockless:
            if isinstance(adapter, TimeTravel):
                await adapter.advance_time(1)
        await asyncio.sleep(1)


async def seller_against(
    agents: Agents, misbehaviour: Misbehaviour, spec, pair: Pair, exits: tuple[int, ...] = (NOT_SETTLED,)
) -> str:
    """The honest seller's process proposes ``spec`` to a hostile buyer and ends (with one of
    ``exits``); the buyer's drive then runs to its own end (refunding what it locked); the swap id."""
    async with buyer_agent(agents, hostile_agent(misbehaviour)) as (buyer, ledger_set):
        seller = agents.start("seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "240")
        clock = asyncio.create_task(block_clock(ledger_set, pair))
        try:
            assert await exited(seller, 280) in exits, seller.output()
        finally:
            clock.cancel()
        [swap_id] = agents.swap_ids("seller")
        await let_expire(buyer, ledger_set, pair, swap_id)
        return swap_id


def assert_unchanged(agents: Agents, pair: Pair, before, swap_id: str) -> None:
    """Neither party gained or lost any of the trade's assets (fees from both journals)."""
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == UNCHANGED


# The rest of the tampered locks, on EVM cash (evm-a/evm-b in `make test`; fabric-a/evm-a and
# elements/evm-a under `matrix`): an EVM lock id covers every term, so each is another lock, and
# the seller names the term that differs.
TAMPERED_FIELD = {
    Misbehaviour.SHORT_EXPIRY: "expiry",
    Misbehaviour.WRONG_RECIPIENT: "recipient",
    Misbehaviour.WRONG_ASSET: "asset",
}


TAMPERED_CASES = [pytest.param(CROSS_PAIRS[0], m, id=m.value) for m in TAMPERED_FIELD] + [
    case for m in TAMPERED_FIELD for case in against_evm(m, name=f"{m.value}-")
]


@pytest.mark.parametrize(("pair", "misbehaviour"), TAMPERED_CASES)
def test_hostile_counterparty_tampers_another_term(agents: Agents, pair: Pair, misbehaviour: Misbehaviour):
    before = run_async(balances(agents.run_dir))
    spec = spec_for(pair, secret_holder=Role.SELLER.value)
    swap_id = run_async(seller_against(agents, misbehaviour, spec, pair))
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "refunded", ours.detail
    field = TAMPERED_FIELD[misbehaviour]
    assert re.search(rf"differs from the agreed terms: .*\b{field} ", ours.detail), ours.detail
    assert_unchanged(agents, pair, before, swap_id)


# evm-a/evm-b in `make test`; each Fabric and Elements base pair under `matrix`.
BAD_HOLDER_CASES = [
    case
    for m in (Misbehaviour.SHORT_EXPIRY, Misbehaviour.OTHER_HASHLOCK)
    for case in [pytest.param(CROSS_PAIRS[0], m, id=m.value), *platform_matrix(m, name=f"{m.value}-")]
]


@pytest.mark.parametrize(("pair", "misbehaviour"), BAD_HOLDER_CASES)
def test_hostile_secret_holder_locks_first_with_bad_terms(agents: Agents, pair: Pair, misbehaviour: Misbehaviour):
    """The buyer holds the secret and locks first, with a shorter expiry or another hashlock
    than agreed: the honest seller never locks its bonds (the principal-risk case Stella warns
    of needs the honest side to lock against a lock that does not protect it)."""
    before = run_async(balances(agents.run_dir))
    # Short: the hostile holder waits out the seller's leg by the wall clock before it refunds.
    spec = spec_for(pair, secret_holder=Role.BUYER.value, **SHORT_PLAN)
    swap_id = run_async(seller_against(agents, misbehaviour, spec, pair))
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "aborted", ours.detail
    field = "expiry" if misbehaviour is Misbehaviour.SHORT_EXPIRY else "hashlock"
    assert re.search(rf"differs from the agreed terms: .*\b{field} ", ours.detail), ours.detail
    assert "nothing of mine was locked" in ours.detail, ours.detail
    assert not [s for s in agents.steps("seller", swap_id) if s.step == "lock security"]
    assert_unchanged(agents, pair, before, swap_id)


SELLER_SIDE = ("seller_security", "seller_cash")


@pytest.mark.parametrize("pair", [pytest.param(CROSS_PAIRS[0], marks=MATRIX), *platform_matrix()], ids=lambda p: p.id)
def test_hostile_secret_holder_reveals_at_the_last_second(agents: Agents, pair: Pair):
    """The buyer holds the secret and claims the seller's bonds one second (by their ledger's
    clock) before the seller's lock expires: the seller still has the gap between the two
    expiries to claim the buyer's cash.  Settled, the seller's change is exactly its trade; if
    the ledger refused the hostile's late claim, the seller refunded its bonds: no change. It
    never loses its principal."""
    before = run_async(balances(agents.run_dir))
    spec = spec_for(pair, secret_holder=Role.BUYER.value, **SHORT_PLAN)
    swap_id = run_async(seller_against(agents, Misbehaviour.LATE_REVEAL, spec, pair, exits=(0, NOT_SETTLED)))
    ours = agents.record("seller", swap_id)
    print("honest seller:", ours.outcome, ours.detail)
    assert ours.outcome in ("settled", "refunded"), ours.detail
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    theirs = agents.record("buyer", swap_id)
    print("hostile buyer:", theirs and theirs.outcome, theirs and theirs.detail)
    expected = SETTLED if ours.outcome == "settled" else UNCHANGED
    change = changes(before, after, pair, steps)
    assert {k: change[k] for k in SELLER_SIDE} == {k: expected[k] for k in SELLER_SIDE}, (change, ours.detail)
    if ours.outcome == "settled":  # the hostile's claim is journaled at most a second before the expiry
        [claim] = [s for s in agents.steps("buyer", swap_id) if s.step == "claim security" and s.phase == "intent"]
        expiry = ours.data["terms_security"]["expiry"]
        assert expiry - claim.ledger_time <= 1, (expiry, claim.ledger_time)
