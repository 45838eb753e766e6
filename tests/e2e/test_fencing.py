"""The fencing gap (issue 20): a worker loses its PostgreSQL session (its backend terminated,
or the server restarted) while it is between journaling a signed transaction and
broadcasting it, and another driver takes the swap over meanwhile.

The old driver here is this test process, paused at the send boundary right after the
`signed` rows of the swap's first lock are committed; while it is paused its session is
ended and `dvp resume` (another process, a new session) takes the lease, re-broadcasts the
journaled lock and drives the swap to its end.  Then the old driver goes on: it may send the
journaled bytes (the same transaction, nothing new on the ledger) and must then notice it
lost the lease and stop driving the swap before any other send (no transaction signed
after its session ended; JournalUnavailable).  Counted on the ledgers: every transaction of
the swap is one the journal has final, none twice.  `make test` runs the terminated backend;
the server restart is under `matrix`."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from dvp import errors, sendlog
from dvp.journal import Journal
from dvp.sendlog import Boundary

from ..cli_helpers import DVP
from ..scenarios import spec_for
from ..testbed import CROSS_PAIRS
from .test_crash_resume import assert_sent_once, ledger_counts

PAIR = CROSS_PAIRS[0]  # evm-a/evm-b


def _terminate_own_session(url: str) -> None:
    """End this process's one journal session from the server's side (pg_terminate_backend)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
        pids = [
            r[0]
            for r in db.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
                (f"dvp pid {os.getpid()} on %",),
            ).fetchall()
        ]
        assert len(pids) == 1, pids  # the old driver's journal: its lease's session
        db.execute("SELECT pg_terminate_backend(%s)", (pids[0],))


@pytest.mark.slow
@pytest.mark.parametrize(
    "cut",
    ["terminate", pytest.param("restart", marks=pytest.mark.matrix)],
    ids=["backend-terminated", "server-restarted"],
)
async def test_a_worker_that_lost_its_session_mid_send_stops_and_nothing_is_sent_twice(
    ledger_set, cli_env, pg_server, pg_url, cut
):
    sent_before = await ledger_counts(ledger_set, PAIR)
    orch = ledger_set.orchestrator(pg_url)
    swap_id = await orch.submit(spec_for(PAIR))
    seen: list[Boundary] = []  # the old driver's send boundaries after its session ended
    taken_over: list[subprocess.CompletedProcess[str]] = []

    def at_boundary(boundary: Boundary) -> None:
        if taken_over:
            seen.append(boundary)
            return
        if boundary is not Boundary.JOURNALED:
            return
        # The first lock's signed bytes are durable, not yet broadcast: cut the session here,
        # and let another driver take the swap over while this one is paused.
        if cut == "terminate":
            _terminate_own_session(pg_url)
        else:
            pg_server.restart()
        taken_over.append(
            subprocess.run(
                [DVP, "resume", swap_id],
                env={**cli_env, "DVP_JOURNAL": pg_url},
                capture_output=True,
                text=True,
                timeout=300,
            )
        )

    sendlog.at_boundary = at_boundary
    try:
        with pytest.raises(errors.JournalUnavailable):
            await orch.drive_unfinished(swap_id)
    finally:
        sendlog.at_boundary = None
        orch.journal.close()
    assert taken_over, "the swap never reached its first journaled send"
    (other,) = taken_over
    assert other.returncode == 0, (other.stdout, other.stderr)
    # The old driver sent at most the journaled bytes: it signed nothing after its session ended.
    assert Boundary.SIGNED not in seen, seen

    journal = Journal(pg_url)
    try:
        swap = journal.get(swap_id)
        steps = journal.steps(swap_id)
    finally:
        journal.close()
    assert swap is not None and swap.outcome == "settled", (swap, other.stdout, other.stderr)
    await assert_sent_once(ledger_set, PAIR, swap, steps, sent_before, f"fenced after {cut}")
