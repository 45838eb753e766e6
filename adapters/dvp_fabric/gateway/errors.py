"""Gateway errors, one class per phase of a transaction, inside dvp's error tree.

A failed gRPC call to the Gateway service carries a status code and, for endorsement and
evaluation, one ``ErrorDetail`` per peer that answered (its address, MSP id and message,
where a chaincode's own error text ends up).  Every error keeps the transaction id so a
caller can still ask for the commit status of a transaction whose submit timed out.

    EvaluateError       evaluate refused (no ledger change)
    EndorseError        endorsement failed: chaincode error, policy not met   -> dvp SubmitError
    GatewaySubmitError  the orderer refused the endorsed transaction           -> dvp SubmitError
    CommitStatusError   the commit status could not be obtained                -> dvp TransactionError
      CommitStatusTimeout                                                    -> dvp FinalityTimeout
    EventsError         the chaincode event stream failed
    GatewayCommitError  committed but invalid (MVCC_READ_CONFLICT ...)         -> dvp CommitError
    GatewayUnavailable  the peer, or the endorsers it needs, cannot be reached -> dvp LedgerUnavailable

The submit and commit errors carry the Gateway prefix: their parents, ``dvp.errors.SubmitError``
and ``dvp.errors.CommitError``, which the adapter's callers catch, keep the plain names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from fabric_protos.gateway import gateway_pb2
from google.rpc import status_pb2

from dvp import errors


@dataclass(frozen=True)
class ErrorDetail:
    """One peer's answer inside a failed Gateway call."""

    address: str
    msp_id: str
    message: str


class GatewayError(errors.TransactionError):
    """A Gateway call failed; ``code`` is the gRPC status name, ``details`` the peers' answers."""

    phase = "gateway"

    def __init__(self, message: str, *, tx_id: str | None, code: str, details: tuple[ErrorDetail, ...] = ()):
        super().__init__(message, tx_id=tx_id, code=code)
        self.details = details

    @property
    def peer_messages(self) -> list[str]:
        return [d.message for d in self.details]


class EvaluateError(GatewayError):
    phase = "evaluate"


class EndorseError(GatewayError, errors.SubmitError):
    phase = "endorse"


class GatewaySubmitError(GatewayError, errors.SubmitError):
    phase = "submit"


class CommitStatusError(GatewayError):
    phase = "commit status"


class CommitStatusTimeout(CommitStatusError, errors.FinalityTimeout):
    pass


class EventsError(GatewayError):
    phase = "chaincode events"


class GatewayUnavailable(GatewayError, errors.LedgerUnavailable):
    """The gateway peer (or every endorser it needed) could not be reached."""


class GatewayCommitError(errors.CommitError):
    """The transaction was committed in ``block_number`` but marked invalid (``code``)."""

    def __init__(self, message: str, *, tx_id: str, code: str, block_number: int):
        super().__init__(message, tx_id=tx_id, code=code)
        self.block_number = block_number

    @property
    def conflict(self) -> bool:
        """A read-write conflict: the same transaction, endorsed again, may succeed."""
        return self.code in ("MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT")


_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE}
# The endorsers the policy needs are not reachable (yet): a peer restarting, or gossip not yet
# aware of the other organisations' peers just after start.  Not a chaincode missing.
_NO_ENDORSERS = re.compile(r"no (combination of )?peers (can be derived|available)(?!.*No metadata)")


def phase_error(
    cls: type[GatewayError], exc: grpc.aio.AioRpcError, tx_id: str | None, what: str, *, deadline: bool = False
) -> GatewayError:
    """The phase error for a failed call, with the peers' details decoded; ``deadline``: the
    call ran until its deadline, whatever code it ended with."""
    code = exc.code()
    details = _details(exc)
    text = exc.details() or code.name
    if details:
        text += ": " + "; ".join(f"{d.msp_id or d.address}: {d.message}" for d in details)
    message = " ".join(f"{what}: {cls.phase} failed ({code.name}): {text}".split()) + (
        f" (tx {tx_id})" if tx_id else ""
    )
    if code in _UNAVAILABLE or (code is grpc.StatusCode.FAILED_PRECONDITION and _NO_ENDORSERS.search(text)):
        cls = GatewayUnavailable
    elif (deadline or code is grpc.StatusCode.DEADLINE_EXCEEDED) and cls is CommitStatusError:
        cls = CommitStatusTimeout
    return cls(message, tx_id=tx_id, code=code.name, details=details)


def _details(exc: grpc.aio.AioRpcError) -> tuple[ErrorDetail, ...]:
    """The ``ErrorDetail`` messages of a google.rpc.Status in the call's trailing metadata."""
    raw = next((v for k, v in (exc.trailing_metadata() or ()) if k == "grpc-status-details-bin"), None)
    if not isinstance(raw, bytes):
        return ()
    status = status_pb2.Status.FromString(raw)
    out = []
    for anything in status.details:
        detail = gateway_pb2.ErrorDetail()
        if anything.Unpack(detail):
            out.append(ErrorDetail(detail.address, detail.msp_id, detail.message))
    return tuple(out)
