"""An in-memory ledger for the core's unit tests only; it never counts as a platform."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from typing import Literal

from dvp import errors
from dvp.adapter import Issuing, LedgerAdapter, LedgerConfig, TimeTravel
from dvp.models import (
    ClockKind, Finality, HtlcTerms, LedgerTerms, LedgerTime, LockState, LockStatus, Submission, Submitted, TxPurpose,
    TxStatus,
)


class FakeConfig(LedgerConfig):
    kind: Literal["fake"] = "fake"


class FakeLiveLedger(LedgerAdapter, Issuing):
    """The in-memory ledger without a dev clock: refunds wait for real expiry."""

    kind = "fake"
    config_model = FakeConfig
    clock = ClockKind.TIME

    def __init__(self, name: str, config: FakeConfig | None = None):
        super().__init__(name, config or FakeConfig())
        self.time = 1_000_000.0
        self.height = 0
        self.balances: dict[tuple[str, str], int] = defaultdict(int)
        self.locks: dict[str, dict] = {}
        self.fail_next: dict[str, Exception] = {}
        self._tx = itertools.count()
        self.sent: list[str] = []
        self.waited: list[str] = []
        self.approve_before_lock = False
        self.fee: int | None = None

    async def connect(self) -> None: ...
    async def aclose(self) -> None: ...

    async def now(self) -> LedgerTime:
        return LedgerTime(height=self.height, timestamp=self.time)

    @property
    def finality(self) -> Finality:
        return Finality(confirmations=1, block_interval=1.0, expected_seconds=1.0, clock_skew=1.0)

    def _block(self, op: str, payer: str) -> Submission:
        if op in self.fail_next:
            raise self.fail_next.pop(op)
        self.height += 1
        self.time += 1
        self.sent.append(op)
        before = []
        if op == "lock" and self.approve_before_lock:  # as an ERC-20 without permit: approve, then lock
            before = [Submitted(ledger=self.name, tx_id=f"{self.name}-tx{next(self._tx)}", purpose=TxPurpose.APPROVE,
                                payer=payer)]
        return Submission(before + [Submitted(ledger=self.name, tx_id=f"{self.name}-tx{next(self._tx)}",
                                              purpose=TxPurpose(op), payer=payer)])

    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        self.waited.append(tx_id)
        return TxStatus(tx_id=tx_id, successful=True, block_number=self.height, fee=self.fee)

    async def balance(self, party: str, asset: str) -> int:
        return self.balances[(party, asset)]

    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        self.balances[(to, asset)] += amount
        return self._block("issue", "issuer")

    def lock_id(self, terms: HtlcTerms) -> str:
        return hashlib.sha256(terms.model_dump_json().encode()).hexdigest()

    async def check_lock(self, terms: HtlcTerms) -> None:
        have = self.balances[(terms.sender, terms.asset)]
        if have < terms.amount:
            raise errors.LockRefused(f"{terms.sender!r} holds {have} {terms.asset} on {self.name}, needs {terms.amount}")

    async def lock(self, terms: HtlcTerms) -> Submission:
        lock_id = self.lock_id(terms)
        if lock_id in self.locks:
            raise errors.LockError("duplicate lock")
        if terms.expiry <= self.time:
            raise errors.LockExpired("expiry in the past")
        if self.balances[(terms.sender, terms.asset)] < terms.amount:
            raise errors.SubmitError("insufficient balance")
        sub = self._block("lock", terms.sender)
        self.balances[(terms.sender, terms.asset)] -= terms.amount
        self.locks[lock_id] = {"terms": terms, "status": LockStatus.LOCKED, "preimage": None}
        return sub

    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        lock = self.locks[lock_id]
        if lock["status"] is not LockStatus.LOCKED:
            raise errors.LockError("not locked")
        if self.time >= lock["terms"].expiry:
            raise errors.LockExpired("expired")
        if len(preimage) != 32 or hashlib.sha256(preimage).hexdigest() != lock["terms"].hashlock:
            raise errors.InvalidPreimage("wrong preimage")
        sub = self._block("claim", submitter)
        lock.update(status=LockStatus.CLAIMED, preimage=preimage.hex())
        self.balances[(lock["terms"].recipient, lock["terms"].asset)] += lock["terms"].amount
        return sub

    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        lock = self.locks[lock_id]
        if lock["status"] is not LockStatus.LOCKED or submitter != lock["terms"].sender:
            raise errors.LockError("cannot refund")
        if self.time < lock["terms"].expiry:
            raise errors.LockExpired("not expired")
        sub = self._block("refund", submitter)
        lock["status"] = LockStatus.REFUNDED
        self.balances[(lock["terms"].sender, lock["terms"].asset)] += lock["terms"].amount
        return sub

    async def get_lock(self, lock_id: str) -> LockState | None:
        lock = self.locks.get(lock_id)
        if lock is None:
            return None
        return LockState(lock_id=lock_id, terms=LedgerTerms(**lock["terms"].model_dump()), status=lock["status"],
                         preimage=lock["preimage"], confirmations=1, final=True)

    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        state = await self.get_lock(lock_id)
        if state is None or not state.terms.agrees_with(expected):
            raise errors.AuditFailed("mismatch")
        return state



class FakeLedger(FakeLiveLedger, TimeTravel):
    """The in-memory ledger with a clock tests can move."""

    async def advance_time(self, seconds: int) -> None:
        self.time += seconds
        self.height += 1

    async def mine(self, blocks: int = 1) -> None:
        self.height += blocks
        self.time += blocks
