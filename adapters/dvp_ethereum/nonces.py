"""Nonces assigned locally per account, so that one party's transactions share blocks.

Asking the node for ``eth_getTransactionCount(pending)`` before each send and waiting for
the previous transaction to be mined allows one transaction per account per block.  An
:class:`AccountNonces` instead hands out consecutive nonces under a lock held only while
the caller signs and broadcasts (one round trip), never while a block is mined.

What can go wrong and how it is repaired:

- signing fails: the nonces of the batch not yet signed go back;
- a broadcast fails (transactions are broadcast after the lock is released): its nonce and
  the ones signed after it in its batch are spent on empty transfers to the account itself,
  so what was signed after them still runs in the order signed (permit nonces follow it);
  should that fail too, the count is re-read from the node, which counts up to the gap;
- the node says the nonce is taken ("nonce too low", a replacement refused): another sender
  used the key; re-read the count from the node and sign again;
- a transaction vanishes from the pool (dropped): the signed bytes are kept until it is
  mined, so it is broadcast again unchanged (same hash, same journal entry); if its nonce
  has meanwhile been used by another transaction (replaced), it is reported as such and
  the count is re-read;
- a transaction is mined but reverts: its nonce is used, so the account needs nothing, but
  ERC-2612 permit nonces it would have consumed were not: :class:`PermitNonces` re-reads
  them from the token once the permits sent before the failure have settled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# Messages by which geth and anvil refuse a nonce another transaction already holds.
_TAKEN = ("nonce too low", "replacement transaction underpriced", "already known", "nonce has already been used")


def nonce_taken(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(m in text for m in _TAKEN)


@dataclass
class InFlight:
    nonce: int
    raw: bytes
    sent_at: float = field(default_factory=time.monotonic)


class AccountNonces:
    """The next nonce of one account on one node, kept locally."""

    def __init__(self, address: str, pending_count: Callable[[], Awaitable[int]]):
        self.address = address
        self._pending_count = pending_count
        self._lock = asyncio.Lock()
        self._next: int | None = None
        self._stale = False
        self.in_flight: dict[str, InFlight] = {}  # tx hash -> what to re-broadcast

    def invalidate(self) -> None:
        """Forget the local count: the next batch reads the node's pending count.  A flag,
        not a read here: a batch being signed must not overwrite it, and a caller may be
        waiting inside a batch (a permit settling) when it finds out."""
        self._stale = True

    @asynccontextmanager
    async def batch(self, count: int) -> AsyncIterator["Batch"]:
        """``count`` consecutive nonces, for transactions that must follow each other
        (an approve, then the lock that spends it).  The caller signs them in order inside
        the block and calls ``Batch.sent`` after each."""
        async with self._lock:
            if self._next is None or self._stale:
                self._stale = False
                self._next = await self._pending_count()
            batch = Batch(list(range(self._next, self._next + count)), self)
            try:
                yield batch
            finally:
                # Only what was signed uses a nonce.
                self._next = batch.nonces[0] + batch.signed

    def mined(self, tx_id: str) -> None:
        self.in_flight.pop(tx_id, None)


@dataclass
class Batch:
    nonces: list[int]
    account: AccountNonces
    signed: int = 0

    def sent(self, tx_id: str, raw: bytes) -> None:
        self.account.in_flight[tx_id] = InFlight(self.nonces[self.signed], raw)
        self.signed += 1


class PermitNonces:
    """ERC-2612 nonces of one owner on one token, in the order the owner's transactions
    carry them.  A permit transaction that reverts or is lost leaves the token's nonce where
    it was, so the permits signed after it are void: ``void`` marks the count stale and the
    next permit waits for the ones already sent to settle, then re-reads the token."""

    def __init__(self, read: Callable[[], Awaitable[int]]):
        self._read = read
        self._next: int | None = None
        self.pending: set[str] = set()

    async def take(self, settle: Callable[[set[str]], Awaitable[None]]) -> int:
        if self._next is None:
            if self.pending:
                await settle(set(self.pending))
            self._next = await self._read()
        value = self._next
        self._next += 1
        return value

    def give_back(self, value: int) -> None:
        """The permit ``value`` was never broadcast."""
        if self._next == value + 1:
            self._next = value

    def sent(self, tx_id: str) -> None:
        self.pending.add(tx_id)

    def settled(self, tx_id: str, ok: bool) -> None:
        if tx_id in self.pending:
            self.pending.discard(tx_id)
            if not ok:
                self.void()

    def void(self) -> None:
        self._next = None
