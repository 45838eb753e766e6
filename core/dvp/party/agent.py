"""One party's agent: it proposes or answers trades, drives its own side of each agreed swap
(:class:`dvp.party.run.PartyRun`) and tells the peer what it did, as hints.

Every message it takes is checked against its journal before it is used: the sender is the
one peer (the channel authenticated it and verified its signature), the swap exists (but for
a proposal), and its sequence number is above every one taken before for that swap, so a
replayed or reordered message is refused, across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import StrictBool, ValidationError

from .. import errors
from ..adapter import LedgerAdapter
from ..hashlock import hashlock_of, new_secret
from ..journal import Journal, SwapRecord
from ..lease import drive_lease
from ..models import Asset, Frozen, Limit, Margin, Role, SwapSpec
from ..orchestrator import Orchestrator, Outcome, Progress, SwapResult
from ..scenario import first_error
from ..state import HtlcSwapState, LegName, PartySide
from ..terms import Agreement, Proposal
from ..timeouts import budget
from .agreement import check_proposal, propose
from .channel import Channel, cancelled_by_caller
from .limits import Admission, Limits, QuietLog
from .messages import REPLY_KINDS, Kind, Message, next_seq
from .run import Hints, PartyRun

# A message older than this (or this far ahead of our clock) is refused: a replay from a
# journal that no longer remembers it cannot be used long after it was sent.
MAX_MESSAGE_AGE = 600.0
MAX_CLOCK_AHEAD = 60.0
SEND_TIMEOUT = 3.0
NOTICE_RETRY_SECONDS = 2.0
NOTICE_RETRIES = 60
# A swap's drive that ends without an outcome (a bug, a ledger down, a cancel that was not a
# stop of this agent) is started again, this many times, waiting twice as long each time.
DRIVE_RESTARTS = 12
RESTART_FIRST_SECONDS = 1.0
RESTART_MOST_SECONDS = 30.0
# Ends that no restart can change: the swap is not this agent's to drive.
_NOT_RESTARTED = (errors.UnknownSwap, errors.ConfigError)


class AcceptPolicy(Frozen):
    """This party's own rules for a trade, whoever proposes it (its own proposals pass them too):
    what it may send (``max_send``: ``LEDGER:ASSET`` -> most base units; when given, an asset
    it does not list is refused), the least safety margins it runs a plan with, whether it
    takes the ``fast_forward`` dev switch, and whether it accepts proposals at all.  The
    peer's proposal never sets these: a plan below them is refused, with the reason."""

    accept: bool = True
    max_send: dict[str, Limit] | None = None  # None: any asset of its ledgers; {}: nothing
    reaction_window: Margin = 30  # the least plan.reaction_window it runs a swap with
    claim_margin: Margin | None = None  # the least plan.claim_margin; None: its ledgers' own (finality + skew)
    fast_forward: StrictBool = False  # a dev switch (clock jumps on dev chains): refused unless set here

    def check(self, spec: SwapSpec, role: Role, ledgers: Mapping[str, LedgerAdapter], *, incoming: bool = True) -> None:
        """SwapAborted with the reason if ``spec``, in which this party is ``role``, breaks the policy."""
        if incoming and not self.accept:
            raise errors.SwapAborted("this agent accepts no proposals (policy accept: false)")
        if spec.fast_forward and not self.fast_forward:
            raise errors.SwapAborted("fast_forward: a dev switch this agent does not take (policy fast_forward: false)")
        leg = spec.trade.leg_sent_by(role)
        if self.max_send is not None:
            limit = self.max_send.get(f"{leg.ledger}:{leg.asset}")
            if limit is None:
                listed = ", ".join(sorted(self.max_send)) or "nothing"
                raise errors.SwapAborted(
                    f"{leg.asset} on {leg.ledger} is not in this party's policy max_send (it sends {listed})"
                )
            if leg.amount > limit:
                raise errors.SwapAborted(
                    f"{leg.amount} {leg.asset} on {leg.ledger} is above this party's limit of {limit}"
                )
        plan = spec.plan
        if plan.reaction_window < self.reaction_window:
            raise errors.SwapAborted(
                f"plan.reaction_window: {plan.reaction_window}s is below this party's "
                f"{self.reaction_window}s (policy reaction_window)"
            )
        holder = ledgers[spec.trade.leg_sent_by(plan.secret_holder).ledger].finality
        counter = ledgers[spec.trade.leg_sent_by(plan.secret_holder.other).ledger].finality
        theirs = budget(plan, holder, counter).claim_margin
        mine = budget(plan.model_copy(update={"claim_margin": self.claim_margin}), holder, counter).claim_margin
        if theirs < mine:
            source = "policy claim_margin" if self.claim_margin is not None else "its ledgers' finality and skew"
            raise errors.SwapAborted(f"plan.claim_margin: {theirs}s is below this party's {mine}s ({source})")


