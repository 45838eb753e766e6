"""What an agent's journal says about its operation, read read-only: for `dvp agent status`
and the metrics endpoint (:mod:`.metrics`).

Both read the journal through a separate read-only SQLite connection, so they work while the
agent runs (SQLite's WAL lets a reader see the last committed write) and when it does not,
and never write to it.  Everything here is derived from the journal's rows, so it survives a
restart; the refusals over the agent's limits are the one exception (a refused message is
not journaled, by design), counted for the process's lifetime.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from dvp.errors import ConfigError
from dvp.journal import refuse_foreign_file
from dvp.models import SwapSpec
from dvp.state import Action, HtlcSwapState, LegName, Phase, StepName

UNFINISHED = "unfinished"  # the outcome label of a swap without one yet


@dataclass(frozen=True)
class Latency:
    step: str
    ledger: str
    seconds: float


@dataclass(frozen=True)
class Leg:
    """One leg of an unfinished swap as this party's journal knows it."""

    leg: str
    ledger: str
    asset: str
    amount: int
    lock_id: str | None
    expiry: int | None  # the agreed expiry, in the ledger's own clock unit
    wall_deadline: float  # the swap's creation plus the plan's timeout for this leg (unix seconds)
    mine: bool
    locked: bool  # this party's own lock is on its ledger (journaled result, not refunded)


@dataclass(frozen=True)
class OpenSwap:
    id: str
    peer: str | None
    role: str | None
    agreed: bool
    created: float
    legs: list[Leg]


@contextmanager
def read_only(path: Path, *, check: bool = True) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the journal at ``path``; None if it does not exist yet (an
    agent that never ran).  With ``check``, a file that is not a dvp journal is refused,
    untouched.  The agent's own process must not ``check``: that opens and closes the file
    outside SQLite, and closing any descriptor of a file drops every POSIX lock the process
    holds on it, the agent's own connection's included; the next other process to close its
    connection then takes itself for the last one and deletes the WAL under the agent, whose
    later writes are lost (seen in tests/agent/test_ops.py)."""
    if check:
        refuse_foreign_file(path)
    if not path.exists() or path.stat().st_size == 0:
        yield None
        return
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise ConfigError(f"journal: cannot read {path}: {exc}") from None
    try:
        yield db
    except sqlite3.Error as exc:
        raise ConfigError(f"journal: cannot read {path}: {exc}") from None
    finally:
        db.close()


def outcomes(db: sqlite3.Connection | None) -> dict[str, int]:
    """Swaps by outcome (``unfinished`` for those without one)."""
    if db is None:
        return {}
    return {o or UNFINISHED: n for o, n in db.execute("SELECT outcome, COUNT(*) FROM swaps GROUP BY outcome")}


def message_counts(db: sqlite3.Connection | None) -> dict[tuple[str, str, str], int]:
    """Journaled messages by (peer, direction, kind)."""
    if db is None:
        return {}
    rows = db.execute("SELECT peer, direction, kind, COUNT(*) FROM messages GROUP BY peer, direction, kind")
    return {(p, d, k): n for p, d, k, n in rows}


def last_contact(db: sqlite3.Connection | None) -> dict[str, float]:
    """The wall time of the last message journaled as taken from each peer."""
    if db is None:
        return {}
    return {p: w for p, w in db.execute("SELECT peer, MAX(wall) FROM messages WHERE direction = 'in' GROUP BY peer")}


def latencies(db: sqlite3.Connection | None) -> list[Latency]:
    """Each step's time from its first intent to its first result, per swap (steps that have
    both: a step skipped or still in flight has no latency)."""
    if db is None:
        return []
    started: dict[tuple[str, str], tuple[float, str]] = {}
    found: list[Latency] = []
    done: set[tuple[str, str]] = set()
    rows = db.execute(
        "SELECT swap_id, step, phase, ledger, wall FROM steps WHERE phase IN (?, ?) ORDER BY seq",
        (Phase.INTENT.value, Phase.RESULT.value),
    )
    for swap_id, step, phase, ledger, wall in rows:
        key = (swap_id, step)
        if phase == Phase.INTENT.value:
            started.setdefault(key, (wall, ledger or ""))
        elif key in started and key not in done:
            done.add(key)
            at, intent_ledger = started[key]
            found.append(Latency(step, ledger or intent_ledger, max(0.0, wall - at)))
    return found


def open_swaps(db: sqlite3.Connection | None) -> list[OpenSwap]:
    """The unfinished swaps, oldest first, with what the journal knows of each leg."""
    if db is None:
        return []
    swaps = []
    for swap_id, kind, spec_text, data_text, created in db.execute(
        "SELECT id, kind, spec, data, created FROM swaps WHERE outcome IS NULL ORDER BY created"
    ):
        swaps.append(_open_swap(db, swap_id, kind, spec_text, data_text, created))
    return swaps


def _open_swap(
    db: sqlite3.Connection, swap_id: str, kind: str, spec_text: str, data_text: str, created: float
) -> OpenSwap:
    try:
        if kind != "htlc":  # a single-ledger swap: its id and age only
            raise ValueError(kind)
        spec = SwapSpec.model_validate_json(spec_text)
        state = HtlcSwapState.model_validate(json.loads(data_text))
    except (ValidationError, ValueError):
        return OpenSwap(swap_id, None, None, False, created, [])
    side = state.side
    results = {
        s
        for (s,) in db.execute("SELECT step FROM steps WHERE swap_id = ? AND phase = ?", (swap_id, Phase.RESULT.value))
    }
    legs = []
    for leg_name in LegName:
        sender = leg_name.sender
        leg = spec.trade.leg_sent_by(sender)
        timeout = spec.plan.timeout_for(sender)
        terms = state.terms(leg_name)
        mine = side is not None and side.role is sender
        locked = (
            mine
            and StepName.of(Action.LOCK, leg_name) in results
            and StepName.of(Action.REFUND, leg_name) not in results
        )
        legs.append(
            Leg(
                leg_name.value,
                leg.ledger,
                leg.asset,
                leg.amount,
                state.lock_id(leg_name),
                terms.expiry if terms is not None else None,
                created + timeout,
                mine,
                locked,
            )
        )
    return OpenSwap(
        swap_id,
        side.peer if side else None,
        side.role.value if side else None,
        bool(side and side.agreement),
        created,
        legs,
    )


def locked_value(swaps: list[OpenSwap]) -> Counter[tuple[str, str]]:
    """What this party has locked now, by (ledger, asset), in base units."""
    held: Counter[tuple[str, str]] = Counter()
    for swap in swaps:
        for leg in swap.legs:
            if leg.locked:
                held[(leg.ledger, leg.asset)] += leg.amount
    return held


def ago(wall: float | None, now: float | None = None) -> str:
    if wall is None:
        return "never"
    seconds = max(0, int((now or time.time()) - wall))
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(wall))} UTC ({seconds}s ago)"


def as_dict(swap: OpenSwap) -> dict[str, Any]:
    return {
        "id": swap.id,
        "peer": swap.peer,
        "role": swap.role,
        "agreed": swap.agreed,
        "created": swap.created,
        "legs": [leg.__dict__ for leg in swap.legs],
    }
