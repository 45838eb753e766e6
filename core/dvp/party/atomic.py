"""One party's side of a single-ledger DvP between two agents, each signing only its own part.

The agreement fixes the whole order (parties, assets, amounts, the deadline by the ledger's
clock and the nonce: :func:`agreed_order`), so both agents know its id from the start.  The
seller proposes it on the ledger (its consent) and tells the buyer its id; the buyer audits
the order on the ledger against the agreement, by that id, before it accepts: an order id
commits to every term of the order, so any other order (another amount, asset, party or
deadline) is another id, and a notice naming one is refused.  A buyer that has not accepted
within the plan's counter timeout (the accept window) finds the order cancelled: the seller
withdraws it on the ledger (``cancel_dvp``) before it calls the swap aborted.  Every step is
journaled, and the outcome is the order's status on the ledger (:class:`AtomicRun`).

On a ledger whose DvP transaction both parties sign (:class:`dvp.adapter.CosignedDvp`, a
UTXO ledger) the buyer does not broadcast: it builds the transaction of the open order,
signs only its own inputs and sends that half to the seller (``signed``, opaque here, a
PSET on Elements), again every few polls until the order closes; the seller audits it
against the agreement, signs its own inputs and broadcasts (:meth:`complete`).  The seller
broadcasts, not the buyer: the last signature stays with the party that cancels at the end
of the window, so no complete transaction is ever outside the seller while it decides to
cancel, and a half it refuses ends the swap at once (cancelled).  A seller that neither
broadcasts nor cancels finds the half voided: past the window and a grace the buyer spends
the half's inputs back to itself (:meth:`revoke`).
"""

from __future__ import annotations

import time

from .. import errors
from ..adapter import CosignedDvp
from ..models import DvpOrder, OrderStatus, Role
from ..orchestrator import AtomicRun, order_of
from ..state import AtomicSwapState, LegName, Phase, StepName
from ..steps import REFUSED, Outcome, SwapSteps
from ..terms import Agreement
from .messages import Kind
from .run import MAX_POLLS, POLL_SECONDS, PROBE_EVERY, Hints, Notify, Probe, _no_probe

# How long past the accept window (plus three confirmations' time) a cosigning buyer waits for
# the seller's broadcast or cancellation before it voids its half (the ledger still decides).
COSIGN_GRACE_SECONDS = 10.0


def agreed_order(agreement: Agreement) -> DvpOrder:
    """The order both parties agreed: the security leg's plan gives its deadline and nonce."""
    proposal = agreement.proposal
    return order_of(proposal.spec.trade, proposal.security.expiry, proposal.security.nonce)


