"""The Elements dialect against a real ``elementsd -chain=elementsregtest`` node.

The same node-level checks as tests/utxo/test_btcd_htlc.py: every HTLC rule is
checked by submitting a transaction that breaks it and asserting that the NODE
rejects it, plus an issuance whose asset id the node must agree with and a
single-transaction DvP the node must accept whole and refuse once tampered.

NEVER RUN SO FAR: this machine has no ``elementsd`` binary, so the whole module
skips with "elementsd binary not found (set DVP_ELEMENTSD)".  The rejection
texts expected below are those of Bitcoin Core's script interpreter, which
Elements inherits; they have not been seen from an elementsd yet.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest
import pytest_asyncio

wally = pytest.importorskip("wallycore", reason="wallycore (the Elements library) is not installed")

from dvp_utxo.elements.node import SKIP_REASON, ElementsNode, find_elementsd, start_elementsd  # noqa: E402

ELEMENTSD = find_elementsd()
if ELEMENTSD is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from dvp_utxo.elements.dvp import DvpTerms, build_dvp, finalize_dvp, sign_dvp  # noqa: E402
from dvp_utxo.elements.htlc import audit_funding, build_funding, build_htlc_spend, extract_preimage  # noqa: E402
from dvp_utxo.elements.tx import ElementsTx, TxIn, TxOut, assemble, build_issuance, set_witnesses, sign_input  # noqa: E402
from dvp_utxo.htlc import AuditError, NoFunding  # noqa: E402
from dvp_utxo.keys import Key  # noqa: E402
from dvp_utxo.rpc import RpcError  # noqa: E402
from dvp_utxo.script import HtlcScript, refund_witness  # noqa: E402

pytestmark = [pytest.mark.utxo, pytest.mark.asyncio]

FEE_RATE = 1.0
PARTIES = ("seller", "buyer", "issuer")
AMOUNT = 50 * 10**8


@pytest.fixture(scope="module")
def elementsd(tmp_path_factory):
    proc = start_elementsd(ELEMENTSD, tmp_path_factory.mktemp("elementsd"))
    try:
        yield proc
    finally:
        proc.stop()


class Chain:
    def __init__(self, node: ElementsNode):
        self.node = node
        self.keys = {p: Key.dev("elementsd-test", p) for p in PARTIES}
        self.security: str | None = None
        self.cash: str | None = None

    @property
    def policy(self) -> str:
        return self.node.policy_asset

    async def issue(self, party: str, amount: int) -> str:
        key = self.keys[party]
        funds = [u for u in await self.node.unspent(key.script_pubkey) if u.asset == self.policy][:1]
        tx, issued, _ = build_issuance(key, funds, amount, policy_asset=self.policy, fee_rate=FEE_RATE)
        await self.node.broadcast(tx)
        await self.node.mine(1)
        return issued.asset_id

    async def fund(self, htlc: HtlcScript, asset: str, amount: int = AMOUNT, sender: str = "seller") -> ElementsTx:
        key = self.keys[sender]
        tx, _ = build_funding(key, htlc, asset, amount, await self.node.unspent(key.script_pubkey), policy_asset=self.policy, fee_rate=FEE_RATE)
        await self.node.broadcast(tx)
        await self.node.mine(1)
        return tx

    async def spend(self, htlc, funding: ElementsTx, party: str, **kw) -> ElementsTx:
        tx, _ = build_htlc_spend(htlc, funding.outputs_to(htlc.script_pubkey), self.keys[party], policy_asset=self.policy, fee_rate=FEE_RATE, **kw)
        return tx


_state: dict = {}


@pytest_asyncio.fixture
async def chain(elementsd):
    node = await ElementsNode.connect(elementsd)
    c = Chain(node)
    if not _state:
        await node.bootstrap(c.keys)
        _state["known"] = node.known
        _state["mine_to"] = node.mine_to
        _state["security"] = await c.issue("seller", 1_000 * 10**8)
        _state["cash"] = await c.issue("buyer", 1_000_000 * 10**8)
    node.known, node.mine_to = _state["known"], _state["mine_to"]
    c.security, c.cash = _state["security"], _state["cash"]
    try:
        yield c
    finally:
        await node.rpc.aclose()


def new_htlc(chain: Chain, height: int, *, blocks: int = 20, hashlock: bytes | None = None):
    secret = secrets.token_bytes(32)
    h = hashlock or hashlib.sha256(secret).digest()
    return secret, HtlcScript(h, chain.keys["buyer"].pubkey, chain.keys["seller"].pubkey, height + blocks)


async def assert_rejected(chain: Chain, tx: ElementsTx, *needles: str) -> RpcError:
    with pytest.raises(RpcError) as info:
        await chain.node.broadcast(tx)
    err = info.value
    assert err.method == "sendrawtransaction" and err.code in (-25, -26), err
    text = err.message.lower()
    print(f"node rejected: {err.message}")
    assert any(n.lower() in text for n in needles), f"unexpected rejection: {err.message}"
    return err


async def test_node_is_elementsregtest_and_agrees_on_issued_asset_ids(chain):
    info = await chain.node.rpc.call("getblockchaininfo")
    assert info["chain"] == "elementsregtest"
    key = chain.keys["issuer"]
    funds = [u for u in await chain.node.unspent(key.script_pubkey) if u.asset == chain.policy][:1]
    tx, issued, _ = build_issuance(key, funds, 10**8, policy_asset=chain.policy, fee_rate=FEE_RATE, token_amount=10**8)
    await chain.node.broadcast(tx)
    await chain.node.mine(1)
    decoded = await chain.node.rpc.call("getrawtransaction", tx.txid, True)
    iss = decoded["vin"][0]["issuance"]
    assert iss["asset"] == issued.asset_id and iss["token"] == issued.token_id
    assert iss["assetEntropy"] == issued.entropy[::-1].hex()
    assert (await chain.node.get_tx(tx.txid)) == tx


async def test_fund_audit_claim_and_extract_secret(chain):
    secret, htlc = new_htlc(chain, await chain.node.height())
    funding = await chain.fund(htlc, chain.security)
    tip = await chain.node.height()
    got = audit_funding(await chain.node.get_tx(funding.txid), htlc, chain.security, AMOUNT, policy_asset=chain.policy,
                        fee_rate=FEE_RATE, tip_height=tip, confirmations=await chain.node.confirmations(funding.txid))  # fmt: skip
    assert got.locked.asset == chain.security
    claim = await chain.spend(htlc, funding, "buyer", preimage=secret)
    txid = await chain.node.broadcast(claim)
    await chain.node.mine(1)
    seen = await chain.node.get_tx(txid)  # read back from the node, decoded locally
    assert extract_preimage(seen, htlc) == secret
    assert not any([await chain.node.is_unspent(u) for u in funding.outputs_to(htlc.script_pubkey)])


async def test_refund_after_lock_height(chain):
    _, htlc = new_htlc(chain, await chain.node.height(), blocks=5)
    funding = await chain.fund(htlc, chain.security)
    early = await chain.spend(htlc, funding, "seller", refund=True)
    await assert_rejected(chain, early, "non-final")
    await chain.node.mine(htlc.lock_height - await chain.node.height())
    await chain.node.broadcast(early)
    await chain.node.mine(1)


async def test_refund_before_lock_height_rejected_even_in_next_block(chain):
    _, htlc = new_htlc(chain, await chain.node.height(), blocks=3)
    funding = await chain.fund(htlc, chain.security)
    await chain.node.mine(htlc.lock_height - await chain.node.height() - 1)
    await assert_rejected(chain, await chain.spend(htlc, funding, "seller", refund=True), "non-final")


async def test_wrong_preimage_rejected_by_node(chain):
    _, htlc = new_htlc(chain, await chain.node.height())
    funding = await chain.fund(htlc, chain.security)
    tx = await chain.spend(htlc, funding, "buyer", preimage=secrets.token_bytes(32), check=False)
    await assert_rejected(chain, tx, "OP_EQUALVERIFY")


async def test_33_byte_preimage_with_matching_hash_rejected_by_op_size(chain):
    long_secret = secrets.token_bytes(33)
    _, htlc = new_htlc(chain, await chain.node.height(), hashlock=hashlib.sha256(long_secret).digest())
    funding = await chain.fund(htlc, chain.security)
    tx = await chain.spend(htlc, funding, "buyer", preimage=long_secret, check=False)
    await assert_rejected(chain, tx, "OP_EQUALVERIFY")
    assert all([await chain.node.is_unspent(u) for u in funding.outputs_to(htlc.script_pubkey)])


async def test_refund_with_early_nlocktime_rejected_by_cltv(chain):
    _, htlc = new_htlc(chain, await chain.node.height(), blocks=10)
    funding = await chain.fund(htlc, chain.security)
    utxos = funding.outputs_to(htlc.script_pubkey)
    honest = await chain.spend(htlc, funding, "seller", refund=True)
    outs = [TxOut(o.script_pubkey, o.asset, o.value) for o in honest.outputs]
    w = assemble([TxIn(u, 0xFFFFFFFE) for u in utxos], outs, locktime=await chain.node.height())
    key = chain.keys["seller"]
    set_witnesses(w, [refund_witness(sign_input(key, w, i, htlc.script, u.value_commitment), htlc.script) for i, u in enumerate(utxos)])
    await assert_rejected(chain, ElementsTx.from_wally(w), "locktime requirement not satisfied")


async def test_claim_and_refund_signed_by_wrong_key_rejected_by_node(chain):
    secret, htlc = new_htlc(chain, await chain.node.height(), blocks=2)
    funding = await chain.fund(htlc, chain.security)
    await assert_rejected(chain, await chain.spend(htlc, funding, "seller", preimage=secret, check=False), "checksig", "signature must be zero")
    await chain.node.mine(5)
    await assert_rejected(chain, await chain.spend(htlc, funding, "buyer", refund=True, check=False), "checksig", "signature must be zero")


async def test_audit_rejects_mismatches_and_double_claim_is_rejected(chain):
    secret, htlc = new_htlc(chain, await chain.node.height())
    funding = await chain.fund(htlc, chain.security)
    seen = await chain.node.get_tx(funding.txid)
    kw = dict(policy_asset=chain.policy, fee_rate=FEE_RATE, tip_height=await chain.node.height())
    with pytest.raises(AuditError, match="asset"):
        audit_funding(seen, htlc, chain.cash, AMOUNT, **kw)
    with pytest.raises(AuditError, match="amount"):
        audit_funding(seen, htlc, chain.security, AMOUNT + 1, **kw)
    with pytest.raises(NoFunding):
        audit_funding(seen, HtlcScript(htlc.hashlock, htlc.recipient_pubkey, htlc.sender_pubkey, htlc.lock_height + 1), chain.security, AMOUNT, **kw)
    first = await chain.spend(htlc, funding, "buyer", preimage=secret)
    await chain.node.broadcast(first)
    await chain.node.mine(1)
    again = await chain.spend(htlc, funding, "buyer", preimage=secret, destination=chain.keys["issuer"].script_pubkey)
    await assert_rejected(chain, again, "missingorspent", "missing-inputs", "already spent")


async def test_single_ledger_dvp_settles_in_one_transaction_and_tampering_is_rejected(chain):
    seller, buyer = chain.keys["seller"], chain.keys["buyer"]
    terms = DvpTerms(seller.pubkey, buyer.pubkey, chain.security, 10 * 10**8, chain.cash, 2_500 * 10**8)
    s_in = [u for u in await chain.node.unspent(seller.script_pubkey) if u.asset == chain.security][:1]
    b_all = await chain.node.unspent(buyer.script_pubkey)
    b_in = [u for u in b_all if u.asset == chain.cash][:1] + [u for u in b_all if u.asset == chain.policy][:1]
    dvp = build_dvp(terms, s_in, b_in, policy_asset=chain.policy, fee_rate=FEE_RATE)
    kw = dict(policy_asset=chain.policy, max_fee=100_000)
    both = sign_dvp(sign_dvp(dvp, seller, terms, "seller", **kw), buyer, terms, "buyer", **kw)
    final = finalize_dvp(both)
    # Tampered after signing: the seller's cash output lowered by one unit, the buyer's change raised by one.
    outs = [TxOut(o.script_pubkey, o.asset, o.value) for o in final.outputs]
    outs[1] = TxOut(outs[1].script_pubkey, outs[1].asset, outs[1].value - 1)
    j = next(i for i, o in enumerate(outs) if o.script_pubkey == buyer.script_pubkey and o.asset == chain.cash)
    outs[j] = TxOut(outs[j].script_pubkey, outs[j].asset, outs[j].value + 1)
    bad = assemble([TxIn(u) for u in both.spent], outs, witnesses=[i.witness for i in final.inputs])
    await assert_rejected(chain, ElementsTx.from_wally(bad), "checksig", "signature must be zero", "non-mandatory-script-verify-flag")
    txid = await chain.node.broadcast(final)
    await chain.node.mine(1)
    assert await chain.node.confirmations(txid) >= 1
