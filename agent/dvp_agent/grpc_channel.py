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
import contextlib
import ipaddress
import os
import socket
import stat
import time
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
# How often the server looks over its accepted connections (_Connections.sweep), and how long a
# connection over a peer's cap is left after its refusal, so the reason reaches the client.
_SWEEP_SECONDS = 1.0
_CUT_DELAY = 0.2

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


Address = tuple[str, int]  # a connection's far end: (host, port)


class _Connections:
    """The server's accepted TCP connections, each owned by the pinned peer whose certificate
    made a call on it: at most ``limits.connections`` per peer, whatever another peer holds.

    gRPC counts a connection before TLS says whose it is (its global cap,
    ``grpc.max_allowed_incoming_connections``), and its API neither names a call's connection
    nor closes one.  So the server finds its accepted sockets among its process's file
    descriptors (``/proc/self/fd``), by local port, and a call's connection by the address
    ``context.peer()`` gives; it cuts one (``shutdown``, gRPC then closes it and frees its slot):
    a peer's connection over its cap, right after the call on it is refused with the reason;
    and a connection on which no pinned peer called within ``handshake_seconds`` (still in its
    TLS handshake, or through it and silent), at the next sweep (every second).  Where there is
    no ``/proc/self/fd`` nothing is cut: gRPC's own bounds still hold."""

    def __init__(self, limits: Limits, port: int):
        self.limits, self.port = limits, port
        self.owner: dict[Address, str] = {}  # connection -> the peer that called on it
        self.unowned: dict[Address, float] = {}  # connection with no call yet -> when first seen
        self.doomed: set[Address] = set()  # over a cap: refused, cut shortly
        self.cut_count: dict[str, int] = {}  # connections cut, by reason (for tests and reports)

    def accepted(self) -> dict[Address, socket.socket]:
        """The server's accepted TCP connections now, each as a duplicate of its socket (the
        caller closes them)."""
        found: dict[Address, socket.socket] = {}
        try:
            fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
        except OSError:
            return found
        for fd in fds:
            try:
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                sock = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            try:
                if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.getsockname()[1] == self.port:
                    peer = sock.getpeername()  # the listening socket has none (ENOTCONN)
                    found[(_host(peer[0]), int(peer[1]))] = sock
                    continue
            except OSError:
                pass
            sock.close()
        return found

    def admit(self, party: str, address: Address | None) -> bool:
        """A call from ``party`` on the connection from ``address``: False if it is over the
        party's cap of connections (the connection is then cut shortly)."""
        if address is None or self.owner.get(address) == party:
            return True
        if address in self.doomed:
            return False
        live = self.accepted()
        try:
            self._forget_closed(live)
            mine = sum(1 for a, p in self.owner.items() if p == party and a != address)
            self.unowned.pop(address, None)
            if mine < self.limits.connections:
                self.owner[address] = party
                return True
            self.doomed.add(address)
            sock = live.pop(address, None)
            if sock is not None:
                asyncio.get_running_loop().call_later(_CUT_DELAY, self._cut, sock, "connections")
            return False
        finally:
            for sock in live.values():
                sock.close()

    def sweep(self) -> None:
        """Cut every connection on which no pinned peer called within ``handshake_seconds``."""
        live = self.accepted()
        now = time.monotonic()
        self._forget_closed(live)
        for address, sock in live.items():
            first = self.unowned.setdefault(address, now) if address not in self.owner else now
            if address not in self.doomed and now - first > self.limits.handshake_seconds:
                self.doomed.add(address)
                self._cut(sock, "handshake_seconds")
            else:
                sock.close()

    def unpin(self, parties: set[str]) -> None:
        """Close the connections of peers no longer pinned: their TLS, done before, would hold."""
        gone = {a for a, p in self.owner.items() if p in parties}
        if not gone:
            return
        for address, sock in self.accepted().items():
            if address in gone:
                self.doomed.add(address)
                self._cut(sock, "unpinned")
            else:
                sock.close()

    def _forget_closed(self, live: Mapping[Address, socket.socket]) -> None:
        for table in (self.owner, self.unowned):
            for address in [a for a in table if a not in live]:
                del table[address]
        self.doomed &= set(live)

    def _cut(self, sock: socket.socket, reason: str) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.cut_count[reason] = self.cut_count.get(reason, 0) + 1


def _address(peer: str) -> Address | None:
    """``context.peer()`` ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000") as (host, port)."""
    scheme, _, rest = peer.partition(":")
    host, sep, port = rest.rpartition(":")
    if scheme not in ("ipv4", "ipv6") or not sep or not port.isdigit():
        return None
    return _host(host.strip("[]")), int(port)


