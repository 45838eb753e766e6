"""`dvp worker`'s loop (dvp.worker.work) on the in-memory ledgers, on each journal backend: two
workers (two journal sessions, as two processes would have) share one journal's queue of
submitted swaps; every swap is driven to settlement by exactly one of them, and both get work
(a swap another worker holds is skipped for a while, so the next ones in the queue are tried)."""

from __future__ import annotations

import asyncio
import contextlib

from dvp import errors
from dvp.journal import Journal, SwapRecord
from dvp.lease import is_url
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, SwapSpec, Trade
from dvp.orchestrator import Orchestrator, SwapResult, Unfinished
from dvp.worker import accounts_of, order, seconds_left, started, work

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


async def test_a_started_swap_is_taken_first_and_past_the_concurrency(ledgers, journal_target):
    """Deadline first: a swap whose first lock is on the ledger (its clock runs) and whose
    driver stopped is taken before the swaps queued ahead of it, even by a worker whose
    ``concurrency`` the queued ones would fill: new submissions never starve it."""
    orch = Orchestrator(ledgers, ASSETS, Journal(journal_target))
    queued = [await orch.submit(spec()) for _ in range(3)]
    late = await orch.submit(spec())
    ledgers["b"].fail_next["lock"] = errors.LedgerUnavailable("ledger 'b' unreachable")
    (stopped,) = await orch.resume_each([late])  # the first lock sent, the second refused: unfinished
    assert isinstance(stopped, Unfinished), stopped
    record = orch.journal.get(late)
    assert record is not None and started(record) and not any(started(r) for r in map(orch.journal.get, queued))
    left = await seconds_left(orch, [record])
    assert 0 < left[late] <= 100, left  # the first leg's expiry, by ledger a's clock
    assert [r.id for r in order([orch.journal.get(i) for i in [*queued, late]], left)] == [late, *queued]

    reports: list[SwapResult | Unfinished] = []
    async with asyncio.timeout(60):
        done = await work(orch, reports.append, concurrency=1, poll=0.05, idle_exit=0.3)
    assert done == 4 and [r.swap_id for r in reports][0] == late, [r.swap_id for r in reports]
    assert {r.outcome for r in orch.journal.swaps()} == {"settled"}
    orch.journal.close()


def test_order_puts_the_nearest_deadline_first():
    def record(swap_id: str, created: float, data: dict) -> SwapRecord:
        return SwapRecord(swap_id, "htlc", {}, data, None, None, created, created)

    terms = {"terms_security": {"expiry": 1}}
    records = [
        record("queued-1", 1.0, {}),
        record("far", 2.0, terms),
        record("near", 3.0, terms),
        record("queued-0", 0.5, {}),
        record("order", 4.0, {"order_id": "x"}),
    ]
    got = [r.id for r in order(records, {"far": 50.0, "near": -3.0})]
    assert got == ["near", "far", "order", "queued-0", "queued-1"]


async def test_held_elsewhere_names_the_swaps_another_session_drives(journal_target):
    first, second = Journal(journal_target), Journal(journal_target)
    try:
        with first.lease("swap-a"):
            held = second.held_elsewhere(["swap-a", "swap-b"])
            if is_url(journal_target):  # its own session's lease is not elsewhere (an flock cannot tell)
                assert first.held_elsewhere(["swap-a", "swap-b"]) == set()
        after = second.held_elsewhere(["swap-a", "swap-b"])
    finally:
        first.close()
        second.close()
    assert held == {"swap-a"} and after == set(), (held, after)


async def test_held_elsewhere_reads_pg_locks_once_for_all_the_swaps(pg_url):
    """The worker asks at every poll about every started swap: one read of ``pg_locks`` answers
    for all of them (before, one read per swap id)."""
    first, second = Journal(pg_url), Journal(pg_url)
    ids = [f"swap-{i}" for i in range(5)]
    reads: list[str] = []
    rows = second._rows

    def counted(sql: str, *args, **kw):
        if "pg_locks" in sql:
            reads.append(sql)
        return rows(sql, *args, **kw)

    try:
        second._rows = counted  # type: ignore[method-assign]
        with first.lease("swap-1"), first.lease("swap-3"):
            assert second.held_elsewhere(ids) == {"swap-1", "swap-3"}
        assert len(reads) == 1, reads
        assert second.held_elsewhere([]) == set() and len(reads) == 1  # nothing asked, nothing read
    finally:
        first.close()
        second.close()


def test_the_bench_party_pairs_are_the_evm_testnets_dev_accounts():
    """`dvp bench --party-pairs` names its parties (dvp.bench.runner.party_pair) as the EVM
    launcher names its extra dev accounts, each its own key, every one funded by anvil."""
    from dvp.bench.runner import MAX_PARTY_PAIRS, party_pair
    from dvp_ethereum.launcher import ACCOUNTS, anvil_args, dev_keys

    keys = dev_keys()
    names = [name for i in range(MAX_PARTY_PAIRS) for name in party_pair(i)]
    assert names[:2] == ["seller", "buyer"] and set(names) <= set(keys), (names, sorted(keys))
    assert len(set(keys.values())) == len(keys) <= ACCOUNTS
    assert anvil_args(1, 1, 1.0)[anvil_args(1, 1, 1.0).index("--accounts") + 1] == str(ACCOUNTS)


