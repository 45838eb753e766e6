"""Sign, journal, then broadcast: the one seam between an adapter's send path and the journal.

Each adapter builds and signs a step's transactions first, then awaits
:func:`before_broadcast` with every signed transaction (id and signed bytes) and only
then broadcasts them.  The orchestrator's journaled ``transact`` sets the hook for the
step it sends (:func:`journaling`): it writes one ``signed`` row per transaction, in one
commit, before the hook returns.  So whatever the kill point, every transaction the party
ever broadcast is in its journal, and a resumed driver re-broadcasts the same bytes
(:meth:`dvp.adapter.LedgerAdapter.rebroadcast`) instead of building a new transaction.
Outside a journaled step (set-up, issuing) the hook is unset and nothing is written.

:func:`fence` is the other half, for a send that is *not* journaled bytes inside a journaled
step (an EVM filler spending a nonce a failed broadcast left unused, or a transaction signed
again because the node said its nonce was taken): the adapter awaits it first, and it proves
that this driver still holds the swap's lease (on PostgreSQL: a round trip on the journal's
session, whose end released the lease), or raises JournalUnavailable.  So a driver that lost
its lease while between journaling and broadcasting (another worker took the swap over)
sends at most the journaled bytes, which the new driver re-broadcasts anyway, and nothing else.

:func:`reached` is the crash drills' seam at each send boundary (``signed``, ``journaled``,
``between`` two transactions of one submission, ``broadcast``); unset in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class SignedTx:
    """One signed transaction, not yet broadcast.

    ``raw`` is what :meth:`~dvp.adapter.LedgerAdapter.rebroadcast` sends again, hex: the
    signed transaction (EVM, UTXO) or the prepared envelope (Fabric).  ``purpose`` is a
    :class:`dvp.models.TxPurpose` value, ``payer`` the party whose key signed (and pays)."""

    tx_id: str
    raw: str
    purpose: str
    payer: str | None


class Boundary(StrEnum):
    """The send boundaries a crash drill can stop at (:func:`reached`)."""

    SIGNED = "signed"  # every transaction of the step signed, nothing journaled or sent
    JOURNALED = "journaled"  # the signed bytes committed to the journal, nothing sent
    BETWEEN = "between"  # the first transaction of a multi-transaction submission sent, not the next
    BROADCAST = "broadcast"  # every transaction of the step sent, their `submitted` rows not written


Hook = Callable[[list[SignedTx]], Awaitable[None]]
Fence = Callable[[], Awaitable[None]]
_hook: ContextVar[Hook | None] = ContextVar("dvp_sendlog_hook", default=None)
_fence: ContextVar[Fence | None] = ContextVar("dvp_sendlog_fence", default=None)

# A test seam, unset in production: crash drills (dvp.testing.crash) set it to kill the
# process at a chosen send boundary.
at_boundary: Callable[[Boundary], None] | None = None


def reached(boundary: Boundary) -> None:
    """An adapter's send path passed ``boundary`` (a no-op unless a crash drill listens)."""
    if at_boundary is not None:
        at_boundary(boundary)


async def before_broadcast(signed: list[SignedTx]) -> None:
    """Journal ``signed`` (all of one submission, in the order they must execute) before any
    of them is broadcast; returns once they are durable.  A no-op outside a journaled step."""
    reached(Boundary.SIGNED)
    hook = _hook.get()
    if hook is not None:
        await hook(signed)
        reached(Boundary.JOURNALED)


async def fence() -> None:
    """Before a send that is not journaled signed bytes: returns only while this driver still
    holds its swap's lease (JournalUnavailable once it lost it).  A no-op outside a journaled step."""
    check = _fence.get()
    if check is not None:
        await check()


def sent(k: int, total: int) -> None:
    """The ``k``-th (from 1) of ``total`` transactions of one submission was broadcast."""
    reached(Boundary.BROADCAST if k == total else Boundary.BETWEEN)


@contextmanager
def journaling(hook: Hook, lease_held: Fence | None = None) -> Iterator[None]:
    """Within this block (one step's send), :func:`before_broadcast` awaits ``hook`` and
    :func:`fence` awaits ``lease_held``."""
    token, fence_token = _hook.set(hook), _fence.set(lease_held)
    try:
        yield
    finally:
        _fence.reset(fence_token)
        _hook.reset(token)