def _host(host: str) -> str:
    """One spelling of an address: gRPC's dual-stack socket sees 127.0.0.1 as ::ffff:127.0.0.1."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


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
        self.peers = self.checked(peers)
        self._by_der = {peer.cert.der: peer.cert for peer in self.peers.values()}
        # The certificates the server's TLS takes a client's from; read at each handshake (_credentials).
        self._roots = b"".join(peer.cert.pem for peer in self.peers.values())
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
        self.connections: _Connections | None = None  # the server's connections, by peer, once started
        self._sweeper: asyncio.Task[None] | None = None

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
        try:
            port = server.add_secure_port(self.listen, self._credentials())
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
        self.connections = _Connections(self.limits, port)
        self._sweeper = asyncio.create_task(self._sweep(self.connections))

    def checked(self, peers: Mapping[str, PeerEndpoint]) -> dict[str, PeerEndpoint]:
        """``peers`` if each is a peer this channel can serve and send to (ConfigError naming the first that is not)."""
        for party, peer in peers.items():
            if peer.cert.party != party:
                raise ConfigError(f"peer {party!r}: its certificate names {peer.cert.party!r}")
            if party == self.identity.party:
                raise ConfigError(f"peer {party!r} is this agent's own party")
            ip_port(peer.endpoint, f"peer {party!r} endpoint")
        return dict(peers)

    async def set_peers(self, peers: Mapping[str, PeerEndpoint]) -> None:
        """Serve and send to these peers from now on (a pairing changed while the agent runs):
        the next TLS handshake takes the new certificates, a call from an unpinned one is
        refused, and a connection to or from a peer moved or dropped is closed.  The server's totals
        (``_bounds``, its concurrent calls) stay as they were at start."""
        checked = self.checked(peers)
        if not checked:
            raise ConfigError(f"agent of {self.party!r}: no peer left, so no client could be accepted")
        for party in list(self._clients):
            if checked.get(party) != self.peers.get(party):
                await self._drop(party, self._clients[party])
        if self.connections is not None:
            self.connections.unpin({party for party in self.peers if checked.get(party) != self.peers[party]})
        self.peers = checked
        self._by_der = {peer.cert.der: peer.cert for peer in checked.values()}
        # A peer's calls still being served stay counted (their ends decrement them), so a peer
        # unpinned and pinned again while its old calls run resumes from them, never below zero.
        self.in_flight = dict.fromkeys(checked, 0) | {p: n for p, n in self.in_flight.items() if n or p in checked}
        self._roots = b"".join(peer.cert.pem for peer in checked.values())

    def _credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS against the pinned certificates of the moment: gRPC asks at each handshake."""
        key_pair = [(self.identity.key_pem, self.identity.cert_pem)]
        taken = [self._roots]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            roots = self._roots
            if roots is taken[0]:
                return None  # unchanged
            taken[0] = roots
            return grpc.ssl_server_certificate_configuration(key_pair, root_certificates=roots)

        first = grpc.ssl_server_certificate_configuration(key_pair, root_certificates=self._roots)
        return grpc.dynamic_ssl_server_credentials(first, fetch, require_client_authentication=True)

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
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
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
        connections = self.connections
        if connections is not None and not connections.admit(peer.party, _address(context.peer())):
            # One peer's connections beyond its cap: refused, then cut, so it cannot hold another's slots.
            await self._over(context, peer.party, "connections", "connections", "this one is closed")
        if self.in_flight.get(peer.party, 0) >= self.limits.concurrent_calls:
            # A peer's own share of the server: one peer's flood leaves the others theirs.
            await self._over(context, peer.party, "concurrent_calls", "calls", "refused, not journaled")
        self.in_flight[peer.party] = self.in_flight.get(peer.party, 0) + 1
        try:
            return await self._serve(peer, handler, request, context)
        finally:
            self.in_flight[peer.party] -= 1  # kept by set_peers while it is above zero
            if not self.in_flight[peer.party] and peer.party not in self.peers:  # unpinned meanwhile
                del self.in_flight[peer.party]

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

    async def _over(self, context: grpc.aio.ServicerContext, party: str, limit: str, what: str, then: str) -> NoReturn:
        self._refuse(party, limit)
        await _abort(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"over this agent's limit: more than {getattr(self.limits, limit)} {what} at once from "
            f"{party!r} (limits.{limit}); {then}",
        )

    async def _sweep(self, connections: _Connections) -> None:
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            connections.sweep()

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
    (``limits.connections`` per pinned peer and as many again for connections no peer has called
    on yet: gRPC counts them before TLS says whose they are; each peer's own cap is
    :class:`_Connections`'), calls per connection, a connection idle or still in its TLS
    handshake (then closed)."""
    return [
        ("grpc.max_allowed_incoming_connections", limits.connections * (peers + 1)),
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
