"""Opening locks directly through an adapter, for tests that then try to break them."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from dvp.models import Capability, HtlcTerms

from .testbed import htlc_asset

AMOUNT = 10_000  # above a UTXO chain's dust limit plus the claim fee


def make_terms(adapter, now, *, seconds=60, amount=AMOUNT, preimage=None, sender="seller", recipient="buyer"):
    preimage = preimage or secrets.token_bytes(32)
    terms = HtlcTerms(
        sender=sender,
        recipient=recipient,
        asset=htlc_asset(adapter.name),
        amount=amount,
        hashlock=hashlib.sha256(preimage).hexdigest(),
        expiry=adapter.expiry_after(now, seconds),
        nonce=secrets.token_hex(32),
    )
    return terms, preimage


async def locked(adapter, **kw):
    terms, preimage = make_terms(adapter, await adapter.now(), **kw)
    sub = await adapter.lock(terms)
    await adapter.wait_final(sub.tx_id)
    lock_id = adapter.lock_id(terms)
    return lock_id, terms, preimage


def fee_in(status, asset: str) -> int:
    """The part of a transaction's fee paid in ``asset`` (UTXO coins; never EVM tokens)."""
    return status.fee if status.fee and status.fee_asset == asset else 0


async def pass_time(adapter, seconds: int) -> None:
    """Move a dev ledger's clock on by ``seconds``; on a ledger without time travel, wait
    (bounded) until its own clock has moved that far."""
    if adapter.supports(Capability.TIME_TRAVEL):
        await adapter.advance_time(seconds)
        return
    target = (await adapter.now()).timestamp + seconds
    for _ in range(int(seconds * 4) + 40):
        if (await adapter.now()).timestamp >= target:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{adapter.name}: clock did not pass {seconds}s")
