"""A Fabric Gateway client on asyncio gRPC, in the object model of Fabric's official clients.

    gateway  = Gateway(connection, identity, signer)   one identity over one peer connection
    channel  = gateway.get_channel("fabric-a")          a channel (the official clients' Network)
    contract = channel.get_contract("dvp")              a chaincode
    result   = await contract.evaluate("BalanceOf", a, b)
    result   = await contract.submit("Transfer", ...)   endorse, submit, wait for a VALID commit
    proposal = contract.new_proposal("Lock", ...)       or step by step:
    tx       = await proposal.endorse()                 (EndorseError)
    commit   = await tx.submit()                        (GatewaySubmitError)
    status   = await commit.status()                    (CommitStatusError); status.code "VALID"

The client signs everything itself (proposal, endorsed envelope, commit-status and event
requests); the Gateway peer collects the endorsements the chaincode's policy needs from
the channel's other peers and forwards the transaction to the orderer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import TypeVar

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import (
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2

from .errors import (
    CommitStatusError,
    EndorseError,
    EvaluateError,
    GatewayCommitError,
    GatewayError,
    GatewaySubmitError,
    phase_error,
)
from .events import ChaincodeEventStream, Checkpoint
from .identity import Identity, Signer

Arg = str | bytes
# A Gateway call's response message (Fabric's protobuf modules ship no stubs: Any to mypy).
_Response = TypeVar("_Response")


@dataclass(frozen=True)
class Timeouts:
    """Per-call deadlines in seconds (the official clients' defaults)."""

    evaluate: float = 5.0
    endorse: float = 15.0
    submit: float = 5.0
    commit_status: float = 60.0


@dataclass(frozen=True)
class Status:
    """A transaction's commit status: ``code`` is Fabric's TxValidationCode name."""

    transaction_id: str
    code: str
    block_number: int

    @property
    def successful(self) -> bool:
        return self.code == "VALID"


def connect(endpoint: str, tls_ca: bytes, *, host_name: str | None = None) -> grpc.aio.Channel:
    """A TLS gRPC channel to a Gateway peer, overriding the name checked against its
    certificate when the endpoint's host is not one of its names."""
    # Reconnect within a second or two of a restarted peer (gRPC's default backoff grows to 2 min).
    options: list[tuple[str, str | int]] = [
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if host_name:
        options.append(("grpc.ssl_target_name_override", host_name))
    return grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=tls_ca), options=options)


class Gateway:
    """One client identity speaking to one Gateway peer over ``connection`` (a gRPC channel, shared, not owned)."""

    def __init__(
        self, connection: grpc.aio.Channel, identity: Identity, signer: Signer, *, timeouts: Timeouts = Timeouts()
    ):
        self.connection = connection
        self.identity = identity
        self.signer = signer
        self.timeouts = timeouts
        self.stub = gateway_pb2_grpc.GatewayStub(connection)

    def get_channel(self, name: str) -> Channel:
        return Channel(self, name)


class Channel:
    """One Fabric channel as seen through a gateway (what Fabric's official clients call a Network)."""

    def __init__(self, gateway: Gateway, name: str):
        self.gateway = gateway
        self.name = name

    def get_contract(self, chaincode: str) -> Contract:
        return Contract(self, chaincode)

    async def submit_envelope(self, transaction_id: str, envelope: bytes, what: str) -> Commit:
        """Send a signed transaction envelope to the orderer (the same bytes again are the
        same transaction id: the peers validate only its first commit)."""
        g = self.gateway
        request = gateway_pb2.SubmitRequest(
            transaction_id=transaction_id,
            channel_id=self.name,
            prepared_transaction=common_pb2.Envelope.FromString(envelope),
        )
        await _call(g.stub.Submit, request, g.timeouts.submit, GatewaySubmitError, transaction_id, what)
        return Commit(self, transaction_id)

    def get_commit(self, transaction_id: str) -> Commit:
        """The commit of a transaction known only by its id (e.g. after a restart)."""
        return Commit(self, transaction_id)

    def chaincode_events(
        self,
        chaincode: str,
        *,
        checkpoint: Checkpoint | None = None,
        start_block: int | None = None,
        idle: float | None = None,
    ) -> ChaincodeEventStream:
        """Events of ``chaincode`` from ``checkpoint`` (resuming after its transaction), else
        from ``start_block``, else from the next block committed; see ChaincodeEventStream."""
        return ChaincodeEventStream(self, chaincode, checkpoint=checkpoint, start_block=start_block, idle=idle)


