"""The agents' channel: identities, signed envelopes, and gRPC over mutual TLS on loopback.

Every refusal is provoked for real: an unpinned client at the TLS handshake, a message signed
by another key, a sender that is not the authenticated peer, a partition through a proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import socket
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dvp.errors import ConfigError, MessageRefused, PeerUnreachable
from dvp.party.limits import Limits
from dvp.party.messages import MAX_MESSAGE_BYTES, Kind, Message
from dvp.testing.proxy import PartitionProxy
from dvp_agent import grpc_channel
from dvp_agent.envelope import NotAuthentic, seal, unseal
from dvp_agent.grpc_channel import METHOD, GrpcChannel, PeerEndpoint
from dvp_agent.identity import Identity, create_identity, load_identity, load_peer_cert

pytestmark = [pytest.mark.agent, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def ids(tmp_path_factory) -> dict[str, Identity]:
    root = tmp_path_factory.mktemp("identities")
    return {party: create_identity(root / party, party) for party in ("seller", "buyer", "carol", "mallory")}


def msg(sender: str = "seller", recipient: str = "buyer", kind: Kind = Kind.LOCKED, **body) -> Message:
    return Message(
        kind=kind, swap_id="swap-1", sender=sender, recipient=recipient, seq=7, sent_at=1.8e9 + 0.25, body=body
    )


# identities


def test_identity_files_and_round_trip(tmp_path):
    made = create_identity(tmp_path / "s", "seller")
    key, crt = tmp_path / "s" / "agent.key", tmp_path / "s" / "agent.crt"
    assert (key.stat().st_mode & 0o777, crt.stat().st_mode & 0o777) == (0o600, 0o644)
    loaded = load_identity(key, crt)
    assert loaded.party == "seller" and loaded.cert_pem == made.cert_pem
    assert loaded.cert.verify(b"data", made.sign(b"data")) and not loaded.cert.verify(b"other", made.sign(b"data"))
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["seller"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert load_peer_cert(crt, "seller").der == made.cert.der
    assert made.cert.fingerprint == cert.fingerprint(hashes.SHA256()).hex(":").upper()


def test_create_refuses_to_overwrite_a_key(tmp_path):
    create_identity(tmp_path, "seller")
    before = (tmp_path / "agent.key").read_bytes()
    with pytest.raises(ConfigError, match="a key is already there"):
        create_identity(tmp_path, "seller")
    assert (tmp_path / "agent.key").read_bytes() == before


def test_key_readable_by_others_is_refused(tmp_path):
    create_identity(tmp_path, "seller")
    os.chmod(tmp_path / "agent.key", 0o644)
    with pytest.raises(ConfigError, match=r"agent\.key: mode 0644, must be 0600"):
        load_identity(tmp_path / "agent.key", tmp_path / "agent.crt")


def test_key_and_certificate_that_do_not_match_are_refused(tmp_path):
    create_identity(tmp_path / "a", "seller")
    create_identity(tmp_path / "b", "seller")
    with pytest.raises(ConfigError, match=r"b/agent\.crt: the certificate does not match the key"):
        load_identity(tmp_path / "a" / "agent.key", tmp_path / "b" / "agent.crt")


def test_missing_expired_and_non_p256_are_refused(tmp_path):
    ident = create_identity(tmp_path, "seller")
    with pytest.raises(ConfigError, match=r"nowhere\.crt: cannot read the certificate"):
        load_identity(tmp_path / "agent.key", tmp_path / "nowhere.crt")
    expired = tmp_path / "expired.crt"
    expired.write_bytes(_cert(ident.key, "seller", days=-1).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match=r"expired\.crt: the certificate expired on"):
        load_identity(tmp_path / "agent.key", expired)
    p384 = ec.generate_private_key(ec.SECP384R1())
    key = tmp_path / "p384.key"
    key.write_bytes(
        p384.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key, 0o600)
    with pytest.raises(ConfigError, match=r"p384\.key: the key is not an ECDSA P-256 key"):
        load_identity(key, tmp_path / "agent.crt")


def test_peer_certificate_must_name_the_peer(tmp_path):
    create_identity(tmp_path, "mallory")
    with pytest.raises(ConfigError, match="names 'mallory', not the peer 'buyer'"):
        load_peer_cert(tmp_path / "agent.crt", "buyer")


def _cert(key: ec.EllipticCurvePrivateKey, party: str, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


# envelopes


def test_envelope_round_trip_is_canonical_json(ids):
    data = seal(msg(leg="a"), ids["seller"])
    outer = json.loads(data)
    assert set(outer) == {"message", "signature"}
    assert outer["message"] == json.dumps(json.loads(outer["message"]), sort_keys=True, separators=(",", ":"))
    assert unseal(data, peer=ids["seller"].cert, me="buyer") == msg(leg="a")


def test_envelope_refusals(ids):
    seller = ids["seller"].cert
    with pytest.raises(NotAuthentic, match="signature of message from 'seller' does not verify with seller's"):
        unseal(seal(msg(), ids["mallory"]), peer=seller, me="buyer")
    with pytest.raises(NotAuthentic, match="names sender 'carol' but comes from 'seller'"):
        unseal(seal(msg(sender="carol"), ids["seller"]), peer=seller, me="buyer")
    with pytest.raises(MessageRefused, match="is for 'carol', not 'buyer'"):
        unseal(seal(msg(recipient="carol"), ids["seller"]), peer=seller, me="buyer")
    with pytest.raises(MessageRefused, match=f"exceeds {MAX_MESSAGE_BYTES}"):
        unseal(b" " * (MAX_MESSAGE_BYTES + 1), peer=seller, me="buyer")
    with pytest.raises(MessageRefused, match="is not JSON"):
        unseal(b"{not json", peer=seller, me="buyer")
    with pytest.raises(MessageRefused, match="'signature' must be strings"):
        unseal(b'{"message": "{}", "signature": 1}', peer=seller, me="buyer")
    # A body signed by the right key that is not a Message: the field is named.
    body = json.dumps({**msg().model_dump(mode="json"), "seq": 0}).encode()
    forged = json.dumps(
        {"message": body.decode(), "signature": __import__("base64").b64encode(ids["seller"].sign(body)).decode()}
    ).encode()
    with pytest.raises(MessageRefused, match="not a valid message: seq: Input should be greater than 0"):
        unseal(forged, peer=seller, me="buyer")
    # Too big to seal: refused before it reaches the wire.
    with pytest.raises(MessageRefused, match=f"exceeds {MAX_MESSAGE_BYTES}"):
        seal(msg(pad="x" * MAX_MESSAGE_BYTES), ids["seller"])


# gRPC over mutual TLS


class Recorder:
    """The buyer's core handler: records what it got, answers with an ACK (or as told)."""

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.fail: BaseException | None = None
        self.delay = 0.0

    async def __call__(self, message: Message) -> Message | None:
        self.got.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return None if message.kind is Kind.CLAIMED else message.reply(Kind.ACK, seq=9, seen=message.kind)


