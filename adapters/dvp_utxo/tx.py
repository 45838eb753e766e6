"""Build and sign transactions locally: wallet spends, HTLC funding, claim, refund.

Only two output types exist here: P2WPKH (a party's wallet) and P2WSH (an HTLC).
The pieces both codecs share (:class:`Utxo`, :class:`TxBuildError`, :func:`fee_for`,
the dust and sequence constants, coin selection) live here once; the Elements
codec (:mod:`.elements.tx`) imports them.
Fees are explicit: ``fee_rate`` in satoshis per virtual byte times the virtual
size measured on the transaction with placeholder witnesses of the largest
size a signature can take, so the real transaction never pays less than asked.
No output is ever below :data:`DUST_LIMIT`: change below it goes to the fee,
and an HTLC whose claim or refund could not pay its fee above dust is refused
before it is funded (docs/design.md, rule 9).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from bitcoin.core import (
    CMutableTransaction,
    CMutableTxIn,
    CMutableTxOut,
    COutPoint,
    CTransaction,
    CTxInWitness,
    CTxWitness,
    b2lx,
    lx,
)
from bitcoin.core.script import (
    OP_CHECKSIG,
    OP_DUP,
    OP_EQUALVERIFY,
    OP_HASH160,
    SIGHASH_ALL,
    SIGVERSION_WITNESS_V0,
    CScript,
    CScriptWitness,
    SignatureHash,
)

from .keys import Key, p2wpkh_script, pubkey_hash
from .script import HtlcScript, claim_witness, refund_witness

# 546 sat: the classic P2PKH dust threshold, above every segwit output's.
DUST_LIMIT = 546
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_NONFINAL = 0xFFFFFFFE  # enables nLockTime (refunds), no RBF signalling
MAX_SIG = b"\x30" + b"\x00" * 71  # 72 bytes: the largest DER sig with its hashtype byte


# TxBuildError's code when the coins are there but the node would refuse every transaction
# spending them for now (its mempool chain limits): one block later it will take it.
CHAIN_LIMIT = "too-long-mempool-chain"


class TxBuildError(ValueError):
    """The transaction cannot be built as asked; ``code`` says why: ``insufficient-funds``,
    ``dust``, :data:`CHAIN_LIMIT` or ``build`` (anything else)."""

    def __init__(
        self,
        message: str,
        code: str = "build",
        *,
        asset: str | None = None,
        need: int | None = None,
        have: int | None = None,
    ):
        super().__init__(message)
        self.code = code
        # insufficient-funds from coin selection: the asset short (None: the chain's coin),
        # what it needed (its fee included when it pays the fee) and had, in on-chain units
        self.asset, self.need, self.have = asset, need, have


@dataclass(frozen=True)
class Utxo:
    txid: str  # display hex (big-endian), as RPC shows it
    vout: int
    value: int  # base units of ``asset`` (satoshis on Bitcoin)
    script_pubkey: bytes
    height: int | None = None  # None while unconfirmed
    coinbase: bool = False
    asset: str | None = None  # Elements: the explicit asset id (display hex); None on Bitcoin
    confidential: bool = False  # Elements: blinded, so value and asset are unknown (value 0)

    @property
    def outpoint(self) -> tuple[str, int]:
        return (self.txid, self.vout)

    @property
    def explicit_asset(self) -> str:
        """The asset id of an explicit Elements output (TxBuildError on Bitcoin or blinded ones)."""
        if self.asset is None:
            raise TxBuildError(f"{self.txid}:{self.vout} carries no explicit asset")
        return self.asset

    @property
    def value_commitment(self) -> bytes:
        """What the Elements sighash commits to for this output: its 9-byte explicit value."""
        return b"\x01" + self.value.to_bytes(8, "big")


def txid_of(tx: CTransaction) -> str:
    txid: str = b2lx(tx.GetTxid())
    return txid


def vsize(tx: CTransaction) -> int:
    weight: int = tx.calc_weight()
    return (weight + 3) // 4


def _p2pkh_code(pubkey: bytes) -> CScript:
    return CScript([OP_DUP, OP_HASH160, pubkey_hash(pubkey), OP_EQUALVERIFY, OP_CHECKSIG])


def _sighash(tx: CMutableTransaction, index: int, script_code: bytes, amount: int) -> bytes:
    digest: bytes = SignatureHash(
        CScript(script_code), tx, index, SIGHASH_ALL, amount=amount, sigversion=SIGVERSION_WITNESS_V0
    )
    return digest


def _sign(key: Key, tx: CMutableTransaction, index: int, script_code: bytes, amount: int) -> bytes:
    return key.sign(_sighash(tx, index, script_code, amount)) + bytes([SIGHASH_ALL])


def _with_witness(tx: CMutableTransaction, stacks: list[list[bytes]]) -> CTransaction:
    tx.wit = CTxWitness([CTxInWitness(CScriptWitness(s)) for s in stacks])
    return CTransaction.from_tx(tx)


def _txin(u: Utxo, sequence: int) -> CMutableTxIn:
    return CMutableTxIn(COutPoint(lx(u.txid), u.vout), nSequence=sequence)


def fee_for(vbytes: int, fee_rate: float) -> int:
    return int(-(-vbytes * fee_rate // 1))  # ceil


def settle_fee(left: int, fee_of: Callable[[bool], int], *, change_allowed: bool = True) -> tuple[int | None, int]:
    """Split ``left`` (inputs minus outputs in the coin that pays fees) into change and fee:
    ``(change, fee)`` when the change after the fee measured with a change output is not
    dust, else ``(None, left)`` (dust change goes to the fee).  ``fee_of(with_change)`` is
    the fee of the transaction measured with or without the change output.  The one rule
    for Bitcoin payments and Elements' policy asset alike."""
    if change_allowed:
        fee = fee_of(True)
        if left - fee >= DUST_LIMIT:
            return left - fee, fee
    fee_alone = fee_of(False)
    if left < fee_alone:
        raise TxBuildError(
            f"insufficient funds for the fee: {left} left after the outputs, fee {fee_alone}", code="insufficient-funds"
        )
    return None, left


