"""The Elements dialect against a real, wallet-less ``elementsd -chain=elementsregtest``.

As tests/utxo/test_btcd_htlc.py does for btcd: every HTLC rule is checked by
submitting a transaction that breaks it and asserting that the NODE rejects it;
an issuance whose asset id the node must agree with; a single-transaction DvP
the node accepts whole and refuses once tampered after a signature; and the
chain view (Elements blocks parsed locally) following the chain through a
re-organisation.  Skips with one line without elementsd or wallycore.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest
import pytest_asyncio

from .conftest import ElementsChain, elementsd_or_skip

elementsd_or_skip()

from dvp_utxo.elements.dvp_tx import DvpTerms, finalize_dvp, sign_dvp  # noqa: E402
from dvp_utxo.elements.tx import ElementsTx, TxIn, TxOut, assemble, set_witnesses, sign_input  # noqa: E402
from dvp_utxo.htlc import AuditError, NoFunding  # noqa: E402
from dvp_utxo.rpc import RpcError  # noqa: E402
from dvp_utxo.script import HtlcScript, refund_witness  # noqa: E402
from dvp_utxo.tx import SEQUENCE_NONFINAL  # noqa: E402

from ..testbed import ELEMENTS_MARKS  # noqa: E402

pytestmark = [pytest.mark.utxo, pytest.mark.asyncio, *ELEMENTS_MARKS]

AMOUNT = 50 * 10**8
_assets: dict[str, str] = {}


@pytest_asyncio.fixture
async def chain(elements_node):
    c = ElementsChain(elements_node.config)
    await c.view.refresh()
    if not _assets:  # BOND to the seller, EUR to the buyer, once per node
        for symbol, party, amount in (("BOND", "seller", 1_000 * 10**8), ("EUR", "buyer", 1_000_000 * 10**8)):
            tx, issued = c.ledger.issuance_tx(c.keys[party], amount)
            await c.send(tx)
            _assets[symbol] = issued.asset_id
        await c.mine(1)
    c.security, c.cash = _assets["BOND"], _assets["EUR"]
    try:
        yield c
    finally:
        await c.rpc.aclose()


def new_htlc(chain, *, blocks: int = 20, hashlock: bytes | None = None):
    secret = secrets.token_bytes(32)
    h = hashlock or hashlib.sha256(secret).digest()
    return secret, HtlcScript(h, chain.keys["buyer"].pubkey, chain.keys["seller"].pubkey, chain.view.height + blocks)


async def funded(chain, htlc, asset=None, amount=AMOUNT) -> ElementsTx:
    tx = chain.ledger.elements_funding_tx(chain.keys["seller"], htlc, asset or chain.security, amount)
    await chain.send(tx)
    await chain.mine(1)
    return tx


async def assert_rejected(chain, tx: ElementsTx, *needles: str) -> RpcError:
    with pytest.raises(RpcError) as info:
        await chain.send(tx)
    err = info.value
    assert err.method == "sendrawtransaction" and err.code in (-25, -26), err
    print(f"node rejected: {err.message}")
    assert any(n.lower() in err.message.lower() for n in needles), f"unexpected rejection: {err.message}"
    return err


async def test_node_is_wallet_less_elementsregtest_and_agrees_on_issued_asset_ids(chain):
    info = await chain.rpc.call("getblockchaininfo")
    assert info["chain"] == "elementsregtest"
    with pytest.raises(RpcError):  # no node wallet: every key is the framework's
        await chain.rpc.call("getwalletinfo")
    issuer = chain.keys["issuer"]
    tx, issued = chain.ledger.issuance_tx(issuer, 10**8)
    txid = await chain.send(tx)
    await chain.mine(1)
    decoded = await chain.rpc.call("getrawtransaction", txid, True)
    iss = decoded["vin"][0]["issuance"]
    assert iss["asset"] == issued.asset_id and iss["assetEntropy"] == issued.entropy[::-1].hex()
    assert chain.ledger.balance(issuer.script_pubkey, issued.asset_id) == 10**8
    labels = {o["asset"] for o in decoded["vout"]}
    assert issued.asset_id in labels and chain.policy in labels


async def test_chain_view_reads_balances_per_asset_and_the_explicit_fee(chain):
    seller, buyer = chain.keys["seller"], chain.keys["buyer"]
    before = chain.ledger.balance(buyer.script_pubkey, chain.security)
    tx = chain.ledger.payment_tx(seller, [TxOut(buyer.script_pubkey, chain.security, 7 * 10**8)])
    txid = await chain.send(tx)
    await chain.mine(1)
    fresh = type(chain.view)(chain.rpc, chain.dialect)  # a second view, reading every block again
    await fresh.refresh()
    assert fresh.balance(buyer.script_pubkey, asset=chain.security) == before + 7 * 10**8
    assert fresh.fee_of(txid) == tx.fee(chain.policy) > 0
    decoded = await chain.rpc.call("getrawtransaction", txid, True)
    assert decoded["fee"][chain.policy] * 10**8 == pytest.approx(tx.fee(chain.policy))


async def test_fund_audit_claim_and_the_view_finds_the_claim_witness(chain):
    secret, htlc = new_htlc(chain)
    funding = await funded(chain, htlc)
    got = chain.ledger.audit(htlc, AMOUNT, asset=chain.security)
    assert got.utxo.txid == funding.txid and got.confirmations == 1
    claim = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], preimage=secret)
    claim_txid = await chain.send(claim)
    assert chain.ledger.extract_preimage(htlc) == secret  # from the mempool
    await chain.mine(1)
    other = type(chain.view)(chain.rpc, chain.dialect)
    await other.refresh()
    spend = other.spend_of((funding.txid, got.utxo.vout))
    assert (
        spend is not None and spend.txid == claim_txid and spend.height == other.height and spend.witness[1] == secret
    )
    st = chain.ledger.status(htlc)
    assert st.claim_txid == claim_txid and st.preimage == secret and not st.unspent


async def test_refund_one_block_early_is_rejected_then_accepted_at_the_lock_height(chain):
    _, htlc = new_htlc(chain, blocks=4)
    await funded(chain, htlc)
    await chain.mine(htlc.lock_height - chain.view.height - 1)  # the next block is one below the lock height
    refund = chain.ledger.elements_spend_tx(htlc, chain.keys["seller"], refund=True)
    await assert_rejected(chain, refund, "non-final")
    await chain.mine(1)  # tip = lock height - 1: the next block may carry it
    await chain.send(refund)
    await chain.mine(1)
    assert chain.ledger.status(htlc).refund_txid == refund.txid


async def test_wrong_preimage_is_rejected_by_the_node(chain):
    _, htlc = new_htlc(chain)
    await funded(chain, htlc)
    tx = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], preimage=secrets.token_bytes(32), check=False)
    await assert_rejected(chain, tx, "OP_EQUALVERIFY", "script evaluated without error but finished with a false")


async def test_33_byte_preimage_with_matching_hash_is_rejected_by_op_size(chain):
    long_secret = secrets.token_bytes(33)
    _, htlc = new_htlc(chain, hashlock=hashlib.sha256(long_secret).digest())
    await funded(chain, htlc)
    tx = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], preimage=long_secret, check=False)
    await assert_rejected(chain, tx, "OP_EQUALVERIFY")
    assert len(chain.ledger.locked(htlc, chain.security)) == 1


async def test_refund_with_an_early_nlocktime_is_rejected_by_cltv(chain):
    _, htlc = new_htlc(chain, blocks=10)
    await funded(chain, htlc)
    utxos = chain.view.unspent(htlc.script_pubkey)
    honest = chain.ledger.elements_spend_tx(htlc, chain.keys["seller"], refund=True)
    outs = [TxOut(o.script_pubkey, o.asset, o.value) for o in honest.outputs]
    w = assemble(
        [TxIn(u, SEQUENCE_NONFINAL) for u in utxos], outs, locktime=chain.view.height
    )  # final now, below the CLTV
    key = chain.keys["seller"]
    set_witnesses(
        w,
        [
            refund_witness(sign_input(key, w, i, htlc.script, u.value_commitment), htlc.script)
            for i, u in enumerate(utxos)
        ],
    )
    await assert_rejected(chain, ElementsTx.from_wally(w), "locktime requirement not satisfied")


async def test_claim_and_refund_signed_by_the_wrong_key_are_rejected_by_the_node(chain):
    secret, htlc = new_htlc(chain, blocks=2)
    await funded(chain, htlc)
    wrong_claim = chain.ledger.elements_spend_tx(htlc, chain.keys["seller"], preimage=secret, check=False)
    await assert_rejected(chain, wrong_claim, "checksig", "signature must be zero", "finished with a false")
    await chain.mine(3)
    wrong_refund = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], refund=True, check=False)
    await assert_rejected(chain, wrong_refund, "checksig", "signature must be zero", "finished with a false")


async def test_audit_names_mismatches_and_a_double_claim_is_rejected(chain):
    secret, htlc = new_htlc(chain)
    await funded(chain, htlc)
    with pytest.raises(AuditError, match="asset"):
        chain.ledger.audit(htlc, AMOUNT, asset=chain.cash)
    with pytest.raises(AuditError, match="amount"):
        chain.ledger.audit(htlc, AMOUNT + 1, asset=chain.security)
    with pytest.raises(NoFunding):
        chain.ledger.audit(
            HtlcScript(htlc.hashlock, htlc.recipient_pubkey, htlc.sender_pubkey, htlc.lock_height + 1),
            AMOUNT,
            asset=chain.security,
        )
    utxos = chain.view.unspent(htlc.script_pubkey)
    first = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], preimage=secret)
    await chain.send(first)
    await chain.mine(1)
    # The same outputs again, paid elsewhere: the node has them spent.
    from dvp_utxo.elements.htlc import build_htlc_spend

    again, _ = build_htlc_spend(htlc, utxos, chain.keys["buyer"], policy_asset=chain.policy, fee_rate=1.0, preimage=secret,
                                destination=chain.keys["issuer"].script_pubkey)  # fmt: skip
    await assert_rejected(chain, again, "missingorspent", "missing-inputs", "already spent", "bad-txns-inputs")


async def test_single_ledger_dvp_is_one_transaction_and_tampering_after_a_signature_is_rejected(chain):
    seller, buyer = chain.keys["seller"], chain.keys["buyer"]
    terms = DvpTerms(seller.pubkey, buyer.pubkey, chain.security, 10 * 10**8, chain.cash, 2_500 * 10**8)
    before = {
        (p, a): chain.ledger.balance(chain.keys[p].script_pubkey, a)
        for p in ("seller", "buyer")
        for a in (chain.security, chain.cash)
    }
    dvp = chain.ledger.dvp_tx(terms, seller, buyer)
    kw = dict(policy_asset=chain.policy, max_fee=100_000)
    by_seller = sign_dvp(dvp, seller, terms, "seller", **kw)
    # Each party signs its own inputs only.
    assert [bool(i.witness) for i in by_seller.tx.inputs] == [
        u.script_pubkey == seller.script_pubkey for u in dvp.spent
    ]
    both = sign_dvp(by_seller, buyer, terms, "buyer", **kw)
    final = finalize_dvp(both)
    # Tampered after the seller signed: one unit of the seller's cash moved to the buyer's change.
    outs = [TxOut(o.script_pubkey, o.asset, o.value) for o in final.outputs]
    outs[1] = TxOut(outs[1].script_pubkey, outs[1].asset, outs[1].value - 1)
    j = next(i for i, o in enumerate(outs) if o.script_pubkey == buyer.script_pubkey and o.asset == chain.cash)
    outs[j] = TxOut(outs[j].script_pubkey, outs[j].asset, outs[j].value + 1)
    bad = assemble([TxIn(u) for u in both.spent], outs, witnesses=[i.witness for i in final.inputs])
    await assert_rejected(
        chain,
        ElementsTx.from_wally(bad),
        "checksig",
        "signature must be zero",
        "non-mandatory-script-verify-flag",
        "finished with a false",
    )
    txid = await chain.send(final)  # broadcast once
    await chain.mine(1)
    assert chain.view.tx_height(txid) == chain.view.height
    after = {(p, a): chain.ledger.balance(chain.keys[p].script_pubkey, a) for p, a in before}
    assert after[("buyer", chain.security)] - before[("buyer", chain.security)] == 10 * 10**8
    assert before[("seller", chain.security)] - after[("seller", chain.security)] == 10 * 10**8
    assert after[("seller", chain.cash)] - before[("seller", chain.cash)] == 2_500 * 10**8
    assert before[("buyer", chain.cash)] - after[("buyer", chain.cash)] == 2_500 * 10**8


async def test_the_chain_view_follows_a_reorganisation(chain):
    secret, htlc = new_htlc(chain)
    funding = await funded(chain, htlc)
    claim = chain.ledger.elements_spend_tx(htlc, chain.keys["buyer"], preimage=secret)
    await chain.send(claim)
    await chain.mine(1)
    height = chain.view.height
    assert chain.view.tx_height(claim.txid) == height and chain.ledger.status(htlc).claim_txid == claim.txid
    # Orphan the claim's block and the funding's: both return to the mempool.
    orphan = await chain.rpc.call("getblockhash", height - 1)
    await chain.rpc.call("invalidateblock", orphan)
    try:
        await chain.view.refresh()
        assert chain.view.height == height - 2
        assert chain.view.tx_height(funding.txid) is None and chain.view.tx_height(claim.txid) is None
        assert chain.view.in_mempool(funding.txid) and chain.view.in_mempool(claim.txid)
        assert chain.ledger.status(htlc).claim_txid == claim.txid  # still seen, unconfirmed
    finally:
        await chain.rpc.call("reconsiderblock", orphan)
    await chain.view.refresh()
    assert chain.view.height == height and chain.view.tx_height(claim.txid) == height


async def test_the_mempool_chain_limits_the_view_counts_are_the_nodes(chain):
    """elementsd takes a chain of 25 unconfirmed transactions and refuses the 26th
    ("too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]"), where the chain
    view's count (MempoolLimits(), the dialect's) puts it too, before each send; of the
    unconfirmed children of one transaction it takes 24, a 25th by its CPFP carve-out, and
    refuses the 26th ("too many descendants [limit: 25]"): the view stops at 24.  After a
    block the refused ones are taken."""
    from dvp_utxo.dialect import MempoolLimits
    from dvp_utxo.elements.tx import build_payment
    from dvp_utxo.tx import CHAIN_LIMIT, TxBuildError

    chain.view.limits = MempoolLimits()
    key = chain.keys["buyer"]
    await chain.view.refresh()
    coin = max((u for u in chain.view.unspent(key.script_pubkey) if u.asset == chain.policy and u.height),
               key=lambda u: u.value)  # fmt: skip

    def pay(spent, outputs: int = 1, value: int = 10_000) -> ElementsTx:
        tx, _ = build_payment(key, spent, [TxOut(key.script_pubkey, chain.policy, value)] * outputs,
                              policy_asset=chain.policy, fee_rate=chain.ledger.fee_rate)  # fmt: skip
        return tx

    def change(tx: ElementsTx):
        return max((u for u in tx.outputs_to(key.script_pubkey)), key=lambda u: u.value)

    async def refused(tx: ElementsTx, reason: str) -> None:
        with pytest.raises(TxBuildError) as held:  # the view holds it back: nothing reaches the node
            await chain.send(tx)
        assert held.value.code == CHAIN_LIMIT
        with pytest.raises(RpcError) as info:  # sent all the same, the node refuses it
            await chain.rpc.call("sendrawtransaction", tx.hex)
        assert reason in info.value.message, info.value.message

    for _ in range(25):  # each spends the change of the one before
        assert chain.view.over_limit([coin.outpoint]) is None
        tx = pay([coin])
        await chain.send(tx)
        coin = change(tx)
    assert "25 unconfirmed ancestors" in str(chain.view.over_limit([coin.outpoint]))
    deep = pay([coin])
    await refused(deep, "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]")
    await chain.mine(1)
    assert chain.view.over_limit([coin.outpoint]) is None
    await chain.send(deep)
    await chain.mine(1)

    fan = pay([change(deep)], outputs=27, value=20_000)
    await chain.send(fan)
    children = [u for u in fan.outputs_to(key.script_pubkey) if u.value == 20_000]
    for u in children[:24]:
        assert chain.view.over_limit([u.outpoint]) is None
        await chain.send(pay([u]))
    assert "would have 25 unconfirmed descendants" in str(chain.view.over_limit([children[24].outpoint]))
    with pytest.raises(TxBuildError):  # the view holds the 25th child back ...
        await chain.send(pay([children[24]]))
    # ... which the node would still take, by its CPFP carve-out (a transaction with one
    # unconfirmed ancestor may take that one 1 past the limit), and the 26th it refuses: the
    # view is one short of the node here, never over.
    await chain.rpc.call("sendrawtransaction", pay([children[24]]).hex)
    await refused(pay([children[25]]), f"too-long-mempool-chain, too many descendants for tx {fan.txid} [limit: 25]")
    await chain.mine(1)
    await chain.send(pay([children[25]]))
    await chain.mine(1)
