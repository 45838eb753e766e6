"""Offline: keys, the HTLC script, witnesses and transaction building. No node."""

from __future__ import annotations

import hashlib

import pytest
from bitcoin.core import CTransaction, Hash160
from bitcoin.core.key import CPubKey
from bitcoin.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    SignatureHash,
)

from dvp_utxo.keys import Key, p2wpkh_script
from dvp_utxo.script import HtlcScript, ScriptError, claim_witness, parse_htlc_witness, refund_witness
from dvp_utxo.tx import (
    DUST_LIMIT,
    SEQUENCE_NONFINAL,
    TxBuildError,
    Utxo,
    build_htlc_spend,
    build_payment,
    htlc_spend_fee,
    min_htlc_amount,
    select_coins,
    tx_from_hex,
    tx_hex,
    txid_of,
    vsize,
)

pytestmark = pytest.mark.utxo

SELLER = Key.dev("test", "seller")
BUYER = Key.dev("test", "buyer")
SECRET = bytes(range(32))
HASH = hashlib.sha256(SECRET).digest()


def htlc(lock_height: int = 500) -> HtlcScript:
    return HtlcScript(HASH, BUYER.pubkey, SELLER.pubkey, lock_height)


def funding_utxo(h: HtlcScript, value: int = 100_000, vout: int = 0) -> Utxo:
    return Utxo("ab" * 32, vout, value, h.script_pubkey, 450)


# --- keys ---------------------------------------------------------------------------------


def test_dev_keys_are_deterministic_per_ledger_and_party():
    assert Key.dev("test", "seller") == SELLER
    assert Key.dev("other", "seller") != SELLER and SELLER != BUYER
    assert Key.parse(SELLER.wif) == SELLER and Key.parse(SELLER.secret.hex()) == SELLER
    assert SELLER.wif.startswith("c") and SELLER.address.startswith("bcrt1q")
    assert "secret" not in repr(SELLER) and SELLER.secret.hex() not in repr(SELLER)
    assert SELLER.script_pubkey == p2wpkh_script(SELLER.pubkey) and len(SELLER.script_pubkey) == 22


# --- the script ----------------------------------------------------------------------------


def test_script_is_the_documented_template_byte_for_byte():
    h = htlc(500)
    expected = (
        "63"  # OP_IF
        "82" "0120" "88"  # OP_SIZE <32> OP_EQUALVERIFY
        "a8" "20" + HASH.hex() + "88"  # OP_SHA256 <hash32> OP_EQUALVERIFY
        "21" + BUYER.pubkey.hex() +  # <recipient_pubkey>
        "67"  # OP_ELSE
        "02f401" "b1" "75"  # <500> OP_CHECKLOCKTIMEVERIFY OP_DROP
        "21" + SELLER.pubkey.hex() +  # <sender_pubkey>
        "68" "ac"  # OP_ENDIF OP_CHECKSIG
    )  # fmt: skip
    assert h.script.hex() == expected
    assert h.script_pubkey == b"\x00\x20" + hashlib.sha256(h.script).digest()
    assert h.script_hash == hashlib.sha256(h.script).digest()


@pytest.mark.parametrize("height", [1, 16, 17, 127, 128, 255, 256, 32767, 32768, 8_388_607, 8_388_608, 499_999_999])
def test_script_parse_round_trips_every_height_encoding(height):
    h = htlc(height)
    assert HtlcScript.parse(h.script) == h


def test_parse_refuses_anything_but_the_exact_template():
    good = htlc().script
    mutations = [
        good[:-1],  # no OP_CHECKSIG
        good + b"\xac",
        good.replace(b"\x01\x20", b"\x01\x21", 1),  # OP_SIZE 33
        good.replace(b"\xa8", b"\xa9", 1),  # OP_HASH160 instead of OP_SHA256
        good.replace(b"\xb1", b"\xb2", 1),  # CSV instead of CLTV
    ]
    for bad in mutations:
        with pytest.raises(ScriptError):
            HtlcScript.parse(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hashlock=b"\x00" * 31),
        dict(lock_height=0),
        dict(lock_height=500_000_000),  # a timestamp, not a height
        dict(recipient_pubkey=b"\x02" + b"\x00" * 32),  # not on the curve
        dict(recipient_pubkey=SELLER.pubkey),  # recipient == sender
    ],
)
def test_script_terms_are_validated(kwargs):
    base = dict(hashlock=HASH, recipient_pubkey=BUYER.pubkey, sender_pubkey=SELLER.pubkey, lock_height=500)
    with pytest.raises(ScriptError):
        HtlcScript(**{**base, **kwargs})


