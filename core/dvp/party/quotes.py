"""Requests for quotes between two agents: an RFQ (instrument, amount, side, the asking side's
cash ledgers) answered with firm terms valid for a bounded time, then a proposal on those terms.

It fits the policy model (:mod:`.policy`): the quoting agent prices from its policy for that
peer (``prices``: cash base units per base unit of the security, per pair) and quotes only a
trade its policy would accept, so a quote is firm: the proposal on its exact terms, under the
quote's id and before ``valid_until``, is accepted unless the quoter's ledgers refuse the lock
(its funds spent meanwhile) or its daily amount was used by another swap meanwhile.  Quotes are
held in the quoting agent's memory, a few per peer: a restart voids them (the proposal is then
checked as any other).  The asker checks the quote against what it asked and its own policy
before it proposes.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import Field

from .. import errors
from ..models import Amount, Behaviour, Frozen, HtlcPlan, Leg, Role, SwapSpec, Trade
from .policy import AcceptPolicy, AssetKey, Holder

# Outstanding quotes kept per peer: a new one beyond drops the oldest.
QUOTES_PER_PEER = 16
# An expired quote is kept this long (within QUOTES_PER_PEER), so that a proposal on it is
# refused as expired rather than taken as a proposal on no quote.
EXPIRED_KEPT_SECONDS = 600
# When the policy sets no timeouts: the quoted plan's, as `dvp swap`'s defaults.
HOLDER_TIMEOUT, COUNTER_TIMEOUT = 600, 300


class QuoteRequest(Frozen):
    """What the asker wants: ``amount`` of the ``security`` (LEDGER:ASSET), bought or sold
    (``side``, the asker's), paid in one of its ``cash`` assets (LEDGER:ASSET, in its order)."""

    security: AssetKey
    cash: Annotated[list[AssetKey], Field(min_length=1, max_length=8)]
    amount: Amount
    side: Literal["buy", "sell"]


class Quote(Frozen):
    """The quoter's firm terms: the whole swap spec, valid until ``valid_until`` (unix seconds)."""

    spec: SwapSpec
    valid_until: float = Field(allow_inf_nan=False)


def _split(key: str) -> tuple[str, str]:
    ledger, _, asset = key.partition(":")
    return ledger, asset


def quote_for(request: QuoteRequest, quoter: str, asker: str, policy: AcceptPolicy) -> SwapSpec:
    """The trade ``quoter`` offers ``asker`` for ``request`` under its ``policy`` (SwapAborted
    naming the rule when it offers none): the first of the asker's cash assets it has a price
    for, the plan within its timeouts, the secret with the quoter unless its policy says peer."""
    prices = policy.prices or {}
    for cash in request.cash:
        price = prices.get(f"{request.security}/{cash}")
        if price is not None:
            break
    else:
        raise errors.SwapAborted(
            f"no price for {request.security} against {', '.join(request.cash)} in this party's policy.prices"
        )
    role = Role.SELLER if request.side == "buy" else Role.BUYER  # the quoter's
    holder = role.other if policy.secret_holder == Holder.PEER else role
    longest = min(policy.max_timeout or HOLDER_TIMEOUT, HOLDER_TIMEOUT)
    plan = HtlcPlan(
        secret_holder=holder,
        holder_timeout=longest,
        counter_timeout=max(longest // 2, policy.min_timeout or 1),
        reaction_window=policy.reaction_window,
        claim_margin=policy.claim_margin,
    )
    (security_ledger, security), (cash_ledger, money) = _split(request.security), _split(cash)
    seller, buyer = (quoter, asker) if role is Role.SELLER else (asker, quoter)
    trade = Trade(
        security=Leg(ledger=security_ledger, asset=security, amount=request.amount),
        cash=Leg(ledger=cash_ledger, asset=money, amount=request.amount * price),
        seller=seller,
        buyer=buyer,
    )
    return SwapSpec(trade=trade, plan=plan)


def check_quote(request: QuoteRequest, quote: Quote, asker: str, quoter: str) -> None:
    """The asker's check that the quote is a trade of what it asked, with the parties it asked."""
    trade = quote.spec.trade
    sides = (quoter, asker) if request.side == "buy" else (asker, quoter)
    what = []
    if (trade.seller, trade.buyer) != sides:
        what.append(f"seller {trade.seller!r} and buyer {trade.buyer!r}")
    if f"{trade.security.ledger}:{trade.security.asset}" != request.security or trade.security.amount != request.amount:
        what.append(f"{trade.security.amount} {trade.security.asset} on {trade.security.ledger}")
    if f"{trade.cash.ledger}:{trade.cash.asset}" not in request.cash:
        what.append(f"cash in {trade.cash.asset} on {trade.cash.ledger}")
    if quote.spec.fast_forward or quote.spec.behaviour != Behaviour():
        what.append("a dev switch")
    if what:
        raise errors.MessageRefused(f"{quoter!r} quoted other terms than asked: {', '.join(what)}")
    if quote.valid_until <= time.time():
        raise errors.MessageRefused(f"{quoter!r}'s quote had expired when it arrived")


class QuoteBook:
    """Quotes per peer, until used or expired (bounded: QUOTES_PER_PEER): the ones an agent gave,
    or the ones it was given."""

    def __init__(self) -> None:
        self._given: dict[str, dict[str, Quote]] = {}

    def give(self, peer: str, quote_id: str, quote: Quote) -> None:
        book = self._given.setdefault(peer, {})
        now = time.time()
        for old in [q for q, given in book.items() if given.valid_until + EXPIRED_KEPT_SECONDS <= now]:
            del book[old]
        if len(book) >= QUOTES_PER_PEER:
            book.pop(next(iter(book)))
        book[quote_id] = quote

    def get(self, peer: str, quote_id: str) -> Quote | None:
        """The quote under ``quote_id`` with ``peer`` (kept), or None."""
        return self._given.get(peer, {}).get(quote_id)

    def take(self, peer: str, quote_id: str) -> Quote | None:
        """The quote given to ``peer`` under ``quote_id`` (then forgotten), or None."""
        return self._given.get(peer, {}).pop(quote_id, None)

    def outstanding(self, peer: str) -> int:
        return len(self._given.get(peer, {}))
