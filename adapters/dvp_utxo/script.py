"""The UTXO hashed time-lock contract: one P2WSH witness script.

::

    OP_IF
        OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <hash32> OP_EQUALVERIFY <recipient_pubkey>
    OP_ELSE
        <lock_height> OP_CHECKLOCKTIMEVERIFY OP_DROP <sender_pubkey>
    OP_ENDIF
    OP_CHECKSIG

Claim witness: ``<sig> <preimage> 1 <script>``; refund witness: ``<sig> <> <script>``
in a transaction whose nLockTime is ``lock_height`` and whose input sequence is
non-final (``0xfffffffe``).  ``OP_SIZE 32 OP_EQUALVERIFY`` fixes the preimage at
32 bytes (docs/design.md, rule 1); the hash is SHA-256 over those raw bytes (rule 2).

The script is the whole contract: it is rebuilt byte for byte from the agreed
terms to audit a counterparty's lock (rule 5), and the P2WSH program commits to
it, so the lock id derived from the script is known before broadcast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bitcoin.core.script import (
    OP_0,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKSIG,
    OP_DROP,
    OP_ELSE,
    OP_ENDIF,
    OP_EQUALVERIFY,
    OP_IF,
    OP_SHA256,
    OP_SIZE,
    CScript,
    CScriptInvalidError,
)

from .keys import check_pubkey

PREIMAGE_SIZE = 32
# Heights only: a lock time below 500,000,000 is a block height (BIP65).
MAX_LOCK_HEIGHT = 500_000_000 - 1


class ScriptError(ValueError):
    """A script or witness is not the HTLC this package builds."""


@dataclass(frozen=True)
class HtlcScript:
    hashlock: bytes  # sha256(preimage), 32 bytes
    recipient_pubkey: bytes  # 33-byte compressed key that may claim with the preimage
    sender_pubkey: bytes  # 33-byte compressed key that may refund after lock_height
    lock_height: int  # absolute block height (CLTV)

    def __post_init__(self) -> None:
        if len(self.hashlock) != 32:
            raise ScriptError("hashlock must be 32 bytes")
        if not 0 < self.lock_height <= MAX_LOCK_HEIGHT:
            raise ScriptError(f"lock_height must be a block height in 1..{MAX_LOCK_HEIGHT}")
        try:
            check_pubkey(self.recipient_pubkey)
            check_pubkey(self.sender_pubkey)
        except ValueError as exc:
            raise ScriptError(str(exc)) from None
        if self.recipient_pubkey == self.sender_pubkey:
            raise ScriptError("recipient and sender keys must differ")

    @property
    def script(self) -> bytes:
        return bytes(
            CScript(
                [
                    OP_IF,
                    OP_SIZE, PREIMAGE_SIZE, OP_EQUALVERIFY,
                    OP_SHA256, self.hashlock, OP_EQUALVERIFY,
                    self.recipient_pubkey,
                    OP_ELSE,
                    self.lock_height, OP_CHECKLOCKTIMEVERIFY, OP_DROP,
                    self.sender_pubkey,
                    OP_ENDIF,
                    OP_CHECKSIG,
                ]
            )
        )  # fmt: skip

    @property
    def script_hash(self) -> bytes:
        """The P2WSH witness program: sha256 of the script."""
        return hashlib.sha256(self.script).digest()

    @property
    def script_pubkey(self) -> bytes:
        return p2wsh_script(self.script)

    @classmethod
    def parse(cls, script: bytes) -> "HtlcScript":
        """Parse a script and accept it only if it rebuilds to the same bytes."""
        try:
            ops = list(CScript(script))
        except CScriptInvalidError as exc:
            raise ScriptError(f"unparseable script: {exc}") from None
        if len(ops) != 15:
            raise ScriptError("not an HTLC script (wrong length)")
        hashlock, recipient, lock_op, sender = ops[5], ops[7], ops[9], ops[12]
        if not (isinstance(hashlock, bytes) and isinstance(recipient, bytes) and isinstance(sender, bytes)):
            raise ScriptError("not an HTLC script (pushes)")
        if isinstance(lock_op, bytes):
            lock_height = int.from_bytes(lock_op, "little", signed=False) if lock_op else 0
            if lock_op and lock_op[-1] & 0x80:
                raise ScriptError("negative lock height")
        elif isinstance(lock_op, int) and 0 <= lock_op <= 16:
            lock_height = lock_op
        else:
            lock_height = int(lock_op.decode_op_n()) if hasattr(lock_op, "decode_op_n") else -1
        try:
            parsed = cls(bytes(hashlock), bytes(recipient), bytes(sender), lock_height)
        except (ScriptError, ValueError) as exc:
            raise ScriptError(f"not an HTLC script: {exc}") from None
        if parsed.script != bytes(script):
            raise ScriptError("not an HTLC script (does not rebuild byte for byte)")
        return parsed


def p2wsh_script(witness_script: bytes) -> bytes:
    return bytes(CScript([OP_0, hashlib.sha256(witness_script).digest()]))


# --- witnesses ------------------------------------------------------------------------


def claim_witness(sig_with_hashtype: bytes, preimage: bytes, script: bytes) -> list[bytes]:
    return [sig_with_hashtype, preimage, b"\x01", script]


def refund_witness(sig_with_hashtype: bytes, script: bytes) -> list[bytes]:
    return [sig_with_hashtype, b"", script]


@dataclass(frozen=True)
class HtlcSpend:
    """What a spend of an HTLC output reveals."""

    htlc: HtlcScript
    path: str  # "claim" or "refund"
    preimage: bytes | None


def parse_htlc_witness(stack: list[bytes] | tuple[bytes, ...]) -> HtlcSpend | None:
    """Recognise a claim or refund witness of our HTLC; None for anything else.

    A claim's preimage is taken only when it hashes to the script's hashlock,
    so a spend that a node accepted always yields the real secret.
    """
    stack = [bytes(x) for x in stack]
    if len(stack) not in (3, 4):
        return None
    try:
        htlc = HtlcScript.parse(stack[-1])
    except ScriptError:
        return None
    if len(stack) == 4 and stack[2] == b"\x01":
        pre = stack[1]
        if len(pre) == PREIMAGE_SIZE and hashlib.sha256(pre).digest() == htlc.hashlock:
            return HtlcSpend(htlc, "claim", pre)
        return HtlcSpend(htlc, "claim", None)
    if len(stack) == 3 and stack[1] == b"":
        return HtlcSpend(htlc, "refund", None)
    return None


__all__ = [
    "HtlcScript",
    "HtlcSpend",
    "OP_0",
    "PREIMAGE_SIZE",
    "ScriptError",
    "claim_witness",
    "p2wsh_script",
    "parse_htlc_witness",
    "refund_witness",
]