class _Turn:
    """The copies of one proposal being answered, one at a time."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class Agent:
    # The run each agreed swap gets (a test's hostile party subclasses it).
    run_class: type[PartyRun] = PartyRun

    def __init__(
        self,
        party: str,
        peer: str,
        ledgers: Mapping[str, LedgerAdapter],
        assets: list[Asset],
        journal: Journal,
        channel: Channel,
        *,
        policy: AcceptPolicy | None = None,
        limits: Limits | None = None,
        progress: Progress | None = None,
    ):
        self.party, self.peer = party, peer
        self.orch = Orchestrator(ledgers, assets, journal, progress)
        self.journal = journal
        self.channel = channel
        self.policy = policy or AcceptPolicy()
        self.progress = self.orch.progress
        self.limits = limits or Limits()
        self.admission = Admission(self.limits)
        # What the peer's messages make this agent say: bounded, a flood must not fill the log.
        self.peer_log = QuietLog(self.progress, self.limits.log_lines_per_minute)
        self.hints: dict[str, Hints] = {}
        self.tasks: dict[str, asyncio.Task[SwapResult | None]] = {}
        self._retries: set[asyncio.Task[None]] = set()
        self._proposing: dict[str, _Turn] = {}
        self._closing = False

    @property
    def ledgers(self) -> Mapping[str, LedgerAdapter]:
        return self.orch.ledgers

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the peer, and drive on every unfinished swap of this party's journal."""
        await self.channel.start(self.handle)
        for record in self.journal.swaps(unfinished=True):
            self.spawn(record.id)

    async def aclose(self) -> None:
        self._closing = True
        self.peer_log.flush()
        if self.admission.refused:
            said = ", ".join(f"{n} {why}" for why, n in sorted(self.admission.refused.items()))
            self.progress("-", f"refused or rejected from {self.peer}: {said}")
        for task in [*self.tasks.values(), *self._retries]:
            task.cancel()
        await asyncio.gather(*self.tasks.values(), *self._retries, return_exceptions=True)
        await self.channel.aclose()

    def spawn(self, swap_id: str) -> asyncio.Task[SwapResult | None]:
        task = self.tasks.get(swap_id)
        if task is None or task.done():
            task = self.tasks[swap_id] = asyncio.create_task(self._drive_logged(swap_id))
        return task

    async def wait_all(self) -> list[SwapResult | None]:
        return list(await asyncio.gather(*self.tasks.values()))

    async def _drive_logged(self, swap_id: str) -> SwapResult | None:
        """The supervisor of one swap's drive: a drive that ends without an outcome is logged
        with why and started again (bounded, with backoff), until the swap has an outcome.
        Only a stop of this agent ends it early; the swap then stays unfinished in the
        journal, and a restarted agent drives it on."""
        delay = RESTART_FIRST_SECONDS
        for attempt in range(1, DRIVE_RESTARTS + 2):
            try:
                result = await self.drive(swap_id)
                if result.outcome is not None:
                    return result
                why = "its drive ended without an outcome"
            except asyncio.CancelledError:
                if self._closing or cancelled_by_caller():
                    raise  # a real stop
                why = "a call it awaited was cancelled under it"
            except _NOT_RESTARTED as exc:
                self.progress(swap_id, f"stopped, unfinished: {exc}")
                return None
            except errors.DvpError as exc:
                why = str(exc)
            except Exception as exc:  # a bug: the agent goes on serving its other swaps, and says so
                why = f"internal error: {type(exc).__name__}: {exc}"
            if attempt > DRIVE_RESTARTS:
                break
            self.progress(
                swap_id,
                f"stopped, unfinished: {why}; driving it again in {delay:g}s (restart {attempt} of {DRIVE_RESTARTS})",
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, RESTART_MOST_SECONDS)
        self.progress(swap_id, f"stopped, unfinished: {why}; no restart left (a restarted agent drives it on)")
        return None

    # -- proposing -----------------------------------------------------------------------------
    async def propose(self, spec: SwapSpec, swap_id: str | None = None) -> str:
        """Check ``spec`` with this party's ledgers, journal it, and start proposing it to the
        peer; the swap is then driven like any other (:meth:`drive`)."""
        self.orch.validate(spec)
        role = self._role_in(spec)
        try:  # this party's own proposals pass its own policy, as its peer's do
            self.policy.check(spec, role, self.ledgers, incoming=False)
        except errors.SwapAborted as exc:
            raise errors.ConfigError(f"policy: {exc}") from None
        if spec.resolved_kind != "htlc" or spec.plan.locks_first is not spec.plan.secret_holder:
            raise errors.ConfigError(
                "kind: two agents run cross-ledger HTLC swaps in which the secret holder locks first"
            )
        swap_id = swap_id or uuid.uuid4().hex[:12]
        secret = new_secret() if role is spec.plan.secret_holder else None
        hashlock = hashlock_of(secret).hex() if secret else None
        proposal = await propose(swap_id, self.party, spec, self.ledgers, hashlock)
        await self._check_own_lock(proposal, role, hashlock or "00" * 32)
        side = PartySide(party=self.party, role=role, peer=self.peer, proposer=self.party, proposal=proposal)
        # Write-ahead: the secret is on disk before its hashlock leaves this process.
        state = HtlcSwapState(secret=secret.hex() if secret else None, hashlock=hashlock, side=side)
        with drive_lease(self.journal.path, swap_id):
            self.journal.create(swap_id, "htlc", spec.model_dump(mode="json"), state.dump())
        self.progress(swap_id, f"proposed to {self.peer} as the {role.value}")
        self.spawn(swap_id)
        return swap_id

    def _role_in(self, spec: SwapSpec) -> Role:
        if spec.trade.seller == self.party and spec.trade.buyer == self.peer:
            return Role.SELLER
        if spec.trade.buyer == self.party and spec.trade.seller == self.peer:
            return Role.BUYER
        raise errors.ConfigError(
            f"trade: {self.party!r} and {self.peer!r} must be its seller and buyer "
            f"(it names {spec.trade.seller!r} and {spec.trade.buyer!r})"
        )

    async def _check_own_lock(self, proposal: Proposal, role: Role, hashlock: str) -> None:
        leg = LegName.sent_by(role)
        terms = Agreement(proposal=proposal, hashlock=hashlock).terms(leg)
        await self.ledgers[proposal.spec.trade.leg_sent_by(role).ledger].check_lock(terms)

    async def _await_answer(self, swap_id: str, side: PartySide) -> tuple[Agreement | None, str]:
        """Send (again) this party's proposal until the peer answers or the counter leg's
        time is too short to start; (agreement, "") or (None, why not)."""
        assert side.proposal is not None
        proposal = side.proposal
        deadline = time.time() + proposal.spec.plan.counter_timeout
        last = "no answer"
        for _ in range(1000):
            if time.time() >= deadline:
                break
            try:
                reply = await self.send(Kind.PROPOSE, swap_id, proposal.model_dump(mode="json"))
            except errors.PeerUnreachable as exc:
                last = str(exc)
                await asyncio.sleep(NOTICE_RETRY_SECONDS)
                continue
            except errors.MessageRefused as exc:
                return None, f"the proposal was refused: {exc}"
            if reply is None or reply.kind is Kind.REJECT:
                reason = reply.body.get("reason", "no reason given") if reply else "no answer"
                return None, f"{self.peer} rejected the proposal: {reason}"
            if reply.kind is not Kind.ACCEPT:
                return None, f"{self.peer} answered the proposal with {reply.kind.value}"
            hashlock = proposal.hashlock or reply.body.get("hashlock")
            try:
                return Agreement.model_validate({"proposal": proposal, "hashlock": hashlock}), ""
            except ValidationError:
                return None, f"{self.peer} accepted without a valid hashlock"
        return None, f"{self.peer}'s agent never answered the proposal ({last})"

    # -- driving one swap ----------------------------------------------------------------------
    async def drive(self, swap_id: str) -> SwapResult:
        with drive_lease(self.journal.path, swap_id):
            record = self.orch.journal.get(swap_id)
            if record is None:
                raise errors.UnknownSwap(f"swap_id: no swap {swap_id!r} in journal {self.journal.path}")
            if record.outcome is None:
                state = HtlcSwapState.model_validate(record.data)
                side = state.side
                if side is None:
                    raise errors.ConfigError(f"swap {swap_id}: not a two-party swap; drive it with `dvp resume`")
                if side.agreement is None and side.proposer != self.party:
                    # An agent before this one journaled the proposal, then stopped before it agreed
                    # and answered: nothing was locked; the proposer's retry is refused (REJECT).
                    why = f"stopped before answering {self.peer}'s proposal; called off, nothing locked"
                    self.journal.finish(swap_id, Outcome.ABORTED.value, why)
                    self.progress(swap_id, f"aborted: {why}")
                    return self.orch.result(swap_id)
                if side.agreement is None:
                    agreement, why = await self._await_answer(swap_id, side)
                    if agreement is None:
                        self.journal.finish(swap_id, Outcome.ABORTED.value, f"{why}; nothing moved")
                        self.progress(swap_id, f"aborted: {why}")
                        return self.orch.result(swap_id)
                    self._agree(swap_id, state, agreement)
                    record = self.orch.journal.get(swap_id) or record
                spec = SwapSpec.model_validate(record.spec)
                run = self.run_class(self.orch, record, spec, self.hints_of(swap_id), self.notify, self.probe)
                outcome, detail = await run.drive()
                self.journal.finish(swap_id, outcome.value, detail)
                self.progress(swap_id, f"{outcome.value}: {detail}")
            return self.orch.result(swap_id)

    def _agree(self, swap_id: str, state: HtlcSwapState, agreement: Agreement) -> None:
        """Journal both legs' agreed terms and lock ids: from here each is expected on its ledger."""
        self.journal.update_data(swap_id, **self._agreed(state, agreement).dump())

    def _agreed(self, state: HtlcSwapState, agreement: Agreement) -> HtlcSwapState:
        """``state`` with the agreement and both legs' agreed terms and lock ids."""
        side = state.side
        assert side is not None
        spec = agreement.proposal.spec
        for leg in LegName:
            terms = agreement.terms(leg)
            adapter = self.ledgers[spec.trade.leg_sent_by(leg.sender).ledger]
            state = state.with_lock(leg, terms, adapter.lock_id(terms))
        side = side.model_copy(update={"agreement": agreement, "proposal": None})
        return state.model_copy(update={"hashlock": agreement.hashlock, "side": side})

    def hints_of(self, swap_id: str) -> Hints:
        return self.hints.setdefault(swap_id, Hints())

    # -- the channel -----------------------------------------------------------------------------
    async def send(self, kind: Kind, swap_id: str, body: dict[str, Any]) -> Message | None:
        seq = next_seq(self.journal.last_seq(swap_id, self.peer, "out"))
        message = Message(kind=kind, swap_id=swap_id, sender=self.party, recipient=self.peer, seq=seq, body=body)
        try:
            reply = await self.channel.send(message, timeout=SEND_TIMEOUT)
        except asyncio.CancelledError:
            if self._closing or cancelled_by_caller():
                raise  # this agent stops
            # The channel cancelled the call under us (e.g. it closed a connection the call
            # was on): a send that failed, never the end of the swap's drive.
            raise errors.PeerUnreachable(
                f"the {kind.value} message to {self.peer!r} was cut off in flight (its connection closed)"
            ) from None
        self.journal.message(swap_id, self.peer, "out", kind.value, seq)
        if reply is not None:
            # A reply answers this request on its own call: it is bound to it by the channel,
            # so only its parties and age are checked, not its order among the peer's notices.
            self._check_incoming(reply, reply_to=message)
            self.journal.message(swap_id, self.peer, "in", reply.kind.value, reply.seq)
        return reply

    async def notify(self, swap_id: str, kind: Kind, leg: LegName, lock_id: str) -> None:
        """Tell the peer, as a hint; if its agent does not answer, keep trying in the
        background (bounded) while the swap goes on by the ledgers."""
        body = {"leg": leg.value, "lock_id": lock_id}
        hints = self.hints_of(swap_id)
        try:
            await self.send(kind, swap_id, body)
            hints.unreachable_since = None
            return
        except errors.MessageRefused as exc:
            self.progress(swap_id, f"{self.peer} refused our {kind.value} notice: {exc}")
            return
        except errors.PeerUnreachable as exc:
            if hints.unreachable_since is None:
                hints.unreachable_since = time.time()
            self.progress(swap_id, f"{kind.value} notice not delivered ({exc}); retrying in the background")

        async def retry() -> None:
            for _ in range(NOTICE_RETRIES):
                await asyncio.sleep(NOTICE_RETRY_SECONDS)
                with contextlib.suppress(errors.PeerUnreachable):
                    try:
                        await self.send(kind, swap_id, body)
                    except errors.MessageRefused:
                        return
                    hints.unreachable_since = None
                    return

        task = asyncio.create_task(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def probe(self, swap_id: str) -> None:
        """Ping the peer's agent; note when it stopped answering (for the swap's report)."""
        hints = self.hints_of(swap_id)
        try:
            await self.send(Kind.PING, swap_id, {})
        except errors.PeerUnreachable:
            if hints.unreachable_since is None:
                hints.unreachable_since = time.time()
            return
        except errors.MessageRefused:
            return
        hints.unreachable_since = None

    def _check_incoming(self, message: Message, reply_to: Message | None = None) -> None:
        """Refuse what is not for this party from its peer, or replayed, reordered or stale."""
        if message.sender != self.peer or message.recipient != self.party:
            raise errors.MessageRefused(
                f"message from {message.sender!r} to {message.recipient!r}: this agent is "
                f"{self.party!r} and talks only to {self.peer!r}"
            )
        age = time.time() - message.sent_at
        if age > MAX_MESSAGE_AGE or age < -MAX_CLOCK_AHEAD:
            raise errors.MessageRefused(
                f"stale message: sent {age:.0f}s ago (swap {message.swap_id}, seq {message.seq})"
            )
        if reply_to is not None:
            if message.swap_id != reply_to.swap_id:
                raise errors.MessageRefused(
                    f"reply for swap {message.swap_id} to a message for swap {reply_to.swap_id}"
                )
            return
        # Requests only: a reply the sender made meanwhile may carry a later number than a
        # request it numbered just before and that arrives just after.
        last = self.journal.last_seq(
            message.swap_id, message.sender, "in", leaving_out=tuple(k.value for k in REPLY_KINDS)
        )
        if message.seq <= last:
            raise errors.MessageRefused(
                f"replayed or reordered message: seq {message.seq} is not above {last}, "
                f"the last taken from {message.sender!r} for swap {message.swap_id}"
            )

    async def handle(self, message: Message) -> Message | None:
        """A message from the peer (already authenticated and its signature verified), within
        this agent's limits (:mod:`.limits`): over one it is refused and counted, not journaled.
        A rejected proposal leaves no swap and no row; a swap's messages are journaled up to
        ``limits.messages_per_swap``, finished or not."""
        if not self.admission.messages.take():
            self._over("messages_per_minute", message, f"more than {self.limits.messages_per_minute} messages a minute")
        self._check_incoming(message)
        record = self.journal.get(message.swap_id)
        if record is not None:
            if self.journal.message_count(message.swap_id, self.peer, "in") >= self.limits.messages_per_swap:
                self._over(
                    "messages_per_swap",
                    message,
                    f"more than {self.limits.messages_per_swap} messages for swap {message.swap_id}",
                )
        if message.kind is Kind.PROPOSE:
            reply = await self._on_proposal(message)
        elif message.kind in (Kind.LOCKED, Kind.CLAIMED, Kind.REFUNDED, Kind.PING):
            if record is None:
                raise errors.MessageRefused(f"{message.kind.value} for unknown swap {message.swap_id}")
            reply = self._on_notice(message, record) if message.kind is not Kind.PING else (Kind.ACK, {})
        else:
            raise errors.MessageRefused(f"unexpected {message.kind.value} message for swap {message.swap_id}")
        journaled = reply[0] is not Kind.REJECT
        if journaled:
            self.journal.message(message.swap_id, message.sender, "in", message.kind.value, message.seq)
        seq = next_seq(self.journal.last_seq(message.swap_id, self.peer, "out"))
        answer = message.reply(reply[0], seq, **reply[1])
        if journaled:
            self.journal.message(message.swap_id, self.peer, "out", answer.kind.value, seq)
        return answer

    def _over(self, limit: str, message: Message, what: str) -> NoReturn:
        self.admission.refuse(limit)
        self.peer_log(message.swap_id, f"refused {self.peer}'s {message.kind.value}: {what} (limits.{limit})")
        raise errors.MessageRefused(
            f"over this agent's limit: {what} from {self.peer!r} (limits.{limit}); refused, not journaled"
        )

    def _on_notice(self, message: Message, record: SwapRecord) -> tuple[Kind, dict[str, Any]]:
        try:
            leg = LegName(str(message.body.get("leg")))
        except ValueError:
            raise errors.MessageRefused(
                f"notice for swap {message.swap_id}: body.leg must be security or cash"
            ) from None
        lock_id = message.body.get("lock_id")
        if not isinstance(lock_id, str) or not 0 < len(lock_id) <= 2048:  # a UTXO lock id carries its script
            raise errors.MessageRefused(f"notice for swap {message.swap_id}: body.lock_id must be a lock id")
        if record.outcome is not None:  # nothing it says can change a finished swap: no ledger read
            return Kind.ACK, {}
        if lock_id != HtlcSwapState.model_validate(record.data).lock_id(leg) and not self.admission.other_lock(
            message.swap_id
        ):
            # Each lock id other than the agreed one costs a ledger read and a journal note.
            self._over(
                "other_locks_per_swap",
                message,
                f"more than {self.limits.other_locks_per_swap} notices naming "
                f"a lock other than the agreed one for swap {message.swap_id}",
            )
        self.peer_log(
            message.swap_id, f"{self.peer} says: {message.kind.value} {leg.value} {lock_id} (checking the ledger)"
        )
        self.hints_of(message.swap_id).heard(leg, lock_id)
        return Kind.ACK, {}

    async def _on_proposal(self, message: Message) -> tuple[Kind, dict[str, Any]]:
        try:
            proposal = Proposal.model_validate(message.body)
        except ValidationError as exc:
            raise errors.MessageRefused(first_error(exc, "proposal: ")) from None
        if proposal.swap_id != message.swap_id:
            raise errors.MessageRefused(f"proposal for swap {proposal.swap_id} sent as swap {message.swap_id}")
        # One at a time per swap id: the same proposal sent again while the first is being
        # checked gets the first one's answer (from the journal), not a clash on its lease.
        turn = self._proposing.setdefault(proposal.swap_id, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                return await self._answer_proposal(proposal)
        finally:
            turn.waiting -= 1
            if not turn.waiting:  # the last copy answered: nothing kept per swap id
                del self._proposing[proposal.swap_id]

    async def _answer_proposal(self, proposal: Proposal) -> tuple[Kind, dict[str, Any]]:
        existing = self.journal.get(proposal.swap_id)
        if existing is not None:
            return self._answer_again(existing, proposal)
        if not self.admission.proposals.take():
            return self._reject(
                proposal.swap_id,
                f"more than {self.limits.proposals_per_minute} proposals a minute "
                f"from {self.peer!r} (limits.proposals_per_minute)",
                "proposals_per_minute",
            )
        if len(self.journal.swaps(unfinished=True)) >= self.limits.unfinished_swaps:
            return self._reject(
                proposal.swap_id,
                f"this agent has {self.limits.unfinished_swaps} unfinished swaps, its "
                "limit (limits.unfinished_swaps); propose it again later",
                "unfinished_swaps",
            )
        try:
            # Its ledgers and assets first: every later check reads them.
            self.orch.validate(proposal.spec)
            role = await check_proposal(proposal, self.party, self.peer, self.ledgers)
            self.policy.check(proposal.spec, role, self.ledgers)
            secret = new_secret() if role is proposal.spec.plan.secret_holder else None
            hashlock = proposal.hashlock or hashlock_of(secret or b"").hex()
            await self._check_own_lock(proposal, role, hashlock)
        except (
            errors.SwapError,
            errors.ConfigError,
            errors.LockError,
            errors.NotSupportedError,
            errors.MessageRefused,
        ) as exc:
            return self._reject(proposal.swap_id, str(exc))
        except errors.AdapterError as exc:  # a ledger of ours is down: we cannot check, so we cannot agree
            return self._reject(proposal.swap_id, f"cannot check it now: {exc}")
        except Exception as exc:  # a bug of ours: still an answer, never a crash on the channel
            return self._reject(proposal.swap_id, f"cannot check it: {type(exc).__name__}: {exc}")
        agreement = Agreement(proposal=proposal, hashlock=hashlock)
        side = PartySide(party=self.party, role=role, peer=self.peer, proposer=self.peer)
        state = HtlcSwapState(secret=secret.hex() if secret else None, hashlock=hashlock, side=side)
        try:
            with drive_lease(self.journal.path, proposal.swap_id):
                # Write-ahead, in one write: the secret, the agreement and both lock ids are on
                # disk before the hashlock leaves, and a crash leaves the swap agreed or unknown,
                # so the proposer's retry of the same proposal gets the same answer from the journal.
                self.journal.create(
                    proposal.swap_id,
                    "htlc",
                    proposal.spec.model_dump(mode="json"),
                    self._agreed(state, agreement).dump(),
                )
        except errors.SwapBusy as exc:  # another process of this party drives that id
            return self._reject(proposal.swap_id, f"swap id {proposal.swap_id} is in use here: {exc}")
        self.progress(proposal.swap_id, f"accepted {self.peer}'s proposal as the {role.value}")
        self.spawn(proposal.swap_id)
        return Kind.ACCEPT, {"hashlock": hashlock} if secret else {}

    def _reject(self, swap_id: str, reason: str, limit: str = "rejected") -> tuple[Kind, dict[str, Any]]:
        self.admission.refuse(limit)
        self.peer_log(swap_id, f"rejected {self.peer}'s proposal: {reason}")
        return Kind.REJECT, {"reason": reason}

    def _answer_again(self, record: SwapRecord, proposal: Proposal) -> tuple[Kind, dict[str, Any]]:
        """The same proposal again (the proposer restarted before it had our answer): the same
        answer.  Anything else under a known swap id is refused."""
        state = HtlcSwapState.model_validate(record.data)
        spec = SwapSpec.model_validate(record.spec)
        side = state.side
        agreed = side.agreement if side else None
        if side is not None and agreed is None and side.proposer == self.peer and spec == proposal.spec:
            # Journaled by an agent that stopped before it agreed and answered: called off.
            return Kind.REJECT, {
                "reason": f"{self.party!r}'s agent stopped before it answered this proposal, "
                "and called the swap off; nothing was locked"
            }
        if agreed is None or agreed.proposal != proposal:
            raise errors.MessageRefused(f"swap id {proposal.swap_id} is already taken")
        return Kind.ACCEPT, {"hashlock": state.hashlock} if state.secret else {}
