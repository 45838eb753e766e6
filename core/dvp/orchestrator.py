"""The swap state machine: single-ledger DvP and cross-ledger HTLC DvP.

Each step is idempotent: it reads the journal and the ledger before acting, so a
swap interrupted anywhere (even by SIGKILL) is driven to completion or refund by
running the same code again (:meth:`Orchestrator.resume`).  The orchestrator
plays both parties' roles with their own keys, but each party only acts on what
it could see itself: it audits the other's lock on the ledger and extracts the
secret from the ledger, never from memory.
"""

from __future__ import annotations

import asyncio
import secrets as _secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .adapter import AtomicDvp, LedgerAdapter
from .hashlock import hashlock_of, new_secret
from .journal import Journal, Step, SwapRecord
from .lease import drive_lease
from .models import (
    Asset,
    AssetKind,
    Capability,
    DvpOrder,
    HtlcTerms,
    OrderStatus,
    Role,
    SwapSpec,
    Trade,
)
from .state import Action, AtomicSwapState, HtlcSwapState, StepName
from .steps import REFUSED, ClockGuard, Outcome, Progress, SwapSteps, fees_journaled
from .timeouts import check_plan, second_leg_seconds

__all__ = ["Orchestrator", "Outcome", "Progress", "SwapResult", "Unfinished"]

# A run's drive of one swap from its journal record: (outcome, detail).
RunDrive = Callable[[SwapRecord, SwapSpec], Awaitable[tuple[Outcome, str]]]


@dataclass
class SwapResult:
    swap_id: str
    kind: str
    outcome: Outcome | None  # None: unfinished (a history of a swap still in flight)
    detail: str
    spec: SwapSpec
    data: dict[str, Any]
    steps: list[Step] = field(default_factory=list)


@dataclass
class Unfinished:
    """A swap this driver could not take to an outcome now; ``error`` says why."""

    swap_id: str
    error: errors.DvpError


