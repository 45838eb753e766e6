"""The adapter protocol every ledger platform implements.

An adapter speaks to one ledger on behalf of the framework's parties.  It takes
and returns only the platform-neutral types of :mod:`dvp.models`; each adapter
maps its client library's exceptions into :mod:`dvp.errors` at its boundary.

Two phases, as Fabric's Gateway clients split Submit and CommitStatus: every
operation that sends returns a :class:`~dvp.models.Submission` as soon as its
transactions are broadcast, and only :meth:`LedgerAdapter.wait_final` waits for
a block.  Lock ids are derived from the terms and static config alone
(:meth:`LedgerAdapter.lock_id`), so the journal records a lock before it is sent.

:class:`LedgerAdapter` is the hashed time-lock protocol every ledger keeps.
Optional features are mixins an adapter inherits (:class:`AtomicDvp`,
:class:`Issuing`, :class:`TimeTravel`, :class:`Observable`); what an adapter can do
is read from its type (:func:`capabilities_of`), never from a runtime flag.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from .errors import AuditFailed, ConfigError, LockNotFound, MalformedLockId, NotSupportedError
from .models import (
    Asset,
    Capability,
    ClockKind,
    DvpOrder,
    Finality,
    HtlcTerms,
    LedgerTime,
    LockEvent,
    LockState,
    LockStatus,
    OrderState,
    Submission,
    TxStatus,
)
from .sendlog import SignedTx

T = TypeVar("T")
M = TypeVar("M")


class LedgerConfig(BaseModel):
    """Base of each adapter's config model; subclasses add a ``kind`` literal."""

    kind: str
    model_config = {"extra": "forbid"}

    def for_party(self, party: str) -> "LedgerConfig":
        """This ledger as ``party`` alone sees it (a two-party agent's config): ``party``'s
        own secrets only, every other party (counterparty, issuer, miner) by its public
        identity only, node access settings unchanged.

        Raises ConfigError (:class:`dvp.errors.UnknownParty`) if ``party`` is not on this
        ledger, NotSupportedError if this kind of ledger cannot narrow its config."""
        raise NotSupportedError(f"kind {self.kind!r}: no per-party config (for_party) for this kind of ledger")


