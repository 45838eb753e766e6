"""The write-ahead journal of every swap (SQLite).

The secret, the terms and the lock ids are written before anything is broadcast;
each step's intent is written before its transaction is sent and its result
after.  Every row carries wall-clock and ledger-clock times, so each swap has a
timeline.  A swap whose ``outcome`` is empty is unfinished and is resumed.

Group commit: every write goes through one committer thread per journal, which commits
every write queued while its previous commit was being made durable in one transaction
(:class:`_Committer`).  A caller (the ``a``-prefixed methods await, the others block) is
released only once its write is durable, so the write-ahead rule holds, and the commits
themselves (an ``fsync`` on SQLite, a round trip on PostgreSQL) run off the event loop.
K swaps in flight share a commit instead of queueing K of them.  :attr:`Journal.commits`
and :attr:`Journal.writes` count both (the bench reports them per swap).

Crash drills kill the process right after a chosen committed write through the test
seam :attr:`Journal.after_commit` (see :mod:`dvp.testing.crash`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from .errors import ConfigError
from .lease import flock_held, flock_lease, is_url
from .models import LedgerTime

SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    outcome TEXT,
    detail TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    swap_id TEXT NOT NULL REFERENCES swaps(id),
    step TEXT NOT NULL,
    phase TEXT NOT NULL,
    ledger TEXT,
    tx_id TEXT,
    detail TEXT,
    wall REAL NOT NULL,
    ledger_height INTEGER,
    ledger_time REAL
);
CREATE INDEX IF NOT EXISTS steps_by_swap ON steps(swap_id, seq);
CREATE TABLE IF NOT EXISTS messages (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    swap_id TEXT NOT NULL,
    peer TEXT NOT NULL,
    direction TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    wall REAL NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_swap ON messages(swap_id, peer, direction);
"""


@dataclass(frozen=True)
class Step:
    seq: int
    swap_id: str
    step: str
    phase: str  # a Phase value (dvp.state)
    ledger: str | None
    tx_id: str | None
    detail: dict[str, Any]
    wall: float
    ledger_height: int | None
    ledger_time: float | None


@dataclass(frozen=True)
class SwapRecord:
    id: str
    kind: str
    spec: dict[str, Any]
    data: dict[str, Any]
    outcome: str | None
    detail: str | None
    created: float
    updated: float


SCHEMA_VERSION = 1
"""The journal schema this dvp writes.  0: main's unversioned SQLite journal (same tables, no
index on open swaps); 1: versioned, ``swaps_open`` index (workers poll the open swaps).  An
older journal is upgraded when opened (an SQLite file is first copied aside, see
:meth:`SqliteJournal._migrate`); a newer one is refused without a byte written."""

INDEXES = "CREATE INDEX IF NOT EXISTS swaps_open ON swaps(outcome, created);"


T = TypeVar("T")

MAX_BATCH = 1000
"""At most this many writes share one commit (a bound on one transaction's size)."""


@dataclass
class _Write:
    """One queued write: ``op`` runs in the committer's transaction; ``settle`` is called with
    its result (or error) once that transaction is durable (or failed)."""

    op: Callable[[], Any]
    settle: Callable[[Any, BaseException | None], None]


@dataclass
class _Waiter:
    """A blocking caller's side of a write."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def settle(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()


class _Committer:
    """Group commit: one thread takes every write queued meanwhile (up to :data:`MAX_BATCH`),
    runs them in one transaction of the journal's writing connection, commits, and only then
    releases their callers.  A batch that fails is rolled back and each of its writes is run
    again alone, so each caller gets its own write's error and no write is half-applied."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="dvp-journal-commit", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.journal._write_transaction():
                results = [w.op() for w in batch]
        except BaseException as exc:  # rolled back: each write on its own, so each gets its own error
            if len(batch) == 1:
                batch[0].settle(None, exc)
            else:
                for w in batch:
                    self._commit([w])
            return
        self.journal.commits += 1
        for w, result in zip(batch, results, strict=True):
            w.settle(result, None)


