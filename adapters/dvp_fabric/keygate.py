"""One transaction at a time per world-state key, until it commits.

Fabric endorses against committed state and marks a transaction invalid
(MVCC_READ_CONFLICT) when a key it read changed before it committed.  Two locks
by one party of one asset both read and write that party's balance, so a second
one endorsed before the first commits would be invalid.  The gate lets an
operation endorse only once every earlier transaction of this process that
touched one of its keys has committed (or failed); operations on other keys do
not wait, and the operation itself still returns as soon as it is broadcast.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager


class KeyGate:
    def __init__(self) -> None:
        self._locks: defaultdict[Hashable, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pending: dict[Hashable, asyncio.Future[object]] = {}

    @asynccontextmanager
    async def turn(self, keys: Iterable[Hashable]) -> AsyncIterator[Callable[[Awaitable[object]], None]]:
        """Hold ``keys`` (in a fixed order, so two turns never wait on each other in a
        cycle) until the previous transactions on them are settled; yields ``pending``,
        to call with the awaitable that settles when this turn's transaction commits."""
        ordered = sorted(set(keys), key=repr)
        for key in ordered:
            await self._locks[key].acquire()
        try:
            previous = [self._pending[k] for k in ordered if k in self._pending and not self._pending[k].done()]
            if previous:
                await asyncio.wait(previous)

            def pending(settled: Awaitable[object]) -> None:
                future = asyncio.ensure_future(settled)
                future.add_done_callback(_quiet)
                for key in ordered:
                    self._pending[key] = future

            yield pending
        finally:
            for key in reversed(ordered):
                self._locks[key].release()

    def cancel(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()


def _quiet(future: asyncio.Future[object]) -> None:
    """Consume the outcome: the watcher only orders transactions; wait_final reports failures."""
    if not future.cancelled():
        future.exception()
