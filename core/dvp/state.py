"""What the journal persists of a swap, typed: step names, phases and the per-kind state.

The orchestrator writes these, the journal stores them, and the bench, the report and
the tests read them back through the same enums and models: no step name is built with
an f-string or split back into its parts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer

from .models import DvpOrder, Hex32, HtlcTerms, Name, Role
from .terms import Agreement, Proposal
from .terms import LegName as LegName  # re-exported: the step names are built of it


class Phase(StrEnum):
    """The rows a step writes, in order."""

    INTENT = "intent"  # before its transactions are sent
    SIGNED = "signed"  # one per transaction signed, before any is broadcast: tx_id, raw, purpose, payer, batch
    ABANDONED = "abandoned"  # a signed transaction the ledger proves can never confirm: tx_id, proof
    SUBMITTED = "submitted"  # one per transaction broadcast: tx_id, purpose, payer
    FINAL = "final"  # one per transaction once final: tx_id, purpose, payer, fee, fee_asset, block, reverted (mined, failed)
    RESULT = "result"  # the step is done (tx_id: the operation's own transaction, if any)
    SKIPPED = "skipped"  # the step was deliberately not taken (reason)


class Action(StrEnum):
    LOCK = "lock"
    AUDIT = "audit"
    CLAIM = "claim"
    EXTRACT = "extract"
    REFUND = "refund"
    PROPOSE = "propose"
    SETTLE = "settle"
    CANCEL = "cancel"


class StepName(StrEnum):
    """Every step a swap journals (the value is what the journal and the timeline show)."""

    LOCK_SECURITY = "lock security"
    LOCK_CASH = "lock cash"
    AUDIT_SECURITY = "audit security"
    AUDIT_CASH = "audit cash"
    CLAIM_SECURITY = "claim security"
    CLAIM_CASH = "claim cash"
    EXTRACT_SECRET = "extract secret"
    REFUND_SECURITY = "refund security"
    REFUND_CASH = "refund cash"
    PROPOSE = "propose"
    SETTLE = "settle"
    CANCEL = "cancel"  # the seller withdraws an order the buyer has not accepted

    @classmethod
    def of(cls, action: Action, leg: LegName | None = None) -> "StepName":
        return _BY_PARTS[(action, leg)]

    @property
    def action(self) -> Action:
        return _PARTS[self][0]

    @property
    def leg(self) -> LegName | None:
        return _PARTS[self][1]


_PARTS: dict[StepName, tuple[Action, LegName | None]] = {
    StepName.LOCK_SECURITY: (Action.LOCK, LegName.SECURITY),
    StepName.LOCK_CASH: (Action.LOCK, LegName.CASH),
    StepName.AUDIT_SECURITY: (Action.AUDIT, LegName.SECURITY),
    StepName.AUDIT_CASH: (Action.AUDIT, LegName.CASH),
    StepName.CLAIM_SECURITY: (Action.CLAIM, LegName.SECURITY),
    StepName.CLAIM_CASH: (Action.CLAIM, LegName.CASH),
    StepName.EXTRACT_SECRET: (Action.EXTRACT, None),
    StepName.REFUND_SECURITY: (Action.REFUND, LegName.SECURITY),
    StepName.REFUND_CASH: (Action.REFUND, LegName.CASH),
    StepName.PROPOSE: (Action.PROPOSE, None),
    StepName.SETTLE: (Action.SETTLE, None),
    StepName.CANCEL: (Action.CANCEL, None),
}
_BY_PARTS = {parts: name for name, parts in _PARTS.items()}


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        """The journal's JSON form (unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class PartySide(_State):
    """Which side of a two-agent swap this journal is (dvp.party): its own party and role,
    the counterparty, and who proposed the trade."""

    party: Name
    role: Role
    peer: Name
    proposer: Name
    proposal: Proposal | None = None  # until agreed
    agreement: Agreement | None = None  # once agreed

    @field_serializer("proposal", "agreement")
    def _in_full(self, terms: Proposal | Agreement | None) -> dict[str, Any] | None:
        # Journaled whole, its unset fields as null (the journal's form of these before they
        # were typed), not pruned by the state's exclude_none.
        return terms.model_dump(mode="json") if terms is not None else None


class HtlcSwapState(_State):
    """A cross-ledger HTLC swap: the secret before anything is sent, then each leg's
    terms and lock id before its lock is broadcast (write-ahead).

    A party's agent (``side`` set) knows the secret only if it is the secret holder, and
    journals both legs' agreed terms and lock ids when the trade is agreed."""

    secret: Hex32 | None = None
    hashlock: Hex32 | None = None  # None only while a party's proposal waits for the holder's answer
    side: PartySide | None = None
    terms_security: HtlcTerms | None = None
    lock_security: str | None = None
    terms_cash: HtlcTerms | None = None
    lock_cash: str | None = None
    unwinding: str | None = None  # the first cause, once the swap started unwinding (kept across resumes)

    def terms(self, leg: LegName) -> HtlcTerms | None:
        return self.terms_security if leg is LegName.SECURITY else self.terms_cash

    def lock_id(self, leg: LegName) -> str | None:
        return self.lock_security if leg is LegName.SECURITY else self.lock_cash

    def with_lock(self, leg: LegName, terms: HtlcTerms, lock_id: str) -> "HtlcSwapState":
        if leg is LegName.SECURITY:
            return self.model_copy(update={"terms_security": terms, "lock_security": lock_id})
        return self.model_copy(update={"terms_cash": terms, "lock_cash": lock_id})

    def lock_ids(self) -> dict[str, str]:
        """Lock ids by their journal key, for reports."""
        return {k: v for k, v in (("lock_security", self.lock_security), ("lock_cash", self.lock_cash)) if v}


class AtomicSwapState(_State):
    """A single-ledger DvP: the order and its id before the proposal is broadcast."""

    order: DvpOrder | None = None
    order_id: str | None = None
    cancelling: str | None = None  # why the order is being withdrawn, once decided (kept across resumes)
    side: PartySide | None = None  # one party's side of a two-agent DvP (dvp.party.atomic)


SwapState = HtlcSwapState | AtomicSwapState


def state_of(kind: str, data: dict[str, Any]) -> SwapState:
    """The typed state of a swap of ``kind`` from its journal data."""
    return HtlcSwapState.model_validate(data) if kind == "htlc" else AtomicSwapState.model_validate(data)


def expiry_of(data: dict[str, Any], leg: LegName) -> int | None:
    """A leg's expiry from journal data that may be partial (bench figures from a timeline)."""
    terms = data.get("terms_security" if leg is LegName.SECURITY else "terms_cash") or {}
    expiry = terms.get("expiry")
    return int(expiry) if expiry is not None else None
