"""An agent's policy: its own rules for a trade with one peer, whoever proposes it.

``policy:`` in ``agent.yaml`` is the default for every peer; a peer's own ``policy:`` (under
``peers:``) replaces it for that peer.  Every proposal, the peer's and this party's own, is
checked against the policy of the peer it is with, before anything is journaled; a refusal
names the rule (``policy.NAME``) in one line, said to both sides.

A policy lists what may be sent: ``max_send`` (most per swap) and ``max_send_per_day`` (most
over the last 24 hours with that peer) name ``LEDGER:ASSET``; an asset not listed is never
sent.  A policy with no ``max_send`` sends nothing.  ``"*"`` stands for every asset of the
agent's ledgers: for tests and benches, never written by ``dvp agent init`` (which lists the
party's assets with its balance at that time).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool

from .. import errors
from ..adapter import LedgerAdapter
from ..models import Frozen, Limit, Margin, Name, Role, Seconds, SwapSpec
from ..timeouts import budget

ANY_ASSET = "*"
DAY = 24 * 3600
AssetKey = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+)$")]
PairKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")]


class Holder(StrEnum):
    """Which side a policy lets hold the secret (and so lock first and expire last)."""

    EITHER = "either"
    SELF = "self"  # only trades in which this party holds the secret
    PEER = "peer"  # only trades in which the peer holds it


def asset_key(ledger: str, asset: str) -> str:
    return f"{ledger}:{asset}"


class AcceptPolicy(Frozen):
    """This party's rules for a trade with one peer (module docstring).  The peer's proposal
    never sets them: a plan below its margins, or a dev switch it does not take, is refused."""

    accept: StrictBool = True  # False: it proposes, but accepts no proposal
    ledgers: list[Name] | None = None  # both legs on these ledgers; None: any of its ledgers
    assets: list[AssetKey] | None = None  # both legs in these LEDGER:ASSET; None: any
    pairs: list[PairKey] | None = None  # SECURITY_LEDGER:ASSET/CASH_LEDGER:ASSET traded; None: any
    max_send: dict[AssetKey, Limit] = {}  # most sent per swap; an asset not listed: nothing
    max_send_per_day: dict[AssetKey, Limit] | None = None  # most sent over 24 h with this peer; None: no daily bound
    min_timeout: Seconds | None = None  # the shortest plan timeout (either leg) it takes
    max_timeout: Seconds | None = None  # the longest plan timeout (either leg) it locks for
    secret_holder: Holder = Holder.EITHER
    reaction_window: Margin = 30  # the least plan.reaction_window it runs a swap with
    claim_margin: Margin | None = None  # the least plan.claim_margin; None: its ledgers' own (finality + skew)
    fast_forward: StrictBool = False  # a dev switch (clock jumps on dev chains): refused unless set here
    # Requests for quotes (dvp.party.quotes): cash base units per base unit of the security, per
    # SECURITY_LEDGER:ASSET/CASH_LEDGER:ASSET; None: it quotes nothing.  A quote holds this long.
    prices: dict[PairKey, Annotated[int, Field(gt=0, lt=2**128, strict=True)]] | None = None
    quote_seconds: Annotated[int, Field(ge=1, le=600, strict=True)] = 30

    def check(
        self,
        spec: SwapSpec,
        role: Role,
        ledgers: Mapping[str, LedgerAdapter],
        *,
        incoming: bool = True,
        sent_today: Mapping[str, int] | None = None,
    ) -> None:
        """SwapAborted naming the rule if ``spec``, in which this party is ``role``, breaks the
        policy; ``sent_today``: what this party already committed to send to the peer in the
        last 24 hours, by ``LEDGER:ASSET``."""
        if incoming and not self.accept:
            raise errors.SwapAborted("this agent accepts no proposals from this peer (policy.accept: false)")
        if spec.fast_forward and not self.fast_forward:
            raise errors.SwapAborted("fast_forward: a dev switch this agent does not take (policy.fast_forward: false)")
        self._check_what(spec, role, sent_today or {})
        self._check_plan(spec, role, ledgers)

    def _check_what(self, spec: SwapSpec, role: Role, sent_today: Mapping[str, int]) -> None:
        trade = spec.trade
        legs = (trade.security, trade.cash)
        for leg in legs:
            if self.ledgers is not None and leg.ledger not in self.ledgers:
                raise errors.SwapAborted(
                    f"ledger {leg.ledger} is not in this party's policy.ledgers ({', '.join(self.ledgers) or 'none'})"
                )
            key = asset_key(leg.ledger, leg.asset)
            if self.assets is not None and key not in self.assets and ANY_ASSET not in self.assets:
                raise errors.SwapAborted(f"{key} is not in this party's policy.assets ({', '.join(self.assets)})")
        pair = (
            f"{asset_key(trade.security.ledger, trade.security.asset)}/{asset_key(trade.cash.ledger, trade.cash.asset)}"
        )
        if self.pairs is not None and pair not in self.pairs:
            raise errors.SwapAborted(f"{pair} is not in this party's policy.pairs ({', '.join(self.pairs) or 'none'})")
        leg = trade.leg_sent_by(role)
        key = asset_key(leg.ledger, leg.asset)
        limit = self.max_send.get(key, self.max_send.get(ANY_ASSET))
        if limit is None:
            listed = ", ".join(sorted(self.max_send)) or "nothing"
            raise errors.SwapAborted(
                f"{leg.asset} on {leg.ledger} is not in this party's policy.max_send (it sends {listed})"
            )
        if leg.amount > limit:
            raise errors.SwapAborted(
                f"{leg.amount} {leg.asset} on {leg.ledger} is above this party's policy.max_send of {limit}"
            )
        if self.max_send_per_day is not None:
            daily = self.max_send_per_day.get(key, self.max_send_per_day.get(ANY_ASSET))
            if daily is None:
                raise errors.SwapAborted(f"{key} is not in this party's policy.max_send_per_day")
            already = sent_today.get(key, 0)
            if already + leg.amount > daily:
                raise errors.SwapAborted(
                    f"{leg.amount} {leg.asset} on {leg.ledger} with {already} sent in the last 24 h "
                    f"is above policy.max_send_per_day {daily}"
                )

    def _check_plan(self, spec: SwapSpec, role: Role, ledgers: Mapping[str, LedgerAdapter]) -> None:
        plan = spec.plan
        self._check_timeouts(spec)
        if spec.resolved_kind == "atomic":  # one ledger, one transaction: no secret, no claim racing an expiry
            return
        if self.secret_holder == Holder.SELF and plan.secret_holder is not role:
            raise errors.SwapAborted("the peer would hold the secret; policy.secret_holder: self")
        if self.secret_holder == Holder.PEER and plan.secret_holder is role:
            raise errors.SwapAborted("this party would hold the secret; policy.secret_holder: peer")
        holder = ledgers[spec.trade.leg_sent_by(plan.secret_holder).ledger].finality
        counter = ledgers[spec.trade.leg_sent_by(plan.secret_holder.other).ledger].finality
        theirs = budget(plan, holder, counter).claim_margin
        mine = budget(plan.model_copy(update={"claim_margin": self.claim_margin}), holder, counter).claim_margin
        if theirs < mine:
            source = "policy.claim_margin" if self.claim_margin is not None else "its ledgers' finality and skew"
            raise errors.SwapAborted(f"plan.claim_margin: {theirs}s is below this party's {mine}s ({source})")

    def _check_timeouts(self, spec: SwapSpec) -> None:
        plan = spec.plan
        shortest, longest = (
            min(plan.holder_timeout, plan.counter_timeout),
            max(plan.holder_timeout, plan.counter_timeout),
        )
        if self.min_timeout is not None and shortest < self.min_timeout:
            raise errors.SwapAborted(f"a {shortest}s timeout is below policy.min_timeout {self.min_timeout}s")
        if self.max_timeout is not None and longest > self.max_timeout:
            raise errors.SwapAborted(f"a {longest}s timeout is above policy.max_timeout {self.max_timeout}s")
        if plan.reaction_window < self.reaction_window:
            raise errors.SwapAborted(
                f"plan.reaction_window: {plan.reaction_window}s is below this party's "
                f"{self.reaction_window}s (policy.reaction_window)"
            )


# Tests and benches: every asset, any amount (the dev chains' funds); never an agent's default.
SEND_ANY = {ANY_ASSET: 2**255}
