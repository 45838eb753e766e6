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


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def _digest(domain: bytes, *fields: bytes) -> str:
    """SHA-256 over ``domain`` and each field as a 4-byte big-endian length and its bytes, in hex."""
    return hashlib.sha256(domain + b"".join(_field(x) for x in fields)).hexdigest()


def lock_id(sender: str, recipient: str, asset: str, amount: int, hashlock: bytes, expiry: int, nonce: bytes) -> str:
    if len(hashlock) != 32:
        raise ValueError("hashlock must be 32 bytes")
    return _digest(
        LOCK_DOMAIN, sender.encode(), recipient.encode(), asset.encode(), _u64(amount), hashlock, _u64(expiry), nonce
    )


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
    return _digest(
        ORDER_DOMAIN,
        seller.encode(),
        buyer.encode(),
        sec_asset.encode(),
        _u64(sec_amount),
        cash_asset.encode(),
        _u64(cash_amount),
        _u64(expiry),
        nonce,
    )
