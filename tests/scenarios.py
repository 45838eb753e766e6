"""The scenario kit (:mod:`dvp.testing.scenarios`) bound to the testbed: which swap a pair runs."""

from __future__ import annotations

from pathlib import Path

from dvp.ledger_set import LedgerSet
from dvp.models import Behaviour, SwapSpec
from dvp.orchestrator import Outcome
from dvp.testing import scenarios
from dvp.testing.scenarios import (  # noqa: F401 - the suites' building blocks, from the kit
    CASH_AMOUNT,
    SECURITY_AMOUNT,
    SETTLED,
    UNCHANGED,
    assert_conserved,
    changes,
    run,
    snapshot,
)

from .testbed import NO_TIME_TRAVEL, Pair


def spec_for(pair: Pair, *, kind: str | None = None, behaviour: Behaviour | None = None, **plan) -> SwapSpec:
    """A trade of BOND on ``pair.security`` against the cash asset of ``pair.cash``.

    Where a ledger has no time travel, refunds wait for real expiry: shorter timeouts."""
    real_time = bool(NO_TIME_TRAVEL & {pair.security, pair.cash})
    # Jump the clock of a ledger that can (btc mines no block by itself); the other waits.
    fast_forward = bool({pair.security, pair.cash} - NO_TIME_TRAVEL)
    timeouts = (
        {"holder_timeout": 30, "counter_timeout": 15} if real_time else {"holder_timeout": 60, "counter_timeout": 30}
    )
    plan = {**timeouts, "reaction_window": 5, **plan}
    return scenarios.spec_for(pair, kind=kind, behaviour=behaviour, fast_forward=fast_forward, **plan)


async def settles_once(ledger_set: LedgerSet, journal_path: Path, pair: Pair) -> None:
    """The happy path once, for a pair outside the full scenario suite: settled, both legs moved."""
    result, before, after = await run(ledger_set, journal_path, spec_for(pair))
    assert result.outcome is Outcome.SETTLED, result.detail
    assert changes(before, after, pair, result.steps) == SETTLED
