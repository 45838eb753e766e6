"""Single-ledger DvP between two agents on a real ledger (issue 22 item 3): on evm-a through
the settlement contract, on fabric-a through the chaincode, each agent submitting through its
own identity (on Fabric its own organisation's peer).  The seller's agent proposes the agreed
order, the buyer's agent audits it on the ledger and accepts; each party signs only its own
part.  On Elements the buyer's agent builds the one DvP transaction, signs only its own
inputs and sends it as a PSET; the seller's agent audits it against the agreement, signs its
own input and broadcasts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import transaction_pb2

from dvp import errors
from dvp.adapter import AtomicDvp, CosignedDvp
from dvp.ledger_set import LedgerSet
from dvp.models import DvpOrder, OrderStatus
from dvp.orchestrator import Outcome
from dvp.party.agent import Agent
from dvp.party.atomic import AtomicPartyRun
from dvp.party.keys import load_party_file
from dvp.party.messages import Kind
from dvp.state import LegName
from dvp_agent.config import load_config
from dvp_fabric.adapter import FabricAdapter
from dvp_fabric.network import ORGS
from dvp_utxo.boundary import utxo_errors
from dvp_utxo.elements.adapter import ElementsAdapter
from dvp_utxo.elements.dvp_tx import DvpTx, finalize_dvp, sign_dvp
from dvp_utxo.keys import Key

from ..scenarios import SETTLED, UNCHANGED, changes, spec_for
from ..testbed import ELEMENTS_MARKS, FABRIC_MARKS, Pair
from .conftest import Agents, balances, run_async
from .test_hostile import NOT_SETTLED, buyer_agent, exited

pytestmark = [pytest.mark.agent, pytest.mark.timeout(300)]

EVM = Pair("evm-a", "evm-a")
FABRIC = Pair("fabric-a", "fabric-a")
ELEMENTS = Pair("elements", "elements")
OTHER = Key.dev("elements-test", "not-the-seller")


def ledgers(
    *marks: pytest.MarkDecorator,
    fabric: tuple[pytest.MarkDecorator, ...] = (),
    elements: tuple[pytest.MarkDecorator, ...] | None = None,
) -> list:
    """A case per platform whose one ledger settles a DvP between two agents, with ``marks``
    (and ``fabric`` on fabric-a's: `make test` keeps its cost to seconds; ``elements``, when
    given, adds the elements case with these marks)."""
    cases = [
        pytest.param(EVM, id="evm-a", marks=list(marks)),
        pytest.param(FABRIC, id="fabric-a", marks=[*FABRIC_MARKS, *marks, *fabric]),
    ]
    if elements is not None:
        cases.append(pytest.param(ELEMENTS, id="elements", marks=[*ELEMENTS_MARKS, *marks, *elements]))
    return cases


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
    if pair == FABRIC:  # each party's one transaction, signed by its own org's identity only
        for party, step in (("seller", "propose"), ("buyer", "settle")):
            (tx_id,) = {s.tx_id for s in agents.steps(party, swap_id) if s.step == step and s.tx_id}
            run_async(signed_by_its_own_agent(agents, pair.security, party, tx_id))


async def signed_by_its_own_agent(agents: Agents, ledger: str, party: str, tx_id: str) -> None:
    """On Fabric: ``party``'s agent holds only its own credentials, sends through its own
    organisation's peer, and transaction ``tx_id`` (as committed) was signed by that identity."""
    folder = agents.folders[party]
    config = load_config(folder)
    state = load_party_file(config.path(folder, config.ledgers))
    parties = state["ledgers"][ledger]["config"]["parties"]
    assert [p for p, c in parties.items() if c["msp_dir"] or c["key"]] == [party], parties
    own = parties[party]
    assert own["peer"] == next(o.key for o in ORGS if o.msp_id == own["msp_id"]), own
    async with LedgerSet.from_state({"ledgers": {ledger: state["ledgers"][ledger]}}) as ledger_set:
        adapter = ledger_set.ledgers[ledger]
        assert isinstance(adapter, FabricAdapter)
        qscc = adapter.contract(party).channel.get_contract("qscc")
        raw = await qscc.evaluate("GetTransactionByID", adapter.config.channel, tx_id)
    processed = transaction_pb2.ProcessedTransaction.FromString(raw)
    assert processed.validationCode == transaction_pb2.TxValidationCode.VALID
    header = common_pb2.Payload.FromString(processed.transactionEnvelope.payload).header
    creator = common_pb2.SignatureHeader.FromString(header.signature_header).creator
    signer = identities_pb2.SerializedIdentity.FromString(creator)
    assert (signer.mspid, signer.id_bytes) == (own["msp_id"], Path(own["cert"]).read_bytes()), signer.mspid


