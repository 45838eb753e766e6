"""Single-ledger DvP on Elements: one multi-asset transaction signed by both parties.

Both legs sit on one ledger, so no hash lock is needed: the seller's security
input and the buyer's cash input are spent by the *same* transaction, whose
outputs pay the security to the buyer, the cash to the seller, each party's
change back to it, and the fee.  Either the whole transaction confirms or
nothing moves (atomic settlement).

Each party signs only its own inputs, with SIGHASH_ALL, so its signature
commits to every input's outpoint and every output: once a party has signed,
changing any output (amount, asset, recipient, even the fee) invalidates that
signature.  Before signing, a party checks the transaction from its own side
(:func:`check_dvp`): what it receives, and that it gives away no more than the
terms (and, for the fee payer, ``max_fee``).

The partly signed transaction travels as a PSET (Elements' PSBT version 2,
base64: :meth:`DvpTx.to_pset`, :meth:`DvpTx.from_pset`): the unsigned
transaction's inputs and outputs, each input's spent output (``witness_utxo``: a
signer must know each input's value commitment; the Elements sighash commits only
to its own), and the final witness of each input already signed.
"""

from __future__ import annotations

import binascii
from collections import defaultdict
from dataclasses import dataclass, replace

import wallycore as wally

from ..keys import Key, check_pubkey, p2wpkh_script
from ..script import ScriptError, parse_htlc_witness
from ..tx import MAX_SIG, TxBuildError, Utxo
from .assets import (
    AssetError,
    check_asset_id,
    explicit_asset,
    explicit_value,
    parse_explicit_asset,
    parse_explicit_value,
)
from .order import OrderScript
from .tx import (
    ElementsTx,
    TxIn,
    TxOut,
    assemble,
    balance_with_fee,
    check_no_dust,
    p2pkh_code,
    set_witnesses,
    sign_input,
    verify_signature,
    witness_stack,
)


def verify_input(tx: ElementsTx, index: int, spent: Utxo) -> bool:
    """Verify input ``index``'s signature for what it spends: P2WPKH, a DvP order output
    (:mod:`.order`; here, beside its one user, since the order module builds on tx) or our HTLC.

    Checks that the witness matches the spent script (P2WPKH key hash, or the
    P2WSH program's script) and that the signature is valid for the right key
    over the Elements sighash committing to ``spent``'s value commitment.
    Script *execution* (hash lock, OP_SIZE, CLTV) is not evaluated here.
    """
    wit = tx.inputs[index].witness
    spk = bytes(spent.script_pubkey)
    if len(wit) == 2 and len(wit[1]) == 33 and spk == p2wpkh_script(wit[1]):
        return verify_signature(tx, index, p2pkh_code(wit[1]), spent.value_commitment, wit[1], wit[0])
    if len(wit) == 2:
        try:
            order = OrderScript.parse(wit[1])
        except ScriptError:
            return False
        return spk == order.script_pubkey and verify_signature(
            tx, index, order.script, spent.value_commitment, order.seller_pubkey, wit[0]
        )
    seen = parse_htlc_witness(wit)
    if seen is None or spk != seen.htlc.script_pubkey:
        return False
    pub = seen.htlc.recipient_pubkey if seen.path == "claim" else seen.htlc.sender_pubkey
    return verify_signature(tx, index, seen.htlc.script, spent.value_commitment, pub, wit[0])


ROLES = ("seller", "buyer")


class DvpError(TxBuildError):
    """A DvP transaction does not match the terms, or cannot be built or signed."""


