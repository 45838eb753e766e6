"""The dvp chaincode's lock and order ids, recomputed off-ledger (for audits).

Mirrors ``lockId`` / ``orderId`` in contracts/fabric/node/lib/rules.js: SHA-256
over a domain tag followed by each field as a 4-byte big-endian length and its
bytes; integers as 8-byte big-endian.  The chaincode's test/rules.test.js and
tests/fabric/test_lockid.py pin the same vectors.
"""

from __future__ import annotations

import hashlib
import struct

LOCK_DOMAIN = b"dvp.fabric.htlc.v1"
ORDER_DOMAIN = b"dvp.fabric.order.v1"


def _field(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def lock_id(sender: str, recipient: str, asset: str, amount: int, hashlock: bytes, expiry: int, nonce: bytes) -> str:
    if len(hashlock) != 32:
        raise ValueError("hashlock must be 32 bytes")
    enc = LOCK_DOMAIN + b"".join(
        _field(x)
        for x in (
            sender.encode(),
            recipient.encode(),
            asset.encode(),
            struct.pack(">Q", amount),
            hashlock,
            struct.pack(">Q", expiry),
            nonce,
        )
    )
    return hashlib.sha256(enc).hexdigest()


def order_id(
    seller: str,
    buyer: str,
    sec_asset: str,
    sec_amount: int,
    cash_asset: str,
    cash_amount: int,
    expiry: int,
    nonce: bytes,
) -> str:
    enc = ORDER_DOMAIN + b"".join(
        _field(x)
        for x in (
            seller.encode(),
            buyer.encode(),
            sec_asset.encode(),
            struct.pack(">Q", sec_amount),
            cash_asset.encode(),
            struct.pack(">Q", cash_amount),
            struct.pack(">Q", expiry),
            nonce,
        )
    )
    return hashlib.sha256(enc).hexdigest()
