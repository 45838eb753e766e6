"""The DvP scenario suites' building blocks, and the scenarios themselves as base classes.

A subclass of :class:`ScenarioSuite` (cross-ledger HTLC) or :class:`AtomicSuite`
(single-ledger) provides the fixtures ``ledger_set`` (a connected :class:`~dvp.ledger_set.LedgerSet`
whose ``seller`` and ``buyer`` hold both assets), ``journal_path`` and ``pair`` (or
``ledger``), and :meth:`~ScenarioSuite.spec` (the swap to run for a pair).  Every scenario
checks the outcome, who ended with what (fees paid in a traded coin added back from the
journal) and that no value was created or lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .. import errors
from ..adapter import AtomicDvp
from ..journal import Step
from ..ledger_set import LedgerSet
from ..models import Behaviour, HtlcPlan, Leg, LockStatus, OrderStatus, Role, SwapSpec, Trade
from ..orchestrator import Outcome, SwapResult
from ..party.policy import SEND_ANY, AcceptPolicy
from ..report import Balances, conservation, fees_paid
from ..state import Action, AtomicSwapState, HtlcSwapState, LegName, Phase, StepName
from ..steps import fees_journaled

SECURITY_AMOUNT = 7
CASH_AMOUNT = 70_000
SETTLED = {"seller_security": -SECURITY_AMOUNT, "buyer_security": SECURITY_AMOUNT,
           "seller_cash": CASH_AMOUNT, "buyer_cash": -CASH_AMOUNT}  # fmt: skip
UNCHANGED = {"seller_security": 0, "buyer_security": 0, "seller_cash": 0, "buyer_cash": 0}
# What an agent's policy must allow to take the tests' swaps (tests/scenarios.py): their short
# reaction window and the fast_forward dev switch (dev chains only; never an agent's default).
DEV_POLICY = AcceptPolicy(reaction_window=5, fast_forward=True, max_send=SEND_ANY)


@dataclass(frozen=True)
class Pair:
    """Securities on one ledger, cash on another (or the same)."""

    security: str
    cash: str
    security_asset: str = "BOND"
    cash_asset: str = "EUR"

    @property
    def id(self) -> str:
        return f"{self.security}->{self.cash}"

    def ledger(self, leg: LegName) -> str:
        return self.security if leg is LegName.SECURITY else self.cash


def spec_for(pair: Pair, *, kind: str | None = None, behaviour: Behaviour | None = None, fast_forward: bool = True,
             **plan: Any) -> SwapSpec:  # fmt: skip
    """SECURITY_AMOUNT of the security against CASH_AMOUNT of the cash, between ``pair``'s ledgers."""
    return SwapSpec(
        kind=kind,  # type: ignore[arg-type]
        trade=Trade(
            security=Leg(ledger=pair.security, asset=pair.security_asset, amount=SECURITY_AMOUNT),
            cash=Leg(ledger=pair.cash, asset=pair.cash_asset, amount=CASH_AMOUNT),
        ),
        plan=HtlcPlan(**plan),
        behaviour=behaviour or Behaviour(),
        fast_forward=fast_forward,
    )


async def snapshot(ledger_set: LedgerSet) -> Balances:
    return await ledger_set.balances(["seller", "buyer"])


def changes(before: Balances, after: Balances, pair: Pair, steps: Any = ()) -> dict[str, int]:
    """What each party gained or lost of the trade's two legs, not counting the fees it
    paid in those assets (UTXO coins), which the journal records per payer."""
    fees = fees_paid(list(steps))

    def d(ledger: str, asset: str, party: str) -> int:
        key = (ledger, asset, party)
        return after[key] - before[key] + fees.get(key, 0)

    return {
        "seller_security": d(pair.security, pair.security_asset, "seller"),
        "buyer_security": d(pair.security, pair.security_asset, "buyer"),
        "seller_cash": d(pair.cash, pair.cash_asset, "seller"),
        "buyer_cash": d(pair.cash, pair.cash_asset, "buyer"),
    }


def assert_conserved(before: Balances, after: Balances, steps: Any = ()) -> None:
    drift = {k: v for k, v in conservation(before, after, fees_paid(list(steps))).items() if v}
    assert not drift, f"value created or destroyed: {drift}"


async def run(ledger_set: LedgerSet, journal_path: Path, spec: SwapSpec) -> tuple[SwapResult, Balances, Balances]:
    """Run one swap; its result and the balances before and after, conservation checked."""
    before = await snapshot(ledger_set)
    result = await ledger_set.orchestrator(journal_path).run(spec)
    after = await snapshot(ledger_set)
    assert_conserved(before, after, result.steps)
    return result, before, after


def done_steps(steps: list[Step]) -> list[str]:
    return [s.step for s in steps if s.phase == Phase.RESULT]


class AtomicSuite:
    """Single-ledger DvP on the ledger of the ``ledger`` fixture (an AtomicDvp adapter)."""

    def pair(self, ledger: str) -> Pair:
        raise NotImplementedError("a subclass says which assets a ledger trades")

    def spec(self, pair: Pair, **kw: Any) -> SwapSpec:
        return spec_for(pair, **kw)

    async def fee_coin(self, ledger_set: LedgerSet, ledger: str, party: str) -> int | None:
        """``party``'s balance of the coin ``ledger`` takes its fees in, where that is no traded
        asset (EVM: the chain's coin, in wei); None (the default): not checked."""
        return None

    async def test_single_ledger_dvp_moves_both_legs_in_one_transaction(self, ledger_set: LedgerSet, journal_path: Path,
                                                                        ledger: str) -> None:  # fmt: skip
        pair = self.pair(ledger)
        result, before, after = await run(ledger_set, journal_path, self.spec(pair))
        assert result.kind == "atomic"
        assert result.outcome is Outcome.SETTLED
        assert changes(before, after, pair, result.steps) == SETTLED
        settle = [s for s in result.steps if s.step == StepName.SETTLE and s.phase == Phase.RESULT]
        assert len(settle) == 1 and settle[0].tx_id

    async def test_buyer_walks_away_the_order_is_cancelled_on_the_ledger(self, ledger_set: LedgerSet, journal_path: Path,
                                                                        ledger: str) -> None:  # fmt: skip
        """The buyer never accepts: the seller's order is cancelled on the ledger before the swap
        is called aborted, the seller is whole but for the journaled fees, and the buyer's
        acceptance afterwards is refused."""
        pair = self.pair(ledger)
        result, before, after = await run(
            ledger_set, journal_path, self.spec(pair, behaviour=Behaviour(counter_locks=False))
        )
        assert result.outcome is Outcome.ABORTED, result.detail
        assert f"order cancelled on {ledger}" in result.detail and "did not accept" in result.detail
        assert done_steps(result.steps) == [StepName.PROPOSE, StepName.CANCEL]
        assert changes(before, after, pair, result.steps) == UNCHANGED
        base = ledger_set.ledgers[ledger]
        adapter = base.require(AtomicDvp)
        state = AtomicSwapState.model_validate(result.data)
        assert state.order is not None and state.order_id is not None
        found = await adapter.get_order(state.order_id)
        assert found is not None and found.status is OrderStatus.CANCELLED
        with pytest.raises(errors.TransactionError):
            await base.wait_all(await adapter.accept_dvp(state.order))
        found = await adapter.get_order(state.order_id)
        assert found is not None and found.status is OrderStatus.CANCELLED
        assert await snapshot(ledger_set) == after

    async def test_an_acceptance_that_lands_before_the_cancellation_settles(self, ledger_set: LedgerSet, journal_path: Path,
                                                                           ledger: str, monkeypatch: Any) -> None:  # fmt: skip
        """Cancellation racing the buyer's acceptance: the ledger decides.  Here the acceptance
        is final first, so the ledger refuses the seller's cancellation and the swap settles.
        A ledger that mined the refused cancellation (EVM) charged its fee: journaled against it,
        and the seller's fee coin fell by exactly the fees journaled for it (issue 20)."""
        pair = self.pair(ledger)
        spec = self.spec(pair, behaviour=Behaviour(counter_locks=False))
        seller = spec.trade.seller
        coin = await self.fee_coin(ledger_set, ledger, seller)
        base = ledger_set.ledgers[ledger]
        adapter = base.require(AtomicDvp)
        cancel = adapter.cancel_dvp

        async def accepted_first(order: Any) -> Any:
            await base.wait_all(await adapter.accept_dvp(order))
            return await cancel(order)

        monkeypatch.setattr(adapter, "cancel_dvp", accepted_first)
        result, before, after = await run(ledger_set, journal_path, spec)
        assert result.outcome is Outcome.SETTLED, result.detail
        assert "landed before the cancellation" in result.detail
        assert changes(before, after, pair, result.steps) == SETTLED
        found = await adapter.get_order(AtomicSwapState.model_validate(result.data).order_id or "")
        assert found is not None and found.status is OrderStatus.SETTLED
        refused = [s for s in result.steps if s.step == StepName.CANCEL and s.phase == Phase.FINAL]
        assert all(s.detail.get("reverted") and s.detail.get("fee") for s in refused), refused
        if coin is not None:
            assert refused, "the refused cancellation was mined: its fee is journaled"
            paid = sum(
                f for (_, payer, _, asset), f in fees_journaled(result.steps).items() if payer == seller and not asset
            )
            left = await self.fee_coin(ledger_set, ledger, seller)
            assert left is not None and coin - left == paid, (coin, left, paid)


class ScenarioSuite:
    """Cross-ledger HTLC DvP between the ledgers of the ``pair`` fixture (a :class:`Pair`)."""

    def spec(self, pair: Pair, **kw: Any) -> SwapSpec:
        return spec_for(pair, **kw)

    @pytest.mark.parametrize("holder", [Role.SELLER, Role.BUYER])
    async def test_cross_ledger_happy_path(
        self, ledger_set: LedgerSet, journal_path: Path, pair: Pair, holder: Role
    ) -> None:
        result, before, after = await run(ledger_set, journal_path, self.spec(pair, secret_holder=holder))
        assert result.outcome is Outcome.SETTLED, result.detail
        assert changes(before, after, pair, result.steps) == SETTLED
        first, second = LegName.sent_by(holder), LegName.sent_by(holder.other)
        assert done_steps(result.steps) == [
            StepName.of(Action.LOCK, first), StepName.of(Action.AUDIT, first),
            StepName.of(Action.LOCK, second), StepName.of(Action.AUDIT, second),
            StepName.of(Action.CLAIM, second), StepName.EXTRACT_SECRET, StepName.of(Action.CLAIM, first),
        ]  # fmt: skip
        # The secret reached the other party through the ledger, and it is the journaled one.
        lock_id = HtlcSwapState.model_validate(result.data).lock_id(second)
        assert lock_id is not None
        lock = await ledger_set.ledgers[pair.ledger(second)].get_lock(lock_id)
        assert lock is not None and lock.status is LockStatus.CLAIMED and lock.preimage == result.data["secret"]

    async def test_counterparty_locks_first_when_asked(
        self, ledger_set: LedgerSet, journal_path: Path, pair: Pair
    ) -> None:
        result, before, after = await run(ledger_set, journal_path, self.spec(pair, first_locker=Role.BUYER))
        assert result.outcome is Outcome.SETTLED, result.detail
        assert done_steps(result.steps)[0] == StepName.LOCK_CASH
        assert changes(before, after, pair, result.steps) == SETTLED

    async def test_buyer_never_locks_seller_refunds(
        self, ledger_set: LedgerSet, journal_path: Path, pair: Pair
    ) -> None:
        result, before, after = await run(
            ledger_set, journal_path, self.spec(pair, behaviour=Behaviour(counter_locks=False))
        )
        assert result.outcome is Outcome.REFUNDED
        assert changes(before, after, pair, result.steps) == UNCHANGED
        steps = done_steps(result.steps)
        assert StepName.LOCK_CASH not in steps and StepName.REFUND_SECURITY in steps

    async def test_seller_never_claims_both_refund(self, ledger_set: LedgerSet, journal_path: Path, pair: Pair) -> None:
        result, before, after = await run(
            ledger_set, journal_path, self.spec(pair, behaviour=Behaviour(holder_claims=False))
        )
        assert result.outcome is Outcome.REFUNDED
        assert changes(before, after, pair, result.steps) == UNCHANGED
        assert done_steps(result.steps)[-2:] == [StepName.REFUND_CASH, StepName.REFUND_SECURITY]
        state = HtlcSwapState.model_validate(result.data)
        for leg in LegName:
            lock_id = state.lock_id(leg)
            assert lock_id is not None
            lock = await ledger_set.ledgers[pair.ledger(leg)].get_lock(lock_id)
            assert lock is not None and lock.status is LockStatus.REFUNDED and lock.preimage is None

    async def test_buyer_misses_its_window_principal_risk_is_reported(self, ledger_set: LedgerSet, journal_path: Path,
                                                                      pair: Pair) -> None:  # fmt: skip
        """The Stella principal-risk case: the secret is public, the buyer does not claim in time."""
        result, before, after = await run(
            ledger_set, journal_path, self.spec(pair, behaviour=Behaviour(counter_claims=False))
        )
        assert result.outcome is Outcome.PRINCIPAL_LOSS
        assert "buyer" in result.detail and f"lost {CASH_AMOUNT} {pair.cash_asset}" in result.detail
        assert changes(before, after, pair, result.steps) == {
            "seller_security": 0, "buyer_security": 0, "seller_cash": CASH_AMOUNT, "buyer_cash": -CASH_AMOUNT,
        }  # fmt: skip
        # Too late: the buyer's claim with the now-public secret is refused by the ledger.
        secret = bytes.fromhex(result.data["secret"])
        with pytest.raises(errors.LockError):
            await ledger_set.ledgers[pair.security].claim(result.data["lock_security"], secret, submitter="buyer")
        assert await snapshot(ledger_set) == after

    async def test_two_swaps_at_once_on_the_same_accounts(
        self, ledger_set: LedgerSet, journal_path: Path, pair: Pair
    ) -> None:
        orch = ledger_set.orchestrator(journal_path)
        before = await snapshot(ledger_set)
        results = await asyncio.gather(orch.run(self.spec(pair)), orch.run(self.spec(pair, secret_holder=Role.BUYER)))
        after = await snapshot(ledger_set)
        steps = [s for r in results for s in r.steps]
        assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED]
        assert_conserved(before, after, steps)
        assert changes(before, after, pair, steps) == {k: 2 * v for k, v in SETTLED.items()}