class LedgerAdapter(ABC):
    """One ledger's hashed time-locks, balances, clock and finality."""

    kind: ClassVar[str]
    config_model: ClassVar[type[LedgerConfig]]
    clock: ClassVar[ClockKind]
    # What TxStatus.fee counts (wei, sat ...), for reports; a fee paid in a traded asset
    # also names that asset (TxStatus.fee_asset).
    fee_unit: ClassVar[str] = "unknown"
    # The unit a reader counts those fees in, and how many fee_unit make one (gwei: 10**9 wei);
    # None: fee_unit itself.  Reports show that; results keep the raw figure in fee_unit.
    fee_display: ClassVar[tuple[str, int] | None] = None

    def __init__(self, name: str, config: LedgerConfig):
        self.name = name
        self.config = config

    @classmethod
    def for_config(cls, config: LedgerConfig) -> type["LedgerAdapter"]:
        """The class to instantiate for ``config``: a dev ledger's variant adds the dev
        mixins (:class:`TimeTravel`, :class:`Issuing`), so the type tells what it can do."""
        return cls

    # -- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    async def connect(self) -> None:
        """Open the connection and check the node is the configured ledger.

        Raises LedgerUnavailable if the node cannot be reached, ConfigError if it is
        another ledger than configured (chain id, network)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection; safe to call twice or without ``connect``."""

    async def __aenter__(self) -> "LedgerAdapter":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def bootstrap(self, assets: list[Asset]) -> dict[str, Any]:
        """Install on-ledger code and the given assets if missing (dev set-up).

        Returns the config fields that changed, for the runtime to persist."""
        return {}

    # -- clock and finality ----------------------------------------------------------------
    @abstractmethod
    async def now(self) -> LedgerTime:
        """Height and time of the ledger's latest block, by the ledger's own clock.

        Raises LedgerUnavailable."""

    @property
    @abstractmethod
    def finality(self) -> Finality:
        """When a transaction on this ledger counts as final (static config, no I/O)."""

    @abstractmethod
    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        """Wait until ``tx_id`` is final and return its block and fee.

        ``timeout`` defaults to :meth:`finality_timeout`.  Raises CommitError (or the
        LockError naming the HTLC rule) if it failed on the ledger, FinalityTimeout if
        it is not final in time, LedgerUnavailable."""

    async def wait_all(self, submission: Submission, *, timeout: float | None = None) -> list[TxStatus]:
        """``wait_final`` for each transaction of ``submission``, in order."""
        return [await self.wait_final(s.tx_id, timeout=timeout) for s in submission]

    def forget_sending_state(self, party: str) -> None:
        """Another process may have sent for ``party`` on this ledger since this adapter last
        did (:meth:`dvp.journal.Journal.account_lease`): whatever the adapter keeps of that
        account (next nonces, coins it spent) is read from the ledger again before its next
        send.  Nothing to forget by default."""
        return None

    async def rebroadcast(self, signed: SignedTx) -> None:
        """Broadcast again the very bytes of a transaction journaled before its broadcast
        (:mod:`dvp.sendlog`): same id, idempotent whether or not it was sent, pending or final.

        Raises Superseded, naming the ledger's proof, if it can never confirm (its nonce
        taken by another transaction, its inputs spent elsewhere, marked invalid), so the
        caller may build a new one; HeldBack if the ledger does not take it for now though it
        may later (the caller builds no other); LedgerUnavailable.  An adapter whose send
        path journals signed transactions implements it."""
        raise NotSupportedError(f"ledger {self.name!r} ({self.kind}) does not journal signed transactions")

    def finality_timeout(self, timeout: float | None) -> float:
        """How long ``wait_final`` waits when not told: generous against the usual finality."""
        return timeout or max(60.0, 20 * self.finality.expected_seconds)

    def expiry_after(self, now: LedgerTime, seconds: float) -> int:
        """An expiry ``seconds`` from ``now``, in this ledger's clock unit."""
        if self.clock is ClockKind.HEIGHT:
            blocks = math.ceil(seconds / self.finality.block_interval)
            return now.height + (max(1, blocks) if seconds > 0 else blocks)
        return int(math.ceil(now.timestamp + seconds))

    def seconds_left(self, now: LedgerTime, expiry: int) -> float:
        """Estimated seconds until ``expiry`` (negative once passed)."""
        if self.clock is ClockKind.HEIGHT:
            return (expiry - now.height) * self.finality.block_interval
        return expiry - now.timestamp

    def is_expired(self, now: LedgerTime, expiry: int) -> bool:
        """True once a refund of a lock with this expiry is valid on the ledger."""
        if self.clock is ClockKind.HEIGHT:
            return now.height >= expiry
        return now.timestamp >= expiry

    # -- accounts and assets ---------------------------------------------------------------
    @abstractmethod
    async def balance(self, party: str, asset: str) -> int:
        """``party``'s holding of ``asset`` in base units, confirmed or pending.

        Raises ConfigError for an unknown party or asset, LedgerUnavailable."""

    # -- hashed time-locks -----------------------------------------------------------------
    @abstractmethod
    def lock_id(self, terms: HtlcTerms) -> str:
        """The id the ledger will give a lock with these terms.

        Pure: computed offline from the terms and static config, the same before and
        after ``connect``; it writes nothing.  Raises ConfigError for a party, asset or
        contract the config does not know."""

    @abstractmethod
    async def check_lock(self, terms: HtlcTerms) -> None:
        """Refuse, before anything is sent, a lock the ledger would refuse or that
        could not be spent afterwards.

        Raises LockRefused naming the cause: an unknown party or asset, an amount
        below what the ledger can carry (dust, including the fee its claim or refund
        pays out of it), or a sender whose balance does not cover the amount plus the
        fees it pays.  Does not look at ``terms.expiry``.  Raises LedgerUnavailable."""

    @abstractmethod
    async def lock(self, terms: HtlcTerms) -> Submission:
        """Lock ``terms.amount`` of ``terms.asset`` from ``terms.sender``.

        Returns once broadcast; the lock is the submission's last transaction (an
        approve may precede it).  Raises LockExpired if ``terms.expiry`` is not in
        the future, LockError for a duplicate lock, SubmitError if the ledger rejects
        it, ConfigError for unknown parties or assets."""

    @abstractmethod
    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        """Claim with the preimage; the ledger pays the fixed recipient whoever submits.

        Returns once broadcast.  Raises InvalidPreimage (not 32 bytes, or wrong),
        LockExpired (at or after expiry), LockError (claimed or refunded already),
        LockNotFound."""

    @abstractmethod
    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        """Return the locked amount to the sender, once expired.

        Returns once broadcast.  Raises LockExpired (before expiry), LockError (not
        the sender, or claimed or refunded already), LockNotFound."""

    @abstractmethod
    async def get_lock(self, lock_id: str) -> LockState | None:
        """The lock as the ledger sees it (pending spends included where the ledger
        shows them), or None if it does not exist (yet).

        Terms the ledger does not record are None in ``LockState.terms``, never guessed.
        Raises LockNotFound for an id this ledger cannot have issued (as MalformedLockId, from
        :meth:`malformed_lock_id`: bad input; so do claim, refund and audit), LedgerUnavailable."""

    @abstractmethod
    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        """Check a counterparty's lock against the agreed terms, the on-ledger code and
        finality.

        Returns the lock's state.  Raises AuditFailed naming the first mismatch
        (a term, the code, its status, too few confirmations), LockNotFound."""

    async def locked_as_agreed(self, lock_id: str, expected: HtlcTerms) -> LockState:
        """The part of :meth:`audit` every ledger shares: the lock as the ledger records it,
        equal to ``expected`` in every recorded term and still locked.

        Raises LockNotFound, AuditFailed naming the first differing term or the status."""
        state = await self.get_lock(lock_id)
        if state is None:
            raise LockNotFound(f"audit {lock_id}: no such lock on {self.name}")
        for field, got, want in state.terms.differences(expected)[:1]:
            raise AuditFailed(f"audit {lock_id}: {field} is {got!r}, agreed {want!r}")
        if state.status is not LockStatus.LOCKED:
            raise AuditFailed(f"audit {lock_id}: status is {state.status.value}, expected locked")
        return state

    # -- helpers -------------------------------------------------------------------------
    def known(self, table: Mapping[str, T], key: str, field: str, missing: str) -> T:
        """``table[key]``, or a one-line ConfigError: ``party 'x': no key on ledger 'evm-a'``."""
        try:
            return table[key]
        except KeyError:
            raise ConfigError(f"{field} {key!r}: {missing} on ledger {self.name!r}") from None

    def unit_of(self, asset: str) -> str:
        """What this ledger's amounts of ``asset`` count, for messages (:mod:`dvp.units`): by
        default the asset's own base units, named by its symbol; an adapter whose amounts of
        an asset are counted in another unit (a Bitcoin chain's coin in sat) says so."""
        return asset

    def malformed_lock_id(self, lock_id: str, expected: str) -> MalformedLockId:
        """The one-line error for an id this ledger cannot have issued (``expected``: its format),
        alike on every ledger; the id is quoted, cut short when long."""
        shown = repr(lock_id[:72]) + ("..." if len(lock_id) > 72 else "")
        return MalformedLockId(f"lock id {shown}: not a lock id of {self.name} ({expected})")

    def unsupported(self, capability: Capability) -> NotSupportedError:
        return NotSupportedError(f"ledger {self.name!r} ({self.kind}) does not support {capability.value}")

    def supports(self, capability: Capability) -> bool:
        return capability in capabilities_of(type(self))

    def require(self, mixin: type[M]) -> M:
        """This adapter as ``mixin`` (e.g. ``adapter.require(Issuing).issue(...)``), or
        NotSupportedError naming the capability it lacks."""
        if isinstance(self, mixin):
            return self
        raise self.unsupported(_MIXINS[mixin])


