"""One poller per node for every transaction waited on, instead of one per transaction.

With K swaps in flight, polling ``eth_getTransactionReceipt`` for each pending transaction
every 50 ms costs K requests per tick on the same 2 cores the nodes run on.  The watcher
reads the head once per tick and, per new block, all its receipts in one request
(``eth_getBlockReceipts``, standard JSON-RPC on geth and anvil), then wakes the waiters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Request = Callable[[str, list[Any]], Awaitable[Any]]


class ReceiptWatcher:
    def __init__(self, request: Request, poll: float):
        self._request = request
        self._poll = poll
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._seen: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._by_block = True

    async def receipt(self, tx_id: str, timeout: float) -> dict[str, Any] | None:
        """The receipt once mined, or None after ``timeout`` (not an error: the caller
        decides whether the transaction was dropped)."""
        found: dict[str, Any] | None = await self._request("eth_getTransactionReceipt", [tx_id])
        if found:
            return found
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_id.lower(), []).append(future)
        self._ensure_running()
        try:
            async with asyncio.timeout(timeout):
                mined: dict[str, Any] = await asyncio.shield(future)
            return mined
        except TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(tx_id.lower(), [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(tx_id.lower(), None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        errors = 0
        while self._waiters:
            try:
                head = int(await self._request("eth_blockNumber", []), 16)
                if self._seen is None:
                    # A waiter looked for its receipt just before registering: the blocks
                    # since then are scanned here, a missed one by the waiter's stall check.
                    self._seen = head - 2
                for number in range(self._seen + 1, head + 1):
                    await self._deliver(number)
                    self._seen = number
                errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors += 1
                if errors >= 20:
                    for futures in self._waiters.values():
                        for f in futures:
                            if not f.done():
                                f.set_exception(exc)
                    return
            await asyncio.sleep(self._poll)
        # Idle: start again from the head next time, never scan the blocks mined meanwhile.
        self._seen = None

    async def _deliver(self, number: int) -> None:
        if self._by_block:
            try:
                receipts = await self._request("eth_getBlockReceipts", [hex(number)])
            except Exception:
                self._by_block = False
            else:
                for r in receipts or []:
                    self._wake(r["transactionHash"].lower(), r)
                return
        for tx_id in list(self._waiters):
            r = await self._request("eth_getTransactionReceipt", [tx_id])
            if r:
                self._wake(tx_id, r)

    def _wake(self, tx_id: str, receipt: dict[str, Any]) -> None:
        for f in self._waiters.get(tx_id, []):
            if not f.done():
                f.set_result(receipt)
