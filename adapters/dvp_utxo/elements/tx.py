"""Elements transactions with explicit values: codec, signing, payments, issuance.

Everything consensus-shaped goes through ``wallycore``: the serialisation
(``tx_to_bytes``/``tx_from_bytes`` with the Elements flag), the txid, the
virtual size, and the Elements segwit-v0 signature hash
(``tx_get_elements_signature_hash``), which differs from BIP143 in that it
commits to the spent output's *value commitment* (9 bytes when explicit,
33 when blinded) instead of an 8-byte amount, and to each input's issuance.

Rules kept here, as on Bitcoin (``dvp_utxo.tx``, which also holds the pieces both
codecs share: :class:`~dvp_utxo.tx.Utxo` with its ``asset``, the dust limit,
:func:`~dvp_utxo.tx.fee_for`, coin selection and :class:`~dvp_utxo.tx.TxBuildError`):

* fees are explicit: an output with an empty script in the policy asset
  (Elements' fee output), sized from the virtual size measured with placeholder
  witnesses of the largest signature, so the real transaction never pays less
  than ``fee_rate`` base units per vbyte;
* no output except the fee is below :data:`DUST_LIMIT` base units of its asset
  (Elements applies the dust rule to every explicit non-fee output whatever
  its asset); policy-asset change below dust goes to the fee, issued-asset
  change below dust is refused (it cannot pay a fee);
* every input is P2WPKH (a party's wallet) or our P2WSH HTLC; signatures are
  SIGHASH_ALL, low-R ECDSA from ``wallycore``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import wallycore as wally
from bitcoin.core.script import OP_CHECKSIG, OP_DUP, OP_EQUALVERIFY, OP_HASH160, CScript

from ..keys import Key, pubkey_hash
from ..tx import DUST_LIMIT, MAX_SIG, SEQUENCE_FINAL, Room, TxBuildError, Utxo, fee_for, select_assets, settle_fee
from .assets import (
    ZERO32,
    AssetError,
    IssuedAsset,
    explicit_asset,
    explicit_value,
    parse_explicit_asset,
    parse_explicit_value,
)

SIGHASH_ALL = wally.WALLY_SIGHASH_ALL
# Elements marks an issuance input by this bit of its prevout index (the binding
# exposes WALLY_TX_ISSUANCE_FLAG as a signed int, so it is spelled out here).
ISSUANCE_FLAG = 0x80000000
_TX_FLAGS = wally.WALLY_TX_FLAG_USE_WITNESS
_PARSE_FLAGS = wally.WALLY_TX_FLAG_USE_WITNESS | wally.WALLY_TX_FLAG_USE_ELEMENTS
# A ``wally_tx`` handle: an opaque capsule that only ``wallycore``'s functions read (it ships no types).
WallyTx: TypeAlias = object


# --- plain data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Issuance:
    """A new (not re-) issuance attached to an input."""

    amount: int  # of the new asset
    token_amount: int = 0  # reissuance tokens; 0: none
    contract_hash: bytes = ZERO32


@dataclass(frozen=True)
class TxIn:
    utxo: Utxo
    sequence: int = SEQUENCE_FINAL
    issuance: Issuance | None = None


@dataclass(frozen=True)
class TxOut:
    script_pubkey: bytes  # b"": the fee output
    asset: str
    value: int

    @property
    def is_fee(self) -> bool:
        return not self.script_pubkey


@dataclass(frozen=True)
class InputView:
    txid: str
    vout: int
    sequence: int
    witness: list[bytes]
    issuance_amount: bytes  # raw value commitment, b"" when the input issues nothing
    issuance_entropy_field: bytes  # contract hash (new issuance) or entropy (reissuance)
    issuance_nonce: bytes
    inflation_keys: bytes = b""

    @property
    def has_issuance(self) -> bool:
        # Elements requires a new issuance or a reissuance to set an amount or tokens.
        return bool(self.issuance_amount) or bool(self.inflation_keys)


@dataclass(frozen=True)
class OutputView:
    script_pubkey: bytes
    asset_tag: bytes
    value_commitment: bytes
    nonce: bytes

    @property
    def is_fee(self) -> bool:
        return not self.script_pubkey

    @property
    def is_explicit(self) -> bool:
        try:
            self.asset, self.value  # noqa: B018
        except AssetError:
            return False
        return True

    @property
    def asset(self) -> str:
        return parse_explicit_asset(self.asset_tag)

    @property
    def value(self) -> int:
        return parse_explicit_value(self.value_commitment)


# --- the transaction -----------------------------------------------------------------


def _wtx_get(fn: Callable[..., bytes | bytearray], *args: object, length: Callable[..., int] | None = None) -> bytes:
    """A field of a wally tx; b"" when absent.

    The binding returns fixed-size buffers, so a field's length comes from its
    ``*_len`` getter where wally has one (``length``); fields without one (the
    output nonce and asset) come back zero-filled when null, and an all-zero
    commitment is never valid, so all-zero means null.
    """
    if length is not None and not length(*args):
        return b""
    try:
        raw = bytes(fn(*args))
    except ValueError:  # wally refuses to return an empty field
        return b""
    if length is not None:
        return raw[: length(*args)]
    return raw


def _nonzero(raw: bytes) -> bytes:
    return raw if any(raw) else b""


@dataclass(frozen=True)
class ElementsTx:
    """An Elements transaction, held as its serialised bytes (with witnesses)."""

    raw: bytes
    _cache: dict[str, WallyTx] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def from_wally(cls, wtx: WallyTx) -> "ElementsTx":
        return cls(bytes(wally.tx_to_bytes(wtx, _TX_FLAGS)))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "ElementsTx":
        wtx = wally.tx_from_bytes(bytes(raw), _PARSE_FLAGS)  # raises ValueError if malformed
        tx = cls.from_wally(wtx)
        if tx.raw != bytes(raw):
            raise ValueError("not a canonical Elements transaction (does not re-serialise byte for byte)")
        return tx

    @classmethod
    def from_hex(cls, text: str) -> "ElementsTx":
        return cls.from_bytes(bytes.fromhex(text))

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def wally(self) -> WallyTx:
        """A fresh ``wally_tx`` (callers may mutate it)."""
        return wally.tx_from_bytes(self.raw, _PARSE_FLAGS)

    def _w(self) -> WallyTx:
        if "w" not in self._cache:
            self._cache["w"] = self.wally()
        return self._cache["w"]

    @property
    def txid(self) -> str:
        return bytes(wally.tx_get_txid(self._w()))[::-1].hex()

    @property
    def vsize(self) -> int:
        return int(wally.tx_get_vsize(self._w()))

    @property
    def weight(self) -> int:
        return int(wally.tx_get_weight(self._w()))

    @property
    def version(self) -> int:
        return int(wally.tx_get_version(self._w()))

    @property
    def locktime(self) -> int:
        return int(wally.tx_get_locktime(self._w()))

    @property
    def inputs(self) -> list[InputView]:
        w = self._w()
        out = []
        for i in range(wally.tx_get_num_inputs(w)):
            n = wally.tx_get_input_witness_num_items(w, i)
            witness = [
                _wtx_get(wally.tx_get_input_witness, w, i, j, length=wally.tx_get_input_witness_len) for j in range(n)
            ]
            out.append(
                InputView(
                    txid=bytes(wally.tx_get_input_txhash(w, i))[::-1].hex(),
                    vout=int(wally.tx_get_input_index(w, i)),
                    sequence=int(wally.tx_get_input_sequence(w, i)),
                    witness=witness,
                    issuance_amount=_wtx_get(
                        wally.tx_get_input_issuance_amount, w, i, length=wally.tx_get_input_issuance_amount_len
                    ),
                    issuance_entropy_field=_wtx_get(wally.tx_get_input_entropy, w, i),
                    issuance_nonce=_wtx_get(wally.tx_get_input_blinding_nonce, w, i),
                    inflation_keys=_wtx_get(
                        wally.tx_get_input_inflation_keys, w, i, length=wally.tx_get_input_inflation_keys_len
                    ),
                )
            )
        return out

    @property
    def outputs(self) -> list[OutputView]:
        w = self._w()
        return [
            OutputView(
                script_pubkey=_wtx_get(wally.tx_get_output_script, w, i, length=wally.tx_get_output_script_len),
                asset_tag=_nonzero(_wtx_get(wally.tx_get_output_asset, w, i)),
                value_commitment=_wtx_get(wally.tx_get_output_value, w, i, length=wally.tx_get_output_value_len),
                nonce=_nonzero(_wtx_get(wally.tx_get_output_nonce, w, i)),
            )
            for i in range(wally.tx_get_num_outputs(w))
        ]

    def utxo(self, vout: int, height: int | None = None) -> Utxo:
        """Output ``vout`` as a spendable :class:`Utxo` (explicit outputs only)."""
        o = self.outputs[vout]
        if o.is_fee:
            raise TxBuildError("the fee output cannot be spent")
        return Utxo(self.txid, vout, o.value, o.script_pubkey, height, asset=o.asset)

    def outputs_to(self, script_pubkey: bytes) -> list[Utxo]:
        return [self.utxo(i) for i, o in enumerate(self.outputs) if o.script_pubkey == script_pubkey]

    def fee(self, policy_asset: str) -> int:
        return sum(o.value for o in self.outputs if o.is_fee and o.asset == policy_asset)


def assemble(inputs: list[TxIn], outputs: list[TxOut], *, locktime: int = 0, witnesses: Sequence[Sequence[bytes] | None] | None = None,
             version: int = 2) -> WallyTx:  # fmt: skip
    """A ``wally_tx`` from plain data; witnesses empty unless given."""
    w = wally.tx_init(version, locktime, len(inputs), len(outputs))
    for txin in inputs:
        u, iss = txin.utxo, txin.issuance
        wally.tx_add_elements_raw_input(
            w,
            bytes.fromhex(u.txid)[::-1],
            u.vout | (ISSUANCE_FLAG if iss else 0),  # the prevout flag that marks an issuance
            txin.sequence,
            None,  # scriptSig: segwit only
            None,
            ZERO32 if iss else None,  # blinding nonce: zero for a new issuance
            bytes(iss.contract_hash) if iss else None,  # assetEntropy field: the contract hash
            explicit_value(iss.amount) if iss and iss.amount else None,
            explicit_value(iss.token_amount) if iss and iss.token_amount else None,
            None,
            None,
            None,
            0,
        )
    for o in outputs:
        wally.tx_add_elements_raw_output(
            w, bytes(o.script_pubkey) or None, explicit_asset(o.asset), explicit_value(o.value), None, None, None, 0
        )
    if witnesses is not None:
        set_witnesses(w, witnesses)
    return w


def witness_stack(items: Sequence[bytes]) -> object:
    """A wally witness stack of ``items``."""
    st = wally.tx_witness_stack_init(len(items))
    for item in items:
        wally.tx_witness_stack_add(st, bytes(item))
    return st


def set_witnesses(w: WallyTx, witnesses: Sequence[Sequence[bytes] | None]) -> None:
    """Each input's witness; None leaves it as it is, an empty list clears it."""
    for i, items in enumerate(witnesses):
        if items is None:
            continue
        wally.tx_set_input_witness(w, i, witness_stack(items) if items else None)


