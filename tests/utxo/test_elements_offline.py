"""Offline: the Elements dialect (issued assets, explicit fees, Elements transactions). No node.

What is checked here, and against what:

* asset ids / entropy / reissuance tokens: Elements Core's published vectors
  (as carried in rust-elements' ``issuance.rs`` tests, "example test data from
  Elements Core 0.17 / 0.21"), wallycore's derivation, and a pure-Python
  SHA-256 compression (the midstate Elements' ``ComputeFastMerkleRoot`` uses);
* the Elements segwit-v0 signature hash: wallycore's digest against one
  computed here by hand from Elements' ``SignatureHash`` layout;
* every input signature of issuance, claim, refund and DvP transactions with
  wallycore's verifier (libsecp256k1);
* script execution of the HTLC (hash lock, OP_SIZE 32): python-bitcoinlib's
  interpreter, whose OP_CHECKSIG is given the Elements sighash.  That
  interpreter treats OP_CHECKLOCKTIMEVERIFY as a NOP, so the lock time is
  checked only as transaction fields here; only a node enforces CLTV, and no
  ``elementsd`` is available on this machine (tests/utxo/test_elementsd.py).
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

wally = pytest.importorskip("wallycore", reason="wallycore (the Elements library) is not installed")

from bitcoin.core import scripteval  # noqa: E402
from bitcoin.core.script import CScript  # noqa: E402

from dvp_utxo.dialect import dialect_for  # noqa: E402
from dvp_utxo.elements.assets import (  # noqa: E402
    ELEMENTSREGTEST_POLICY_ASSET,
    AssetError,
    IssuedAsset,
    asset_from_entropy,
    explicit_asset,
    explicit_value,
    issuance_entropy,
    parse_explicit_asset,
    parse_explicit_value,
    token_from_entropy,
)
from dvp_utxo.elements.dvp_tx import (  # noqa: E402
    DvpError,
    DvpTerms,
    DvpTx,
    build_dvp,
    check_dvp,
    finalize_dvp,
    sign_dvp,
    signed_vsize,
    verify_dvp,
    verify_input,
)
from dvp_utxo.elements.htlc import (  # noqa: E402
    audit_funding,
    audit_script,
    build_funding,
    build_htlc_spend,
    extract_preimage,
    fee_reserve,
    min_htlc_amount,
)
from dvp_utxo.elements.tx import (  # noqa: E402
    ElementsTx,
    TxIn,
    TxOut,
    assemble,
    build_issuance,
    build_payment,
    p2pkh_code,
    sighash,
    verify_signature,
)
from dvp_utxo.htlc import AuditError, NoFunding  # noqa: E402
from dvp_utxo.keys import Key  # noqa: E402
from dvp_utxo.script import HtlcScript, parse_htlc_witness  # noqa: E402
from dvp_utxo.tx import DUST_LIMIT, SEQUENCE_NONFINAL, TxBuildError, Utxo  # noqa: E402

from .elements_blocks import block as _block  # noqa: E402

pytestmark = pytest.mark.utxo

POLICY = ELEMENTSREGTEST_POLICY_ASSET
SELLER = Key.dev("elements-test", "seller")
BUYER = Key.dev("elements-test", "buyer")
ISSUER = Key.dev("elements-test", "issuer")
SECRET = bytes(range(32))
HASH = hashlib.sha256(SECRET).digest()
FEE_RATE = 0.1  # base units per vbyte (elementsd's default minimum relay fee)


def txid(n: int) -> str:
    return f"{n:064x}"


def wallet(key: Key, *items: tuple[str, int]) -> list[Utxo]:
    return [Utxo(txid(0xE000 + i), i, v, key.script_pubkey, 10, asset=a) for i, (a, v) in enumerate(items)]


SECURITY = IssuedAsset.from_prevout(txid(0xA11CE), 0).asset_id
CASH = IssuedAsset.from_prevout(txid(0xCA5B), 1).asset_id


def htlc(lock_height: int = 500) -> HtlcScript:
    return HtlcScript(HASH, BUYER.pubkey, SELLER.pubkey, lock_height)


# --- asset ids: published vectors, wallycore, and a hand-computed midstate ------------------

# (prevout txid:vout, contract hash as displayed, entropy, asset id, token id, token is confidential)
ELEMENTS_CORE_VECTORS = [
    ("05a047c98e82a848dee94efcf32462b065198bebf2404d201ba2e06db30b28f4:0", "00" * 32,
     "746f447f691323502cad2ef646f932613d37a83aeaa2133185b316648df4b70a",
     "dcd60818d863b5c026c40b2bc3ba6fdaf5018bcc8606c18adf7db4da0bcd8533",
     "c1adb114f4f87d33bf9ce90dd4f9ca523dd414d6cd010a7917903e2009689530", False),
    ("c76664aa4be760056dcc39b59637eeea8f3c3c3b2aeefb9f23a7b99945a2931e:1", "00" * 32,
     "bc67a13736341d8ad19e558433483a38cae48a44a5a8b5598ca0b01b5f9f9f41",
     "2ec6c1a06e895b06fffb8dc36084255f890467fb906565b0c048d4c807b4a129",
     "d09d205ff7c626ca98c91fed24787ff747fec62194ed1b7e6ef6cc775a1a1fdc", True),
    ("ee45365ddb62e8822182fbdd132fb156b4991e0b7411cff4aab576fd964f2edb:0",
     "e06e6d4933e76afd7b9cc6a013e0855aa60bbe6d2fca1c27ec6951ff5f1a20c9",
     "1922da340705eef526640b49d28b08928630d1ad52db0f945f3c389267e292c9",
     "8eebf6109bca0331fe559f0cbd1ef846a2bbb6812f3ae3d8b0b610170cc21a4e",
     "eb02cbc591c9ede071625c129f0a1fab386202cb27a894a45be0d564e961d6bc", False),
    ("8903ee739b52859877fbfedc58194c2d59d0f5a4ea3c2774dc3cba3031cec757:0", "00" * 32,
     "b9789de8589dc1b664e4f2bda4d04af9d4d2180394a8c47b1f889acfb5e0acc4",
     "bdab916e8cda17781bcdb84505452e44d0ab2f080e9e5dd7765ffd5ce0c07cd9",
     "f144868169dfc7afc024c4d8f55607ac8dfe925e67688650a9cdc54c3cfa5b1c", True),
]  # fmt: skip


@pytest.mark.parametrize("prevout,contract,entropy,asset,token,confidential", ELEMENTS_CORE_VECTORS)
def test_asset_derivation_matches_elements_core_vectors(prevout, contract, entropy, asset, token, confidential):
    txid_hex, vout = prevout.split(":")
    contract_hash = bytes.fromhex(contract)[::-1]  # displayed reversed, like every uint256
    e = issuance_entropy(txid_hex, int(vout), contract_hash)
    assert e[::-1].hex() == entropy
    assert asset_from_entropy(e) == asset
    assert token_from_entropy(e, confidential) == token
    if not confidential:
        issued = IssuedAsset.from_prevout(txid_hex, int(vout), contract_hash)
        assert (issued.asset_id, issued.token_id, issued.entropy) == (asset, token, e)


# A pure-Python SHA-256 compression function (FIPS 180-4), used for nothing but this check.
_K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]  # fmt: skip
_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def sha256_midstate(block64: bytes) -> bytes:
    """One SHA-256 compression of a 64-byte block from the IV, no padding: the raw state."""
    assert len(block64) == 64
    w = list(struct.unpack(">16I", block64))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = _IV
    for i in range(64):
        t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]) & 0xFFFFFFFF
        t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & 0xFFFFFFFF
        a, b, c, d, e, f, g, h = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return struct.pack(">8I", *((x + y) & 0xFFFFFFFF for x, y in zip(_IV, (a, b, c, d, e, f, g, h))))


def test_sha256_compression_is_right():
    # Padding "abc" by hand into one block makes the midstate the full SHA-256.
    block = b"abc" + b"\x80" + b"\x00" * 52 + struct.pack(">Q", 24)
    assert sha256_midstate(block) == hashlib.sha256(b"abc").digest()


@pytest.mark.parametrize(
    "n,vout,contract", [(1, 0, bytes(32)), (0xDEADBEEF, 7, bytes(range(32))), (2**255, 0x7FFFFFFF, b"\xff" * 32)]
)
def test_asset_derivation_by_hand_from_the_midstate(n, vout, contract):
    prev = txid(n)
    outpoint = bytes.fromhex(prev)[::-1] + struct.pack("<I", vout)
    h_outpoint = hashlib.sha256(hashlib.sha256(outpoint).digest()).digest()
    entropy = sha256_midstate(h_outpoint + contract)  # E = H(H(I) || C)
    asset = sha256_midstate(entropy + bytes(32))  # A = H(E || 0)
    token = sha256_midstate(entropy + b"\x01" + bytes(31))  # T = H(E || 1), explicit issuance
    issued = IssuedAsset.from_prevout(prev, vout, contract)
    assert issued.entropy == entropy
    assert issued.asset_id == asset[::-1].hex()
    assert issued.token_id == token[::-1].hex()


def test_explicit_encodings_and_refusals():
    assert explicit_asset(SECURITY)[0] == 1 and parse_explicit_asset(explicit_asset(SECURITY)) == SECURITY
    assert explicit_value(1000) == b"\x01" + (1000).to_bytes(8, "big")
    assert parse_explicit_value(explicit_value(2_100_000_000_000_000)) == 2_100_000_000_000_000
    with pytest.raises(AssetError, match="confidential"):
        parse_explicit_asset(b"\x0a" + b"\x11" * 32)
    with pytest.raises(AssetError, match="confidential"):
        parse_explicit_value(b"\x08" + b"\x11" * 32)
    for bad in (-1, 2_100_000_000_000_001):
        with pytest.raises(AssetError):
            explicit_value(bad)
    with pytest.raises(AssetError):
        explicit_asset("AB" * 32)


# --- the Elements signature hash, computed by hand ---------------------------------------------


def _d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def _varstr(b: bytes) -> bytes:
    assert len(b) < 0xFD
    return bytes([len(b)]) + b


def elements_sighash_by_hand(
    tx: ElementsTx, index: int, script_code: bytes, value_commitment: bytes, hashtype: int = 1
) -> bytes:
    """Elements' SignatureHash for SigVersion::WITNESS_V0 (SIGHASH_ALL, no rangeproof flag)."""
    ins, outs = tx.inputs, tx.outputs

    def outpoint(i):
        return bytes.fromhex(i.txid)[::-1] + struct.pack("<I", i.vout)

    def issuance(i):
        return (
            i.issuance_nonce + i.issuance_entropy_field + (i.issuance_amount or b"\x00") + (i.inflation_keys or b"\x00")
        )

    hash_prevouts = _d(b"".join(outpoint(i) for i in ins))
    hash_sequence = _d(b"".join(struct.pack("<I", i.sequence) for i in ins))
    hash_issuance = _d(b"".join(issuance(i) if i.has_issuance else b"\x00" for i in ins))
    hash_outputs = _d(
        b"".join(o.asset_tag + o.value_commitment + (o.nonce or b"\x00") + _varstr(o.script_pubkey) for o in outs)
    )
    me = ins[index]
    pre = (
        struct.pack("<i", tx.version) + hash_prevouts + hash_sequence + hash_issuance
        + outpoint(me) + _varstr(script_code) + value_commitment + struct.pack("<I", me.sequence)
        + (issuance(me) if me.has_issuance else b"")
        + hash_outputs + struct.pack("<I", tx.locktime) + struct.pack("<I", hashtype)
    )  # fmt: skip
    return _d(pre)


