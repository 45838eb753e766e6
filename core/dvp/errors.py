"""The one error tree of dvp.

Every error the framework raises is a :class:`DvpError`; adapters translate their
library's exceptions into this tree at their boundary (``raise ... from exc``)
and may add subclasses::

    DvpError
    ├── ConfigError                 bad settings, scenario or input (names the field)
    │   └── UnknownParty            a party a ledger has no identity for, not even a public one
    ├── UnknownSwap                 no swap with that id in the journal (exit 2: bad input)
    ├── JournalUnavailable          the journal's database server cannot be reached, or was lost (exit 9)
    ├── AdapterError                a ledger did not do what was asked
    │   ├── LedgerUnavailable       node unreachable or not ready
    │   ├── TransactionError        (tx_id, code; fee, block if mined and reverted) a transaction failed
    │   │   ├── SubmitError         rejected before inclusion (endorse, mempool, revert on estimate)
    │   │   ├── CommitError         included but invalid (reverted, MVCC conflict)
    │   │   │   └── Superseded      a journaled signed transaction can never confirm (the ledger's proof)
    │   │   ├── FinalityTimeout     not final within the allowed time
    │   │   └── HeldBack            not taken for now (a node's mempool limits), not proven dead
    │   └── LockError               the HTLC refused an operation
    │       ├── LockNotFound
    │       │   └── MalformedLockId an id this ledger cannot have issued (exit 2: bad input)
    │       ├── LockExpired         claim too late, or refund too early
    │       ├── InvalidPreimage     wrong preimage, or not exactly 32 bytes
    │       ├── AuditFailed         a counterparty lock differs from the agreed terms
    │       └── LockRefused         checked before sending: the ledger would refuse the lock
    │                               (unknown party/asset, dust, balance short of amount + fees)
    ├── NotSupportedError           the ledger lacks a capability the plan needs
    └── SwapError                   the orchestrator refuses or stops a swap
        ├── SwapAborted
        ├── UnsafeTimeouts          the expiry gap cannot absorb finality and reaction time
        └── SwapBusy                another driver holds the swap's lease (exit 7)
    PeerError                       the counterparty's agent (exit 8)
    ├── PeerUnreachable             its agent did not answer on the off-ledger channel
    └── MessageRefused              a message failed authentication, signature, binding or replay checks

The CLI prints ``str(error)`` on one line and exits non-zero, so every message
names the field or the cause.
"""

from __future__ import annotations

from collections.abc import Iterable


class DvpError(Exception):
    """Base of every error dvp raises."""

    exit_code = 1


class ConfigError(DvpError, ValueError):
    exit_code = 2


class UnknownParty(ConfigError):
    """The party has no identity at all on a ledger (not even a public one)."""


def unknown_party(kind: str, party: str, known: Iterable[str]) -> UnknownParty:
    """What a config's ``for_party`` raises for a party the ledger does not have."""
    return UnknownParty(
        f"party {party!r}: not a party of this {kind} ledger (parties: {', '.join(sorted(known)) or 'none'})"
    )


def no_key(ledger: str, party: str, held: Iterable[str], why: str = "") -> ConfigError:
    """What an adapter raises when asked to sign for a party whose key this process lacks:
    ``evm-a: no key for party 'buyer' in this process (it holds seller's only)``."""
    mine = sorted(held)
    holds = f"{', '.join(mine)}'s only" if mine else "no party's key"
    return ConfigError(f"{ledger}: no key for party {party!r} in this process (it holds {holds}){why and '; ' + why}")


class UnknownSwap(DvpError, LookupError):
    """A swap id the journal does not hold: bad input like a ConfigError (exit 2), but not a
    setting or scenario error."""

    exit_code = 2


class JournalUnavailable(DvpError):
    """The journal's database server (PostgreSQL) cannot be reached, or its connection was
    lost mid-run: the swaps in flight stop before their next send and continue with
    `dvp resume` or a worker (exit 9)."""

    exit_code = 9


class AdapterError(DvpError):
    exit_code = 3


class LedgerUnavailable(AdapterError):
    pass


class _Failed(Exception):
    """What a failed transaction or lock operation carries: ``tx_id`` and ``code`` (the rule
    or status), and ``fee`` and ``block`` when the ledger mined it anyway (an EVM revert): it
    still cost its payer that fee, in the ledger's fee unit."""

    def __init__(
        self,
        message: str,
        *,
        tx_id: str | None = None,
        code: str | int | None = None,
        fee: int | None = None,
        block: int | None = None,
    ):
        super().__init__(message)
        self.tx_id = tx_id
        self.code = code
        self.fee = fee
        self.block = block


class TransactionError(_Failed, AdapterError):
    pass


class SubmitError(TransactionError):
    pass


class CommitError(TransactionError):
    pass


class Superseded(CommitError):
    """A journaled signed transaction can no longer confirm: its nonce went to another
    transaction, its inputs were spent elsewhere, or the ledger marked it invalid.  The
    message is the ledger's proof, journaled before a new transaction is built."""


class FinalityTimeout(TransactionError):
    pass


class HeldBack(TransactionError):
    """The ledger does not take the transaction for now, and nothing proves it never will (a
    node's mempool chain limits, waited out for the allowed time): like a FinalityTimeout, a
    journaled signed transaction held back is not abandoned, a resume sends the same bytes
    again and builds no other."""


class LockError(_Failed, AdapterError):
    """An HTLC rule refused the operation; ``tx_id`` (``fee``, ``block``) set when a mined transaction reverted."""


class LockNotFound(LockError):
    pass


class MalformedLockId(LockNotFound):
    """A lock id this ledger cannot have issued (not its format): no such lock, and bad input
    (exit 2) rather than a ledger's refusal."""

    exit_code = 2


class LockExpired(LockError):
    pass


class InvalidPreimage(LockError):
    pass


class AuditFailed(LockError):
    pass


class LockRefused(LockError):
    pass


class NotSupportedError(DvpError):
    exit_code = 4


class SwapError(DvpError):
    exit_code = 5


class SwapAborted(SwapError):
    pass


class UnsafeTimeouts(SwapError):
    pass


class SwapBusy(SwapError):
    """Another process (or task) drives this swap now; this driver skipped it."""

    exit_code = 7


class PeerError(DvpError):
    """The counterparty's agent, over the off-ledger channel: never a ledger fact."""

    exit_code = 8


class PeerUnreachable(PeerError):
    pass


class MessageRefused(PeerError):
    """A message was refused: unauthenticated, badly signed, bound to another swap or party,
    replayed, or not a message this agent takes now."""
