"""Each party's agent killed with SIGKILL right after one of its journal writes, and
restarted: both sides end settled or refunded, and no value is created or destroyed.

`make test` drills both agents at a spread of writes on evm-a/evm-b and one write per
other platform; the marker ``matrix`` (`make test-drills`) drills every write on evm-a/evm-b and
evm-a/btc, and the spread on each Fabric and Elements base pair.  A single-ledger DvP between
two agents is drilled at every write of either agent on evm-a and fabric-a, one case each in
`make test`."""

from __future__ import annotations

import time

import pytest

from dvp.adapter import AtomicDvp
from dvp.journal import SwapRecord
from dvp.ledger_set import LedgerSet
from dvp.models import OrderStatus

from ..scenarios import assert_conserved, spec_for
from ..testbed import CROSS_PAIRS, ELEMENTS_MARKS, FABRIC_MARKS, Pair, platform_matrix
from .conftest import Agents, balances, run_async

pytestmark = [pytest.mark.agent, pytest.mark.slow]

ENDED = {"settled", "refunded"}
ATOMIC_ENDED = {"settled", "aborted"}
# A happy swap is about 20 journal writes per agent (rows, messages, state).
EVERY_WRITE = range(1, 25)


def drill(
    agents: Agents, pair: Pair, victim: str, write: int, *, must_crash: bool = True, kind: str | None = None
) -> list[SwapRecord]:
    before = run_async(balances(agents.run_dir))
    # The victim's restart (a new process, its journal read, the channel re-made) takes seconds; on
    # ledgers without time travel 30/15 s left the holder too little to lock first after it
    # (both sides then abort before anything locks: safe, but not what the drill tries).
    scenario = str(agents.scenario(spec_for(pair, kind=kind, holder_timeout=60, counter_timeout=30)))
    crash = {victim: write}
    agents.start("buyer", crash_after=crash.get("buyer"))
    first = agents.start("seller", "--propose", scenario, crash_after=crash.get("seller"))
    victims = [p for p in agents.processes if p.party == victim]
    swap_id = agents.first_swap("seller", timeout=60)
    restarted = False
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if not restarted and victims[0].proc.poll() is not None:
            assert victims[0].proc.returncode == -9, victims[0].output()  # killed by the seam, nothing else
            agents.start(victim)  # the same folder and journal, no proposal: it resumes
            restarted = True
        records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
        if all(r is not None and r.outcome for r in records):
            break
        time.sleep(0.25)
    records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
    outcomes = [r.outcome if r else None for r in records]
    # A drill whose write lies beyond the swap's last (the matrix's tail) runs undisturbed.
    assert restarted or not must_crash, f"the {victim}'s agent made fewer than {write} journal writes"
    # A single-ledger swap settles or is called off (its order cancelled): the same on both sides.
    ended = ATOMIC_ENDED if kind == "atomic" else ENDED
    assert set(outcomes) <= ended and None not in outcomes and (kind != "atomic" or len(set(outcomes)) == 1), (
        outcomes,
        [r.detail if r else None for r in records],
        first.output()[-2000:],
    )
    agents.stop_all()
    after = run_async(balances(agents.run_dir))
    assert_conserved(before, after, agents.steps("seller", swap_id) + agents.steps("buyer", swap_id))
    return [r for r in records if r is not None]


@pytest.mark.parametrize("write", [2, 9, 17])
@pytest.mark.parametrize("victim", ["seller", "buyer"])
@pytest.mark.parametrize("pair", [CROSS_PAIRS[0], *platform_matrix()], ids=lambda p: p.id)
def test_agent_crash_drill(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write)


# One drilled agent per other platform in `make test`.
PLATFORM_DRILLS = [
    pytest.param(CROSS_PAIRS[1], "buyer", 9, id="btc-buyer-9"),
    pytest.param(Pair("elements", "evm-a"), "seller", 9, id="elements-seller-9", marks=ELEMENTS_MARKS),
    pytest.param(Pair("fabric-a", "evm-a"), "seller", 9, id="fabric-seller-9", marks=FABRIC_MARKS),
]


@pytest.mark.parametrize(("pair", "victim", "write"), PLATFORM_DRILLS)
def test_agent_crash_drill_per_platform(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write)


@pytest.mark.matrix
@pytest.mark.parametrize("write", EVERY_WRITE)
@pytest.mark.parametrize("victim", ["seller", "buyer"])
@pytest.mark.parametrize("pair", CROSS_PAIRS, ids=lambda p: p.id)
def test_agent_crash_drill_every_write(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write, must_crash=False)


async def order_status(agents: Agents, ledger: str, order_id: str) -> OrderStatus | None:
    async with LedgerSet.from_run_dir(agents.run_dir) as ledger_set:
        found = await ledger_set.ledgers[ledger].require(AtomicDvp).get_order(order_id)
        return found.status if found else None


# A single-ledger DvP between two agents (issue 22 item 3): about 10 journal writes per agent.
ATOMIC_WRITES = range(1, 13)
ATOMIC_LEDGERS = [
    (Pair("evm-a", "evm-a"), []),
    (Pair("fabric-a", "fabric-a"), FABRIC_MARKS),
    (Pair("elements", "elements"), ELEMENTS_MARKS),
]
# `make test` drills the seller after its 5th write (its order on the ledger) on evm-a, the
# buyer after its 5th on fabric-a, and the seller on elements after its 9th; the rest under `matrix`.
IN_MAKE_TEST = {("evm-a", "seller", 5), ("fabric-a", "buyer", 5), ("elements", "seller", 9)}
ATOMIC_DRILLS = [
    pytest.param(
        pair,
        victim,
        w,
        id=f"{pair.security}-{victim}-{w}",
        marks=[*marks, *([] if (pair.security, victim, w) in IN_MAKE_TEST else [pytest.mark.matrix])],
    )
    for pair, marks in ATOMIC_LEDGERS
    for victim in ("seller", "buyer")
    for w in ATOMIC_WRITES
]


@pytest.mark.parametrize(("pair", "victim", "write"), ATOMIC_DRILLS)
def test_agent_crash_drill_single_ledger(agents: Agents, pair: Pair, victim: str, write: int):
    """Either agent killed after a write of a single-ledger DvP (on evm-a, fabric-a, elements) and
    restarted: both end settled, or both aborted with the order cancelled on the ledger, never
    left open."""
    # Every agent makes at least 5 writes; the matrix's tail may lie beyond a swap's last.
    records = drill(agents, pair, victim, write, must_crash=write <= 5, kind="atomic")
    order_id = records[0].data.get("order_id")
    if order_id:
        status = run_async(order_status(agents, pair.security, order_id))
        assert status is not OrderStatus.OPEN, (order_id, [r.detail for r in records])
        if records[0].outcome == "settled":
            assert status is OrderStatus.SETTLED
