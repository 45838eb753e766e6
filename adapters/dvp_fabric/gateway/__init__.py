"""A small Fabric Gateway client: asyncio gRPC on the official protobuf bindings.

See :mod:`.client` for the object model and :mod:`.errors` for the errors by phase."""

from .client import (
    Channel,
    Commit,
    Contract,
    Gateway,
    Proposal,
    Status,
    Timeouts,
    Transaction,
    connect,
)
from .errors import (
    CommitStatusError,
    CommitStatusTimeout,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    EventsError,
    GatewayCommitError,
    GatewayError,
    GatewaySubmitError,
    GatewayUnavailable,
)
from .events import ChaincodeEvent, ChaincodeEventStream, Checkpoint
from .identity import Identity, Signer, load_msp

__all__ = [
    "Channel",
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "Checkpoint",
    "Commit",
    "CommitStatusError",
    "CommitStatusTimeout",
    "Contract",
    "EndorseError",
    "ErrorDetail",
    "EvaluateError",
    "EventsError",
    "Gateway",
    "GatewayCommitError",
    "GatewayError",
    "GatewaySubmitError",
    "GatewayUnavailable",
    "Identity",
    "Proposal",
    "Signer",
    "Status",
    "Timeouts",
    "Transaction",
    "connect",
    "load_msp",
]
