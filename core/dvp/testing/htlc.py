"""The HTLC conformance kit: the rules every adapter keeps, each tried on its ledger."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar

import pytest

from .. import errors, sendlog
from ..adapter import LedgerAdapter, Observable, TimeTravel
from ..models import HtlcTerms, LedgerTime, LockStatus, Submission, TxStatus


def make_terms(adapter: LedgerAdapter, now: LedgerTime, asset: str, *, seconds: float = 60, amount: int = 10_000,
               preimage: bytes | None = None, sender: str = "seller", recipient: str = "buyer",
               ) -> tuple[HtlcTerms, bytes]:  # fmt: skip
    """Fresh terms (random preimage and nonce) expiring ``seconds`` after ``now``."""
    preimage = preimage or secrets.token_bytes(32)
    terms = HtlcTerms(
        sender=sender,
        recipient=recipient,
        asset=asset,
        amount=amount,
        hashlock=hashlib.sha256(preimage).hexdigest(),
        expiry=adapter.expiry_after(now, seconds),
        nonce=secrets.token_hex(32),
    )
    return terms, preimage


async def locked(adapter: LedgerAdapter, asset: str, **kw: Any) -> tuple[str, HtlcTerms, bytes]:
    """Lock fresh terms and wait until every transaction of the lock is final."""
    terms, preimage = make_terms(adapter, await adapter.now(), asset, **kw)
    await adapter.wait_all(await adapter.lock(terms))
    return adapter.lock_id(terms), terms, preimage


def fee_in(status: TxStatus, asset: str) -> int:
    """The part of a transaction's fee paid in ``asset`` (UTXO coins; never EVM tokens)."""
    return status.fee if status.fee and status.fee_asset == asset else 0


async def pass_time(adapter: LedgerAdapter, seconds: int) -> None:
    """Move a dev ledger's clock on by ``seconds``; on a ledger without time travel, wait
    (bounded) until its own clock has moved that far."""
    if isinstance(adapter, TimeTravel):
        await adapter.advance_time(seconds)
        return
    target = (await adapter.now()).timestamp + seconds
    for _ in range(int(seconds * 4) + 40):
        if (await adapter.now()).timestamp >= target:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{adapter.name}: clock did not pass {seconds}s")


async def final(adapter: LedgerAdapter, submission: Submission) -> TxStatus:
    """Wait for every transaction of ``submission``; the status of the operation's own."""
    return (await adapter.wait_all(submission))[-1]


# Ids no adapter can have issued, whatever its id format (32 bytes of hex on EVM and Fabric, an
# HTLC script on UTXO chains): empty, not hex, hex with spaces, too short or long, another alphabet.
MALFORMED_LOCK_IDS = [
    "",
    "0x",
    "not-a-lock",
    "0x1234",
    "ab" * 31,
    "ab" * 33,
    "zz" * 32,
    " " + "ab" * 32,
    "ab" * 32 + "\n",
    "ab" * 16 + " " + "ab" * 16,
    "é" * 64,
    "ab" * 5000,
]


