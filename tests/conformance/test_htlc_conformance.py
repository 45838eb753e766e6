"""The HTLC rules every adapter must keep, each shown by an attempt to break it on a real
ledger.  Parametrized by one ledger per installed platform."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from dvp import errors
from dvp.models import HtlcTerms, LockStatus

from ..htlc_helpers import AMOUNT, fee_in, locked, make_terms, pass_time
from ..testbed import ADAPTER_PARAMS, htlc_asset

pytestmark = pytest.mark.parametrize("ledger", ADAPTER_PARAMS)

async def final(adapter, submitted):
    return await adapter.wait_final(submitted.tx_id)


async def test_lock_id_is_known_before_sending_and_the_ledger_agrees(net, ledger):
    adapter = net.ledgers[ledger]
    terms, _ = make_terms(adapter, await adapter.now())
    expected = adapter.lock_id(terms)
    assert await adapter.get_lock(expected) is None
    await final(adapter, await adapter.lock(terms))
    state = await adapter.get_lock(expected)
    assert state.status is LockStatus.LOCKED and state.terms.agrees_with(terms) and state.final


async def test_claim_pays_the_fixed_recipient_whoever_submits(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, terms, preimage = await locked(adapter)
    asset = terms.asset
    buyer, seller = await adapter.balance("buyer", asset), await adapter.balance("seller", asset)
    # The seller (not the recipient) submits the claim; the buyer still gets paid.
    status = await final(adapter, await adapter.claim(lock_id, preimage, submitter="seller"))
    assert await adapter.balance("buyer", asset) == buyer + AMOUNT - fee_in(status, asset)
    assert await adapter.balance("seller", asset) == seller
    state = await adapter.get_lock(lock_id)
    assert state.status is LockStatus.CLAIMED and state.preimage == preimage.hex()


async def test_wrong_preimage_is_rejected(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, _, _ = await locked(adapter)
    with pytest.raises(errors.InvalidPreimage):
        await final(adapter, await adapter.claim(lock_id, secrets.token_bytes(32), submitter="buyer"))
    assert (await adapter.get_lock(lock_id)).status is LockStatus.LOCKED


async def test_hex_text_of_the_preimage_is_not_accepted(net, ledger):
    """Rule 2: the hash is over raw bytes; hashing the hex string must not open the lock."""
    adapter = net.ledgers[ledger]
    text_preimage = secrets.token_hex(16).encode()  # 32 ASCII bytes
    lock_id, _, _ = await locked(adapter, preimage=hashlib.sha256(text_preimage).digest())
    with pytest.raises(errors.InvalidPreimage):
        await final(adapter, await adapter.claim(lock_id, text_preimage, submitter="buyer"))


async def test_preimage_that_is_not_32_bytes_is_refused(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, _, preimage = await locked(adapter)
    for bad in (preimage + b"\x00", preimage[:31], b""):
        with pytest.raises(errors.InvalidPreimage):
            await adapter.claim(lock_id, bad, submitter="buyer")
    assert (await adapter.get_lock(lock_id)).status is LockStatus.LOCKED


async def test_double_claim_is_rejected(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, _, preimage = await locked(adapter)
    await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
    asset = htlc_asset(ledger)
    balance = await adapter.balance("buyer", asset)
    with pytest.raises(errors.LockError):
        await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
    assert await adapter.balance("buyer", asset) == balance


async def test_early_refund_is_rejected(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, _, _ = await locked(adapter)
    with pytest.raises(errors.LockExpired):
        await final(adapter, await adapter.refund(lock_id, submitter="seller"))
    assert (await adapter.get_lock(lock_id)).status is LockStatus.LOCKED


async def test_refund_after_expiry_goes_to_the_sender_only(net, ledger):
    adapter = net.ledgers[ledger]
    asset = htlc_asset(ledger)
    seller = await adapter.balance("seller", asset)
    terms, preimage = make_terms(adapter, await adapter.now(), seconds=30)
    lock_id = adapter.lock_id(terms)
    lock_status = await final(adapter, await adapter.lock(terms))
    await pass_time(adapter, 31)
    with pytest.raises(errors.LockError):
        await final(adapter, await adapter.refund(lock_id, submitter="buyer"))
    with pytest.raises(errors.LockExpired):
        await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
    refund_status = await final(adapter, await adapter.refund(lock_id, submitter="seller"))
    fees = fee_in(lock_status, asset) + fee_in(refund_status, asset)
    assert await adapter.balance("seller", asset) == seller - fees
    with pytest.raises(errors.LockError):  # no claim after refund, no second refund
        await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
    with pytest.raises(errors.LockError):
        await final(adapter, await adapter.refund(lock_id, submitter="seller"))


async def test_duplicate_lock_is_rejected(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, terms, _ = await locked(adapter)
    with pytest.raises(errors.LockError):
        await final(adapter, await adapter.lock(terms))


async def test_expiry_in_the_past_is_rejected(net, ledger):
    adapter = net.ledgers[ledger]
    terms, _ = make_terms(adapter, await adapter.now(), seconds=-10)
    with pytest.raises(errors.LockExpired):
        await final(adapter, await adapter.lock(terms))
    assert await adapter.get_lock(adapter.lock_id(terms)) is None


async def test_audit_names_the_first_mismatch(net, ledger):
    adapter = net.ledgers[ledger]
    lock_id, terms, _ = await locked(adapter)
    assert (await adapter.audit(lock_id, terms)).status is LockStatus.LOCKED
    for field, value in (("amount", AMOUNT + 1), ("recipient", "issuer"), ("expiry", terms.expiry + 1)):
        with pytest.raises(errors.AuditFailed, match=field):
            await adapter.audit(lock_id, terms.model_copy(update={field: value}))


async def test_observe_resumes_from_a_checkpoint(net, ledger):
    adapter = net.ledgers[ledger]
    events = [e async for e in adapter.observe()]
    checkpoint = events[-1].checkpoint if events else None
    lock_id, _, preimage = await locked(adapter)
    await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
    new = [e async for e in adapter.observe(since=checkpoint)]
    assert [(e.kind, e.lock_id) for e in new] == [("locked", lock_id), ("claimed", lock_id)]
    assert new[-1].preimage == preimage.hex()
    assert [e async for e in adapter.observe(since=new[-1].checkpoint)] == []
