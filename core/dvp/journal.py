"""The write-ahead journal of every swap (SQLite).

The secret, the terms and the lock ids are written before anything is broadcast;
each step's intent is written before its transaction is sent and its result
after.  Every row carries wall-clock and ledger-clock times, so each swap has a
timeline.  A swap whose ``outcome`` is empty is unfinished and is resumed.

Crash drills kill the process right after a chosen committed write through the test
seam :attr:`Journal.after_commit` (see :mod:`dvp.testing.crash`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from .errors import ConfigError
from .models import LedgerTime

_SCHEMA = """
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


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        _refuse_foreign_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created private before SQLite writes a byte: it holds swap secrets.  An existing
            # file keeps its mode: it may be someone else's (a mistyped --journal).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(f"BEGIN;{_SCHEMA}COMMIT;")  # all tables or none: another process may look
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal: cannot open {self.path}: {exc}") from None
        self._writes = 0

    def close(self) -> None:
        self._db.close()

    # A test seam, unset in production: crash drills (dvp.testing.crash) set it to kill the
    # process right after a given committed write.
    after_commit: ClassVar[Callable[[int], None] | None] = None

    def _committed(self) -> None:
        self._writes += 1
        if Journal.after_commit is not None:
            Journal.after_commit(self._writes)

    # -- swaps -------------------------------------------------------------------------
    def create(self, swap_id: str, kind: str, spec: dict[str, Any], data: dict[str, Any]) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO swaps (id, kind, spec, data, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (swap_id, kind, json.dumps(spec), json.dumps(data), now, now),
        )
        self._committed()

    def update_data(self, swap_id: str, **fields: Any) -> dict[str, Any]:
        with self._db:
            row = self._db.execute("SELECT data FROM swaps WHERE id = ?", (swap_id,)).fetchone()
            data: dict[str, Any] = json.loads(row[0])
            data.update(fields)
            self._db.execute(
                "UPDATE swaps SET data = ?, updated = ? WHERE id = ?", (json.dumps(data), time.time(), swap_id)
            )
        self._committed()
        return data

    def finish(self, swap_id: str, outcome: str, detail: str | None = None) -> None:
        self._db.execute(
            "UPDATE swaps SET outcome = ?, detail = ?, updated = ? WHERE id = ?",
            (outcome, detail, time.time(), swap_id),
        )
        self._committed()

    def get(self, swap_id: str) -> SwapRecord | None:
        row = self._db.execute(
            "SELECT id, kind, spec, data, outcome, detail, created, updated FROM swaps WHERE id = ?", (swap_id,)
        ).fetchone()
        return _swap(row) if row else None

    def swaps(self, *, unfinished: bool = False) -> list[SwapRecord]:
        sql = "SELECT id, kind, spec, data, outcome, detail, created, updated FROM swaps"
        if unfinished:
            sql += " WHERE outcome IS NULL"
        return [_swap(r) for r in self._db.execute(sql + " ORDER BY created")]

    # -- steps -------------------------------------------------------------------------
    def record(
        self,
        swap_id: str,
        step: str,
        phase: str,
        *,
        ledger: str | None = None,
        tx_id: str | None = None,
        clock: LedgerTime | None = None,
        **detail: Any,
    ) -> None:
        self._db.execute(
            "INSERT INTO steps (swap_id, step, phase, ledger, tx_id, detail, wall, ledger_height, ledger_time)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                swap_id,
                step,
                phase,
                ledger,
                tx_id,
                json.dumps(detail),
                time.time(),
                clock.height if clock else None,
                clock.timestamp if clock else None,
            ),
        )
        self._committed()

    def record_all(self, swap_id: str, step: str, phase: str, rows: list[dict[str, Any]], *,
                   ledger: str | None = None, clock: LedgerTime | None = None) -> None:
        """Several rows of one step in one commit: a crash keeps all of them or none."""
        with self._db:
            for row in rows:
                detail = dict(row)
                tx_id = detail.pop("tx_id", None)
                self._db.execute(
                    "INSERT INTO steps (swap_id, step, phase, ledger, tx_id, detail, wall, ledger_height, ledger_time)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (swap_id, step, phase, ledger, tx_id, json.dumps(detail), time.time(),
                     clock.height if clock else None, clock.timestamp if clock else None),
                )
        self._committed()

    def steps(self, swap_id: str) -> list[Step]:
        rows = self._db.execute(
            "SELECT seq, swap_id, step, phase, ledger, tx_id, detail, wall, ledger_height, ledger_time"
            " FROM steps WHERE swap_id = ? ORDER BY seq",
            (swap_id,),
        )
        return [Step(seq=r[0], swap_id=r[1], step=r[2], phase=r[3], ledger=r[4], tx_id=r[5], detail=json.loads(r[6]),
                     wall=r[7], ledger_height=r[8], ledger_time=r[9]) for r in rows]

    def last(self, swap_id: str, step: str, phase: str) -> Step | None:
        found = [s for s in self.steps(swap_id) if s.step == step and s.phase == phase]
        return found[-1] if found else None


    # -- messages between two parties' agents (dvp.party) -------------------------------
    def message(self, swap_id: str, peer: str, direction: str, kind: str, seq: int, **detail: Any) -> None:
        """One message sent to (``out``) or taken from (``in``) ``peer``: the replay check's
        memory and the bench's message count, both read from what crossed the channel."""
        self._db.execute(
            "INSERT INTO messages (swap_id, peer, direction, kind, seq, wall, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (swap_id, peer, direction, kind, seq, time.time(), json.dumps(detail)),
        )
        self._committed()

    def last_seq(self, swap_id: str, peer: str, direction: str, *, leaving_out: tuple[str, ...] = ()) -> int:
        """The highest sequence number of the messages with ``peer`` for the swap, leaving out
        those of the ``leaving_out`` kinds."""
        marks = ",".join("?" * len(leaving_out))
        where = f" AND kind NOT IN ({marks})" if leaving_out else ""
        row = self._db.execute("SELECT MAX(seq) FROM messages WHERE swap_id = ? AND peer = ? AND direction = ?" + where,
                               (swap_id, peer, direction, *leaving_out)).fetchone()
        return int(row[0] or 0)

    def message_count(self, swap_id: str, peer: str, direction: str) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM messages WHERE swap_id = ? AND peer = ? AND direction = ?",
                               (swap_id, peer, direction)).fetchone()
        return int(row[0])

    def messages(self, swap_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT peer, direction, kind, seq, wall, detail FROM messages WHERE swap_id = ?"
                                " ORDER BY n", (swap_id,))
        return [{"peer": r[0], "direction": r[1], "kind": r[2], "seq": r[3], "wall": r[4], **json.loads(r[5] or "{}")}
                for r in rows]


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign_file(path: Path) -> None:
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


def _swap(row: tuple[Any, ...]) -> SwapRecord:
    return SwapRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5], row[6], row[7])