class Orchestrator:
    def __init__(
        self,
        ledgers: Mapping[str, LedgerAdapter],
        assets: list[Asset],
        journal: Journal,
        progress: Progress | None = None,
        poll_interval: float = 0.2,
    ):
        self.ledgers = dict(ledgers)
        self.assets = {(a.ledger, a.symbol): a for a in assets}
        self.journal = journal
        self.progress = progress or (lambda swap_id, message: None)
        self.poll = poll_interval
        self.clocks = ClockGuard()  # no dev-clock jump under another swap in flight here

    # -- checks before anything is locked ----------------------------------------------------
    def validate(self, spec: SwapSpec) -> None:
        trade = spec.trade
        for field_name, leg, kind in (
            ("security", trade.security, AssetKind.SECURITY),
            ("cash", trade.cash, AssetKind.CASH),
        ):
            if leg.ledger not in self.ledgers:
                known = ", ".join(sorted(self.ledgers)) or "none"
                raise errors.ConfigError(f"trade.{field_name}.ledger: unknown ledger {leg.ledger!r} (known: {known})")
            asset = self.assets.get((leg.ledger, leg.asset))
            if asset is None:
                raise errors.ConfigError(
                    f"trade.{field_name}.asset: unknown asset {leg.asset!r} on ledger {leg.ledger!r}"
                )
            if asset.kind is not kind:
                raise errors.ConfigError(
                    f"trade.{field_name}.asset: {leg.asset!r} is {asset.kind.value}, not {kind.value}"
                )
        if spec.resolved_kind == "atomic":
            if not trade.single_ledger:
                raise errors.ConfigError("kind: atomic DvP needs both legs on one ledger; use kind htlc")
            self._require(trade.cash.ledger, Capability.ATOMIC_DVP)
        else:
            for leg in (trade.security, trade.cash):
                self._require(leg.ledger, Capability.HTLC)
            plan = spec.plan
            holder_leg = trade.leg_sent_by(plan.secret_holder)
            counter_leg = trade.leg_sent_by(plan.secret_holder.other)
            check_plan(plan, self.ledgers[holder_leg.ledger].finality, self.ledgers[counter_leg.ledger].finality)
            if spec.fast_forward and not any(
                self.ledgers[leg.ledger].supports(Capability.TIME_TRAVEL) for leg in (trade.security, trade.cash)
            ):
                # A ledger without time travel (Fabric, geth) waits for real expiry: fast-forward
                # needs one leg whose clock can jump (a btcd chain that mines only on demand).
                self._require(trade.security.ledger, Capability.TIME_TRAVEL)

    def _require(self, ledger: str, capability: Capability) -> None:
        adapter = self.ledgers[ledger]
        if not adapter.supports(capability):
            raise adapter.unsupported(capability)

    async def check_locks(self, spec: SwapSpec) -> None:
        """Ask each leg's ledger whether it would take that leg's lock now (funds with fees,
        dust, parties, assets): both before anything is locked.  An atomic DvP asks the
        same of each party's consent, which pulls the same amounts."""
        trade = spec.trade
        for role in (Role.SELLER, Role.BUYER):
            leg = trade.leg_sent_by(role)
            adapter = self.ledgers[leg.ledger]
            timeout = spec.plan.timeout_for(role)
            terms = HtlcTerms(
                sender=trade.party(role),
                recipient=trade.party(role.other),
                asset=leg.asset,
                amount=leg.amount,
                hashlock=_secrets.token_hex(32),  # any: only its size reaches the ledger's checks
                expiry=adapter.expiry_after(await adapter.now(), timeout),
                nonce=_secrets.token_hex(32),
            )
            await adapter.check_lock(terms)

    # -- entry points ------------------------------------------------------------------------
    async def run(self, spec: SwapSpec, swap_id: str | None = None) -> SwapResult:
        self.validate(spec)
        await self.check_locks(spec)
        swap_id = swap_id or uuid.uuid4().hex[:12]
        # The lease is taken before the swap exists in the journal, so no `dvp resume`
        # started meanwhile can pick it up as unfinished and drive it beside us.
        with drive_lease(self.journal.path, swap_id):
            await self._create(spec, swap_id)
            return await self._drive(swap_id)

    async def submit(self, spec: SwapSpec, swap_id: str | None = None) -> str:
        """Check and journal a swap without driving it (`dvp swap --submit`): it is unfinished,
        so `dvp resume` or a `dvp worker` drives it.  Its id."""
        self.validate(spec)
        await self.check_locks(spec)
        swap_id = swap_id or uuid.uuid4().hex[:12]
        with drive_lease(self.journal.path, swap_id):
            await self._create(spec, swap_id)
        return swap_id

    async def _create(self, spec: SwapSpec, swap_id: str) -> None:
        kind = spec.resolved_kind
        data: dict[str, Any] = {}
        if kind == "htlc":
            secret = new_secret()
            # Write-ahead: the secret exists on disk before anything that depends on it is sent.
            data = HtlcSwapState(secret=secret.hex(), hashlock=hashlock_of(secret).hex()).dump()
        await self.journal.acreate(swap_id, kind, spec.model_dump(mode="json"), data)
        self.progress(swap_id, f"{kind} swap created")

    async def resume(self, swap_id: str) -> SwapResult:
        """Drive ``swap_id`` on; SwapBusy at once if another driver holds it."""
        self._record(swap_id)
        with drive_lease(self.journal.path, swap_id):
            return await self._drive(swap_id)

    async def drive_unfinished(self, swap_id: str) -> SwapResult | None:
        """:meth:`resume` for a worker: None when the swap had ended by the time its lease was
        taken (another driver finished it), so each swap counts for the one that drove it."""
        with drive_lease(self.journal.path, swap_id):
            if self._record(swap_id).outcome is not None:
                return None
            return await self._drive(swap_id)

    async def cancel(self, swap_id: str) -> SwapResult:
        """The seller withdraws the open order of an unfinished single-ledger swap: the order
        is cancelled on the ledger and the swap ends aborted, or settled if the buyer's
        acceptance landed first (the ledger decides).  UnknownSwap for an unknown id,
        ConfigError for a swap that is not single-ledger or has ended already, SwapBusy at
        once if another driver holds it."""
        record = self._record(swap_id)
        if record.kind != "atomic":
            raise errors.ConfigError(
                f"swap {swap_id}: a {record.kind} swap has no order to cancel (only a single-ledger "
                "swap has one; an HTLC swap's locks are refunded after expiry by `dvp resume`)"
            )
        with drive_lease(self.journal.path, swap_id):
            record = self._record(swap_id)  # under the lease: a previous driver may have finished it
            if record.outcome is not None:
                raise errors.ConfigError(
                    f"swap {swap_id}: already ended {record.outcome} ({record.detail}); nothing to cancel"
                )
            run = AtomicRun(self.steps_for(record))
            if run.state.cancelling is None:
                await run.withdraw("the seller cancelled the order")
            return await self._drive(swap_id)

    def steps_for(self, record: SwapRecord, spec: SwapSpec | None = None) -> SwapSteps:
        """The journaled steps of the swap ``record``, on this orchestrator's ledgers and journal."""
        spec = spec or SwapSpec.model_validate(record.spec)
        return SwapSteps(self.ledgers, self.journal, record, spec, self.progress, self.poll, self.clocks)

    async def drive_with(self, swap_id: str, run: RunDrive) -> SwapResult:
        """The one driver loop: unless the journal shows ``swap_id`` ended, ``run`` drives it and
        its outcome is journaled; the swap as the journal holds it then.  The caller holds the
        swap's lease (this reads the record under it: a previous driver may have finished it)."""
        record = self._record(swap_id)
        if record.outcome is None:
            spec = SwapSpec.model_validate(record.spec)
            trade = spec.trade
            accounts = [(leg.ledger, p) for leg in (trade.security, trade.cash) for p in (trade.seller, trade.buyer)]
            async with self.clocks.driving(swap_id, {trade.security.ledger, trade.cash.ledger}):
                with self.journal.account_lease(accounts) as fresh:
                    for ledger, party in fresh:
                        self.ledgers[ledger].forget_sending_state(party)
                    outcome, detail = await run(record, spec)
            await self.journal.afinish(swap_id, outcome.value, detail)
            self.progress(swap_id, f"{outcome.value}: {detail}")
        return self.result(swap_id)

    async def _drive(self, swap_id: str) -> SwapResult:
        return await self.drive_with(swap_id, self._run)

    async def _run(self, record: SwapRecord, spec: SwapSpec) -> tuple[Outcome, str]:
        if record.data.get("side"):
            raise errors.ConfigError(
                f"swap {record.id}: one party's side of a two-agent swap; its agent drives it (`dvp agent run`)"
            )
        steps = self.steps_for(record, spec)
        return await (_HtlcRun(steps) if record.kind == "htlc" else AtomicRun(steps)).drive()

    def result(self, swap_id: str) -> SwapResult:
        """The swap as the journal holds it now."""
        record = self._record(swap_id)
        spec = SwapSpec.model_validate(record.spec)
        return SwapResult(
            swap_id=swap_id,
            kind=record.kind,
            outcome=Outcome(record.outcome) if record.outcome else None,
            detail=record.detail or "",
            spec=spec,
            data=record.data,
            steps=self.journal.steps(swap_id),
        )

    async def resume_each(self, swap_ids: list[str] | None = None) -> list[SwapResult | Unfinished]:
        """Drive every unfinished swap (or ``swap_ids``) on, each independently: one that
        cannot progress now (a ledger error, another driver holding it) is reported in its
        place and never stops the others."""
        ids = swap_ids if swap_ids is not None else [r.id for r in self.journal.swaps(unfinished=True)]

        async def one(swap_id: str) -> SwapResult | Unfinished:
            try:
                return await self.resume(swap_id)
            except errors.DvpError as exc:
                return Unfinished(swap_id, exc)

        return list(await asyncio.gather(*(one(i) for i in ids)))

    async def resume_all(self) -> list[SwapResult]:
        pending = self.journal.swaps(unfinished=True)
        return list(await asyncio.gather(*(self.resume(r.id) for r in pending)))

    def _record(self, swap_id: str) -> SwapRecord:
        record = self.journal.get(swap_id)
        if record is None:
            raise errors.UnknownSwap(f"swap_id: no swap {swap_id!r} in journal {self.journal.path}")
        return record


