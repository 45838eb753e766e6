"""Helpers the scenario suites share: building specs and checking who ended with what."""

from __future__ import annotations

from dvp.models import Behaviour, HtlcPlan, Leg, SwapSpec, Trade
from dvp.network import Network
from dvp.report import conservation, fees_paid

from .testbed import NO_TIME_TRAVEL, Pair, cash_asset

SECURITY_AMOUNT = 7
CASH_AMOUNT = 70_000


def spec_for(pair: Pair, *, kind: str | None = None, behaviour: Behaviour | None = None, **plan) -> SwapSpec:
    """A trade of BOND on ``pair.security`` against the cash asset of ``pair.cash``.

    Where a ledger has no time travel, refunds wait for real expiry: shorter timeouts."""
    fast_forward = not NO_TIME_TRAVEL & {pair.security, pair.cash}
    timeouts = {"holder_timeout": 60, "counter_timeout": 30} if fast_forward else {"holder_timeout": 30, "counter_timeout": 15}
    plan = {**timeouts, "reaction_window": 5, **plan}
    return SwapSpec(
        kind=kind,
        trade=Trade(
            security=Leg(ledger=pair.security, asset="BOND", amount=SECURITY_AMOUNT),
            cash=Leg(ledger=pair.cash, asset=cash_asset(pair.cash), amount=CASH_AMOUNT),
        ),
        plan=HtlcPlan(**plan),
        behaviour=behaviour or Behaviour(),
        fast_forward=fast_forward,
    )


async def snapshot(net: Network) -> dict:
    return await net.balances(["seller", "buyer"])


def changes(before: dict, after: dict, pair: Pair, steps=()) -> dict[str, int]:
    """What each party gained or lost of the trade's two legs, not counting the fees
    it paid in those assets (UTXO coins), which the journal records per payer."""
    fees = fees_paid(list(steps))

    def d(ledger, asset, party):
        key = (ledger, asset, party)
        return after[key] - before[key] + fees.get(key, 0)

    cash = cash_asset(pair.cash)
    return {
        "seller_security": d(pair.security, "BOND", "seller"),
        "buyer_security": d(pair.security, "BOND", "buyer"),
        "seller_cash": d(pair.cash, cash, "seller"),
        "buyer_cash": d(pair.cash, cash, "buyer"),
    }


SETTLED = {"seller_security": -SECURITY_AMOUNT, "buyer_security": SECURITY_AMOUNT,
           "seller_cash": CASH_AMOUNT, "buyer_cash": -CASH_AMOUNT}
UNCHANGED = {"seller_security": 0, "buyer_security": 0, "seller_cash": 0, "buyer_cash": 0}


def assert_conserved(before: dict, after: dict, steps=()) -> None:
    drift = {k: v for k, v in conservation(before, after, fees_paid(list(steps))).items() if v}
    assert not drift, f"value created or destroyed: {drift}"
