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
from enum import StrEnum
from typing import Any

from . import errors, sendlog
from .adapter import AtomicDvp, LedgerAdapter, TimeTravel
from .hashlock import hashlock_of, new_secret
from .journal import Journal, Step, SwapRecord
from .lease import drive_lease
from .models import (
    Asset,
    AssetKind,
    Capability,
    DvpOrder,
    HtlcTerms,
    LockStatus,
    OrderStatus,
    Role,
    Submission,
    SwapSpec,
)
from .state import Action, AtomicSwapState, HtlcSwapState, LegName, Phase, StepName, SwapState
from .timeouts import budget, check_plan, second_leg_seconds

Progress = Callable[[str, str], None]  # (swap_id, message)


class Outcome(StrEnum):
    SETTLED = "settled"  # both legs delivered
    REFUNDED = "refunded"  # every lock returned to its sender
    ABORTED = "aborted"  # nothing was locked
    PRINCIPAL_LOSS = "principal_loss"  # the secret was revealed but one party could not claim in time


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
            timeout = spec.plan.holder_timeout if role is spec.plan.secret_holder else spec.plan.counter_timeout
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
            run = _AtomicRun(self, record, SwapSpec.model_validate(record.spec))
            if run.state.cancelling is None:
                await run.withdraw("the seller cancelled the order")
            return await self._drive(swap_id)

    async def _drive(self, swap_id: str) -> SwapResult:
        record = self._record(swap_id)  # read under the lease: a previous driver may have finished it
        spec = SwapSpec.model_validate(record.spec)
        if record.outcome is None:
            if record.data.get("side"):
                raise errors.ConfigError(
                    f"swap {swap_id}: one party's side of a two-agent swap; its agent drives it (`dvp agent run`)"
                )
            run = _HtlcRun if record.kind == "htlc" else _AtomicRun
            outcome, detail = await run(self, record, spec).drive()
            await self.journal.afinish(swap_id, outcome.value, detail)
            self.progress(swap_id, f"{outcome.value}: {detail}")
        return self.result(swap_id)

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