@dataclass(frozen=True)
class DvpTerms:
    seller_pubkey: bytes
    buyer_pubkey: bytes
    security_asset: str
    security_amount: int
    cash_asset: str
    cash_amount: int
    # The witness script of the seller's order output (:mod:`.order`), if the seller brings one.
    seller_order: bytes = b""

    def __post_init__(self) -> None:
        check_pubkey(self.seller_pubkey)
        check_pubkey(self.buyer_pubkey)
        check_asset_id(self.security_asset)
        check_asset_id(self.cash_asset)
        if self.seller_pubkey == self.buyer_pubkey:
            raise DvpError("seller and buyer must differ")
        if self.security_asset == self.cash_asset:
            raise DvpError("security and cash must be different assets")
        if self.security_amount <= 0 or self.cash_amount <= 0:
            raise DvpError("amounts must be above zero")

    def script(self, role: str) -> bytes:
        return p2wpkh_script(self.seller_pubkey if role == "seller" else self.buyer_pubkey)

    def inputs_of(self, role: str) -> set[bytes]:
        """The scripts whose outputs ``role`` brings and signs for: its P2WPKH, and for the
        seller its order output."""
        own = {self.script(role)}
        if role == "seller" and self.seller_order:
            own.add(OrderScript.parse(self.seller_order).script_pubkey)
        return own

    def gives(self, role: str) -> dict[str, int]:
        """Net amounts ``role`` hands over per asset (negative: receives)."""
        s, c = self.security_asset, self.cash_asset
        if role == "seller":
            return {s: self.security_amount, c: -self.cash_amount}
        return {s: -self.security_amount, c: self.cash_amount}


@dataclass(frozen=True)
class DvpTx:
    tx: ElementsTx
    spent: tuple[Utxo, ...]  # per input, in input order
    fee_payer: str
    fee: int

    def owner(self, index: int, terms: DvpTerms) -> str | None:
        spk = self.spent[index].script_pubkey
        return next((r for r in ROLES if spk in terms.inputs_of(r)), None)

    @property
    def signed(self) -> list[bool]:
        return [bool(i.witness) for i in self.tx.inputs]

    @property
    def complete(self) -> bool:
        return all(self.signed)

    def to_pset(self) -> str:
        """This transaction as a PSET (base64): version 2, every input's spent output as its
        ``witness_utxo``, the witness of each input signed so far as its final witness."""
        unsigned = self.tx.wally()
        set_witnesses(unsigned, [[] for _ in self.spent])
        pset = wally.psbt_from_tx(unsigned, 2, wally.WALLY_PSBT_INIT_PSET)
        for i, (u, txin) in enumerate(zip(self.spent, self.tx.inputs)):
            spent = wally.tx_elements_output_init_alloc(
                bytes(u.script_pubkey), explicit_asset(u.explicit_asset), explicit_value(u.value), None, None, None
            )
            wally.psbt_set_input_witness_utxo(pset, i, spent)
            if txin.witness:
                wally.psbt_set_input_final_witness(pset, i, witness_stack(txin.witness))
        return str(wally.psbt_to_base64(pset, 0))

    @classmethod
    def from_pset(cls, text: str, fee_payer: str) -> "DvpTx":
        """The transaction a PSET (base64) carries, with the finalized inputs' witnesses and
        every input's ``witness_utxo``; DvpError naming what is wrong.  ``fee_payer`` is what
        the reader's agreement says, not anything the PSET claims."""
        try:
            pset = wally.psbt_from_base64(text, 0)
        except (ValueError, TypeError, binascii.Error):
            raise DvpError("not a PSET: it does not parse as base64 PSBT") from None
        if not wally.psbt_is_elements(pset) or wally.psbt_get_version(pset) != 2:
            raise DvpError("not a PSET: a PSBT, but not Elements' version 2")
        try:
            tx = ElementsTx.from_wally(wally.psbt_extract(pset, wally.WALLY_PSBT_EXTRACT_OPT_FINAL))
        except ValueError:
            raise DvpError("PSET: no transaction can be extracted from it") from None
        spent = []
        for i, txin in enumerate(tx.inputs):
            try:
                out = wally.psbt_get_input_witness_utxo_alloc(pset, i)
            except ValueError:
                out = None
            if out is None:
                raise DvpError(f"PSET input {i}: no witness_utxo (the output it spends)")
            try:
                asset = parse_explicit_asset(bytes(wally.tx_output_get_asset(out)))
                value = parse_explicit_value(
                    bytes(wally.tx_output_get_value(out))[: wally.tx_output_get_value_len(out)]
                )
            except AssetError as exc:
                raise DvpError(f"PSET input {i}: its witness_utxo is not explicit: {exc}") from None
            script = bytes(wally.tx_output_get_script(out))[: wally.tx_output_get_script_len(out)]
            spent.append(Utxo(txin.txid, txin.vout, value, script, asset=asset))
        fee = sum(o.value for o in tx.outputs if o.is_fee and o.is_explicit)
        return cls(tx, tuple(spent), fee_payer, fee)