# --- issuance ---------------------------------------------------------------------------------


def issuance_tx(amount=1_000 * 10**8, tokens=0):
    funds = wallet(ISSUER, (POLICY, 5_000_000), (POLICY, 20_000))
    return funds, *build_issuance(ISSUER, funds, amount, policy_asset=POLICY, fee_rate=FEE_RATE, token_amount=tokens)


def test_issuance_tx_issues_the_derived_asset_and_balances():
    funds, tx, issued, fee = issuance_tx(tokens=10**8)
    assert issued == IssuedAsset.from_prevout(funds[0].txid, funds[0].vout)
    first = tx.inputs[0]
    assert first.has_issuance and not tx.inputs[1].has_issuance
    assert first.issuance_nonce == bytes(32) and first.issuance_entropy_field == bytes(32)  # new issuance, no contract
    assert first.issuance_amount == explicit_value(1_000 * 10**8) and first.inflation_keys == explicit_value(10**8)
    # the prevout index carries the issuance flag on the wire
    assert tx.raw.find(bytes.fromhex(funds[0].txid)[::-1] + struct.pack("<I", funds[0].vout | 0x80000000)) > 0
    outs = [(o.script_pubkey, o.asset, o.value) for o in tx.outputs]
    assert outs == [
        (ISSUER.script_pubkey, issued.asset_id, 1_000 * 10**8),
        (ISSUER.script_pubkey, issued.token_id, 10**8),
        (ISSUER.script_pubkey, POLICY, 5_020_000 - fee),
        (b"", POLICY, fee),  # the explicit fee output: empty script, policy asset
    ]
    assert fee >= FEE_RATE * tx.vsize and tx.fee(POLICY) == fee
    assert all(verify_input(tx, i, u) for i, u in enumerate(funds))
    for i, u in enumerate(funds):
        wit = tx.inputs[i].witness
        assert sighash(tx, i, p2pkh_code(ISSUER.pubkey), u.value_commitment) == elements_sighash_by_hand(
            tx, i, p2pkh_code(ISSUER.pubkey), u.value_commitment
        )
        assert verify_signature(tx, i, p2pkh_code(ISSUER.pubkey), u.value_commitment, ISSUER.pubkey, wit[0])


