"""The journal on PostgreSQL: the same tables and interface as the SQLite journal
(:class:`dvp.journal.Journal`), shared by drivers and workers on several hosts.

Opened by ``Journal("postgresql://user:password@host:port/db")`` (or ``DVP_JOURNAL``), with
psycopg 3.  Every write is one autocommitted statement or one transaction, durable when it
returns (the server's ``synchronous_commit`` is left at ``on``), so the write-ahead rule is
the SQLite journal's.

The lease is a **session advisory lock** per swap, taken with ``pg_try_advisory_lock`` on the
journal's own connection, the one every journal write of this process goes through:

* it never waits: a swap another driver holds is skipped at once (SwapBusy, with the
  holder's host and pid, read from ``pg_stat_activity``);
* it lives exactly as long as the session: a driver that dies (however: SIGKILL, power)
  loses it when the server ends its session.  On a live host the kernel closes the socket
  at once; a host that vanishes is noticed by TCP keepalives (5 s idle, then 3 probes 2 s
  apart) or by ``tcp_user_timeout`` (10 s of unacknowledged data), set on both ends, so the
  server drops the session, and the lease, within :data:`SESSION_DEAD_AFTER` seconds;
* it fences the old holder: the lost session also fails that driver's next journal write,
  and each send is preceded by its journaled intent, so a driver cut off from the journal
  sends nothing more.  The connection is never re-opened behind the driver's back.

A row lease with a heartbeat would need a heartbeat task beside every swap and a chosen
expiry that is either long (slow takeover) or short (a busy driver loses a live lease);
advisory locks get both the release and the fencing from the session itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from .errors import ConfigError, JournalUnavailable, SwapBusy
from .journal import INDEXES, SCHEMA, SCHEMA_VERSION, Journal
from .lease import check_swap_id

KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3
USER_TIMEOUT_MS = 10_000
SESSION_DEAD_AFTER = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT  # 11 s: a vanished host's lease is free
CONNECT_TIMEOUT = 5

# The SQLite journal's tables, in PostgreSQL's types: the same schema on both backends.
# SQLite's INTEGER is 64-bit: so is BIGINT (a message's seq may exceed 2**31).
_SCHEMA = (
    (SCHEMA + INDEXES)
    .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    .replace(" INTEGER", " BIGINT")
    .replace(" REAL", " DOUBLE PRECISION")
)
# Serialises concurrent migrations of one database (a transaction-level advisory lock).
_MIGRATION_LOCK = 0x6476705F736368  # "dvp_sch"


def redacted(url: str) -> str:
    """``url`` without its password, for messages and :attr:`PgJournal.path`."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://..."
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "")
    port = f":{params['port']}" if params.get("port") else ""
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{user}/{params.get('dbname', '')}?host={host}{port and '&port=' + port[1:]}"
    return f"postgresql://{user}{host}{port}/{params.get('dbname', '')}"


class JournalURL(str):
    """A PostgreSQL journal's ``path``: its URL without the password, which also names the
    open journal it belongs to, so ``drive_lease(journal.path, swap_id)`` (the agents' call)
    takes the lease in that journal's own session."""

    journal: PgJournal

    def __new__(cls, url: str, journal: PgJournal) -> JournalURL:
        made = super().__new__(cls, url)
        made.journal = journal
        return made


def _key(swap_id: str) -> int:
    """The swap's advisory lock key: 64 bits of its BLAKE2b hash, as PostgreSQL's signed bigint."""
    return int.from_bytes(hashlib.blake2b(swap_id.encode(), digest_size=8).digest(), "big", signed=True)