class AtomicPartyRun:
    """One party's drive of an agreed single-ledger DvP, by its own steps only."""

    def __init__(self, steps: SwapSteps, hints: Hints, notify: Notify, probe: Probe = _no_probe):
        self.steps = steps
        self.run = AtomicRun(steps)
        side = self.run.state.side
        assert side is not None and side.agreement is not None, "a party's run starts once the trade is agreed"
        self.me: Role = side.role
        self.peer = side.peer
        self.hints = hints
        self._notify = notify
        self._probe = probe

    @property
    def order(self) -> DvpOrder:
        order = self.run.state.order
        assert order is not None, "the agreed order is journaled with the agreement"
        return order

    @property
    def order_id(self) -> str:
        order_id = self.run.state.order_id
        assert order_id is not None
        return order_id

    def accept_window_left(self) -> float:
        """Seconds left, by the wall clock from the swap's creation, of the plan's counter
        timeout: the time the buyer has to accept before the seller withdraws its order."""
        return self.steps.created + self.steps.spec.plan.counter_timeout - time.time()

    async def drive(self) -> tuple[Outcome, str]:
        if self.me is Role.SELLER:
            return await self.as_seller()
        return await self.as_buyer()

    async def notify(self, kind: Kind, leg: LegName) -> None:
        await self._notify(self.steps.id, kind, leg, self.order_id)

    # -- the seller ---------------------------------------------------------------------------
    async def as_seller(self) -> tuple[Outcome, str]:
        run, order = self.run, self.order
        if run.state.cancelling is not None and await run.never_proposed():
            return Outcome.ABORTED, f"{run.state.cancelling}; the order was never proposed, nothing moved"
        await run.propose(order)
        if run.state.cancelling is None:
            await self.notify(Kind.LOCKED, LegName.SECURITY)
            why = await self.await_acceptance()
            if why:
                await run.withdraw(why)
        if run.state.cancelling is not None:
            await run.cancel(order)
        return await run.by_the_ledger()

    async def await_acceptance(self) -> str | None:
        """Wait for the buyer's acceptance on the ledger: None once the order is closed
        (settled, or cancelled by a previous drive), else why the seller withdraws it (the
        accept window is over, or the buyer's half was refused)."""
        late = f"buyer {self.peer!r} did not accept within the accept window"
        tried: set[str] = set()
        for _ in range(MAX_POLLS):
            if await self.run.status() is not OrderStatus.OPEN:
                return None
            if self.accept_window_left() <= 0:
                return late
            fresh = [h for h in self.hints.halves if h not in tried]
            if fresh and isinstance(self.run.adapter, CosignedDvp):
                tried.add(fresh[-1])
                refused = await self.complete(self.run.adapter, fresh[-1])
                if refused:
                    return refused
                continue
            await self.hints.wait(min(POLL_SECONDS, max(self.accept_window_left(), 0.01)))
        return late

    async def complete(self, adapter: CosignedDvp, half: str) -> str | None:
        """Audit the buyer's half, sign the seller's inputs and broadcast (journaled as the
        settlement); why it was refused, or None."""
        try:
            await self.steps.transact(
                StepName.SETTLE,
                self.run.ledger,
                lambda: adapter.complete_as_seller(self.order, half),
                self.settled,
            )
        except (errors.AuditFailed, errors.SubmitError) as exc:
            if await self.settled():
                return None
            return f"refused buyer {self.peer!r}'s signed transaction: {exc}"
        return None

    async def settled(self) -> bool:
        return await self.run.status() is OrderStatus.SETTLED

    # -- the buyer ----------------------------------------------------------------------------
    async def as_buyer(self) -> tuple[Outcome, str]:
        run, s = self.run, self.steps
        if not s.done(StepName.SETTLE) and not any(x.step == StepName.SETTLE for x in s.journal.steps(s.id)):
            why = await self.await_order()
            if why:
                return Outcome.ABORTED, f"{why}; nothing of mine moved"
            if await run.status() is OrderStatus.OPEN:
                await s.note(StepName.AUDIT_SECURITY, Phase.RESULT, run.ledger, order_id=self.order_id)
                if self.accept_window_left() <= s.ledgers[run.ledger].finality.expected_seconds:
                    return Outcome.ABORTED, "the accept window closed before the order was open; nothing of mine moved"
        if isinstance(run.adapter, CosignedDvp):
            return await self.cosign(run.adapter)
        try:
            await run.accept(self.order)
        except REFUSED:
            if await run.status() is not OrderStatus.SETTLED:
                return Outcome.ABORTED, (
                    f"the ledger refused my acceptance of order {self.order_id} "
                    f"(it is {self.status_text(await run.status())}); nothing of mine moved"
                )
        await self.notify(Kind.CLAIMED, LegName.SECURITY)
        return await run.by_the_ledger()

    async def cosign(self, adapter: CosignedDvp) -> tuple[Outcome, str]:
        """The buyer's half of a cosigned DvP: signed on its inputs only (once: it is journaled),
        sent to the seller (again every few polls, for a seller that restarted) until the order
        closes; voided (:meth:`revoke`) if the seller neither broadcast nor cancelled it within
        the accept window and a grace after it."""
        run, s = self.run, self.steps
        half = self.journaled_half()
        if half is not None:
            adapter.hold_half(self.order, half)  # resumed: its coins stay out of my other sends
        if half is None and await run.status() is OrderStatus.OPEN:
            try:
                half = await adapter.sign_as_buyer(self.order)
            except REFUSED as exc:
                if await run.status() is OrderStatus.OPEN:
                    return Outcome.ABORTED, f"could not sign order {self.order_id}: {exc}; nothing of mine moved"
            else:
                await s.note(
                    StepName.SETTLE,
                    Phase.SKIPPED,
                    run.ledger,
                    order_id=self.order_id,
                    reason="signed my inputs only; the seller audits, completes and broadcasts",
                    half=half,
                )
        if half is None:
            return await run.by_the_ledger()
        if any(x.step == StepName.CANCEL for x in s.journal.steps(s.id)):
            return await self.revoke(adapter, half)
        grace = COSIGN_GRACE_SECONDS + 3 * s.ledgers[run.ledger].finality.expected_seconds
        for polls in range(MAX_POLLS):
            if await run.status() is not OrderStatus.OPEN:
                break
            if self.accept_window_left() < -grace:
                return await self.revoke(adapter, half)
            if polls % PROBE_EVERY == 0:
                await self._notify(s.id, Kind.SIGNED, LegName.CASH, self.order_id, half)
            await self.hints.wait(POLL_SECONDS)
        return await run.by_the_ledger()

    def journaled_half(self) -> str | None:
        """The half this buyer signed for this swap, if it did (a resumed drive sends it again
        rather than sign another)."""
        s = self.steps
        noted = [x for x in s.journal.steps(s.id) if x.step == StepName.SETTLE and x.phase == Phase.SKIPPED]
        half = noted[-1].detail.get("half") if noted else None
        return half if isinstance(half, str) else None

    async def revoke(self, adapter: CosignedDvp, half: str) -> tuple[Outcome, str]:
        """Void the half: spend its inputs of mine back to me (journaled as this party's
        ``cancel``), unless the order closed meanwhile; the ledger then decides the outcome."""
        run = self.run
        try:
            await self.steps.transact(
                StepName.CANCEL,
                run.ledger,
                lambda: adapter.revoke_as_buyer(self.order, half),
                self.closed,
            )
        except REFUSED:
            # Refused as spent (by the DvP transaction, the cancellation, or this revocation
            # before) is the only refusal that leaves nothing to do; any other (fee, chain
            # limits) leaves the half valid: the drive stops and a resume revokes again.
            if await run.status() is OrderStatus.OPEN and not await adapter.half_void(self.order, half):
                raise
        if await run.status() is OrderStatus.OPEN:
            return Outcome.ABORTED, (
                f"the seller neither broadcast nor cancelled order {self.order_id} within the accept window; "
                "I spent my half's inputs back to myself, so it can never confirm: nothing of mine moved but that fee"
            )
        return await run.by_the_ledger()

    async def closed(self) -> bool:
        return await self.run.status() is not OrderStatus.OPEN

    @staticmethod
    def status_text(status: OrderStatus | None) -> str:
        return status.value if status else "missing"

    async def await_order(self) -> str | None:
        """Wait for the agreed order, open on the ledger; None when it is, else why this party
        stopped waiting.  An order the seller names under another id is not the agreed order
        (its id commits to every term): the wait ends at once, refused."""
        s, run = self.steps, self.run
        seen: set[str] = set()
        for _ in range(MAX_POLLS):
            status = await run.status()
            if status is OrderStatus.OPEN:
                return None
            if status is OrderStatus.SETTLED:
                return None  # accepted by a drive before this one: the ledger says so
            if status is OrderStatus.CANCELLED:
                return f"the seller cancelled order {self.order_id} on {run.ledger}"
            for hinted in self.hints.lock_ids[LegName.SECURITY]:
                if hinted == self.order_id or hinted in seen:
                    continue
                seen.add(hinted)
                found = await run.adapter.get_order(hinted)
                await s.note(
                    StepName.AUDIT_SECURITY,
                    Phase.SKIPPED,
                    run.ledger,
                    reason="the named order is not the agreed one",
                    order_id=hinted,
                )
                return (
                    f"refused order {hinted} on {run.ledger} ({self.status_text(found.status if found else None)}): "
                    f"it is not the agreed order {self.order_id}, so its assets, amounts, parties, deadline "
                    f"or nonce differ from the agreement"
                )
            if self.accept_window_left() <= 0:
                return f"the seller's order {self.order_id} never appeared on {run.ledger} within the accept window"
            await self.hints.wait(POLL_SECONDS)
        return f"gave up waiting for order {self.order_id} after {MAX_POLLS} polls"


def agreed_state(state: AtomicSwapState, agreement: Agreement, order_id: str) -> AtomicSwapState:
    """``state`` with the agreement and the agreed order and its id (write-ahead of the proposal)."""
    side = state.side
    assert side is not None
    side = side.model_copy(update={"agreement": agreement, "proposal": None})
    return state.model_copy(update={"side": side, "order": agreed_order(agreement), "order_id": order_id})
