"""The P2WSH HTLC on Elements, funded with any asset: fund, claim, refund, reveal, audit.

The witness script is :class:`dvp_utxo.script.HtlcScript`, byte for byte the
one used on Bitcoin (``contracts/utxo/htlc.asm``); so are the claim and refund
witnesses.  What Elements changes:

* **The asset.**  The locked output carries an explicit asset tag.  Fees are paid
  only in the chain's policy asset, so an HTLC of an *issued* asset is funded
  with two outputs to the same script: the asset itself and a small
  *fee reserve* in the policy asset.  Its claim and refund spend both and pay
  the whole reserve as the explicit fee output, so they need no input from
  anyone's wallet: the refund is spendable after expiry by the sender's key
  alone (docs/design.md, rule 9).  An HTLC of the policy asset is one output whose
  spend pays its fee out of the locked amount, as on Bitcoin.
* **The signature hash** commits to the spent output's *value commitment*
  (9 bytes, explicit) rather than an 8-byte amount; it does not commit to the
  spent asset, which the outpoint fixes.  The audit checks the asset.
* **Outputs** are ``asset tag || value || nonce || script``; anything blinded is
  refused by the audit, since an unblinded lock is the only kind we can check.

Refunds have ``nLockTime = lock_height`` and sequence ``0xfffffffe``; no output
of a claim or refund is dust; the fee output is explicit.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import wallycore as wally

from ..htlc import AuditError, NoFunding
from ..keys import Key, p2wpkh_script
from ..script import HtlcScript, ScriptError, claim_witness, parse_htlc_witness, refund_witness
from ..tx import (
    DUST_LIMIT,
    MAX_SIG,
    SEQUENCE_FINAL,
    SEQUENCE_NONFINAL,
    Room,
    TxBuildError,
    Utxo,
    check_htlc_spend,
    fee_for,
)
from .assets import AssetError, check_asset_id
from .tx import ElementsTx, TxIn, TxOut, assemble, build_payment, select_utxos, set_witnesses, sign_input


def _spend_vsize(htlc: HtlcScript, assets: list[str], policy_asset: str, claim: bool) -> int:
    """Virtual size of a claim or refund spending one HTLC output per entry of ``assets``."""
    script = htlc.script
    stack = claim_witness(MAX_SIG, b"\x00" * 32, script) if claim else refund_witness(MAX_SIG, script)
    dest = p2wpkh_script(htlc.recipient_pubkey)
    inputs = [TxIn(Utxo("00" * 32, i, DUST_LIMIT, htlc.script_pubkey, asset=a)) for i, a in enumerate(assets)]
    outs = [TxOut(dest, a, DUST_LIMIT) for a in dict.fromkeys(assets)] + [TxOut(b"", policy_asset, 1)]
    w = assemble(inputs, outs, locktime=0 if claim else htlc.lock_height, witnesses=[stack] * len(inputs))
    return int(wally.tx_get_vsize(w))


def htlc_spend_fee(htlc: HtlcScript, fee_rate: float, assets: list[str], policy_asset: str, claim: bool = True) -> int:
    return fee_for(_spend_vsize(htlc, assets, policy_asset, claim), fee_rate)


def fee_reserve(htlc: HtlcScript, fee_rate: float, asset: str, policy_asset: str) -> int:
    """Policy-asset units locked beside an issued asset to pay its claim or refund."""
    if asset == policy_asset:
        return 0
    shape = [asset, policy_asset]
    need = max(
        htlc_spend_fee(htlc, fee_rate, shape, policy_asset, True),
        htlc_spend_fee(htlc, fee_rate, shape, policy_asset, False),
    )
    return max(DUST_LIMIT, need)


def min_htlc_amount(htlc: HtlcScript, fee_rate: float, asset: str, policy_asset: str) -> int:
    """The smallest lock whose claim and refund leave no dust."""
    if asset != policy_asset:
        return DUST_LIMIT
    shape = [policy_asset]
    return DUST_LIMIT + max(
        htlc_spend_fee(htlc, fee_rate, shape, policy_asset, True),
        htlc_spend_fee(htlc, fee_rate, shape, policy_asset, False),
    )


def funding_outputs(htlc: HtlcScript, asset: str, amount: int, *, policy_asset: str, fee_rate: float) -> list[TxOut]:
    check_asset_id(asset)
    floor = min_htlc_amount(htlc, fee_rate, asset, policy_asset)
    if amount < floor:
        raise TxBuildError(f"amount {amount} is below {floor}: the claim or refund would leave dust", code="dust")
    outs = [TxOut(htlc.script_pubkey, asset, amount)]
    reserve = fee_reserve(htlc, fee_rate, asset, policy_asset)
    if reserve:
        outs.append(TxOut(htlc.script_pubkey, policy_asset, reserve))
    return outs


def build_funding(
    sender: Key,
    htlc: HtlcScript,
    asset: str,
    amount: int,
    wallet: list[Utxo],
    *,
    policy_asset: str,
    fee_rate: float,
    room: Room | None = None,
) -> tuple[ElementsTx, int]:
    """Lock ``amount`` of ``asset`` (plus its fee reserve) in ``htlc`` from the sender's wallet
    (coins chosen within ``room``: see :func:`~dvp_utxo.tx.select_assets`)."""
    if htlc.sender_pubkey != sender.pubkey:
        raise TxBuildError("the HTLC's sender key is not the funding key")
    outs = funding_outputs(htlc, asset, amount, policy_asset=policy_asset, fee_rate=fee_rate)
    needs: dict[str, int] = defaultdict(int)
    for o in outs:
        needs[o.asset] += o.value
    own = [u for u in wallet if u.script_pubkey == sender.script_pubkey]
    chosen = select_utxos(own, dict(needs), policy_asset, fee_rate, room)
    return build_payment(sender, chosen, outs, policy_asset=policy_asset, fee_rate=fee_rate)


def build_htlc_spend(
    htlc: HtlcScript,
    utxos: list[Utxo],
    key: Key,
    *,
    policy_asset: str,
    fee_rate: float,
    preimage: bytes | None = None,
    refund: bool = False,
    destination: bytes | None = None,
    check: bool = True,
) -> tuple[ElementsTx, int]:
    """Claim (with ``preimage``) or refund every given output of ``htlc`` in one transaction.

    Each asset goes whole to the destination (the recipient's P2WPKH for a
    claim, the sender's for a refund); the fee, in the policy asset, is the
    whole fee reserve when an issued asset is locked, else taken out of the
    locked policy-asset amount.  ``check=False`` builds what the node must
    reject (wrong key, wrong or over-long preimage).
    """
    check_htlc_spend(htlc, utxos, key, preimage, refund, check)
    if check:
        if preimage is not None and (len(preimage) != 32 or hashlib.sha256(preimage).digest() != htlc.hashlock):
            raise TxBuildError("the preimage must be the 32 bytes whose sha256 is the hashlock")
    if destination is None:
        destination = p2wpkh_script(htlc.sender_pubkey if refund else htlc.recipient_pubkey)
    totals: dict[str, int] = defaultdict(int)
    for u in utxos:
        totals[u.explicit_asset] += u.value
    fee = htlc_spend_fee(htlc, fee_rate, [u.explicit_asset for u in utxos], policy_asset, claim=not refund)
    policy_total = totals.pop(policy_asset, 0)
    outs = [TxOut(destination, a, v) for a, v in sorted(totals.items())]
    if totals:  # an issued asset: the whole reserve is the fee
        if policy_total < fee:
            raise TxBuildError(f"fee reserve of {policy_total} cannot pay a {fee} fee")
        fee = policy_total
    else:
        value = policy_total - fee
        if value < DUST_LIMIT:
            raise TxBuildError(f"HTLC holds {policy_total}: after a {fee} fee the output would be dust", code="dust")
        outs.append(TxOut(destination, policy_asset, value))
    outs.append(TxOut(b"", policy_asset, fee))
    for o in outs[:-1]:
        if o.value < DUST_LIMIT:
            raise TxBuildError(f"output of {o.value} would be dust", code="dust")
    seq = SEQUENCE_NONFINAL if refund else SEQUENCE_FINAL
    inputs = [TxIn(u, seq) for u in utxos]
    w = assemble(inputs, outs, locktime=htlc.lock_height if refund else 0)
    script = htlc.script
    stacks = []
    for i, u in enumerate(utxos):
        sig = sign_input(key, w, i, script, u.value_commitment)
        stacks.append(refund_witness(sig, script) if preimage is None else claim_witness(sig, preimage, script))
    set_witnesses(w, stacks)
    return ElementsTx.from_wally(w), fee


# --- reading ------------------------------------------------------------------------------


def extract_preimage(tx: ElementsTx, htlc: HtlcScript | None = None) -> bytes | None:
    """The secret revealed by a claim of ``htlc`` (any of our HTLCs if None) in ``tx``.

    Only a 32-byte preimage hashing to the script's hashlock is returned, so a
    claim the node accepted always yields the real secret.
    """
    for txin in tx.inputs:
        seen = parse_htlc_witness(txin.witness)
        if seen is None or seen.path != "claim" or seen.preimage is None:
            continue
        if htlc is None or seen.htlc == htlc:
            return seen.preimage
    return None


def audit_script(script: bytes, expected: HtlcScript) -> HtlcScript:
    """A script shown by the counterparty (or revealed in a spend) must rebuild byte for byte."""
    try:
        parsed = HtlcScript.parse(script)
    except ScriptError as exc:
        raise AuditError("script", str(exc)) from None
    if parsed != expected or parsed.script != expected.script:
        raise AuditError("script", "does not match the script rebuilt from the agreed terms")
    return parsed


@dataclass(frozen=True)
class ElementsFunding:
    locked: Utxo  # the asset output
    reserve: Utxo | None  # the policy-asset fee reserve (issued assets only)

    @property
    def utxos(self) -> list[Utxo]:
        return [self.locked] + ([self.reserve] if self.reserve else [])


def audit_funding(
    tx: ElementsTx,
    htlc: HtlcScript,
    asset: str,
    amount: int,
    *,
    policy_asset: str,
    fee_rate: float,
    tip_height: int,
    min_blocks_left: int = 1,
    lock_id: str | None = None,
    confirmations: int | None = None,
    min_confirmations: int = 1,
) -> ElementsFunding:
    """Check the counterparty's funding transaction against the agreed terms.

    The P2WSH program must commit to the script rebuilt from the terms; the
    locked output must be explicit, of ``asset`` and exactly ``amount``; an
    issued-asset lock must carry a fee reserve large enough for its claim and
    refund at ``fee_rate``; the lock height must be at least ``min_blocks_left``
    above ``tip_height``.  Raises :class:`~dvp_utxo.htlc.AuditError` naming
    the first mismatching field.  Confirmations come from the node; pass them.
    """
    check_asset_id(asset)
    if lock_id is not None and lock_id != htlc.script_hash.hex():
        raise AuditError(
            "script", f"lock {lock_id} does not commit to the script rebuilt from the terms ({htlc.script_hash.hex()})"
        )
    spk = htlc.script_pubkey
    paying = [(i, o) for i, o in enumerate(tx.outputs) if o.script_pubkey == spk]
    if not paying:
        raise NoFunding("funding", f"no output of {tx.txid} pays the HTLC script {htlc.script_hash.hex()}")
    explicit = []
    for i, o in paying:
        try:
            explicit.append(Utxo(tx.txid, i, o.value, o.script_pubkey, asset=o.asset))
        except AssetError as exc:
            raise AuditError(
                "confidential", f"output {i} is blinded ({exc}); only explicit locks can be audited"
            ) from None
    of_asset = [u for u in explicit if u.asset == asset]
    if not of_asset:
        raise AuditError("asset", f"expected {asset}, the script holds {sorted({u.explicit_asset for u in explicit})}")
    locked = next((u for u in of_asset if u.value == amount), None)
    if locked is None:
        raise AuditError("amount", f"expected {amount} on-chain units, found {[u.value for u in of_asset]}")
    reserve = None
    if asset != policy_asset:
        need = fee_reserve(htlc, fee_rate, asset, policy_asset)
        reserves = [u for u in explicit if u.asset == policy_asset]
        reserve = max(reserves, key=lambda u: u.value, default=None)
        if reserve is None or reserve.value < need:
            have = reserve.value if reserve else 0
            raise AuditError(
                "fee_reserve", f"{have} of the policy asset locked beside the asset, {need} needed to claim or refund"
            )
    elif amount < min_htlc_amount(htlc, fee_rate, asset, policy_asset):
        raise AuditError("amount", f"{amount} cannot pay its own claim or refund fee without leaving dust")
    if confirmations is not None and confirmations < min_confirmations:
        raise AuditError("confirmations", f"{confirmations} < {min_confirmations} required")
    left = htlc.lock_height - tip_height
    if left < min_blocks_left:
        raise AuditError(
            "lock_height", f"{left} blocks left before lock height {htlc.lock_height} < {min_blocks_left} required"
        )
    return ElementsFunding(locked, reserve)


__all__ = [
    "ElementsFunding",
    "audit_funding",
    "audit_script",
    "build_funding",
    "build_htlc_spend",
    "extract_preimage",
    "fee_reserve",
    "funding_outputs",
    "htlc_spend_fee",
    "min_htlc_amount",
]
