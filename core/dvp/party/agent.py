"""One party's agent: it proposes or answers trades, drives its own side of each agreed swap
(:class:`dvp.party.run.PartyRun`) and tells the peer what it did, as hints.

Every message it takes is checked against its journal before it is used: the sender is the
one peer (the channel authenticated it and verified its signature), the swap exists (but for
a proposal), and its sequence number is above every one taken before for that swap, so a
replayed or reordered message is refused, across restarts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from .. import errors
from ..adapter import AtomicDvp, LedgerAdapter
from ..hashlock import hashlock_of, new_secret
from ..journal import Journal, SwapRecord
from ..lease import drive_lease
from ..models import Asset, Role, SwapSpec
from ..orchestrator import Orchestrator, SwapResult
from ..scenario import first_error
from ..state import AtomicSwapState, HtlcSwapState, LegName, PartySide, state_of
from ..steps import Outcome, Progress
from ..terms import Agreement, Proposal
from .agreement import check_proposal, propose
from .atomic import AtomicPartyRun, agreed_order, agreed_state
from .channel import Channel, cancelled_by_caller
from .limits import Admission, Limits, QuietLog
from .messages import MAX_HALF_CHARS, REPLY_KINDS, Kind, Message, next_seq
from .policy import DAY, AcceptPolicy, asset_key
from .quotes import Quote, QuoteBook, QuoteRequest, check_quote, quote_for
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
# Finished swaps' tasks kept for a caller to read their results; older ones are let go (the
# journal has every outcome), so a long-running agent holds a task per swap it drives, not per
# swap it ever drove.
KEEP_FINISHED = 64
# Ends that no restart can change: the swap is not this agent's to drive.
_NOT_RESTARTED = (errors.UnknownSwap, errors.ConfigError)


K = TypeVar("K")
V = TypeVar("V")


class _Turn:
    """The copies of one proposal being answered, one at a time."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class _Slot:
    """A proposal from ``peer`` counted against its unfinished swaps from before its checks
    until its row is written or it is refused: proposals checked at once see each other.
    Counted by swap id, so a proposal whose row is already readable (a group commit is visible
    before its writer resumes) counts once, not as a row and a slot."""

    def __init__(self, agreeing: dict[str, set[str]], peer: str, swap_id: str) -> None:
        self.agreeing, self.peer, self.swap_id, self.held, self.handed = agreeing, peer, swap_id, True, False
        agreeing.setdefault(peer, set()).add(swap_id)

    def release(self) -> None:
        if self.held:
            self.held = False
            ids = self.agreeing.get(self.peer, set())
            ids.discard(self.swap_id)
            if not ids:
                self.agreeing.pop(self.peer, None)


