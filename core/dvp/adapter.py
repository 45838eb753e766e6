"""The adapter protocol every ledger platform implements.

An adapter speaks to one ledger on behalf of the framework's parties.  It takes
and returns only the platform-neutral types of :mod:`dvp.models`; each adapter
maps its client library's exceptions into :mod:`dvp.errors` at its boundary.

Lifecycle names follow Fabric's Gateway clients: an operation returns
:class:`Submitted` (the tx id) and :meth:`wait_final` turns that into a
:class:`TxStatus`.  Lock ids are derived from the terms alone
(:meth:`lock_id`), so the journal can record a lock before it is broadcast.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import BaseModel

from .errors import ConfigError, NotSupportedError
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
    OrderState,
    Submitted,
    TxStatus,
)


class LedgerConfig(BaseModel):
    """Base of each adapter's config model; subclasses add a ``kind`` literal."""

    kind: str
    model_config = {"extra": "forbid"}


class LedgerAdapter(ABC):
    kind: ClassVar[str]
    config_model: ClassVar[type[LedgerConfig]]
    capabilities: ClassVar[frozenset[Capability]]
    clock: ClassVar[ClockKind]

    def __init__(self, name: str, config: LedgerConfig):
        self.name = name
        self.config = config

    # -- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> "LedgerAdapter":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def bootstrap(self, assets: list["Asset"]) -> dict[str, Any]:
        """Install on-ledger code and the given assets if missing (dev set-up).

        Returns the config fields that changed, for the runtime to persist."""
        return {}

    # -- clock and finality ----------------------------------------------------------------
    @abstractmethod
    async def now(self) -> LedgerTime:
        """Height and time by the ledger's own clock."""

    @property
    @abstractmethod
    def finality(self) -> Finality: ...

    @abstractmethod
    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        """Wait until ``tx_id`` is final; raise CommitError if it failed on the ledger."""

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
    async def balance(self, party: str, asset: str) -> int: ...

    async def issue(self, asset: str, to: str, amount: int) -> Submitted:
        """Create test assets (capability ``issue``), signed by the issuer."""
        raise self.unsupported(Capability.ISSUE)

    # -- hashed time-locks -----------------------------------------------------------------
    @abstractmethod
    def lock_id(self, terms: HtlcTerms) -> str:
        """The id the ledger will give a lock with these terms, known before sending."""

    @abstractmethod
    async def lock(self, terms: HtlcTerms) -> Submitted:
        """Lock ``terms.amount`` of ``terms.asset`` from ``terms.sender``."""

    @abstractmethod
    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submitted:
        """Claim with the preimage; the ledger pays the fixed recipient whoever submits."""

    @abstractmethod
    async def refund(self, lock_id: str, *, submitter: str) -> Submitted: ...

    @abstractmethod
    async def get_lock(self, lock_id: str) -> LockState | None:
        """The lock as the ledger sees it, or None if it does not exist (yet)."""

    @abstractmethod
    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        """Check a counterparty's lock against the agreed terms, the on-ledger code and
        finality; raise AuditFailed naming the first mismatch."""

    @abstractmethod
    def observe(self, since: str | None = None) -> AsyncIterator[LockEvent]:
        """Lock events after checkpoint ``since``; ends when caught up with the ledger."""

    # -- single-ledger atomic DvP (capability ``atomic_dvp``) ------------------------------
    def order_id(self, order: DvpOrder) -> str:
        raise self.unsupported(Capability.ATOMIC_DVP)

    async def propose_dvp(self, order: DvpOrder) -> Submitted:
        """The seller proposes and consents (e.g. approves its securities)."""
        raise self.unsupported(Capability.ATOMIC_DVP)

    async def accept_dvp(self, order: DvpOrder) -> Submitted:
        """The buyer consents and one transaction moves both legs."""
        raise self.unsupported(Capability.ATOMIC_DVP)

    async def get_order(self, order_id: str) -> OrderState | None:
        raise self.unsupported(Capability.ATOMIC_DVP)

    # -- dev ledgers only (capability ``time_travel``) -------------------------------------
    async def advance_time(self, seconds: int) -> None:
        """Move the ledger's clock forward by at least ``seconds`` (and mine a block)."""
        raise self.unsupported(Capability.TIME_TRAVEL)

    # -- helpers -------------------------------------------------------------------------
    def known(self, table: dict, key: str, field: str, missing: str) -> Any:
        """``table[key]``, or a one-line ConfigError: ``party 'x': no key on ledger 'evm-a'``."""
        try:
            return table[key]
        except KeyError:
            raise ConfigError(f"{field} {key!r}: {missing} on ledger {self.name!r}") from None

    def unsupported(self, capability: Capability) -> NotSupportedError:
        return NotSupportedError(f"ledger {self.name!r} ({self.kind}) does not support {capability.value}")

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities
