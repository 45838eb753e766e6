"""A party's proposal and agreement are typed (dvp.terms) and journaled in the same JSON as
when the journal kept them as plain dicts: tests/unit/data/party-side-untyped.json was
written by that code (a proposal waiting for its answer, then the agreement)."""

from __future__ import annotations

import json
from pathlib import Path

from dvp.journal import Journal
from dvp.models import HtlcPlan, Leg, Role, SwapSpec, Trade
from dvp.state import HtlcSwapState, PartySide, state_of
from dvp.terms import Agreement, LegName, LegPlan, Proposal

OLD = json.loads((Path(__file__).parent / "data" / "party-side-untyped.json").read_text())
HASHLOCK = "33" * 32


def _proposal() -> Proposal:
    spec = SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(holder_timeout=100, counter_timeout=50, reaction_window=5),
    )
    return Proposal(
        swap_id="s1",
        proposer="seller",
        spec=spec,
        security=LegPlan(expiry=1800000100, nonce="11" * 32),
        cash=LegPlan(expiry=1800000050, nonce="22" * 32),
    )


def _side(**terms: Proposal | Agreement) -> PartySide:
    return PartySide(party="seller", role=Role.SELLER, peer="buyer", proposer="seller", **terms)


def test_an_untyped_journal_entry_loads_as_typed_terms():
    proposed = state_of("htlc", OLD["proposed"])
    agreed = state_of("htlc", OLD["agreed"])
    assert isinstance(proposed, HtlcSwapState) and isinstance(agreed, HtlcSwapState)
    assert proposed.side is not None and agreed.side is not None
    assert proposed.side.proposal == _proposal() and proposed.side.agreement is None
    assert agreed.side.agreement == Agreement(proposal=_proposal(), hashlock=HASHLOCK)
    assert agreed.side.agreement.terms(LegName.CASH).amount == 1000


def test_typed_terms_are_journaled_in_the_same_json_as_before():
    proposed = HtlcSwapState(side=_side(proposal=_proposal()))
    agreed = HtlcSwapState(hashlock=HASHLOCK, side=_side(agreement=Agreement(proposal=_proposal(), hashlock=HASHLOCK)))
    assert proposed.dump() == OLD["proposed"]  # unset fields (hashlock, plan.first_locker) kept as null
    assert agreed.dump() == OLD["agreed"]
    # The agent's path from one to the other: a copy with the agreement, the proposal dropped.
    side = proposed.side.model_copy(update={"agreement": agreed.side.agreement, "proposal": None})
    assert proposed.model_copy(update={"hashlock": HASHLOCK, "side": side}).dump() == OLD["agreed"]


def test_an_old_journal_row_reads_back_typed(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        journal.create("s1", "htlc", _proposal().spec.model_dump(mode="json"), OLD["proposed"])
        journal.update_data("s1", **OLD["agreed"])
        record = journal.get("s1")
        assert record is not None
        state = state_of(record.kind, record.data)
        assert isinstance(state, HtlcSwapState) and state.side is not None
        assert state.side.agreement == Agreement(proposal=_proposal(), hashlock=HASHLOCK)
        assert state.dump() == OLD["agreed"]
    finally:
        journal.close()
