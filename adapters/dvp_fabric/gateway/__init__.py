"""A small Fabric Gateway client: asyncio gRPC on the official protobuf bindings.

See :mod:`.client` for the object model and :mod:`.errors` for the errors by phase."""

from .client import (
    Commit,
    Contract,
    Gateway,
    Network,
    Proposal,
    Status,
    Timeouts,
    Transaction,
    connect,
)
from .errors import (
    CommitError,
    CommitStatusError,
    CommitStatusTimeout,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    EventsError,
    GatewayError,
    GatewayUnavailable,
    SubmitError,
)
from .events import ChaincodeEvent, ChaincodeEventStream, Checkpoint
from .identity import Identity, Signer, load_msp

__all__ = [
    "ChaincodeEvent",
    "ChaincodeEventStream",
    "Checkpoint",
    "Commit",
    "CommitError",
    "CommitStatusError",
    "CommitStatusTimeout",
    "Contract",
    "EndorseError",
    "ErrorDetail",
    "EvaluateError",
    "EventsError",
    "Gateway",
    "GatewayError",
    "GatewayUnavailable",
    "Identity",
    "Network",
    "Proposal",
    "Signer",
    "Status",
    "SubmitError",
    "Timeouts",
    "Transaction",
    "connect",
    "load_msp",
]
