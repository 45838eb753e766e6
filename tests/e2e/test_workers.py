"""Workers on one PostgreSQL journal (issue 20, item 4): swaps queued with `dvp swap --submit`
are driven by three `dvp worker` processes, one of them SIGKILLed while it drives some; its
swaps are taken over by the others; then the PostgreSQL server is restarted once, and the two
left stop their drives, open the journal again and go on.  Counted at the end: every swap
ended (0 lost, 0 stuck), none with a principal loss, value conserved, each party's balances
moved by exactly one trade per settled swap.

Every swap here sends for the same two parties: on a PostgreSQL journal their accounts are
held by one worker process at a time (Journal.account_lease), so no two processes allocate
one account's nonces or coins at once (before that lease, 1 of 5 runs ended swaps refunded,
aborted and lost to that race).  A swap whose worker is killed can still run out of time, so
refunded or aborted swaps are accepted (at least half must settle), and the swaps do not
fast-forward the dev chains' clocks: one swap's refund must not expire every other's locks.
Also here: the 300-swap run (`matrix`) and bad journals on the commands that write."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from dvp.journal import SCHEMA_VERSION, Journal

from ..cli_helpers import DVP, dvp, one_line_error
from ..scenarios import SETTLED, assert_conserved, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS, Pair
from ..unit.test_journal import _closed_port
from .test_crash_resume import htlc_txs, ledger_counts

PAIR = CROSS_PAIRS[0]  # evm-a/evm-b
SWAPS = 10
WORKERS = 3


def leases_of(url: str, pid: int) -> int:
    """How many swap leases (advisory locks) the worker process ``pid`` holds now."""
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE %s",
            (f"dvp pid {pid} on %",),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_workers_drive_every_submitted_swap_once_a_killed_one_taken_over(
    ledger_set, cli_env, pg_server, pg_url, tmp_path
):
    env = {**cli_env, "DVP_JOURNAL": pg_url}
    before = await snapshot(ledger_set)
    scenario = tmp_path / "swap.json"
    spec = spec_for(PAIR).model_copy(update={"fast_forward": False})
    scenario.write_text(spec.model_dump_json())
    submitted = dvp(["swap", "--submit", str(scenario)], env)  # the command line queues one...
    assert submitted.returncode == 0, submitted.stderr
    ids = {submitted.stdout.strip()}
    orch = ledger_set.orchestrator(pg_url)  # ...and the API the rest, faster
    for _ in range(SWAPS - 1):
        ids.add(await orch.submit(spec))
    assert len(ids) == SWAPS and len(orch.journal.swaps(unfinished=True)) == SWAPS

    workers = [
        subprocess.Popen(
            [DVP, "worker", "--concurrency", "3", "--poll", "0.5", "--exit-when-idle", "4"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    try:
        victim, deadline = None, time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:  # kill a worker in the middle of its swaps
            victim = next((w for w in workers if leases_of(pg_url, w.pid) >= 1), None)
            time.sleep(0.2)
        assert victim is not None, "no worker took a swap within 120 s"
        held = leases_of(pg_url, victim.pid)
        victim.kill()
        victim.wait(timeout=10)
        time.sleep(1.0)
        pg_server.restart()  # and the server itself, once: the others reconnect and go on
        outputs = [w.communicate(timeout=400) for w in workers if w is not victim]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, (out, err) in zip([w for w in workers if w is not victim], outputs, strict=True):
        assert w.returncode == 0, (w.returncode, out, err)
    assert all("opening the journal again" in err for _, err in outputs), [err for _, err in outputs]

    journal = Journal(pg_url)
    try:
        records = {r.id: r for r in journal.swaps()}
        steps = [s for i in ids for s in journal.steps(i)]
    finally:
        journal.close()
    assert set(records) == ids, "a swap was lost or invented"
    outcomes = Counter(r.outcome for r in records.values())
    assert None not in outcomes and set(outcomes) <= {"settled", "refunded", "aborted"}, "\n".join(
        [f"{i}: {r.outcome} {r.detail}" for i, r in records.items() if r.outcome != "settled"]
        + [line for _, err in outputs for line in err.splitlines() if "error" in line]
    )
    after = await snapshot(ledger_set)
    assert_conserved(before, after, steps)
    assert changes(before, after, PAIR, steps) == {k: v * outcomes["settled"] for k, v in SETTLED.items()}, held
    assert outcomes["settled"] >= SWAPS // 2, outcomes


LONG_PAIRS = CROSS_PAIRS  # evm-a/evm-b and evm-a/btc, half the swaps each
LONG_SWAPS = 300
KILL_EVERY = 5.0  # seconds between two SIGKILLs of a random worker
MAX_KILLS = 12
LONG_DEADLINE = 1800.0
# Holder's and counter leg's expiries, seconds: sized for a queue of 150 swaps per party
# pair, and the tests' usual 60 s/30 s (where a swap whose drivers are killed must be taken
# over within its 30 s claim window: the workers take started swaps first, nearest deadline
# first, past their concurrency; before that, one run ended with a principal loss).
LONG_TIMEOUTS = [(180, 90), (60, 30)]


@pytest.mark.slow
@pytest.mark.matrix
@pytest.mark.timeout(LONG_DEADLINE + 600)
@pytest.mark.parametrize("timeouts", LONG_TIMEOUTS, ids=lambda t: f"{t[0]}s-{t[1]}s")
async def test_three_workers_drive_300_swaps_while_killed_and_the_server_restarted(
    ledger_set, cli_env, pg_server, pg_url, tmp_path, timeouts
):
    """Issue 20's worker run: 300 swaps queued on one PostgreSQL journal (evm-a/evm-b and
    evm-a/btc), three workers; a bounded loop SIGKILLs a random worker every few seconds and
    starts a new one, and the server is restarted once.  Counted on the ledgers at the end:
    0 swaps lost, 0 stuck, 0 transactions sent twice (each party's mined EVM nonces are exactly
    the transactions journaled final; each btc lock script paid once and spent once), value
    conserved, balances moved by one trade per settled swap."""
    env = {**cli_env, "DVP_JOURNAL": pg_url}
    before = await snapshot(ledger_set)
    sent_before = {k: v for pair in LONG_PAIRS for k, v in (await ledger_counts(ledger_set, pair)).items()}
    orch = ledger_set.orchestrator(pg_url)
    kinds: dict[str, Pair] = {}
    for i in range(LONG_SWAPS):
        pair = LONG_PAIRS[i % len(LONG_PAIRS)]
        # No fast-forward: one swap's refund must not expire every other swap's locks.
        spec = spec_for(pair, holder_timeout=timeouts[0], counter_timeout=timeouts[1])
        kinds[await orch.submit(spec.model_copy(update={"fast_forward": False}))] = pair
    orch.journal.close()

    def start(n: int) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"worker-{n}.log"
        with open(log, "w") as out:  # a file, not a pipe: 300 results would fill a pipe nobody reads
            proc = subprocess.Popen(
                [DVP, "worker", "--concurrency", "25", "--poll", "0.5", "--exit-when-idle", "8"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        return proc, log

    started, started_wall = time.monotonic(), time.time()
    workers = [start(n) for n in range(WORKERS)]
    kills, restarted, rng = 0, False, random.Random(20)
    try:
        while kills < MAX_KILLS and time.monotonic() - started < LONG_DEADLINE:
            time.sleep(KILL_EVERY)
            if _unfinished(pg_url) == 0:
                break
            alive = [w for w in workers if w[0].poll() is None]
            victim = rng.choice(alive)
            victim[0].kill()
            victim[0].wait(timeout=10)
            kills += 1
            if kills == 3 and not restarted:
                pg_server.restart()  # before the new worker starts: a worker that cannot reach it at start exits 9
                restarted = True
            workers.append(start(len(workers)))
        for proc, _ in workers:
            if proc.poll() is None:
                proc.wait(timeout=max(60.0, LONG_DEADLINE - (time.monotonic() - started)))
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    logs = {log.name: log.read_text() for _, log in workers}
    for proc, log in workers:
        assert proc.returncode in (0, -signal.SIGKILL), (log.name, proc.returncode, logs[log.name][-2000:])

    journal = Journal(pg_url)
    try:
        records = {r.id: r for r in journal.swaps()}
        steps = {i: journal.steps(i) for i in kinds}
    finally:
        journal.close()
    every_step = [s for rows in steps.values() for s in rows]
    assert set(records) == set(kinds), "a swap was lost or invented"
    outcomes = Counter(r.outcome for r in records.values())
    print(
        f"300 swaps, 3 workers, {timeouts} s expiries, {kills} SIGKILLs, server restarted: {dict(outcomes)} in {elapsed:.0f} s"
    )
    assert None not in outcomes and set(outcomes) <= {"settled", "refunded", "aborted"}, "\n".join(
        f"{i}: {r.outcome} {r.detail}\n    " + _steps_line(steps[i], started_wall)
        for i, r in records.items()
        if r.outcome != "settled"
    )
    assert kills >= 3 and restarted, (kills, restarted)

    after = await snapshot(ledger_set)
    assert_conserved(before, after, every_step)
    settled = Counter(kinds[i].id for i, r in records.items() if r.outcome == "settled")
    for pair in LONG_PAIRS:
        moved = changes(before, after, pair, every_step)
        assert moved["seller_cash"] == SETTLED["seller_cash"] * settled[pair.id], (pair.id, moved, settled)
        assert moved["buyer_cash"] == SETTLED["buyer_cash"] * settled[pair.id], (pair.id, moved, settled)
    moved = changes(before, after, LONG_PAIRS[0], every_step)
    assert moved["seller_security"] == SETTLED["seller_security"] * sum(settled.values()), (moved, settled)

    # No transaction sent twice, counted on the ledgers.
    finals = {s.tx_id: s for s in every_step if s.phase == "final"}
    sent_after = {k: v for pair in LONG_PAIRS for k, v in (await ledger_counts(ledger_set, pair)).items()}
    journaled = Counter((s.ledger, s.detail["payer"]) for s in finals.values() if s.ledger != "btc")
    assert {k: sent_after[k] - sent_before[k] for k in sent_after} == {k: journaled[k] for k in sent_after}
    for swap_id, pair in kinds.items():
        if pair.cash != "btc" or records[swap_id].data.get("lock_cash") is None:
            continue
        # Paid once and spent once (claimed or refunded), or never paid (a lock the node refused).
        locks, spends = await htlc_txs(ledger_set, "btc", records[swap_id].data["lock_cash"])
        assert len(locks) <= 1 and len(spends) == len(locks), (swap_id, records[swap_id].outcome, locks, spends)


def _steps_line(rows: list, since: float) -> str:
    """A swap's journal rows in one line, each at its second after the workers started
    (what a failure shows: where the time went)."""
    return " ".join(f"{r.step}/{r.phase}@{r.wall - since:.0f}" for r in rows if r.phase != "signed")


def _unfinished(url: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
        row = db.execute("SELECT count(*) FROM swaps WHERE outcome IS NULL").fetchone()
    return int(row[0]) if row else 0


async def test_bad_journals_stop_the_writing_commands_with_one_line_and_nothing_written(
    ledger_set, cli_env, pg_server, pg_url, tmp_path, run_dir
):
    """Issue 20's bad input, on the commands that write (`dvp swap --submit`, `dvp worker`),
    with testnets running: a malformed URL, wrong credentials and a journal of a newer schema
    are exit 2, an unreachable server exit 9; one line each, no password in it, and nothing
    written: no table in the database, no journal file in the run dir, no balance moved."""
    scenario = tmp_path / "swap.json"
    scenario.write_text(spec_for(PAIR).model_dump_json())
    before, files = await snapshot(ledger_set), sorted(p.name for p in run_dir.iterdir())
    newer = pg_server.new_database()
    with psycopg.connect(newer, autocommit=True) as db:
        db.execute("CREATE TABLE dvp_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO dvp_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
    cases = [
        (pg_url.replace(f":{pg_server.port}/", ":notaport/"), 2, "malformed PostgreSQL URL"),
        (pg_server.url(pg_url.rsplit("/", 1)[1], password="wrong-pw"), 2, "refused the credentials"),
        (pg_url.replace(f":{pg_server.port}/", f":{_closed_port()}/"), 9, "cannot reach"),
        (newer, 2, "newer than this dvp"),
    ]
    for url, code, text in cases:
        for args in (["swap", "--submit", str(scenario)], ["worker", "--exit-when-idle", "1", "--reconnect", "0"]):
            result = dvp(args, {**cli_env, "DVP_JOURNAL": url})
            one_line_error(result, code, text)
            assert "wrong-pw" not in result.stderr and "dvp-test-password" not in result.stderr, result.stderr
    assert _tables(pg_url) == [] and _tables(newer) == ["dvp_schema"]
    assert sorted(p.name for p in run_dir.iterdir()) == files
    assert await snapshot(ledger_set) == before


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]