class AtomicDvp(ABC):
    """Single-ledger DvP: one transaction moves both legs once both parties agreed."""

    @abstractmethod
    def order_id(self, order: DvpOrder) -> str:
        """The id the ledger will give ``order``; pure, like ``lock_id``."""

    @abstractmethod
    async def propose_dvp(self, order: DvpOrder) -> Submission:
        """The seller proposes and consents (e.g. approves its securities).

        Returns once broadcast.  Raises SubmitError (duplicate order, deadline passed),
        ConfigError for unknown parties or assets."""

    @abstractmethod
    async def accept_dvp(self, order: DvpOrder) -> Submission:
        """The buyer consents and one transaction moves both legs.

        Returns once broadcast.  Raises SubmitError (no open order, deadline passed,
        a party's balance short)."""

    @abstractmethod
    async def cancel_dvp(self, order: DvpOrder) -> Submission:
        """The seller withdraws its open order: the ledger closes it (status CANCELLED) and
        the seller's consent no longer moves anything; the buyer's acceptance is refused by
        the ledger from then on.  Only the seller can cancel, which the ledger enforces.

        Returns once broadcast.  Raises SubmitError (no open order: never proposed,
        settled or cancelled already), ConfigError for unknown parties or assets."""

    @abstractmethod
    async def get_order(self, order_id: str) -> OrderState | None:
        """The order as the ledger sees it, or None if it does not exist (yet)."""