async def test_workers_on_postgres_spread_over_party_pairs(pg_url):
    """Two party pairs' swaps queued in turn, two workers on one PostgreSQL journal: a worker
    takes at most one set of accounts it does not hold yet per poll, and none another worker
    holds, so each worker ends up driving one party pair's swaps (before, the first to poll
    took swaps of both pairs, so held every account, and the other found them all busy)."""
    from dvp.testing.memory import MemoryConfig, MemoryLedger

    config = MemoryConfig(parties=("issuer", "seller", "buyer", "seller-2", "buyer-2"))
    ledgers = {"a": MemoryLedger("a", config), "b": MemoryLedger("b", config)}
    for seller, buyer in (("seller", "buyer"), ("seller-2", "buyer-2")):
        ledgers["a"].balances[(seller, "BOND")] = 100
        ledgers["b"].balances[(buyer, "EUR")] = 10_000
    first = Orchestrator(ledgers, ASSETS, Journal(pg_url))
    second = Orchestrator(ledgers, ASSETS, Journal(pg_url))
    other = spec().model_copy(
        update={"trade": spec().trade.model_copy(update={"seller": "seller-2", "buyer": "buyer-2"})}
    )
    ids = {await first.submit(spec() if i % 2 == 0 else other): i % 2 for i in range(8)}
    lock = ledgers["a"].lock

    async def slow_lock(terms):
        await asyncio.sleep(0.2)
        return await lock(terms)

    ledgers["a"].lock = slow_lock
    reports: dict[str, list[SwapResult | Unfinished]] = {"first": [], "second": []}
    async with asyncio.timeout(60):
        done = await asyncio.gather(
            work(first, reports["first"].append, concurrency=4, poll=0.05, idle_exit=0.3),
            work(second, reports["second"].append, concurrency=4, poll=0.05, idle_exit=0.3),
        )
    assert sorted(done) == [4, 4], done
    for rs in reports.values():  # one party pair each
        assert len({ids[r.swap_id] for r in rs}) == 1, [(r.swap_id, ids[r.swap_id]) for r in rs]
    assert {r.outcome for r in first.journal.swaps()} == {"settled"}
    first.journal.close()
    second.journal.close()


async def test_a_started_swap_whose_accounts_another_worker_holds_is_left_to_it(ledgers, pg_url):
    """A started swap is taken first, but not while another worker holds its accounts (that
    worker drives a swap of the same parties, and will drive this one): before, it was tried at
    every poll and failed SwapBusy each time.  Once its holder dies (its session, so its
    leases, gone) the swap is taken at the next poll."""
    orch = Orchestrator(ledgers, ASSETS, Journal(pg_url))
    holder = Journal(pg_url)  # another worker's session
    late = await orch.submit(spec())
    ledgers["b"].fail_next["lock"] = errors.LedgerUnavailable("ledger 'b' unreachable")
    (stopped,) = await orch.resume_each([late])  # the first lock sent, the second refused: unfinished
    assert isinstance(stopped, Unfinished), stopped
    record = orch.journal.get(late)
    assert record is not None and started(record)
    polls: list[int] = []
    tried: list[int] = []  # the poll at which each drive of the swap began
    swaps, drive = orch.journal.swaps, orch.drive_unfinished

    def counted_swaps(**kw):
        polls.append(1)
        return swaps(**kw)

    async def counted_drive(swap_id):
        tried.append(len(polls))
        return await drive(swap_id)

    orch.journal.swaps, orch.drive_unfinished = counted_swaps, counted_drive  # type: ignore[method-assign]
    reports: list[SwapResult | Unfinished] = []
    stack = contextlib.ExitStack()
    stack.enter_context(holder.account_lease(sorted(accounts_of(record))))  # it drives another swap of theirs
    try:
        async with asyncio.timeout(60):
            worker = asyncio.create_task(work(orch, reports.append, concurrency=1, poll=0.05, idle_exit=0.3))
            while len(polls) < 10:
                await asyncio.sleep(0.05)
            assert tried == [], tried  # left to the worker holding its accounts
            stack.enter_context(holder.lease(late))  # which takes the swap, then dies
            holder.close()
            died = len(polls)
            assert await worker == 1
    finally:
        with contextlib.suppress(errors.JournalUnavailable):
            stack.close()
        orch.journal.close()
    assert tried and tried[0] - died <= 1, (died, tried)  # taken over at the next poll
    assert [(r.swap_id, r.outcome) for r in reports] == [(late, "settled")], reports


async def test_a_worker_waits_for_a_journal_it_cannot_reach_at_start(ledgers, tmp_path):
    """`dvp worker` started while the server restarts: opening the journal fails, it tries
    again each second (within --reconnect) and then works; with --reconnect 0 it gives up at once."""
    from dvp.worker import run_worker

    target = str(tmp_path / "journal.sqlite")
    attempts: list[int] = []

    def open_orch() -> Orchestrator:
        attempts.append(1)
        if len(attempts) <= 2:
            raise errors.JournalUnavailable("journal: cannot reach postgresql://... (restarting)")
        return Orchestrator(ledgers, ASSETS, Journal(target))

    said: list[str] = []
    async with asyncio.timeout(30):
        assert await run_worker(open_orch, lambda r: None, reconnect=10, say=said.append, poll=0.05, idle_exit=0.1) == 0
    assert len(attempts) == 3 and len(said) == 1 and "trying each second" in said[0], (attempts, said)
    attempts.clear()
    async with asyncio.timeout(5):
        try:
            await run_worker(open_orch, lambda r: None, reconnect=0, poll=0.05, idle_exit=0.1)
        except errors.JournalUnavailable:
            pass
        else:
            raise AssertionError("--reconnect 0 waited")
    assert len(attempts) == 1