# --- signatures ------------------------------------------------------------------------


def p2pkh_code(pubkey: bytes) -> bytes:
    """The script code a P2WPKH input is signed with (BIP143, unchanged in Elements)."""
    return bytes(CScript([OP_DUP, OP_HASH160, pubkey_hash(pubkey), OP_EQUALVERIFY, OP_CHECKSIG]))


def sighash(
    w: WallyTx | ElementsTx, index: int, script_code: bytes, value_commitment: bytes, hashtype: int = SIGHASH_ALL
) -> bytes:
    """Elements segwit-v0 signature hash of input ``index`` of ``w`` (a wally tx or :class:`ElementsTx`)."""
    if isinstance(w, ElementsTx):
        w = w._w()
    # WALLY_TX_FLAG_USE_WITNESS selects the segwit-v0 digest; without it wally
    # computes the legacy digest, which commits to no value at all.
    return bytes(
        wally.tx_get_elements_signature_hash(
            w, index, bytes(script_code), bytes(value_commitment), hashtype, wally.WALLY_TX_FLAG_USE_WITNESS
        )
    )


def sign_input(key: Key, w: WallyTx, index: int, script_code: bytes, value_commitment: bytes) -> bytes:
    """DER signature (low-R, low-S) plus the SIGHASH_ALL byte."""
    digest = sighash(w, index, script_code, value_commitment)
    compact = wally.ec_sig_from_bytes(key.secret, digest, wally.EC_FLAG_ECDSA | wally.EC_FLAG_GRIND_R)
    return bytes(wally.ec_sig_to_der(compact)) + bytes([SIGHASH_ALL])


