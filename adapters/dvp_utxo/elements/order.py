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
seller signs that input with SIGHASH_ALL like its other inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bitcoin.core.script import OP_0, OP_CHECKSIG, OP_DROP, CScript

from ..keys import check_pubkey
from ..script import ScriptError


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
