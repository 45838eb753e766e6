"""A TCP forwarder on loopback that a test can cut: a network partition between two agents.

``PartitionProxy(("127.0.0.1", port))`` listens on a free loopback port and forwards every
connection to the target.  :meth:`~PartitionProxy.partition` drops every forwarded connection at
once and closes each new one as soon as it is accepted, until :meth:`~PartitionProxy.heal`.
``partition(stall=True)`` is the other kind of partition, a link that loses every packet: no
byte passes either way and new connections hang, yet nothing is closed, so the agents find out
only by their deadlines; :meth:`~PartitionProxy.heal` lets the held bytes through.  It forwards
bytes only (TLS stays end to end between the agents).

From synchronous code it runs its own event loop in a thread::

    with PartitionProxy(("127.0.0.1", 7102)) as proxy:
        ... proxy.port ...; proxy.partition(); proxy.heal()

From asyncio, in the caller's loop: ``async with PartitionProxy(target) as proxy: ...``.
As a process (for tests that drive agents as processes): ``python -m dvp.testing.proxy PORT``
prints its port, partitions on SIGUSR1 (stalls with ``--stall``), heals on SIGUSR2 and stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType

_CHUNK = 64 * 1024
_CONNECT_TIMEOUT = 5.0
_THREAD_TIMEOUT = 5.0


class PartitionProxy:
    def __init__(self, target: tuple[str, int], *, max_connections: int = 64, port: int = 0):
        self.target = target
        self.max_connections = max_connections
        self.port = port  # the bound port once started
        self.mode: str | None = None  # "cut" or "stall" while partitioned
        self.accepted = 0  # connections forwarded
        self.dropped = 0  # connections closed by a partition, refused while partitioned, or over the cap
        self._flowing = asyncio.Event()  # cleared while stalled
        self._flowing.set()
        self._closing = False
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # asyncio: in the caller's loop

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._flowing = asyncio.Event()  # an event belongs to one loop: this one
        if self.mode != "stall":
            self._flowing.set()
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, limit=_CHUNK, backlog=self.max_connections
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._closing = True
        self._flowing.set()  # held connections wake up, see the proxy closing and go
        self._cut()
        if server is not None:
            async with asyncio.timeout(_THREAD_TIMEOUT):
                await server.wait_closed()
        if self._tasks:  # the forwarding tasks end once their connections are cut
            await asyncio.wait(set(self._tasks), timeout=_THREAD_TIMEOUT)
        self._loop = None  # partition() and heal() now only set the flag

    async def __aenter__(self) -> PartitionProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # control: from the proxy's loop or from any other thread

    def partition(self, *, stall: bool = False) -> None:
        """Drop every forwarded connection now and close new ones on accept, until :meth:`heal`;
        with ``stall``, hold every byte and every new connection instead, closing nothing."""
        self._on_loop(self._stall if stall else self._partition)

    def heal(self) -> None:
        self._on_loop(self._heal)

    @property
    def partitioned(self) -> bool:
        return self.mode is not None

    @property
    def connections(self) -> int:
        """Connections forwarded now (a stalled one counts)."""
        return len(self._links)

    # synchronous: its own loop in a thread

    def __enter__(self) -> PartitionProxy:
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                started.set_result(loop.run_until_complete(self.start()))
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.aclose())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"partition-proxy-{self.target[1]}", daemon=True)
        self._thread.start()
        started.result(timeout=_THREAD_TIMEOUT)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
        self._thread = None

    # inside the loop

    def _on_loop(self, action: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            action()  # not started: only the flag to set
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            try:
                action()
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        done.result(timeout=_THREAD_TIMEOUT)

    def _partition(self) -> None:
        self.mode = "cut"
        self._flowing.set()  # connections held by a stall wake up and are closed
        self._cut()

    def _stall(self) -> None:
        self.mode = "stall"
        self._flowing.clear()

    def _heal(self) -> None:
        self.mode = None
        self._flowing.set()

    def _cut(self) -> None:
        for link in list(self._links):
            link.abort()
            self.dropped += 1
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.mode == "cut" or len(self._tasks) > self.max_connections:
                self.dropped += 1
                return
            await self._flowing.wait()  # stalled: the client's connection hangs, as over a dead link
            if self.mode == "cut" or self._closing:
                self.dropped += 1
                return
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    up_reader, up_writer = await asyncio.open_connection(*self.target, limit=_CHUNK)
            except (OSError, TimeoutError):
                return  # the target is down: the client sees its connection fail
            upstream = up_writer
            if self.mode == "cut" or self._closing:  # partitioned while connecting
                self.dropped += 1
                return
            link = _Link(writer, up_writer)
            self._links.add(link)
            self.accepted += 1
            try:
                await asyncio.gather(_pipe(reader, up_writer, self._flowing), _pipe(up_reader, writer, self._flowing))
            finally:
                self._links.discard(link)
        finally:
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()


class _Link:
    """One forwarded connection: the client's side and the target's."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.writers = (client, upstream)

    def abort(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            await flowing.wait()  # stalled: hold this chunk; the sender's TCP buffers fill and it waits
            writer.write(chunk)
            await writer.drain()  # backpressure: at most the transport's buffer per direction
        if writer.can_write_eof():
            writer.write_eof()  # a half-close passes through; the other direction goes on
    except (ConnectionError, OSError):
        # One side reset: reset the other too (which also ends the opposite pipe), as a
        # connection through a real network would end.
        writer.transport.abort()


async def _serve(target_port: int, stall: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with PartitionProxy(("127.0.0.1", target_port)) as proxy:
        loop.add_signal_handler(signal.SIGUSR1, lambda: proxy.partition(stall=stall))
        loop.add_signal_handler(signal.SIGUSR2, proxy.heal)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(proxy.port, flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    stall = "--stall" in argv
    args = [a for a in argv if a != "--stall"]
    if len(args) != 1 or not args[0].isdigit() or not 0 < int(args[0]) < 65536:
        print(
            "usage: python -m dvp.testing.proxy TARGET_PORT [--stall] (forwards 127.0.0.1:<free port> to it; "
            "SIGUSR1 partitions, SIGUSR2 heals)",
            file=sys.stderr,
        )
        return 2
    asyncio.run(_serve(int(args[0]), stall))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
