"""The timeout rules of a cross-ledger swap (docs/design.md, rules 3 and 4).

The secret holder's leg expires last.  After the holder reveals the secret on the
counter leg (at the latest just before that leg expires), the counterparty must
see the reveal final, submit its own claim on the holder's ledger and have it
final there, across both ledgers' clock skew, plus a reaction window.  That sum
is the minimum gap between the two expiries.

The plan check and the runtime check before the second lock are one computation,
:func:`second_leg_seconds`: the second leg's expiry is anchored to the first leg's, so
the gap between them is the planned one however long the first lock took, and the
plan check asks the same function about a first leg locked and final without delay.
A plan the check accepts therefore settles when both parties act promptly.  Every
figure is in whole seconds, rounded up, so the numbers in messages are the ones used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UnsafeTimeouts
from .models import Finality, HtlcPlan


@dataclass(frozen=True)
class TimeoutBudget:
    gap_required: int  # holder expiry - counter expiry, at least
    claim_margin: int  # rule 4: the holder never reveals closer than this to the counter leg's expiry
    claim_window: int  # the counter leg must have more than this left when the holder claims it
    first_delay: int  # a prompt first lock: until it is final and audited

    def describe(self) -> str:
        return f"gap >= {self.gap_required}s, holder claims >= {self.claim_margin}s before expiry"


def _s(value: float) -> str:
    """Seconds as typed: ``1s``, ``0.25s`` (no float noise)."""
    return f"{value:.2f}".rstrip("0").rstrip(".") + "s"


def budget(
    plan: HtlcPlan, holder_ledger: Finality, counter_ledger: Finality, first_ledger: Finality | None = None
) -> TimeoutBudget:
    """The plan's figures; ``first_ledger`` is the ledger locked first (default: the holder's)."""
    gap = (
        counter_ledger.expected_seconds
        + holder_ledger.expected_seconds
        + counter_ledger.clock_skew
        + holder_ledger.clock_skew
        + plan.reaction_window
    )
    margin = plan.claim_margin
    if margin is None:
        margin = math.ceil(counter_ledger.expected_seconds + counter_ledger.clock_skew)
    first = first_ledger or holder_ledger
    return TimeoutBudget(
        gap_required=math.ceil(gap),
        claim_margin=margin,
        claim_window=math.ceil(margin + counter_ledger.expected_seconds),
        first_delay=math.ceil(first.expected_seconds + first.clock_skew),
    )


def check_gap(
    plan: HtlcPlan, holder_ledger: Finality, counter_ledger: Finality, b: TimeoutBudget, *, time_left: bool = False
) -> None:
    """``time_left``: the plan's timeouts stand for the seconds left on agreed expiries (see
    :func:`check_time_left`), and the message says so rather than naming the plan's fields."""
    gap = plan.holder_timeout - plan.counter_timeout
    if gap < b.gap_required:
        what = (
            f"time left: the holder's leg has {plan.holder_timeout}s left, a {gap}s gap over the counter "
            f"leg's {plan.counter_timeout}s"
            if time_left
            else f"plan.holder_timeout: {plan.holder_timeout}s leaves a {gap}s gap over counter_timeout "
            f"{plan.counter_timeout}s"
        )
        raise UnsafeTimeouts(
            f"{what}; at least {b.gap_required}s needed "
            f"(finality {_s(counter_ledger.expected_seconds)} + {_s(holder_ledger.expected_seconds)}, "
            f"skew {_s(counter_ledger.clock_skew)} + {_s(holder_ledger.clock_skew)}, "
            f"reaction window {plan.reaction_window}s)"
        )


def second_leg_seconds(
    plan: HtlcPlan,
    holder_ledger: Finality,
    counter_ledger: Finality,
    *,
    holder_first: bool,
    first_left: float,
    time_left: bool = False,
) -> int:
    """How many seconds the second leg may run if it is locked now, with ``first_left``
    seconds left on the first leg; UnsafeTimeouts (with the numbers) when locking it now
    would not leave the holder time to claim.

    Holder first: the counter leg expires the planned gap before the holder's leg and never
    later than ``counter_timeout`` after its lock.  Counter first: the holder's leg expires the
    planned gap after the counter leg, and the counter leg must still leave the holder time
    to lock, have its lock audited and claim outside the safety margin."""
    first = holder_ledger if holder_first else counter_ledger
    b = budget(plan, holder_ledger, counter_ledger, first)
    check_gap(plan, holder_ledger, counter_ledger, b, time_left=time_left)
    gap = plan.holder_timeout - plan.counter_timeout
    field = "time left" if time_left else "plan.counter_timeout"
    if holder_first:
        seconds = min(plan.counter_timeout, math.floor(first_left) - gap)
        if seconds <= b.claim_window:
            raise UnsafeTimeouts(
                f"{field}: the counter leg would run {seconds}s from its lock "
                f"({math.floor(first_left)}s left on the holder's leg less the {gap}s gap); the holder needs "
                f"more than {b.claim_window}s to claim it (safety margin {b.claim_margin}s + finality "
                f"{_s(counter_ledger.expected_seconds)})"
            )
        return seconds
    room = math.floor(first_left) - math.ceil(holder_ledger.expected_seconds)
    if room <= b.claim_window:
        raise UnsafeTimeouts(
            f"{field}: {math.floor(first_left)}s left on the counter leg leaves the holder "
            f"{room}s once its own lock is final; it needs more than {b.claim_window}s to claim "
            f"(safety margin {b.claim_margin}s + finality {_s(counter_ledger.expected_seconds)})"
        )
    return math.ceil(first_left) + gap


def check_plan(
    plan: HtlcPlan, holder_ledger: Finality, counter_ledger: Finality, *, time_left: bool = False
) -> TimeoutBudget:
    """Refuse an unsafe plan before anything is locked, with the numbers in the message: the
    runtime check of :func:`second_leg_seconds` for a first lock that is final without delay."""
    holder_first = plan.locks_first is plan.secret_holder
    first = holder_ledger if holder_first else counter_ledger
    b = budget(plan, holder_ledger, counter_ledger, first)
    first_timeout = plan.timeout_for(plan.locks_first)
    second_leg_seconds(
        plan,
        holder_ledger,
        counter_ledger,
        holder_first=holder_first,
        first_left=first_timeout - b.first_delay,
        time_left=time_left,
    )
    return b


def check_time_left(
    plan: HtlcPlan, holder_left: int, counter_left: int, holder_ledger: Finality, counter_ledger: Finality
) -> TimeoutBudget:
    """:func:`check_plan` for legs whose expiries are already agreed: would a swap started now,
    with ``holder_left`` and ``counter_left`` seconds left on the two legs, still be safe?
    Messages speak of the time left, not of the plan's timeouts (a 60/30 plan with 20s and
    10s left is not a plan of 20s)."""
    now = HtlcPlan.model_validate({**plan.model_dump(), "holder_timeout": holder_left, "counter_timeout": counter_left})
    return check_plan(now, holder_ledger, counter_ledger, time_left=True)


def too_late_to_lock(left: float, needed: float) -> str:
    """Why the counterparty does not lock: the counter leg's time left is not more than the
    holder needs to claim it."""
    return f"too late to lock: the counter leg has {_s(left)} left; the holder needs more than {_s(needed)} to claim it"
