"""EVM only: one party's transactions are pipelined (nonces assigned locally, nothing waits
for a block), and the pipeline recovers from a transaction that fails, is dropped from the
pool or is replaced, on a real node: no nonce gap, no allowance left to spend twice."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from dvp import errors, sendlog
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, DvpOrder, HtlcTerms, LockStatus, OrderStatus, SwapSpec
from dvp.report import fee_lines, fees_report
from dvp.runtime.processes import stop
from dvp.state import StepName
from dvp.steps import SwapSteps, fees_journaled
from dvp.testing.scenarios import Pair, spec_for
from dvp_ethereum.adapter import EthereumAdapter
from dvp_ethereum.config import EthereumConfig
from dvp_ethereum.launcher import AnvilLauncher
from dvp_ethereum.sender import Tx

from ..htlc_helpers import AMOUNT

FUNDS = 10**9


@pytest.fixture(scope="module")
def paused_anvil(tmp_path_factory):
    """A private anvil that mines only when told (``evm_mine``), so a test can act on
    transactions while they wait in the pool."""
    launcher = AnvilLauncher({"evm-p": {"block_time": 0, "chain_id": 31399}})
    launcher.prepare()
    [ledger] = launcher.start(["evm-p"], tmp_path_factory.mktemp("anvil-paused"), 0)
    try:
        yield ledger.config
    finally:
        stop(ledger.pids)


@pytest.fixture
async def evm(paused_anvil):
    adapter = EthereumAdapter("evm-p", EthereumConfig.model_validate(paused_anvil))
    async with adapter:
        if not adapter.config.tokens:
            paused_anvil.update(
                await adapter.bootstrap([Asset(symbol="BOND", ledger="evm-p", kind=AssetKind.SECURITY)])
            )
            for party in ("seller", "buyer"):
                await adapter.wait_final((await adapter.issue("BOND", party, FUNDS)).tx_id)
        await anvil(adapter, "evm_setAutomine", False)
        try:
            yield adapter
        finally:
            await anvil(adapter, "evm_setAutomine", True)


async def anvil(adapter, method: str, *params):
    """A dev-node control call: the test's, never the adapter's."""
    reply = await adapter._w3.provider.make_request(method, list(params))
    assert "error" not in reply, reply
    return reply.get("result")


async def mine_while(adapter, task, every: float = 0.2):
    """Mine a block every ``every`` seconds until ``task`` is done; its result."""
    while not task.done():
        await anvil(adapter, "evm_mine")
        await asyncio.sleep(every)
    return await task


def _terms(adapter, now, amount=AMOUNT) -> HtlcTerms:
    return HtlcTerms(sender="seller", recipient="buyer", asset="BOND", amount=amount,
                     hashlock=secrets.token_hex(32), expiry=adapter.expiry_after(now, 600),
                     nonce=secrets.token_hex(32))  # fmt: skip


async def no_gap(adapter, party: str) -> None:
    address = adapter.address_of(party)
    latest = await adapter._w3.eth.get_transaction_count(address, "latest")
    assert await adapter._w3.eth.get_transaction_count(address, "pending") == latest


async def test_one_partys_locks_share_a_block(evm):
    now = await evm.now()
    terms = [_terms(evm, now) for _ in range(5)]
    subs = [await evm.lock(t) for t in terms]  # each returns once broadcast
    pool = (await anvil(evm, "txpool_content"))["pending"]
    assert len(next(v for k, v in pool.items() if k.lower() == evm.address_of("seller").lower())) == 5
    statuses = await mine_while(evm, asyncio.ensure_future(asyncio.gather(*(evm.wait_final(s.tx_id) for s in subs))))
    assert len({s.block_number for s in statuses}) == 1
    for t in terms:
        assert (await evm.get_lock(evm.lock_id(t))).status is LockStatus.LOCKED
    await no_gap(evm, "seller")


async def test_a_failure_mid_pipeline_leaves_no_gap_and_the_next_lock_goes_through(evm):
    now = await evm.now()
    balance = await evm.balance("seller", "BOND")
    good, too_big, after = _terms(evm, now), _terms(evm, now, amount=balance + 1), _terms(evm, now)
    subs = [await evm.lock(t) for t in (good, too_big, after)]
    results = await mine_while(evm, asyncio.ensure_future(
        asyncio.gather(*(evm.wait_final(s.tx_id) for s in subs), return_exceptions=True)))  # fmt: skip
    assert results[0].successful
    assert isinstance(results[1], errors.CommitError) and results[1].code == "ERC20InsufficientBalance"
    # The failed lock did not use its permit, so the permit signed after it named a token
    # nonce that never came: that lock is refused too, and nothing of it moved.
    assert isinstance(results[2], errors.CommitError) and results[2].code == "ERC2612InvalidSigner"
    assert await evm.get_lock(evm.lock_id(too_big)) is None and await evm.get_lock(evm.lock_id(after)) is None
    await no_gap(evm, "seller")
    # Re-synced from the token: the next lock signs the right permit nonce.
    retry = _terms(evm, await evm.now())
    status = await mine_while(evm, asyncio.ensure_future(evm.wait_final((await evm.lock(retry)).tx_id)))
    assert status.successful and (await evm.get_lock(evm.lock_id(retry))).status is LockStatus.LOCKED
    assert await evm.balance("seller", "BOND") == balance - 2 * AMOUNT
    # No allowance is left over for anyone to spend again.
    token = evm._erc20("BOND")
    assert await token.functions.allowance(evm.address_of("seller"), evm.htlc.address).call() == 0
    await no_gap(evm, "seller")


async def test_a_dropped_transaction_is_broadcast_again(evm):
    evm._sent.stall = 1.0
    terms = _terms(evm, await evm.now())
    sub = await evm.lock(terms)
    assert await anvil(evm, "anvil_dropTransaction", sub.tx_id) == sub.tx_id
    await anvil(evm, "evm_mine")
    assert await evm.get_lock(evm.lock_id(terms)) is None
    status = await mine_while(evm, asyncio.ensure_future(evm.wait_final(sub.tx_id)), every=0.5)
    assert status.successful and status.tx_id == sub.tx_id
    assert (await evm.get_lock(evm.lock_id(terms))).status is LockStatus.LOCKED
    await no_gap(evm, "seller")


async def test_a_replaced_transaction_is_reported_and_the_account_resyncs(evm):
    evm._sent.stall = 1.0
    terms = _terms(evm, await evm.now())
    sub = await evm.lock(terms)
    mined = await evm._w3.eth.get_transaction(sub.tx_id)
    # Another holder of the key sends a different transaction with the same nonce, paying more.
    account = evm._key("seller")
    other = account.sign_transaction({
        "to": account.address, "value": 0, "gas": 21_000, "nonce": mined["nonce"], "chainId": evm.config.chain_id,
        "maxFeePerGas": mined["maxFeePerGas"] * 2, "maxPriorityFeePerGas": mined["maxPriorityFeePerGas"] * 2,
    })  # fmt: skip
    await evm._w3.eth.send_raw_transaction(other.raw_transaction)
    with pytest.raises(errors.CommitError) as info:
        await mine_while(evm, asyncio.ensure_future(evm.wait_final(sub.tx_id)), every=0.5)
    assert info.value.code == "replaced" and info.value.tx_id == sub.tx_id
    assert await evm.get_lock(evm.lock_id(terms)) is None
    # The permit that lock carried was never used: the next one is signed with that nonce again.
    again = _terms(evm, await evm.now())
    status = await mine_while(evm, asyncio.ensure_future(evm.wait_final((await evm.lock(again)).tx_id)))
    assert status.successful
    await no_gap(evm, "seller")


class _Died(BaseException):
    """The driver died between journaling its signed lock and broadcasting it."""


async def test_a_journaled_lock_whose_nonce_another_transaction_took_is_proven_dead(evm):
    """Sign, journal, then broadcast: the lock's signed bytes reach the journal hook and the
    process dies before sending them; another transaction of the key takes the nonce and is
    mined.  Re-broadcasting the journaled bytes raises Superseded naming that proof (the
    resumed driver journals it as `abandoned` and only then builds a new lock)."""
    journaled: list[sendlog.SignedTx] = []

    async def journal_then_die(signed: list[sendlog.SignedTx]) -> None:
        journaled.extend(signed)
        raise _Died

    terms = _terms(evm, await evm.now())
    with sendlog.journaling(journal_then_die), pytest.raises(_Died):
        await evm.lock(terms)
    [lock] = journaled
    assert await evm._sent.request("eth_getTransactionByHash", [lock.tx_id]) is None  # never sent
    account = evm._key("seller")
    nonce = await evm._w3.eth.get_transaction_count(account.address, "pending")
    other = account.sign_transaction(
        {
            "to": account.address,
            "value": 0,
            "gas": 21_000,
            "nonce": nonce,
            "chainId": evm.config.chain_id,
            **(await evm._sent._fee_fields())[0],
        }
    )
    await evm._w3.eth.send_raw_transaction(other.raw_transaction)
    await anvil(evm, "evm_mine")
    with pytest.raises(errors.Superseded) as info:
        await evm.rebroadcast(lock)
    assert info.value.tx_id == lock.tx_id and f"nonce {nonce} is used by another transaction" in str(info.value)
    assert await evm.get_lock(evm.lock_id(terms)) is None
    # The account goes on: the next lock takes the next nonce, no gap.
    again = _terms(evm, await evm.now())
    sub = await evm.lock(again)
    await mine_while(evm, asyncio.ensure_future(evm.wait_final(sub.tx_id)))
    await no_gap(evm, "seller")


async def test_a_token_without_permit_is_approved_back_to_back_with_the_lock(evm):
    if "PLAIN" not in evm._tokens:
        deployed = await mine_while(evm, asyncio.ensure_future(
            evm._deploy("PlainToken", "PLAIN", "PLAIN", evm.address_of("issuer"))))  # fmt: skip
        evm._tokens["PLAIN"] = deployed
        await mine_while(evm, asyncio.ensure_future(evm.wait_final((await evm.issue("PLAIN", "seller", FUNDS)).tx_id)))
    assert not await evm._permit_token("PLAIN")
    terms = _terms(evm, await evm.now()).model_copy(update={"asset": "PLAIN"})
    sub = await evm.lock(terms)
    pool = (await anvil(evm, "txpool_content"))["pending"]
    sent = next(v for k, v in pool.items() if k.lower() == evm.address_of("seller").lower())
    approve, lock = (sent[n] for n in sorted(sent, key=int))
    assert lock["hash"] == sub.tx_id and int(lock["nonce"], 16) == int(approve["nonce"], 16) + 1
    assert approve["to"].lower() == evm._tokens["PLAIN"].lower()
    status = await mine_while(evm, asyncio.ensure_future(evm.wait_final(sub.tx_id)))
    approved = await evm._w3.eth.get_transaction_receipt(approve["hash"])
    assert approved["status"] == 1 and approved["blockNumber"] == status.block_number
    assert (await evm.get_lock(evm.lock_id(terms))).status is LockStatus.LOCKED
    token = evm._erc20("PLAIN")
    assert await token.functions.allowance(evm.address_of("seller"), evm.htlc.address).call() == 0
    await no_gap(evm, "seller")


async def with_cash(evm) -> None:
    """The EUR token on the paused chain, the buyer funded (once per module)."""
    if "EUR" not in evm._tokens:
        update = await mine_while(evm, asyncio.ensure_future(
            evm.bootstrap([Asset(symbol="EUR", ledger="evm-p", kind=AssetKind.CASH, decimals=2)])))  # fmt: skip
        evm._tokens.update({s: a for s, a in update["tokens"].items()})
        await mine_while(evm, asyncio.ensure_future(evm.wait_final((await evm.issue("EUR", "buyer", FUNDS)).tx_id)))


async def test_concurrent_proposals_of_one_seller_each_keep_their_allowance(evm):
    """propose pulls nothing: the seller's allowance must cover every open proposal, also
    while several are in the pool at once, and no more once they are accepted."""
    await with_cash(evm)
    now = await evm.now()
    orders = [DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=n, cash="EUR",
                       cash_amount=100 * n, deadline=evm.expiry_after(now, 600), nonce=secrets.token_hex(32))
              for n in (1, 2, 3)]  # fmt: skip
    proposals = [await evm.propose_dvp(o) for o in orders]  # all in the pool at once
    await mine_while(evm, asyncio.ensure_future(asyncio.gather(*(evm.wait_final(p.tx_id) for p in proposals))))
    token = evm._erc20("BOND")
    seller, spender = evm.address_of("seller"), evm.dvp.address
    assert await token.functions.allowance(seller, spender).call() >= 6
    accepts = [await evm.accept_dvp(o) for o in orders]
    await mine_while(evm, asyncio.ensure_future(asyncio.gather(*(evm.wait_final(a.tx_id) for a in accepts))))
    for o in orders:
        assert (await evm.get_order(evm.order_id(o))).status is OrderStatus.SETTLED
    assert await token.functions.allowance(seller, spender).call() == 0
    await no_gap(evm, "seller")
    await no_gap(evm, "buyer")


async def test_a_broadcast_the_node_refuses_leaves_no_gap(evm):
    """Transactions are broadcast after the nonce lock is released: one the node refuses
    leaves its nonce unused, and the next send fills it, so what was signed after it runs."""
    token = evm._erc20("BOND")
    refused = Tx("oversized", lambda _s, _v: token.functions.approve(evm.htlc.address, 0), gas=10**9)
    first, later = _terms(evm, await evm.now()), _terms(evm, await evm.now())
    results = await asyncio.gather(evm._sent.send(evm._key("seller"), [refused]), evm.lock(first),
                                   return_exceptions=True)  # fmt: skip
    assert isinstance(results[0], Exception) and "gas" in str(results[0]).lower()
    sub = await evm.lock(later)
    statuses = await mine_while(evm, asyncio.ensure_future(
        asyncio.gather(evm.wait_final(results[1].tx_id), evm.wait_final(sub.tx_id))))  # fmt: skip
    assert all(s.successful for s in statuses)
    for t in (first, later):
        assert (await evm.get_lock(evm.lock_id(t))).status is LockStatus.LOCKED
    await no_gap(evm, "seller")


async def test_an_acceptance_the_cancel_beat_is_journaled_with_the_gas_its_revert_cost(evm, tmp_path):
    """Issue 20: every transaction the party sent is in its journal with its fee, one the
    ledger mined but reverted too.  The seller's cancel is in the pool when the buyer's
    journaled acceptance is sent: both are mined, the acceptance reverts NotOpen, and its gas
    (receipt.gasUsed * effectiveGasPrice, read from the node) is journaled against it."""
    await with_cash(evm)
    order = DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=1, cash="EUR",
                     cash_amount=100, deadline=evm.expiry_after(await evm.now(), 600),
                     nonce=secrets.token_hex(32))  # fmt: skip
    await mine_while(evm, asyncio.ensure_future(evm.wait_final((await evm.propose_dvp(order)).tx_id)))
    journal = Journal(tmp_path / "buyer.sqlite")
    journal.create("swap-1", "atomic", spec_for(Pair("evm-p", "evm-p"), kind="atomic").model_dump(mode="json"), {})
    record = journal.get("swap-1")
    steps = SwapSteps({"evm-p": evm}, journal, record, SwapSpec.model_validate(record.spec), lambda *_: None, 0.05)
    buyer = evm.address_of("buyer")
    before = await evm._w3.eth.get_balance(buyer)
    await evm.cancel_dvp(order)  # the seller's, in the pool first

    async def settled() -> bool:
        found = await evm.get_order(evm.order_id(order))
        return found is not None and found.status is OrderStatus.SETTLED

    accept = asyncio.ensure_future(steps.transact(StepName.SETTLE, "evm-p", lambda: evm.accept_dvp(order), settled))
    with pytest.raises(errors.CommitError) as refused:
        await mine_while(evm, accept)
    assert refused.value.code == "NotOpen" and refused.value.fee
    rows = journal.steps("swap-1")
    [final] = [s for s in rows if s.phase == "final"]
    receipt = await evm._w3.eth.get_transaction_receipt(final.tx_id)
    assert receipt["status"] == 0 and final.tx_id == refused.value.tx_id
    assert final.detail["reverted"] == "NotOpen" and final.detail["payer"] == "buyer"
    assert final.detail["fee"] == receipt["gasUsed"] * receipt["effectiveGasPrice"] > 0
    assert final.detail["fee_unit"] == "wei" and final.detail["block"] == receipt["blockNumber"]
    # The buyer's coin paid exactly the journaled fees (the acceptance is all it sent).
    paid = sum(fee for (_, payer, _, _), fee in fees_journaled(rows).items() if payer == "buyer")
    assert before - await evm._w3.eth.get_balance(buyer) == paid == final.detail["fee"]
    assert f"reverted on evm-p: settle tx {final.tx_id} (NotOpen)" in "\n".join(fee_lines(rows))
    assert fees_report(rows) == [{"ledger": "evm-p", "payer": "buyer", "fee": paid, "unit": "wei", "asset": None}]
    # That attempt failed on the ledger and each of its transactions is final: a resume waits
    # for none of them (then reads the ledger); the order moved nothing.
    submitted, finals, _, failed = steps.attempt(StepName.SETTLE)
    assert failed and [t["tx_id"] for t in submitted] == [final.tx_id] and finals == {final.tx_id}
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.CANCELLED
    journal.close()
    await no_gap(evm, "buyer")
