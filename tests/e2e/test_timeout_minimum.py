"""A plan accepted at exactly the stated minimum settles when both parties act promptly
(issue 10, item 2), on every cross-ledger pair; one second less is refused before anything
is locked, naming the minimum."""

from __future__ import annotations

import pytest

from dvp import errors
from dvp.orchestrator import Outcome
from dvp.timeouts import budget

from ..scenarios import SETTLED, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS


@pytest.mark.parametrize("pair", CROSS_PAIRS, ids=[p.id for p in CROSS_PAIRS])
async def test_a_plan_at_exactly_the_minimum_gap_settles(ledger_set, journal_path, pair):
    orch = ledger_set.orchestrator(journal_path)
    spec = spec_for(pair)  # the seller holds the secret and locks first
    holder, counter = ledger_set.ledgers[pair.security].finality, ledger_set.ledgers[pair.cash].finality
    needed = budget(spec.plan, holder, counter).gap_required
    at_minimum = spec.model_copy(
        update={"plan": spec.plan.model_copy(update={"holder_timeout": spec.plan.counter_timeout + needed})}
    )
    below = spec.model_copy(
        update={"plan": spec.plan.model_copy(update={"holder_timeout": spec.plan.counter_timeout + needed - 1})}
    )
    with pytest.raises(errors.UnsafeTimeouts, match=f"at least {needed}s needed"):
        orch.validate(below)
    before = await snapshot(ledger_set)
    result = await orch.run(at_minimum)
    assert result.outcome is Outcome.SETTLED, result.detail
    assert changes(before, await snapshot(ledger_set), pair, result.steps) == SETTLED
    holder_expiry, counter_expiry = result.data["terms_security"]["expiry"], result.data["terms_cash"]["expiry"]
    assert holder_expiry > counter_expiry or pair.cash == "btc"  # btc counts blocks, not seconds
