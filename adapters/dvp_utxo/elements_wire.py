"""Read Elements blocks and transactions from their wire bytes, in pure Python.

The chain view only reads, so this needs no ``wallycore``: it walks the Elements
serialisation (``primitives/transaction.h`` and ``block.h`` of Elements Core) and
keeps what :mod:`dvp_utxo.wire` describes.  Layout of a transaction:

* ``version``, a ``flags`` byte (bit 0: witnesses follow), the inputs, the outputs,
  ``nLockTime``, then, when flagged, one witness per input (issuance range proofs,
  script witness, peg-in witness) and one per output (surjection and range proofs);
* an input whose prevout index has bit 31 set carries an issuance (blinding nonce,
  entropy, amount and inflation keys as value commitments); bit 30 marks a peg-in;
  the coinbase's index is ``0xffffffff`` and carries neither;
* an output is ``asset || value || nonce || script``, each commitment led by a
  prefix byte: 0 null (1 byte), 1 explicit (asset 33, value 9, nonce 33 bytes),
  else a 33-byte blinded commitment.

The txid is the double SHA-256 of the transaction without witnesses, i.e. with the
flags byte zeroed and everything after ``nLockTime`` cut off.  A block header is
dynamic-federation shaped when its version is negative (as on every
``elementsregtest`` block after genesis), else it carries a height and a signed-block
proof.  Blinded outputs are kept as ``confidential`` with no value or asset:
nothing in this package spends or audits them (see :mod:`.htlc`).
"""

from __future__ import annotations

import hashlib
import struct

from .wire import WireBlock, WireIn, WireOut, WireTx

ISSUANCE_FLAG = 1 << 31
PEGIN_FLAG = 1 << 30
INDEX_MASK = 0x3FFFFFFF
COINBASE_INDEX = 0xFFFFFFFF


class WireError(ValueError):
    """Bytes that are not an Elements transaction or block."""


class _Reader:
    def __init__(self, raw: bytes):
        self.raw = raw
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.raw):
            raise WireError(f"truncated at byte {self.pos} (wanted {n} more of {len(self.raw)})")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def i32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def varint(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        return int.from_bytes(self.take(size), "little")

    def varbytes(self) -> bytes:
        return self.take(self.varint())

    def stack(self) -> tuple[bytes, ...]:
        return tuple(self.varbytes() for _ in range(self.varint()))

    def commitment(self, explicit_size: int, prefixes: tuple[int, int]) -> bytes:
        """One confidential commitment: b"" when null, else the prefix and its body."""
        version = self.u8()
        if version == 0:
            return b""
        if version == 1:
            return bytes([version]) + self.take(explicit_size - 1)
        if version in prefixes:
            return bytes([version]) + self.take(32)
        raise WireError(f"unknown commitment prefix {version:#04x} at byte {self.pos - 1}")


def _asset(r: _Reader) -> bytes:
    return r.commitment(33, (0x0A, 0x0B))


def _value(r: _Reader) -> bytes:
    return r.commitment(9, (0x08, 0x09))


def _nonce(r: _Reader) -> bytes:
    return r.commitment(33, (0x02, 0x03))


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def read_tx(r: _Reader) -> WireTx:
    start = r.pos
    r.take(4)  # version
    flags_at = r.pos
    flags = r.u8()
    if flags not in (0, 1):
        raise WireError(f"unknown transaction flags {flags:#04x}")
    raw_inputs = []
    for _ in range(r.varint()):
        txid = r.take(32)[::-1].hex()
        index = r.u32()
        r.varbytes()  # scriptSig
        r.u32()  # nSequence
        if index != COINBASE_INDEX and index & ISSUANCE_FLAG:
            r.take(32)  # asset blinding nonce
            r.take(32)  # asset entropy
            _value(r)  # amount
            _value(r)  # inflation keys
        raw_inputs.append((txid, index))
    outs = []
    for _ in range(r.varint()):
        asset, value = _asset(r), _value(r)
        _nonce(r)
        outs.append((asset, value, r.varbytes()))
    r.take(4)  # nLockTime
    end_no_witness = r.pos
    witnesses: list[tuple[bytes, ...]] = [()] * len(raw_inputs)
    if flags & 1:
        for i in range(len(raw_inputs)):
            r.varbytes()  # issuance amount range proof
            r.varbytes()  # inflation keys range proof
            witnesses[i] = r.stack()
            r.stack()  # peg-in witness
        for _ in outs:
            r.varbytes()  # surjection proof
            r.varbytes()  # range proof
    raw = r.raw[start : r.pos]
    stripped = r.raw[start:flags_at] + b"\x00" + r.raw[flags_at + 1 : end_no_witness]
    coinbase = len(raw_inputs) == 1 and raw_inputs[0] == ("00" * 32, COINBASE_INDEX)
    inputs = () if coinbase else tuple(WireIn(t, n & INDEX_MASK, w) for (t, n), w in zip(raw_inputs, witnesses))
    outputs = tuple(_output(a, v, s) for a, v, s in outs)
    fee = sum(o.value or 0 for o in outputs if not o.script_pubkey and not o.confidential)
    return WireTx(_sha256d(stripped)[::-1].hex(), coinbase, inputs, outputs, raw, explicit_fee=fee)


def _output(asset: bytes, value: bytes, script: bytes) -> WireOut:
    if len(asset) == 33 and asset[0] == 1 and len(value) == 9 and value[0] == 1:
        return WireOut(script, int.from_bytes(value[1:], "big"), asset[1:][::-1].hex())
    if not asset and not value:  # null (no asset, no value): nothing to spend
        return WireOut(script, 0)
    return WireOut(script, None, None, confidential=True)


def parse_tx(raw: bytes) -> WireTx:
    r = _Reader(bytes(raw))
    tx = read_tx(r)
    if r.pos != len(r.raw):
        raise WireError(f"{len(r.raw) - r.pos} bytes left after the transaction")
    return tx


def _skip_dynafed_entry(r: _Reader) -> None:
    kind = r.u8()
    if kind == 0:
        return
    r.varbytes()  # signblockscript
    r.u32()  # signblock witness limit
    if kind == 1:
        r.take(32)  # elided root
    elif kind == 2:
        r.varbytes()  # fedpeg program
        r.varbytes()  # fedpegscript
        r.stack()  # extension space
    else:
        raise WireError(f"unknown dynamic federation entry type {kind}")


def parse_block(raw: bytes) -> WireBlock:
    """A block of a chain with heights in headers and signed blocks (Elements' custom
    chains and Liquid): the header's previous hash and time, and every transaction."""
    r = _Reader(bytes(raw))
    version = r.i32()
    prev = r.take(32)[::-1].hex()
    r.take(32)  # merkle root
    time = r.u32()
    r.u32()  # height
    if version < 0:  # dynamic federations
        _skip_dynafed_entry(r)  # current
        _skip_dynafed_entry(r)  # proposed
        r.stack()  # signblock witness
    else:
        r.varbytes()  # challenge
        r.varbytes()  # solution
    txs = tuple(read_tx(r) for _ in range(r.varint()))
    if r.pos != len(r.raw):
        raise WireError(f"{len(r.raw) - r.pos} bytes left after the block")
    return WireBlock(prev, time, txs)
