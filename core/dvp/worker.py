"""`dvp worker`: drive every unfinished swap of a shared journal, and keep taking new ones.

Any number of workers, on any hosts, share one journal (PostgreSQL; an SQLite journal works
on one host).  A worker claims a swap with the journal's lease (a session advisory lock on
PostgreSQL, :mod:`dvp.journal_pg`): whoever takes it drives it, the others skip it at once
and look again at their next poll.  A worker that dies loses its leases with its session,
so another takes its swaps over at its next poll after the lease is free (a swap found
held by another worker is tried again after :data:`BUSY_RECHECK` seconds, so meanwhile the
next ones in the queue are tried: workers spread over the queue instead of all asking for
its head).  Swaps queued by
`dvp swap --submit` are unfinished swaps like any other; an agent's side of a two-agent swap
is its agent's and is left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .orchestrator import Orchestrator, SwapResult, Unfinished

Report = Callable[["SwapResult | Unfinished"], None]
RETRY_AFTER = 5.0  # seconds before a swap that failed here (a ledger error) is tried again
BUSY_RECHECK = 2.0  # seconds before a swap another worker held is tried again (so the next ones get tried)


async def work(
    orch: Orchestrator, report: Report, *, concurrency: int = 16, poll: float = 1.0, idle_exit: float | None = None
) -> int:
    """Drive unfinished swaps, at most ``concurrency`` at once, looking for more every ``poll``
    seconds; with ``idle_exit``, return once no unfinished swap has been seen for that long.
    The number of swaps this worker finished.  JournalUnavailable ends it (exit 9)."""
    running: dict[str, asyncio.Task[SwapResult | Unfinished | None]] = {}
    failed: dict[str, float] = {}  # swap id -> when it failed here
    busy: dict[str, float] = {}  # swap id -> when another worker held it
    finished = 0
    idle_since: float | None = None

    async def one(swap_id: str) -> SwapResult | Unfinished | None:
        try:
            return await orch.drive_unfinished(swap_id)
        except errors.JournalUnavailable:
            raise
        except errors.DvpError as exc:
            return Unfinished(swap_id, exc)

    try:
        while True:
            for swap_id, task in list(running.items()):
                if task.done():
                    del running[swap_id]
                    result = task.result()  # JournalUnavailable propagates: the session and its leases are gone
                    if result is None:  # another worker finished it meanwhile
                        continue
                    if isinstance(result, Unfinished):
                        if isinstance(result.error, errors.SwapBusy):  # another worker's: not ours to report
                            busy[swap_id] = time.monotonic()
                        else:
                            failed[swap_id] = time.monotonic()
                            report(result)
                    else:
                        finished += 1
                        report(result)
            now = time.monotonic()
            pending = [r for r in orch.journal.swaps(unfinished=True) if not r.data.get("side")]
            for record in pending:
                if len(running) >= concurrency:
                    break
                if (
                    record.id not in running
                    and now - failed.get(record.id, -RETRY_AFTER) >= RETRY_AFTER
                    and now - busy.get(record.id, -BUSY_RECHECK) >= BUSY_RECHECK
                ):
                    running[record.id] = asyncio.create_task(one(record.id))
            if pending or running:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif idle_exit is not None and now - idle_since >= idle_exit:
                return finished
            await asyncio.sleep(poll)
    finally:
        for task in running.values():
            task.cancel()
        if running:
            await asyncio.gather(*running.values(), return_exceptions=True)


async def run_worker(
    open_orch: Callable[[], Orchestrator],
    report: Report,
    *,
    reconnect: float = 60.0,
    say: Callable[[str], None] = lambda m: None,
    **options: Any,
) -> int:
    """:func:`work` on a journal opened by ``open_orch``; when the journal's server is lost
    (JournalUnavailable), every drive of that session is stopped first (their leases went
    with the session), then the journal is opened again, retried each second for up to
    ``reconnect`` seconds, and the work goes on in the new session, which takes its leases
    afresh: a reconnection never happens behind a running drive.  The swaps this worker
    finished; JournalUnavailable once the server stays away longer than ``reconnect``."""
    finished = 0

    def counted(item: SwapResult | Unfinished) -> None:
        nonlocal finished
        finished += not isinstance(item, Unfinished)
        report(item)

    while True:
        orch = open_orch()
        try:
            await work(orch, counted, **options)
            return finished
        except errors.JournalUnavailable as exc:
            say(f"worker: {exc}; opening the journal again")
        finally:
            orch.journal.close()
        deadline = time.monotonic() + reconnect
        while True:
            await asyncio.sleep(1.0)
            try:
                orch = open_orch()
            except errors.JournalUnavailable:
                if time.monotonic() >= deadline:
                    raise
                continue
            orch.journal.close()  # reachable again: the outer loop opens the one it works with
            break