def test_witness_parsing_reveals_only_a_matching_32_byte_preimage():
    h = htlc()
    sig = b"\x30" * 71
    assert parse_htlc_witness(claim_witness(sig, SECRET, h.script)).preimage == SECRET
    wrong = parse_htlc_witness(claim_witness(sig, b"\x01" * 32, h.script))
    assert wrong.path == "claim" and wrong.preimage is None
    refund = parse_htlc_witness(refund_witness(sig, h.script))
    assert refund.path == "refund" and refund.preimage is None and refund.htlc == h
    assert parse_htlc_witness([sig, BUYER.pubkey]) is None  # a P2WPKH spend
    assert parse_htlc_witness([sig, SECRET, b"\x01", b"\x51"]) is None


# --- transactions --------------------------------------------------------------------------


def _verify_sig(tx: CTransaction, index: int, script_code: bytes, amount: int, pubkey: bytes) -> bool:
    stack = tx.wit.vtxinwit[index].scriptWitness.stack
    sig = stack[0]
    assert sig[-1] == SIGHASH_ALL
    digest = SignatureHash(
        CScript(script_code), tx, index, SIGHASH_ALL, amount=amount, sigversion=SIGVERSION_WITNESS_V0
    )
    return CPubKey(pubkey).verify(digest, sig[:-1])


def test_claim_tx_shape_fee_and_signature():
    h = htlc()
    u = funding_utxo(h)
    tx, fee = build_htlc_spend(h, [u], BUYER, 2.0, preimage=SECRET)
    assert tx.nLockTime == 0 and len(tx.vin) == 1 and len(tx.vout) == 1
    assert bytes(tx.vout[0].scriptPubKey) == BUYER.script_pubkey  # the fixed recipient
    assert tx.vout[0].nValue == u.value - fee
    assert fee >= 2 * vsize(tx)  # placeholder sizes never under-pay
    stack = list(tx.wit.vtxinwit[0].scriptWitness.stack)
    assert stack[1:] == [SECRET, b"\x01", h.script]
    assert _verify_sig(tx, 0, h.script, u.value, BUYER.pubkey)
    assert parse_htlc_witness(stack).preimage == SECRET
    assert tx_from_hex(tx_hex(tx)).GetTxid() == tx.GetTxid() and len(txid_of(tx)) == 64


def test_refund_tx_has_locktime_nonfinal_sequence_and_empty_branch_selector():
    h = htlc(777)
    u = funding_utxo(h)
    tx, fee = build_htlc_spend(h, [u], SELLER, 2.0, refund=True)
    assert tx.nLockTime == 777
    assert tx.vin[0].nSequence == SEQUENCE_NONFINAL == 0xFFFFFFFE
    assert bytes(tx.vout[0].scriptPubKey) == SELLER.script_pubkey
    stack = list(tx.wit.vtxinwit[0].scriptWitness.stack)
    assert stack[1:] == [b"", h.script]
    assert _verify_sig(tx, 0, h.script, u.value, SELLER.pubkey)


def test_htlc_spend_sweeps_every_output_of_the_script():
    h = htlc()
    utxos = [funding_utxo(h, 50_000, 0), funding_utxo(h, 2_000, 1)]
    tx, fee = build_htlc_spend(h, utxos, BUYER, 2.0, preimage=SECRET)
    assert len(tx.vin) == 2 and tx.vout[0].nValue == 52_000 - fee
    assert all(_verify_sig(tx, i, h.script, u.value, BUYER.pubkey) for i, u in enumerate(utxos))


def test_htlc_spend_guards():
    h = htlc()
    u = funding_utxo(h)
    with pytest.raises(TxBuildError, match="recipient"):
        build_htlc_spend(h, [u], SELLER, 2.0, preimage=SECRET)
    with pytest.raises(TxBuildError, match="sender"):
        build_htlc_spend(h, [u], BUYER, 2.0, refund=True)
    with pytest.raises(TxBuildError):
        build_htlc_spend(h, [u], BUYER, 2.0, preimage=SECRET, refund=True)
    with pytest.raises(TxBuildError, match="not an output"):
        build_htlc_spend(h, [Utxo("cd" * 32, 0, 10_000, SELLER.script_pubkey)], BUYER, 2.0, preimage=SECRET)
    tiny = funding_utxo(h, DUST_LIMIT + htlc_spend_fee(h, 2.0) - 1)
    with pytest.raises(TxBuildError, match="dust"):
        build_htlc_spend(h, [tiny], BUYER, 2.0, preimage=SECRET)
    floor = min_htlc_amount(h, 2.0)
    build_htlc_spend(h, [funding_utxo(h, floor)], BUYER, 2.0, preimage=SECRET)
    build_htlc_spend(h, [funding_utxo(h, floor)], SELLER, 2.0, refund=True)


