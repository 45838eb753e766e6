"""How much one pinned peer can make this agent do, whatever it sends.

A peer that passed mutual TLS and signs every message can still flood: pings on a finished
swap, notices naming made-up locks (each a ledger read), proposals under fresh ids, idle
connections.  Each agent bounds that with its own :class:`Limits` (``limits:`` in
``agent.yaml``): a message over a bound is refused with the reason and counted, never
journaled row by row; a proposal over a bound gets a REJECT; log lines the peer causes are
rate-limited, with the number suppressed said on the next line let through.  The channel
(:mod:`dvp_agent.grpc_channel`) bounds connections and calls with the same settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from pydantic import Field

from ..models import Frozen

Count = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
Seconds = Annotated[int, Field(ge=1, le=24 * 3600, strict=True)]


class Limits(Frozen):
    """Per peer; the defaults suit one counterparty trading a few swaps at a time."""

    messages_per_minute: Count = 600  # every message from the peer (a quarter of it at once)
    messages_per_swap: Count = 2000  # messages journaled per swap (a ping every 5 s while waiting); more are refused
    proposals_per_minute: Count = 30  # new proposals checked (each reads the ledgers), all at once at most
    unfinished_swaps: Count = 20  # this agent's unfinished swaps; a new proposal beyond is rejected
    other_locks_per_swap: Count = 8  # notices naming a lock other than the agreed one (each a ledger read), per swap
    other_locks_per_minute: Count = 30  # the same, over all the peer's swaps (all of it at once at most)
    log_lines_per_minute: Count = 60  # lines the peer's messages cause; more are counted, then summarised
    connections: Count = 8  # the peer's connections the server holds at once; more are refused, then closed
    concurrent_calls: Count = 32  # calls it serves at once; more are refused (RESOURCE_EXHAUSTED)
    idle_seconds: Seconds = 120  # a connection with no call for this long is closed
    # A connection on which no pinned peer called by then (its TLS handshake unfinished, or
    # finished and silent) is closed: a TLS handshake on a loaded machine takes milliseconds.
    handshake_seconds: Seconds = 3


class Bucket:
    """A token bucket: ``rate`` per minute, at most ``burst`` at once."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate / 60.0, max(1, burst), clock
        self.tokens, self.at = float(self.burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Admission:
    """One peer's budgets, and what was refused over them (by reason, for reports and tests)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic):
        self.limits, self.clock = limits, clock
        self.messages = Bucket(limits.messages_per_minute, limits.messages_per_minute // 4, clock)
        self.proposals = Bucket(limits.proposals_per_minute, limits.proposals_per_minute, clock)
        self.other_locks: dict[str, int] = {}
        self.other_locks_rate = Bucket(limits.other_locks_per_minute, limits.other_locks_per_minute, clock)
        self.refused: dict[str, int] = {}

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def other_lock(self, swap_id: str) -> str | None:
        """One more notice naming a lock other than the agreed one for ``swap_id``: the limit it
        is over (per swap, then per minute over all the peer's swaps), or None."""
        seen = self.other_locks.get(swap_id, 0)
        if seen >= self.limits.other_locks_per_swap:
            return "other_locks_per_swap"
        if not self.other_locks_rate.take():  # a count per swap alone: a peer with many swaps reads many times
            return "other_locks_per_minute"
        if len(self.other_locks) >= 4 * self.limits.unfinished_swaps:  # bounded: drop the oldest swap's count
            self.other_locks.pop(next(iter(self.other_locks)))
        self.other_locks[swap_id] = seen + 1
        return None


class QuietLog:
    """Passes at most ``per_minute`` lines a minute to ``out``; the lines held back are counted
    and the count is said with the next line let through."""

    def __init__(self, out: Callable[[str, str], None], per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.out, self.bucket = out, Bucket(per_minute, per_minute, clock)
        self.suppressed = 0
        self.total_suppressed = 0

    def __call__(self, swap_id: str, line: str) -> None:
        if not self.bucket.take():
            self.suppressed += 1
            self.total_suppressed += 1
            return
        if self.suppressed:
            line = f"{line} ({self.suppressed} similar lines suppressed before this one)"
            self.suppressed = 0
        self.out(swap_id, line)

    def flush(self, swap_id: str = "-") -> None:
        """Say how many lines were held back since the last one let through, if any."""
        if self.suppressed:
            self.out(swap_id, f"{self.suppressed} similar lines suppressed (limits.log_lines_per_minute)")
            self.suppressed = 0