class PgJournal(Journal):
    _for_update = " FOR UPDATE"
    path: JournalURL

    def __init__(self, target: str | Path):
        url = str(target)
        self.path = JournalURL(redacted(url), self)
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                f"journal: {url.split('://')[0][:20]!r} is not a journal URL scheme "
                "(postgresql://, or a file path for SQLite)"
            )
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise self._malformed(url, exc) from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        params.update(
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE,
            keepalives_interval=KEEPALIVE_INTERVAL,
            keepalives_count=KEEPALIVE_COUNT,
            tcp_user_timeout=USER_TIMEOUT_MS,
            application_name=f"dvp pid {os.getpid()} on {socket.gethostname()}"[:63],
        )
        try:
            self._db = psycopg.connect(conninfo.make_conninfo("", **params), autocommit=True)
        except psycopg.OperationalError as exc:
            raise _connect_error(self.path, exc) from None
        except psycopg.Error as exc:  # an option value libpq or psycopg refuses before connecting
            raise self._malformed(url, exc) from None
        try:
            # The server watches this session's socket as the client does: a vanished host's
            # session (and so its leases) ends within SESSION_DEAD_AFTER seconds.
            for name, value in (
                ("tcp_keepalives_idle", KEEPALIVE_IDLE),
                ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
                ("tcp_keepalives_count", KEEPALIVE_COUNT),
                ("tcp_user_timeout", USER_TIMEOUT_MS),
            ):
                self._db.execute(f"SET {name} = {int(value)}")  # constants: SET takes no parameters
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._held: set[str] = set()
        # One connection (the lease's session, so a lost lease fails the next write): the
        # committer's transaction holds it from BEGIN to COMMIT; a read waits for that.
        self._lock = threading.RLock()

    def _malformed(self, url: str, exc: BaseException) -> ConfigError:
        """One line naming what is wrong, with the URL as given replaced by its redacted form
        (libpq quotes the URL, password included)."""
        reason = _first_line(exc).replace(url, self.path)
        return ConfigError(f"journal: malformed PostgreSQL URL {self.path}: {reason}")

    def _migrate(self) -> None:
        """Bring the database to :data:`SCHEMA_VERSION` in one transaction; a newer one is
        refused before anything is written."""
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                row = self._db.execute("SELECT to_regclass('dvp_schema') IS NOT NULL").fetchone()
                version = 0
                if row and row[0]:
                    found = self._db.execute("SELECT max(version) FROM dvp_schema").fetchone()
                    version = int(found[0] or 0) if found else 0
                if version > SCHEMA_VERSION:
                    raise ConfigError(
                        f"journal: {self.path} has schema version {version}, newer than this dvp's "
                        f"({SCHEMA_VERSION}); open it with a newer dvp (nothing written)"
                    )
                if version < SCHEMA_VERSION:
                    self._db.execute(_SCHEMA)
                    self._db.execute("CREATE TABLE IF NOT EXISTS dvp_schema (version INTEGER NOT NULL)")
                    self._db.execute("DELETE FROM dvp_schema")
                    self._db.execute("INSERT INTO dvp_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        except psycopg.OperationalError as exc:
            raise _lost(self.path, exc) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"journal: {self.path}: {_first_line(exc)} (the journal's user must own its tables)"
            ) from None

    def _close(self) -> None:
        self._db.close()

    # -- the backend's part of the interface ----------------------------------------------
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._rows(sql, params, fetch=False)

    def _rows(self, sql: str, params: tuple[Any, ...] = (), *, fetch: bool = True) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                cursor = self._db.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]  # constants
                return cursor.fetchall() if fetch else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _lost(self.path, exc) from None

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[None]:
        try:
            with self._lock, self._db.transaction():
                yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _lost(self.path, exc) from None

    @contextlib.contextmanager
    def lease(self, swap_id: str) -> Iterator[None]:
        """A session advisory lock on the swap (see the module's text); SwapBusy at once when
        another session holds it, or another task of this process (the lock is reentrant
        within one session, so this process keeps its own set too)."""
        check_swap_id(swap_id)
        if swap_id in self._held:
            raise SwapBusy(
                f"swap {swap_id} is being driven by another process or task (a task of this process, "
                f"pid {os.getpid()}); skipped"
            )
        key = _key(swap_id)
        got = self._rows("SELECT pg_try_advisory_lock(?)", (key,))[0][0]
        if not got:
            raise SwapBusy(f"swap {swap_id} is being driven by another process{self._holder(key)}; skipped")
        self._held.add(swap_id)
        try:
            yield
        finally:
            self._held.discard(swap_id)
            with contextlib.suppress(JournalUnavailable):  # a lost session has released it already
                self._rows("SELECT pg_advisory_unlock(?)", (key,))

    leases_accounts = True

    def held_elsewhere(self, swap_ids: list[str]) -> set[str]:
        """The swaps whose advisory lock another session holds, from one read of ``pg_locks``."""
        if not swap_ids:
            return set()
        others = self._others()
        return {i for i in swap_ids if _key(i) & 0xFFFF_FFFF_FFFF_FFFF in others}

    def accounts_elsewhere(self, accounts: set[tuple[str, str]]) -> set[tuple[str, str]]:
        if not accounts:
            return set()
        others = self._others()
        return {a for a in accounts if _key("account %s %s" % a) & 0xFFFF_FFFF_FFFF_FFFF in others}

    def _others(self) -> set[int]:
        """The advisory lock keys (unsigned) other sessions of this database hold now."""
        rows = self._rows(
            "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND pid <> pg_backend_pid()"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return {(int(c) << 32) | int(o) for c, o in rows}

    def lease_held(self) -> None:
        """A round trip on the lease's session: the session is never re-opened, so while it
        answers, every advisory lock this journal took (swaps, accounts) is still held;
        JournalUnavailable once it ended (terminated, the server restarted, the host cut off)."""
        self._rows("SELECT 1")

    def _lock_account(self, account: tuple[str, str]) -> bool:
        """A session advisory lock on the sending account (see :meth:`Journal.account_lease`)."""
        key = _key("account %s %s" % account)  # a space: never a swap id's key
        if not self._rows("SELECT pg_try_advisory_lock(?)", (key,))[0][0]:
            raise SwapBusy(
                f"account of {account[1]!r} on {account[0]!r} is sending for another process{self._holder(key)}; skipped"
            )
        return True

    def _unlock_account(self, account: tuple[str, str]) -> None:
        with contextlib.suppress(JournalUnavailable):  # a lost session has released it already
            self._rows("SELECT pg_advisory_unlock(?)", (_key("account %s %s" % account),))

    def _holder(self, key: int) -> str:
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        rows = self._rows(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ?::bigint::oid AND l.objid = ?::bigint::oid"
            " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        )
        name = rows[0][0] if rows else ""
        return f" ({name.removeprefix('dvp ')})" if name.startswith("dvp pid") else ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _connect_error(path: str, exc: psycopg.OperationalError) -> ConfigError | JournalUnavailable:
    text = _first_line(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in ("28P01", "28000") or "authentication" in text or "password" in text:
        return ConfigError(f"journal: {path}: the server refused the credentials ({text})")
    if "invalid" in text and ("value" in text or "option" in text or "port" in text):  # refused before connecting
        return ConfigError(f"journal: malformed PostgreSQL URL {path}: {text.removeprefix('connection is bad: ')}")
    if sqlstate == "3D000" or "does not exist" in text:
        return ConfigError(f"journal: {path}: {text}")
    return JournalUnavailable(f"journal: cannot reach {path} ({text})")


def _lost(path: str, exc: BaseException) -> JournalUnavailable:
    return JournalUnavailable(
        f"journal: lost the connection to {path} ({_first_line(exc)}); "
        "its unfinished swaps continue with `dvp resume` or a `dvp worker`"
    )
