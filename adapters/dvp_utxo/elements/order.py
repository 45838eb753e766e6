"""The seller's side of a single-ledger DvP order on Elements: one P2WSH output.

::

    <order_hash> OP_DROP <seller_pubkey> OP_CHECKSIG

``propose_dvp`` pays the security to this script (as an EVM seller approves its
tokens): only the seller's key can spend it, and ``order_hash`` (SHA-256 over every
term of the order, its nonce included) makes the output the order's own.  The
script is rebuilt from the order alone, so the order id (the script, hex) is known
before anything is sent and the order's state is read from the chain: no output
yet, an unspent one (open), or spent by the DvP transaction (settled) or by anything
else (cancelled).  The DvP transaction spends it beside the buyer's inputs; the
seller signs that input with SIGHASH_ALL like its other inputs.  The seller cancels by
spending it back to its own P2WPKH (:func:`build_cancel`): the script admits no other
key, and once spent the output is gone, so the node refuses any later DvP transaction
that spends it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bitcoin.core.script import OP_0, OP_CHECKSIG, OP_DROP, CScript

from ..keys import Key, check_pubkey
from ..script import ScriptError
from ..tx import MAX_SIG, TxBuildError, Utxo
from .tx import ElementsTx, TxIn, assemble, balance_with_fee, p2pkh_code, set_witnesses, sign_input


def order_hash(fields: dict[str, object]) -> bytes:
    """SHA-256 over the order's terms, serialised canonically (sorted JSON)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).digest()


@dataclass(frozen=True)
class OrderScript:
    order_hash: bytes
    seller_pubkey: bytes

    def __post_init__(self) -> None:
        if len(self.order_hash) != 32:
            raise ScriptError("order hash must be 32 bytes")
        try:
            check_pubkey(self.seller_pubkey)
        except ValueError as exc:
            raise ScriptError(str(exc)) from None

    @property
    def script(self) -> bytes:
        return bytes(CScript([self.order_hash, OP_DROP, self.seller_pubkey, OP_CHECKSIG]))

    @property
    def script_pubkey(self) -> bytes:
        return bytes(CScript([OP_0, hashlib.sha256(self.script).digest()]))

    @classmethod
    def parse(cls, script: bytes) -> "OrderScript":
        """The order script ``script`` is, rebuilt byte for byte; else ScriptError."""
        if len(script) != 1 + 32 + 1 + 1 + 33 + 1:
            raise ScriptError("not an order script")
        found = cls(bytes(script[1:33]), bytes(script[35:68]))
        if found.script != bytes(script):
            raise ScriptError("not an order script")
        return found


def build_cancel(order: OrderScript, offered: list[Utxo], key: Key, funds: list[Utxo], *, policy_asset: str,
                 fee_rate: float, check: bool = True) -> tuple[ElementsTx, int]:  # fmt: skip
    """Spend the order's outputs ``offered`` back to ``key``'s P2WPKH, the fee (policy asset)
    out of ``key``'s ``funds``; signed by ``key`` (SIGHASH_ALL).  ``check=False`` builds it
    with a key that is not the seller's, for tests that the script refuses it."""
    if not offered:
        raise TxBuildError("no order output to spend")
    if check and key.pubkey != order.seller_pubkey:
        raise TxBuildError("only the seller's key spends its order output")
    return spend_back(key, funds, order, offered, policy_asset=policy_asset, fee_rate=fee_rate)


def spend_back(key: Key, funds: list[Utxo], order: OrderScript | None = None, offered: list[Utxo] | None = None, *,
               policy_asset: str, fee_rate: float) -> tuple[ElementsTx, int]:  # fmt: skip
    """Spend ``order``'s outputs ``offered`` and ``key``'s own ``funds`` back to ``key``'s
    P2WPKH, each asset whole, the fee (policy asset) out of them; signed by ``key``
    (SIGHASH_ALL).  A seller's cancellation, or a buyer voiding the half it signed."""
    offered = offered or []
    if offered and order is None:
        raise TxBuildError("the order's outputs need the order's script")
    own = key.script_pubkey
    inputs = [TxIn(u) for u in offered] + [TxIn(u) for u in funds]
    if not inputs:
        raise TxBuildError("nothing to spend back")
    scripts = [order.script if order else b"" for _ in offered]
    placeholder = [[MAX_SIG, s] for s in scripts] + [[MAX_SIG, key.pubkey] for _ in funds]
    change = {a: own for a in {u.explicit_asset for u in offered + funds} | {policy_asset}}
    outs, fee = balance_with_fee(
        inputs, [], policy_asset=policy_asset, fee_rate=fee_rate, change=change, placeholder=placeholder
    )
    w = assemble(inputs, outs)
    stacks: list[list[bytes] | None] = []
    for i, t in enumerate(inputs):
        if i < len(offered):
            stacks.append([sign_input(key, w, i, scripts[i], t.utxo.value_commitment), scripts[i]])
        else:
            stacks.append([sign_input(key, w, i, p2pkh_code(key.pubkey), t.utxo.value_commitment), key.pubkey])
    set_witnesses(w, stacks)
    return ElementsTx.from_wally(w), fee