class WalksAway(AtomicPartyRun):
    """A buyer that agreed, then never accepts; on Elements it signs its half once the order
    is open and keeps it (``halves``) instead of sending it."""

    halves: list[str] = []

    async def as_buyer(self) -> tuple[Outcome, str]:
        if isinstance(self.run.adapter, CosignedDvp):
            for _ in range(300):
                if await self.run.status() is OrderStatus.OPEN:
                    WalksAway.halves.append(await self.run.adapter.sign_as_buyer(self.order))
                    break
                await asyncio.sleep(0.1)
        return Outcome.ABORTED, "walked away"


class WalkingAwayAgent(Agent):
    atomic_run_class = WalksAway


@pytest.mark.parametrize("pair", ledgers(pytest.mark.matrix, elements=()))
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
            with pytest.raises(errors.TransactionError) as refused:
                await base.wait_all(await adapter.accept_dvp(DvpOrder.model_validate(ours.data["order"])))
            if pair == ELEMENTS:  # the half the buyer signed while the order was open, completed: the node refuses it
                await never_confirms(agents, WalksAway.halves[-1], DvpOrder.model_validate(ours.data["order"]))
            if pair == FABRIC:  # the chaincode's own rule, at endorsement
                assert refused.value.code == "DVP_ORDER_NOT_OPEN", refused.value
            return swap_id

    swap_id = asyncio.run(play())
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, pair, agents.steps("seller", swap_id)) == UNCHANGED


async def never_confirms(agents: Agents, half: str, order: DvpOrder) -> None:
    """The buyer's ``half``, completed with the seller's signature (the testbed's key), is
    refused by elementsd: its order output is spent by the cancellation."""
    async with LedgerSet.from_run_dir(agents.run_dir) as ledger_set:
        adapter = ledger_set.ledgers["elements"]
        assert isinstance(adapter, ElementsAdapter)
        terms, policy = adapter._dvp_terms(order), adapter.config.policy_asset
        half_tx = DvpTx.from_pset(half, "buyer")
        signed = sign_dvp(half_tx, adapter._key(order.seller), terms, "seller", policy_asset=policy, max_fee=0)
        with pytest.raises(errors.TransactionError, match="missingorspent"):
            with utxo_errors("settle", adapter.name):
                await adapter.ledger.send(finalize_dvp(signed))


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


@pytest.mark.parametrize("pair", ledgers(fabric=(pytest.mark.matrix,), elements=(pytest.mark.matrix,)))
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
    # The half as journaled by the buyer is a PSET elementsd itself reads (decodepsbt).
    half = next(s.detail["half"] for s in agents.steps("buyer", swap_id) if s.step == "settle")
    decoded = run_async(decode_pset(agents, half))
    assert decoded["psbt_version"] == 2 and round(decoded["fees"]["bitcoin"] * 10**8) == int(settled[0].detail["fee"])
    inputs = decoded["inputs"]
    assert all("witness_utxo" in i for i in inputs), decoded
    # The seller's order input (P2WSH) unsigned, every input of the buyer's finalized.
    assert [i["witness_utxo"]["scriptPubKey"]["type"] == "witness_v0_scripthash" for i in inputs] == [
        "final_scriptwitness" not in i for i in inputs
    ], decoded


async def decode_pset(agents: Agents, half: str) -> dict:
    async with LedgerSet.from_run_dir(agents.run_dir) as ledger_set:
        adapter = ledger_set.ledgers["elements"]
        assert isinstance(adapter, ElementsAdapter) and adapter._rpc is not None
        decoded: dict = await adapter._rpc.call("decodepsbt", half)
        return decoded


class TamperedHalf(AtomicPartyRun):
    """A buyer whose half pays the seller one EUR less (``amount``), pays the cash to another
    key (``recipient``), or is not a PSET at all (``garbage``); its own inputs signed over it."""

    tamper = "amount"

    async def cosign(self, adapter: CosignedDvp) -> tuple[Outcome, str]:
        assert isinstance(adapter, ElementsAdapter)
        for _ in range(200):  # the order is open when cosign() is called; bounded anyway
            if await self.run.status() is OrderStatus.OPEN:
                break
            await asyncio.sleep(0.1)
        terms = adapter._dvp_terms(self.order)
        if self.tamper == "amount":
            terms = replace(terms, cash_amount=terms.cash_amount - 1_000)
        elif self.tamper == "recipient":
            terms = replace(terms, seller_pubkey=OTHER.pubkey)
        half = "cHNldP8garbage" if self.tamper == "garbage" else adapter._buyers_half(self.order, terms).to_pset()
        await self._notify(self.steps.id, Kind.SIGNED, LegName.CASH, self.order_id, half)
        for _ in range(600):
            if await self.run.status() is not OrderStatus.OPEN:
                break
            await asyncio.sleep(0.1)
        return await self.run.by_the_ledger()


