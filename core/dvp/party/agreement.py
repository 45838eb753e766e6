"""What two agents agree before anything is locked: the trade, the plan, and both legs'
absolute terms, so each agent knows both lock ids from the start.

The proposer fixes each leg's expiry (by that leg's ledger clock) and nonce; the secret
holder fixes the hashlock (in the proposal if it proposes, in its acceptance otherwise).
Each side checks the agreement with its own ledgers and clocks before it accepts or locks,
so a counterparty's lock is expected, by id, on the ledger: a notice only says it is there.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping

from .. import errors
from ..adapter import LedgerAdapter
from ..models import Role, SwapSpec
from ..terms import LegName, LegPlan, Proposal
from ..timeouts import check_time_left

# How far a proposed expiry may lie beyond the plan's timeout (by the ledger's own clock):
# the time a proposal takes to reach and be checked by the other side, and clock skew.
EXPIRY_SLACK_SECONDS = 120


async def propose(
    swap_id: str, proposer: str, spec: SwapSpec, ledgers: Mapping[str, LedgerAdapter], hashlock: str | None
) -> Proposal:
    """Both legs' expiries from each ledger's clock now, and fresh nonces.  A single-ledger
    DvP has no secret: its order's deadline (the security leg's expiry) is ``holder_timeout``
    away, whichever party the plan names its secret holder."""
    plan = spec.plan
    atomic = spec.resolved_kind == "atomic"
    legs = {}
    for leg in LegName:
        role = leg.sender
        adapter = ledgers[spec.trade.leg_sent_by(role).ledger]
        timeout = plan.holder_timeout if atomic and leg is LegName.SECURITY else plan.timeout_for(role)
        legs[leg] = LegPlan(expiry=adapter.expiry_after(await adapter.now(), timeout), nonce=secrets.token_hex(32))
    return Proposal(
        swap_id=swap_id,
        proposer=proposer,
        spec=spec,
        security=legs[LegName.SECURITY],
        cash=legs[LegName.CASH],
        hashlock=hashlock,
    )


async def seconds_left(proposal: Proposal, leg: LegName, ledgers: Mapping[str, LedgerAdapter]) -> float:
    adapter = ledgers[proposal.spec.trade.leg_sent_by(leg.sender).ledger]
    return adapter.seconds_left(await adapter.now(), proposal.leg(leg).expiry)


async def check_still_safe(proposal: Proposal, ledgers: Mapping[str, LedgerAdapter]) -> None:
    """UnsafeTimeouts unless the agreed expiries, as they stand now on each ledger's clock,
    still pass the plan check for a swap started now (the holder locks first): the gap, the
    room for the counter lock and the holder's claim outside its safety margin."""
    spec = proposal.spec
    plan = spec.plan
    holder_leg = LegName.sent_by(plan.secret_holder)
    counter_leg = LegName.sent_by(plan.secret_holder.other)
    left_holder = math.floor(await seconds_left(proposal, holder_leg, ledgers))
    left_counter = math.floor(await seconds_left(proposal, counter_leg, ledgers))
    if left_counter <= 0 or left_holder <= 0:
        raise errors.UnsafeTimeouts(f"swap {proposal.swap_id}: a leg has already expired")
    holder = ledgers[spec.trade.leg_sent_by(plan.secret_holder).ledger]
    counter = ledgers[spec.trade.leg_sent_by(plan.secret_holder.other).ledger]
    check_time_left(plan, left_holder, left_counter, holder.finality, counter.finality)


async def check_proposal(proposal: Proposal, me: str, peer: str, ledgers: Mapping[str, LedgerAdapter]) -> Role:
    """The acceptor's checks of a proposal's shape and timing; returns its own role.
    Raises SwapError (a reason to reject) or ConfigError."""
    spec = proposal.spec
    plan = spec.plan
    if proposal.proposer != peer:
        raise errors.SwapAborted(
            f"proposal {proposal.swap_id}: proposed by {proposal.proposer!r}, not by the peer {peer!r}"
        )
    role = proposal.role_of(me)
    if proposal.role_of(peer) is role:
        raise errors.SwapAborted(f"proposal {proposal.swap_id}: {me!r} and {peer!r} cannot both be the {role.value}")
    if spec.behaviour != type(spec.behaviour)():
        raise errors.SwapAborted(
            f"proposal {proposal.swap_id}: behaviour is a test switch of the single-process "
            "orchestrator; agents each act for themselves"
        )
    if spec.resolved_kind == "atomic":
        return await _check_order_timing(proposal, ledgers, role)
    if plan.locks_first is not plan.secret_holder:
        # Whoever locks first without the secret can be robbed by a holder's lock that expires
        # too early (the holder refunds it, then claims): the holder always locks first here.
        raise errors.SwapAborted(f"proposal {proposal.swap_id}: plan.first_locker must be the secret holder")
    holder_proposes = proposal.role_of(proposal.proposer) is plan.secret_holder
    if holder_proposes != (proposal.hashlock is not None):
        raise errors.SwapAborted(
            f"proposal {proposal.swap_id}: the hashlock must come from the secret holder, "
            f"the {plan.secret_holder.value}"
        )
    for leg in LegName:
        timeout = plan.timeout_for(leg.sender)
        left = await seconds_left(proposal, leg, ledgers)
        if left > timeout + EXPIRY_SLACK_SECONDS:
            raise errors.SwapAborted(
                f"proposal {proposal.swap_id}: the {leg.value} leg would stay locked "
                f"{left:.0f}s, more than its {timeout}s timeout"
            )
    await check_still_safe(proposal, ledgers)
    return role


async def _check_order_timing(proposal: Proposal, ledgers: Mapping[str, LedgerAdapter], role: Role) -> Role:
    """A single-ledger DvP: no hashlock; the order's deadline (the security leg's expiry, by
    the one ledger's clock) lies after the accept window (the plan's counter timeout) and not
    beyond the plan's holder timeout."""
    plan = proposal.spec.plan
    if proposal.hashlock is not None:
        raise errors.SwapAborted(f"proposal {proposal.swap_id}: a single-ledger DvP has no hashlock")
    left = await seconds_left(proposal, LegName.SECURITY, ledgers)
    if left > plan.holder_timeout + EXPIRY_SLACK_SECONDS:
        raise errors.SwapAborted(
            f"proposal {proposal.swap_id}: the order's deadline is {left:.0f}s away, "
            f"more than plan.holder_timeout {plan.holder_timeout}s"
        )
    if left <= plan.counter_timeout:
        raise errors.SwapAborted(
            f"proposal {proposal.swap_id}: the order's deadline is {left:.0f}s away, "
            f"inside the accept window (plan.counter_timeout {plan.counter_timeout}s)"
        )
    return role