def verify_signature(
    tx: ElementsTx, index: int, script_code: bytes, value_commitment: bytes, pubkey: bytes, sig_with_hashtype: bytes
) -> bool:
    """Check one ECDSA signature with ``wallycore``'s verifier (libsecp256k1)."""
    if not sig_with_hashtype or sig_with_hashtype[-1] != SIGHASH_ALL:
        return False
    try:
        compact = bytes(wally.ec_sig_from_der(bytes(sig_with_hashtype[:-1])))
        # libsecp256k1 verifies low-S signatures only, as the node's policy does.
        wally.ec_sig_verify(
            bytes(pubkey), sighash(tx, index, script_code, value_commitment), wally.EC_FLAG_ECDSA, compact
        )
    except ValueError:
        return False
    return True


# --- fees and balances -----------------------------------------------------------------


def _balances(inputs: list[TxIn], outputs: list[TxOut], issued: dict[str, int]) -> dict[str, int]:
    bal: dict[str, int] = defaultdict(int)
    for t in inputs:
        bal[t.utxo.explicit_asset] += t.utxo.value
    for asset, amount in issued.items():
        bal[asset] += amount
    for o in outputs:
        bal[o.asset] -= o.value
    return bal


def check_no_dust(outputs: list[TxOut]) -> None:
    for o in outputs:
        if not o.is_fee and o.value < DUST_LIMIT:
            raise TxBuildError(
                f"output of {o.value} units of {o.asset[:8]}.. is below the dust limit ({DUST_LIMIT})", code="dust"
            )