def test_issuance_round_trips_and_refuses_bad_requests():
    funds, tx, issued, _ = issuance_tx()
    again = ElementsTx.from_hex(tx.hex)
    assert again == tx and again.txid == tx.txid and again.raw == tx.raw
    assert again.inputs[0].issuance_amount == explicit_value(1_000 * 10**8)
    assert dialect_for("elementsd").parse_tx(tx.hex).txid == tx.txid
    with pytest.raises(TxBuildError, match="positive"):
        build_issuance(ISSUER, funds, 0, policy_asset=POLICY, fee_rate=FEE_RATE)
    with pytest.raises(TxBuildError, match="dust"):
        build_issuance(ISSUER, funds, 100, policy_asset=POLICY, fee_rate=FEE_RATE)
    with pytest.raises(TxBuildError, match="not paid to this key"):
        build_issuance(SELLER, funds, 10**8, policy_asset=POLICY, fee_rate=FEE_RATE)
    with pytest.raises(ValueError):
        ElementsTx.from_hex(tx.hex[:-2])


def test_chain_parser_reads_what_wally_writes():
    """The pure-Python reader of the chain view agrees with wallycore's codec: txid,
    spent outpoints (issuance flag masked), witnesses, explicit assets and values, fee."""
    funds = wallet(ISSUER, (POLICY, 10**8), (POLICY, 5 * 10**7))
    tx, issued, fee = build_issuance(ISSUER, funds, 10**8, policy_asset=POLICY, fee_rate=FEE_RATE, token_amount=10**3)
    wire = dialect_for("elementsd").parse_tx(tx.hex)
    assert wire.txid == tx.txid and wire.raw == tx.raw and not wire.coinbase
    assert [(i.prev_txid, i.prev_vout) for i in wire.inputs] == [u.outpoint for u in funds]
    assert [list(i.witness) for i in wire.inputs] == [i.witness for i in tx.inputs]
    assert [(o.script_pubkey, o.asset, o.value) for o in wire.outputs] == [
        (o.script_pubkey, o.asset, o.value) for o in tx.outputs
    ]
    assert wire.explicit_fee == fee == tx.fee(POLICY)
    assert issued.asset_id in {o.asset for o in wire.outputs}


@pytest.mark.parametrize("dynafed", [True, False])
def test_chain_parser_reads_elements_blocks(dynafed):
    a, _, _ = build_issuance(ISSUER, wallet(ISSUER, (POLICY, 10**8)), 10**8, policy_asset=POLICY, fee_rate=FEE_RATE)
    b, _ = build_payment(SELLER, wallet(SELLER, (SECURITY, 10**8), (POLICY, 10**6)), [TxOut(BUYER.script_pubkey, SECURITY, 10**7)],
                         policy_asset=POLICY, fee_rate=FEE_RATE)  # fmt: skip
    block = dialect_for("elementsd").parse_block(_block([a.raw, b.raw], dynafed=dynafed).hex())
    assert block.prev_hash == (b"\x11" * 32)[::-1].hex() and block.time == 1_700_000_000
    assert [t.txid for t in block.txs] == [a.txid, b.txid]
    with pytest.raises(ValueError, match="left after the block"):
        dialect_for("elementsd").parse_block(_block([a.raw], dynafed=dynafed).hex() + "00")


