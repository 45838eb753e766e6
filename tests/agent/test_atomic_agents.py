"""Single-ledger DvP between two agents on a real ledger (issue 22 item 3): on evm-a through
the settlement contract, on fabric-a through the chaincode, each agent submitting through its
own identity (on Fabric its own organisation's peer).  The seller's agent proposes the agreed
order, the buyer's agent audits it on the ledger and accepts; each party signs only its own
part.  On Elements the buyer's agent builds the one DvP transaction, signs only its own
inputs and sends it as a PSET; the seller's agent audits it against the agreement, signs its
own input and broadcasts."""

from __future__ import annotations

import asyncio

import pytest

from dvp import errors
from dvp.adapter import AtomicDvp
from dvp.models import DvpOrder, OrderStatus
from dvp.orchestrator import Outcome
from dvp.party.agent import Agent
from dvp.party.atomic import AtomicPartyRun
from dvp.party.messages import Kind
from dvp.state import LegName

from ..scenarios import SETTLED, UNCHANGED, changes, spec_for
from ..testbed import ELEMENTS_MARKS, FABRIC_MARKS, Pair
from .conftest import Agents, balances, run_async
from .test_hostile import NOT_SETTLED, buyer_agent, exited

pytestmark = [pytest.mark.agent, pytest.mark.timeout(300)]

EVM = Pair("evm-a", "evm-a")
FABRIC = Pair("fabric-a", "fabric-a")
ELEMENTS = Pair("elements", "elements")


def ledgers(*marks: pytest.MarkDecorator, fabric: tuple[pytest.MarkDecorator, ...] = ()) -> list:
    """A case per platform whose one ledger settles a DvP between two agents, with ``marks``
    (and ``fabric`` on fabric-a's: `make test` keeps its cost to seconds)."""
    return [
        pytest.param(EVM, id="evm-a", marks=list(marks)),
        pytest.param(FABRIC, id="fabric-a", marks=[*FABRIC_MARKS, *marks, *fabric]),
    ]


def settle(agents: Agents, pair: Pair) -> tuple[str, dict[str, set[tuple[str, str]]]]:
    """One agreed single-ledger DvP on ``pair`` between the two agents, settled on both sides
    with both balance changes exact; the swap id and each party's (step, phase) rows."""
    before = run_async(balances(agents.run_dir))
    agents.start("buyer")
    scenario = agents.scenario(spec_for(pair, kind="atomic"))
    seller = agents.start("seller", "--propose", str(scenario), "--until-done", "--max-seconds", "120")
    assert seller.wait(timeout=140) == 0, seller.output()
    swap_id = agents.swap_ids("seller")[0]
    theirs = agents.outcome("buyer", swap_id, timeout=60)
    ours = agents.record("seller", swap_id)
    assert ours is not None and (ours.outcome, theirs.outcome) == ("settled", "settled"), (ours, theirs.detail)
    assert ours.data["order_id"] == theirs.data["order_id"]
    after = run_async(balances(agents.run_dir))
    steps = agents.steps("seller", swap_id) + agents.steps("buyer", swap_id)
    assert changes(before, after, pair, steps) == SETTLED
    return swap_id, {p: {(s.step, s.phase) for s in agents.steps(p, swap_id)} for p in ("seller", "buyer")}


@pytest.mark.parametrize("pair", ledgers())
def test_two_agents_settle_a_single_ledger_dvp(agents: Agents, pair: Pair):
    """Settled in one transaction: both balance changes exact, each journal only its own step."""
    swap_id, rows = settle(agents, pair)
    done = {p: {step for step, phase in rows[p] if phase == "result"} for p in ("seller", "buyer")}
    assert "propose" in done["seller"] and "settle" not in done["seller"], done
    assert "settle" in done["buyer"] and "propose" not in done["buyer"], done
    sent = [m["kind"] for m in agents.messages("seller", swap_id) if m["direction"] == "out"]
    assert sent[0] == "propose" and "locked" in sent, sent


class WalksAway(AtomicPartyRun):
    """A buyer that agreed, then never accepts."""

    async def as_buyer(self) -> tuple[Outcome, str]:
        return Outcome.ABORTED, "walked away"


class WalkingAwayAgent(Agent):
    atomic_run_class = WalksAway