class HtlcConformance:
    """Subclass with an ``adapter`` fixture; ``asset`` is what the tests lock."""

    asset: ClassVar[str]
    amount: ClassVar[int] = 10_000  # above a UTXO chain's dust limit plus the claim fee

    async def lock_one(self, adapter: LedgerAdapter, **kw: Any) -> tuple[str, HtlcTerms, bytes]:
        return await locked(adapter, self.asset, amount=kw.pop("amount", self.amount), **kw)

    def terms(self, adapter: LedgerAdapter, now: LedgerTime, **kw: Any) -> tuple[HtlcTerms, bytes]:
        return make_terms(adapter, now, self.asset, amount=kw.pop("amount", self.amount), **kw)

    async def test_a_lock_is_journaled_signed_before_it_is_sent_and_rebroadcast_is_idempotent(
            self, adapter: LedgerAdapter) -> None:  # fmt: skip
        """Sign, journal, then broadcast (dvp.sendlog): the lock's transactions reach the hook
        with their ids before they are sent, and sending the same bytes again, pending or
        final, changes nothing (no second lock, the same ids final)."""
        signed: list[sendlog.SignedTx] = []

        async def journal(txs: list[sendlog.SignedTx]) -> None:
            signed.extend(txs)

        terms, _ = self.terms(adapter, await adapter.now())
        with sendlog.journaling(journal):
            submission = await adapter.lock(terms)
        assert [s.tx_id for s in signed] == [s.tx_id for s in submission]
        assert all(s.raw and s.payer == terms.sender for s in signed), signed
        for tx in signed:  # while pending
            await adapter.rebroadcast(tx)
        await adapter.wait_all(submission)
        for tx in signed:  # once final
            await adapter.rebroadcast(tx)
        state = await adapter.get_lock(adapter.lock_id(terms))
        assert state is not None and state.status is LockStatus.LOCKED

    async def test_lock_id_is_known_before_sending_and_the_ledger_agrees(self, adapter: LedgerAdapter) -> None:
        terms, _ = self.terms(adapter, await adapter.now())
        expected = adapter.lock_id(terms)
        assert adapter.lock_id(terms) == expected  # pure: the same id every time
        assert await adapter.get_lock(expected) is None
        await final(adapter, await adapter.lock(terms))
        state = await adapter.get_lock(expected)
        assert state is not None
        assert state.status is LockStatus.LOCKED and state.terms.agrees_with(terms) and state.final

    async def test_check_lock_refuses_what_the_ledger_would(self, adapter: LedgerAdapter) -> None:
        terms, _ = self.terms(adapter, await adapter.now())
        await adapter.check_lock(terms)
        for bad in ({"amount": 10**30}, {"asset": "NO-SUCH-ASSET"}, {"sender": "nobody"}):
            with pytest.raises(errors.LockRefused):
                await adapter.check_lock(terms.model_copy(update=bad))

    async def test_a_refusal_states_every_amount_with_its_unit(self, adapter: LedgerAdapter) -> None:
        # One formatter (dvp.units) for every adapter, each naming its own units: btc said
        # "holds 48446 BTC" of sat, Elements mixed on-chain units (x1000) into BOND figures.
        terms, _ = self.terms(adapter, await adapter.now())
        have = await adapter.balance(terms.sender, terms.asset)
        unit = adapter.unit_of(terms.asset)
        with pytest.raises(errors.LockRefused) as info:
            await adapter.check_lock(terms.model_copy(update={"amount": have + 1}))
        text = str(info.value)
        assert text.startswith(f"'seller' holds {have} {unit} on {adapter.name}, needs {have + 1} {unit}"), text
        assert "fee included" not in text and "\n" not in text, text

    async def test_claim_pays_the_fixed_recipient_whoever_submits(self, adapter: LedgerAdapter) -> None:
        lock_id, terms, preimage = await self.lock_one(adapter)
        asset = terms.asset
        buyer, seller = await adapter.balance("buyer", asset), await adapter.balance("seller", asset)
        # The seller (not the recipient) submits the claim; the buyer still gets paid.
        status = await final(adapter, await adapter.claim(lock_id, preimage, submitter="seller"))
        assert await adapter.balance("buyer", asset) == buyer + self.amount - fee_in(status, asset)
        assert await adapter.balance("seller", asset) == seller
        state = await adapter.get_lock(lock_id)
        assert state is not None and state.status is LockStatus.CLAIMED and state.preimage == preimage.hex()

    async def test_wrong_preimage_is_rejected(self, adapter: LedgerAdapter) -> None:
        lock_id, _, _ = await self.lock_one(adapter)
        with pytest.raises(errors.InvalidPreimage):
            await final(adapter, await adapter.claim(lock_id, secrets.token_bytes(32), submitter="buyer"))
        state = await adapter.get_lock(lock_id)
        assert state is not None and state.status is LockStatus.LOCKED

    async def test_hex_text_of_the_preimage_is_not_accepted(self, adapter: LedgerAdapter) -> None:
        """docs/design.md, rule 2: the hash is over raw bytes; hashing the hex string must not open the lock."""
        text_preimage = secrets.token_hex(16).encode()  # 32 ASCII bytes
        lock_id, _, _ = await self.lock_one(adapter, preimage=hashlib.sha256(text_preimage).digest())
        with pytest.raises(errors.InvalidPreimage):
            await final(adapter, await adapter.claim(lock_id, text_preimage, submitter="buyer"))

    async def test_preimage_that_is_not_32_bytes_is_refused(self, adapter: LedgerAdapter) -> None:
        lock_id, _, preimage = await self.lock_one(adapter)
        for bad in (preimage + b"\x00", preimage[:31], b""):
            with pytest.raises(errors.InvalidPreimage):
                await adapter.claim(lock_id, bad, submitter="buyer")
        state = await adapter.get_lock(lock_id)
        assert state is not None and state.status is LockStatus.LOCKED

    async def test_double_claim_is_rejected(self, adapter: LedgerAdapter) -> None:
        lock_id, _, preimage = await self.lock_one(adapter)
        await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
        balance = await adapter.balance("buyer", self.asset)
        with pytest.raises(errors.LockError):
            await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
        assert await adapter.balance("buyer", self.asset) == balance

    async def test_early_refund_is_rejected(self, adapter: LedgerAdapter) -> None:
        lock_id, _, _ = await self.lock_one(adapter)
        with pytest.raises(errors.LockExpired):
            await final(adapter, await adapter.refund(lock_id, submitter="seller"))
        state = await adapter.get_lock(lock_id)
        assert state is not None and state.status is LockStatus.LOCKED

    async def test_refund_after_expiry_goes_to_the_sender_only(self, adapter: LedgerAdapter) -> None:
        asset = self.asset
        seller = await adapter.balance("seller", asset)
        terms, preimage = self.terms(adapter, await adapter.now(), seconds=30)
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

    async def test_duplicate_lock_is_rejected(self, adapter: LedgerAdapter) -> None:
        _, terms, _ = await self.lock_one(adapter)
        with pytest.raises(errors.LockError):
            await final(adapter, await adapter.lock(terms))

    async def test_expiry_in_the_past_is_rejected(self, adapter: LedgerAdapter) -> None:
        terms, _ = self.terms(adapter, await adapter.now(), seconds=-10)
        with pytest.raises(errors.LockExpired):
            await final(adapter, await adapter.lock(terms))
        assert await adapter.get_lock(adapter.lock_id(terms)) is None

    async def test_audit_names_the_first_mismatch(self, adapter: LedgerAdapter) -> None:
        lock_id, terms, _ = await self.lock_one(adapter)
        assert (await adapter.audit(lock_id, terms)).status is LockStatus.LOCKED
        for field, value in (("amount", self.amount + 1), ("recipient", "issuer"), ("expiry", terms.expiry + 1)):
            with pytest.raises(errors.AuditFailed, match=field):
                await adapter.audit(lock_id, terms.model_copy(update={field: value}))

    async def test_a_malformed_lock_id_is_bad_input_alike_on_every_ledger(self, adapter: LedgerAdapter) -> None:
        # The seam: an id the ledger cannot have issued is LockNotFound, as MalformedLockId (exit 2,
        # bad input), from every operation that takes an id, in one line; nothing is sent.
        terms, preimage = self.terms(adapter, await adapter.now())
        for bad in MALFORMED_LOCK_IDS:
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "get_lock": partial(adapter.get_lock, bad),
                "audit": partial(adapter.audit, bad, terms),
                "claim": partial(adapter.claim, bad, preimage, submitter="buyer"),
                "refund": partial(adapter.refund, bad, submitter="seller"),
            }
            for name, call in calls.items():
                with pytest.raises(errors.MalformedLockId) as info:
                    await call()
                text = str(info.value)
                assert isinstance(info.value, errors.LockNotFound) and info.value.exit_code == 2, (name, bad)
                assert text.startswith("lock id ") and "\n" not in text and len(text) < 200, (name, text)

    async def test_observe_resumes_from_a_checkpoint(self, adapter: LedgerAdapter) -> None:
        if not isinstance(adapter, Observable):
            pytest.skip(f"{type(adapter).__name__} is not Observable (no lock event feed)")
        events = [e async for e in adapter.observe()]
        checkpoint = events[-1].checkpoint if events else None
        lock_id, _, preimage = await self.lock_one(adapter)
        await final(adapter, await adapter.claim(lock_id, preimage, submitter="buyer"))
        new = [e async for e in adapter.observe(since=checkpoint)]
        assert [(e.kind, e.lock_id) for e in new] == [("locked", lock_id), ("claimed", lock_id)]
        assert new[-1].preimage == preimage.hex()
        assert [e async for e in adapter.observe(since=new[-1].checkpoint)] == []