def test_chain_parser_keeps_blinded_outputs_as_confidential():
    tx, _ = build_payment(
        SELLER,
        wallet(SELLER, (POLICY, 10**6)),
        [TxOut(BUYER.script_pubkey, POLICY, 10**5)],
        policy_asset=POLICY,
        fee_rate=FEE_RATE,
    )
    raw = bytearray(tx.raw)
    tag = b"\x01" + bytes.fromhex(POLICY)[::-1]
    at = raw.index(tag)  # the first output's explicit asset tag -> a (syntactically) blinded generator
    raw[at] = 0x0A
    wire = dialect_for("elementsd").parse_tx(bytes(raw).hex())
    first = wire.outputs[0]
    assert first.confidential and first.value is None and first.asset is None
    assert not wire.outputs[1].confidential


def test_chain_parser_rejects_garbage_with_a_reason():
    d = dialect_for("elementsd")
    with pytest.raises(ValueError, match="truncated"):
        d.parse_tx("0200000001")
    tx, _ = build_payment(
        SELLER,
        wallet(SELLER, (POLICY, 10**6)),
        [TxOut(BUYER.script_pubkey, POLICY, 10**5)],
        policy_asset=POLICY,
        fee_rate=FEE_RATE,
    )
    with pytest.raises(ValueError, match="left after"):
        d.parse_tx(tx.hex + "00")


# --- the HTLC on Elements ---------------------------------------------------------------------


def funded(asset=SECURITY, amount=50 * 10**8, h=None):
    h = h or htlc()
    funds = (
        wallet(SELLER, (asset, 80 * 10**8), (POLICY, 1_000_000))
        if asset != POLICY
        else wallet(SELLER, (POLICY, 80 * 10**8))
    )
    tx, fee = build_funding(SELLER, h, asset, amount, funds, policy_asset=POLICY, fee_rate=FEE_RATE)
    return h, funds, tx, fee


def test_funding_locks_the_asset_and_a_fee_reserve_in_the_same_p2wsh():
    h, funds, tx, fee = funded()
    assert h.script.hex().startswith("6382012088a820" + HASH.hex())  # the Bitcoin template, reused
    locked = tx.outputs_to(h.script_pubkey)
    reserve = fee_reserve(h, FEE_RATE, SECURITY, POLICY)
    assert sorted((u.asset, u.value) for u in locked) == sorted([(SECURITY, 50 * 10**8), (POLICY, reserve)])
    assert reserve >= DUST_LIMIT
    change = {(o.asset, o.value) for o in tx.outputs if o.script_pubkey == SELLER.script_pubkey}
    assert (SECURITY, 30 * 10**8) in change
    assert tx.outputs[-1].is_fee and tx.outputs[-1].value == fee
    assert all(verify_input(tx, i, u) for i, u in enumerate(funds))
    assert ElementsTx.from_hex(tx.hex) == tx


def test_claim_of_an_issued_asset_pays_the_recipient_and_the_reserve_as_fee():
    h, _, ftx, _ = funded()
    utxos = ftx.outputs_to(h.script_pubkey)
    tx, fee = build_htlc_spend(h, utxos, BUYER, policy_asset=POLICY, fee_rate=FEE_RATE, preimage=SECRET)
    assert tx.locktime == 0 and len(tx.inputs) == 2
    assert [(o.script_pubkey, o.asset, o.value) for o in tx.outputs] == [
        (BUYER.script_pubkey, SECURITY, 50 * 10**8),
        (b"", POLICY, fee),
    ]
    assert fee == sum(u.value for u in utxos if u.asset == POLICY) and fee >= FEE_RATE * tx.vsize
    for i, u in enumerate(utxos):
        wit = tx.inputs[i].witness
        assert wit[1:] == [SECRET, b"\x01", h.script]
        assert verify_input(tx, i, u)
        assert sighash(tx, i, h.script, u.value_commitment) == elements_sighash_by_hand(
            tx, i, h.script, u.value_commitment
        )
    # the signature commits to the spent value commitment: any other amount fails
    u0 = utxos[0]
    assert not verify_input(tx, 0, Utxo(u0.txid, u0.vout, u0.value + 1, u0.script_pubkey, asset=u0.asset))
    assert extract_preimage(ElementsTx.from_hex(tx.hex), h) == SECRET
    assert extract_preimage(tx) == SECRET
    assert extract_preimage(tx, htlc(501)) is None


def test_refund_has_lock_time_non_final_sequence_and_pays_the_sender():
    h, _, ftx, _ = funded(h=htlc(777))
    utxos = ftx.outputs_to(h.script_pubkey)
    tx, fee = build_htlc_spend(h, utxos, SELLER, policy_asset=POLICY, fee_rate=FEE_RATE, refund=True)
    assert tx.locktime == 777
    assert all(i.sequence == SEQUENCE_NONFINAL == 0xFFFFFFFE for i in tx.inputs)
    assert tx.outputs[0].script_pubkey == SELLER.script_pubkey and tx.outputs[0].value == 50 * 10**8
    assert all(o.value >= DUST_LIMIT for o in tx.outputs if not o.is_fee)
    for i, u in enumerate(utxos):
        assert tx.inputs[i].witness[1:] == [b"", h.script]
        assert verify_input(tx, i, u)
    assert extract_preimage(tx, h) is None
    assert parse_htlc_witness(tx.inputs[0].witness).path == "refund"


def test_policy_asset_htlc_is_one_output_and_pays_its_own_fee():
    h, _, ftx, _ = funded(asset=POLICY, amount=10**8)
    utxos = ftx.outputs_to(h.script_pubkey)
    assert [(u.asset, u.value) for u in utxos] == [(POLICY, 10**8)]
    for refund, key in ((False, BUYER), (True, SELLER)):
        kw = dict(refund=True) if refund else dict(preimage=SECRET)
        tx, fee = build_htlc_spend(h, utxos, key, policy_asset=POLICY, fee_rate=FEE_RATE, **kw)
        assert [(o.asset, o.value) for o in tx.outputs] == [(POLICY, 10**8 - fee), (POLICY, fee)]
        assert verify_input(tx, 0, utxos[0])
    floor = min_htlc_amount(h, FEE_RATE, POLICY, POLICY)
    with pytest.raises(TxBuildError, match="dust"):
        build_funding(
            SELLER, h, POLICY, floor - 1, wallet(SELLER, (POLICY, 10**8)), policy_asset=POLICY, fee_rate=FEE_RATE
        )


