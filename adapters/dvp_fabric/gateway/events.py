"""Chaincode events from the Gateway, resumable from a checkpoint.

A checkpoint is the block of the last event handled and that event's transaction: the
Gateway resumes in that block after that transaction, so no event is delivered twice
and none is lost between two connections (the official clients' ``Checkpointer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2

from dvp.errors import ConfigError

from .errors import EventsError, phase_error
from .identity import Identity, Signer


class _Gateway(Protocol):
    @property
    def identity(self) -> Identity: ...
    @property
    def signer(self) -> Signer: ...
    @property
    def stub(self) -> Any: ...


class EventSource(Protocol):
    """What a stream reads of its channel (a :class:`.client.Channel`, which imports this
    module): the channel's name and its gateway's identity, signer and stub."""

    @property
    def name(self) -> str: ...
    @property
    def gateway(self) -> _Gateway: ...


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    transaction_id: str
    chaincode: str
    name: str
    payload: bytes


@dataclass(frozen=True)
class Checkpoint:
    """Resume in ``block_number`` after ``transaction_id`` ("" = from the block's start)."""

    block_number: int
    transaction_id: str = ""

    @classmethod
    def after(cls, event: ChaincodeEvent) -> Checkpoint:
        return cls(event.block_number, event.transaction_id)

    def encode(self) -> str:
        return f"{self.block_number}:{self.transaction_id}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        block, sep, tx = text.partition(":")
        if not sep or not block.isdigit():
            raise ConfigError(f"checkpoint: expected 'block:transaction id', got {text!r}")
        return cls(int(block), tx)


class ChaincodeEventStream:
    """Iterate with ``async for``; ``checkpoint`` always names the last event yielded.

    ``idle`` ends the iteration when no block with events arrives for that many
    seconds (to read what is already on the ledger and stop); without it the stream
    follows new blocks until the caller stops iterating."""

    def __init__(
        self,
        channel: EventSource,
        chaincode: str,
        *,
        checkpoint: Checkpoint | None,
        start_block: int | None,
        idle: float | None = None,
    ):
        self.channel = channel
        self.chaincode = chaincode
        self.checkpoint = checkpoint
        self.start_block = start_block
        self.idle = idle

    def __aiter__(self) -> AsyncIterator[ChaincodeEvent]:
        return self._events()

    def _request(self) -> gateway_pb2.SignedChaincodeEventsRequest:
        g = self.channel.gateway
        cp = self.checkpoint
        if cp is not None:
            start = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=cp.block_number))
        elif self.start_block is not None:
            start = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=self.start_block))
        else:
            start = ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
        body = gateway_pb2.ChaincodeEventsRequest(
            channel_id=self.channel.name,
            chaincode_id=self.chaincode,
            identity=g.identity.serialized,
            start_position=start,
            after_transaction_id=cp.transaction_id if cp else "",
        ).SerializeToString()
        return gateway_pb2.SignedChaincodeEventsRequest(request=body, signature=g.signer.sign(body))

    async def _events(self) -> AsyncIterator[ChaincodeEvent]:
        call = self.channel.gateway.stub.ChaincodeEvents(self._request())
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle or None):
                        response = await call.read()
                except TimeoutError:
                    return
                if response is grpc.aio.EOF:
                    return
                for ev in response.events:
                    event = ChaincodeEvent(response.block_number, ev.tx_id, ev.chaincode_id, ev.event_name, ev.payload)
                    self.checkpoint = Checkpoint.after(event)
                    yield event
        except grpc.aio.AioRpcError as exc:
            raise phase_error(EventsError, exc, None, f"{self.chaincode} events on {self.channel.name}") from exc
        finally:
            call.cancel()