def _wallet(values):
    return [Utxo(f"{i:064x}", 0, v, SELLER.script_pubkey, 10) for i, v in enumerate(values)]


def test_payment_with_change_and_explicit_fee():
    h = htlc()
    utxos = _wallet([100_000, 30_000])
    chosen = select_coins(utxos, 60_000, 2.0, 43)
    assert [u.value for u in chosen] == [100_000]
    tx, fee = build_payment(SELLER, chosen, [(h.script_pubkey, 60_000)], 2.0)
    assert [o.nValue for o in tx.vout] == [60_000, 100_000 - 60_000 - fee]
    assert bytes(tx.vout[1].scriptPubKey) == SELLER.script_pubkey
    assert fee >= 2 * vsize(tx)
    p2pkh_code = CScript([OP_DUP, OP_HASH160, Hash160(SELLER.pubkey), OP_EQUALVERIFY, OP_CHECKSIG])
    assert _verify_sig(tx, 0, bytes(p2pkh_code), 100_000, SELLER.pubkey)


def test_change_below_dust_goes_to_fee():
    utxos = _wallet([10_000])
    tx, fee = build_payment(SELLER, utxos, [(BUYER.script_pubkey, 9_500)], 2.0)
    assert len(tx.vout) == 1 and fee == 500


def test_payment_guards():
    with pytest.raises(TxBuildError, match="insufficient"):
        select_coins(_wallet([1_000, 2_000]), 10_000, 2.0, 31)
    with pytest.raises(TxBuildError, match="dust"):
        build_payment(SELLER, _wallet([10_000]), [(BUYER.script_pubkey, 100)], 2.0)
    with pytest.raises(TxBuildError, match="not paid to this key"):
        build_payment(BUYER, _wallet([10_000]), [(BUYER.script_pubkey, 1_000)], 2.0)
    with pytest.raises(TxBuildError, match="insufficient"):
        build_payment(SELLER, _wallet([1_000]), [(BUYER.script_pubkey, 900)], 2.0)


def test_coin_selection_skips_nothing_it_was_not_given_and_prefers_confirmed():
    utxos = [
        Utxo("aa" * 32, 0, 50_000, SELLER.script_pubkey, None),
        Utxo("bb" * 32, 0, 40_000, SELLER.script_pubkey, 5),
    ]
    assert [u.txid for u in select_coins(utxos, 30_000, 2.0, 31)] == ["bb" * 32]


def test_builder_matches_the_documented_template():
    from pathlib import Path

    from bitcoin.core.script import CScript

    asm = (Path(__file__).resolve().parents[2] / "contracts" / "utxo" / "htlc.asm").read_text().split()
    values = {"<hash32>": HASH.hex(), "<recipient_pubkey>": BUYER.pubkey.hex(), "<sender_pubkey>": SELLER.pubkey.hex(),
              "<lock_height>": (500).to_bytes(2, "little").hex(), "32": "20"}  # fmt: skip
    built = []
    for op in CScript(htlc(500).script):
        built.append(op.hex() if isinstance(op, bytes) else str(op))
    assert built == [values.get(tok, tok) for tok in asm]


def test_two_networks_in_one_process_keep_their_own_encodings():
    """python-bitcoinlib's params are process-global: every encoding selects its ledger's
    network under a lock and restores the default, so interleaved ledgers never mix."""
    import bitcoin

    from dvp_utxo.keys import p2wpkh_address

    default = bitcoin.params
    for _ in range(3):
        assert p2wpkh_address(SELLER.pubkey, "main").startswith("bc1q")
        assert p2wpkh_address(SELLER.pubkey, "regtest").startswith("bcrt1q")
        assert p2wpkh_address(SELLER.pubkey, "test").startswith("tb1q")
        assert Key.parse(SELLER.wif, "regtest") == SELLER
    assert bitcoin.params is default
    mainnet_wif = "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"  # secret 1, compressed
    assert Key.parse(mainnet_wif, "main").secret == (1).to_bytes(32, "big")
    with pytest.raises(ValueError):
        Key.parse(mainnet_wif, "regtest")