class AtomicRun:
    """Single-ledger DvP: the seller's order, then the buyer's acceptance moves both legs in
    one transaction; an order the buyer does not accept is cancelled on the ledger by its
    seller before the swap is called aborted.  The outcome is the order's status on the
    ledger, whatever path the steps took (an acceptance that landed before the cancellation)."""

    def __init__(self, steps: SwapSteps):
        self.s = steps
        self.ledger = steps.trade.cash.ledger
        self.adapter = steps.ledgers[self.ledger].require(AtomicDvp)

    @property
    def state(self) -> AtomicSwapState:
        return AtomicSwapState.model_validate(self.s.data)

    async def status(self) -> OrderStatus | None:
        order_id = self.state.order_id
        assert order_id is not None, "the order id is journaled before the proposal"
        found = await self.adapter.get_order(order_id)
        return found.status if found else None

    async def drive(self) -> tuple[Outcome, str]:
        s, t = self.s, self.s.trade
        base = s.ledgers[self.ledger]
        state = self.state
        if state.order is None or state.order_id is None:
            now = await base.now()
            new = order_of(t, base.expiry_after(now, s.spec.plan.holder_timeout), _secrets.token_hex(32))
            # Write-ahead: the order and its id are on disk before the proposal is broadcast.
            await s.put(AtomicSwapState(order=new, order_id=self.adapter.order_id(new)))
        order = self.state.order
        assert order is not None
        if self.state.cancelling is not None and await self.never_proposed():
            return Outcome.ABORTED, f"{self.state.cancelling}; the order was never proposed, nothing moved"
        await self.propose(order)
        if self.state.cancelling is None and not s.spec.behaviour.counter_locks:
            await self.withdraw(f"buyer {t.buyer!r} did not accept")
        if self.state.cancelling is None:
            await self.accept(order)
        else:
            await self.cancel(order)
        return await self.by_the_ledger()

    async def propose(self, order: DvpOrder) -> None:
        """The seller's order on the ledger (journaled; done if the ledger has it, in any status)."""
        await self.s.transact(
            StepName.PROPOSE,
            self.ledger,
            lambda: self.adapter.propose_dvp(order),
            lambda: _is(self.status(), {OrderStatus.OPEN, OrderStatus.SETTLED, OrderStatus.CANCELLED}),
        )

    async def accept(self, order: DvpOrder) -> None:
        """The buyer's acceptance: one transaction moves both legs (journaled)."""
        await self.s.transact(
            StepName.SETTLE,
            self.ledger,
            lambda: self.adapter.accept_dvp(order),
            lambda: _is(self.status(), {OrderStatus.SETTLED}),
        )

    async def withdraw(self, why: str) -> None:
        """Decide to cancel the order (journaled: a resumed drive cancels it, with this cause)."""
        await self.s.put(self.state.model_copy(update={"cancelling": why}))
        self.s.progress(f"cancelling the order: {why}")

    async def never_proposed(self) -> bool:
        """Nothing of the proposal can have left this process: not even its intent journaled
        (after the intent, a broadcast may be pending unjournaled), and no order on the ledger."""
        started = any(s.step == StepName.PROPOSE for s in self.s.journal.steps(self.s.id))
        return not started and await self.status() is None

    async def cancel(self, order: DvpOrder) -> None:
        """The seller cancels its order unless the ledger shows it closed; if the ledger
        refuses (the buyer's acceptance landed first), the ledger's status decides."""
        try:
            await self.s.transact(
                StepName.CANCEL,
                self.ledger,
                lambda: self.adapter.cancel_dvp(order),
                lambda: _is(self.status(), {OrderStatus.CANCELLED, OrderStatus.SETTLED}),
            )
        except (errors.SubmitError, errors.CommitError):
            if await self.status() is not OrderStatus.SETTLED:
                raise

    async def by_the_ledger(self) -> tuple[Outcome, str]:
        """The order's status on the ledger, told as it is."""
        status = await self.status()
        why = self.state.cancelling
        if status is OrderStatus.SETTLED:
            late = f" (the buyer's acceptance landed before the cancellation: {why})" if why else ""
            return Outcome.SETTLED, f"both legs moved in one transaction on {self.ledger}{late}"
        if status is OrderStatus.CANCELLED:
            leg = self.s.trade.security
            return Outcome.ABORTED, (
                f"{why or 'the order was cancelled'}; order cancelled on {self.ledger}: "
                f"nothing moved, the seller's {leg.amount} {leg.asset} are back, "
                f"fees {self.fees_text()}"
            )
        raise errors.SwapError(
            f"order {self.state.order_id} on {self.ledger} is "
            f"{status.value if status else 'missing'} after the swap's steps; `dvp resume` drives it on"
        )

    def fees_text(self) -> str:
        """The fees this swap's transactions paid, from the journal's final rows, per payer."""
        paid: dict[tuple[str, str], int] = {}
        for (_, payer, _, asset), fee in fees_journaled(self.s.journal.steps(self.s.id)).items():
            key = (payer, asset or self.s.ledgers[self.ledger].fee_unit)
            paid[key] = paid.get(key, 0) + fee
        return ", ".join(f"{fee} {unit} ({payer})" for (payer, unit), fee in paid.items()) or "none"