# --- wallet spends (P2WPKH inputs) ------------------------------------------------------


class Room(Protocol):
    """The node's mempool chain limits as coin selection sees them (:class:`~.chain.Room`)."""

    def depth(self, u: Utxo) -> int: ...

    def refusal(self, coins: Sequence[Utxo]) -> str | None: ...


def select_assets(
    utxos: list[Utxo],
    needs: Mapping[Any, int],
    fee_asset: str | None,
    fee: Callable[[int], int],
    room: Room | None = None,
) -> list[Utxo]:
    """Largest (confirmed) first, per asset, until each need is covered; the fee asset
    last, covering its need plus ``fee(n)`` for the ``n`` inputs chosen so far.

    With a ``room``, unconfirmed coins come after confirmed ones, the least chained first,
    and a coin whose spend the node would refuse beside those chosen (its mempool chain
    limits) is passed over; when only such coins would cover a need, TxBuildError with
    code :data:`CHAIN_LIMIT` (a block later they may do)."""
    chosen: list[Utxo] = []
    assets = sorted((a for a in needs if a != fee_asset), key=str) + [fee_asset]
    for asset in assets:
        pool = sorted(
            (u for u in utxos if u.asset == asset and not u.confidential),
            key=lambda u: (u.height is None, room.depth(u) if room else 0, -u.value, u.txid, u.vout),
        )
        have = 0
        passed: list[Utxo] = []

        def goal(extra: int = 0) -> int:  # called within this iteration only; ``extra`` inputs more
            return needs.get(asset, 0) + (fee(len(chosen) + extra) if asset == fee_asset else 0)  # noqa: B023

        for u in pool:
            if have >= goal():
                break
            if room is not None and u.height is None and room.refusal([*chosen, u]) is not None:
                passed.append(u)
                continue
            chosen.append(u)
            have += u.value
        if have >= goal():
            continue
        # Would the coins passed over cover the rest, each one's input fee counted too? Then a
        # block later they may do; if not, the funds are short whatever the mempool does.
        more = have
        for k, u in enumerate(passed, 1):
            more += u.value
            if more >= goal(k):
                assert room is not None  # only a room passes coins over
                raise TxBuildError(
                    f"every coin that would cover the rest is chained too deep in the mempool for now: "
                    f"{room.refusal([*chosen, passed[0]])}",
                    code=CHAIN_LIMIT,
                )
        what = "sat" if asset is None else f"of {asset[:8]}.."
        fee_note = " (fee included)" if asset == fee_asset else ""
        need = goal(len(passed))
        raise TxBuildError(
            f"insufficient funds: need {need} {what}{fee_note}, have {more} in {len(pool)} outputs",
            code="insufficient-funds",
            asset=asset,
            need=need,
            have=more,
        )
    return chosen


