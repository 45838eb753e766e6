"""The timeout rules of a cross-ledger swap (DESIGN rules 3 and 4).

The secret holder's leg expires last.  After the holder reveals the secret on the
counter leg (at the latest just before that leg expires), the counterparty must
see the reveal final, submit its own claim on the holder's ledger and have it
final there, across both ledgers' clock skew, plus a reaction window.  That sum
is the minimum gap between the two expiries.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnsafeTimeouts
from .models import Finality, HtlcPlan


@dataclass(frozen=True)
class TimeoutBudget:
    gap_required: float
    claim_margin: float

    def describe(self) -> str:
        return f"gap >= {self.gap_required:.0f}s, holder claims >= {self.claim_margin:.0f}s before expiry"


def budget(plan: HtlcPlan, holder_ledger: Finality, counter_ledger: Finality) -> TimeoutBudget:
    gap = (
        counter_ledger.expected_seconds
        + holder_ledger.expected_seconds
        + counter_ledger.clock_skew
        + holder_ledger.clock_skew
        + plan.reaction_window
    )
    margin = plan.claim_margin
    if margin is None:
        margin = counter_ledger.expected_seconds + counter_ledger.clock_skew
    return TimeoutBudget(gap_required=gap, claim_margin=margin)


def check_plan(plan: HtlcPlan, holder_ledger: Finality, counter_ledger: Finality) -> TimeoutBudget:
    """Refuse an unsafe plan before anything is locked, with the numbers in the message."""
    b = budget(plan, holder_ledger, counter_ledger)
    gap = plan.holder_timeout - plan.counter_timeout
    if gap < b.gap_required:
        raise UnsafeTimeouts(
            f"plan.holder_timeout: {plan.holder_timeout}s leaves a {gap}s gap over counter_timeout "
            f"{plan.counter_timeout}s; at least {b.gap_required:.0f}s needed "
            f"(finality {counter_ledger.expected_seconds:.0f}s + {holder_ledger.expected_seconds:.0f}s, "
            f"skew {counter_ledger.clock_skew:.0f}s + {holder_ledger.clock_skew:.0f}s, "
            f"reaction window {plan.reaction_window}s)"
        )
    usable = plan.counter_timeout - b.claim_margin - counter_ledger.expected_seconds
    if usable <= 0:
        raise UnsafeTimeouts(
            f"plan.counter_timeout: {plan.counter_timeout}s leaves no time to claim before the "
            f"{b.claim_margin:.0f}s safety margin and {counter_ledger.expected_seconds:.0f}s finality"
        )
    return b
