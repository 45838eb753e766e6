"""Platform-neutral data: assets, trades, swap plans and the adapter protocol's types.

Amounts are integers in the asset's base units.  Parties are named (``seller``,
``buyer``, ``issuer`` ...); each adapter maps a party name to its on-ledger
identity (address, X.509 identity, public key).  Hashes and preimages travel as
lower-case hex of exactly 32 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from .hashlock import normalise_hex32


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Hex32 = Annotated[str, AfterValidator(normalise_hex32)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# Strict: "10", true and 1.0 are refused rather than coerced.  No ledger counts past 2**256.
Amount = Annotated[int, Field(gt=0, lt=2**256, strict=True)]
Seconds = Annotated[int, Field(gt=0, le=30 * 24 * 3600, strict=True)]
Margin = Annotated[int, Field(ge=0, le=30 * 24 * 3600, strict=True)]
Limit = Annotated[int, Field(ge=0, lt=2**256, strict=True)]  # a policy's most in base units (0: nothing)


class AssetKind(StrEnum):
    CASH = "cash"
    SECURITY = "security"


class Asset(Frozen):
    symbol: Name
    ledger: Name
    kind: AssetKind
    decimals: Annotated[int, Field(ge=0, le=18)] = 0


class Leg(Frozen):
    """One side of a trade: an amount of an asset on one ledger."""

    ledger: Name
    asset: Name
    amount: Amount


class Role(StrEnum):
    SELLER = "seller"
    BUYER = "buyer"

    @property
    def other(self) -> "Role":
        return Role.BUYER if self is Role.SELLER else Role.SELLER


class Trade(Frozen):
    """The seller delivers ``security`` to the buyer, who pays ``cash``."""

    seller: Name = "seller"
    buyer: Name = "buyer"
    security: Leg
    cash: Leg

    @model_validator(mode="after")
    def _distinct_parties(self) -> "Trade":
        if self.seller == self.buyer:
            raise ValueError("seller and buyer must be different parties")
        return self

    def party(self, role: Role) -> str:
        return self.seller if role is Role.SELLER else self.buyer

    def leg_sent_by(self, role: Role) -> Leg:
        return self.security if role is Role.SELLER else self.cash

    @property
    def single_ledger(self) -> bool:
        return self.security.ledger == self.cash.ledger


class HtlcPlan(Frozen):
    """How a cross-ledger swap is run: who holds the secret, who locks first, timeouts.

    The secret holder's leg expires last (``holder_timeout``); the other leg
    (``counter_timeout``) must expire earlier by a gap that covers both
    ledgers' finality, their clock skew and ``reaction_window``.
    """

    secret_holder: Role = Role.SELLER
    first_locker: Role | None = None
    holder_timeout: Seconds = 600
    counter_timeout: Seconds = 300
    reaction_window: Margin = 30
    # docs/design.md, rule 4: the holder never reveals the secret closer than this to the counter leg's expiry.
    claim_margin: Margin | None = None

    @property
    def locks_first(self) -> Role:
        return self.first_locker or self.secret_holder

    def timeout_for(self, role: Role) -> int:
        """How long the leg ``role`` sends may stay locked: the secret holder's the longer."""
        return self.holder_timeout if role is self.secret_holder else self.counter_timeout


class Behaviour(Frozen):
    """Which parties do their part; ``False`` makes a party walk away (failure drills)."""

    counter_locks: StrictBool = True
    holder_claims: StrictBool = True
    counter_claims: StrictBool = True


class SwapSpec(Frozen):
    """A swap as a user asks for it (scenario file, flags or API)."""

    kind: Literal["htlc", "atomic"] | None = None
    trade: Trade
    plan: HtlcPlan = HtlcPlan()
    behaviour: Behaviour = Behaviour()
    # Dev ledgers only: fast-forward a ledger's clock instead of sleeping until an expiry.
    fast_forward: StrictBool = False

    @property
    def resolved_kind(self) -> str:
        if self.kind:
            return self.kind
        return "atomic" if self.trade.single_ledger else "htlc"


# --- adapter protocol types -------------------------------------------------------------


class ClockKind(StrEnum):
    TIME = "time"  # expiry in ledger seconds (EVM block.timestamp, Fabric tx timestamp)
    HEIGHT = "height"  # expiry in block height (Bitcoin-family CLTV)


class Capability(StrEnum):
    """Names of what a ledger can do; an adapter has one by inheriting its mixin
    (:mod:`dvp.adapter`), never by a runtime flag."""

    HTLC = "htlc"
    ATOMIC_DVP = "atomic_dvp"
    ISSUE = "issue"
    OBSERVE = "observe"
    TIME_TRAVEL = "time_travel"  # test-only: advance_time / mine on a dev ledger