def select_coins(
    utxos: list[Utxo], target: int, fee_rate: float, n_outputs_vbytes: int, room: Room | None = None
) -> list[Utxo]:
    """Bitcoin: enough of the coin for ``target`` plus the fee of P2WPKH inputs so far."""

    def fee(n: int) -> int:
        return fee_for(11 + n_outputs_vbytes + 68 * n + 31, fee_rate)  # with a change output

    return select_assets(utxos, {None: target}, None, fee, room)


def build_payment(
    key: Key,
    utxos: list[Utxo],
    outputs: list[tuple[bytes, int]],
    fee_rate: float,
    *,
    change_script: bytes | None = None,
) -> tuple[CTransaction, int]:
    """Spend ``key``'s P2WPKH ``utxos`` to ``outputs`` [(script_pubkey, sat)], change back.

    Returns the signed transaction and its fee.  ``utxos`` are all spent: select
    them first with :func:`select_coins`.
    """
    if not utxos:
        raise TxBuildError("no inputs")
    for _spk, value in outputs:
        if value < DUST_LIMIT:
            raise TxBuildError(f"output of {value} sat is below the dust limit ({DUST_LIMIT})", code="dust")
    own = key.script_pubkey
    for u in utxos:
        if u.script_pubkey != own:
            raise TxBuildError(f"input {u.txid}:{u.vout} is not paid to this key")
    change_script = change_script or own
    total_in = sum(u.value for u in utxos)
    total_out = sum(v for _, v in outputs)

    def assemble(change: int | None, stacks: list[list[bytes]] | None) -> CTransaction:
        tx = CMutableTransaction(
            [_txin(u, SEQUENCE_FINAL) for u in utxos],
            [CMutableTxOut(v, CScript(s)) for s, v in outputs]
            + ([CMutableTxOut(change, CScript(change_script))] if change is not None else []),
            nLockTime=0,
            nVersion=2,
        )
        if stacks is None:  # sign
            code = _p2pkh_code(key.pubkey)
            stacks = [[_sign(key, tx, i, code, u.value), key.pubkey] for i, u in enumerate(utxos)]
        return _with_witness(tx, stacks)

    placeholder = [[MAX_SIG, key.pubkey] for _ in utxos]
    change, fee = settle_fee(
        total_in - total_out,
        lambda with_change: fee_for(vsize(assemble(DUST_LIMIT if with_change else None, placeholder)), fee_rate),
    )
    return assemble(change, None), fee


# --- HTLC spends ----------------------------------------------------------------------


def _htlc_spend_vsize(htlc: HtlcScript, n_inputs: int, claim: bool) -> int:
    script = htlc.script
    stack = claim_witness(MAX_SIG, b"\x00" * 32, script) if claim else refund_witness(MAX_SIG, script)
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(b"\x00" * 32, i)) for i in range(n_inputs)],
        [CMutableTxOut(DUST_LIMIT, CScript(p2wpkh_script(htlc.recipient_pubkey)))],
        nVersion=2,
    )
    return vsize(_with_witness(tx, [stack] * n_inputs))