def test_htlc_spend_guards():
    h, _, ftx, _ = funded()
    utxos = ftx.outputs_to(h.script_pubkey)
    kw = dict(policy_asset=POLICY, fee_rate=FEE_RATE)
    with pytest.raises(TxBuildError, match="recipient"):
        build_htlc_spend(h, utxos, SELLER, preimage=SECRET, **kw)
    with pytest.raises(TxBuildError, match="sender"):
        build_htlc_spend(h, utxos, BUYER, refund=True, **kw)
    with pytest.raises(TxBuildError, match="32 bytes"):
        build_htlc_spend(h, utxos, BUYER, preimage=SECRET + b"\x00", **kw)
    with pytest.raises(TxBuildError, match="fee reserve"):
        build_htlc_spend(h, [u for u in utxos if u.asset == SECURITY], BUYER, preimage=SECRET, **kw)
    with pytest.raises(TxBuildError, match="not an output"):
        build_htlc_spend(h, wallet(BUYER, (SECURITY, 10**8)), BUYER, preimage=SECRET, **kw)
    with pytest.raises(TxBuildError, match="sender key"):
        build_funding(BUYER, h, SECURITY, 10**8, wallet(BUYER, (SECURITY, 10**9), (POLICY, 10**6)), **kw)


# --- executing the script ----------------------------------------------------------------------


def _eval_htlc(monkeypatch, tx: ElementsTx, index: int, spent: Utxo) -> None:
    """Run the witness script on its witness stack with python-bitcoinlib's interpreter.

    Its OP_CHECKSIG is replaced by one over the Elements sighash (wallycore).
    Its OP_CHECKLOCKTIMEVERIFY is a NOP: lock times are not evaluated here.
    Raises EvalScriptError when the script fails; returns when it leaves true.
    """

    def checksig(sig, pubkey, script, txTo, inIdx, err_raiser):
        return verify_signature(tx, index, bytes(script), spent.value_commitment, bytes(pubkey), bytes(sig))

    monkeypatch.setattr(scripteval, "_CheckSig", checksig)
    wit = tx.inputs[index].witness
    script = wit[-1]
    assert hashlib.sha256(script).digest() == spent.script_pubkey[2:]  # the P2WSH program commits to it
    stack = list(wit[:-1])
    scripteval.EvalScript(stack, CScript(script), None, index)
    if not (stack and scripteval._CastToBool(stack[-1])):
        raise scripteval.EvalScriptError(
            "script left false", stack=stack, scriptIn=script, txTo=None, inIdx=index, flags=()
        )


def test_script_execution_accepts_the_claim_and_refund(monkeypatch):
    h, _, ftx, _ = funded()
    utxos = ftx.outputs_to(h.script_pubkey)
    kw = dict(policy_asset=POLICY, fee_rate=FEE_RATE)
    claim, _ = build_htlc_spend(h, utxos, BUYER, preimage=SECRET, **kw)
    refund, _ = build_htlc_spend(h, utxos, SELLER, refund=True, **kw)
    for tx in (claim, refund):
        for i, u in enumerate(utxos):
            _eval_htlc(monkeypatch, tx, i, u)
    wrong_key, _ = build_htlc_spend(h, utxos, SELLER, preimage=SECRET, check=False, **kw)
    with pytest.raises(scripteval.EvalScriptError, match="false"):
        _eval_htlc(monkeypatch, wrong_key, 0, utxos[0])


def test_script_execution_refuses_a_33_byte_preimage_even_with_matching_hash(monkeypatch):
    long_secret = bytes(range(33))
    h = HtlcScript(hashlib.sha256(long_secret).digest(), BUYER.pubkey, SELLER.pubkey, 500)
    _, _, ftx, _ = funded(h=h)
    utxos = ftx.outputs_to(h.script_pubkey)
    tx, _ = build_htlc_spend(h, utxos, BUYER, policy_asset=POLICY, fee_rate=FEE_RATE, preimage=long_secret, check=False)
    assert hashlib.sha256(long_secret).digest() == h.hashlock  # only OP_SIZE 32 OP_EQUALVERIFY stands in the way
    with pytest.raises(scripteval.EvalScriptError, match="EQUALVERIFY"):
        _eval_htlc(monkeypatch, tx, 0, utxos[0])
    wrong, _ = build_htlc_spend(
        h, utxos, BUYER, policy_asset=POLICY, fee_rate=FEE_RATE, preimage=b"\x07" * 32, check=False
    )
    with pytest.raises(scripteval.EvalScriptError, match="EQUALVERIFY"):
        _eval_htlc(monkeypatch, wrong, 0, utxos[0])
    assert extract_preimage(tx, h) is None  # never reported as a secret


# --- audit ---------------------------------------------------------------------------------------


