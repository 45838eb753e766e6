"""One party's side of a cross-ledger HTLC swap, driven by that party's agent alone.

It composes a swap's journaled, idempotent steps (:class:`dvp.steps.SwapSteps`), as the
one-process run does, but takes only its own role's steps: it locks, claims
and refunds only its own party's locks, and learns everything about the other side from
the ledgers: the counterparty's lock is expected under the agreed lock id and audited
against the agreed terms; the secret is read from the ledger; a notice from the peer only
wakes the wait early.  Every wait is bounded by the ledger's clock and by the wall clock
(a chain that mines only on demand has no clock of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .. import errors
from ..models import HtlcTerms, LedgerTerms, LockStatus, Role
from ..state import Action, LegName, PartySide, Phase
from ..steps import REFUSED, Outcome, SwapSteps
from ..terms import Agreement
from ..timeouts import too_late_to_lock
from .agreement import check_still_safe
from .messages import Kind

# How long one wait for a ledger change sleeps when no notice wakes it.
POLL_SECONDS = 1.0
# Bounds every wait loop in count, whatever the clocks say.
MAX_POLLS = 20_000


class Hints:
    """What the peer said about one swap: it wakes waits early and names locks to read.
    None of it is believed until the ledger shows it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.lock_ids: dict[LegName, list[str]] = {leg: [] for leg in LegName}
        self.unreachable_since: float | None = None  # the peer's agent stopped answering our notices
        self.halves: list[str] = []  # the buyer's partly signed DvP transactions (opaque), newest last

    def heard_half(self, half: str) -> None:
        if half not in self.halves:
            self.halves = [*self.halves[-1:], half]  # bounded: a peer may flood us
        self.event.set()

    def heard(self, leg: LegName | None = None, lock_id: str | None = None) -> None:
        if leg is not None and lock_id and lock_id not in self.lock_ids[leg]:
            self.lock_ids[leg] = [*self.lock_ids[leg][-7:], lock_id]  # bounded: a peer may flood us
        self.event.set()

    async def wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that comes as
        # the event fires, and a stopped agent would act on one more step.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.event.wait()
        self.event.clear()


class Notify(Protocol):
    """Tell the peer about ``lock_id`` (and, for a cosigned DvP, the buyer's ``half``)."""

    def __call__(
        self, swap_id: str, kind: Kind, leg: LegName, lock_id: str, /, half: str | None = None
    ) -> Awaitable[None]: ...


Probe = Callable[[str], Awaitable[None]]  # (swap_id): ping the peer, noting in Hints whether it answered
# While waiting on the peer, ask whether its agent is still there every this many polls.
PROBE_EVERY = 5


async def _no_probe(swap_id: str) -> None:
    return None


def differences(found: LedgerTerms, agreed: HtlcTerms) -> str:
    """The terms of a lock that differ from the agreed ones, for the refusal's reason."""
    return ", ".join(f"{f} {got} (agreed {want})" for f, got, want in found.differences(agreed)) or "none recorded"


