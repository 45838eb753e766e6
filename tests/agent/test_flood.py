"""A pinned peer floods a real honest agent (`dvp agent run`) while their swap runs (issue 23,
item 4): pings and notices naming made-up locks on the live swap, proposals under fresh ids,
and 250 connections that never finish TLS.  The seller's journal, log and open file handles
stay within the bounds its `limits:` state, every refusal over a bound says which, and the
honest swap settles all the same (notices are hints; the ledgers decide)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable

import pytest

from dvp import errors
from dvp.models import Role
from dvp.party.limits import Limits
from dvp.party.messages import Kind, Message
from dvp.terms import LegPlan, Proposal
from dvp_agent.config import load_config, save_config
from dvp_agent.grpc_channel import GrpcChannel, PeerEndpoint
from dvp_agent.identity import load_identity, load_peer_cert

from ..scenarios import SETTLED, changes, spec_for
from ..testbed import CROSS_PAIRS
from .conftest import Agents, balances, run_async
from .test_hostile import buyer_agent

pytestmark = [pytest.mark.agent, pytest.mark.timeout(300)]

# Small bounds, so a flood of seconds crosses each of them.
LIMITS = Limits(
    messages_per_minute=1200,
    messages_per_swap=100,
    proposals_per_minute=10,
    other_locks_per_swap=4,
    log_lines_per_minute=20,
    connections=8,
    handshake_seconds=3,
    idle_seconds=30,
)
FLOOD_SECONDS = 8.0
IN_FLIGHT = 24  # under the connection's 32 concurrent calls (limits.concurrent_calls)
MAX_SENDS = 20_000
HALF_OPEN = 250
# What the honest swap itself journals and logs on the seller's side (its proposal, notices,
# pings and their answers; its progress lines), with room to spare.
HONEST_ROWS = 80
HONEST_LINES = 80


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def flood_calls(
    channel: GrpcChannel, message: Callable[[int], Message], end: float, in_flight: int
) -> tuple[Counter[str], int]:
    """Send ``message(n)`` for n = 0, 1, ... until ``end`` (at most MAX_SENDS), ``in_flight`` at
    once: (answers and refusals by kind, the refusals by the limit or check named; messages sent)."""
    outcomes: Counter[str] = Counter()
    sends = itertools.count()

    async def worker() -> None:
        while time.monotonic() < end:
            n = next(sends)
            if n >= MAX_SENDS:
                return
            try:
                reply = await channel.send(message(n), timeout=3)
                outcomes[reply.kind.value if reply else "none"] += 1
            except errors.MessageRefused as exc:
                said = str(exc)
                limit = said.split("(limits.")[1].split(")")[0] if "(limits." in said else "other"
                outcomes["refused:not_its_swap" if "is not a swap with" in said else f"refused:{limit}"] += 1
            except errors.PeerUnreachable:
                outcomes["unreachable"] += 1

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return outcomes, min(next(sends), MAX_SENDS)


def message_rows(agents: Agents) -> Counter[str]:
    with sqlite3.connect(f"file:{agents.journal('seller')}?mode=ro", uri=True) as db:
        return Counter(swap_id for (swap_id,) in db.execute("SELECT swap_id FROM messages"))


def test_a_flooding_peer_is_bounded_and_the_honest_swap_settles(agents: Agents):
    pair = CROSS_PAIRS[0]
    folder = agents.folders["seller"]
    save_config(folder, load_config(folder).model_copy(update={"limits": LIMITS}))
    spec = spec_for(pair, secret_holder=Role.SELLER.value)
    before = run_async(balances(agents.run_dir))
    buyer_folder = agents.folders["buyer"]
    identity = load_identity(buyer_folder / "agent.key", buyer_folder / "agent.crt")
    seller_cert = load_peer_cert(buyer_folder / "peers" / "seller.crt", "seller")
    endpoint = f"127.0.0.1:{agents.ports['seller']}"
    seq = itertools.count(time.time_ns())

    async def flood(swap_id: str, seller_pid: int) -> tuple[Counter[str], int, int]:
        """(answers and refusals by kind, messages sent, the most file handles the seller held)."""
        flooder = GrpcChannel(identity, "127.0.0.1:0", {"seller": PeerEndpoint(endpoint, seller_cert)})
        peak = fds(seller_pid)
        fake = Proposal(
            swap_id="x",
            proposer="buyer",
            spec=spec,
            security=LegPlan(expiry=1, nonce="00" * 32),
            cash=LegPlan(expiry=1, nonce="11" * 32),
        )

        def message(n: int) -> Message:
            if n % 3 == 0:
                fresh = f"flood-{secrets.token_hex(6)}"
                return Message(
                    kind=Kind.PROPOSE,
                    swap_id=fresh,
                    sender="buyer",
                    recipient="seller",
                    seq=next(seq),
                    body=fake.model_copy(update={"swap_id": fresh}).model_dump(mode="json"),
                )
            if n % 3 == 1:
                return Message(
                    kind=Kind.LOCKED,
                    swap_id=swap_id,
                    sender="buyer",
                    recipient="seller",
                    seq=next(seq),
                    body={"leg": "cash", "lock_id": "0x" + secrets.token_hex(32)},
                )
            return Message(kind=Kind.PING, swap_id=swap_id, sender="buyer", recipient="seller", seq=next(seq))

        async def watch(end: float) -> None:
            nonlocal peak
            while time.monotonic() < end + 1:
                peak = max(peak, fds(seller_pid))
                await asyncio.sleep(0.1)

        await flooder.send(message(2), timeout=10)  # its connection first: then the half-open ones
        sockets = []
        try:
            for _ in range(HALF_OPEN):
                with_timeout = socket.create_connection(("127.0.0.1", agents.ports["seller"]), timeout=2)
                sockets.append(with_timeout)
            end = time.monotonic() + FLOOD_SECONDS
            _, (outcomes, sent) = await asyncio.gather(watch(end), flood_calls(flooder, message, end, IN_FLIGHT))
        finally:
            for s in sockets:
                s.close()
            await flooder.aclose()
        return outcomes, sent, peak

    async def play() -> tuple[str, Counter[str], int, int, int, object]:
        async with buyer_agent(agents) as (buyer, _net):
            seller = agents.start(
                "seller", "--propose", str(agents.scenario(spec)), "--until-done", "--max-seconds", "200"
            ).ready()
            swap_id = agents.first_swap("seller", 60)
            base = fds(seller.proc.pid)
            outcomes, sent, peak = await flood(swap_id, seller.proc.pid)
            for _ in range(900):  # the honest swap ends on both sides (bounded: 180 s)
                if seller.proc.poll() is not None and swap_id in buyer.tasks and buyer.tasks[swap_id].done():
                    break
                await asyncio.sleep(0.2)
            return swap_id, outcomes, sent, base, peak, buyer.tasks[swap_id].result()

    swap_id, outcomes, sent, base, peak, buyer_result = run_async(play())
    seller_log = agents.processes[0].output()
    rows = message_rows(agents)
    print(
        f"flood: {sent} messages in {FLOOD_SECONDS:.0f}s, {dict(outcomes)}; seller fds {base} -> peak {peak}, "
        f"message rows {dict(rows)}, log {len(seller_log.splitlines())} lines, {len(seller_log)} bytes"
    )
    # Every limit was crossed, and said so.
    for limit in ("messages_per_minute", "messages_per_swap", "other_locks_per_swap"):
        assert outcomes[f"refused:{limit}"] > 0, outcomes
    assert outcomes["reject"] > 0 and outcomes["accept"] == 0, outcomes
    answered = sum(n for what, n in outcomes.items() if what != "unreachable")
    assert answered > 1000, outcomes  # a flood the seller answered, not a trickle
    # The honest swap settled on both sides, each whole.
    ours = agents.record("seller", swap_id)
    assert ours.outcome == "settled", (ours.detail, seller_log[-3000:])
    assert buyer_result is not None and buyer_result.outcome.value == "settled", buyer_result
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, pair, agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)) == SETTLED
    # Journal: one swap; no row for a rejected proposal; the live swap's rows within its bound.
    assert agents.swap_ids("seller") == [swap_id]
    assert set(rows) == {swap_id}, rows
    assert rows[swap_id] <= 2 * LIMITS.messages_per_swap + HONEST_ROWS, rows
    # Log: the peer's lines rate-limited, the rest counted and said.
    lines = seller_log.splitlines()
    minutes = 1 + (FLOOD_SECONDS + 60) / 60
    assert len(lines) <= LIMITS.log_lines_per_minute * minutes + HONEST_LINES, len(lines)
    assert "similar lines suppressed" in seller_log, seller_log[-2000:]
    # File handles: the half-open connections held at most up to the server's connection cap
    # (limits.connections for each of its peers and as many again for unknown ones).
    assert peak <= base + 2 * LIMITS.connections + 8, (base, peak)
