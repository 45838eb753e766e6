"""What two agents agree before anything is locked, typed: the legs, each leg's plan (expiry
and nonce), the proposal and the agreement that fixes the hashlock.

These sit below the journal's state (:class:`dvp.state.PartySide` holds a proposal until it
is agreed, then the agreement) and the two-party protocol (:mod:`dvp.party.agreement` makes
and checks them); they import only the models and the error tree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from . import errors
from .models import Frozen, Hex32, HtlcTerms, Name, Role, SwapSpec

SwapId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LegName(StrEnum):
    SECURITY = "security"
    CASH = "cash"

    @classmethod
    def sent_by(cls, role: Role) -> "LegName":
        """The seller sends the security leg, the buyer the cash leg."""
        return cls.SECURITY if role is Role.SELLER else cls.CASH

    @property
    def sender(self) -> Role:
        return Role.SELLER if self is LegName.SECURITY else Role.BUYER


class LegPlan(Frozen):
    expiry: int  # in the leg's ledger clock unit
    nonce: Hex32


class Proposal(Frozen):
    swap_id: SwapId
    proposer: Name
    spec: SwapSpec
    security: LegPlan
    cash: LegPlan
    hashlock: Hex32 | None = None  # set if and only if the proposer holds the secret

    def leg(self, leg: LegName) -> LegPlan:
        return self.security if leg is LegName.SECURITY else self.cash

    def role_of(self, party: str) -> Role:
        trade = self.spec.trade
        if party == trade.seller:
            return Role.SELLER
        if party == trade.buyer:
            return Role.BUYER
        raise errors.MessageRefused(f"proposal {self.swap_id}: {party!r} is neither the seller nor the buyer")


class Agreement(Frozen):
    proposal: Proposal
    hashlock: Hex32 | None = None  # an HTLC swap's, from its secret holder; None for a single-ledger DvP

    def terms(self, leg: LegName) -> HtlcTerms:
        if self.hashlock is None:
            raise errors.ConfigError(f"swap {self.proposal.swap_id}: a single-ledger DvP has no HTLC terms")
        trade, plan = self.proposal.spec.trade, self.proposal.leg(leg)
        sender = leg.sender
        amounts = trade.leg_sent_by(sender)
        return HtlcTerms(
            sender=trade.party(sender),
            recipient=trade.party(sender.other),
            asset=amounts.asset,
            amount=amounts.amount,
            hashlock=self.hashlock,
            expiry=plan.expiry,
            nonce=plan.nonce,
        )