def test_audit_accepts_the_agreed_lock_and_names_each_mismatch():
    h, _, ftx, _ = funded()
    kw = dict(policy_asset=POLICY, fee_rate=FEE_RATE, tip_height=450)
    got = audit_funding(ftx, h, SECURITY, 50 * 10**8, lock_id=h.script_hash.hex(), **kw)
    assert got.locked.asset == SECURITY and got.reserve.asset == POLICY
    assert sorted(got.utxos, key=lambda u: u.vout) == sorted(ftx.outputs_to(h.script_pubkey), key=lambda u: u.vout)
    assert audit_script(h.script, h) == h

    def field(**over):
        args = dict(tx=ftx, htlc=h, asset=SECURITY, amount=50 * 10**8, **kw)
        args.update(over)
        with pytest.raises(AuditError) as info:
            audit_funding(args.pop("tx"), args.pop("htlc"), args.pop("asset"), args.pop("amount"), **args)
        return info.value.field

    assert field(asset=CASH) == "asset"
    assert field(amount=50 * 10**8 + 1) == "amount"
    assert field(tip_height=500) == "lock_height"  # the refund would be final in the next block
    audit_funding(ftx, h, SECURITY, 50 * 10**8, **{**kw, "tip_height": 499})  # one block left: still acceptable
    assert field(min_blocks_left=60) == "lock_height"
    assert field(lock_id="00" * 32) == "script"
    assert field(confirmations=0) == "confirmations"
    assert field(fee_rate=FEE_RATE * 100) == "fee_reserve"
    for other in (
        HtlcScript(hashlib.sha256(b"other").digest(), h.recipient_pubkey, h.sender_pubkey, h.lock_height),
        HtlcScript(h.hashlock, ISSUER.pubkey, h.sender_pubkey, h.lock_height),
        HtlcScript(h.hashlock, h.recipient_pubkey, ISSUER.pubkey, h.lock_height),
        HtlcScript(h.hashlock, h.recipient_pubkey, h.sender_pubkey, h.lock_height + 1),
    ):
        with pytest.raises(NoFunding):
            audit_funding(ftx, other, SECURITY, 50 * 10**8, **kw)
        with pytest.raises(AuditError, match="script"):
            audit_script(other.script, h)
    with pytest.raises(AuditError, match="script"):
        audit_script(h.script.replace(b"\x01\x20", b"\x01\x21", 1), h)  # OP_SIZE 33


def test_audit_refuses_a_lock_without_fee_reserve_and_a_blinded_lock():
    h = htlc()
    bare = ElementsTx.from_wally(
        assemble([TxIn(wallet(SELLER, (SECURITY, 10**9))[0])], [TxOut(h.script_pubkey, SECURITY, 10**8)])
    )
    with pytest.raises(AuditError, match="fee_reserve"):
        audit_funding(bare, h, SECURITY, 10**8, policy_asset=POLICY, fee_rate=FEE_RATE, tip_height=400)
    w = wally.tx_init(2, 0, 1, 1)
    wally.tx_add_elements_raw_input(
        w, b"\xab" * 32, 0, 0xFFFFFFFF, None, None, None, None, None, None, None, None, None, 0
    )
    wally.tx_add_elements_raw_output(
        w, h.script_pubkey, b"\x0a" + b"\x11" * 32, b"\x08" + b"\x22" * 32, b"\x02" + b"\x33" * 32, None, None, 0
    )
    blinded = ElementsTx.from_wally(w)
    with pytest.raises(AuditError) as info:
        audit_funding(blinded, h, SECURITY, 10**8, policy_asset=POLICY, fee_rate=FEE_RATE, tip_height=400)
    assert info.value.field == "confidential"


# --- single-ledger DvP ---------------------------------------------------------------------------


def dvp_case(cash=CASH, fee_payer="buyer"):
    terms = DvpTerms(SELLER.pubkey, BUYER.pubkey, SECURITY, 10 * 10**8, cash, 2_500 * 10**8)
    seller = [Utxo(txid(0x5E11), 0, 15 * 10**8, SELLER.script_pubkey, asset=SECURITY)]
    if fee_payer == "seller":
        seller.append(Utxo(txid(0x5E11), 1, 50_000, SELLER.script_pubkey, asset=POLICY))
    buyer = [Utxo(txid(0xB0B), 0, 3_000 * 10**8, BUYER.script_pubkey, asset=cash)]
    if cash != POLICY and fee_payer == "buyer":
        buyer.append(Utxo(txid(0xB0B), 1, 50_000, BUYER.script_pubkey, asset=POLICY))
    dvp = build_dvp(terms, seller, buyer, policy_asset=POLICY, fee_rate=FEE_RATE, fee_payer=fee_payer)
    return terms, seller, buyer, dvp


@pytest.mark.parametrize("cash,fee_payer", [(CASH, "buyer"), (POLICY, "buyer"), (CASH, "seller")])
def test_dvp_is_one_transaction_signed_by_both_each_only_its_inputs(cash, fee_payer):
    terms, seller, buyer, dvp = dvp_case(cash, fee_payer)
    kw = dict(policy_asset=POLICY, max_fee=10_000)
    outs = [(o.script_pubkey, o.asset, o.value) for o in dvp.tx.outputs]
    assert outs[0] == (BUYER.script_pubkey, SECURITY, 10 * 10**8)  # delivery
    assert outs[1] == (SELLER.script_pubkey, cash, 2_500 * 10**8)  # payment
    assert (SELLER.script_pubkey, SECURITY, 5 * 10**8) in outs  # seller's change
    assert (BUYER.script_pubkey, cash, 500 * 10**8 - (dvp.fee if cash == POLICY else 0)) in outs
    assert outs[-1] == (b"", POLICY, dvp.fee) and dvp.fee >= FEE_RATE * dvp.tx.vsize
    n_seller = len(seller)
    for role in ("seller", "buyer"):
        check_dvp(dvp, terms, role, **kw)  # each side's own check passes on the honest transaction
    # The seller signs first, its inputs only; it travels as a PSET to the buyer.
    s1 = sign_dvp(dvp, SELLER, terms, "seller", **kw)
    assert s1.signed == [True] * n_seller + [False] * len(buyer)
    assert verify_dvp(s1) == [True] * n_seller + [False] * len(buyer)
    handed = DvpTx.from_pset(s1.to_pset(), fee_payer)
    assert handed == s1
    both = sign_dvp(handed, BUYER, terms, "buyer", **kw)
    assert both.complete and verify_dvp(both) == [True] * (n_seller + len(buyer))
    final = finalize_dvp(both)
    assert ElementsTx.from_hex(final.hex) == final
    # the buyer's signing left the seller's witnesses untouched, and the txid is fixed before signing
    assert [i.witness for i in final.inputs[:n_seller]] == [i.witness for i in s1.tx.inputs[:n_seller]]
    assert final.txid == dvp.tx.txid
    for i, u in enumerate(both.spent):
        code = p2pkh_code(final.inputs[i].witness[1])
        assert sighash(final, i, code, u.value_commitment) == elements_sighash_by_hand(
            final, i, code, u.value_commitment
        )
    with pytest.raises(DvpError, match="not .validly. signed"):
        finalize_dvp(s1)