def balance_with_fee(
    inputs: list[TxIn],
    outputs: list[TxOut],
    *,
    policy_asset: str,
    fee_rate: float,
    change: dict[str, bytes],
    placeholder: Sequence[Sequence[bytes] | None],
    locktime: int = 0,
    issued: dict[str, int] | None = None,
) -> tuple[list[TxOut], int]:
    """Add change per asset and the fee output, so that every asset balances.

    ``change`` maps an asset to the script its change goes to (policy-asset
    change below dust is added to the fee; other change below dust is refused).
    Returns the full output list (fee last) and the fee.
    """
    check_no_dust(outputs)
    bal = _balances(inputs, outputs, issued or {})
    outs = list(outputs)
    for asset, left in sorted(bal.items()):
        if asset == policy_asset:
            continue
        if left < 0:
            raise TxBuildError(f"insufficient {asset[:8]}..: short by {-left}", code="insufficient-funds")
        if left == 0:
            continue
        if left < DUST_LIMIT:
            raise TxBuildError(f"change of {left} units of {asset[:8]}.. would be dust", code="dust")
        if asset not in change:
            raise TxBuildError(f"no change script for asset {asset[:8]}..")
        outs.append(TxOut(change[asset], asset, left))
    policy_left = bal.get(policy_asset, 0)

    def measure(with_change: bool) -> int:
        trial = outs + (
            [TxOut(change.get(policy_asset, b"\x00" * 22), policy_asset, DUST_LIMIT)] if with_change else []
        )
        trial = trial + [TxOut(b"", policy_asset, 1)]
        w = assemble(inputs, trial, locktime=locktime, witnesses=placeholder)
        return fee_for(int(wally.tx_get_vsize(w)), fee_rate)

    rest, fee = settle_fee(policy_left, measure, change_allowed=policy_asset in change)
    return outs + ([TxOut(change[policy_asset], policy_asset, rest)] if rest is not None else []) + [
        TxOut(b"", policy_asset, fee)
    ], fee


# --- wallet spends -----------------------------------------------------------------------


def select_utxos(
    utxos: list[Utxo], needs: dict[str, int], policy_asset: str, fee_rate: float, room: Room | None = None
) -> list[Utxo]:
    """Enough of each asset for ``needs``, and of the policy asset for its need plus the fee
    (within ``room``: see :func:`~dvp_utxo.tx.select_assets`)."""

    def fee(n: int) -> int:
        return fee_for(400 + 80 * n, fee_rate)  # outputs and the fee output, plus P2WPKH inputs

    return select_assets(utxos, dict(needs), policy_asset, fee, room)


def _wallet_placeholder(key: Key, n: int) -> list[list[bytes] | None]:
    return [[MAX_SIG, key.pubkey] for _ in range(n)]


def sign_wallet_inputs(w: WallyTx, key: Key, inputs: list[TxIn], only_own: bool = False) -> list[list[bytes] | None]:
    """P2WPKH witnesses for the inputs paid to ``key`` (others: None, or an error)."""
    own = key.script_pubkey
    stacks: list[list[bytes] | None] = []
    for i, t in enumerate(inputs):
        if t.utxo.script_pubkey != own:
            if only_own:
                stacks.append(None)
                continue
            raise TxBuildError(f"input {t.utxo.txid}:{t.utxo.vout} is not paid to this key")
        stacks.append([sign_input(key, w, i, p2pkh_code(key.pubkey), t.utxo.value_commitment), key.pubkey])
    return stacks


