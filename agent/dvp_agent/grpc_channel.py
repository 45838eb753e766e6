"""The off-ledger channel over gRPC with mutual TLS: one unary method carrying signed envelopes.

Both ends pin each other's self-signed certificate (no certificate authority): the server
takes only clients whose certificate is a pinned peer's, the client checks the server's
certificate against that peer's alone, with the peer's party as the TLS name (so TLS holds
end to end through a TCP proxy on another port).  Over that, every message is signed by its
sender (:mod:`.envelope`), so a message is bound to its party even outside the connection.

No generated code: the method carries raw bytes (the envelope), so gRPC is only the HTTP/2
framing, TLS and deadlines.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dvp.errors import ConfigError, MessageRefused, PeerUnreachable
from dvp.party.channel import Channel, Handler, cancelled_by_caller
from dvp.party.limits import Limits
from dvp.party.messages import MAX_MESSAGE_BYTES, Message

from .envelope import NotAuthentic, seal, unseal
from .identity import Identity, PeerCert

SERVICE = "dvp.agent.v1.Agent"
METHOD = f"/{SERVICE}/Deliver"
# Refused by gRPC before our code reads it; unseal checks the same bound on what gets through.
_SIZE_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# After a failed connection gRPC waits before the next attempt (up to 2 minutes by default);
# a healed partition should be used within a second.  Not grpc.min_reconnect_backoff_ms: it is
# also the TLS connect timeout, which a loaded machine must not be held to.
_CLIENT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
# Without this a second agent on the same port would share it (gRPC sets SO_REUSEPORT).
_SERVER_OPTIONS = [("grpc.so_reuseport", 0)]
_GRACE = 0.5
# A dropped connection is closed after the calls still on it had this long to end: closing it
# at once would cut every other swap's call in flight on it.
_DROP_GRACE = 5.0
_MAX_DETAIL = 300

# The peer's agent did not take the call: try again later.  Anything else: it refused it.
# INTERNAL and UNKNOWN come from gRPC itself (a reset stream); the agent's server answers
# its own failures with FAILED_PRECONDITION, a refusal, never with these.
_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


@dataclass(frozen=True)
class PeerEndpoint:
    """Where a counterparty's agent listens ("127.0.0.1:PORT", or a proxy in front) and its certificate."""

    endpoint: str
    cert: PeerCert