def _tampered(dvp: DvpTx, index: int, *, value_delta=0, script=None, asset=None) -> DvpTx:
    """Rebuild ``dvp`` with output ``index`` changed, keeping every witness."""
    tx = dvp.tx
    outs = []
    for i, o in enumerate(tx.outputs):
        if i == index:
            outs.append(
                TxOut(script if script is not None else o.script_pubkey, asset or o.asset, o.value + value_delta)
            )
        else:
            outs.append(TxOut(o.script_pubkey, o.asset, o.value))
    w = assemble([TxIn(u) for u in dvp.spent], outs, witnesses=[i.witness or None for i in tx.inputs])
    return DvpTx(ElementsTx.from_wally(w), dvp.spent, dvp.fee_payer, dvp.fee)


def test_tampering_with_any_output_after_one_party_signed_invalidates_its_signature():
    terms, seller, buyer, dvp = dvp_case()
    signed = sign_dvp(dvp, SELLER, terms, "seller", policy_asset=POLICY, max_fee=10_000)
    assert verify_dvp(signed)[0]
    for index in range(len(dvp.tx.outputs)):
        other_asset = POLICY if dvp.tx.outputs[index].asset != POLICY else CASH
        for change in (dict(value_delta=-1), dict(script=ISSUER.script_pubkey), dict(asset=other_asset)):
            bad = _tampered(signed, index, **change)
            assert bad.tx.raw != signed.tx.raw
            assert verify_dvp(bad)[0] is False, (index, change)
            with pytest.raises(DvpError):
                finalize_dvp(bad)
    # an unchanged rebuild keeps the signature valid (the check above is not vacuous)
    assert verify_dvp(_tampered(signed, 0))[0] is True


def test_each_party_refuses_to_sign_a_transaction_against_its_terms():
    terms, seller, buyer, dvp = dvp_case()
    kw = dict(policy_asset=POLICY, max_fee=10_000)
    # The buyer redirects the seller's cash to itself: the seller will not sign.
    redirected = _tampered(dvp, 1, script=BUYER.script_pubkey)
    with pytest.raises(DvpError, match="seller would give"):
        sign_dvp(redirected, SELLER, terms, "seller", **kw)
    # The seller short-delivers the security: the buyer will not sign.
    short = _tampered(dvp, 0, value_delta=-1)
    with pytest.raises(DvpError, match="buyer would give"):
        sign_dvp(short, BUYER, terms, "buyer", **kw)
    with pytest.raises(DvpError, match="fee"):
        sign_dvp(dvp, BUYER, terms, "buyer", policy_asset=POLICY, max_fee=dvp.fee - 1)
    with pytest.raises(DvpError, match="not the seller's"):
        sign_dvp(dvp, BUYER, terms, "seller", **kw)
    with pytest.raises(DvpError, match="short"):
        build_dvp(
            terms,
            seller,
            [Utxo(txid(1), 0, 10**8, BUYER.script_pubkey, asset=CASH)],
            policy_asset=POLICY,
            fee_rate=FEE_RATE,
        )
    with pytest.raises(DvpError, match="fee"):
        build_dvp(
            terms, seller, buyer[:1], policy_asset=POLICY, fee_rate=FEE_RATE
        )  # cash but no policy asset for the fee
    with pytest.raises(DvpError, match="is not the seller's output"):
        build_dvp(terms, buyer, seller, policy_asset=POLICY, fee_rate=FEE_RATE)


def test_payment_moves_several_assets_with_change_per_asset():
    funds = wallet(SELLER, (SECURITY, 10**9), (CASH, 10**9), (POLICY, 10**6))
    outs = [TxOut(BUYER.script_pubkey, SECURITY, 10**8), TxOut(BUYER.script_pubkey, CASH, 2 * 10**8)]
    tx, fee = build_payment(SELLER, funds, outs, policy_asset=POLICY, fee_rate=FEE_RATE)
    got = {(o.script_pubkey, o.asset, o.value) for o in tx.outputs}
    assert got == {
        (BUYER.script_pubkey, SECURITY, 10**8), (BUYER.script_pubkey, CASH, 2 * 10**8),
        (SELLER.script_pubkey, SECURITY, 9 * 10**8), (SELLER.script_pubkey, CASH, 8 * 10**8),
        (SELLER.script_pubkey, POLICY, 10**6 - fee), (b"", POLICY, fee),
    }  # fmt: skip
    assert all(verify_input(tx, i, u) for i, u in enumerate(funds))
    with pytest.raises(TxBuildError, match="dust"):
        build_payment(
            SELLER, funds, [TxOut(BUYER.script_pubkey, SECURITY, 10**9 - 100)], policy_asset=POLICY, fee_rate=FEE_RATE
        )
    assert json.loads(json.dumps(tx.hex)) == tx.hex


