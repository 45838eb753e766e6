"""Starting, health-checking and stopping local node processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import LedgerUnavailable


def spawn(cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a node in its own session so its whole process group can be stopped."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    """True while ``pid`` runs: a killed process nobody has reaped yet (a zombie) is dead."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # gone between the signal and the read
    except OSError:
        return False  # no /proc here: trust the signal
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")".
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def endpoint_answers(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    try:
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname or not port:
        return False
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop(pids: Sequence[int], *, grace: float = 10.0) -> None:
    """SIGTERM each process group we started, then SIGKILL what is left after ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, pid: int | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not alive(pid):
            raise LedgerUnavailable(f"{what}: process {pid} exited; see {log}" + _tail(log))
        time.sleep(0.05)
    raise LedgerUnavailable(f"{what}: not healthy after {timeout:.0f}s; see {log}" + _tail(log))


def _tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return ("\n  " + "\n  ".join(tail)) if tail else ""