def pinned(ids, *parties: str, endpoint: str = "127.0.0.1:1") -> dict[str, PeerEndpoint]:
    return {p: PeerEndpoint(endpoint, ids[p].cert) for p in parties}


@pytest.fixture
async def buyer(ids):
    """The buyer's agent, serving the seller and carol."""
    handler = Recorder()
    channel = GrpcChannel(ids["buyer"], "127.0.0.1:0", pinned(ids, "seller", "carol"))
    await channel.start(handler)
    channel.handler = handler  # type: ignore[attr-defined]
    yield channel
    await channel.aclose()


@pytest.fixture
async def seller(ids, buyer):
    channel = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{buyer.port}"))
    yield channel
    await channel.aclose()


async def raw_call(channel: GrpcChannel, party: str, data: bytes) -> grpc.aio.AioRpcError:
    """Send bytes the channel would never seal itself, over its authenticated connection."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await channel._client(party).unary_unary(METHOD)(data, timeout=5)
    return refused.value


async def test_round_trip_with_and_without_reply(seller, buyer):
    reply = await seller.send(msg(), timeout=5)
    assert reply is not None and (reply.kind, reply.sender, reply.recipient, reply.body) == (
        Kind.ACK,
        "buyer",
        "seller",
        {"seen": "locked"},
    )
    assert buyer.handler.got == [msg()]
    assert await seller.send(msg(kind=Kind.CLAIMED), timeout=5) is None
    assert (seller.sent, seller.received, buyer.sent, buyer.received) == (
        {"buyer": 2},
        {"buyer": 1},
        {"seller": 1},
        {"seller": 2},
    )


async def test_concurrent_sends_share_one_connection(seller, buyer):
    replies = await asyncio.gather(*(seller.send(msg(n=n), timeout=10) for n in range(20)))
    assert sorted(r.body["seen"] for r in replies) == ["locked"] * 20
    assert sorted(m.body["n"] for m in buyer.handler.got) == list(range(20))
    assert list(seller._clients) == ["buyer"]


async def test_unpinned_client_is_refused_at_tls(ids, buyer, seller):
    # mallory's certificate is not among the buyer's pinned ones: the server ends the TLS
    # handshake, so no gRPC call exists to refuse and the client sees the peer as unreachable.
    mallory = GrpcChannel(ids["mallory"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{buyer.port}"))
    try:
        with pytest.raises(PeerUnreachable, match="agent of 'buyer' at 127.0.0.1:.* did not answer"):
            await mallory.send(msg(sender="mallory"), timeout=3)
    finally:
        await mallory.aclose()
    assert buyer.handler.got == [] and buyer.received == {}
    assert await seller.send(msg(), timeout=5) is not None  # the server is unharmed


async def test_server_not_holding_the_pinned_certificate_is_refused_at_tls(ids):
    # The seller pins the buyer's certificate; whoever listens there holds mallory's.
    impostor = GrpcChannel(ids["mallory"], "127.0.0.1:0", pinned(ids, "seller"))
    got = Recorder()
    await impostor.start(got)
    seller = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{impostor.port}"))
    try:
        with pytest.raises(PeerUnreachable, match="did not answer"):
            await seller.send(msg(), timeout=3)
    finally:
        await seller.aclose()
        await impostor.aclose()
    assert got.got == []


async def test_message_signed_by_another_key_is_refused(ids, seller, buyer, monkeypatch):
    monkeypatch.setattr(grpc_channel, "seal", lambda message, identity: seal(message, ids["mallory"]))
    with pytest.raises(
        MessageRefused,
        match="refused the locked message: signature of message from 'seller' "
        "does not verify with seller's certificate",
    ):
        await seller.send(msg(), timeout=5)
    assert buyer.handler.got == []
    assert buyer.refused == {("seller", "not_authentic"): 1}  # the metrics' refusal count


async def test_sender_that_is_not_the_authenticated_peer_is_refused(ids, buyer):
    # carol is pinned by the buyer and signs with her own key, but names the seller as sender.
    carol = GrpcChannel(ids["carol"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{buyer.port}"))
    try:
        refused = await raw_call(carol, "buyer", seal(msg(sender="seller"), ids["carol"]))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.details() == "message names sender 'seller' but comes from 'carol'"
        # carol's own messages pass: she is a pinned peer.
        assert await carol.send(msg(sender="carol"), timeout=5) is not None
    finally:
        await carol.aclose()
    assert [m.sender for m in buyer.handler.got] == ["carol"]


async def test_recipient_mismatch_is_refused(ids, seller, buyer):
    refused = await raw_call(seller, "buyer", seal(msg(recipient="carol"), ids["seller"]))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details() == "message from 'seller' is for 'carol', not 'buyer'"
    assert buyer.handler.got == []


async def test_a_signed_message_sent_at_nan_is_refused(ids, seller, buyer):
    # Python's json writes NaN; a signed ping "sent NaN seconds ago" passed every age bound.
    text = json.dumps(
        {**msg(kind=Kind.PING).model_dump(mode="json"), "sent_at": float("nan")}, sort_keys=True, separators=(",", ":")
    )
    assert '"sent_at":NaN' in text
    envelope = json.dumps({"message": text, "signature": base64.b64encode(ids["seller"].sign(text.encode())).decode()})
    refused = await raw_call(seller, "buyer", envelope.encode())
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sent_at" in refused.details() and "finite" in refused.details()
    assert buyer.handler.got == []


async def test_oversize_is_refused_on_both_sides(ids, seller, buyer):
    with pytest.raises(MessageRefused, match=f"exceeds {MAX_MESSAGE_BYTES}"):
        await seller.send(msg(pad="x" * MAX_MESSAGE_BYTES), timeout=5)
    # A client without our size bound: the server's gRPC refuses the bytes before any code reads them.
    credentials = grpc.ssl_channel_credentials(ids["buyer"].cert_pem, ids["seller"].key_pem, ids["seller"].cert_pem)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{buyer.port}", credentials, options=[("grpc.ssl_target_name_override", "buyer")]
    ) as raw:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw.unary_unary(METHOD)(b"x" * (MAX_MESSAGE_BYTES + 1), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert buyer.handler.got == []
    assert await seller.send(msg(), timeout=5) is not None


async def test_handler_refusal_and_failure_reach_the_sender(seller, buyer):
    buyer.handler.fail = MessageRefused("replayed: seq 7 is not above 9")
    with pytest.raises(MessageRefused, match="agent of 'buyer' refused the locked message: replayed: seq 7"):
        await seller.send(msg(), timeout=5)
    # Counted for the metrics as failing the checks; one over a limit is the agent's to count.
    buyer.handler.fail = MessageRefused(
        "over this agent's limit: more than 600 messages a minute from 'seller' "
        "(limits.messages_per_minute); refused, not journaled"
    )
    with pytest.raises(MessageRefused, match="limits.messages_per_minute"):
        await seller.send(msg(), timeout=5)
    assert buyer.refused == {("seller", "checks"): 1}
    # The handler's own failure is an answer (a refusal), not "unreachable, try again".
    buyer.handler.fail = RuntimeError("bug")
    with pytest.raises(MessageRefused, match="failed on the message: RuntimeError: bug"):
        await seller.send(msg(), timeout=5)
    buyer.handler.fail = None
    assert await seller.send(msg(), timeout=5) is not None  # the server survived both


async def test_reply_that_fails_verification_is_refused(ids, seller, buyer, monkeypatch):
    original = grpc_channel.seal
    # The buyer's reply (sealed on the server side) comes signed by mallory.
    monkeypatch.setattr(
        grpc_channel, "seal", lambda m, identity: original(m, ids["mallory"] if m.sender == "buyer" else identity)
    )
    with pytest.raises(NotAuthentic, match="signature of message from 'buyer' does not verify"):
        await seller.send(msg(), timeout=5)


async def test_peer_down_is_unreachable_within_the_timeout(ids, seller, buyer):
    await buyer.aclose()
    started = time.monotonic()
    with pytest.raises(PeerUnreachable, match=rf"agent of 'buyer' at 127.0.0.1:{buyer.port} did not answer"):
        await seller.send(msg(), timeout=2)
    assert time.monotonic() - started < 3


async def test_peer_that_never_answers_is_unreachable_after_the_timeout(ids, seller, buyer):
    buyer.handler.delay = 10
    started = time.monotonic()
    with pytest.raises(PeerUnreachable, match="did not answer: Deadline Exceeded"):
        await seller.send(msg(), timeout=1)
    assert 1 <= time.monotonic() - started < 2


async def test_listener_that_accepts_and_stays_silent_is_unreachable(ids):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts TCP, never speaks TLS
        port = silent.getsockname()[1]
        seller = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{port}"))
        started = time.monotonic()
        try:
            with pytest.raises(PeerUnreachable, match="did not answer: Deadline Exceeded"):
                await seller.send(msg(), timeout=1)
        finally:
            await seller.aclose()
        assert 1 <= time.monotonic() - started < 2


async def test_through_a_proxy_partition_and_heal(ids, buyer):
    async with PartitionProxy(("127.0.0.1", buyer.port)) as proxy:
        seller = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{proxy.port}"))
        try:
            assert await seller.send(msg(), timeout=5) is not None  # TLS end to end through the proxy
            assert proxy.connections == 1
            proxy.partition()
            for _ in range(2):  # the open connection is cut, and a new one is too
                with pytest.raises(PeerUnreachable, match=f"at 127.0.0.1:{proxy.port} did not answer"):
                    await seller.send(msg(), timeout=2)
            proxy.heal()
            assert await seller.send(msg(), timeout=5) is not None
        finally:
            await seller.aclose()
    assert len(buyer.handler.got) == 2


async def test_through_a_stalled_proxy_the_deadline_tells(ids, buyer):
    # A partition that closes nothing: the send finds out only by its deadline.
    async with PartitionProxy(("127.0.0.1", buyer.port)) as proxy:
        seller = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=f"127.0.0.1:{proxy.port}"))
        try:
            assert await seller.send(msg(), timeout=5) is not None
            proxy.partition(stall=True)
            started = time.monotonic()
            with pytest.raises(PeerUnreachable, match="did not answer: Deadline Exceeded"):
                await seller.send(msg(), timeout=1)
            assert 1 <= time.monotonic() - started < 2
            proxy.heal()
            assert await seller.send(msg(), timeout=5) is not None
        finally:
            await seller.aclose()


# One pinned peer's connections cannot take another's (issue 22, item 4).
CAPPED = Limits(connections=3, handshake_seconds=2)
HOGS = 12  # carol's connections of each kind: four times her cap
# How long the honest peer may wait for its first answer while carol holds all she can: the
# sweep cuts a connection no peer called on within handshake_seconds (within a second more),
# and a refused client tries again within a second (_CLIENT_OPTIONS).
HONEST_BOUND = CAPPED.handshake_seconds + 3.0


async def test_one_peer_cannot_take_another_peers_connections(ids):
    """carol, a pinned peer, opens four times her cap of connections that call (each its own,
    not shared) and as many more that finish TLS and HTTP/2 and stay silent: her calls beyond the cap are
    refused with the limit's name and their connections closed, the silent ones are closed
    after handshake_seconds, and the seller, pinned too, gets its answer within HONEST_BOUND."""
    buyer = GrpcChannel(ids["buyer"], "127.0.0.1:0", pinned(ids, "seller", "carol"), CAPPED)
    handler = Recorder()
    await buyer.start(handler)
    assert buyer.port is not None and buyer.connections is not None
    target = f"127.0.0.1:{buyer.port}"
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ids["buyer"].cert.pem,
        private_key=ids["carol"].key_pem,
        certificate_chain=ids["carol"].cert_pem,
    )
    # A subchannel pool of its own: each of these is its own TCP connection.
    options = [("grpc.ssl_target_name_override", "buyer"), ("grpc.use_local_subchannel_pool", 1)]
    hogs = [grpc.aio.secure_channel(target, credentials, options=options) for _ in range(2 * HOGS)]
    seller = GrpcChannel(ids["seller"], "127.0.0.1:0", pinned(ids, "buyer", endpoint=target))
    try:

        async def hog(channel: grpc.aio.Channel, n: int) -> str:
            data = seal(msg(sender="carol", n=n), ids["carol"])
            try:
                await channel.unary_unary(METHOD)(data, timeout=5)
                return "answered"
            except grpc.aio.AioRpcError as exc:
                return exc.details() or exc.code().name

        answers = await asyncio.gather(*(hog(c, n) for n, c in enumerate(hogs[:HOGS])))
        await asyncio.sleep(0.5)  # the ones over her cap are closed: she fills their places

        async def connect(channel: grpc.aio.Channel) -> bool:  # TLS and HTTP/2 done, no call
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await channel.channel_ready()
                    return True
            return False  # the server's connections are full: not let in

        silent = sum(await asyncio.gather(*(connect(c) for c in hogs[HOGS:])))
        started, reply, tries = time.monotonic(), None, 0
        while reply is None and time.monotonic() - started < HONEST_BOUND:  # as an agent does: again on failure
            tries += 1
            try:
                reply = await seller.send(msg(), timeout=1)
            except PeerUnreachable:
                await asyncio.sleep(0.2)
        took = time.monotonic() - started
        for _ in range(50):  # the sweep's next round (bounded: 5 s)
            if buyer.connections.cut_count.get("handshake_seconds", 0) >= silent:
                break
            await asyncio.sleep(0.1)
        print(
            f"carol: {answers.count('answered')} answered, {silent} silent; seller answered in {took:.2f}s "
            f"({tries} tries); cut {buyer.connections.cut_count}; refused {buyer.refused}"
        )
        assert reply is not None and reply.kind is Kind.ACK and took < HONEST_BOUND
        assert answers.count("answered") == CAPPED.connections, answers
        # The rest: refused with the limit's name (then closed), or not let in at all (the server's
        # connections are full: at most CAPPED.connections x 3 for its two peers).
        over = [a for a in answers if "more than 3 connections at once from 'carol' (limits.connections)" in a]
        assert len(over) >= HOGS - 2 * CAPPED.connections, answers
        assert all(a in over or "UNAVAILABLE" in a for a in answers if a != "answered"), answers
        assert buyer.refused[("carol", "connections")] == len(over) == buyer.connections.cut_count["connections"]
        # (More if one she was not let in with tried again meanwhile.)
        assert silent and buyer.connections.cut_count["handshake_seconds"] >= silent
        # What is left open: carol's capped connections and the seller's one (and maybe one in
        # its first handshake_seconds, of those that try again).
        live = buyer.connections.accepted()
        for sock in live.values():
            sock.close()
        owners = [buyer.connections.owner.get(a) for a in live]
        assert (owners.count("carol"), owners.count("seller")) == (CAPPED.connections, 1), owners
    finally:
        for channel in hogs:
            await channel.close()
        await seller.aclose()
        await buyer.aclose()


async def test_port_in_use_and_bad_addresses_are_config_errors(ids, buyer):
    taken = GrpcChannel(ids["buyer"], f"127.0.0.1:{buyer.port}", pinned(ids, "seller"))
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{buyer.port}: the port is in use"):
        await taken.start(Recorder())
    with pytest.raises(ConfigError, match="listen: 'localhost:7101' is not IP:PORT"):
        GrpcChannel(ids["buyer"], "localhost:7101", {})
    with pytest.raises(ConfigError, match="peer 'seller' endpoint: '127.0.0.1' is not IP:PORT"):
        GrpcChannel(ids["buyer"], "127.0.0.1:0", {"seller": PeerEndpoint("127.0.0.1", ids["seller"].cert)})
    with pytest.raises(ConfigError, match="peer 'seller': its certificate names 'carol'"):
        GrpcChannel(ids["buyer"], "127.0.0.1:0", {"seller": PeerEndpoint("127.0.0.1:1", ids["carol"].cert)})


def test_key_file_is_never_world_readable_while_written(tmp_path, monkeypatch):
    # The key file exists with mode 0600 before a byte of the key is in it.
    modes: list[int] = []
    real_fdopen = os.fdopen

    def spy(fd, *args, **kwargs):
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", spy)
    create_identity(Path(tmp_path), "seller")
    assert modes == [0o600]


async def test_a_peer_pinned_again_while_its_old_call_runs_keeps_its_count(ids, seller, buyer):
    """The seller is unpinned and pinned again while its call is being served: the call stays
    counted (1, not a fresh 0), and its end brings the count back to 0, never below."""
    buyer.handler.delay = 1.0
    call = asyncio.create_task(seller.send(msg(), timeout=5))
    for _ in range(100):
        if buyer.in_flight.get("seller"):
            break
        await asyncio.sleep(0.02)
    assert buyer.in_flight["seller"] == 1
    both = dict(buyer.peers)
    await buyer.set_peers({"carol": both["carol"]})  # unpinned: its connection is cut
    await buyer.set_peers(both)  # and pinned again, at once
    assert buyer.in_flight["seller"] == 1
    with contextlib.suppress(PeerUnreachable, MessageRefused):
        await call
    await asyncio.sleep(1.2)  # past the handler's delay: the old call ended (served, or cut with its connection)
    assert buyer.in_flight == {"seller": 0, "carol": 0}