class PartyRun:
    """One party's drive of its side of an agreed swap, by its own steps only."""

    def __init__(self, steps: SwapSteps, hints: Hints, notify: Notify, probe: Probe = _no_probe):
        self.steps = steps
        side = steps.state.side
        assert side is not None, "a party's run needs the party's side of the swap"
        self.side: PartySide = side
        self.me: Role = side.role
        self.holder, self.counter = steps.holder, steps.counter
        self.hints = hints
        self._notify = notify
        self._probe = probe

    # -- the drive ----------------------------------------------------------------------------
    async def drive(self) -> tuple[Outcome, str]:
        outcome, detail = await self.own_steps()
        return await self.steps.by_the_ledgers(outcome, detail)

    async def own_steps(self) -> tuple[Outcome, str]:
        unwinding = self.steps.state.unwinding
        if unwinding is not None:
            return await self.unwind(unwinding)
        if self.me is self.holder:
            return await self.as_holder()
        return await self.as_counter()

    async def as_holder(self) -> tuple[Outcome, str]:
        s, holder, counter = self.steps, self.holder, self.counter
        if not s.done(s.step(Action.LOCK, holder)) and not await s.exists(holder):
            try:
                await check_still_safe(self.agreement().proposal, s.ledgers)
            except errors.UnsafeTimeouts as exc:
                return Outcome.ABORTED, f"too late to lock first: {exc}; nothing moved"
            # By the wall clock too (a ledger's clock may stand still): an acceptor back from a
            # crash after the proposer stopped waiting for its answer locks nothing.
            late = await self.too_late_for_the_counter_lock()
            if late:
                return Outcome.ABORTED, f"the counter leg could no longer be locked in time ({late}); nothing moved"
        try:
            await self.lock_own(holder)
        except REFUSED as exc:
            return await self.unwind(s.refused(holder, exc))
        await self.notify(Kind.LOCKED, holder)
        why = await self.await_lock(counter, self.holder_gives_up)
        if why:
            return await self.unwind(why)
        try:
            await s.audit(counter)
        except errors.LockError as exc:
            return await self.unwind(f"refused the {s.leg_name(counter)} lock: {exc}")
        if not await self.holder_claim():
            return await self.unwind("too close to the counter leg's expiry to reveal the secret; nothing revealed")
        await self.notify(Kind.CLAIMED, counter)
        return await self.await_claim_of_mine()

    async def as_counter(self) -> tuple[Outcome, str]:
        s, holder, counter = self.steps, self.holder, self.counter
        locked = s.done(s.step(Action.LOCK, counter)) is not None or await s.exists(counter)
        if not locked:
            why = await self.await_lock(holder, self.counter_gives_up)
            if why:
                return Outcome.ABORTED, f"{why}; nothing of mine was locked"
            try:
                await s.audit(holder)
            except errors.LockError as exc:
                return Outcome.ABORTED, f"refused the {s.leg_name(holder)} lock: {exc}; nothing of mine was locked"
            late = await self.counter_gives_up()
            if late:
                return Outcome.ABORTED, f"{late}; nothing of mine was locked"
        try:
            await self.lock_own(counter)
        except REFUSED as exc:
            return await self.unwind(s.refused(counter, exc))
        await self.notify(Kind.LOCKED, counter)
        if not await self.await_claim(counter):
            return await self.unwind("the secret holder never claimed; no secret was revealed")
        return await self.claim_revealed()

    async def claim_revealed(self) -> tuple[Outcome, str]:
        """The counterparty's lock was claimed: read the secret from its ledger, claim the
        holder's leg with it."""
        preimage = await self.steps.extract_secret()
        if await self.steps.counter_claim(preimage):
            await self.notify(Kind.CLAIMED, self.holder)
            return Outcome.SETTLED, "both legs claimed"
        return await self.principal_loss()

    # -- own steps ------------------------------------------------------------------------------
    def agreement(self) -> Agreement:
        assert self.side.agreement is not None  # a party run starts once the trade is agreed
        return self.side.agreement

    async def lock_own(self, role: Role) -> None:
        """Lock this party's own leg with the agreed terms (journaled when agreed)."""
        assert role is self.me
        await self.steps.send_lock(role)

    async def holder_claim(self) -> bool:
        """docs/design.md, rule 4, by both clocks: the counter leg's time left, by its ledger and by the wall
        clock (a chain that mines on demand does not count down by itself), must exceed the
        claim window before the secret is revealed."""
        s = self.steps
        step = s.step(Action.CLAIM, self.counter)
        if not s.done(step) and not await s.lock_is(self.counter, LockStatus.CLAIMED)():
            if await self.left(self.counter) <= s.budget.claim_window:
                await s.note(
                    step,
                    Phase.SKIPPED,
                    s.ledger_of(self.counter),
                    reason="inside the safety margin before expiry (wall clock)",
                )
                return False
        return await s.holder_claim()

    async def notify(self, kind: Kind, role: Role) -> None:
        await self._notify(self.steps.id, kind, self.steps.leg_name(role), self.steps.known_lock_id(role))

    # -- waiting on the other side, by the ledgers ----------------------------------------------
    def wall_left(self, role: Role) -> float:
        """Seconds until ``role``'s leg expires by the wall clock from the swap's creation (a
        bound for ledgers whose own clock only moves when someone mines)."""
        return self.steps.created + self.steps.spec.plan.timeout_for(role) - time.time()

    async def left(self, role: Role) -> float:
        adapter = self.steps.adapter_of(role)
        by_ledger = adapter.seconds_left(await adapter.now(), self.steps.known_terms(role).expiry)
        return min(by_ledger, self.wall_left(role))

    async def holder_gives_up(self) -> str | None:
        """The holder stops waiting for the counter lock once it could no longer claim it
        outside its safety margin."""
        s = self.steps
        left = await self.left(self.counter)
        if left <= s.budget.claim_window:
            return (
                f"the {s.trade.party(self.counter)!r} lock never appeared on {s.ledger_of(self.counter)} "
                f"while there was time to claim it{self.peer_note()}"
            )
        return None

    async def too_late_for_the_counter_lock(self) -> str | None:
        """Why the counter leg could no longer be locked with time for the holder to claim it
        (by its ledger's clock and by the wall clock), or None."""
        left = await self.left(self.counter)
        needed = self.steps.budget.claim_window + self.steps.adapter_of(self.counter).finality.expected_seconds
        return too_late_to_lock(left, needed) if left <= needed else None

    async def counter_gives_up(self) -> str | None:
        """The counterparty locks only while the holder would still have time to claim."""
        why = await self.too_late_for_the_counter_lock()
        if why:
            if not await self.steps.exists(self.holder):
                why = f"the {self.steps.trade.party(self.holder)!r} lock never appeared{self.peer_note()} ({why})"
            return why
        return None

    def peer_note(self) -> str:
        since = self.hints.unreachable_since
        if since is None:
            return ""
        return (
            f"; {self.side.peer!r}'s agent has not answered since {time.strftime('%H:%M:%S', time.gmtime(since))} UTC"
        )

    async def await_lock(self, role: Role, give_up: Callable[[], Awaitable[str | None]]) -> str | None:
        """Wait for ``role``'s lock under the agreed id, final on its ledger; None when it is,
        else why this party stopped waiting.  A lock the peer names that differs from the
        agreement ends the wait at once, with the differences."""
        s = self.steps
        adapter, lock_id, agreed = s.adapter_of(role), s.known_lock_id(role), s.known_terms(role)
        seen_notices: set[str] = set()
        for polls in range(MAX_POLLS):
            if polls % PROBE_EVERY == PROBE_EVERY - 1:
                await self._probe(s.id)
            state = await adapter.get_lock(lock_id)
            if state is not None and (state.final or state.status is not LockStatus.LOCKED):
                return None
            for hinted in self.hints.lock_ids[s.leg_name(role)]:
                if hinted == lock_id or hinted in seen_notices:
                    continue
                seen_notices.add(hinted)
                try:
                    other = await adapter.get_lock(hinted)
                except (errors.LockError, errors.ConfigError):  # an id this ledger cannot even read: false too
                    other = None
                if other is None:
                    s.progress(f"peer named lock {hinted} on {s.ledger_of(role)}; the ledger has none")
                    await s.note(
                        s.step(Action.AUDIT, role),
                        Phase.SKIPPED,
                        s.ledger_of(role),
                        reason="false notice: the named lock is not on the ledger",
                        lock_id=hinted,
                    )
                    continue
                return (
                    f"the {s.leg_name(role)} lock {hinted} on {s.ledger_of(role)} differs from the "
                    f"agreed terms: {differences(other.terms, agreed)}"
                )
            why = await give_up()
            if why:
                await self._probe(s.id)  # is its agent still there? the reason says so
                return await give_up() or why
            await self.hints.wait(POLL_SECONDS)
        return f"gave up waiting for the {s.leg_name(role)} lock after {MAX_POLLS} polls"

    async def await_claim(self, role: Role) -> bool:
        """Wait until ``role``'s lock is claimed (True) or has expired still locked (False)."""
        s = self.steps
        adapter, lock_id, expiry = s.adapter_of(role), s.known_lock_id(role), s.known_terms(role).expiry
        for polls in range(MAX_POLLS):
            if polls % PROBE_EVERY == PROBE_EVERY - 1:
                await self._probe(s.id)
            state = await adapter.get_lock(lock_id)
            if state is None:
                raise errors.SwapError(f"lock {lock_id} on {s.ledger_of(role)} is gone")
            if state.status is LockStatus.CLAIMED:
                return True
            if state.status is LockStatus.REFUNDED or adapter.is_expired(await adapter.now(), expiry):
                await self._probe(s.id)
                return False
            if s.spec.fast_forward and self.hints.unreachable_since is not None and self.wall_left(role) <= 0:
                return False  # a dev chain that only moves when mined: the peer is gone and its time is up
            await self.hints.wait(POLL_SECONDS)
        return False

    async def await_claim_of_mine(self) -> tuple[Outcome, str]:
        """The holder, after revealing: its own leg is claimed by the counterparty (settled),
        or it expires and the holder takes it back (the counterparty's principal loss)."""
        if await self.await_claim(self.holder):
            return Outcome.SETTLED, "both legs claimed"
        outcome, detail = await self.principal_loss()
        return outcome, detail + self.peer_note()

    # -- failure paths: only this party's own lock --------------------------------------------
    async def unwind(self, why: str) -> tuple[Outcome, str]:
        s = self.steps
        await s.start_unwind(why)
        if await s.refund(self.me):
            await self.notify(Kind.REFUNDED, self.me)
            return Outcome.REFUNDED, f"{why}; refunded my {s.leg_name(self.me)} leg"
        if self.me is self.counter and s.lock_id_of(self.me) and await s.lock_is(self.me, LockStatus.CLAIMED)():
            return await self.claim_revealed()  # the holder claimed while this party waited for expiry
        return Outcome.ABORTED, f"{why}; nothing of mine was locked"

    async def principal_loss(self) -> tuple[Outcome, str]:
        if self.me is self.holder:
            return await self.steps.holder_principal_loss()
        # The counterparty's own view: the secret was revealed but its claim came too late.
        leg = self.steps.trade.leg_sent_by(self.me)
        return (
            Outcome.PRINCIPAL_LOSS,
            f"lost {leg.amount} {leg.asset} on {leg.ledger}: the secret was revealed "
            f"but the {self.steps.leg_name(self.holder)} leg expired before my claim",
        )