class LedgerTime(Frozen):
    height: int
    timestamp: float


class Finality(Frozen):
    """When a transaction counts as final, and how long that usually takes."""

    confirmations: int = 1
    block_interval: float = 1.0
    expected_seconds: float
    clock_skew: float = 0.0

    @classmethod
    def by_confirmations(cls, confirmations: int, block_interval: float, clock_skew: float) -> "Finality":
        """A block chain's rule: final after ``confirmations`` blocks of ``block_interval`` s."""
        return cls(
            confirmations=confirmations,
            block_interval=block_interval,
            expected_seconds=confirmations * block_interval,
            clock_skew=clock_skew,
        )


class TxPurpose(StrEnum):
    """What one transaction of an operation does; the journal records it per transaction."""

    APPROVE = "approve"  # an ERC-20 allowance a later transaction of the same operation pulls
    PERMIT = "permit"
    LOCK = "lock"
    CLAIM = "claim"
    REFUND = "refund"
    PROPOSE = "propose"
    ACCEPT = "accept"
    CANCEL = "cancel"
    ISSUE = "issue"


class Submitted(Frozen):
    """One transaction broadcast (not yet final): who pays its fee, and what it is for."""

    tx_id: str
    ledger: str
    purpose: TxPurpose
    payer: str  # the party whose funds pay this transaction's fee


class Submission(tuple[Submitted, ...]):
    """Every transaction one sending operation broadcast, in the order they must be final.

    The last one is the operation itself (the lock, the claim ...); those before it
    prepare it (an approve).  An operation returns once all are broadcast; the caller
    waits for each with ``wait_final``."""

    def __new__(cls, items: "Iterable[Submitted]") -> "Submission":
        items = tuple(items)
        if not items:
            raise ValueError("a submission holds at least one transaction")
        return super().__new__(cls, items)

    @property
    def main(self) -> Submitted:
        return self[-1]

    @property
    def tx_id(self) -> str:
        """The id of the operation's own transaction (the last one)."""
        return self[-1].tx_id


class TxStatus(Frozen):
    tx_id: str
    successful: bool
    code: str | int | None = None
    block_number: int | None = None
    fee: int | None = None
    # The asset symbol the fee was paid in when it is one of the ledger's traded assets
    # (a UTXO chain's coin); None when fees use a separate coin (gas on EVM).
    fee_asset: str | None = None


class HtlcTerms(Frozen):
    sender: Name
    recipient: Name
    asset: Name
    amount: Amount
    hashlock: Hex32
    expiry: int  # in the ledger's own clock unit (see ClockKind)
    nonce: Hex32


class LockStatus(StrEnum):
    LOCKED = "locked"
    CLAIMED = "claimed"
    REFUNDED = "refunded"


class LedgerTerms(Frozen):
    """A lock's terms as the ledger records them: a field the ledger does not keep
    (a UTXO script has no nonce) is None, never guessed."""

    sender: str
    recipient: str
    asset: str | None
    amount: int
    hashlock: Hex32
    expiry: int
    nonce: Hex32 | None = None

    def differences(self, agreed: HtlcTerms) -> list[tuple[str, object, object]]:
        """The one comparison of a lock's terms with the agreed ones: each recorded term that
        differs, as (field, recorded, agreed), in field order.  A term the ledger does not
        record (None) is not compared."""
        found = ((f, getattr(self, f), getattr(agreed, f)) for f in type(self).model_fields)
        return [(f, got, want) for f, got, want in found if got is not None and got != want]

    def agrees_with(self, terms: HtlcTerms) -> bool:
        """Every recorded term equals the agreed one."""
        return not self.differences(terms)


class LockState(Frozen):
    lock_id: str
    terms: LedgerTerms
    status: LockStatus
    preimage: Hex32 | None = None
    confirmations: int = 0
    final: bool = False


class LockEvent(Frozen):
    ledger: str
    kind: Literal["locked", "claimed", "refunded"]
    lock_id: str
    tx_id: str
    height: int
    preimage: Hex32 | None = None
    checkpoint: str  # pass back as ``observe(since=...)`` to resume after this event


class DvpOrder(Frozen):
    """A single-ledger DvP: one transaction moves both legs once both parties agreed."""

    seller: Name
    buyer: Name
    security: Name
    security_amount: Amount
    cash: Name
    cash_amount: Amount
    deadline: int
    nonce: Hex32


class OrderStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class OrderState(Frozen):
    order_id: str
    status: OrderStatus