def htlc_spend_fee(htlc: HtlcScript, fee_rate: float, n_inputs: int = 1, claim: bool = True) -> int:
    return fee_for(_htlc_spend_vsize(htlc, n_inputs, claim), fee_rate)


def min_htlc_amount(htlc: HtlcScript, fee_rate: float) -> int:
    """The smallest lock whose claim and refund both leave an output above dust."""
    return DUST_LIMIT + max(htlc_spend_fee(htlc, fee_rate, 1, True), htlc_spend_fee(htlc, fee_rate, 1, False))


def check_htlc_spend(
    htlc: HtlcScript,
    utxos: list[Utxo],
    key: Key,
    preimage: bytes | None,
    refund: bool,
    check: bool,
    error: type[ValueError] = TxBuildError,
) -> None:
    """What a claim or refund of ``htlc`` needs before it is built, on Bitcoin and Elements
    alike: one of preimage or refund, outputs of this very script and, unless ``check`` is
    off (tests building what the node must reject), the key the script names."""
    if (preimage is None) == (not refund):
        raise error("give a preimage to claim, or refund=True, not both")
    if not utxos:
        raise error("no HTLC outputs to spend")
    spk = htlc.script_pubkey
    for u in utxos:
        if u.script_pubkey != spk:
            raise error(f"{u.txid}:{u.vout} is not an output of this HTLC")
    if check:
        expected = htlc.sender_pubkey if refund else htlc.recipient_pubkey
        if key.pubkey != expected:
            raise error(
                f"the {'sender' if refund else 'recipient'}'s key must sign this {'refund' if refund else 'claim'}"
            )


class SpendOptions(TypedDict, total=False):
    """What a ledger's ``claim_tx``/``refund_tx`` pass on to :func:`build_htlc_spend` as given."""

    destination: bytes | None
    check: bool


def build_htlc_spend(
    htlc: HtlcScript,
    utxos: list[Utxo],
    key: Key,
    fee_rate: float,
    *,
    preimage: bytes | None = None,
    refund: bool = False,
    destination: bytes | None = None,
    check: bool = True,
) -> tuple[CTransaction, int]:
    """Claim (with ``preimage``) or refund every given HTLC output in one transaction.

    The claim pays the recipient's P2WPKH and the refund the sender's, unless
    ``destination`` says otherwise.  ``check=False`` lets tests build the
    transactions the ledger must reject (wrong key, wrong preimage, early refund).
    """
    check_htlc_spend(htlc, utxos, key, preimage, refund, check)
    if destination is None:
        destination = p2wpkh_script(htlc.sender_pubkey if refund else htlc.recipient_pubkey)
    total = sum(u.value for u in utxos)
    fee = htlc_spend_fee(htlc, fee_rate, len(utxos), claim=not refund)
    value = total - fee
    if value < DUST_LIMIT:
        raise TxBuildError(f"HTLC holds {total} sat: after a {fee} sat fee the output would be dust", code="dust")
    seq = SEQUENCE_NONFINAL if refund else SEQUENCE_FINAL
    tx = CMutableTransaction(
        [_txin(u, seq) for u in utxos],
        [CMutableTxOut(value, CScript(destination))],
        nLockTime=htlc.lock_height if refund else 0,
        nVersion=2,
    )
    script = htlc.script
    stacks = []
    for i, u in enumerate(utxos):
        sig = _sign(key, tx, i, script, u.value)
        stacks.append(refund_witness(sig, script) if preimage is None else claim_witness(sig, preimage, script))
    return _with_witness(tx, stacks), fee


def tx_hex(tx: CTransaction) -> str:
    raw: bytes = tx.serialize()
    return raw.hex()


def tx_from_hex(text: str) -> CTransaction:
    return CTransaction.deserialize(bytes.fromhex(text))
