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

Deadline first.  A swap that has started (a lock's terms journaled) has a clock running on
the ledgers; one still queued has none.  So each poll takes the started swaps first, the one
whose nearest expiry comes soonest first (:func:`order`), and a started swap is taken
whatever the worker's ``concurrency`` (which caps only the swaps it starts afresh) and
tried again at every poll when another worker held it, not after :data:`BUSY_RECHECK`: an
unfinished swap with a step due is never starved by new submissions.  Takeover time: a
started swap whose lease is free (its worker died: at once on a live host, within
:data:`dvp.journal_pg.SESSION_DEAD_AFTER` for a vanished one) is taken at the next poll
of a worker that may send for its accounts (the one holding them, or any when none does);
the others leave it alone meanwhile instead of failing SwapBusy on it at every poll.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .journal import SwapRecord
from .orchestrator import Orchestrator, SwapResult, Unfinished
from .state import LegName, expiry_of

Report = Callable[["SwapResult | Unfinished"], None]
RETRY_AFTER = 5.0  # seconds before a swap that failed here (a ledger error) is tried again
BUSY_RECHECK = 2.0  # seconds before a queued swap another worker held is tried again (so the next ones get tried)


def started(record: SwapRecord) -> bool:
    """Whether the swap has begun on a ledger (its clock runs): a lock's terms or an order journaled."""
    data = record.data
    return any(data.get(k) for k in ("terms_security", "terms_cash", "order_id"))


async def seconds_left(orch: Orchestrator, records: list[SwapRecord]) -> dict[str, float]:
    """For each started HTLC swap of ``records``: the seconds before its nearest journaled
    expiry, by each ledger's own clock (read once per ledger; negative once passed; a ledger
    that cannot be read counts as now, so its swaps come first)."""
    clocks: dict[str, Any] = {}
    left: dict[str, float] = {}
    for record in records:
        if record.kind != "htlc":
            continue
        trade = record.spec.get("trade", {})
        for leg in (LegName.SECURITY, LegName.CASH):
            expiry = expiry_of(record.data, leg)
            ledger = str((trade.get(leg.value) or {}).get("ledger"))
            adapter = orch.ledgers.get(ledger)
            if expiry is None or adapter is None:
                continue
            if ledger not in clocks:
                try:
                    clocks[ledger] = await adapter.now()
                except errors.DvpError:
                    clocks[ledger] = None
            now = clocks[ledger]
            secs = adapter.seconds_left(now, expiry) if now is not None else -math.inf
            left[record.id] = min(left.get(record.id, math.inf), secs)
    return left


def accounts_of(record: SwapRecord) -> frozenset[tuple[str, str]]:
    """The (ledger, party) accounts the swap sends from (as :meth:`Orchestrator.drive_with` leases them)."""
    trade = record.spec.get("trade", {})
    parties = (trade.get("seller", "seller"), trade.get("buyer", "buyer"))
    return frozenset(
        (str((trade.get(leg) or {}).get("ledger")), str(p)) for leg in ("security", "cash") for p in parties
    )


def order(records: list[SwapRecord], left: dict[str, float]) -> list[SwapRecord]:
    """Started swaps first, the nearest deadline first (a started swap without an expiry, a
    single-ledger order, after those with one), then the queued ones in queueing order."""
    return sorted(
        records,
        key=lambda r: (0, left.get(r.id, math.inf), r.created) if started(r) else (1, 0.0, r.created),
    )


async def work(
    orch: Orchestrator, report: Report, *, concurrency: int = 16, poll: float = 1.0, idle_exit: float | None = None
) -> int:
    """Drive unfinished swaps, starting at most ``concurrency`` queued ones at once (started
    swaps are taken whatever the count, the nearest deadline first), looking for more every ``poll``
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
            pending = [r for r in orch.journal.swaps(unfinished=True) if not r.data.get("side")]
            waiting = [r for r in pending if r.id not in running]
            elsewhere = orch.journal.held_elsewhere([r.id for r in waiting if started(r)])
            waiting = [r for r in waiting if r.id not in elsewhere]  # being driven by another worker
            left = await seconds_left(orch, [r for r in waiting if started(r)])
            # No swap whose accounts another worker holds (it would refuse them; the one holding
            # them drives it or will: a started one too, each poll, see the module's text), and at
            # most one set of accounts not held here yet per poll among the queued ones, so that
            # workers starting together spread over the parties instead of the first one taking them all.
            spread = orch.journal.leases_accounts
            mine = set(orch.journal.accounts_held()) if spread else set()
            theirs = orch.journal.accounts_elsewhere({a for r in waiting for a in accounts_of(r)}) if spread else set()
            new_set: frozenset[tuple[str, str]] | None = None
            now = time.monotonic()
            for record in order(waiting, left):
                fresh = not started(record)
                if fresh and len(running) >= concurrency:
                    break  # started swaps sort first: the rest are queued ones
                if now - failed.get(record.id, -RETRY_AFTER) < RETRY_AFTER:
                    continue
                if fresh and now - busy.get(record.id, -BUSY_RECHECK) < BUSY_RECHECK:
                    continue
                if spread:
                    accounts = accounts_of(record)
                    if accounts & theirs:  # the worker holding them drives it, or will
                        continue
                    if fresh and not accounts <= mine:
                        if new_set is not None and accounts != new_set:
                            continue
                        new_set = accounts
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
    afresh: a reconnection never happens behind a running drive.  A server that cannot be
    reached when the worker starts (restarting, say) is waited for the same way.  The swaps
    this worker finished; JournalUnavailable once the server stays away longer than ``reconnect``."""
    finished = 0

    def counted(item: SwapResult | Unfinished) -> None:
        nonlocal finished
        finished += not isinstance(item, Unfinished)
        report(item)

    deadline, waiting = time.monotonic() + reconnect, False
    while True:
        try:
            orch = open_orch()
        except errors.JournalUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            if not waiting:
                say(f"worker: {exc}; trying each second for up to {reconnect:g} s")
            waiting = True
            await asyncio.sleep(1.0)
            continue
        try:
            await work(orch, counted, **options)
            return finished
        except errors.JournalUnavailable as exc:
            say(f"worker: {exc}; opening the journal again")
        finally:
            orch.journal.close()
        deadline, waiting = time.monotonic() + reconnect, True
        await asyncio.sleep(1.0)
