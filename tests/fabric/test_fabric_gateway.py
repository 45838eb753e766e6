"""The Gateway client and the Fabric adapter on the testbed's real Fabric network: commit
status, MVCC conflicts, chaincode events from a checkpoint, docs/design.md's rule 8 (a proposal's
timestamp against the endorser's clock), endorsement failures, a peer killed mid-swap."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from fabric_protos.common import ledger_pb2

from dvp import errors
from dvp.models import LockStatus
from dvp.orchestrator import Outcome
from dvp.sendlog import SignedTx
from dvp_fabric import gateway

from ..htlc_helpers import locked, make_terms
from ..scenarios import (
    SETTLED,
    UNCHANGED,
    assert_conserved,
    changes,
    snapshot,
    spec_for,
)
from ..testbed import FABRIC, FABRIC_MARKS, FABRIC_MAX_SKEW, Pair

pytestmark = FABRIC_MARKS


@pytest.fixture
def fabric(ledger_set):
    return ledger_set.ledgers["fabric-a"]


async def test_gateway_evaluates_qscc_on_both_channels(ledger_set):
    for name in FABRIC:
        adapter = ledger_set.ledgers[name]
        qscc = adapter.contract("seller").channel.get_contract("qscc")
        info = ledger_pb2.BlockchainInfo.FromString(await qscc.evaluate("GetChainInfo", name))
        assert info.height >= 1 and (await adapter.now()).height == info.height - 1


async def test_submit_returns_the_chaincode_result_and_a_valid_commit(fabric):
    terms, _ = make_terms(fabric, await fabric.now())
    contract = fabric.contract("seller")
    proposal = contract.new_proposal(
        "Lock", fabric.account("buyer"), terms.asset, str(terms.amount), terms.hashlock, str(terms.expiry), terms.nonce
    )
    tx = await proposal.endorse()
    assert tx.transaction_id == proposal.transaction_id and tx.result.decode() == fabric.lock_id(terms)
    status = await (await tx.submit()).status()
    assert status.successful and status.code == "VALID" and status.block_number > 0
    assert (await fabric.wait_final(tx.transaction_id)).block_number == status.block_number


async def test_two_transactions_endorsed_on_one_balance_conflict_at_commit(fabric):
    contract = fabric.contract("seller")
    buyer = fabric.account("buyer")
    first = await contract.new_proposal("Transfer", buyer, "EUR", "1").endorse()
    second = await contract.new_proposal("Transfer", buyer, "EUR", "1").endorse()
    envelopes = [first.signed_envelope(), second.signed_envelope()]  # what the journal holds
    commits = [await first.submit(envelopes[0]), await second.submit(envelopes[1])]
    await commits[0].expect_valid()
    with pytest.raises(gateway.GatewayCommitError) as caught:
        await commits[1].expect_valid()
    err = caught.value
    assert isinstance(err, errors.CommitError) and err.code == "MVCC_READ_CONFLICT" and err.conflict
    assert err.tx_id == second.transaction_id
    with pytest.raises(errors.CommitError, match="MVCC_READ_CONFLICT"):
        await fabric.wait_final(second.transaction_id)
    # Re-broadcasting journaled envelopes: the valid one is a no-op, the invalid one is proven
    # dead by its block (what a resumed driver journals as `abandoned` before sending anew).
    height = (await fabric.now()).height
    await fabric.rebroadcast(SignedTx(first.transaction_id, envelopes[0].hex(), "transfer", "seller"))
    with pytest.raises(errors.Superseded, match="MVCC_READ_CONFLICT") as proof:
        await fabric.rebroadcast(SignedTx(second.transaction_id, envelopes[1].hex(), "transfer", "seller"))
    assert proof.value.tx_id == second.transaction_id
    assert (await fabric.now()).height == height  # nothing was sent again


async def test_a_journaled_envelope_never_sent_is_sent_by_rebroadcast_with_its_transaction_id(fabric):
    """A driver killed after journaling the signed envelope: the resumed one sends those bytes,
    and the ledger commits that very transaction id."""
    tx = await fabric.contract("seller").new_proposal("Transfer", fabric.account("buyer"), "EUR", "1").endorse()
    signed = SignedTx(tx.transaction_id, tx.signed_envelope().hex(), "transfer", "seller")
    await fabric.rebroadcast(signed)
    assert (await fabric.wait_final(tx.transaction_id)).successful
    await fabric.rebroadcast(signed)  # once committed: nothing


async def test_chaincode_events_resume_after_the_checkpoint(fabric):
    channel = fabric.contract("seller").channel
    start = (await fabric.now()).height + 1
    tx_ids = []
    for _ in range(2):
        tx_ids.append(
            await fabric.contract("seller").new_proposal("Transfer", fabric.account("buyer"), "EUR", "1").endorse()
        )
        await (await tx_ids[-1].submit()).expect_valid()
    events = [e async for e in channel.chaincode_events("dvp", start_block=start, idle=1.0)]
    assert [e.transaction_id for e in events] == [t.transaction_id for t in tx_ids]
    assert {e.name for e in events} == {"Transferred"}
    resumed = [
        e async for e in channel.chaincode_events("dvp", checkpoint=gateway.Checkpoint.after(events[0]), idle=1.0)
    ]
    assert [e.transaction_id for e in resumed] == [tx_ids[1].transaction_id]


async def test_a_proposal_timestamp_beyond_the_skew_bound_is_refused_by_the_chaincode(fabric):
    """Rule 8: the chaincode judges expiry on the proposal's timestamp, so it refuses one
    that strays more than max_skew_seconds from the endorser's clock, either way."""
    contract = fabric.contract("seller")
    buyer = fabric.account("buyer")
    for shift in (-(FABRIC_MAX_SKEW + 10), FABRIC_MAX_SKEW + 10):
        proposal = contract.new_proposal("Transfer", buyer, "EUR", "1", timestamp=time.time() + shift)
        with pytest.raises(gateway.EndorseError, match="DVP_CLOCK_SKEW") as caught:
            await proposal.endorse()
        assert caught.value.tx_id == proposal.transaction_id
    # A lock backdated past its own expiry by less than the bound is judged on that timestamp.
    terms, _ = make_terms(fabric, await fabric.now(), seconds=1)
    late = contract.new_proposal(
        "Lock",
        buyer,
        terms.asset,
        str(terms.amount),
        terms.hashlock,
        str(terms.expiry),
        terms.nonce,
        timestamp=time.time() + 2,
    )
    with pytest.raises(gateway.EndorseError, match="DVP_BAD_ARGUMENT: expiry"):
        await late.endorse()