def order_of(trade: Trade, deadline: int, nonce: str) -> DvpOrder:
    """The single-ledger order of ``trade`` with its deadline (by the ledger's clock) and nonce."""
    return DvpOrder(
        seller=trade.seller,
        buyer=trade.buyer,
        security=trade.security.asset,
        security_amount=trade.security.amount,
        cash=trade.cash.asset,
        cash_amount=trade.cash.amount,
        deadline=deadline,
        nonce=nonce,
    )


async def _is(awaitable: Awaitable[object], allowed: set[OrderStatus]) -> bool:
    return (await awaitable) in allowed


class _HtlcRun:
    """Cross-ledger DvP by hashed time-locks, both parties played by this process.

    The secret holder's leg expires last; the other party audits it before
    locking its own leg with the shorter expiry; the holder audits that lock and
    claims it (revealing the secret) only while a safety margin remains; the
    other party extracts the secret from its ledger and claims the holder's leg.
    Every failure ends in refunds after expiry.
    """

    def __init__(self, steps: SwapSteps):
        self.s = steps
        self.first = steps.spec.plan.locks_first
        self.second = self.first.other
        self.late = ""  # why the second leg was not locked, when it was too late

    async def drive(self) -> tuple[Outcome, str]:
        outcome, detail = await self.steps()
        return await self.s.by_the_ledgers(outcome, detail)

    async def steps(self) -> tuple[Outcome, str]:
        s = self.s
        if s.state.unwinding is not None:  # decided before a crash: finish the unwind, with its first cause
            return await self.unwind(s.state.unwinding)
        b = s.spec.behaviour
        try:
            if not await self.lock(self.first):
                return Outcome.ABORTED, "first leg was not locked; nothing moved"
        except REFUSED as exc:
            return await self.unwind(s.refused(self.first, exc))
        try:
            await s.audit(self.first)
        except errors.LockError as exc:
            return await self.unwind(f"audit of the first lock failed: {exc}")
        if self.second is s.counter and not b.counter_locks:
            return await self.unwind("counterparty never locked")
        try:
            if not await self.lock(self.second):
                return await self.unwind(f"too little time left to lock the second leg: {self.late}")
        except REFUSED as exc:
            return await self.unwind(s.refused(self.second, exc))
        try:
            await s.audit(self.second)
        except errors.LockError as exc:
            return await self.unwind(f"audit of the second lock failed: {exc}")
        if not b.holder_claims or not await s.holder_claim():
            return await self.unwind("secret holder did not claim; no secret revealed")
        preimage = await s.extract_secret()
        if b.counter_claims and await s.counter_claim(preimage):
            return Outcome.SETTLED, "both legs claimed"
        return await s.holder_principal_loss()

    async def lock(self, role: Role) -> bool:
        """Lock ``role``'s leg (idempotently); False if it is too late to do so safely."""
        s = self.s
        adapter = s.adapter_of(role)
        if s.lock_id_of(role) is None:
            timeout = s.spec.plan.timeout_for(role)
            if role is self.second:
                try:
                    timeout = await self.second_leg_seconds()
                except errors.UnsafeTimeouts as exc:
                    self.late = str(exc)
                    return False
            now = await adapter.now()
            expiry = adapter.expiry_after(now, timeout)
            if role is s.counter:
                # Never later than asked: a ledger counting blocks rounds up, which would eat the gap.
                for _ in range(3):
                    if adapter.seconds_left(now, expiry) <= timeout:
                        break
                    expiry -= 1
            leg = s.trade.leg_sent_by(role)
            terms = HtlcTerms(
                sender=s.trade.party(role),
                recipient=s.trade.party(role.other),
                asset=leg.asset,
                amount=leg.amount,
                hashlock=s.known_hashlock(),
                expiry=expiry,
                nonce=_secrets.token_hex(32),
            )
            # Write-ahead: terms and lock id are on disk before the lock is broadcast.
            await s.put(s.state.with_lock(s.leg_name(role), terms, adapter.lock_id(terms)))
        if not s.done(s.step(Action.LOCK, role)) and not await s.exists(role):
            left = adapter.seconds_left(await adapter.now(), s.known_terms(role).expiry)
            if left <= adapter.finality.expected_seconds:
                return False
        await s.send_lock(role)
        return True

    async def second_leg_seconds(self) -> int:
        """How long the second leg may run if locked now: the plan check's own computation,
        anchored to the first leg's expiry so the gap stays the planned one."""
        s = self.s
        first_adapter = s.adapter_of(self.first)
        left = first_adapter.seconds_left(await first_adapter.now(), s.known_terms(self.first).expiry)
        return second_leg_seconds(
            s.spec.plan,
            s.adapter_of(s.holder).finality,
            s.adapter_of(s.counter).finality,
            holder_first=self.first is s.holder,
            first_left=left,
        )

    async def unwind(self, why: str) -> tuple[Outcome, str]:
        """No secret revealed: every lock goes back to its sender after expiry."""
        s = self.s
        await s.start_unwind(why)
        # The shorter (counter) leg expires first; refund in expiry order.
        refunded = [r for r in (s.counter, s.holder) if await s.refund(r)]
        if not refunded:
            return Outcome.ABORTED, f"{why}; nothing was locked"
        legs = " and ".join(s.leg_name(r) for r in refunded)
        return Outcome.REFUNDED, f"{why}; refunded {legs}"