class Agent:
    # The run each agreed swap gets (a test's hostile party subclasses it).
    run_class: type[PartyRun] = PartyRun
    atomic_run_class: type[AtomicPartyRun] = AtomicPartyRun

    def __init__(
        self,
        party: str,
        peers: str | Sequence[str],
        ledgers: Mapping[str, LedgerAdapter],
        assets: list[Asset],
        journal: Journal,
        channel: Channel,
        *,
        policy: AcceptPolicy | None = None,
        policies: Mapping[str, AcceptPolicy] | None = None,
        limits: Limits | None = None,
        progress: Progress | None = None,
    ):
        self.party = party
        self.peers = (peers,) if isinstance(peers, str) else tuple(peers)
        if not self.peers or party in self.peers or len(set(self.peers)) != len(self.peers):
            raise errors.ConfigError(f"peers: {list(self.peers)} must be distinct parties other than {party!r}")
        unknown = set(policies or {}) - set(self.peers)
        if unknown:
            raise errors.ConfigError(f"policies: {sorted(unknown)} are not peers of this agent")
        self.orch = Orchestrator(ledgers, assets, journal, progress)
        self.channel = channel
        self.policy = policy or AcceptPolicy()  # for every peer without its own
        self.policies = dict(policies or {})  # a peer's own rules (its ``policy:`` in agent.yaml)
        self.progress = self.orch.progress
        self.limits = limits or Limits()
        # Per peer: one peer's flood spends its own budgets, never another's.
        self.admissions = {peer: Admission(self.limits) for peer in self.peers}
        # What a peer's messages make this agent say: bounded per peer, a flood must not fill the log.
        self.peer_logs = {peer: QuietLog(self.progress, self.limits.log_lines_per_minute) for peer in self.peers}
        self._peer_of: dict[str, str] = {}  # swap id -> its peer, as journaled (a cache)
        self._agreeing = {peer: asyncio.Lock() for peer in self.peers}  # a policy's daily sums, one check at a time
        self.hints: dict[str, Hints] = {}
        self.tasks: dict[str, asyncio.Task[SwapResult | None]] = {}  # running, and the last KEEP_FINISHED ended
        self._finished: collections.deque[str] = collections.deque()  # ended tasks in self.tasks, oldest first
        self.ended: collections.Counter[str] = collections.Counter()  # the swaps driven to an end here, by outcome
        self._retries: set[asyncio.Task[None]] = set()
        self._proposing: dict[str, _Turn] = {}
        self._being_agreed: dict[str, set[str]] = {}  # per peer: the swap ids of its _Slots
        self._writing: collections.Counter[str] = collections.Counter()  # agreed rows being written, per peer
        self._closing = False
        # Sequence numbers handed out or taken but maybe not journaled yet (the journal's rows
        # are written off the event loop): per (swap id, peer), the last sent and the last
        # request taken whose row is still being written.  Bounded caches over the journal.
        self._sent_seq: dict[tuple[str, str], int] = {}
        self._taking: dict[tuple[str, str], int] = {}
        self.quotes = QuoteBook()  # the quotes this agent gave, per peer (dvp.party.quotes)
        self.quotes_taken = QuoteBook()  # the quotes its peers gave it, per peer, until proposed on

    @property
    def ledgers(self) -> Mapping[str, LedgerAdapter]:
        return self.orch.ledgers

    @property
    def journal(self) -> Journal:
        return self.orch.journal

    @property
    def peer(self) -> str:
        """The peer of an agent that has one (benches, two-party tests)."""
        if len(self.peers) != 1:
            raise errors.ConfigError(f"agent of {self.party!r} has {len(self.peers)} peers; name one")
        return self.peers[0]

    @property
    def admission(self) -> Admission:
        """The one peer's budgets (two-party tests); per peer: :attr:`admissions`."""
        return self.admissions[self.peer]

    @admission.setter
    def admission(self, value: Admission) -> None:
        self.admissions[self.peer] = value

    def set_peers(self, peers: Sequence[str], policies: Mapping[str, AcceptPolicy]) -> list[str]:
        """Pair and unpair while running (``agent.yaml`` changed): serve ``peers`` with their
        ``policies`` from now on, each new one with budgets of its own.  A peer left out that
        this agent still has an unfinished swap with is kept, with its policy (it is needed to
        finish the swap; ``dvp agent unpair`` refuses it too): those are returned."""
        wanted = tuple(dict.fromkeys(peers))
        if self.party in wanted:
            raise errors.ConfigError(f"peers: {self.party!r} is this agent's own party")
        # A row being written is an unfinished swap a moment later (its peer was served when it was agreed).
        kept = [p for p in self.peers if p not in wanted and (self._writing[p] or self._unfinished_with(p))]
        now = (*wanted, *kept)
        if not now:
            raise errors.ConfigError(f"peers: none left for {self.party!r}'s agent; it would serve nobody")
        unknown = set(policies) - set(wanted)
        if unknown:
            raise errors.ConfigError(f"policies: {sorted(unknown)} are not peers of this agent")
        for peer in now:
            if peer not in self.admissions:
                self.admissions[peer] = Admission(self.limits)
                self.peer_logs[peer] = QuietLog(self.progress, self.limits.log_lines_per_minute)
                self._agreeing[peer] = asyncio.Lock()
        for peer in set(self.peers) - set(now):
            self.peer_logs.pop(peer).flush()
            del self.admissions[peer], self._agreeing[peer]
        self.policies = {**{p: self.policies[p] for p in kept if p in self.policies}, **policies}
        self.peers = now
        return kept

    def peer_of(self, swap_id: str) -> str:
        """The peer a swap is with, as its journal says: every message of it goes to and comes from that peer only."""
        peer = self._peer_of.get(swap_id)
        if peer is None:
            record = self.journal.get(swap_id)
            side = _side(record) if record is not None else None
            if side is None:
                raise errors.UnknownSwap(f"swap_id: no two-party swap {swap_id!r} in journal {self.journal.path}")
            peer = side.peer
            _bounded_put(self._peer_of, swap_id, peer)
        return peer

    def _daily_turn(self, peer: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """One agreement at a time with ``peer`` from its daily-sum check to its journal row,
        where its policy has daily sums; else none (the rows are group-committed side by side)."""
        lock = self._agreeing.get(peer)
        if lock is None or self.policies.get(peer, self.policy).max_send_per_day is None:
            return contextlib.nullcontext()  # none, or a peer unpaired meanwhile (refused under it)
        return lock

    def sent_today(self, peer: str, leaving_out: str | None = None) -> dict[str, int]:
        """What this party committed to send to ``peer`` in the last 24 hours, by LEDGER:ASSET:
        every swap with it but those that ended with nothing sent (aborted, refunded)."""
        since, sent = time.time() - DAY, dict[str, int]()
        for record in self.journal.swaps():
            if record.created < since or record.id == leaving_out or record.outcome in ("aborted", "refunded"):
                continue
            side = _side(record)
            if side is None or side.peer != peer:
                continue
            leg = SwapSpec.model_validate(record.spec).trade.leg_sent_by(side.role)
            key = asset_key(leg.ledger, leg.asset)
            sent[key] = sent.get(key, 0) + leg.amount
        return sent

    def check_policy(self, spec: SwapSpec, role: Role, peer: str, *, incoming: bool, swap_id: str) -> None:
        """``peer``'s policy, with what was sent to it today (SwapAborted naming the rule)."""
        policy = self.policies.get(peer, self.policy)
        sent = self.sent_today(peer, leaving_out=swap_id) if policy.max_send_per_day is not None else None
        policy.check(spec, role, self.ledgers, incoming=incoming, sent_today=sent)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the peer, and drive on every unfinished swap of this party's journal."""
        await self.channel.start(self.handle)
        for record in self.journal.swaps(unfinished=True):
            self.spawn(record.id)

    async def aclose(self) -> None:
        self._closing = True
        for peer in self.peers:
            self.peer_logs[peer].flush()
            refused = self.admissions[peer].refused
            if refused:
                said = ", ".join(f"{n} {why}" for why, n in sorted(refused.items()))
                self.progress("-", f"refused or rejected from {peer}: {said}")
        for task in [*self.tasks.values(), *self._retries]:
            task.cancel()
        await asyncio.gather(*self.tasks.values(), *self._retries, return_exceptions=True)
        await self.channel.aclose()

    def spawn(self, swap_id: str) -> asyncio.Task[SwapResult | None]:
        task = self.tasks.get(swap_id)
        if task is None or task.done():
            task = self.tasks[swap_id] = asyncio.create_task(self._drive_logged(swap_id))
            task.add_done_callback(lambda done: self._ended(swap_id, done))
        return task

    def _ended(self, swap_id: str, task: asyncio.Task[SwapResult | None]) -> None:
        """A swap's drive ended: its hints go, and the oldest ended tasks beyond KEEP_FINISHED."""
        if self.tasks.get(swap_id) is not task:
            return
        self.hints.pop(swap_id, None)
        result = None if task.cancelled() or task.exception() is not None else task.result()
        self.ended[result.outcome.value if result is not None and result.outcome else "unfinished"] += 1
        self._finished.append(swap_id)
        while len(self._finished) > KEEP_FINISHED:
            old = self._finished.popleft()
            if self.tasks[old].done():  # not driven again since
                del self.tasks[old]

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
        role, peer = self._role_in(spec)
        kind = spec.resolved_kind
        if kind == "htlc" and spec.plan.locks_first is not spec.plan.secret_holder:
            raise errors.ConfigError(
                "plan.first_locker: two agents run cross-ledger HTLC swaps in which the secret holder locks first"
            )
        swap_id = swap_id or uuid.uuid4().hex[:12]
        secret = new_secret() if kind == "htlc" and role is spec.plan.secret_holder else None
        hashlock = hashlock_of(secret).hex() if secret else None
        proposal = await propose(swap_id, self.party, spec, self.ledgers, hashlock)
        if kind == "htlc":
            await self._check_own_lock(proposal, role, hashlock or "00" * 32)
        side = PartySide(party=self.party, role=role, peer=peer, proposer=self.party, proposal=proposal)
        # Write-ahead: the secret is on disk before its hashlock leaves this process.
        state: HtlcSwapState | AtomicSwapState = (
            HtlcSwapState(secret=secret.hex() if secret else None, hashlock=hashlock, side=side)
            if kind == "htlc"
            else AtomicSwapState(side=side)
        )
        async with self._daily_turn(peer):  # the daily sums see every swap checked before this one
            try:  # this party's own proposals pass its own policy for that peer, as the peer's do
                self.check_policy(spec, role, peer, incoming=False, swap_id=swap_id)
            except errors.SwapAborted as exc:
                raise errors.ConfigError(f"policy for {peer!r}: {exc}") from None
            with drive_lease(self.journal.path, swap_id):
                await self.journal.acreate(swap_id, kind, spec.model_dump(mode="json"), state.dump())
        self._peer_of[swap_id] = peer
        self.progress(swap_id, f"proposed to {peer} as the {role.value}")
        self.spawn(swap_id)
        return swap_id

    def _role_in(self, spec: SwapSpec) -> tuple[Role, str]:
        """This party's role in ``spec`` and the peer it trades with (one of its pinned peers)."""
        trade = spec.trade
        for role, peer in ((Role.SELLER, trade.buyer), (Role.BUYER, trade.seller)):
            if trade.party(role) == self.party and peer in self.peers:
                return role, peer
        raise errors.ConfigError(
            f"trade: {self.party!r} and one of its peers ({', '.join(self.peers)}) must be its seller "
            f"and buyer (it names {trade.seller!r} and {trade.buyer!r})"
        )

    async def _check_own_lock(self, proposal: Proposal, role: Role, hashlock: str) -> None:
        leg = LegName.sent_by(role)
        terms = Agreement(proposal=proposal, hashlock=hashlock).terms(leg)
        await self.ledgers[proposal.spec.trade.leg_sent_by(role).ledger].check_lock(terms)

    async def _await_answer(self, swap_id: str, side: PartySide) -> tuple[Agreement | None, str]:
        """Send (again) this party's proposal until the peer answers or the counter leg's
        time is too short to start; (agreement, "") or (None, why not)."""
        assert side.proposal is not None
        proposal, peer = side.proposal, side.peer
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
                return None, f"{peer} rejected the proposal: {reason}"
            if reply.kind is not Kind.ACCEPT:
                return None, f"{peer} answered the proposal with {reply.kind.value}"
            hashlock = proposal.hashlock or reply.body.get("hashlock")
            if proposal.spec.resolved_kind != "htlc":
                return Agreement(proposal=proposal), ""
            try:
                if hashlock is None:
                    raise ValueError("no hashlock")
                return Agreement.model_validate({"proposal": proposal, "hashlock": hashlock}), ""
            except (ValidationError, ValueError):
                return None, f"{peer} accepted without a valid hashlock"
        return None, f"{peer}'s agent never answered the proposal ({last})"

    # -- driving one swap ----------------------------------------------------------------------
    async def drive(self, swap_id: str) -> SwapResult:
        with drive_lease(self.journal.path, swap_id):
            return await self.orch.drive_with(swap_id, self._run)

    async def _run(self, record: SwapRecord, spec: SwapSpec) -> tuple[Outcome, str]:
        """This party's side of the swap: agreed first (or called off), then its own steps."""
        swap_id = record.id
        state = state_of(record.kind, record.data)
        side = state.side
        if side is None:
            raise errors.ConfigError(f"swap {swap_id}: not a two-party swap; drive it with `dvp resume`")
        if side.agreement is None and side.proposer != self.party:
            # An agent before this one journaled the proposal, then stopped before it agreed
            # and answered: nothing was locked; the proposer's retry is refused (REJECT).
            return Outcome.ABORTED, f"stopped before answering {side.peer}'s proposal; called off, nothing locked"
        if side.agreement is None:
            agreement, why = await self._await_answer(swap_id, side)
            if agreement is None:
                return Outcome.ABORTED, f"{why}; nothing moved"
            await self._agree(swap_id, state, agreement)
            record = self.journal.get(swap_id) or record
        return await self.run_for(record, spec).drive()

    def run_for(self, record: SwapRecord, spec: SwapSpec) -> PartyRun | AtomicPartyRun:
        """The run of this party's side of the agreed swap ``record``."""
        steps = self.orch.steps_for(record, spec)
        run_class = self.run_class if record.kind == "htlc" else self.atomic_run_class
        return run_class(steps, self.hints_of(record.id), self.notify, self.probe)

    async def _agree(self, swap_id: str, state: HtlcSwapState | AtomicSwapState, agreement: Agreement) -> None:
        """Journal the agreed terms and ids (both legs' locks, or the order): from here each is
        expected on its ledger."""
        await self.journal.aupdate_data(swap_id, **self._agreed(state, agreement).dump())

    def _agreed(self, state: HtlcSwapState | AtomicSwapState, agreement: Agreement) -> HtlcSwapState | AtomicSwapState:
        """``state`` with the agreement and both legs' agreed terms and lock ids (or the order and its id)."""
        if isinstance(state, AtomicSwapState):
            ledger = self.ledgers[agreement.proposal.spec.trade.cash.ledger].require(AtomicDvp)
            return agreed_state(state, agreement, ledger.order_id(agreed_order(agreement)))
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

    def _driven_hints(self, swap_id: str) -> Hints:
        """The hints of a swap this agent drives now; a throwaway for one it does not (no run would
        read them, and nothing is kept for a swap no longer driven)."""
        task = self.tasks.get(swap_id)
        return self.hints_of(swap_id) if task is not None and not task.done() else Hints()

    # -- the channel -----------------------------------------------------------------------------
    async def send(self, kind: Kind, swap_id: str, body: dict[str, Any], *, to: str | None = None) -> Message | None:
        """``kind`` for the swap to its peer; ``to``: an RFQ, for no swap yet (nothing journaled)."""
        peer = to or self.peer_of(swap_id)
        seq = self._next_out(swap_id, peer)
        message = Message(kind=kind, swap_id=swap_id, sender=self.party, recipient=peer, seq=seq, body=body)
        try:
            reply = await self.channel.send(message, timeout=SEND_TIMEOUT)
        except asyncio.CancelledError:
            if self._closing or cancelled_by_caller():
                raise  # this agent stops
            # The channel cancelled the call under us (e.g. it closed a connection the call
            # was on): a send that failed, never the end of the swap's drive.
            raise errors.PeerUnreachable(
                f"the {kind.value} message to {peer!r} was cut off in flight (its connection closed)"
            ) from None
        rows = [("out", kind.value, seq)] if to is None else []
        try:
            if reply is not None:
                # A reply answers this request on its own call: it is bound to it by the channel,
                # so only its parties and age are checked, not its order among the peer's notices.
                self._check_incoming(reply, reply_to=message)
                if to is None:
                    rows.append(("in", reply.kind.value, reply.seq))
        finally:
            if rows:  # the request and its reply: one write, off the event loop
                await self.journal.amessages(swap_id, peer, rows)
        return reply

    def _next_out(self, swap_id: str, peer: str) -> int:
        """The next sequence number to ``peer`` for the swap, above the journal's and above any
        handed out whose row is not written yet (two sends of one swap at once differ)."""
        key = (swap_id, peer)
        seq = next_seq(max(self.journal.last_seq(swap_id, peer, "out"), self._sent_seq.get(key, 0)))
        _bounded_put(self._sent_seq, key, seq)
        return seq

    # -- requests for quotes (dvp.party.quotes) ----------------------------------------------------
    async def request_quote(self, peer: str, request: QuoteRequest) -> tuple[str, SwapSpec]:
        """Ask ``peer`` for firm terms; (the quote's id, its spec), checked against what was asked.
        :meth:`propose` of that spec under that id, before it expires, is the trade."""
        if peer not in self.peers:
            raise errors.ConfigError(f"peer: {peer!r} is not a peer of {self.party!r}'s agent")
        quote_id = uuid.uuid4().hex[:12]
        reply = await self.send(Kind.RFQ, quote_id, request.model_dump(mode="json"), to=peer)
        if reply is None or reply.kind is Kind.REJECT:
            reason = reply.body.get("reason", "no reason given") if reply else "no answer"
            raise errors.SwapAborted(f"{peer} gave no quote: {reason}")
        if reply.kind is not Kind.QUOTE:
            raise errors.MessageRefused(f"{peer} answered the request for a quote with {reply.kind.value}")
        try:
            quote = Quote.model_validate(reply.body)
        except ValidationError as exc:
            raise errors.MessageRefused(first_error(exc, f"{peer}'s quote: ")) from None
        check_quote(request, quote, self.party, peer)
        self.quotes_taken.give(peer, quote_id, quote)
        self.progress(quote_id, f"{peer} quoted {_terms(quote.spec)}, firm for {quote.valid_until - time.time():.0f}s")
        return quote_id, quote.spec

    def quote_taken(self, quote_id: str) -> tuple[str, Quote]:
        """(the peer, its quote) that :meth:`request_quote` got under ``quote_id``, still held;
        ConfigError when there is none."""
        for peer in self.peers:
            quote = self.quotes_taken.get(peer, quote_id)
            if quote is not None:
                return peer, quote
        raise errors.ConfigError(
            f"quote: no quote {quote_id!r} held by {self.party!r}'s agent (expired and dropped, proposed on "
            "already, or asked before the agent's last start)"
        )

    async def propose_on_quote(self, quote_id: str) -> str:
        """Propose the terms of the quote taken under ``quote_id``, under its id, before it
        expires (ConfigError otherwise, nothing journaled); the quoter checks them again."""
        peer, quote = self.quote_taken(quote_id)
        left = quote.valid_until - time.time()
        if left <= 0:
            self.quotes_taken.take(peer, quote_id)
            raise errors.ConfigError(f"quote: {quote_id} from {peer!r} expired {-left:.0f}s ago; ask for another")
        swap_id = await self.propose(quote.spec, swap_id=quote_id)
        self.quotes_taken.take(peer, quote_id)
        return swap_id

    async def _on_rfq(self, message: Message) -> tuple[Kind, dict[str, Any]]:
        """Firm terms for the peer's request, by its policy's prices, only if its policy would
        accept the trade; remembered (bounded) until the proposal on them or their expiry."""
        peer = message.sender
        try:
            request = QuoteRequest.model_validate(message.body)
        except ValidationError as exc:
            raise errors.MessageRefused(first_error(exc, "rfq: ")) from None
        admission = self.admissions.get(peer)
        if admission is None:
            return self._reject(message.swap_id, peer, self._unpaired(peer), "unpaired")
        if not admission.proposals.take():  # a quote costs what a proposal's check does
            return self._reject(
                message.swap_id,
                peer,
                f"more than {self.limits.proposals_per_minute} proposals and "
                f"requests for quotes a minute from {peer!r} (limits.proposals_per_minute)",
                "proposals_per_minute",
            )
        policy = self.policies.get(peer, self.policy)
        try:
            spec = quote_for(request, self.party, peer, policy)
            self.orch.validate(spec)
            role, _ = self._role_in(spec)
            self.check_policy(spec, role, peer, incoming=True, swap_id=message.swap_id)
        except (errors.SwapError, errors.ConfigError) as exc:
            return self._reject(message.swap_id, peer, f"no quote: {exc}")
        quote = Quote(spec=spec, valid_until=time.time() + policy.quote_seconds)
        self.quotes.give(peer, message.swap_id, quote)
        self._say(peer, message.swap_id, f"quoted {peer} {_terms(spec)} for {policy.quote_seconds}s")
        return Kind.QUOTE, quote.model_dump(mode="json")

    async def notify(self, swap_id: str, kind: Kind, leg: LegName, lock_id: str, /, half: str | None = None) -> None:
        """Tell the peer, as a hint; if its agent does not answer, keep trying in the
        background (bounded) while the swap goes on by the ledgers."""
        body = {"leg": leg.value, "lock_id": lock_id} | ({"half": half} if half is not None else {})
        hints = self.hints_of(swap_id)
        try:
            await self.send(kind, swap_id, body)
            hints.unreachable_since = None
            return
        except errors.MessageRefused as exc:
            self.progress(swap_id, f"{self.peer_of(swap_id)} refused our {kind.value} notice: {exc}")
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
        expected = reply_to.recipient if reply_to is not None else message.sender
        if message.sender != expected or message.sender not in self.peers or message.recipient != self.party:
            raise errors.MessageRefused(
                f"message from {message.sender!r} to {message.recipient!r}: this agent is "
                f"{self.party!r} and talks only to its peers ({', '.join(self.peers)})"
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
        last = max(last, self._taking.get((message.swap_id, message.sender), 0))  # taken, row being written
        if message.seq <= last:
            raise errors.MessageRefused(
                f"replayed or reordered message: seq {message.seq} is not above {last}, "
                f"the last taken from {message.sender!r} for swap {message.swap_id}"
            )

    async def handle(self, message: Message) -> Message | None:
        """A message from a peer (already authenticated and its signature verified), within
        that peer's limits (:mod:`.limits`): over one it is refused and counted, not journaled.
        A rejected proposal leaves no swap and no row; a swap's messages are journaled up to
        ``limits.messages_per_swap``, finished or not.  A message naming a swap this agent has
        with another peer is refused, whatever its kind."""
        peer = message.sender
        if peer not in self.admissions:
            raise errors.MessageRefused(f"message from {peer!r}: not a peer of {self.party!r}'s agent")
        if not self.admissions[peer].messages.take():
            self._over("messages_per_minute", message, f"more than {self.limits.messages_per_minute} messages a minute")
        self._check_incoming(message)
        record = self.journal.get(message.swap_id)
        if record is not None:
            side = _side(record)
            if side is None or side.peer != peer:
                self._refusal(
                    peer,
                    "not_its_swap",
                    message.swap_id,
                    f"refused {peer}'s {message.kind.value}: not a swap with {peer}",
                )
                raise errors.MessageRefused(
                    f"swap {message.swap_id} is not a swap with {peer!r}; refused, not journaled"
                )
            if self.journal.message_count(message.swap_id, peer, "in") >= self.limits.messages_per_swap:
                self._over(
                    "messages_per_swap",
                    message,
                    f"more than {self.limits.messages_per_swap} messages for swap {message.swap_id}",
                )
        if message.kind is Kind.PROPOSE:
            reply = await self._on_proposal(message)
        elif message.kind is Kind.RFQ:
            if record is not None:
                raise errors.MessageRefused(f"rfq under swap id {message.swap_id}, which is taken")
            reply = await self._on_rfq(message)
        elif message.kind in (Kind.LOCKED, Kind.CLAIMED, Kind.REFUNDED, Kind.SIGNED, Kind.PING):
            if record is None:
                raise errors.MessageRefused(f"{message.kind.value} for unknown swap {message.swap_id}")
            reply = self._on_notice(message, record) if message.kind is not Kind.PING else (Kind.ACK, {})
        else:
            raise errors.MessageRefused(f"unexpected {message.kind.value} message for swap {message.swap_id}")
        # A REJECT or a QUOTE leaves no row: no swap exists yet (RFQs are bounded by the proposals').
        journaled = reply[0] not in (Kind.REJECT, Kind.QUOTE)
        seq = self._next_out(message.swap_id, peer)
        answer = message.reply(reply[0], seq, **reply[1])
        if journaled:
            # The request and the answer in one write, off the event loop; until it is durable
            # the request's number counts as taken (a copy of it meanwhile is a replay).
            key = (message.swap_id, peer)
            _bounded_put(self._taking, key, max(message.seq, self._taking.get(key, 0)))
            try:
                await self.journal.amessages(
                    message.swap_id, peer, [("in", message.kind.value, message.seq), ("out", answer.kind.value, seq)]
                )
            finally:
                if self._taking.get(key) == message.seq:
                    del self._taking[key]
        return answer

    def _over(self, limit: str, message: Message, what: str) -> NoReturn:
        peer = message.sender
        self._refusal(peer, limit, message.swap_id, f"refused {peer}'s {message.kind.value}: {what} (limits.{limit})")
        raise errors.MessageRefused(
            f"over this agent's limit: {what} from {peer!r} (limits.{limit}); refused, not journaled"
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
        peer = message.sender
        if message.kind is Kind.SIGNED:
            return self._on_half(message, record, lock_id)
        if lock_id != _agreed_id(record, leg):
            # Each lock id other than the agreed one costs a ledger read and a journal note.
            admission = self.admissions.get(peer)
            if admission is None:
                raise errors.MessageRefused(self._unpaired(peer))
            over = admission.other_lock(message.swap_id)
            if over == "other_locks_per_swap":
                self._over(
                    over,
                    message,
                    f"more than {self.limits.other_locks_per_swap} notices naming "
                    f"a lock other than the agreed one for swap {message.swap_id}",
                )
            if over == "other_locks_per_minute":
                self._over(
                    over,
                    message,
                    f"more than {self.limits.other_locks_per_minute} notices a minute naming "
                    "a lock other than the agreed one",
                )
        self._say(
            peer, message.swap_id, f"{peer} says: {message.kind.value} {leg.value} {lock_id} (checking the ledger)"
        )
        self._driven_hints(message.swap_id).heard(leg, lock_id)
        return Kind.ACK, {}

    def _on_half(self, message: Message, record: SwapRecord, order_id: str) -> tuple[Kind, dict[str, Any]]:
        """The buyer's partly signed DvP transaction, opaque here: kept for the seller's run,
        which audits it against the agreement before it signs anything."""
        half = message.body.get("half")
        side = _side(record)
        if record.kind != "atomic" or side is None or side.role is not Role.SELLER:
            raise errors.MessageRefused(f"signed for swap {message.swap_id}: this agent is not its order's seller")
        if order_id != _agreed_id(record, LegName.SECURITY):
            raise errors.MessageRefused(f"signed for swap {message.swap_id}: body.lock_id is not the agreed order")
        if not isinstance(half, str) or not 0 < len(half) <= MAX_HALF_CHARS:
            raise errors.MessageRefused(
                f"signed for swap {message.swap_id}: body.half must be a partly signed transaction "
                f"of at most {MAX_HALF_CHARS} characters"
            )
        self._say(message.sender, message.swap_id, f"{message.sender} sent its signed half (auditing it)")
        self._driven_hints(message.swap_id).heard_half(half)
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
                return await self._answer_proposal(proposal, message.sender)
        finally:
            turn.waiting -= 1
            if not turn.waiting:  # the last copy answered: nothing kept per swap id
                del self._proposing[proposal.swap_id]

    async def _answer_proposal(self, proposal: Proposal, peer: str) -> tuple[Kind, dict[str, Any]]:
        existing = self.journal.get(proposal.swap_id)
        if existing is not None:
            return self._answer_again(existing, proposal, peer)
        quoted = self.quotes.take(peer, proposal.swap_id)
        if quoted is not None:  # a proposal on a quote of ours: on its terms and in its time, or not at all
            if time.time() > quoted.valid_until:
                return self._reject(proposal.swap_id, peer, "the quote it takes up has expired; ask for another")
            if proposal.spec != quoted.spec:
                return self._reject(proposal.swap_id, peer, "the proposal is not on the quoted terms")
        admission = self.admissions.get(peer)
        if admission is None:
            return self._reject(proposal.swap_id, peer, self._unpaired(peer), "unpaired")
        if not admission.proposals.take():
            return self._reject(
                proposal.swap_id,
                peer,
                f"more than {self.limits.proposals_per_minute} proposals a minute "
                f"from {peer!r} (limits.proposals_per_minute)",
                "proposals_per_minute",
            )
        if len(self._unfinished_with(peer) | self._being_agreed.get(peer, set())) >= self.limits.unfinished_swaps:
            return self._reject(
                proposal.swap_id,
                peer,
                f"this agent has {self.limits.unfinished_swaps} unfinished swaps with {peer!r}, its "
                "limit per peer (limits.unfinished_swaps); propose it again later",
                "unfinished_swaps",
            )
        # Not one at a time: the checks await the ledgers, and proposals checked one after
        # another queue behind each other's ledger reads (K proposals at once took K times one
        # check).  A policy's daily sums are checked again, one agreement at a time, just
        # before the swap's row (_agree_to).
        slot = _Slot(self._being_agreed, peer, proposal.swap_id)
        try:
            return await self._agree_to(proposal, peer, slot)
        finally:
            if not slot.handed:  # else the row's writer releases it, once the row is written
                slot.release()

    def _unfinished_with(self, peer: str) -> set[str]:
        return {r.id for r in self.journal.swaps(unfinished=True) if self._side_peer(r) == peer}

    @staticmethod
    def _side_peer(record: SwapRecord) -> str | None:
        side = record.data.get("side")
        return side.get("peer") if isinstance(side, dict) else None

    async def _agree_to(self, proposal: Proposal, peer: str, slot: _Slot) -> tuple[Kind, dict[str, Any]]:
        try:
            # Its ledgers and assets first: every later check reads them.
            self.orch.validate(proposal.spec)
            role = await check_proposal(proposal, self.party, peer, self.ledgers)
            self.check_policy(proposal.spec, role, peer, incoming=True, swap_id=proposal.swap_id)
            htlc = proposal.spec.resolved_kind == "htlc"
            secret = new_secret() if htlc and role is proposal.spec.plan.secret_holder else None
            hashlock = (proposal.hashlock or hashlock_of(secret or b"").hex()) if htlc else None
            if hashlock is not None:
                await self._check_own_lock(proposal, role, hashlock)
        except (
            errors.SwapError,
            errors.ConfigError,
            errors.LockError,
            errors.NotSupportedError,
            errors.MessageRefused,
        ) as exc:
            return self._reject(proposal.swap_id, peer, str(exc))
        except errors.AdapterError as exc:  # a ledger of ours is down: we cannot check, so we cannot agree
            return self._reject(proposal.swap_id, peer, f"cannot check it now: {exc}")
        except Exception as exc:  # a bug of ours: still an answer, never a crash on the channel
            return self._reject(proposal.swap_id, peer, f"cannot check it: {type(exc).__name__}: {exc}")
        agreement = Agreement(proposal=proposal, hashlock=hashlock)
        side = PartySide(party=self.party, role=role, peer=peer, proposer=peer)
        state: HtlcSwapState | AtomicSwapState = (
            HtlcSwapState(secret=secret.hex() if secret else None, hashlock=hashlock, side=side)
            if hashlock is not None
            else AtomicSwapState(side=side)
        )
        reply: tuple[Kind, dict[str, Any]] = (Kind.ACCEPT, {"hashlock": hashlock} if secret else {})
        # Uncancellable from here to the drive's start: the proposer's call times out and
        # cancels this handler, but the row is written anyway (off the event loop), and a swap
        # agreed on disk must be driven, so writing it and spawning its drive are one task.
        agreed = self._agreed(state, agreement)
        slot.handed = True
        return await asyncio.shield(self._write_agreed(proposal, peer, role, agreed, reply, slot))

    async def _write_agreed(
        self,
        proposal: Proposal,
        peer: str,
        role: Role,
        state: HtlcSwapState | AtomicSwapState,
        reply: tuple[Kind, dict[str, Any]],
        slot: _Slot,
    ) -> tuple[Kind, dict[str, Any]]:
        """The agreed swap's row, then its drive; ``reply``, or a rejection from the last checks."""
        try:
            async with self._daily_turn(peer):
                if peer not in self.peers:  # unpaired while its checks awaited: its policy is gone too
                    return self._reject(proposal.swap_id, peer, self._unpaired(peer), "unpaired")
                if self.policies.get(peer, self.policy).max_send_per_day is not None:
                    # Again, with every swap agreed while the checks above awaited the ledgers,
                    # one agreement at a time from here to its journal row.
                    try:
                        self.check_policy(proposal.spec, role, peer, incoming=True, swap_id=proposal.swap_id)
                    except (errors.SwapError, errors.ConfigError) as exc:
                        return self._reject(proposal.swap_id, peer, str(exc))
                self._writing[peer] += 1  # from the check above to its row: set_peers keeps the peer
                try:
                    with drive_lease(self.journal.path, proposal.swap_id):
                        # Write-ahead, in one write: the secret, the agreement and both lock ids are
                        # on disk before the hashlock leaves, and a crash leaves the swap agreed or
                        # unknown, so the proposer's retry of the same proposal gets the same answer
                        # from the journal.
                        await self.journal.acreate(
                            proposal.swap_id,
                            proposal.spec.resolved_kind,
                            proposal.spec.model_dump(mode="json"),
                            state.dump(),
                        )
                except errors.SwapBusy as exc:  # another process of this party drives that id
                    return self._reject(proposal.swap_id, peer, f"swap id {proposal.swap_id} is in use here: {exc}")
                finally:
                    self._writing[peer] -= 1
                    if self._writing[peer] <= 0:
                        del self._writing[peer]
        finally:
            slot.release()  # its row is written (counted as unfinished from now on), or it was refused
        self._peer_of[proposal.swap_id] = peer
        self.progress(proposal.swap_id, f"accepted {peer}'s proposal as the {role.value}")
        if not self._closing:  # else the next start drives it on
            self.spawn(proposal.swap_id)
        return reply

    def _reject(self, swap_id: str, peer: str, reason: str, limit: str = "rejected") -> tuple[Kind, dict[str, Any]]:
        self._refusal(peer, limit, swap_id, f"rejected {peer}'s proposal: {reason}")
        return Kind.REJECT, {"reason": reason}

    def _refusal(self, peer: str, limit: str, swap_id: str, what: str) -> None:
        """Count a refusal against ``peer``'s budgets and say it (neither is kept for a peer unpaired meanwhile)."""
        admission = self.admissions.get(peer)
        if admission is not None:
            admission.refuse(limit)
        self._say(peer, swap_id, what)

    def _say(self, peer: str, swap_id: str, what: str) -> None:
        """Say ``what`` in ``peer``'s bounded log; once it is unpaired (a call of its still being
        handled), in the progress log."""
        log = self.peer_logs.get(peer)
        (log if log is not None else self.progress)(swap_id, what)

    def _unpaired(self, peer: str) -> str:
        return f"{peer!r} was unpaired from {self.party!r}'s agent while its message was handled; refused"

    def _answer_again(self, record: SwapRecord, proposal: Proposal, peer: str) -> tuple[Kind, dict[str, Any]]:
        """The same proposal again (the proposer restarted before it had our answer): the same
        answer.  Anything else under a known swap id is refused."""
        state = state_of(record.kind, record.data)
        spec = SwapSpec.model_validate(record.spec)
        side = state.side
        agreed = side.agreement if side else None
        if side is not None and agreed is None and side.proposer == peer and spec == proposal.spec:
            # Journaled by an agent that stopped before it agreed and answered: called off.
            return Kind.REJECT, {
                "reason": f"{self.party!r}'s agent stopped before it answered this proposal, "
                "and called the swap off; nothing was locked"
            }
        if agreed is None or agreed.proposal != proposal:
            raise errors.MessageRefused(f"swap id {proposal.swap_id} is already taken")
        if record.outcome is None and side is not None and side.proposer == peer and not self._closing:
            # Agreed here and unfinished: driven, whatever became of the call that agreed to it
            # (spawn is idempotent: a running drive is left as it is).
            self.spawn(record.id)
        if isinstance(state, HtlcSwapState) and state.secret:
            return Kind.ACCEPT, {"hashlock": state.hashlock}
        return Kind.ACCEPT, {}


def _bounded_put(cache: dict[K, V], key: K, value: V) -> None:
    """``cache[key] = value``, the oldest key dropped beyond 4096 (a cache: the journal has it all)."""
    if key not in cache and len(cache) >= 4096:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _side(record: SwapRecord) -> PartySide | None:
    """Which side of a two-agent swap ``record`` is, whatever its kind."""
    return state_of(record.kind, record.data).side


def _agreed_id(record: SwapRecord, leg: LegName) -> str | None:
    """The id a notice about ``leg`` of ``record`` is expected to name: the agreed lock's, or the order's."""
    state = state_of(record.kind, record.data)
    return state.lock_id(leg) if isinstance(state, HtlcSwapState) else state.order_id


def _terms(spec: SwapSpec) -> str:
    t = spec.trade
    return (
        f"{t.security.amount} {t.security.asset} on {t.security.ledger} for {t.cash.amount} {t.cash.asset} "
        f"on {t.cash.ledger} ({t.seller} sells to {t.buyer})"
    )