def build_dvp(
    terms: DvpTerms,
    seller_utxos: list[Utxo],
    buyer_utxos: list[Utxo],
    *,
    policy_asset: str,
    fee_rate: float,
    fee_payer: str = "buyer",
) -> DvpTx:
    """The unsigned DvP transaction: seller's inputs first, then the buyer's.

    Outputs: security -> buyer, cash -> seller, each party's change per asset,
    then the fee (policy asset, paid out of ``fee_payer``'s policy-asset inputs).
    """
    if fee_payer not in ROLES:
        raise DvpError(f"fee_payer must be one of {ROLES}")
    by_role = {"seller": list(seller_utxos), "buyer": list(buyer_utxos)}
    for role, utxos in by_role.items():
        if not utxos:
            raise DvpError(f"the {role} brings no inputs")
        for u in utxos:
            if u.script_pubkey not in terms.inputs_of(role):
                raise DvpError(f"{u.txid}:{u.vout} is not the {role}'s output")
    inputs = [TxIn(u) for u in by_role["seller"] + by_role["buyer"]]
    core = [
        TxOut(terms.script("buyer"), terms.security_asset, terms.security_amount),
        TxOut(terms.script("seller"), terms.cash_asset, terms.cash_amount),
    ]
    check_no_dust(core)
    outs = list(core)
    # Change of everything the non-paying party brought (it pays no fee) ...
    other = "seller" if fee_payer == "buyer" else "buyer"
    for role in (other, fee_payer):
        bal: dict[str, int] = defaultdict(int)
        for u in by_role[role]:
            bal[u.explicit_asset] += u.value
        for asset, amount in terms.gives(role).items():
            if amount > 0:
                bal[asset] -= amount
        for asset, left in sorted(bal.items()):
            if left < 0:
                raise DvpError(f"the {role} is short of {asset[:8]}.. by {-left}")
            if role == fee_payer and asset == policy_asset:
                continue  # settled with the fee below
            if left:
                outs.append(TxOut(terms.script(role), asset, left))
    check_no_dust(outs)
    # ... then the fee payer's policy-asset change and the fee, balancing the whole tx.
    placeholder = [_largest_witness(u, terms) for u in by_role["seller"] + by_role["buyer"]]
    try:
        full, fee = balance_with_fee(
            inputs,
            outs,
            policy_asset=policy_asset,
            fee_rate=fee_rate,
            change={policy_asset: terms.script(fee_payer)},
            placeholder=placeholder,
        )
    except TxBuildError as exc:
        raise DvpError(f"the {fee_payer} cannot pay the fee: {exc}") from None
    w = assemble(inputs, full)
    return DvpTx(ElementsTx.from_wally(w), tuple(u for u in by_role["seller"] + by_role["buyer"]), fee_payer, fee)


def _largest_witness(spent: Utxo, terms: DvpTerms) -> list[bytes]:
    """The largest witness an input spending ``spent`` carries once signed: the largest
    signature, then the seller's order script (its order output) or a public key (P2WPKH)."""
    if terms.seller_order and spent.script_pubkey == OrderScript.parse(terms.seller_order).script_pubkey:
        return [MAX_SIG, terms.seller_order]
    return [MAX_SIG, b"\x02" + b"\x00" * 32]


def signed_vsize(dvp: DvpTx, terms: DvpTerms) -> int:
    """The virtual size ``dvp`` has once every input is signed (what its fee must pay for):
    the witnesses it carries, and the largest one for each input not signed yet."""
    w = dvp.tx.wally()
    set_witnesses(w, [None if i.witness else _largest_witness(u, terms) for i, u in zip(dvp.tx.inputs, dvp.spent)])
    return int(wally.tx_get_vsize(w))


