"""An in-memory ledger: for the core's unit tests and for checking the test kits
themselves.  It is not a platform (no entry point names it) and keeps the HTLC rules
only as far as :class:`~dvp.testing.HtlcConformance` checks them."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .. import errors, sendlog
from ..adapter import AtomicDvp, Issuing, LedgerAdapter, LedgerConfig, TimeTravel
from ..models import (
    ClockKind,
    DvpOrder,
    Finality,
    HtlcTerms,
    LedgerTerms,
    LedgerTime,
    LockState,
    LockStatus,
    OrderState,
    OrderStatus,
    Submission,
    Submitted,
    TxPurpose,
    TxStatus,
)
from ..sendlog import SignedTx
from ..units import Quantity, funds_short


class MemoryConfig(LedgerConfig):
    kind: Literal["memory"] = "memory"
    parties: tuple[str, ...] = ("issuer", "seller", "buyer")
    assets: tuple[str, ...] = ("BOND", "EUR")


_PURPOSE = {"settle": TxPurpose.ACCEPT}
_LOCK_ID = re.compile(r"[0-9a-f]{64}")  # what lock_id() makes: a SHA-256 in hex


@dataclass
class _Lock:
    terms: HtlcTerms
    status: LockStatus = LockStatus.LOCKED
    preimage: str | None = None


class MemoryLiveLedger(LedgerAdapter, Issuing):
    """The in-memory ledger without a dev clock: refunds wait for its clock.

    Each sending operation is one block; ``fail_next[op]`` raises once instead (a crash
    between two steps), ``approve_before_lock`` makes a lock two transactions (as an
    ERC-20 without permit) and ``fee`` is every transaction's fee."""

    kind = "memory"
    config_model = MemoryConfig
    clock = ClockKind.TIME

    config: MemoryConfig

    def __init__(self, name: str, config: MemoryConfig | None = None):
        super().__init__(name, config or MemoryConfig())
        self.time = 1_000_000.0
        self.height = 0
        self.balances: dict[tuple[str, str], int] = defaultdict(int)
        self.locks: dict[str, _Lock] = {}
        self.fail_next: dict[str, Exception] = {}
        self._tx = itertools.count()
        self.sent: list[str] = []  # operations that reached the ledger, in order
        self.unsent: dict[str, tuple[str, Callable[[], None]]] = {}  # signed, not yet broadcast
        self.rebroadcasts: list[str] = []
        self.superseded: dict[str, str] = {}  # tx id -> why it can never confirm (a test sets it)
        self.held_back: dict[str, str] = {}  # tx id -> why the ledger does not take it for now (a test sets it)
        self.waited: list[str] = []
        self.approve_before_lock = False
        self.fee: int | None = None

    async def connect(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def now(self) -> LedgerTime:
        return LedgerTime(height=self.height, timestamp=self.time)

    @property
    def finality(self) -> Finality:
        return Finality(confirmations=1, block_interval=1.0, expected_seconds=1.0, clock_skew=1.0)

    async def _block(self, op: str, payer: str, effect: Callable[[], None]) -> Submission:
        """Sign ``op`` (with an approve before a lock if asked), journal it through
        :mod:`dvp.sendlog`, then "broadcast" it: ``effect`` is what it does to the ledger.
        A crash drill that stops at a boundary before the last broadcast leaves the effect
        waiting for :meth:`rebroadcast`."""
        if op in self.fail_next:
            raise self.fail_next.pop(op)
        before = []
        if op == "lock" and self.approve_before_lock:
            before = [Submitted(ledger=self.name, tx_id=self._tx_id(), purpose=TxPurpose.APPROVE, payer=payer)]
        purpose = _PURPOSE.get(op) or TxPurpose(op)
        sub = Submission([*before, Submitted(ledger=self.name, tx_id=self._tx_id(), purpose=purpose, payer=payer)])
        for s in sub:
            self.unsent[s.tx_id] = (op, effect if s is sub[-1] else _nothing)
        await sendlog.before_broadcast([SignedTx(s.tx_id, op.encode().hex(), s.purpose.value, payer) for s in sub])
        for k, s in enumerate(sub, 1):
            self._broadcast(s.tx_id)
            sendlog.sent(k, len(sub))
        return sub

    def _broadcast(self, tx_id: str) -> None:
        op, effect = self.unsent.pop(tx_id)
        if effect is not _nothing:  # one block per operation, an approve with it
            self.height += 1
            self.time += 1
            self.sent.append(op)
        effect()

    async def rebroadcast(self, signed: SignedTx) -> None:
        """The signed transaction again: applied if it never reached the ledger, else nothing."""
        self.rebroadcasts.append(signed.tx_id)
        if signed.tx_id in self.superseded:
            raise errors.Superseded(f"{signed.tx_id}: {self.superseded[signed.tx_id]}", tx_id=signed.tx_id)
        if signed.tx_id in self.held_back:
            raise errors.HeldBack(f"{signed.tx_id}: {self.held_back[signed.tx_id]}", tx_id=signed.tx_id)
        if signed.tx_id in self.unsent:
            self._broadcast(signed.tx_id)

    def _tx_id(self) -> str:
        return f"{self.name}-tx{next(self._tx)}"

    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        self.waited.append(tx_id)
        return TxStatus(tx_id=tx_id, successful=True, block_number=self.height, fee=self.fee)

    def _known(self, party: str, asset: str | None = None) -> None:
        self.known({p: p for p in self.config.parties}, party, "party", "no key")
        if asset is not None:
            self.known({a: a for a in self.config.assets}, asset, "asset", "unknown")

    async def balance(self, party: str, asset: str) -> int:
        self._known(party, asset)
        return self.balances[(party, asset)]

    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        self._known(to, asset)

        def effect() -> None:
            self.balances[(to, asset)] += amount

        return await self._block("issue", "issuer", effect)

    def lock_id(self, terms: HtlcTerms) -> str:
        return hashlib.sha256(terms.model_dump_json().encode()).hexdigest()

    async def check_lock(self, terms: HtlcTerms) -> None:
        try:
            self._known(terms.sender, terms.asset)
            self._known(terms.recipient)
        except errors.ConfigError as exc:
            raise errors.LockRefused(str(exc)) from None
        have = self.balances[(terms.sender, terms.asset)]
        if have < terms.amount:
            unit = self.unit_of(terms.asset)
            raise errors.LockRefused(
                funds_short(terms.sender, self.name, Quantity(have, unit), Quantity(terms.amount, unit))
            )

    async def lock(self, terms: HtlcTerms) -> Submission:
        self._known(terms.sender, terms.asset)
        self._known(terms.recipient)
        lock_id = self.lock_id(terms)
        if lock_id in self.locks:
            raise errors.LockError("duplicate lock")
        if terms.expiry <= self.time:
            raise errors.LockExpired("expiry in the past")
        if self.balances[(terms.sender, terms.asset)] < terms.amount:
            raise errors.SubmitError("insufficient balance")

        def effect() -> None:
            self.balances[(terms.sender, terms.asset)] -= terms.amount
            self.locks[lock_id] = _Lock(terms)

        return await self._block("lock", terms.sender, effect)

    def _well_formed(self, lock_id: str) -> str:
        if not _LOCK_ID.fullmatch(lock_id):
            raise self.malformed_lock_id(lock_id, "64 lower-case hex")
        return lock_id

    def _lock(self, lock_id: str) -> _Lock:
        lock = self.locks.get(self._well_formed(lock_id))
        if lock is None:
            raise errors.LockNotFound(f"lock {lock_id}: no such lock on {self.name}")
        return lock

    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        lock = self._lock(lock_id)
        if len(preimage) != 32 or hashlib.sha256(preimage).hexdigest() != lock.terms.hashlock:
            raise errors.InvalidPreimage("sha256(preimage) does not match the hashlock, or it is not 32 bytes")
        if lock.status is not LockStatus.LOCKED:
            raise errors.LockError(f"lock {lock_id}: already {lock.status.value}")
        if self.time >= lock.terms.expiry:
            raise errors.LockExpired("the lock has expired; claim refused")

        def effect() -> None:
            lock.status, lock.preimage = LockStatus.CLAIMED, preimage.hex()
            self.balances[(lock.terms.recipient, lock.terms.asset)] += lock.terms.amount

        return await self._block("claim", submitter, effect)

    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        lock = self._lock(lock_id)
        if lock.status is not LockStatus.LOCKED:
            raise errors.LockError(f"lock {lock_id}: already {lock.status.value}")
        if submitter != lock.terms.sender:
            raise errors.LockError("only the sender may refund")
        if self.time < lock.terms.expiry:
            raise errors.LockExpired("the lock has not expired yet; refund refused")

        def effect() -> None:
            lock.status = LockStatus.REFUNDED
            self.balances[(lock.terms.sender, lock.terms.asset)] += lock.terms.amount

        return await self._block("refund", submitter, effect)

    async def get_lock(self, lock_id: str) -> LockState | None:
        lock = self.locks.get(self._well_formed(lock_id))
        if lock is None:
            return None
        return LockState(lock_id=lock_id, terms=LedgerTerms(**lock.terms.model_dump()), status=lock.status,
                         preimage=lock.preimage, confirmations=1, final=True)  # fmt: skip

    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        state = await self.locked_as_agreed(lock_id, expected)
        return state


class MemoryLedger(MemoryLiveLedger, TimeTravel):
    """The in-memory ledger with a clock tests can move."""

    async def advance_time(self, seconds: int) -> None:
        self.time += seconds
        self.height += 1

    async def mine(self, blocks: int = 1) -> None:
        self.height += blocks
        self.time += blocks


class MemoryDvpLedger(MemoryLedger, AtomicDvp):
    """The in-memory ledger with single-ledger DvP: the seller's proposal is its consent,
    the buyer's acceptance moves both legs at once, or neither."""

    def __init__(self, name: str, config: MemoryConfig | None = None):
        super().__init__(name, config)
        self.orders: dict[str, tuple[DvpOrder, OrderStatus]] = {}

    def order_id(self, order: DvpOrder) -> str:
        return hashlib.sha256(b"order" + order.model_dump_json().encode()).hexdigest()

    async def propose_dvp(self, order: DvpOrder) -> Submission:
        self._known(order.seller, order.security)
        self._known(order.buyer, order.cash)
        order_id = self.order_id(order)
        if order_id in self.orders:
            raise errors.SubmitError("duplicate order")

        def effect() -> None:
            self.orders[order_id] = (order, OrderStatus.OPEN)

        return await self._block("propose", order.seller, effect)

    async def accept_dvp(self, order: DvpOrder) -> Submission:
        order_id = self.order_id(order)
        found = self.orders.get(order_id)
        if found is None or found[1] is not OrderStatus.OPEN:
            raise errors.SubmitError("no open order")
        if self.time > order.deadline:
            raise errors.SubmitError("deadline passed")
        if (
            self.balances[(order.seller, order.security)] < order.security_amount
            or self.balances[(order.buyer, order.cash)] < order.cash_amount
        ):
            raise errors.SubmitError("a party's balance is short")  # fmt: skip

        def effect() -> None:
            self.balances[(order.seller, order.security)] -= order.security_amount
            self.balances[(order.buyer, order.security)] += order.security_amount
            self.balances[(order.buyer, order.cash)] -= order.cash_amount
            self.balances[(order.seller, order.cash)] += order.cash_amount
            self.orders[order_id] = (order, OrderStatus.SETTLED)

        return await self._block("settle", order.buyer, effect)

    async def cancel_dvp(self, order: DvpOrder) -> Submission:
        """Signed by the seller (this ledger has no other signer for it); an order that is not
        open is refused, and a cancelled one can no longer be accepted."""
        order_id = self.order_id(order)
        found = self.orders.get(order_id)
        if found is None or found[1] is not OrderStatus.OPEN:
            raise errors.SubmitError(f"no open order {order_id[:12]}: {found[1].value if found else 'never proposed'}")

        def effect() -> None:
            self.orders[order_id] = (order, OrderStatus.CANCELLED)

        return await self._block("cancel", order.seller, effect)

    async def get_order(self, order_id: str) -> OrderState | None:
        found = self.orders.get(order_id)
        return OrderState(order_id=order_id, status=found[1]) if found else None


def _nothing() -> None:
    """What an approve does on this ledger."""