@pytest.mark.parametrize(
    ("tamper", "refusal"),
    [
        ("amount", "the seller would give"),
        pytest.param("recipient", "the seller would give", marks=pytest.mark.matrix),
        ("garbage", "not a PSET"),
    ],
)
@pytest.mark.parametrize("_", [pytest.param(None, id="elements", marks=ELEMENTS_MARKS)])
def test_the_seller_refuses_a_tampered_pset(agents: Agents, _, tamper: str, refusal: str):
    """The buyer's half pays the seller less, or someone else, or does not parse: the seller's
    audit refuses it in one line, signs nothing and cancels its order; nothing moves but the
    seller's fees."""
    before = run_async(balances(agents.run_dir))
    run_class = type("Tampered", (TamperedHalf,), {"tamper": tamper})
    agent_class = type("TamperingBuyer", (Agent,), {"atomic_run_class": run_class})

    async def play() -> str:
        async with buyer_agent(agents, agent_class) as (buyer, _):
            scenario = agents.scenario(spec_for(ELEMENTS, kind="atomic"))
            seller = agents.start("seller", "--propose", str(scenario), "--until-done", "--max-seconds", "90")
            assert await exited(seller, 110) == NOT_SETTLED, seller.output()
            swap_id = agents.swap_ids("seller")[0]
            await asyncio.wait_for(buyer.tasks[swap_id], 30)
            return swap_id

    swap_id = asyncio.run(play())
    ours = agents.record("seller", swap_id)
    assert ours is not None and ours.outcome == "aborted", ours
    detail = ours.detail or ""
    assert "refused buyer 'buyer''s signed transaction: the buyer's PSET refused: " in detail, detail
    assert refusal in detail and "\n" not in detail and "order cancelled on elements" in detail, detail
    rows = {(s.step, s.phase) for s in agents.steps("seller", swap_id)}
    assert ("cancel", "result") in rows and ("settle", "result") not in rows, rows
    after = run_async(balances(agents.run_dir))
    assert changes(before, after, ELEMENTS, agents.steps("seller", swap_id)) == UNCHANGED


class HoldsTheHalf(AtomicPartyRun):
    """A seller that proposes, takes the buyer's half, and neither broadcasts it nor cancels
    (until the test cancels its order)."""

    async def as_seller(self) -> tuple[Outcome, str]:
        await self.run.propose(self.order)
        await self.notify(Kind.LOCKED, LegName.SECURITY)
        for _ in range(1500):
            if await self.run.status() is not OrderStatus.OPEN:
                break
            await asyncio.sleep(0.1)
        return Outcome.ABORTED, "held the half"


class HoldingAgent(Agent):
    atomic_run_class = HoldsTheHalf


@pytest.mark.matrix
@pytest.mark.parametrize("_", [pytest.param(None, id="elements", marks=ELEMENTS_MARKS)])
def test_the_buyer_voids_a_half_the_seller_holds(agents: Agents, _):
    """The seller takes the buyer's half and neither broadcasts nor cancels: past the accept
    window (and a grace) the buyer spends the half's inputs back to itself and ends aborted;
    the half, completed by the seller afterwards, is refused by elementsd."""
    before = run_async(balances(agents.run_dir))
    spec = spec_for(ELEMENTS, kind="atomic", holder_timeout=60, counter_timeout=15)

    async def play() -> str:
        buyer = agents.start("buyer").ready()
        async with buyer_agent(agents, HoldingAgent, party="seller") as (seller, ledger_set):
            swap_id = await seller.propose(spec)
            theirs = await asyncio.to_thread(agents.outcome, "buyer", swap_id, 90)
            assert theirs.outcome == "aborted", theirs.detail
            detail = theirs.detail or ""
            assert "neither broadcast nor cancelled" in detail and "can never confirm" in detail, detail
            revoked = [s for s in agents.steps("buyer", swap_id) if s.step == "cancel" and s.phase == "final"]
            assert [s.detail["payer"] for s in revoked] == ["buyer"], revoked
            halves = seller.hints_of(swap_id).halves
            assert halves, "the buyer's half never reached the seller"
            order = DvpOrder.model_validate(agents.record("buyer", swap_id).data["order"])
            await never_confirms(agents, halves[-1], order)
            adapter = ledger_set.ledgers["elements"].require(AtomicDvp)
            await ledger_set.ledgers["elements"].wait_all(await adapter.cancel_dvp(order))
            await asyncio.wait_for(seller.tasks[swap_id], 30)
        buyer.stop()
        return swap_id

    swap_id = asyncio.run(play())
    after = run_async(balances(agents.run_dir))
    moved = changes(before, after, ELEMENTS, agents.steps("buyer", swap_id))
    assert (moved["buyer_cash"], moved["buyer_security"]) == (0, 0), moved