class Journal:
    """The journal interface: every backend has these methods, the same tables and the same
    write-ahead rule (each write is durable when the method returns).

    ``Journal(target)`` opens the backend the target names: a ``postgresql://`` (or
    ``postgres://``) URL opens :class:`dvp.journal_pg.PgJournal`, anything else is a file
    path and opens :class:`SqliteJournal`.  Backends differ only in how they connect,
    migrate and lease; the queries below are shared (written with ``?`` placeholders).

    Each write has a blocking form (``record``) and an awaitable one (``arecord``) for the
    event loop: both queue the write for the group committer (:class:`_Committer`) and
    return once the transaction holding it is durable.
    """

    path: str | Path  # the file (SQLite) or the URL without its password (PostgreSQL)
    commits = 0  # transactions committed (one per batch of writes)
    writes = 0  # writes committed (each would have been a commit of its own without grouping)

    def __new__(cls, target: str | Path) -> Journal:
        if cls is Journal:
            if is_url(target):
                # By name: the interface does not depend on a backend (psycopg is an extra).
                cls = import_module("dvp.journal_pg").PgJournal
            else:
                cls = SqliteJournal
        return object.__new__(cls)

    def __init__(self, target: str | Path) -> None:  # pragma: no cover - the backends define it
        raise NotImplementedError

    def close(self) -> None:
        self._stop_committer()
        self._close()

    # A test seam, unset in production: crash drills (dvp.testing.crash) set it to kill the
    # process right after a given committed write.
    after_commit: ClassVar[Callable[[int], None] | None] = None

    def _committed(self) -> None:
        self.writes += 1
        if Journal.after_commit is not None:
            Journal.after_commit(self.writes)

    # -- group commit ----------------------------------------------------------------------
    _committer: _Committer | None = None
    _committer_lock = threading.Lock()

    def _queue(self, write: _Write) -> None:
        with Journal._committer_lock:
            if self._committer is None:
                self._committer = _Committer(self)
            self._committer.queue.put(write)

    def _in_committer(self) -> bool:
        committer = self._committer
        return committer is not None and threading.current_thread() is committer.thread

    def _stop_committer(self) -> None:
        with Journal._committer_lock:
            committer, self._committer = self._committer, None
        if committer is not None:
            committer.stop()

    def _write(self, op: Callable[[], T]) -> T:
        """Run ``op`` in the committer's next transaction; return its result once durable."""
        waiter = _Waiter()
        self._queue(_Write(op, waiter.settle))
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        self._committed()
        result: T = waiter.result
        return result

    async def _awrite(self, op: Callable[[], T]) -> T:
        """:meth:`_write` for the event loop: the loop runs on while the commit is made."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            # A loop closed meanwhile (its run ended with this write in flight): nobody waits,
            # and the committer must live on for the journal's other callers.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, result, error)

        self._queue(_Write(op, settle))
        result = await future
        self._committed()
        return result

    # -- what a backend provides ----------------------------------------------------------
    def _close(self) -> None:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """A write on the committer's connection, inside its transaction."""
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read (from the caller's thread; inside a write's ``op``, on the committer's connection)."""
        raise NotImplementedError

    def _write_transaction(self) -> contextlib.AbstractContextManager[None]:
        """The committer's block whose writes commit together, or not at all."""
        raise NotImplementedError

    def lease(self, swap_id: str) -> contextlib.AbstractContextManager[None]:
        """Hold the right to drive ``swap_id`` for the ``with`` block, or raise SwapBusy now."""
        raise NotImplementedError

    def held_elsewhere(self, swap_ids: list[str]) -> set[str]:
        """Which of ``swap_ids`` another driver holds now (a worker skips them without asking
        for each lease): on PostgreSQL another session's, in one read; on SQLite each ``flock``
        probed, this process's own included (a worker leaves out those it drives)."""
        return set()

    def lease_held(self) -> None:
        """Raise JournalUnavailable if this process may have lost the leases it took (its
        journal session ended).  SQLite: an ``flock`` lives as long as its process, nothing to check."""

    async def alease_held(self) -> None:
        """:meth:`lease_held` off the event loop (:func:`dvp.sendlog.fence`)."""
        await asyncio.to_thread(self.lease_held)

    # -- sending accounts --------------------------------------------------------------------
    _accounts: dict[tuple[str, str], int]

    @contextlib.contextmanager
    def account_lease(self, accounts: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
        """Hold, for the block, the right to send from each ``(ledger, party)`` account: the
        drives of one process share it (counted), another process sharing the journal is
        refused at once (SwapBusy; a worker tries that swap again later), so no two processes
        ever allocate one account's nonces or coins at once.  Yields the accounts this process
        did not hold already: another process may have sent from them meanwhile, so their
        cached sending state must be read from the ledger again.  SQLite has no such lease
        (one host, one driving process per journal as a rule): nothing is held or yielded, and
        the adapters' in-process state stays as it was before this lease existed."""
        if not hasattr(self, "_accounts"):
            self._accounts = {}
        wanted = sorted(set(accounts))
        taken: list[tuple[str, str]] = []
        try:
            for account in wanted:
                if self._accounts.get(account, 0) == 0 and self._lock_account(account):
                    taken.append(account)
                self._accounts[account] = self._accounts.get(account, 0) + 1
            yield taken
        finally:
            for account in wanted:
                count = self._accounts.get(account, 0)
                if count == 0:
                    continue  # never counted: its lock was refused
                self._accounts[account] = count - 1
                if count == 1:
                    self._unlock_account(account)

    leases_accounts = False  # whether account_lease holds anything across processes (PostgreSQL)

    def accounts_held(self) -> set[tuple[str, str]]:
        """The accounts this process holds now (:meth:`account_lease`)."""
        return {a for a, n in getattr(self, "_accounts", {}).items() if n > 0}

    def accounts_elsewhere(self, accounts: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``accounts`` another process holds now, in one read; none on SQLite."""
        return set()

    def _lock_account(self, account: tuple[str, str]) -> bool:
        """Take ``account``'s cross-process lock, or raise SwapBusy now; False: this backend has none."""
        return False

    def _unlock_account(self, account: tuple[str, str]) -> None:
        pass

    # -- swaps -------------------------------------------------------------------------
    def _create(self, swap_id: str, kind: str, spec: dict[str, Any], data: dict[str, Any]) -> Callable[[], None]:
        now = time.time()
        row = (swap_id, kind, json.dumps(spec), json.dumps(data), now, now)
        return lambda: self._execute(
            "INSERT INTO swaps (id, kind, spec, data, created, updated) VALUES (?, ?, ?, ?, ?, ?)", row
        )

    def create(self, swap_id: str, kind: str, spec: dict[str, Any], data: dict[str, Any]) -> None:
        self._write(self._create(swap_id, kind, spec, data))

    async def acreate(self, swap_id: str, kind: str, spec: dict[str, Any], data: dict[str, Any]) -> None:
        await self._awrite(self._create(swap_id, kind, spec, data))

    def _update_data(self, swap_id: str, fields: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        def op() -> dict[str, Any]:
            row = self._rows("SELECT data FROM swaps WHERE id = ?" + self._for_update, (swap_id,))[0]
            data: dict[str, Any] = json.loads(row[0])
            data.update(fields)
            self._execute(
                "UPDATE swaps SET data = ?, updated = ? WHERE id = ?", (json.dumps(data), time.time(), swap_id)
            )
            return data

        return op

    def update_data(self, swap_id: str, **fields: Any) -> dict[str, Any]:
        return self._write(self._update_data(swap_id, fields))

    async def aupdate_data(self, swap_id: str, **fields: Any) -> dict[str, Any]:
        return await self._awrite(self._update_data(swap_id, fields))

    _for_update = ""  # PostgreSQL: " FOR UPDATE" (SQLite's write transaction is already exclusive)

    def _finish(self, swap_id: str, outcome: str, detail: str | None) -> Callable[[], None]:
        row = (outcome, detail, time.time(), swap_id)
        return lambda: self._execute("UPDATE swaps SET outcome = ?, detail = ?, updated = ? WHERE id = ?", row)

    def finish(self, swap_id: str, outcome: str, detail: str | None = None) -> None:
        self._write(self._finish(swap_id, outcome, detail))

    async def afinish(self, swap_id: str, outcome: str, detail: str | None = None) -> None:
        await self._awrite(self._finish(swap_id, outcome, detail))

    def get(self, swap_id: str) -> SwapRecord | None:
        rows = self._rows(
            "SELECT id, kind, spec, data, outcome, detail, created, updated FROM swaps WHERE id = ?", (swap_id,)
        )
        return _swap(rows[0]) if rows else None

    def swaps(self, *, unfinished: bool = False) -> list[SwapRecord]:
        sql = "SELECT id, kind, spec, data, outcome, detail, created, updated FROM swaps"
        if unfinished:
            sql += " WHERE outcome IS NULL"
        return [_swap(r) for r in self._rows(sql + " ORDER BY created, id")]

    # -- steps -------------------------------------------------------------------------
    _INSERT_STEP = (
        "INSERT INTO steps (swap_id, step, phase, ledger, tx_id, detail, wall, ledger_height, ledger_time)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def _record_all(
        self,
        swap_id: str,
        step: str,
        phase: str,
        rows: list[dict[str, Any]],
        *,
        ledger: str | None = None,
        clock: LedgerTime | None = None,
    ) -> Callable[[], None]:
        params = []
        for row in rows:
            detail = dict(row)
            tx_id = detail.pop("tx_id", None)
            params.append(_step_row(swap_id, step, phase, ledger, tx_id, detail, clock))

        def op() -> None:
            for p in params:
                self._execute(self._INSERT_STEP, p)

        return op

    def _record(
        self,
        swap_id: str,
        step: str,
        phase: str,
        *,
        ledger: str | None = None,
        tx_id: str | None = None,
        clock: LedgerTime | None = None,
        **detail: Any,
    ) -> Callable[[], None]:
        return self._record_all(swap_id, step, phase, [{"tx_id": tx_id, **detail}], ledger=ledger, clock=clock)

    def record(self, swap_id: str, step: str, phase: str, **row: Any) -> None:
        """One row of ``step``; ``row`` is ``ledger``, ``tx_id``, ``clock`` and its detail."""
        self._write(self._record(swap_id, step, phase, **row))

    async def arecord(self, swap_id: str, step: str, phase: str, **row: Any) -> None:
        await self._awrite(self._record(swap_id, step, phase, **row))

    def record_all(self, swap_id: str, step: str, phase: str, rows: list[dict[str, Any]], **where: Any) -> None:
        """Several rows of one step in one write: a crash keeps all of them or none
        (``where``: ``ledger``, ``clock``)."""
        self._write(self._record_all(swap_id, step, phase, rows, **where))

    async def arecord_all(self, swap_id: str, step: str, phase: str, rows: list[dict[str, Any]], **where: Any) -> None:
        await self._awrite(self._record_all(swap_id, step, phase, rows, **where))

    def steps(self, swap_id: str) -> list[Step]:
        rows = self._rows(
            "SELECT seq, swap_id, step, phase, ledger, tx_id, detail, wall, ledger_height, ledger_time"
            " FROM steps WHERE swap_id = ? ORDER BY seq",
            (swap_id,),
        )
        return [
            Step(
                seq=r[0],
                swap_id=r[1],
                step=r[2],
                phase=r[3],
                ledger=r[4],
                tx_id=r[5],
                detail=json.loads(r[6]),
                wall=r[7],
                ledger_height=r[8],
                ledger_time=r[9],
            )
            for r in rows
        ]

    def last(self, swap_id: str, step: str, phase: str) -> Step | None:
        found = [s for s in self.steps(swap_id) if s.step == step and s.phase == phase]
        return found[-1] if found else None

    # -- messages between two parties' agents (dvp.party) -------------------------------
    def message(self, swap_id: str, peer: str, direction: str, kind: str, seq: int, **detail: Any) -> None:
        """One message sent to (``out``) or taken from (``in``) ``peer``: the replay check's
        memory and the bench's message count, both read from what crossed the channel."""
        row = (swap_id, peer, direction, kind, seq, time.time(), json.dumps(detail))
        self._write(
            lambda: self._execute(
                "INSERT INTO messages (swap_id, peer, direction, kind, seq, wall, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def amessages(self, swap_id: str, peer: str, rows: list[tuple[str, str, int]]) -> None:
        """:meth:`message` of each (direction, kind, seq) in ``rows``, in order, in one group
        commit off the event loop (a request and its reply are one write)."""
        now = time.time()
        values = [(swap_id, peer, direction, kind, seq, now, "{}") for direction, kind, seq in rows]

        def op() -> None:
            for row in values:
                self._execute(
                    "INSERT INTO messages (swap_id, peer, direction, kind, seq, wall, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self._awrite(op)

    def last_seq(self, swap_id: str, peer: str, direction: str, *, leaving_out: tuple[str, ...] = ()) -> int:
        """The highest sequence number of the messages with ``peer`` for the swap, leaving out
        those of the ``leaving_out`` kinds."""
        marks = ",".join("?" * len(leaving_out))
        where = f" AND kind NOT IN ({marks})" if leaving_out else ""
        rows = self._rows(
            "SELECT MAX(seq) FROM messages WHERE swap_id = ? AND peer = ? AND direction = ?" + where,
            (swap_id, peer, direction, *leaving_out),
        )
        return int(rows[0][0] or 0)

    def message_count(self, swap_id: str, peer: str, direction: str) -> int:
        rows = self._rows(
            "SELECT COUNT(*) FROM messages WHERE swap_id = ? AND peer = ? AND direction = ?", (swap_id, peer, direction)
        )
        return int(rows[0][0])

    def messages(self, swap_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT peer, direction, kind, seq, wall, detail FROM messages WHERE swap_id = ? ORDER BY n", (swap_id,)
        )
        return [
            {"peer": r[0], "direction": r[1], "kind": r[2], "seq": r[3], "wall": r[4], **json.loads(r[5] or "{}")}
            for r in rows
        ]


class SqliteJournal(Journal):
    """The embedded journal: one SQLite file (WAL, synchronous=FULL), created 0600; its lease
    is an ``flock`` per swap beside it (:mod:`dvp.lease`)."""

    path: Path

    def __init__(self, target: str | Path):
        self.path = Path(target)
        refuse_foreign_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created private before SQLite writes a byte: it holds swap secrets.  An existing
            # file keeps its mode: it may be someone else's (a mistyped --journal).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            # The committer's own connection (WAL: the event loop's reads on ``_db`` never wait
            # for its commits); synchronous is per connection.
            self._wdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._wdb.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal: cannot open {self.path}: {exc}") from None

    def _migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION` in one transaction; a file that holds
        swaps is first copied whole to ``<journal>.v<N>.bak`` (0600), so an upgrade never
        rewrites the only copy.  A newer file is refused before anything is written."""
        version = self._version()
        if version == SCHEMA_VERSION:
            return
        try:
            if (
                version < SCHEMA_VERSION
                and self._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'swaps'").fetchone()[0]
            ):
                self._backup(version)  # outside the write transaction: the backup reads the file itself
            self._db.execute("BEGIN IMMEDIATE")  # another process may be opening the same file
            try:
                if self._version() < SCHEMA_VERSION:  # not upgraded meanwhile by that other process
                    for statement in (SCHEMA + INDEXES).split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except BaseException:
            self._db.close()
            raise

    def _version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self._db.close()
            raise ConfigError(
                f"journal: {self.path} has schema version {version}, newer than this dvp's "
                f"({SCHEMA_VERSION}); open it with a newer dvp (nothing written)"
            )
        return version

    def _backup(self, version: int) -> None:
        backup = self.path.with_name(f"{self.path.name}.v{version}.bak")
        os.close(os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        target = sqlite3.connect(backup)
        try:
            self._db.backup(target)
        finally:
            target.close()

    def _close(self) -> None:
        self._wdb.close()
        self._db.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._wdb.execute(sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self._wdb if self._in_committer() else self._db
        return db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[None]:
        # The connection is in autocommit mode (isolation_level=None), where ``with db:`` opens
        # no transaction: BEGIN explicitly, so the block's rows commit together or not at all.
        self._wdb.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._wdb.execute("ROLLBACK")
            raise
        self._wdb.execute("COMMIT")

    def lease(self, swap_id: str) -> contextlib.AbstractContextManager[None]:
        return flock_lease(self.path, swap_id)

    def held_elsewhere(self, swap_ids: list[str]) -> set[str]:
        return {i for i in swap_ids if flock_held(self.path, i)}


_SQLITE_MAGIC = b"SQLite format 3\x00"


def refuse_foreign_file(path: Path) -> None:
    """Refuse, without touching it, an existing file that is not a dvp journal."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise ConfigError(f"journal: {path} is a directory, not a journal") from None
    except OSError as exc:
        raise ConfigError(f"journal: cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        return  # empty: a journal created but never written
    if head != _SQLITE_MAGIC:
        raise ConfigError(f"journal: {path} is not a dvp journal (not an SQLite database)")
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"journal: {path} is not a dvp journal ({exc})") from None
    if tables and "swaps" not in tables:
        raise ConfigError(f"journal: {path} is not a dvp journal (tables: {', '.join(sorted(tables))})")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # its caller was cancelled meanwhile: the write stands, nobody waits
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _swap(row: tuple[Any, ...]) -> SwapRecord:
    return SwapRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5], row[6], row[7])


def _step_row(
    swap_id: str,
    step: str,
    phase: str,
    ledger: str | None,
    tx_id: str | None,
    detail: dict[str, Any],
    clock: LedgerTime | None,
) -> tuple[Any, ...]:
    """The parameters of ``_INSERT_STEP`` for one row (``record`` and ``record_all`` write the same row)."""
    return (
        swap_id,
        step,
        phase,
        ledger,
        tx_id,
        json.dumps(detail),
        time.time(),
        clock.height if clock else None,
        clock.timestamp if clock else None,
    )