class _Run:
    """Shared plumbing of one swap's drive: journaled, idempotent transactions."""

    def __init__(self, orch: Orchestrator, record: SwapRecord, spec: SwapSpec):
        self.o = orch
        self.id = record.id
        self.data = dict(record.data)
        self.spec = spec
        self.trade = spec.trade

    async def put(self, state: SwapState) -> None:
        """Persist the swap's typed state (write-ahead: before what depends on it is sent)."""
        self.data = await self.o.journal.aupdate_data(self.id, **state.dump())

    async def note(self, step: str, phase: str, ledger: str | None = None, **kw: Any) -> None:
        clock = await self.o.ledgers[ledger].now() if ledger else None
        await self.o.journal.arecord(self.id, step, phase, ledger=ledger, clock=clock, **kw)

    def done(self, step: str) -> Step | None:
        return self.o.journal.last(self.id, step, Phase.RESULT)

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
        adapter = self.o.ledgers[ledger]
        journaled, final, signed = self.attempt(step)
        if journaled or signed:
            try:
                if signed:
                    journaled = await self.resend(step, ledger, journaled, final, signed)
                return await self.finish(step, ledger, journaled, final)
            except errors.FinalityTimeout:
                if signed:  # not proven dead: the same bytes are sent again on the next resume
                    raise
            except (errors.TransactionError, errors.LockError):
                pass  # the journaled attempt failed on the ledger: read the ledger, maybe send again
        if not await already_done():
            await self.note(step, Phase.INTENT, ledger)
            self.o.progress(self.id, f"{step}: sending on {ledger}")
            with sendlog.journaling(self.journal_signed(step, ledger)):
                submission = await send()
            rows = [{"tx_id": s.tx_id, "purpose": s.purpose.value, "payer": s.payer} for s in submission]
            await self.o.journal.arecord_all(
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
            await self.o.journal.arecord_all(self.id, step, Phase.SIGNED, rows, ledger=ledger)

        return hook

    async def resend(
        self, step: str, ledger: str, journaled: list[dict[str, Any]], final: set[str], signed: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Re-broadcast, in order, the journaled signed transactions not yet final (the same
        bytes: idempotent if they were sent); journal them as submitted if the crash came
        before that.  Superseded (after an ``abandoned`` row with the ledger's proof) if one
        can never confirm."""
        adapter = self.o.ledgers[ledger]
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
        await self.o.journal.arecord_all(self.id, step, Phase.SUBMITTED, rows, ledger=ledger, clock=await adapter.now())
        return rows

    def attempt(self, step: str) -> tuple[list[dict[str, Any]], set[str], list[dict[str, Any]]]:
        """The transactions journaled as submitted by ``step``'s latest attempt, those of them
        already final, and the signed transactions of its latest signing (a submission)."""
        rows = [s for s in self.o.journal.steps(self.id) if s.step == step]
        intents = [i for i, r in enumerate(rows) if r.phase == Phase.INTENT]
        attempt = rows[intents[-1] :] if intents else rows
        final = {r.tx_id for r in attempt if r.phase == Phase.FINAL and r.tx_id}
        signed = [{"tx_id": r.tx_id, **r.detail} for r in attempt if r.phase == Phase.SIGNED]
        if signed:  # the last submission signed (a sender that re-signed keeps only its last batch)
            signed = signed[-int(signed[-1].get("batch") or 1) :]
        return [{"tx_id": r.tx_id, **r.detail} for r in attempt if r.phase == Phase.SUBMITTED], final, signed

    async def finish(self, step: str, ledger: str, txs: list[dict[str, Any]], final: set[str]) -> str:
        """Wait for each transaction not yet ``final`` in order, journal it final with its
        fee and payer, then the step's result."""
        adapter = self.o.ledgers[ledger]
        block = None
        for tx in txs:
            if tx["tx_id"] in final:
                continue
            status = await adapter.wait_final(tx["tx_id"])
            block = status.block_number
            await self.note(
                step,
                Phase.FINAL,
                ledger,
                tx_id=tx["tx_id"],
                purpose=tx.get("purpose"),
                payer=tx.get("payer"),
                fee=status.fee,
                fee_asset=status.fee_asset,
                block=block,
            )
        main: str = txs[-1]["tx_id"]
        await self.note(step, Phase.RESULT, ledger, tx_id=main, block=block)
        return main

    async def wait_expired(self, ledger: str, expiry: int, why: str) -> None:
        """Wait (or fast-forward a dev ledger) until a lock with ``expiry`` can be refunded."""
        adapter = self.o.ledgers[ledger]
        for _ in range(100_000):
            now = await adapter.now()
            if adapter.is_expired(now, expiry):
                return
            left = adapter.seconds_left(now, expiry)
            if self.spec.fast_forward and isinstance(adapter, TimeTravel):
                await adapter.advance_time(int(left) + 1)
                continue
            self.o.progress(self.id, f"{why}: waiting {left:.0f}s for expiry on {ledger}")
            await asyncio.sleep(min(max(left, self.o.poll), 5.0))
        raise errors.SwapError(f"{why}: expiry {expiry} on {ledger} never reached")


class _AtomicRun(_Run):
    """Single-ledger DvP: the seller's order, then the buyer's acceptance moves both legs in
    one transaction; an order the buyer does not accept is cancelled on the ledger by its
    seller before the swap is called aborted.  The outcome is the order's status on the
    ledger, whatever path the steps took (an acceptance that landed before the cancellation)."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.ledger = self.trade.cash.ledger
        self.adapter = self.o.ledgers[self.ledger].require(AtomicDvp)

    @property
    def state(self) -> AtomicSwapState:
        return AtomicSwapState.model_validate(self.data)

    async def status(self) -> OrderStatus | None:
        order_id = self.state.order_id
        assert order_id is not None, "the order id is journaled before the proposal"
        found = await self.adapter.get_order(order_id)
        return found.status if found else None

    async def drive(self) -> tuple[Outcome, str]:
        t = self.trade
        base = self.o.ledgers[self.ledger]
        state = self.state
        if state.order is None or state.order_id is None:
            now = await base.now()
            new = DvpOrder(
                seller=t.seller,
                buyer=t.buyer,
                security=t.security.asset,
                security_amount=t.security.amount,
                cash=t.cash.asset,
                cash_amount=t.cash.amount,
                deadline=base.expiry_after(now, self.spec.plan.holder_timeout),
                nonce=_secrets.token_hex(32),
            )
            # Write-ahead: the order and its id are on disk before the proposal is broadcast.
            await self.put(AtomicSwapState(order=new, order_id=self.adapter.order_id(new)))
        order = self.state.order
        assert order is not None
        if self.state.cancelling is not None and await self.never_proposed():
            return Outcome.ABORTED, f"{self.state.cancelling}; the order was never proposed, nothing moved"
        await self.transact(
            StepName.PROPOSE,
            self.ledger,
            lambda: self.adapter.propose_dvp(order),
            lambda: _is(self.status(), {OrderStatus.OPEN, OrderStatus.SETTLED, OrderStatus.CANCELLED}),
        )
        if self.state.cancelling is None and not self.spec.behaviour.counter_locks:
            await self.withdraw(f"buyer {t.buyer!r} did not accept")
        if self.state.cancelling is None:
            await self.transact(
                StepName.SETTLE,
                self.ledger,
                lambda: self.adapter.accept_dvp(order),
                lambda: _is(self.status(), {OrderStatus.SETTLED}),
            )
        else:
            await self.cancel(order)
        return await self.by_the_ledger()

    async def withdraw(self, why: str) -> None:
        """Decide to cancel the order (journaled: a resumed drive cancels it, with this cause)."""
        await self.put(self.state.model_copy(update={"cancelling": why}))
        self.o.progress(self.id, f"cancelling the order: {why}")

    async def never_proposed(self) -> bool:
        """Nothing of the proposal can have left this process: not even its intent journaled
        (after the intent, a broadcast may be pending unjournaled), and no order on the ledger."""
        started = any(s.step == StepName.PROPOSE for s in self.o.journal.steps(self.id))
        return not started and await self.status() is None

    async def cancel(self, order: DvpOrder) -> None:
        """The seller cancels its order unless the ledger shows it closed; if the ledger
        refuses (the buyer's acceptance landed first), the ledger's status decides."""
        try:
            await self.transact(
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
            leg = self.trade.security
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
        seen: set[str | None] = set()
        for s in self.o.journal.steps(self.id):
            if s.phase != Phase.FINAL or s.tx_id in seen:
                continue
            seen.add(s.tx_id)
            unit = s.detail.get("fee_asset") or self.o.ledgers[self.ledger].fee_unit
            key = (str(s.detail.get("payer")), unit)
            paid[key] = paid.get(key, 0) + int(s.detail.get("fee") or 0)
        return ", ".join(f"{fee} {unit} ({payer})" for (payer, unit), fee in paid.items()) or "none"


async def _is(awaitable: Awaitable[object], allowed: set[OrderStatus]) -> bool:
    return (await awaitable) in allowed


# The ledger refused a lock for good (nothing was locked by that attempt), as opposed to a
# node that did not answer, after which the swap stays unfinished and is resumed.
_REFUSED = (errors.LockError, errors.SubmitError, errors.CommitError)


class _HtlcRun(_Run):
    """Cross-ledger DvP by hashed time-locks.

    The secret holder's leg expires last; the other party audits it before
    locking its own leg with the shorter expiry; the holder audits that lock and
    claims it (revealing the secret) only while a safety margin remains; the
    other party extracts the secret from its ledger and claims the holder's leg.
    Every failure ends in refunds after expiry.
    """

    def __init__(self, *args: Any):
        super().__init__(*args)
        plan = self.spec.plan
        self.holder = plan.secret_holder
        self.counter = self.holder.other
        self.first = plan.locks_first
        self.second = self.first.other
        self.budget = budget(
            plan,
            self.adapter_of(self.holder).finality,
            self.adapter_of(self.counter).finality,
            self.adapter_of(self.first).finality,
        )
        self.late = ""  # why the second leg was not locked, when it was too late

    def leg_name(self, role: Role) -> LegName:
        return LegName.sent_by(role)

    @property
    def state(self) -> HtlcSwapState:
        return HtlcSwapState.model_validate(self.data)

    def step(self, action: Action, role: Role) -> StepName:
        return StepName.of(action, LegName.sent_by(role))

    def ledger_of(self, role: Role) -> str:
        return self.trade.leg_sent_by(role).ledger

    def adapter_of(self, role: Role) -> LedgerAdapter:
        return self.o.ledgers[self.ledger_of(role)]

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

    # -- the drive ----------------------------------------------------------------------------
    async def drive(self) -> tuple[Outcome, str]:
        outcome, detail = await self.steps()
        return await self.by_the_ledgers(outcome, detail)

    async def steps(self) -> tuple[Outcome, str]:
        if self.state.unwinding is not None:  # decided before a crash: finish the unwind, with its first cause
            return await self.unwind(self.state.unwinding)
        b = self.spec.behaviour
        try:
            if not await self.lock(self.first):
                return Outcome.ABORTED, "first leg was not locked; nothing moved"
        except _REFUSED as exc:
            return await self.unwind(self.refused(self.first, exc))
        try:
            await self.audit(self.first)
        except errors.LockError as exc:
            return await self.unwind(f"audit of the first lock failed: {exc}")
        if self.second is self.counter and not b.counter_locks:
            return await self.unwind("counterparty never locked")
        try:
            if not await self.lock(self.second):
                return await self.unwind(f"too little time left to lock the second leg: {self.late}")
        except _REFUSED as exc:
            return await self.unwind(self.refused(self.second, exc))
        try:
            await self.audit(self.second)
        except errors.LockError as exc:
            return await self.unwind(f"audit of the second lock failed: {exc}")
        if not b.holder_claims or not await self.holder_claim():
            return await self.unwind("secret holder did not claim; no secret revealed")
        preimage = await self.extract_secret()
        if b.counter_claims and await self.counter_claim(preimage):
            return Outcome.SETTLED, "both legs claimed"
        return await self.principal_loss()

    def refused(self, role: Role, exc: Exception) -> str:
        return f"{self.leg_name(role)} lock refused by {self.ledger_of(role)}: {exc}"

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

    async def lock(self, role: Role) -> bool:
        """Lock ``role``'s leg (idempotently); False if it is too late to do so safely."""
        step = self.step(Action.LOCK, role)
        adapter = self.adapter_of(role)
        ledger = self.ledger_of(role)
        if self.lock_id_of(role) is None:
            timeout = self.spec.plan.holder_timeout if role is self.holder else self.spec.plan.counter_timeout
            if role is self.second:
                try:
                    timeout = await self.second_leg_seconds()
                except errors.UnsafeTimeouts as exc:
                    self.late = str(exc)
                    return False
            now = await adapter.now()
            expiry = adapter.expiry_after(now, timeout)
            if role is self.counter:
                # Never later than asked: a ledger counting blocks rounds up, which would eat the gap.
                for _ in range(3):
                    if adapter.seconds_left(now, expiry) <= timeout:
                        break
                    expiry -= 1
            leg = self.trade.leg_sent_by(role)
            terms = HtlcTerms(
                sender=self.trade.party(role),
                recipient=self.trade.party(role.other),
                asset=leg.asset,
                amount=leg.amount,
                hashlock=self.known_hashlock(),
                expiry=expiry,
                nonce=_secrets.token_hex(32),
            )
            # Write-ahead: terms and lock id are on disk before the lock is broadcast.
            await self.put(self.state.with_lock(self.leg_name(role), terms, adapter.lock_id(terms)))
        terms = self.known_terms(role)
        lock_id = self.known_lock_id(role)

        async def exists() -> bool:
            return await adapter.get_lock(lock_id) is not None

        if not self.done(step) and not await exists():
            if adapter.seconds_left(await adapter.now(), terms.expiry) <= adapter.finality.expected_seconds:
                return False
        await self.transact(step, ledger, lambda: adapter.lock(terms), exists)
        return True

    async def second_leg_seconds(self) -> int:
        """How long the second leg may run if locked now: the plan check's own computation,
        anchored to the first leg's expiry so the gap stays the planned one."""
        first_adapter = self.adapter_of(self.first)
        left = first_adapter.seconds_left(await first_adapter.now(), self.known_terms(self.first).expiry)
        return second_leg_seconds(
            self.spec.plan,
            self.adapter_of(self.holder).finality,
            self.adapter_of(self.counter).finality,
            holder_first=self.first is self.holder,
            first_left=left,
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

    async def holder_claim(self) -> bool:
        """The secret holder claims the counter leg, revealing the secret, only with margin left."""
        role = self.counter
        margin = self.budget.claim_window

        async def too_late(adapter: LedgerAdapter, expiry: int) -> bool:
            if adapter.seconds_left(await adapter.now(), expiry) > margin:
                return False
            await self.note(
                self.step(Action.CLAIM, role),
                Phase.SKIPPED,
                self.ledger_of(role),
                reason="inside the safety margin before expiry",
            )
            return True

        secret = self.state.secret
        assert secret is not None, "only the secret holder claims the counter leg first"
        return await self.claim(role, bytes.fromhex(secret), self.holder, too_late)

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

    async def claim(self, role: Role, preimage: bytes, claimant: Role,
                    too_late: Callable[[LedgerAdapter, int], Awaitable[bool]]) -> bool:  # fmt: skip
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

    # -- failure paths --------------------------------------------------------------------------
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

    async def unwind(self, why: str) -> tuple[Outcome, str]:
        """No secret revealed: every lock goes back to its sender after expiry."""
        if self.state.unwinding != why:
            await self.put(
                self.state.model_copy(update={"unwinding": why})
            )  # a resumed drive finishes this unwind, with this cause
        self.o.progress(self.id, f"unwinding: {why}")
        # The shorter (counter) leg expires first; refund in expiry order.
        refunded = [r for r in (self.counter, self.holder) if await self.refund(r)]
        if not refunded:
            return Outcome.ABORTED, f"{why}; nothing was locked"
        legs = " and ".join(self.leg_name(r) for r in refunded)
        return Outcome.REFUNDED, f"{why}; refunded {legs}"

    async def principal_loss(self) -> tuple[Outcome, str]:
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
