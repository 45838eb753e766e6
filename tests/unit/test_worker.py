"""`dvp worker`'s loop (dvp.worker.work) on the in-memory ledgers, on each journal backend: two
workers (two journal sessions, as two processes would have) share one journal's queue of
submitted swaps; every swap is driven to settlement by exactly one of them, and both get work
(a swap another worker holds is skipped for a while, so the next ones in the queue are tried)."""

from __future__ import annotations

import asyncio

from dvp.journal import Journal, is_url
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, SwapSpec, Trade
from dvp.orchestrator import Orchestrator, SwapResult, Unfinished
from dvp.worker import work

ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]
SWAPS = 8


def spec() -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(holder_timeout=100, counter_timeout=50, reaction_window=5),
        fast_forward=True,
    )


async def test_two_workers_share_a_queue_each_swap_driven_once(ledgers, journal_target):
    first = Orchestrator(ledgers, ASSETS, Journal(journal_target))
    second = Orchestrator(ledgers, ASSETS, Journal(journal_target))
    ids = [await first.submit(spec()) for _ in range(SWAPS)]
    lock = ledgers["a"].lock

    async def slow_lock(terms):  # a swap lasts a few polls, as on a real ledger
        await asyncio.sleep(0.2)
        return await lock(terms)

    ledgers["a"].lock = slow_lock
    assert ledgers["a"].sent == [] and ledgers["b"].sent == []  # submitted, not driven
    reports: dict[str, list[SwapResult | Unfinished]] = {"first": [], "second": []}
    async with asyncio.timeout(60):
        done = await asyncio.gather(
            work(first, reports["first"].append, concurrency=2, poll=0.05, idle_exit=0.3),
            work(second, reports["second"].append, concurrency=2, poll=0.05, idle_exit=0.3),
        )
    assert sum(done) == SWAPS, done
    if not is_url(journal_target):  # SQLite: both workers drove some
        assert min(done) > 0, done
    # PostgreSQL: every swap sends for the same two parties, whose accounts one process (here
    # one journal session) holds at a time (Journal.account_lease): the other worker finds
    # them busy and skips, until the holder is idle.
    driven = [r.swap_id for rs in reports.values() for r in rs if isinstance(r, SwapResult)]
    assert sorted(driven) == sorted(ids)  # each exactly once
    assert not [r for rs in reports.values() for r in rs if isinstance(r, Unfinished)]  # busy skips are not reported
    assert {r.outcome for r in first.journal.swaps()} == {"settled"}
    for name in ("a", "b"):  # one lock and one claim per swap on each ledger: nothing sent twice
        assert ledgers[name].sent.count("lock") == SWAPS and ledgers[name].sent.count("claim") == SWAPS, ledgers[
            name
        ].sent
    first.journal.close()
    second.journal.close()
