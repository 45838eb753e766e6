"""The journal interface on both backends (issue 20, item 3): SQLite (a file) and PostgreSQL
(a real server the suite starts itself, tests/conftest.py ``pg_server``).  The same calls,
the same rows; the lease lets one driver per swap; an old SQLite journal is upgraded after a
backup; a journal of a newer schema, a malformed URL, an unreachable server or wrong
credentials are one line each with a documented exit code and nothing written."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvp import errors
from dvp.journal import SCHEMA_VERSION, Journal
from dvp.lease import drive_lease, is_url

from .test_bad_input import one_line, run

DATA = Path(__file__).parent / "data"


@pytest.fixture
def target(journal_target) -> str:
    return journal_target


@pytest.fixture
def journal(target):
    j = Journal(target)
    yield j
    j.close()


def test_every_call_reads_back_what_was_written(journal):
    journal.create("s1", "htlc", {"trade": {"a": 1}}, {"secret": "00"})
    journal.create("s2", "atomic", {"trade": {"b": 2}}, {})
    journal.record("s1", "lock_seller", "intent", ledger="evm-a", amount=5)
    journal.record_all(
        "s1", "lock_seller", "result", [{"tx_id": "0xa", "fee": 7}, {"tx_id": "0xb", "fee": 8}], ledger="evm-a"
    )
    assert journal.update_data("s1", lock="L1") == {"secret": "00", "lock": "L1"}
    journal.message("s1", "buyer", "out", "PROPOSE", 1, size=10)
    journal.message("s1", "buyer", "out", "ACK", 2)
    journal.message("s1", "buyer", "in", "ACCEPT", 1)
    journal.finish("s2", "settled", "both legs delivered")

    assert [r.id for r in journal.swaps()] == ["s1", "s2"]
    assert [r.id for r in journal.swaps(unfinished=True)] == ["s1"]
    record = journal.get("s2")
    assert record is not None and (record.outcome, record.detail, record.spec) == (
        "settled",
        "both legs delivered",
        {"trade": {"b": 2}},
    )
    assert journal.get("nope") is None
    steps = journal.steps("s1")
    assert [(s.step, s.phase, s.tx_id, s.detail) for s in steps] == [
        ("lock_seller", "intent", None, {"amount": 5}),
        ("lock_seller", "result", "0xa", {"fee": 7}),
        ("lock_seller", "result", "0xb", {"fee": 8}),
    ]
    assert steps[0].seq < steps[1].seq < steps[2].seq
    last = journal.last("s1", "lock_seller", "result")
    assert last is not None and last.tx_id == "0xb"
    assert journal.last_seq("s1", "buyer", "out") == 2
    assert journal.last_seq("s1", "buyer", "out", leaving_out=("ACK",)) == 1
    assert journal.last_seq("s1", "buyer", "in") == 1
    assert journal.last_seq("s1", "seller", "in") == 0
    assert journal.message_count("s1", "buyer", "out") == 2
    assert [(m["kind"], m["seq"], m.get("size")) for m in journal.messages("s1")] == [
        ("PROPOSE", 1, 10),
        ("ACK", 2, None),
        ("ACCEPT", 1, None),
    ]


def test_record_all_keeps_every_row_or_none(journal):
    journal.create("s1", "htlc", {}, {})
    with pytest.raises(TypeError):  # the second row cannot be written: the first must not stay
        journal.record_all("s1", "claim", "result", [{"tx_id": "0x1"}, {"tx_id": "0x2", "bad": object()}])
    assert journal.steps("s1") == []
    journal.record("s1", "claim", "intent")  # the journal is usable after the failed transaction
    assert [s.phase for s in journal.steps("s1")] == ["intent"]


def test_a_url_is_told_from_a_path_by_one_test_for_the_journal_and_the_lease(tmp_path):
    """``Journal`` opens PostgreSQL for what ``is_url`` calls a URL; ``drive_lease`` refuses
    the same URL (a PostgreSQL lease is its open session's) and flocks beside a file path."""
    url, path = "postgresql://dvp@127.0.0.1:1/dvp", tmp_path / "j.sqlite"
    assert is_url(url) and is_url("postgres://h/db")
    assert not is_url(str(path)) and not is_url(path) and not is_url("j.sqlite")
    with pytest.raises(errors.ConfigError, match="pass the journal or its path, not a URL"):
        drive_lease(url, "s1")
    with drive_lease(str(path), "s1"):  # a file path: the SQLite lease beside it
        assert (tmp_path / "j.sqlite.drivers" / "s1.lock").exists()


def test_one_driver_per_swap(target):
    """Two journals on one target in one process stand for two drivers (two sessions on
    PostgreSQL, two lock files' descriptors on SQLite); one journal's second taker is another
    task of the same driver."""
    first, second = Journal(target), Journal(target)
    try:
        with drive_lease(first.path, "s1"):  # the agents' call: by the journal's path, held by that journal
            with pytest.raises(errors.SwapBusy, match=r"another process \(pid \d+"), second.lease("s1"):
                pass
            with pytest.raises(errors.SwapBusy, match="another"), first.lease("s1"):  # another task, same process
                pass
            with second.lease("s2"):  # another swap is free
                pass
        with second.lease("s1"):  # released
            pass
        first.close()
        with drive_lease(second.path, "s3"):  # the other journal's path still names its own session
            pass
    finally:
        first.close()
        second.close()


def test_a_swap_id_that_is_not_one_is_refused_by_the_lease(journal):
    with pytest.raises(errors.ConfigError, match="swap_id"), journal.lease("../x"):
        pass


# -- schema versions ---------------------------------------------------------------------------


def test_an_old_sqlite_journal_is_upgraded_after_a_backup(tmp_path):
    """A journal written by the unversioned code (tests/unit/data/journal-v0.sqlite) opens:
    a full copy is kept beside it (0600), then it is upgraded in place; its swaps read back."""
    path = tmp_path / "journal.sqlite"
    shutil.copy(DATA / "journal-v0.sqlite", path)
    journal = Journal(path)
    try:
        assert [r.id for r in journal.swaps(unfinished=True)] == ["old1"]
        assert [s.tx_id for s in journal.steps("old1")] == [None, "0x01"]
        assert journal.last_seq("old1", "buyer", "out") == 1
        journal.record("old1", "lock_seller", "intent")
    finally:
        journal.close()
    backup = tmp_path / "journal.sqlite.v0.bak"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone() == (0,)
    assert old.execute("SELECT count(*) FROM steps").fetchone() == (2,)
    old.close()
    new = sqlite3.connect(path)
    assert new.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert new.execute("SELECT name FROM sqlite_master WHERE name = 'swaps_open'").fetchone() == ("swaps_open",)
    new.close()
    Journal(path).close()  # opened again: already current, no second backup
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == ["journal.sqlite.v0.bak"]


def test_a_new_journal_writes_no_backup(tmp_path):
    Journal(tmp_path / "j.sqlite").close()
    assert not list(tmp_path.glob("*.bak"))


def _newer_sqlite(tmp_path: Path) -> tuple[str, bytes]:
    path = tmp_path / "newer.sqlite"
    shutil.copy(DATA / "journal-v0.sqlite", path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    return str(path), path.read_bytes()


def _newer_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE dvp_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO dvp_schema VALUES (%s)", (SCHEMA_VERSION + 1,))


def _pg_tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_a_journal_of_a_newer_schema_is_refused_untouched(tmp_path, pg_url):
    path, before = _newer_sqlite(tmp_path)
    with pytest.raises(errors.ConfigError, match="newer than this dvp"):
        Journal(path)
    assert Path(path).read_bytes() == before and not list(tmp_path.glob("*.bak"))
    _newer_pg(pg_url)
    with pytest.raises(errors.ConfigError, match="newer than this dvp"):
        Journal(pg_url)
    assert _pg_tables(pg_url) == ["dvp_schema"]


def test_a_postgres_journal_is_migrated_once_by_concurrent_openers(pg_url):
    journals = [Journal(pg_url) for _ in range(3)]
    for j in journals:
        j.close()
    assert _pg_tables(pg_url) == ["dvp_schema", "messages", "steps", "swaps"]


# -- bad input on the command line: one line, a documented exit code, nothing written ------------


def test_bad_journal_urls_are_one_line_each(tmp_path, pg_server, pg_url):
    env = {"DVP_RUN_DIR": str(tmp_path / "run")}
    cases = [
        (f"postgresql://dvp@127.0.0.1:{pg_server.port}/db?sslmode=bogus", 2, "malformed PostgreSQL URL"),
        ("postgresql://dvp@127.0.0.1:notaport/db", 2, "malformed PostgreSQL URL"),
        ("postgresql://dvp:wrong@[::1", 2, "malformed PostgreSQL URL"),
        (f"postgresql://dvp:wrong@127.0.0.1:{pg_server.port}/db?connect_timeout=abc", 2, "malformed PostgreSQL URL"),
        ("mysql://dvp:wrong@127.0.0.1/db", 2, "not a journal URL scheme"),
        (pg_server.url("postgres", password="wrong"), 2, "refused the credentials"),
        (pg_url.replace(f":{pg_server.port}/", f":{_closed_port()}/"), 9, "cannot reach"),
    ]
    for url, code, text in cases:
        line = one_line(run(["--journal", url, "history"], env), code, text)
        assert "wrong" not in line and "dvp-test-password" not in line  # no password in a message
    assert _pg_tables(pg_url) == []  # nothing was created by any of them
    _newer_pg(pg_url)
    one_line(run(["--journal", pg_url, "history"], env), 2, "newer than this dvp")
    assert _pg_tables(pg_url) == ["dvp_schema"]
    path, before = _newer_sqlite(tmp_path)
    one_line(run(["--journal", path, "history"], env), 2, "newer than this dvp")
    assert Path(path).read_bytes() == before


def test_history_reads_a_postgres_journal(tmp_path, pg_url):
    journal = Journal(pg_url)
    journal.create("s1", "htlc", {"trade": {}}, {})
    journal.close()
    # An unknown id on a PostgreSQL journal is exit 2, naming the journal without its password.
    line = one_line(run(["--journal", pg_url, "history", "nope"], {"DVP_RUN_DIR": str(tmp_path)}), 2, "no swap")
    assert "dvp-test-password" not in line


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


# -- the lease across processes: a SIGKILLed holder's swap is free at once -----------------------

HOLDER = """
import sys, time
from dvp.journal import Journal
j = Journal(sys.argv[1])
with j.lease("s1"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_killed_drivers_lease_is_taken_over_within_the_documented_time(pg_url):
    from dvp.journal_pg import SESSION_DEAD_AFTER

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, pg_url], stdout=subprocess.PIPE, text=True)
    journal = Journal(pg_url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(errors.SwapBusy, match=rf"pid {holder.pid} on "), journal.lease("s1"):
            pass
        holder.kill()
        killed = time.monotonic()
        holder.wait(timeout=10)
        taken = None
        while taken is None and time.monotonic() - killed < SESSION_DEAD_AFTER + 5:
            try:
                with journal.lease("s1"):
                    taken = time.monotonic() - killed
            except errors.SwapBusy:
                time.sleep(0.05)
        assert taken is not None and taken < SESSION_DEAD_AFTER, taken
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        journal.close()


def test_a_lost_session_fails_the_next_write_and_frees_the_lease(pg_url):
    """The fencing the README promises: once the server ends a driver's session (as it does
    for a dead host), that driver's next journal write fails (JournalUnavailable, exit 9), so
    it sends nothing more, and its lease is free for another driver at once."""
    import psycopg

    driver, other = Journal(pg_url), Journal(pg_url)
    try:
        driver.create("s1", "htlc", {}, {})
        with driver.lease("s1"):
            with psycopg.connect(pg_url, autocommit=True) as admin:
                pid = driver._db.info.backend_pid
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(errors.JournalUnavailable, match="lost the connection") as lost:
                driver.record("s1", "lock_seller", "intent")
            assert lost.value.exit_code == 9 and "dvp-test-password" not in str(lost.value)
            with other.lease("s1"):  # taken over while the old driver still thinks it holds it
                pass
        assert other.steps("s1") == []  # the failed write left nothing
    finally:
        driver.close()
        other.close()


async def test_writes_in_flight_share_commits_and_each_is_durable_when_released(journal, target):
    """Group commit (issue 20, item 5): 100 swaps' writes in flight share a few commits, and
    each caller is released only once its write is committed: another connection to the
    journal (an other process's view) already reads it then."""
    journal.create("g", "htlc", {}, {})
    observer = Journal(target)
    seen: list[bool] = []

    async def one(i: int) -> None:
        await journal.arecord("g", f"step{i}", "intent", n=i)
        seen.append(any(s.step == f"step{i}" for s in observer.steps("g")))

    try:
        commits, writes = journal.commits, journal.writes
        await asyncio.gather(*(one(i) for i in range(100)))
        commits, writes = journal.commits - commits, journal.writes - writes
    finally:
        observer.close()
    assert seen == [True] * 100
    assert writes == 100
    assert 1 <= commits <= 25, f"{commits} commits for 100 writes in flight"
    assert sorted(s.detail["n"] for s in journal.steps("g")) == list(range(100))


async def test_a_failed_write_fails_only_its_caller_and_leaves_nothing_half_written(journal):
    """A write that fails inside a shared commit (a swap created twice) is rolled back alone:
    its caller gets the error and every other write of that commit stands; a multi-row write
    that cannot be written (its second row is not JSON) fails its caller with none of its rows."""
    journal.create("f", "htlc", {}, {})
    results = await asyncio.gather(
        *(journal.arecord("f", "s", "intent", n=i) for i in range(10)),
        journal.acreate("f", "htlc", {}, {}),
        journal.arecord_all("f", "bad", "signed", [{"tx_id": "0x1"}, {"tx_id": "0x2", "x": object()}]),
        *(journal.arecord("f", "s", "intent", n=i) for i in range(10, 20)),
        return_exceptions=True,
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [10, 11], results
    assert sorted(s.detail["n"] for s in journal.steps("f") if s.step == "s") == list(range(20))
    assert not [s for s in journal.steps("f") if s.step == "bad"]


def test_one_process_sends_from_an_account_at_a_time_on_postgres(pg_url):
    """The account lease (issue 20, item 3: nonces and coins are allocated by one process at
    a time): the drives of one process share an account, a second session is refused at once
    until the last of them ends, and only a newly taken account is reported fresh."""
    one, two = Journal(pg_url), Journal(pg_url)
    seller, buyer = ("evm-a", "seller"), ("evm-b", "buyer")
    try:
        with one.account_lease([seller, buyer]) as fresh:
            assert fresh == [seller, buyer]
            with one.account_lease([seller]) as again:
                assert again == []  # held by this process already: its cached state is current
            with pytest.raises(errors.SwapBusy, match="'seller' on 'evm-a'"):
                with two.account_lease([("evm-b", "other"), seller]):
                    pass
            with two.account_lease([("evm-b", "other")]) as other:  # refused whole: nothing kept
                assert other == [("evm-b", "other")]
        with two.account_lease([seller]) as taken:
            assert taken == [seller]
    finally:
        one.close()
        two.close()


def test_bench_workers_need_a_postgres_journal(tmp_path):
    """`dvp bench --workers` without a PostgreSQL journal (or with --agents): one line, exit 2,
    before any testnet is started."""
    env = {"DVP_RUN_DIR": str(tmp_path / "run")}
    one_line(run(["bench", "--workers", "2"], env, cwd=tmp_path), 2, "needs a PostgreSQL journal")
    one_line(run(["bench", "--workers", "2", "--agents"], env, cwd=tmp_path), 2, "do not combine")
    assert list(tmp_path.iterdir()) == []  # no run dir, no reports


def test_a_write_whose_event_loop_ended_leaves_the_journal_usable(journal):
    """A write in flight when its event loop ends (asyncio.run returned, its task cancelled)
    still commits, and the committer goes on serving the journal's next callers."""
    journal.create("e", "htlc", {}, {})

    async def leave_one_in_flight() -> None:
        task = asyncio.ensure_future(journal.arecord("e", "s", "intent", n=1))
        await asyncio.sleep(0)  # queued, not awaited to the end: asyncio.run cancels it
        task.cancel()

    for _ in range(20):
        asyncio.run(leave_one_in_flight())
    journal.record("e", "s", "intent", n=2)  # served: the committer thread is alive
    assert asyncio.run(journal.aupdate_data("e", x=1)) == {"x": 1}
    assert {s.detail["n"] for s in journal.steps("e")} == {1, 2}