def build_payment(
    key: Key,
    utxos: list[Utxo],
    outputs: list[TxOut],
    *,
    policy_asset: str,
    fee_rate: float,
) -> tuple[ElementsTx, int]:
    """Spend all of ``key``'s ``utxos`` to ``outputs``; change per asset back to ``key``."""
    if not utxos:
        raise TxBuildError("no inputs")
    inputs = [TxIn(u) for u in utxos]
    for t in inputs:
        if t.utxo.script_pubkey != key.script_pubkey:
            raise TxBuildError(f"input {t.utxo.txid}:{t.utxo.vout} is not paid to this key")
    change = {a: key.script_pubkey for a in {u.explicit_asset for u in utxos} | {policy_asset}}
    outs, fee = balance_with_fee(
        inputs,
        outputs,
        policy_asset=policy_asset,
        fee_rate=fee_rate,
        change=change,
        placeholder=_wallet_placeholder(key, len(inputs)),
    )
    w = assemble(inputs, outs)
    set_witnesses(w, sign_wallet_inputs(w, key, inputs))
    return ElementsTx.from_wally(w), fee


# The genesis "free coins" of an Elements custom chain (``-initialfreecoins``) sit in
# OP_TRUE outputs, which the node treats as standard while ``-anyonecanspendaremine``
# is on (its default on custom chains): spent with an empty scriptSig, no signature.
ANYONE_CAN_SPEND = b"\x51"


def build_free_coins_spend(
    utxos: list[Utxo], outputs: list[TxOut], *, policy_asset: str, fee_rate: float, change_script: bytes
) -> tuple[ElementsTx, int]:
    """Pay ``outputs`` from anyone-can-spend ``utxos``, the rest of the policy asset to ``change_script``."""
    if not utxos or any(u.script_pubkey != ANYONE_CAN_SPEND for u in utxos):
        raise TxBuildError("only anyone-can-spend (OP_TRUE) outputs can be spent without a key")
    inputs = [TxIn(u) for u in utxos]
    outs, fee = balance_with_fee(inputs, outputs, policy_asset=policy_asset, fee_rate=fee_rate,
                                 change={policy_asset: change_script}, placeholder=[None] * len(inputs))  # fmt: skip
    return ElementsTx.from_wally(assemble(inputs, outs)), fee


# --- issuance ------------------------------------------------------------------------------


def build_issuance(
    key: Key,
    utxos: list[Utxo],
    amount: int,
    *,
    policy_asset: str,
    fee_rate: float,
    token_amount: int = 0,
    contract_hash: bytes = ZERO32,
    destination: bytes | None = None,
) -> tuple[ElementsTx, IssuedAsset, int]:
    """Issue ``amount`` units of a new asset from the first of ``key``'s ``utxos``.

    The asset id is fixed by that input's outpoint and ``contract_hash``
    (:class:`~.assets.IssuedAsset`); the new units (and ``token_amount``
    reissuance tokens, if any) are paid to ``destination`` (default: ``key``),
    policy-asset change back to ``key``, the fee to an explicit fee output.
    """
    if not utxos:
        raise TxBuildError("an issuance needs an input to issue from")
    if amount <= 0 and token_amount <= 0:
        raise TxBuildError("issue a positive amount or tokens")
    if key.script_pubkey != utxos[0].script_pubkey:
        raise TxBuildError("the issuing input is not paid to this key")
    first = utxos[0]
    issued = IssuedAsset.from_prevout(first.txid, first.vout, contract_hash)
    dest = destination or key.script_pubkey
    inputs = [TxIn(first, issuance=Issuance(amount, token_amount, bytes(contract_hash)))] + [TxIn(u) for u in utxos[1:]]
    outputs = ([TxOut(dest, issued.asset_id, amount)] if amount else []) + (
        [TxOut(dest, issued.token_id, token_amount)] if token_amount else []
    )
    new = {issued.asset_id: amount, issued.token_id: token_amount}
    change = {a: key.script_pubkey for a in {u.explicit_asset for u in utxos} | {policy_asset}}
    outs, fee = balance_with_fee(
        inputs,
        outputs,
        policy_asset=policy_asset,
        fee_rate=fee_rate,
        change=change,
        placeholder=_wallet_placeholder(key, len(inputs)),
        issued={a: v for a, v in new.items() if v},
    )
    w = assemble(inputs, outs)
    set_witnesses(w, sign_wallet_inputs(w, key, inputs))
    return ElementsTx.from_wally(w), issued, fee


__all__ = [
    "SIGHASH_ALL",
    "ANYONE_CAN_SPEND",
    "ElementsTx",
    "InputView",
    "Issuance",
    "OutputView",
    "TxIn",
    "TxOut",
    "assemble",
    "balance_with_fee",
    "build_free_coins_spend",
    "build_issuance",
    "build_payment",
    "check_no_dust",
    "p2pkh_code",
    "select_utxos",
    "set_witnesses",
    "sighash",
    "sign_input",
    "sign_wallet_inputs",
    "verify_signature",
]
