"""One driver per swap: the journal backend's lease.  On an SQLite journal, an exclusive OS
lock (``flock``) per swap, next to the journal (below); on a PostgreSQL journal, a session
advisory lock per swap (:meth:`dvp.journal_pg.PgJournal.lease`).

Two processes (a `dvp swap` and a `dvp resume`, or two `dvp swap` on one journal), or
two tasks in one process, that drove the same swap would send duplicate claims and
refunds and journal the same fees twice.  Whoever holds a swap's lease drives it; any
other driver is told at once (:class:`~dvp.errors.SwapBusy`, with the holder's pid) and
skips that swap.  The kernel releases the lock when its holder dies, however it dies, so
the successor of a crashed driver takes over without waiting for a timeout; the swap's
own journal and ledger reads then make its steps idempotent as before.

The lock files live in ``<journal>.drivers/`` (0700) and are removed on release; a
driver that opened a file just before it was removed sees that it locked a stale inode
and tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import ConfigError, SwapBusy

_SWAP_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ATTEMPTS = 20


def is_url(target: str | Path) -> bool:
    """True for a database URL (``postgresql://...``); a file path is an SQLite journal.  Here,
    below the journal, so the lease and the journal (which re-exports it) share one test."""
    return isinstance(target, str) and "://" in target


def lease_dir(journal_path: str | Path) -> Path:
    path = Path(journal_path)
    return path.with_name(path.name + ".drivers")


def check_swap_id(swap_id: str) -> None:
    if not _SWAP_ID.fullmatch(swap_id) or swap_id.strip(".") == "":
        raise ConfigError(f"swap_id: malformed swap id {swap_id[:70]!r}")


@runtime_checkable
class Leasing(Protocol):
    """A journal (:class:`dvp.journal.Journal`): it hands out its swaps' leases (this module
    sits below the journal, which takes its SQLite lease from here)."""

    def lease(self, swap_id: str) -> contextlib.AbstractContextManager[None]: ...


def drive_lease(journal: Leasing | str | Path, swap_id: str) -> contextlib.AbstractContextManager[None]:
    """Hold the right to drive ``swap_id`` for the ``with`` block, or raise SwapBusy now.

    ``journal`` is the journal, or its ``path`` (a file; a PostgreSQL journal's path names
    that open journal, whose session holds the lease)."""
    if isinstance(journal, Leasing):
        return journal.lease(swap_id)
    owner = getattr(journal, "journal", None)  # a PostgreSQL journal's path names its journal (JournalURL)
    if isinstance(owner, Leasing):
        return owner.lease(swap_id)
    if is_url(journal):
        raise ConfigError(
            "journal: a PostgreSQL journal's lease is taken in its open session: "
            "pass the journal or its path, not a URL"
        )
    return flock_lease(journal, swap_id)


@contextlib.contextmanager
def flock_lease(journal_path: str | Path, swap_id: str) -> Iterator[None]:
    """The SQLite journal's lease: an ``flock`` on ``<journal>.drivers/<swap_id>.lock``."""
    check_swap_id(swap_id)
    folder = lease_dir(journal_path)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"journal: cannot create {folder}: {exc.strerror or exc}") from None
    path = folder / f"{swap_id}.lock"
    fd = _acquire(path, swap_id)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Unlink before unlocking: a waiter that opened this inode notices it is stale.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def flock_held(journal_path: str | Path, swap_id: str) -> bool:
    """Whether a driver holds ``swap_id``'s ``flock`` now (probed without waiting; a driver
    that tries to take it at that very instant is told busy and tries again later)."""
    check_swap_id(swap_id)
    try:
        fd = os.open(lease_dir(journal_path) / f"{swap_id}.lock", os.O_RDWR)
    except OSError:
        return False  # no file: nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock, if it took one
    return False


def _acquire(path: Path, swap_id: str) -> int:
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SwapBusy(f"swap {swap_id} is being driven by another process{holder}; skipped") from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)  # the holder released and removed it meanwhile: lock the new file
    raise SwapBusy(f"swap {swap_id}: its lease kept changing hands; skipped")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {text})" if text.isdigit() else ""