class Contract:
    def __init__(self, channel: Channel, chaincode: str):
        self.channel = channel
        self.chaincode = chaincode

    def new_proposal(
        self, function: str, *args: Arg, timestamp: float | None = None, endorsing_organizations: tuple[str, ...] = ()
    ) -> Proposal:
        """A signed proposal; ``timestamp`` (unix seconds) overrides the client's clock."""
        return Proposal(self, function, args, timestamp=timestamp, endorsing_organizations=endorsing_organizations)

    async def evaluate(self, function: str, *args: Arg) -> bytes:
        return await self.new_proposal(function, *args).evaluate()

    async def submit(self, function: str, *args: Arg) -> bytes:
        """Endorse, submit and wait for the commit; raise GatewayCommitError unless it is VALID."""
        tx = await self.new_proposal(function, *args).endorse()
        commit = await tx.submit()
        await commit.expect_valid()
        return tx.result


class Proposal:
    """A transaction proposal, built and signed at once so its id is known before sending."""

    def __init__(
        self,
        contract: Contract,
        function: str,
        args: tuple[Arg, ...],
        *,
        timestamp: float | None,
        endorsing_organizations: tuple[str, ...],
    ):
        self.contract = contract
        channel = contract.channel
        gateway = channel.gateway
        self.endorsing_organizations = list(endorsing_organizations)
        nonce = os.urandom(24)
        creator = gateway.identity.serialized
        self.transaction_id = sha256(nonce + creator).hexdigest()
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(int((time.time() if timestamp is None else timestamp) * 1e9))
        channel_header = common_pb2.ChannelHeader(
            type=common_pb2.ENDORSER_TRANSACTION,
            timestamp=ts,
            channel_id=channel.name,
            tx_id=self.transaction_id,
            extension=proposal_pb2.ChaincodeHeaderExtension(
                chaincode_id=chaincode_pb2.ChaincodeID(name=contract.chaincode)
            ).SerializeToString(),
        )
        header = common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=common_pb2.SignatureHeader(creator=creator, nonce=nonce).SerializeToString(),
        )
        spec = chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name=contract.chaincode),
            input=chaincode_pb2.ChaincodeInput(args=[_bytes(function), *map(_bytes, args)]),
        )
        payload = proposal_pb2.ChaincodeProposalPayload(
            input=chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=spec).SerializeToString()
        )
        proposal_bytes = proposal_pb2.Proposal(
            header=header.SerializeToString(), payload=payload.SerializeToString()
        ).SerializeToString()
        self.signed = proposal_pb2.SignedProposal(
            proposal_bytes=proposal_bytes, signature=gateway.signer.sign(proposal_bytes)
        )
        self.what = f"{contract.chaincode}.{function} on {channel.name}"

    @property
    def _gateway(self) -> Gateway:
        return self.contract.channel.gateway

    async def evaluate(self) -> bytes:
        """Run the proposal on one peer without ordering it; the chaincode's result."""
        g = self._gateway
        request = gateway_pb2.EvaluateRequest(
            transaction_id=self.transaction_id,
            channel_id=self.contract.channel.name,
            proposed_transaction=self.signed,
            target_organizations=self.endorsing_organizations,
        )
        response = await _call(
            g.stub.Evaluate, request, g.timeouts.evaluate, EvaluateError, self.transaction_id, self.what
        )
        payload: bytes = response.result.payload
        return payload

    async def endorse(self) -> Transaction:
        g = self._gateway
        request = gateway_pb2.EndorseRequest(
            transaction_id=self.transaction_id,
            channel_id=self.contract.channel.name,
            proposed_transaction=self.signed,
            endorsing_organizations=self.endorsing_organizations,
        )
        response = await _call(
            g.stub.Endorse, request, g.timeouts.endorse, EndorseError, self.transaction_id, self.what
        )
        return Transaction(self, response.prepared_transaction)


