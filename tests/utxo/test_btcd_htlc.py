"""The P2WSH HTLC against a real btcd regtest node.

Every security rule of the script is checked by submitting a transaction that
breaks it and asserting that the NODE rejects it (sendrawtransaction error), not
that our own builder refuses it.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest

from dvp_utxo.htlc import AuditError, NoFunding
from dvp_utxo.rpc import RpcError
from dvp_utxo.script import HtlcScript

pytestmark = [pytest.mark.utxo, pytest.mark.asyncio]

AMOUNT = 1_000_000  # sat


def new_htlc(chain, *, blocks: int = 20, hashlock: bytes | None = None, sender="seller", recipient="buyer"):
    secret = secrets.token_bytes(32)
    h = hashlock or hashlib.sha256(secret).digest()
    htlc = HtlcScript(h, chain.keys[recipient].pubkey, chain.keys[sender].pubkey, chain.view.height + blocks)
    return secret, htlc


async def funded(chain, htlc, amount=AMOUNT, sender="seller"):
    txid, vout = await chain.ledger.fund(chain.keys[sender], htlc, amount)
    await chain.mine(1)
    return txid, vout


async def assert_rejected(chain, tx, *needles: str) -> RpcError:
    with pytest.raises(RpcError) as info:
        await chain.ledger.broadcast(tx)
    err = info.value
    assert err.method == "sendrawtransaction"
    assert err.code in (-25, -26), err
    text = err.message.lower()
    print(f"node rejected: {err.message}")
    assert any(n.lower() in text for n in needles), f"unexpected rejection: {err.message}"
    return err


async def test_node_is_pinned_btcd_regtest_with_segwit(chain):
    info = await chain.rpc.call("getblockchaininfo")
    assert info["chain"] == "regtest"
    assert info["bip9_softforks"]["segwit"]["status"] == "active"
    for party in ("seller", "buyer", "issuer"):
        assert chain.view.balance(chain.keys[party].script_pubkey) >= 10 * 100_000_000


async def test_fund_audit_claim_and_extract_secret(chain):
    secret, htlc = new_htlc(chain)
    buyer_before = chain.view.balance(chain.keys["buyer"].script_pubkey)
    txid, vout = await funded(chain, htlc)

    funding = chain.ledger.audit(htlc, AMOUNT, min_confirmations=1, lock_id=htlc.script_hash.hex())
    assert (funding.utxo.txid, funding.utxo.vout, funding.confirmations) == (txid, vout, 1)

    claim_txid = await chain.ledger.claim(htlc, chain.keys["buyer"], secret)
    # The counterparty learns the secret from the claim's witness, mempool first ...
    assert chain.ledger.extract_preimage(htlc) == secret
    await chain.mine(1)
    # ... and from the block, read back by a fresh view of the chain.
    other = type(chain.view)(chain.rpc, chain.dialect)
    await other.refresh()
    spend = other.spend_of((txid, vout))
    assert spend.txid == claim_txid and spend.height == other.height
    assert spend.witness[1] == secret and spend.witness[2] == b"\x01" and spend.witness[3] == htlc.script
    st = chain.ledger.status(htlc)
    assert st.claim_txid == claim_txid and st.preimage == secret and not st.unspent
    assert chain.view.balance(chain.keys["buyer"].script_pubkey) > buyer_before + AMOUNT - 1000


async def test_refund_after_lock_height(chain):
    _, htlc = new_htlc(chain, blocks=5)
    await funded(chain, htlc)
    seller = chain.keys["seller"]
    early = chain.ledger.refund_tx(htlc, seller)
    assert early.nLockTime == htlc.lock_height and early.vin[0].nSequence == 0xFFFFFFFE
    await assert_rejected(chain, early, "not finalized")  # tip < lock height
    await chain.mine(htlc.lock_height - chain.view.height)
    assert chain.view.height == htlc.lock_height  # the next block is past the lock time
    refund_txid = await chain.ledger.broadcast(early)
    await chain.mine(1)
    st = chain.ledger.status(htlc)
    assert st.refund_txid == refund_txid and st.preimage is None and not st.unspent


async def test_wrong_preimage_rejected_by_node(chain):
    _, htlc = new_htlc(chain)
    await funded(chain, htlc)
    tx = chain.ledger.claim_tx(htlc, chain.keys["buyer"], secrets.token_bytes(32))
    await assert_rejected(chain, tx, "OP_EQUALVERIFY failed")


async def test_33_byte_preimage_with_matching_hash_rejected_by_op_size(chain):
    long_secret = secrets.token_bytes(33)
    _, htlc = new_htlc(chain, hashlock=hashlib.sha256(long_secret).digest())
    await funded(chain, htlc)
    # sha256 matches: only OP_SIZE 32 OP_EQUALVERIFY stands between this and the funds.
    assert hashlib.sha256(long_secret).digest() == htlc.hashlock
    tx = chain.ledger.claim_tx(htlc, chain.keys["buyer"], long_secret)
    err = await assert_rejected(chain, tx, "OP_EQUALVERIFY failed")
    assert long_secret.hex() in err.message  # the 33-byte witness item the node refused
    # The same output is still locked and refundable: nothing was spent.
    assert chain.ledger.status(htlc).unspent


async def test_refund_before_lock_height_rejected_even_in_next_block(chain):
    _, htlc = new_htlc(chain, blocks=3)
    await funded(chain, htlc)
    await chain.mine(htlc.lock_height - chain.view.height - 1)
    assert chain.view.height == htlc.lock_height - 1  # next block == lock height: still too early
    tx = chain.ledger.refund_tx(htlc, chain.keys["seller"])
    await assert_rejected(chain, tx, "not finalized")


async def test_refund_with_early_nlocktime_rejected_by_cltv(chain):
    # A refund that claims an nLockTime below the script's lock height passes the
    # finality check but fails OP_CHECKLOCKTIMEVERIFY itself.
    from bitcoin.core import CMutableTransaction

    _, htlc = new_htlc(chain, blocks=10)
    await funded(chain, htlc)
    cheat = HtlcScript(htlc.hashlock, htlc.recipient_pubkey, htlc.sender_pubkey, chain.view.height)
    utxos = chain.ledger.status(htlc).unspent
    tx = chain.ledger.refund_tx(htlc, chain.keys["seller"], utxos)
    # Re-sign with nLockTime = current height but the real script.
    from dvp_utxo.script import refund_witness
    from dvp_utxo.tx import _sign, _with_witness

    mtx = CMutableTransaction.from_tx(tx)
    mtx.nLockTime = cheat.lock_height
    stacks = [
        refund_witness(_sign(chain.keys["seller"], mtx, i, htlc.script, u.value), htlc.script)
        for i, u in enumerate(utxos)
    ]
    bad = _with_witness(mtx, stacks)
    await assert_rejected(chain, bad, "locktime requirement not satisfied")


async def test_claim_signed_by_wrong_key_rejected_by_node(chain):
    secret, htlc = new_htlc(chain)
    await funded(chain, htlc)
    tx = chain.ledger.claim_tx(htlc, chain.keys["seller"], secret, check=False)
    await assert_rejected(chain, tx, "failed checksig")


async def test_refund_signed_by_wrong_key_rejected_by_node(chain):
    _, htlc = new_htlc(chain, blocks=2)
    await funded(chain, htlc)
    await chain.mine(5)
    tx = chain.ledger.refund_tx(htlc, chain.keys["buyer"], check=False)
    await assert_rejected(chain, tx, "failed checksig")


async def test_audit_rejects_mismatches(chain):
    secret, htlc = new_htlc(chain)
    with pytest.raises(NoFunding):
        chain.ledger.audit(htlc, AMOUNT)
    await chain.ledger.fund(chain.keys["seller"], htlc, AMOUNT)
    with pytest.raises(AuditError, match="confirmations"):
        chain.ledger.audit(htlc, AMOUNT, min_confirmations=1)
    await chain.mine(1)
    chain.ledger.audit(htlc, AMOUNT, min_confirmations=1)
    with pytest.raises(AuditError, match="amount"):
        chain.ledger.audit(htlc, AMOUNT + 1)
    with pytest.raises(AuditError, match="confirmations"):
        chain.ledger.audit(htlc, AMOUNT, min_confirmations=3)
    with pytest.raises(AuditError, match="lock_height"):
        chain.ledger.audit(htlc, AMOUNT, min_blocks_left=100)
    # Any change to the terms is a different script: nothing funds it.
    for other in (
        HtlcScript(hashlib.sha256(b"other").digest(), htlc.recipient_pubkey, htlc.sender_pubkey, htlc.lock_height),
        HtlcScript(htlc.hashlock, chain.keys["issuer"].pubkey, htlc.sender_pubkey, htlc.lock_height),
        HtlcScript(htlc.hashlock, htlc.recipient_pubkey, chain.keys["issuer"].pubkey, htlc.lock_height),
        HtlcScript(htlc.hashlock, htlc.recipient_pubkey, htlc.sender_pubkey, htlc.lock_height + 1),
    ):
        with pytest.raises(NoFunding):
            chain.ledger.audit(other, AMOUNT)
    with pytest.raises(AuditError, match="script"):
        chain.ledger.audit(htlc, AMOUNT, lock_id="00" * 32)
    await chain.ledger.claim(htlc, chain.keys["buyer"], secret)
    with pytest.raises(AuditError, match="claimed"):
        chain.ledger.audit(htlc, AMOUNT)


async def test_double_claim_and_claim_after_refund_rejected_by_node(chain):
    secret, htlc = new_htlc(chain)
    await funded(chain, htlc)
    utxos = chain.ledger.status(htlc).unspent
    first = chain.ledger.claim_tx(htlc, chain.keys["buyer"], secret, utxos)
    await chain.ledger.broadcast(first)
    await chain.mine(1)
    again = chain.ledger.claim_tx(
        htlc, chain.keys["buyer"], secret, utxos, destination=chain.keys["issuer"].script_pubkey
    )
    await assert_rejected(chain, again, "fully-spent", "already spent", "missing")


async def test_chain_view_follows_a_reorganisation(chain):
    """Invalidate the block that funded an HTLC and mine a longer chain without it:
    the view forgets the funding (or sees it back in the mempool), never a stale one."""
    _, htlc = new_htlc(chain)
    txid, vout = await funded(chain, htlc)
    assert chain.view.tx_height(txid) == chain.view.height
    stale_tip = chain.view.tip_hash
    await chain.rpc.call("invalidateblock", stale_tip)
    await chain.view.refresh()
    assert chain.view.tip_hash != stale_tip
    assert chain.view.tx_height(txid) is None
    funding = [u for u in chain.view.outputs_to(htlc.script_pubkey) if u.txid == txid]
    assert all(u.height is None for u in funding)  # at most back in the mempool
    await chain.mine(3)
    assert stale_tip not in [b.hash for b in chain.view._blocks]
    # A fresh view built from scratch agrees with the one that followed the reorg.
    fresh = type(chain.view)(chain.rpc, chain.dialect)
    await fresh.refresh()
    assert fresh.tip_hash == chain.view.tip_hash
    assert fresh.unspent(htlc.script_pubkey) == chain.view.unspent(htlc.script_pubkey)
    assert fresh.balance(chain.keys["seller"].script_pubkey) == chain.view.balance(chain.keys["seller"].script_pubkey)


async def test_btcd_takes_a_chain_of_40_unconfirmed_transactions_it_has_no_mempool_chain_limit(chain):
    """btcd (v0.24.2) counts a transaction's unconfirmed ancestors and descendants only for a
    replacement, never to refuse one: 40 payments each spending the change of the one before
    all enter its mempool, and the dialect gives the chain view no limits to keep to (the
    40 issues at once that elementsd takes 25 at a time, tests/utxo/test_elements_adapter.py)."""
    from dvp_utxo.dialect import BtcdDialect
    from dvp_utxo.tx import build_payment, txid_of

    assert BtcdDialect.limits is None
    key = chain.keys["issuer"]
    coin = max((u for u in chain.view.unspent(key.script_pubkey) if u.height), key=lambda u: u.value)
    sent = []
    for _ in range(40):
        tx, _fee = build_payment(key, [coin], [(chain.keys["seller"].script_pubkey, 10_000)], chain.ledger.fee_rate)
        sent.append(await chain.ledger.broadcast(tx))
        change = next(n for n, o in enumerate(tx.vout) if bytes(o.scriptPubKey) == key.script_pubkey)
        coin = type(coin)(txid_of(tx), change, tx.vout[change].nValue, key.script_pubkey)
    assert set(sent) <= set(await chain.rpc.call("getrawmempool"))
    await chain.mine(1)
    assert all(chain.view.tx_height(t) == chain.view.height for t in sent)
