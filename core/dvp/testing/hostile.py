"""A dishonest counterparty, for tests that show an honest agent never loses principal.

``hostile_agent(misbehaviour)`` is an :class:`~dvp.party.agent.Agent` subclass that accepts
and proposes like any agent, then plays its own role in the swap dishonestly: it locks its
leg with terms that differ from the agreed ones (a real lock of its own funds, announced by
a LOCKED notice naming it, as a cheater would), never locks while sending friendly notices,
names locks that do not exist, replays its own messages, or (holding the secret) reveals it
at the last second the counter lock still takes a claim.  A tampered lock is journaled as
the hostile party's own, so its run takes it back after expiry like any refund.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from .. import errors
from ..adapter import LedgerAdapter
from ..hashlock import hashlock_of, new_secret
from ..journal import SwapRecord
from ..models import Asset, HtlcTerms, Role, SwapSpec
from ..party.agent import SEND_TIMEOUT, Agent
from ..party.channel import Channel, Handler
from ..party.messages import Kind, Message
from ..party.run import Hints, Notify, PartyRun, Probe
from ..state import LegName
from ..steps import Outcome, SwapSteps


class Misbehaviour(StrEnum):
    SHORT_EXPIRY = "short_expiry"  # locks with an expiry earlier than agreed
    OTHER_HASHLOCK = "other_hashlock"  # locks under a hashlock of its own
    SMALLER_AMOUNT = "smaller_amount"  # locks half the agreed amount
    WRONG_RECIPIENT = "wrong_recipient"  # locks to itself
    WRONG_ASSET = "wrong_asset"  # locks another asset of the same ledger
    NEVER_LOCKS = "never_locks"  # says it locked, never does
    FALSE_NOTICES = "false_notices"  # names locks that do not exist, claims it did not make
    REPLAY = "replay"  # sends its last notice again, as it was and with another body
    LATE_REVEAL = "late_reveal"  # the secret holder claims the counter lock at its last second


TAMPERED = frozenset(
    {
        Misbehaviour.SHORT_EXPIRY,
        Misbehaviour.OTHER_HASHLOCK,
        Misbehaviour.SMALLER_AMOUNT,
        Misbehaviour.WRONG_RECIPIENT,
        Misbehaviour.WRONG_ASSET,
    }
)
LIES = frozenset({Misbehaviour.NEVER_LOCKS, Misbehaviour.FALSE_NOTICES, Misbehaviour.REPLAY})
# LATE_REVEAL watches the counter leg's clock this often (a test's in-memory clock jumps fast).
LATE_POLL_SECONDS = 0.001
LATE_POLLS = 1_000_000
# An id no ledger can have issued (too short for a 32-byte id or a script): adapters raise
# LockNotFound (or reject the id) rather than answer None.
MALFORMED_LOCK_ID = "0xdead"


class HostileRun(PartyRun):
    """The honest party's run with its own role played dishonestly: the misbehaviour's
    steps go through the same journaled steps (:class:`dvp.steps.SwapSteps`)."""

    misbehaviour: ClassVar[Misbehaviour]

    def __init__(self, steps: SwapSteps, hints: Hints, notify: Notify, probe: Probe, *, assets: Iterable[Asset]):
        super().__init__(steps, hints, notify, probe)
        self.assets = list(assets)

    async def own_steps(self) -> tuple[Outcome, str]:
        if self.misbehaviour in LIES:
            return await self.lie()
        return await super().own_steps()  # the honest steps, but for the one overridden

    async def lock_own(self, role: Role) -> None:
        s = self.steps
        leg, adapter = s.leg_name(role), s.adapter_of(role)
        if self.misbehaviour in TAMPERED and s.known_terms(role) == self.agreement().terms(leg):
            terms = await self.tampered(s.known_terms(role))
            # Journaled as this party's lock: its notice names it and its refund takes it back.
            await s.put(s.state.with_lock(leg, terms, adapter.lock_id(terms)))
        await super().lock_own(role)

    async def holder_claim(self) -> bool:
        if self.misbehaviour is not Misbehaviour.LATE_REVEAL:
            return await super().holder_claim()
        # Reveal as late as the ledger still takes it, leaving the counterparty only the gap.
        s = self.steps
        adapter, expiry = s.adapter_of(self.counter), s.known_terms(self.counter).expiry
        for _ in range(LATE_POLLS):
            if adapter.seconds_left(await adapter.now(), expiry) <= 1:
                break
            await asyncio.sleep(LATE_POLL_SECONDS)

        async def never_too_late(adapter: LedgerAdapter, expiry: int) -> bool:
            return False

        return await s.claim(self.counter, s.known_secret(), self.holder, never_too_late)

    async def tampered(self, terms: HtlcTerms) -> HtlcTerms:
        s = self.steps
        adapter, ledger = s.adapter_of(self.me), s.ledger_of(self.me)
        change: dict[str, Any]
        match self.misbehaviour:
            case Misbehaviour.SHORT_EXPIRY:
                now = await adapter.now()
                half = max(1, int(adapter.seconds_left(now, terms.expiry)) // 2)
                change = {"expiry": min(adapter.expiry_after(now, half), terms.expiry - 1)}
            case Misbehaviour.OTHER_HASHLOCK:
                change = {"hashlock": hashlock_of(new_secret()).hex()}
            case Misbehaviour.SMALLER_AMOUNT:
                if terms.amount < 2:
                    raise errors.ConfigError(
                        f"{self.misbehaviour}: the agreed amount {terms.amount} has no smaller one"
                    )
                change = {"amount": terms.amount // 2}
            case Misbehaviour.WRONG_RECIPIENT:
                change = {"recipient": terms.sender}
            case Misbehaviour.WRONG_ASSET:
                others = sorted(a.symbol for a in self.assets if a.ledger == ledger and a.symbol != terms.asset)
                if not others:
                    raise errors.ConfigError(
                        f"{self.misbehaviour}: ledger {ledger!r} carries no asset but {terms.asset}"
                    )
                change = {"asset": others[0]}
            case _:
                raise AssertionError(self.misbehaviour)
        return terms.model_copy(update=change)

    async def lie(self) -> tuple[Outcome, str]:
        """Never lock; say so anyway."""
        s = self.steps
        if self.me is self.counter:  # a believable liar waits for the holder's lock first
            why = await self.await_lock(self.holder, self.counter_gives_up)
            if why:
                return Outcome.ABORTED, why
        await self.notify(Kind.LOCKED, self.me)  # names the agreed id: nothing is locked there
        if self.misbehaviour is Misbehaviour.FALSE_NOTICES:
            mine, theirs = s.leg_name(self.me), s.leg_name(self.me.other)
            await self._notify(s.id, Kind.LOCKED, mine, self.unissued_lock_id())
            await self._notify(s.id, Kind.CLAIMED, theirs, s.known_lock_id(self.me.other))
            await self._notify(s.id, Kind.LOCKED, mine, MALFORMED_LOCK_ID)
        return Outcome.ABORTED, f"{self.misbehaviour}: never locked"

    def unissued_lock_id(self) -> str:
        """A well-formed id of a lock this party never made."""
        terms = self.steps.known_terms(self.me)
        fake = terms.model_copy(update={"hashlock": secrets.token_hex(32), "nonce": secrets.token_hex(32)})
        return self.steps.adapter_of(self.me).lock_id(fake)


class RecordingChannel(Channel):
    """Another channel, keeping every message sent through it (for replays)."""

    def __init__(self, inner: Channel):
        super().__init__(inner.party)
        self.inner = inner
        self.sent: list[Message] = []

    async def start(self, handler: Handler) -> None:
        await self.inner.start(handler)

    async def send(self, message: Message, *, timeout: float = 5.0) -> Message | None:
        self.sent.append(message)
        return await self.inner.send(message, timeout=timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class Replay:
    message: Message
    refused: str | None  # the peer's refusal, None if it took the message


class HostileAgent(Agent):
    misbehaviour: ClassVar[Misbehaviour]
    hostile_run: type[HostileRun] = HostileRun

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recorder = RecordingChannel(self.channel)
        self.channel = self.recorder
        self.replays: list[Replay] = []

    def run_for(self, record: SwapRecord, spec: SwapSpec) -> PartyRun:
        steps = self.orch.steps_for(record, spec)
        return self.hostile_run(
            steps, self.hints_of(record.id), self.notify, self.probe, assets=self.orch.assets.values()
        )

    async def notify(self, swap_id: str, kind: Kind, leg: LegName, lock_id: str, /, half: str | None = None) -> None:
        await super().notify(swap_id, kind, leg, lock_id, half)
        if self.misbehaviour is Misbehaviour.REPLAY:
            await self.replay(swap_id)

    async def replay(self, swap_id: str) -> None:
        """The last notice sent for ``swap_id`` again (same seq), then with another lock id."""
        old = next((m for m in reversed(self.recorder.sent) if m.swap_id == swap_id and "lock_id" in m.body), None)
        if old is None:
            return
        forged = old.model_copy(update={"body": {**old.body, "lock_id": "0x" + secrets.token_hex(32)}})
        for message in (old, forged):
            try:
                await self.recorder.send(message, timeout=SEND_TIMEOUT)
            except errors.MessageRefused as exc:
                self.replays.append(Replay(message, str(exc)))
            except errors.PeerUnreachable:
                pass
            else:
                self.replays.append(Replay(message, None))


_AGENTS: dict[Misbehaviour, type[HostileAgent]] = {}


def hostile_agent(misbehaviour: Misbehaviour) -> type[HostileAgent]:
    """The agent class (constructed as :class:`Agent`) that plays its role with ``misbehaviour``."""
    if misbehaviour not in _AGENTS:
        name = misbehaviour.title().replace("_", "")

        class Run(HostileRun):
            pass

        class Hostile(HostileAgent):
            hostile_run = Run

        Run.misbehaviour = Hostile.misbehaviour = misbehaviour
        Run.__name__ = Run.__qualname__ = f"Hostile{name}Run"
        Hostile.__name__ = Hostile.__qualname__ = f"Hostile{name}Agent"
        _AGENTS[misbehaviour] = Hostile
    return _AGENTS[misbehaviour]
