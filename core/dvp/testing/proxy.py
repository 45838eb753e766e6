"""A TCP forwarder on loopback that a test can cut: a network partition between two agents.

``PartitionProxy(("127.0.0.1", port))`` listens on a free loopback port and forwards every
connection to the target.  :meth:`~PartitionProxy.partition` drops every forwarded connection at
once and closes each new one as soon as it is accepted, until :meth:`~PartitionProxy.heal`.  It
forwards bytes only (TLS stays end to end between the agents).

From synchronous code it runs its own event loop in a thread::

    with PartitionProxy(("127.0.0.1", 7102)) as proxy:
        ... proxy.port ...; proxy.partition(); proxy.heal()

From asyncio, in the caller's loop: ``async with PartitionProxy(target) as proxy: ...``.
As a process (for tests that drive agents as processes): ``python -m dvp.testing.proxy PORT``
prints its port, partitions on SIGUSR1, heals on SIGUSR2 and stops on SIGTERM or SIGINT.
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
        self.partitioned = False
        self.accepted = 0  # connections forwarded
        self.dropped = 0  # connections closed by a partition, refused while partitioned, or over the cap
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # asyncio: in the caller's loop

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                  limit=_CHUNK, backlog=self.max_connections)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._cut()
        if server is not None:
            await asyncio.wait_for(server.wait_closed(), _THREAD_TIMEOUT)
        if self._tasks:  # the forwarding tasks end once their connections are cut
            await asyncio.wait(set(self._tasks), timeout=_THREAD_TIMEOUT)
        self._loop = None  # partition() and heal() now only set the flag

    async def __aenter__(self) -> PartitionProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # control: from the proxy's loop or from any other thread

    def partition(self) -> None:
        """Drop every forwarded connection now; close new ones on accept until :meth:`heal`."""
        self._on_loop(self._partition)

    def heal(self) -> None:
        self._on_loop(self._heal)

    @property
    def connections(self) -> int:
        return len(self._links)

    # synchronous: its own loop in a thread

    def __enter__(self) -> PartitionProxy:
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                started.set_result(loop.run_until_complete(self.start()))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
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
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        done.result(timeout=_THREAD_TIMEOUT)

    def _partition(self) -> None:
        self.partitioned = True
        self._cut()

    def _heal(self) -> None:
        self.partitioned = False

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
        if self.partitioned or len(self._links) >= self.max_connections:
            self.dropped += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target, limit=_CHUNK), _CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            writer.transport.abort()  # the target is down: the client sees its connection fail
            return
        if self.partitioned:  # partitioned while connecting
            self.dropped += 1
            writer.transport.abort()
            up_writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        self.accepted += 1
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links.discard(link)
            link.abort()


class _Link:
    """One forwarded connection: the client's side and the target's."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter):
        self.writers = (client, upstream)

    def abort(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()  # backpressure: at most the transport's buffer per direction
        if writer.can_write_eof():
            writer.write_eof()  # a half-close passes through; the other direction goes on
    except (ConnectionError, OSError):
        # One side reset: reset the other too (which also ends the opposite pipe), as a
        # connection through a real network would end.
        writer.transport.abort()


async def _serve(target_port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with PartitionProxy(("127.0.0.1", target_port)) as proxy:
        loop.add_signal_handler(signal.SIGUSR1, proxy.partition)
        loop.add_signal_handler(signal.SIGUSR2, proxy.heal)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(proxy.port, flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or not 0 < int(argv[0]) < 65536:
        print("usage: python -m dvp.testing.proxy TARGET_PORT (forwards 127.0.0.1:<free port> to it)",
              file=sys.stderr)
        return 2
    asyncio.run(_serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