def test_dvp_spending_the_sellers_order_output_is_signed_by_each_party_and_verified():
    from dataclasses import replace as dc_replace

    from dvp_utxo.elements.order import OrderScript, order_hash

    order = OrderScript(order_hash({"nonce": "ab" * 32, "security_amount": 10}), SELLER.pubkey)
    assert OrderScript.parse(order.script) == order
    terms = DvpTerms(SELLER.pubkey, BUYER.pubkey, SECURITY, 10 * 10**8, CASH, 2_500 * 10**8, seller_order=order.script)
    seller = [Utxo(txid(0x0D), 0, 10 * 10**8, order.script_pubkey, asset=SECURITY)]
    buyer = [Utxo(txid(0xB0B), 0, 3_000 * 10**8, BUYER.script_pubkey, asset=CASH),
             Utxo(txid(0xB0B), 1, 50_000, BUYER.script_pubkey, asset=POLICY)]  # fmt: skip
    dvp = build_dvp(terms, seller, buyer, policy_asset=POLICY, fee_rate=FEE_RATE)
    kw = dict(policy_asset=POLICY, max_fee=20_000)
    s1 = sign_dvp(dvp, SELLER, terms, "seller", **kw)
    assert s1.tx.inputs[0].witness[1] == order.script and not s1.tx.inputs[1].witness
    both = sign_dvp(s1, BUYER, terms, "buyer", **kw)
    assert verify_dvp(both) == [True, True, True]
    finalize_dvp(both)
    # The seller's order signature commits to every output: one unit moved breaks it.
    outs = [TxOut(o.script_pubkey, o.asset, o.value) for o in both.tx.outputs]
    outs[1] = TxOut(outs[1].script_pubkey, outs[1].asset, outs[1].value - 1)
    outs.insert(2, TxOut(BUYER.script_pubkey, CASH, 1))
    bad = dc_replace(
        both,
        tx=ElementsTx.from_wally(
            assemble([TxIn(u) for u in both.spent], outs, witnesses=[i.witness for i in both.tx.inputs])
        ),
    )
    assert verify_dvp(bad)[0] is False
    # Without the order in the terms, the order output is nobody's and the seller has nothing to sign.
    with pytest.raises(DvpError, match="not the seller's output"):
        build_dvp(dc_replace(terms, seller_order=b""), seller, buyer, policy_asset=POLICY, fee_rate=FEE_RATE)


def test_the_dvp_fee_pays_for_the_signed_size_the_order_scripts_witness_included():
    """The buyer's half carries only its own witnesses; the seller's order input, once signed,
    adds a signature and the 69-byte order script.  The fee is sized for that (build_dvp) and
    the seller's audit measures it so (signed_vsize): before, both counted a 33-byte key in its
    place, and the audit the half as it came, without the seller's witness at all."""
    from dvp_utxo.elements.order import OrderScript, order_hash
    from dvp_utxo.tx import fee_for

    order = OrderScript(order_hash({"nonce": "cd" * 32, "security_amount": 10}), SELLER.pubkey)
    terms = DvpTerms(SELLER.pubkey, BUYER.pubkey, SECURITY, 10 * 10**8, CASH, 2_500 * 10**8, seller_order=order.script)
    seller = [Utxo(txid(0x0D), 0, 10 * 10**8, order.script_pubkey, asset=SECURITY)]
    buyer = [Utxo(txid(0xB0B), 0, 3_000 * 10**8, BUYER.script_pubkey, asset=CASH),
             Utxo(txid(0xB0B), 1, 50_000, BUYER.script_pubkey, asset=POLICY)]  # fmt: skip
    kw = dict(policy_asset=POLICY, max_fee=20_000)
    for rate in (FEE_RATE, 1.0, 25.0):
        dvp = build_dvp(terms, seller, buyer, policy_asset=POLICY, fee_rate=rate)
        half = sign_dvp(dvp, BUYER, terms, "buyer", **kw)
        final = finalize_dvp(sign_dvp(half, SELLER, terms, "seller", **kw))
        estimate = signed_vsize(half, terms)
        assert final.vsize <= estimate <= final.vsize + 1, (final.vsize, estimate)  # a signature is 71 or 72 bytes
        assert estimate - half.tx.vsize >= (1 + 72 + 1 + 69) // 4  # the seller's witness, missing from the half
        assert signed_vsize(dvp, terms) >= final.vsize  # nothing signed yet: the largest witness for each
        assert dvp.fee >= fee_for(final.vsize, rate) and dvp.fee >= fee_for(estimate, rate), (rate, dvp.fee)
    assert fee_for(half.tx.vsize, 25.0) < fee_for(
        estimate, 25.0
    )  # the two floors differ: the audit needs the right one


def test_a_partly_signed_dvp_travels_as_a_pset_that_elements_tools_read():
    """The buyer's half, as PSET version 2 (base64): it round-trips with its witness and each
    input's witness_utxo, and what is not a PSET is refused in one line naming why."""
    terms, _, _, dvp = dvp_case()
    half = sign_dvp(dvp, BUYER, terms, "buyer", policy_asset=POLICY, max_fee=10_000)
    text = half.to_pset()
    assert text.startswith("cHNldP8")  # base64 of the PSET magic "pset\xff"
    pset = wally.psbt_from_base64(text, 0)
    assert wally.psbt_is_elements(pset) and wally.psbt_get_version(pset) == 2
    assert wally.psbt_get_num_inputs(pset) == len(half.spent)
    assert DvpTx.from_pset(text, "buyer") == half
    assert DvpTx.from_pset(dvp.to_pset(), "buyer") == dvp  # nothing signed yet: no final witness
    for bad, why in [
        ("not base64 at all!", "not a PSET"),
        ("cHNidP8BAAoCAAAAAAAAAAAAAA==", "not a PSET"),  # a Bitcoin PSBT v0 of an empty tx
        (text[: len(text) // 2], "not a PSET"),
    ]:
        with pytest.raises(DvpError, match=why) as info:
            DvpTx.from_pset(bad, "buyer")
        assert "\n" not in str(info.value)