@pytest.mark.parametrize("pair", ledgers(pytest.mark.matrix))
def test_a_buyer_that_walks_away_finds_the_order_cancelled(agents: Agents, pair: Pair):
    """The seller cancels its order on the ledger once the accept window is over: aborted, the
    seller whole but for its fees (ETH on evm-a, none on Fabric), and the buyer's acceptance afterwards is refused."""
    before = run_async(balances(agents.run_dir))
    spec = spec_for(pair, kind="atomic", holder_timeout=60, counter_timeout=15)

    async def play() -> str:
        async with buyer_agent(agents, WalkingAwayAgent) as (_, ledger_set):
            scenario = agents.scenario(spec)
            seller = agents.start("seller", "--propose", str(scenario), "--until-done", "--max-seconds", "120")
            assert await exited(seller, 140) == NOT_SETTLED, seller.output()
            swap_id = agents.swap_ids("seller")[0]
            ours = agents.record("seller", swap_id)
            assert ours is not None and ours.outcome == "aborted", ours
            detail = ours.detail or ""
            assert (
                "did not accept within the accept window" in detail and f"order cancelled on {pair.security}" in detail
            ), detail
            done = [s.step for s in agents.steps("seller", swap_id) if s.phase == "result"]
            assert done == ["propose", "cancel"], done
            base = ledger_set.ledgers[pair.security]
            adapter = base.require(AtomicDvp)
            found = await adapter.get_order(ours.data["order_id"])
            assert found is not None and found.status is OrderStatus.CANCELLED
            # The buyer's acceptance after the cancellation (its own identity): refused by the
            # contract or chaincode itself.
            with pytest.raises(errors.TransactionError):
                await base.wait_all(await adapter.accept_dvp(DvpOrder.model_validate(ours.data["order"])))
            return swap_id

    swap_id = asyncio.run(play())
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, pair, agents.steps("seller", swap_id)) == UNCHANGED


class TamperedOrder(AtomicPartyRun):
    """A seller that proposes an order of one bond fewer than agreed, names it to the buyer,
    and cancels it after a while (the test's own funds)."""

    async def as_seller(self) -> tuple[Outcome, str]:
        base, adapter = self.steps.ledgers[self.run.ledger], self.run.adapter
        order = self.order.model_copy(update={"security_amount": self.order.security_amount - 1})
        await base.wait_all(await adapter.propose_dvp(order))
        await self._notify(self.steps.id, Kind.LOCKED, LegName.SECURITY, adapter.order_id(order))
        await asyncio.sleep(2)
        await base.wait_all(await adapter.cancel_dvp(order))
        return Outcome.ABORTED, "tampered"


class TamperingAgent(Agent):
    atomic_run_class = TamperedOrder


@pytest.mark.parametrize("pair", ledgers(fabric=(pytest.mark.matrix,)))
def test_the_buyer_refuses_a_tampered_order(agents: Agents, pair: Pair):
    """The order on the ledger is for another amount than agreed: the honest buyer's audit
    refuses it before accepting, and nothing of the buyer's moves."""
    before = run_async(balances(agents.run_dir))

    async def play() -> None:
        buyer = agents.start("buyer").ready()
        async with buyer_agent(agents, TamperingAgent, party="seller") as (seller, _):
            swap_id = await seller.propose(spec_for(pair, kind="atomic"))
            theirs = await asyncio.to_thread(agents.outcome, "buyer", swap_id, 60)
            assert theirs.outcome == "aborted", theirs.detail
            detail = theirs.detail or ""
            assert "is not the agreed order" in detail and "nothing of mine moved" in detail, detail
            assert "settle" not in {s.step for s in agents.steps("buyer", swap_id)}
            await seller.tasks[swap_id]
        buyer.stop()

    asyncio.run(play())
    after = run_async(balances(agents.run_dir))
    moved = changes(before, after, pair)
    assert (moved["buyer_cash"], moved["buyer_security"]) == (0, 0), moved


# -- Elements: the buyer's half as a PSET -----------------------------------------------------------


@pytest.mark.parametrize("_", [pytest.param(None, id="elements", marks=ELEMENTS_MARKS)])
def test_two_agents_settle_a_cosigned_dvp_on_elements(agents: Agents, _):
    """The buyer signs its inputs only and sends a PSET; the seller audits it, signs its order
    input and broadcasts: settled, both balance changes exact (the fee, the buyer's, as journaled)."""
    swap_id, rows = settle(agents, ELEMENTS)
    assert {("propose", "result"), ("settle", "result")} <= rows["seller"], rows
    assert ("settle", "skipped") in rows["buyer"] and ("settle", "result") not in rows["buyer"], rows
    settled = [s for s in agents.steps("seller", swap_id) if s.step == "settle" and s.phase == "final"]
    assert [s.detail["payer"] for s in settled] == ["buyer"] and int(settled[0].detail["fee"]) > 0, settled
    sent = {p: [m["kind"] for m in agents.messages(p, swap_id) if m["direction"] == "out"] for p in ("seller", "buyer")}
    assert "signed" in sent["buyer"] and "signed" not in sent["seller"], sent