async def test_an_endorsement_failure_surfaces_as_one_clear_error(fabric):
    terms, _ = make_terms(fabric, await fabric.now(), amount=10**15)
    with pytest.raises(
        errors.LockRefused,
        match=rf"'seller' holds \d+ {terms.asset} on {fabric.name}, needs {10**15} {terms.asset} \(Fabric charges no fees\)",
    ):
        await fabric.check_lock(terms)
    with pytest.raises(errors.SubmitError) as caught:
        await fabric.lock(terms)  # past the pre-check: the chaincode refuses at endorsement
    err = caught.value
    text = str(err)
    assert isinstance(err, gateway.EndorseError) and err.tx_id and err.tx_id in text
    assert "\n" not in text and "DVP_INSUFFICIENT_FUNDS" in text and "lock on fabric-a" in text
    assert await fabric.get_lock(fabric.lock_id(terms)) is None


async def test_commit_status_of_an_unknown_transaction_times_out(fabric):
    with pytest.raises(errors.FinalityTimeout):
        await fabric.wait_final(secrets.token_hex(32), timeout=1.0)


async def test_concurrent_locks_of_one_party_all_commit(fabric):
    """The adapter orders transactions on one balance, so none is lost to an MVCC conflict."""
    now = await fabric.now()
    terms = [make_terms(fabric, now, amount=5)[0] for _ in range(4)]
    subs = await asyncio.gather(*(fabric.lock(t) for t in terms))
    for sub in subs:
        assert (await fabric.wait_final(sub.tx_id)).successful
    for t in terms:
        assert (await fabric.get_lock(fabric.lock_id(t))).status is LockStatus.LOCKED


async def test_locks_survive_a_peer_killed_and_restarted(fabric, fabric_network):
    lock_id, _, preimage = await locked(fabric)
    fabric_network.restart_peer("seller")  # SIGKILL, then the same ledger data
    state = await fabric.get_lock(lock_id)
    assert state is not None and state.status is LockStatus.LOCKED
    sub = await fabric.claim(lock_id, preimage, submitter="buyer")
    assert (await fabric.wait_final(sub.tx_id)).successful


@pytest.mark.parametrize("org", ["seller", "buyer"])
async def test_a_swap_survives_a_peer_killed_and_restarted_mid_swap(ledger_set, journal_path, fabric_network, org):
    """SIGKILL one org's peer once the Fabric lock is in: the swap still settles or refunds, and
    every balance is conserved (the adapter retries while the peer restarts on its ledger)."""
    pair = Pair("fabric-a", "evm-a")
    orch = ledger_set.orchestrator(journal_path)
    restarted: list[asyncio.Task] = []

    def progress(swap_id: str, message: str) -> None:
        if "lock cash" in message and not restarted:
            restarted.append(asyncio.ensure_future(asyncio.to_thread(fabric_network.restart_peer, org)))

    orch.progress = progress
    old_pid = fabric_network.proc(f"peer0.{org}bank.dvp.test").pid
    before = await snapshot(ledger_set)
    result = await orch.run(spec_for(pair))
    assert restarted, "the swap never reached its second lock"
    assert await restarted[0] != old_pid
    after = await snapshot(ledger_set)
    assert result.outcome in (Outcome.SETTLED, Outcome.REFUNDED), result.detail
    assert_conserved(before, after, result.steps)
    assert changes(before, after, pair, result.steps) == (SETTLED if result.outcome is Outcome.SETTLED else UNCHANGED)