class GrpcChannel(Channel):
    """One party's end of the channel: serves its pinned peers and sends to them."""

    def __init__(
        self, identity: Identity, listen: str, peers: Mapping[str, PeerEndpoint], limits: Limits | None = None
    ):
        super().__init__(identity.party)
        self.limits = limits or Limits()
        self.identity = identity
        self.listen = listen
        ip_port(listen, "listen")
        for party, peer in peers.items():
            if peer.cert.party != party:
                raise ConfigError(f"peer {party!r}: its certificate names {peer.cert.party!r}")
            if party == identity.party:
                raise ConfigError(f"peer {party!r} is this agent's own party")
            ip_port(peer.endpoint, f"peer {party!r} endpoint")
        self.peers = dict(peers)
        self._by_der = {peer.cert.der: peer.cert for peer in self.peers.values()}
        self._server: grpc.aio.Server | None = None
        self._handler: Handler | None = None
        self._clients: dict[str, grpc.aio.Channel] = {}
        self._dropped: dict[grpc.aio.Channel, asyncio.Task[None]] = {}  # dropped connections being closed
        self.port: int | None = None  # the bound port once started (``listen`` may ask for port 0)
        # Messages (requests and replies) this end sent and received, per peer party, once they
        # passed: the bench counts them from here.
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        # Calls the server refused before or at its checks, by (peer party or "-", reason), for
        # the metrics (dvp_agent.metrics): over a limit is counted by the agent, by the limit's name.
        self.refused: dict[tuple[str, str], int] = {}
        self.in_flight = dict.fromkeys(self.peers, 0)  # calls being served, per peer party

    async def start(self, handler: Handler) -> None:
        if self._server is not None:
            raise RuntimeError("channel already started")
        if not self.peers:
            raise ConfigError(f"agent of {self.party!r}: no peer pinned, so no client could be accepted")
        self._handler = handler
        server = grpc.aio.server(
            options=_SIZE_OPTIONS + _SERVER_OPTIONS + _bounds(self.limits, len(self.peers)),
            # Each peer has limits.concurrent_calls of its own (_deliver): all of them fit.
            maximum_concurrent_rpcs=self.limits.concurrent_calls * len(self.peers),
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"Deliver": grpc.unary_unary_rpc_method_handler(self._deliver)}
                ),
            )
        )
        roots = b"".join(peer.cert.pem for peer in self.peers.values())
        credentials = grpc.ssl_server_credentials(
            [(self.identity.key_pem, self.identity.cert_pem)], root_certificates=roots, require_client_auth=True
        )
        try:
            port = server.add_secure_port(self.listen, credentials)
        except RuntimeError:  # grpcio raises on a failed bind; older releases returned 0
            port = 0
        if not port:
            await server.stop(None)
            raise ConfigError(
                f"agent of {self.party!r}: cannot listen on {self.listen}: "
                "the port is in use or the address is not this machine's"
            )
        await server.start()
        self._server, self.port = server, port

    async def send(self, message: Message, *, timeout: float = 5.0) -> Message | None:
        peer = self.peers.get(message.recipient)
        if peer is None:
            raise MessageRefused(f"no pinned peer {message.recipient!r} for agent of {self.party!r}")
        if message.sender != self.party:
            raise MessageRefused(f"agent of {self.party!r} cannot send a message from {message.sender!r}")
        data = seal(message, self.identity)
        client = self._client(message.recipient)
        try:
            raw = await client.unary_unary(METHOD)(data, timeout=timeout)
        except asyncio.CancelledError:
            if cancelled_by_caller():
                raise  # the sender is being stopped
            # The call was cancelled under the sender (its connection was closed): a failed send.
            raise PeerUnreachable(
                f"agent of {message.recipient!r} at {peer.endpoint}: the call was cut off (its connection closed)"
            ) from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                await self._drop(message.recipient, client)  # a fresh connection next time, not a backoff
                raise PeerUnreachable(
                    f"agent of {message.recipient!r} at {peer.endpoint} did not answer: {_detail(exc)}"
                ) from None
            raise MessageRefused(
                f"agent of {message.recipient!r} refused the {message.kind} message: {_detail(exc)}"
            ) from None
        _count(self.sent, message.recipient)
        if not raw:
            return None
        reply = unseal(raw, peer=peer.cert, me=self.party)
        _count(self.received, message.recipient)
        if reply.swap_id != message.swap_id:
            raise MessageRefused(
                f"reply of {message.recipient!r} is for swap {reply.swap_id!r}, not {message.swap_id!r}"
            )
        return reply

    async def aclose(self) -> None:
        server, self._server, self._handler = self._server, None, None
        if server is not None:
            await server.stop(_GRACE)
        for party in list(self._clients):
            await self._drop(party)
        for dropped in list(self._dropped):  # the channel stops: their grace ends now
            await dropped.close()
        await asyncio.gather(*self._dropped.values(), return_exceptions=True)

    def _client(self, party: str) -> grpc.aio.Channel:
        client = self._clients.get(party)
        if client is None:
            peer = self.peers[party]
            credentials = grpc.ssl_channel_credentials(
                root_certificates=peer.cert.pem,
                private_key=self.identity.key_pem,
                certificate_chain=self.identity.cert_pem,
            )
            options: list[tuple[str, Any]] = [("grpc.ssl_target_name_override", party)]
            client = grpc.aio.secure_channel(
                peer.endpoint, credentials, options=options + _SIZE_OPTIONS + _CLIENT_OPTIONS
            )
            self._clients[party] = client
        return client

    async def _drop(self, party: str, failed: grpc.aio.Channel | None = None) -> None:
        client = self._clients.get(party)
        # A concurrent send may already have replaced the failed connection: keep the new one.
        if client is not None and (failed is None or client is failed):
            del self._clients[party]
            if failed is None:  # the channel stops: no grace
                await client.close()
                return
            # Other calls may still be on it: they end in their own time (up to the grace).
            closing = self._dropped[client] = asyncio.create_task(client.close(_DROP_GRACE))
            closing.add_done_callback(lambda _: self._dropped.pop(client, None))

    async def _deliver(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        peer = self._peer_of(context)
        if peer is None:
            self._refuse("-", "not_pinned")
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, "client certificate is not a pinned peer's")
        handler = self._handler
        if handler is None:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"agent of {self.party!r} is stopping")
        if self.in_flight[peer.party] >= self.limits.concurrent_calls:
            # A peer's own share of the server: one peer's flood leaves the others theirs.
            self._refuse(peer.party, "concurrent_calls")
            await _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over this agent's limit: more than {self.limits.concurrent_calls} calls at once from "
                f"{peer.party!r} (limits.concurrent_calls); refused, not journaled",
            )
        self.in_flight[peer.party] += 1
        try:
            return await self._serve(peer, handler, request, context)
        finally:
            self.in_flight[peer.party] -= 1

    async def _serve(
        self, peer: PeerCert, handler: Handler, request: bytes, context: grpc.aio.ServicerContext
    ) -> bytes:
        try:
            message = unseal(request, peer=peer, me=self.party)
            _count(self.received, peer.party)
            reply = await handler(message)
            if reply is None:
                return b""
            sealed = seal(reply, self.identity)
            _count(self.sent, peer.party)
            return sealed
        except NotAuthentic as exc:
            self._refuse(peer.party, "not_authentic")
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except MessageRefused as exc:
            if "(limits." not in str(exc):  # over a limit: the agent counted it, by the limit's name
                self._refuse(peer.party, "checks")
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # the handler's bug must not take the server down
            # Not INTERNAL: a client takes that (from gRPC's own transport) as "try again".
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"agent of {self.party!r} failed on the message: {type(exc).__name__}: {exc}",
            )

    def _refuse(self, party: str, reason: str) -> None:
        if len(self.refused) < 64 or (party, reason) in self.refused:  # bounded: few reasons, pinned peers
            self.refused[(party, reason)] = self.refused.get((party, reason), 0) + 1

    def _peer_of(self, context: grpc.aio.ServicerContext) -> PeerCert | None:
        pems = context.auth_context().get("x509_pem_cert") or []
        if len(pems) != 1:
            return None
        try:
            der = x509.load_pem_x509_certificate(pems[0]).public_bytes(serialization.Encoding.DER)
        except ValueError:
            return None
        return self._by_der.get(der)


def _bounds(limits: Limits, peers: int) -> list[tuple[str, Any]]:
    """What the peers (or anyone who can reach the port) may hold open on the server: connections
    (``limits.connections`` per pinned peer, shared: gRPC counts them before TLS says whose they
    are), calls per connection, a connection idle or still in its TLS handshake (then closed)."""
    return [
        ("grpc.max_allowed_incoming_connections", limits.connections * peers),
        ("grpc.max_concurrent_streams", limits.concurrent_calls),
        ("grpc.max_connection_idle_ms", limits.idle_seconds * 1000),
        ("grpc.server_handshake_timeout_ms", limits.handshake_seconds * 1000),
    ]


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    line = " ".join(details.split())
    await context.abort(code, line[:_MAX_DETAIL])
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker so


def _count(counts: dict[str, int], party: str) -> None:
    counts[party] = counts.get(party, 0) + 1


def _detail(exc: grpc.aio.AioRpcError) -> str:
    line = " ".join((exc.details() or exc.code().name).split())
    return line[:_MAX_DETAIL]


def ip_port(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 <= number <= 65535:
        raise ConfigError(f"{what}: {address!r} is not IP:PORT (e.g. 127.0.0.1:7101)")
    return host, number
