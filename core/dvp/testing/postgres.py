"""A real PostgreSQL server for tests: ``initdb`` into a fresh directory, ``postgres`` on
127.0.0.1 at a free port (and a Unix socket in that directory), stopped by its pid.

The server binaries are the machine's (Debian's ``postgresql`` package, installed by
``make setup``: mk/postgres.mk), found in ``$DVP_PG_BIN`` or ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system user.
Password authentication (scram-sha-256) on TCP, so wrong credentials can be tested.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

USER, PASSWORD = "dvp", "dvp-test-password"


def pg_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``, or None when PostgreSQL is not installed."""
    given = os.environ.get("DVP_PG_BIN")
    candidates = [Path(given)] if given else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "postgres").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="dvp-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        self.log = self.dir / "server.log"

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, user=self.user)

    def start(self) -> PostgresServer:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
        )
        pwfile.unlink()
        return self._launch()

    def _launch(self) -> PostgresServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.dir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                if (self.dir / f".s.PGSQL.{self.port}").exists():
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not listen on 127.0.0.1:{self.port} within 60 s")

    def restart(self) -> None:
        """Stop the server (fast shutdown: every session is ended) and start it again on the
        same data and port, as an operator's restart would."""
        self._shutdown()
        self._launch()

    def url(self, dbname: str = "postgres", *, user: str = USER, password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = "j_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")  # a generated identifier
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown by the server's pid (SIGINT), then SIGKILL if it lingers; the directory goes."""
        self._shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _shutdown(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = pg_bin()
    if bindir is None:
        raise FileNotFoundError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
            "`make setup` installs Debian's postgresql package, or set DVP_PG_BIN)"
        )
    server = PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()