class CosignedDvp(AtomicDvp):
    """Single-ledger DvP whose one transaction carries both parties' signatures (a UTXO
    ledger), for two agents that each hold only their own party's keys: the buyer builds the
    transaction of the open order and signs only its own inputs; the seller audits it against
    the order, signs only its own and broadcasts.  The partly signed transaction between them
    is opaque to the core (a PSET, base64, on Elements)."""

    @abstractmethod
    async def sign_as_buyer(self, order: DvpOrder) -> str:
        """The buyer's half: the DvP transaction of the open ``order``, checked from the
        buyer's side (what it receives, what it gives, its fee) and signed on the buyer's
        inputs only.  Raises SubmitError (no open order, deadline passed, the buyer short)."""

    @abstractmethod
    async def complete_as_seller(self, order: DvpOrder, half: str) -> Submission:
        """The seller audits the buyer's ``half`` against ``order`` (what the seller gives and
        receives, the inputs as the ledger has them, the fee), signs its own inputs and
        broadcasts.  Returns once broadcast.  Raises AuditFailed, in one line naming what is
        wrong, for a half that does not parse or does not match the order; SubmitError."""

    @abstractmethod
    async def revoke_as_buyer(self, order: DvpOrder, half: str) -> Submission:
        """The buyer voids its ``half`` (the seller neither broadcast it nor cancelled): it
        spends the half's inputs of its own back to itself, so the half can never confirm.
        Returns once broadcast.  Raises SubmitError (those inputs spent already: by the DvP
        transaction itself, or by an earlier revocation)."""

    @abstractmethod
    def hold_half(self, order: DvpOrder, half: str) -> None:
        """A resumed buyer's journaled ``half``: keep its inputs out of the buyer's other
        transactions again, as :meth:`sign_as_buyer` did, until the order closes or the half
        is revoked.  Raises SubmitError for a half that does not parse."""

    @abstractmethod
    async def half_void(self, order: DvpOrder, half: str) -> bool:
        """True when the ledger proves ``half`` can never confirm: one of its inputs is spent
        by another transaction (a revocation, the order's cancellation)."""


class Issuing(ABC):
    """Test assets: the ledger's issuer creates (or pays out) an asset."""

    @abstractmethod
    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        """Give ``to`` ``amount`` base units of ``asset``, signed by the issuer.

        Returns once broadcast.  Raises ConfigError for an unknown asset or party,
        SubmitError if the issuer cannot."""


class TimeTravel(ABC):
    """Dev ledgers only (anvil, btcd regtest): move the clock instead of waiting."""

    @abstractmethod
    async def advance_time(self, seconds: int) -> None:
        """Move the ledger's clock forward by at least ``seconds`` and mine a block."""

    @abstractmethod
    async def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now."""


class Observable(ABC):
    """A feed of lock events (the orchestrator reads locks by id and does not need it)."""

    @abstractmethod
    def observe(self, since: str | None = None) -> AsyncIterator[LockEvent]:
        """Lock events after checkpoint ``since`` (None: from the start); ends when caught
        up with the ledger.  Raises ConfigError for a malformed checkpoint."""


_MIXINS: dict[type, Capability] = {
    AtomicDvp: Capability.ATOMIC_DVP,
    Issuing: Capability.ISSUE,
    TimeTravel: Capability.TIME_TRAVEL,
    Observable: Capability.OBSERVE,
}


def capabilities_of(cls: type) -> frozenset[Capability]:
    """What an adapter class can do, read from the mixins it inherits."""
    found = {cap for mixin, cap in _MIXINS.items() if issubclass(cls, mixin)}
    if issubclass(cls, LedgerAdapter):
        found.add(Capability.HTLC)
    return frozenset(found)
