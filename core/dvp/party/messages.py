"""The messages two agents exchange, as the channel carries them (signed by the sender).

Every message names its swap, its sender and its recipient, and carries a sequence number
that grows with every message a sender sends for that swap, so the receiver refuses a
replayed or reordered old message; the channel signs all of it, so none of it can be
moved to another swap or party.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from ..models import Frozen, Name
from ..terms import SwapId

# A message is small: a proposal is the largest, a swap spec with two legs' terms.
MAX_MESSAGE_BYTES = 64 * 1024
# A buyer's partly signed DvP transaction (a PSET of a few inputs is 1 to 3 KB in base64).
MAX_HALF_CHARS = 48 * 1024


class Kind(StrEnum):
    PROPOSE = "propose"  # body: the proposal (dvp.party.agreement.Proposal)
    ACCEPT = "accept"  # the reply to a proposal: body {hashlock} when the acceptor holds the secret
    REJECT = "reject"  # the reply to a proposal: body {reason}
    LOCKED = "locked"  # body {leg, lock_id}: the sender's lock is on its ledger
    CLAIMED = "claimed"  # body {leg, lock_id}: the sender claimed a lock
    REFUNDED = "refunded"  # body {leg, lock_id}: the sender refunded its lock
    SIGNED = "signed"  # body {leg, lock_id: the order id, half}: a buyer's partly signed DvP transaction
    PING = "ping"  # is the peer's agent still there? (while waiting on it near an expiry)
    ACK = "ack"  # the reply to a notice or a ping
    RFQ = "rfq"  # a request for a quote (dvp.party.quotes.QuoteRequest), under the id its proposal would take
    QUOTE = "quote"  # the reply to an RFQ: body dvp.party.quotes.Quote (firm terms, valid until)


# Answers, bound to their request by the call that carried it: outside the order of requests.
REPLY_KINDS = (Kind.ACCEPT, Kind.REJECT, Kind.ACK, Kind.QUOTE)


class Message(Frozen):
    kind: Kind
    swap_id: SwapId
    sender: Name
    recipient: Name
    seq: int = Field(gt=0, lt=2**63)  # grows with every message the sender sends for this swap (SQLite's INTEGER)
    sent_at: float = Field(default_factory=time.time, allow_inf_nan=False)
    body: dict[str, Any] = {}

    @field_validator("body")
    @classmethod
    def _finite(cls, body: dict[str, Any]) -> dict[str, Any]:
        """Numbers are finite: NaN or infinity compares false with every bound it is checked against."""
        stack: list[Any] = [body]
        for _ in range(100_000):  # bounded: a message is at most MAX_MESSAGE_BYTES
            if not stack:
                return body
            value = stack.pop()
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("numbers must be finite")
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
        raise ValueError("too many values")

    def reply(self, kind: Kind, seq: int, **body: Any) -> "Message":
        return Message(
            kind=kind, swap_id=self.swap_id, sender=self.recipient, recipient=self.sender, seq=seq, body=body
        )


def next_seq(last: int) -> int:
    """A sequence number above ``last`` that also grows across restarts without being stored
    first: nanoseconds of the wall clock, or ``last + 1`` if the clock stepped back."""
    return max(last + 1, time.time_ns())
