"""PartitionProxy: forwards loopback TCP, cuts it on partition(), forwards again on heal()."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from dvp.testing.proxy import PartitionProxy

pytestmark = [pytest.mark.agent, pytest.mark.timeout(60)]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port():
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def roundtrip(port: int, data: bytes = b"ping") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(5):
        assert await reader.readexactly(len(data)) == data
    return reader, writer


async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """True if the connection is closed by the far end (EOF or reset) within 2 s; closes our end."""
    try:
        writer.write(b"x")
        await writer.drain()
        async with asyncio.timeout(2):
            return await reader.read(10) == b""
    except ConnectionError:
        return True
    finally:
        writer.close()


async def test_forwards_partitions_and_heals(echo_port):
    async with PartitionProxy(("127.0.0.1", echo_port)) as proxy:
        open_conns = [await roundtrip(proxy.port, b"a" * 200_000) for _ in range(3)]  # more than one buffer
        assert (proxy.connections, proxy.accepted) == (3, 3)
        proxy.partition()
        assert [await cut(*c) for c in open_conns] == [True] * 3  # all at once, no new data passes
        assert proxy.connections == 0
        assert await cut(*await asyncio.open_connection("127.0.0.1", proxy.port))  # new ones too
        proxy.heal()
        _, writer = await roundtrip(proxy.port)
        writer.close()
        assert proxy.accepted == 4 and proxy.dropped == 4


async def test_stall_holds_bytes_and_connections_until_heal(echo_port):
    async with PartitionProxy(("127.0.0.1", echo_port)) as proxy:
        reader, writer = await roundtrip(proxy.port)
        proxy.partition(stall=True)
        assert proxy.partitioned and proxy.mode == "stall"
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):  # nothing comes back, and nothing is closed
            async with asyncio.timeout(0.5):
                await reader.read(4)
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        late_writer.write(b"late")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await late_reader.read(4)
        assert proxy.accepted == 1
        proxy.heal()
        async with asyncio.timeout(5):
            assert await reader.readexactly(4) == b"held"
            assert await late_reader.readexactly(4) == b"late"
        assert (proxy.accepted, proxy.dropped) == (2, 0)
        for w in (writer, late_writer):
            w.close()


async def test_close_while_stalled_releases_everything(echo_port):
    proxy = PartitionProxy(("127.0.0.1", echo_port))
    await proxy.start()
    reader, writer = await roundtrip(proxy.port)
    proxy.partition(stall=True)
    held = await asyncio.open_connection("127.0.0.1", proxy.port)
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await proxy.aclose()
    assert time.monotonic() - started < 1
    assert await cut(reader, writer) and await cut(*held)


async def test_connection_cap_and_dead_target(echo_port):
    async with PartitionProxy(("127.0.0.1", echo_port), max_connections=2) as proxy:
        kept = [await roundtrip(proxy.port) for _ in range(2)]
        assert await cut(*await asyncio.open_connection("127.0.0.1", proxy.port))  # over the cap
        kept[0][1].close()
        await asyncio.sleep(0.2)
        kept[0] = await roundtrip(proxy.port)  # room again
        for _, writer in kept:
            writer.close()
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        dead = placeholder.getsockname()[1]
    async with PartitionProxy(("127.0.0.1", dead)) as proxy:
        assert await cut(*await asyncio.open_connection("127.0.0.1", proxy.port))


def test_sync_facade_in_a_thread():
    with socket.create_server(("127.0.0.1", 0)) as target:
        target.settimeout(5)
        with PartitionProxy(target.getsockname()[:2]) as proxy:
            thread = proxy._thread
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            server_side, _ = target.accept()
            client.sendall(b"hello")
            assert server_side.recv(5) == b"hello"
            proxy.partition()
            assert client.recv(5) == b""  # cut
            assert server_side.recv(5) == b""
            proxy.heal()
            assert proxy.partitioned is False
            client.close()
            server_side.close()
        assert thread is not None and not thread.is_alive()  # the proxy's thread joined


def test_as_a_process_with_signals():
    with socket.create_server(("127.0.0.1", 0)) as target:
        target.settimeout(5)
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvp.testing.proxy", str(target.getsockname()[1])], stdout=subprocess.PIPE, text=True
        )
        try:
            port = int(proc.stdout.readline())
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            server_side, _ = target.accept()
            client.sendall(b"one")
            assert server_side.recv(3) == b"one"
            os.kill(proc.pid, signal.SIGUSR1)
            assert client.recv(3) == b""
            client.close()
            server_side.close()
            os.kill(proc.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 5
            target.settimeout(0.5)
            while True:  # the signal is handled asynchronously: retry until healed, bounded
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                client.sendall(b"two")
                try:
                    server_side, _ = target.accept()
                    break
                except TimeoutError:
                    client.close()
                assert time.monotonic() < deadline, "proxy did not heal on SIGUSR2"
            assert server_side.recv(3) == b"two"
            client.close()
            server_side.close()
            proc.terminate()
            assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            proc.stdout.close()


def test_process_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "dvp.testing.proxy", "nope"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and done.stderr.startswith("usage: python -m dvp.testing.proxy TARGET_PORT [--stall]")
