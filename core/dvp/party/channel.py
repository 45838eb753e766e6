"""The off-ledger channel between two agents, as the core sees it.

An implementation authenticates the peer (mutual TLS in :mod:`dvp_agent.grpc_channel`),
signs every message it sends with its party's key and verifies every message it receives
against the sender's key, and refuses one whose ``sender`` is not the authenticated peer or
whose ``recipient`` is not its own party.  Replay and ordering are the agent's to check
(:mod:`dvp.party.agent`), against its journal, so they hold across restarts.

:class:`LocalChannel` joins two agents in one process (``dvp swap`` and unit tests): the
same messages, no network and no signatures.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from ..errors import MessageRefused, PeerUnreachable
from .messages import Message

# Takes a verified message from the peer; returns the reply (or None); raises MessageRefused.
Handler = Callable[[Message], Awaitable[Message | None]]


def cancelled_by_caller() -> bool:
    """After a CancelledError: True if the running task itself is being cancelled (a stop, or
    an ``asyncio.timeout`` of the caller's), False if only an awaited call was cancelled under
    it (e.g. a connection closed with the call in flight): a failed send, not a stop."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class Channel(ABC):
    """One party's end: it serves the handler and sends to the peer party."""

    def __init__(self, party: str):
        self.party = party

    @abstractmethod
    async def start(self, handler: Handler) -> None:
        """Serve: every verified message from the peer goes to ``handler``; its reply goes back."""

    @abstractmethod
    async def send(self, message: Message, *, timeout: float = 5.0) -> Message | None:
        """Deliver ``message`` to ``message.recipient`` and return its verified reply.

        Raises PeerUnreachable if the peer's agent does not answer within ``timeout``, and
        MessageRefused if the peer refused the message or its reply fails verification."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop serving and close every connection."""


class LocalChannel(Channel):
    """Agents in one process: ``LocalChannel.pair("seller", "buyer")``, or
    ``LocalChannel.mesh("seller", "buyer", "issuer")`` for an agent with several peers."""

    def __init__(self, party: str):
        super().__init__(party)
        self.peers: dict[str, LocalChannel] = {}
        self._handler: Handler | None = None
        self.partitioned = False  # tests: every send fails as if the peer were unreachable
        self._in_flight: set[asyncio.Task[Message | None]] = set()

    @classmethod
    def pair(cls, a: str, b: str) -> tuple["LocalChannel", "LocalChannel"]:
        one, two = cls.mesh(a, b)
        return one, two

    @classmethod
    def mesh(cls, *parties: str) -> tuple["LocalChannel", ...]:
        """One channel per party, each joined to every other."""
        ends = tuple(cls(p) for p in parties)
        for end in ends:
            end.peers = {other.party: other for other in ends if other is not end}
        return ends

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def send(self, message: Message, *, timeout: float = 5.0) -> Message | None:
        peer = self.peers.get(message.recipient)
        if self.partitioned or peer is None or peer._handler is None or peer.partitioned:
            raise PeerUnreachable(f"agent of {message.recipient!r} is not reachable")
        if message.sender != self.party:
            raise MessageRefused(
                f"message from {message.sender!r} to {message.recipient!r} on the {self.party!r}-{peer.party!r} channel"
            )
        # Through JSON, as on the wire: the receiver never shares the sender's objects.
        received = Message.model_validate_json(message.model_dump_json())
        # Its own task, as a call on a connection: cut() cancels it under the sender.
        call: asyncio.Task[Message | None] = asyncio.ensure_future(peer._handler(received))
        self._in_flight.add(call)
        call.add_done_callback(self._in_flight.discard)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11
                reply = await call
        except TimeoutError:
            raise PeerUnreachable(f"agent of {message.recipient!r} did not answer in {timeout:g}s") from None
        return None if reply is None else Message.model_validate_json(reply.model_dump_json())

    def cut(self) -> int:
        """Tests: cancel every send in flight, as closing a shared connection does (gRPC's
        ``close()``): each sender gets a CancelledError that is not its own; how many."""
        calls = list(self._in_flight)
        for call in calls:
            call.cancel()
        return len(calls)

    async def aclose(self) -> None:
        self._handler = None