class Transaction:
    """An endorsed transaction, ready to be signed and sent to the orderer."""

    def __init__(self, proposal: Proposal, envelope: common_pb2.Envelope):
        self.proposal = proposal
        self.transaction_id = proposal.transaction_id
        self.envelope = envelope
        self.result = _result_of(envelope)

    def signed_envelope(self) -> bytes:
        """The endorsed transaction signed by the client, as the orderer takes it: what
        :meth:`Channel.submit_envelope` sends (again, after a restart)."""
        g = self.proposal._gateway
        signed: bytes = common_pb2.Envelope(
            payload=self.envelope.payload, signature=g.signer.sign(self.envelope.payload)
        ).SerializeToString()
        return signed

    async def submit(self, envelope: bytes | None = None) -> Commit:
        """Sign (unless given ``envelope``, its :meth:`signed_envelope`) and send to the
        orderer; returns once the orderer accepted it."""
        channel = self.proposal.contract.channel
        return await channel.submit_envelope(
            self.transaction_id, envelope or self.signed_envelope(), self.proposal.what
        )


class Commit:
    """Waits for a transaction's commit on the Gateway peer's ledger."""

    def __init__(self, channel: Channel, transaction_id: str):
        self.channel = channel
        self.transaction_id = transaction_id

    async def status(self, timeout: float | None = None) -> Status:
        """The validation code once the transaction is in a committed block (waits for it)."""
        g = self.channel.gateway
        body = gateway_pb2.CommitStatusRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel.name,
            identity=g.identity.serialized,
        ).SerializeToString()
        request = gateway_pb2.SignedCommitStatusRequest(request=body, signature=g.signer.sign(body))
        response = await _call(
            g.stub.CommitStatus,
            request,
            timeout or g.timeouts.commit_status,
            CommitStatusError,
            self.transaction_id,
            f"transaction on {self.channel.name}",
        )
        return Status(
            self.transaction_id, transaction_pb2.TxValidationCode.Name(response.result), response.block_number
        )

    async def expect_valid(self, timeout: float | None = None) -> Status:
        status = await self.status(timeout)
        if not status.successful:
            raise GatewayCommitError(
                f"transaction {self.transaction_id} on {self.channel.name} committed invalid: {status.code} "
                f"(block {status.block_number})",
                tx_id=self.transaction_id,
                code=status.code,
                block_number=status.block_number,
            )
        return status


async def _call(
    method: Callable[..., Awaitable[_Response]],
    request: object,
    timeout: float,
    error: type[GatewayError],
    tx_id: str | None,
    what: str,
) -> _Response:
    start = time.monotonic()
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        # At its deadline a waiting call may end CANCELLED (the stream reset) rather than
        # DEADLINE_EXCEEDED: either way, it ran out of time.
        late = time.monotonic() - start >= 0.95 * timeout
        raise phase_error(error, exc, tx_id, what, deadline=late) from exc


def _bytes(arg: Arg) -> bytes:
    return arg if isinstance(arg, bytes) else arg.encode()


def _result_of(envelope: common_pb2.Envelope) -> bytes:
    """The chaincode's return value inside an endorsed transaction envelope."""
    payload = common_pb2.Payload.FromString(envelope.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    if not tx.actions:
        return b""
    action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    response = proposal_response_pb2.ProposalResponsePayload.FromString(action.action.proposal_response_payload)
    result: bytes = proposal_pb2.ChaincodeAction.FromString(response.extension).response.payload
    return result