def check_dvp(dvp: DvpTx, terms: DvpTerms, role: str, *, policy_asset: str, max_fee: int) -> None:
    """Check ``dvp`` from ``role``'s side before it signs; raise :class:`DvpError` if unsafe.

    The inputs must be the listed ones, everything explicit, no issuance, no
    lock time; ``role`` must receive its leg in full, and its net outflow per
    asset must not exceed the terms (plus at most ``max_fee`` of the policy
    asset if it pays the fee).
    """
    if role not in ROLES:
        raise DvpError(f"role must be one of {ROLES}")
    tx = dvp.tx
    ins = tx.inputs
    if len(ins) != len(dvp.spent):
        raise DvpError("the spent outputs do not match the inputs")
    for i, (txin, u) in enumerate(zip(ins, dvp.spent)):
        if (txin.txid, txin.vout) != u.outpoint:
            raise DvpError(f"input {i} spends {txin.txid}:{txin.vout}, not the listed {u.txid}:{u.vout}")
        if txin.has_issuance:
            raise DvpError(f"input {i} carries an issuance")
    if tx.locktime != 0:
        raise DvpError("a DvP settles now: nLockTime must be 0")
    mine = terms.script(role)
    out_to_me: dict[str, int] = defaultdict(int)
    fee = 0
    for i, o in enumerate(tx.outputs):
        try:
            asset, value = o.asset, o.value
        except AssetError as exc:
            raise DvpError(f"output {i} is not explicit: {exc}") from None
        if o.is_fee:
            if asset != policy_asset:
                raise DvpError(f"the fee output {i} is not in the policy asset")
            fee += value
        elif o.script_pubkey == mine:
            out_to_me[asset] += value
    in_from_me: dict[str, int] = defaultdict(int)
    for u in dvp.spent:
        if u.script_pubkey in terms.inputs_of(role):
            in_from_me[u.explicit_asset] += u.value
    # gives() is negative for the leg ``role`` receives, so the bound below also
    # proves it receives that leg in full (less the fee, if it pays it in that asset).
    allowed = dict(terms.gives(role))
    if dvp.fee_payer == role:
        if fee > max_fee:
            raise DvpError(f"fee {fee} exceeds the agreed maximum {max_fee}")
        allowed[policy_asset] = allowed.get(policy_asset, 0) + fee
    for asset in set(in_from_me) | set(out_to_me) | set(allowed):
        net_out = in_from_me.get(asset, 0) - out_to_me.get(asset, 0)
        if net_out > allowed.get(asset, 0):
            raise DvpError(f"the {role} would give {net_out} of {asset[:8]}.., the terms allow {allowed.get(asset, 0)}")


def sign_dvp(dvp: DvpTx, key: Key, terms: DvpTerms, role: str, *, policy_asset: str, max_fee: int) -> DvpTx:
    """Check the transaction from ``role``'s side, then sign only ``key``'s inputs (SIGHASH_ALL)."""
    if key.script_pubkey != terms.script(role):
        raise DvpError(f"this key is not the {role}'s")
    check_dvp(dvp, terms, role, policy_asset=policy_asset, max_fee=max_fee)
    w = dvp.tx.wally()  # keeps the other party's witnesses, if any
    order = OrderScript.parse(terms.seller_order) if role == "seller" and terms.seller_order else None
    stacks: list[list[bytes] | None] = []
    mine = 0
    for i, u in enumerate(dvp.spent):
        if u.script_pubkey == key.script_pubkey:
            stacks.append([sign_input(key, w, i, p2pkh_code(key.pubkey), u.value_commitment), key.pubkey])
            mine += 1
        elif order is not None and u.script_pubkey == order.script_pubkey:
            stacks.append([sign_input(key, w, i, order.script, u.value_commitment), order.script])
            mine += 1
        else:
            stacks.append(None)
    if not mine:
        raise DvpError(f"the {role} owns no input of this transaction")
    set_witnesses(w, stacks)
    return replace(dvp, tx=ElementsTx.from_wally(w))


def verify_dvp(dvp: DvpTx) -> list[bool]:
    """Each input's signature, checked against the output it spends."""
    return [bool(i.witness) and verify_input(dvp.tx, n, dvp.spent[n]) for n, i in enumerate(dvp.tx.inputs)]


def finalize_dvp(dvp: DvpTx) -> ElementsTx:
    """The broadcastable transaction, once every input carries a valid signature."""
    ok = verify_dvp(dvp)
    if not all(ok):
        raise DvpError(f"inputs not (validly) signed: {[i for i, good in enumerate(ok) if not good]}")
    return dvp.tx


__all__ = [
    "DvpError",
    "DvpTerms",
    "DvpTx",
    "build_dvp",
    "check_dvp",
    "finalize_dvp",
    "sign_dvp",
    "signed_vsize",
    "verify_dvp",
]
