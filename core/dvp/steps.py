"""A swap's journaled, idempotent steps: the one component every run of a swap composes.

:class:`SwapSteps` holds what one swap's drive needs (its ledgers, its journal, its spec and
state) and the primitives each run is built from: ``transact`` (sign, journal, broadcast,
wait final; once per step, across crashes), and for a hashed time-lock swap ``send_lock``,
``audit``, ``claim``, ``refund``, ``extract_secret`` and ``wait_expired``.  Each primitive
reads the journal and the ledger before it acts, so a drive killed anywhere is finished by
running the same code again.  The runs decide which steps to take and when:
the one-process HTLC and single-ledger runs (:mod:`dvp.orchestrator`), one party's run of a
two-agent swap (:mod:`dvp.party.run`) and the test's hostile party (:mod:`dvp.testing.hostile`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, contextmanager
from enum import StrEnum
from functools import cached_property
from typing import Any, Iterator

from . import errors, sendlog
from .adapter import LedgerAdapter, TimeTravel
from .hashlock import hashlock_of
from .journal import Journal, Step, SwapRecord
from .models import HtlcTerms, LockStatus, Role, Submission, SwapSpec
from .state import Action, HtlcSwapState, LegName, Phase, StepName, SwapState
from .timeouts import TimeoutBudget, budget

Progress = Callable[[str, str], None]  # (swap_id, message)
TooLate = Callable[[LedgerAdapter, int], Awaitable[bool]]  # (the lock's ledger, its expiry)


class Outcome(StrEnum):
    SETTLED = "settled"  # both legs delivered
    REFUNDED = "refunded"  # every lock returned to its sender
    ABORTED = "aborted"  # nothing was locked
    PRINCIPAL_LOSS = "principal_loss"  # the secret was revealed but one party could not claim in time


# The ledger refused a lock for good (nothing was locked by that attempt), as opposed to a
# node that did not answer, after which the swap stays unfinished and is resumed.
REFUSED = (errors.LockError, errors.SubmitError, errors.CommitError)


class ClockGuard:
    """Who may fast-forward a dev ledger's clock among the swaps one orchestrator drives.

    A jump expires every lock on the ledger, not only the waiting swap's: in a concurrent
    batch one unwinding swap's jump expired every other swap's locks on that chain (issue 21's
    bench, 97-98 principal losses per run).  So a swap jumps a ledger only while every other swap
    driven on it is unwinding too (waiting in :meth:`SwapSteps.wait_expired`: no secret revealed,
    only refunds left, which a jump brings nearer); otherwise it waits for the real expiry and
    jumps once the others have finished or are unwinding.  A swap that starts while a jump is
    under way starts after it, so it reads the clock the jump left.  Swaps driven by another
    orchestrator (another process, another agent) are not seen."""

    def __init__(self) -> None:
        self._driving: dict[str, set[str]] = defaultdict(set)  # ledger -> swap ids driven on it
        self._unwinding: set[str] = set()  # swap ids waiting for an expiry
        self._jumping: set[str] = set()  # ledgers whose clock is being moved

    @asynccontextmanager
    async def driving(self, swap_id: str, ledgers: Iterable[str]) -> AsyncIterator[None]:
        names = set(ledgers)
        for _ in range(JUMP_WAITS):
            if not names & self._jumping:
                break
            await asyncio.sleep(JUMP_POLL)
        for name in names:
            self._driving[name].add(swap_id)
        try:
            yield
        finally:
            for name in names:
                self._driving[name].discard(swap_id)

    @contextmanager
    def unwinding(self, swap_id: str) -> Iterator[None]:
        self._unwinding.add(swap_id)
        try:
            yield
        finally:
            self._unwinding.discard(swap_id)

    def others(self, swap_id: str, ledger: str) -> list[str]:
        """The swaps driven on ``ledger``, other than ``swap_id``, that a jump there would harm."""
        return sorted(self._driving[ledger] - self._unwinding - {swap_id})

    @asynccontextmanager
    async def jump(self, ledger: str) -> AsyncIterator[None]:
        self._jumping.add(ledger)
        try:
            yield
        finally:
            self._jumping.discard(ledger)


JUMP_POLL = 0.01  # s between looks at a ledger being fast-forwarded, before a swap starts on it
JUMP_WAITS = 6000  # a minute at most


class SwapSteps:
    """One swap's journaled, idempotent steps (see the module's docstring)."""

    def __init__(
        self,
        ledgers: Mapping[str, LedgerAdapter],
        journal: Journal,
        record: SwapRecord,
        spec: SwapSpec,
        progress: Progress,
        poll: float,
        clocks: ClockGuard | None = None,
    ):
        self.ledgers = ledgers
        self.clocks = clocks or ClockGuard()
        self.journal = journal
        self.id = record.id
        self.created = record.created
        self.data = dict(record.data)
        self.spec = spec
        self.trade = spec.trade
        self.say = progress
        self.poll = poll

    # -- the journal ---------------------------------------------------------------------------
    async def put(self, state: SwapState) -> None:
        """Persist the swap's typed state (write-ahead: before what depends on it is sent)."""
        self.data = await self.journal.aupdate_data(self.id, **state.dump())

    def progress(self, message: str) -> None:
        self.say(self.id, message)

    async def note(self, step: str, phase: str, ledger: str | None = None, **kw: Any) -> None:
        clock = await self.ledgers[ledger].now() if ledger else None
        await self.journal.arecord(self.id, step, phase, ledger=ledger, clock=clock, **kw)

    def done(self, step: str) -> Step | None:
        return self.journal.last(self.id, step, Phase.RESULT)

    # -- one step's transactions -------------------------------------------------------------
    async def transact(
        self,
        step: str,
        ledger: str,
        send: Callable[[], Awaitable[Submission]],
        already_done: Callable[[], Awaitable[bool]],
    ) -> str | None:
        """Send one step's transactions unless the ledger shows it done; wait for each.

        Sign, journal, then broadcast (:mod:`dvp.sendlog`): an adapter that journals signed
        transactions has each one's id and signed bytes committed (``signed`` rows) before
        any is broadcast; every transaction is journaled again when broadcast (all of a
        submission in one write) and when final, with its fee and payer.  A resumed drive
        re-broadcasts the journaled bytes and never builds a new transaction for the step
        unless the ledger proves the journaled one can never confirm (an ``abandoned`` row
        with the proof).  ``already_done()`` reads the ledger, so a crash between sending
        and journaling on a ledger that does not journal signed bytes never sends twice.
        """
        done = self.done(step)
        if done:
            return done.tx_id
        adapter = self.ledgers[ledger]
        journaled, final, signed, reverted = self.attempt(step)
        if journaled or signed:
            try:
                if signed:
                    journaled = await self.resend(step, ledger, journaled, final, signed)
                if not reverted:
                    return await self.finish(step, ledger, journaled, final)
                # It failed on the ledger, but its later transactions were broadcast too (an
                # approve reverted, its lock after it): each is waited for and journaled final
                # with its fee, then the ledger is read as below.
                await self.wait_all(step, ledger, journaled, final)
            except (errors.FinalityTimeout, errors.HeldBack):
                if signed:  # not proven dead: the same bytes are sent again on the next resume
                    raise
            except (errors.TransactionError, errors.LockError):
                pass  # the journaled attempt failed on the ledger: read the ledger, maybe send again
        if not await already_done():
            await self.note(step, Phase.INTENT, ledger)
            self.progress(f"{step}: sending on {ledger}")
            with sendlog.journaling(self.journal_signed(step, ledger), self.journal.alease_held):
                submission = await send()
            rows = [{"tx_id": s.tx_id, "purpose": s.purpose.value, "payer": s.payer} for s in submission]
            await self.journal.arecord_all(
                self.id, step, Phase.SUBMITTED, rows, ledger=ledger, clock=await adapter.now()
            )
            return await self.finish(step, ledger, rows, set())
        # Done on the ledger, but the crash came before its transactions were journaled:
        # their ids, and so their fees, are unknown.
        await self.note(step, Phase.RESULT, ledger, recovered=True)
        return None

    def journal_signed(self, step: str, ledger: str) -> sendlog.Hook:
        """The :mod:`dvp.sendlog` hook of ``step``: its signed transactions, one commit."""

        async def hook(signed: list[sendlog.SignedTx]) -> None:
            rows = [
                {"tx_id": s.tx_id, "raw": s.raw, "purpose": s.purpose, "payer": s.payer, "batch": len(signed)}
                for s in signed
            ]
            await self.journal.arecord_all(self.id, step, Phase.SIGNED, rows, ledger=ledger)

        return hook

    async def resend(
        self, step: str, ledger: str, journaled: list[dict[str, Any]], final: set[str], signed: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Re-broadcast, in order, the journaled signed transactions not yet final (the same
        bytes: idempotent if they were sent); journal them as submitted if the crash came
        before that.  Superseded (after an ``abandoned`` row with the ledger's proof) if one
        can never confirm."""
        adapter = self.ledgers[ledger]
        for tx in signed:
            if tx["tx_id"] in final:
                continue
            try:
                await adapter.rebroadcast(sendlog.SignedTx(tx["tx_id"], tx["raw"], tx["purpose"], tx["payer"]))
            except errors.Superseded as exc:
                await self.note(step, Phase.ABANDONED, ledger, tx_id=tx["tx_id"], proof=str(exc))
                raise
        if journaled:
            return journaled
        rows = [{"tx_id": tx["tx_id"], "purpose": tx["purpose"], "payer": tx["payer"]} for tx in signed]
        await self.journal.arecord_all(self.id, step, Phase.SUBMITTED, rows, ledger=ledger, clock=await adapter.now())
        return rows

    def attempt(self, step: str) -> tuple[list[dict[str, Any]], set[str], list[dict[str, Any]], bool]:
        """The transactions journaled as submitted by ``step``'s latest attempt, those of them
        already final, the signed transactions of its latest signing (a submission), and
        whether one of them reverted (the attempt failed on the ledger: no result of its own)."""
        rows = [s for s in self.journal.steps(self.id) if s.step == step]
        intents = [i for i, r in enumerate(rows) if r.phase == Phase.INTENT]
        attempt = rows[intents[-1] :] if intents else rows
        final = {r.tx_id for r in attempt if r.phase == Phase.FINAL and r.tx_id}
        reverted = any(r.phase == Phase.FINAL and r.detail.get("reverted") for r in attempt)
        signed = [{"tx_id": r.tx_id, **r.detail} for r in attempt if r.phase == Phase.SIGNED]
        if signed:  # the last submission signed (a sender that re-signed keeps only its last batch)
            signed = signed[-int(signed[-1].get("batch") or 1) :]
        submitted = [{"tx_id": r.tx_id, **r.detail} for r in attempt if r.phase == Phase.SUBMITTED]
        return submitted, final, signed, reverted

    async def finish(self, step: str, ledger: str, txs: list[dict[str, Any]], final: set[str]) -> str:
        """:meth:`wait_all`, then the step's result."""
        block = await self.wait_all(step, ledger, txs, final)
        main: str = txs[-1]["tx_id"]
        await self.note(step, Phase.RESULT, ledger, tx_id=main, block=block)
        return main

    async def wait_all(self, step: str, ledger: str, txs: list[dict[str, Any]], final: set[str]) -> int | None:
        """Wait for each transaction not yet ``final`` in order and journal it final with its
        fee and payer; the last one's block.  One the ledger mined but reverted is journaled
        final too, with its fee and ``reverted`` (the rule it broke), and so are the ones after
        it, before the step fails."""
        adapter = self.ledgers[ledger]
        block = None
        failed: errors.TransactionError | errors.LockError | None = None
        for tx in txs:
            if tx["tx_id"] in final:
                continue
            paid = {
                "tx_id": tx["tx_id"],
                "purpose": tx.get("purpose"),
                "payer": tx.get("payer"),
                "fee_unit": adapter.fee_unit,
            }
            try:
                status = await adapter.wait_final(tx["tx_id"])
            except (errors.TransactionError, errors.LockError) as exc:
                if exc.fee is None:  # not mined (or mined for free): nothing paid
                    if failed is not None:
                        raise failed from exc
                    raise
                # Mined and reverted (EVM): it cost its payer gas all the same.  Journaled final
                # with its fee and the rule it broke, then the next ones of the submission (also
                # broadcast, so also paid for), then the step fails as the ledger said.
                await self.note(step, Phase.FINAL, ledger, **paid, fee=exc.fee, block=exc.block, reverted=str(exc.code))
                failed = failed or exc
                continue
            block = status.block_number
            await self.note(step, Phase.FINAL, ledger, **paid, fee=status.fee, fee_asset=status.fee_asset, block=block)
        if failed is not None:
            raise failed
        return block

    async def wait_expired(self, ledger: str, expiry: int, why: str) -> None:
        """Wait (or fast-forward a dev ledger, when no other swap in flight there would be
        harmed: :class:`ClockGuard`) until a lock with ``expiry`` can be refunded."""
        adapter = self.ledgers[ledger]
        held: list[str] = []
        with self.clocks.unwinding(self.id):
            for _ in range(100_000):
                now = await adapter.now()
                if adapter.is_expired(now, expiry):
                    return
                left = adapter.seconds_left(now, expiry)
                if self.spec.fast_forward and isinstance(adapter, TimeTravel):
                    others = self.clocks.others(self.id, ledger)
                    if not others:
                        async with self.clocks.jump(ledger):
                            await adapter.advance_time(int(left) + 1)
                        continue
                    if not held:
                        self.progress(
                            f"{why}: not fast-forwarding {ledger} while {len(others)} other swap(s) run there; "
                            f"waiting {left:.0f}s for expiry or for them"
                        )
                    held = others
                    await asyncio.sleep(self.poll)
                    continue
                self.progress(f"{why}: waiting {left:.0f}s for expiry on {ledger}")
                await asyncio.sleep(min(max(left, self.poll), 5.0))
        raise errors.SwapError(f"{why}: expiry {expiry} on {ledger} never reached")

    # -- a hashed time-lock swap's legs ---------------------------------------------------------
    @property
    def holder(self) -> Role:
        return self.spec.plan.secret_holder

    @property
    def counter(self) -> Role:
        return self.holder.other

    @property
    def state(self) -> HtlcSwapState:
        return HtlcSwapState.model_validate(self.data)

    @cached_property
    def budget(self) -> TimeoutBudget:
        """The plan's margins with these ledgers' finality."""
        return budget(
            self.spec.plan,
            self.adapter_of(self.holder).finality,
            self.adapter_of(self.counter).finality,
            self.adapter_of(self.spec.plan.locks_first).finality,
        )

    def leg_name(self, role: Role) -> LegName:
        return LegName.sent_by(role)

    def step(self, action: Action, role: Role) -> StepName:
        return StepName.of(action, LegName.sent_by(role))

    def ledger_of(self, role: Role) -> str:
        return self.trade.leg_sent_by(role).ledger

    def adapter_of(self, role: Role) -> LedgerAdapter:
        return self.ledgers[self.ledger_of(role)]

    def terms_of(self, role: Role) -> HtlcTerms | None:
        return self.state.terms(LegName.sent_by(role))

    def lock_id_of(self, role: Role) -> str | None:
        return self.state.lock_id(LegName.sent_by(role))

    def known_lock_id(self, role: Role) -> str:
        """``role``'s lock id, journaled before its lock was sent."""
        lock_id = self.lock_id_of(role)
        assert lock_id is not None, f"{self.leg_name(role)} leg has no journaled lock id"
        return lock_id

    def known_hashlock(self) -> str:
        hashlock = self.state.hashlock
        assert hashlock is not None, "the hashlock is journaled before any lock"
        return hashlock

    def known_terms(self, role: Role) -> HtlcTerms:
        terms = self.terms_of(role)
        assert terms is not None, f"{self.leg_name(role)} leg has no journaled terms"
        return terms

    def lock_is(self, role: Role, status: LockStatus) -> Callable[[], Awaitable[bool]]:
        """A ledger read: is ``role``'s lock in ``status`` now?"""
        adapter, lock_id = self.adapter_of(role), self.known_lock_id(role)

        async def check() -> bool:
            state = await adapter.get_lock(lock_id)
            return state is not None and state.status is status

        return check

    async def exists(self, role: Role) -> bool:
        """Is ``role``'s lock (under its journaled id) on its ledger?"""
        return await self.adapter_of(role).get_lock(self.known_lock_id(role)) is not None

    def refused(self, role: Role, exc: Exception) -> str:
        return f"{self.leg_name(role)} lock refused by {self.ledger_of(role)}: {exc}"

    async def send_lock(self, role: Role) -> None:
        """Lock ``role``'s leg with its journaled terms (written before the lock is sent)."""
        adapter, terms = self.adapter_of(role), self.known_terms(role)
        await self.transact(
            self.step(Action.LOCK, role), self.ledger_of(role), lambda: adapter.lock(terms), lambda: self.exists(role)
        )

    async def audit(self, role: Role) -> None:
        """The party receiving ``role``'s leg checks it on the ledger before going on."""
        step = self.step(Action.AUDIT, role)
        if self.done(step):
            return
        adapter = self.adapter_of(role)
        lock_id = self.known_lock_id(role)
        state = await adapter.audit(lock_id, self.known_terms(role))
        await self.note(step, Phase.RESULT, self.ledger_of(role), lock_id=lock_id, confirmations=state.confirmations)

    async def claim(self, role: Role, preimage: bytes, claimant: Role, too_late: TooLate) -> bool:
        """``claimant`` claims ``role``'s leg unless the ledger shows it done or ``too_late``."""
        step = self.step(Action.CLAIM, role)
        adapter = self.adapter_of(role)
        lock_id = self.known_lock_id(role)
        claimed = self.lock_is(role, LockStatus.CLAIMED)
        if not self.done(step) and not await claimed():
            if await too_late(adapter, self.known_terms(role).expiry):
                return False
        party = self.trade.party(claimant)
        await self.transact(
            step, self.ledger_of(role), lambda: adapter.claim(lock_id, preimage, submitter=party), claimed
        )
        return True

    async def holder_claim(self) -> bool:
        """The secret holder claims the counter leg, revealing the secret, only with margin left
        by the counter ledger's clock, and only while its own leg, by its own ledger's clock,
        leaves the counterparty the planned gap to claim it.  The plan keeps the second true
        whenever the first is, unless the two clocks drift apart (blocks slower than their
        interval on a ledger that counts blocks, on a loaded machine): then revealing would
        hand the counterparty a principal loss, so the holder does not."""
        role = self.counter
        margin = self.budget.claim_window

        async def too_late(adapter: LedgerAdapter, expiry: int) -> bool:
            reason = None
            if adapter.seconds_left(await adapter.now(), expiry) <= margin:
                reason = "inside the safety margin before expiry"
            else:
                own = self.adapter_of(self.holder)
                left = own.seconds_left(await own.now(), self.known_terms(self.holder).expiry)
                if left <= self.budget.gap_required:
                    reason = (
                        f"the holder's own leg has {left:.0f}s left, less than the {self.budget.gap_required}s "
                        "gap the counterparty needs to claim it (the ledgers' clocks drifted apart)"
                    )
            if reason is None:
                return False
            await self.note(self.step(Action.CLAIM, role), Phase.SKIPPED, self.ledger_of(role), reason=reason)
            return True

        return await self.claim(role, self.known_secret(), self.holder, too_late)

    def known_secret(self) -> bytes:
        secret = self.state.secret
        assert secret is not None, "only the secret holder claims the counter leg first"
        return bytes.fromhex(secret)

    async def extract_secret(self) -> bytes:
        """The counterparty learns the secret from the ledger, as it would in practice."""
        role = self.counter
        step = StepName.EXTRACT_SECRET
        adapter = self.adapter_of(role)
        state = await adapter.get_lock(self.known_lock_id(role))
        if state is None or state.preimage is None:
            raise errors.SwapError(f"{step}: lock {self.lock_id_of(role)} shows no revealed preimage")
        preimage = bytes.fromhex(state.preimage)
        if hashlock_of(preimage).hex() != self.state.hashlock:
            raise errors.InvalidPreimage(f"{step}: revealed preimage does not match the hashlock")
        if not self.done(step):
            await self.note(step, Phase.RESULT, self.ledger_of(role))
        return preimage

    async def counter_claim(self, preimage: bytes) -> bool:
        """The counterparty claims the holder's leg with the extracted secret, if still in time."""

        async def too_late(adapter: LedgerAdapter, expiry: int) -> bool:
            return adapter.is_expired(await adapter.now(), expiry)

        try:
            return await self.claim(self.holder, preimage, self.counter, too_late)
        except errors.LockExpired:
            return False

    async def refund(self, role: Role) -> bool:
        """Refund ``role``'s leg after its expiry, if it is still locked; True if refunded."""
        lock_id = self.lock_id_of(role)
        if lock_id is None:
            return False
        adapter = self.adapter_of(role)
        state = await adapter.get_lock(lock_id)
        if state is None:
            return False
        if state.status is LockStatus.CLAIMED:
            return False
        step = self.step(Action.REFUND, role)
        if state.status is LockStatus.LOCKED:
            await self.wait_expired(self.ledger_of(role), self.known_terms(role).expiry, step)
            # It may have been claimed while we waited (by hand, or by the counterparty).
            state = await adapter.get_lock(lock_id)
            if state is not None and state.status is LockStatus.CLAIMED:
                return False
        sender = self.trade.party(role)
        refunded = self.lock_is(role, LockStatus.REFUNDED)
        await self.transact(step, self.ledger_of(role), lambda: adapter.refund(lock_id, submitter=sender), refunded)
        return True

    async def start_unwind(self, why: str) -> None:
        """Journal the decision to unwind (a resumed drive finishes this unwind, with this cause)."""
        if self.state.unwinding != why:
            await self.put(self.state.model_copy(update={"unwinding": why}))
        self.progress(f"unwinding: {why}")

    async def holder_principal_loss(self) -> tuple[Outcome, str]:
        """The secret is public but the counterparty did not claim in time: the holder
        refunds its own leg after expiry and ends with both legs (Stella's principal risk)."""
        refunded = await self.refund(self.holder)
        loser = self.trade.party(self.counter)
        leg = self.trade.leg_sent_by(self.counter)
        if not refunded:
            return Outcome.SETTLED, "both legs claimed"
        return (
            Outcome.PRINCIPAL_LOSS,
            f"{self.counter.value} {loser!r} lost {leg.amount} {leg.asset} on {leg.ledger}: the secret was "
            f"revealed but its claim was not made before the {self.leg_name(self.holder)} leg expired",
        )

    async def by_the_ledgers(self, outcome: Outcome, detail: str) -> tuple[Outcome, str]:
        """The outcome the ledgers show for every lock the journal knows, whatever path the
        steps took (a lock claimed by hand, a lock mined after it was given up)."""
        status: dict[Role, LockStatus | None] = {}
        for role in (self.holder, self.counter):
            lock_id = self.lock_id_of(role)
            state = await self.adapter_of(role).get_lock(lock_id) if lock_id else None
            status[role] = state.status if state else None
        if LockStatus.LOCKED in status.values():
            return outcome, detail  # a lock is still open: only the steps' path can say more
        claimed = [r for r, s in status.items() if s is LockStatus.CLAIMED]
        if len(claimed) == 2:
            found, why = Outcome.SETTLED, "both legs claimed"
        elif claimed:
            [taken] = claimed
            other = status[taken.other]
            leg = self.trade.leg_sent_by(taken)
            found = Outcome.PRINCIPAL_LOSS
            why = (
                f"{taken.value} {self.trade.party(taken)!r} lost {leg.amount} {leg.asset} on {leg.ledger}: its leg "
                f"was claimed, the {self.leg_name(taken.other)} leg was {other.value if other else 'never locked'}"
            )
        elif LockStatus.REFUNDED in status.values():
            found = Outcome.REFUNDED
            why = "refunded " + " and ".join(self.leg_name(r) for r, s in status.items() if s is LockStatus.REFUNDED)
        else:
            found, why = Outcome.ABORTED, "nothing was locked"
        if found is outcome:
            return outcome, detail
        # The steps' cause, without their own (mistaken) summary of what the ledgers hold.
        return found, f"{why}, as the ledgers show (the swap's steps had stopped: {self.state.unwinding or detail})"


Fees = dict[tuple[str, str, str | None, str | None], int]


def fees_journaled(steps: Iterable[Step]) -> Fees:
    """(ledger, payer, fee unit, fee asset) -> what a swap's transactions cost, from the
    journal's ``final`` rows, each transaction once however often it is journaled, one the
    ledger mined but reverted included (it was paid for).  The unit is None on rows journaled
    before it was; the asset is set only where fees are paid in a traded asset (a UTXO coin)."""
    fees: Fees = defaultdict(int)
    counted: set[tuple[str | None, str]] = set()
    for s in steps:
        if s.phase != Phase.FINAL or not s.detail.get("fee"):
            continue
        if s.tx_id:
            if (s.ledger, s.tx_id) in counted:
                continue
            counted.add((s.ledger, s.tx_id))
        d = s.detail
        fees[(s.ledger or "", str(d.get("payer")), d.get("fee_unit"), d.get("fee_asset"))] += int(d["fee"])
    return dict(fees)
