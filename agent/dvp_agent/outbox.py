"""How `dvp agent propose` and `dvp agent quote` hand a request to the party's running agent:
a file in the agent's own folder (0700, its owner's), never the network.  The running agent
holds ``agent.lock`` (an OS lock the kernel frees when it dies), takes each ``outbox/*.json``
(a proposal's spec, a request for a quote, or a proposal on a quote it holds), does it, and
answers in ``*.done`` with the swap id or the quote, or the one-line reason it could not."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dvp.errors import ConfigError
from dvp.models import SwapSpec

LOCK_FILE = "agent.lock"
OUTBOX = "outbox"


@contextlib.contextmanager
def running(folder: Path) -> Iterator[None]:
    """Mark this process as the agent running from ``folder``; ConfigError if one already is."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{folder}: an agent is already running from this folder") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def is_running(folder: Path) -> bool:
    path = folder / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


PROPOSE, QUOTE, PROPOSE_QUOTE = "propose", "quote", "propose_quote"


def post(folder: Path, spec: SwapSpec) -> Path:
    """Leave ``spec`` for the running agent to propose; the path its answer will have."""
    return post_request(folder, {"request": PROPOSE, "spec": spec.model_dump(mode="json")})


def post_request(folder: Path, request: dict[str, Any]) -> Path:
    """Leave ``request`` (``request``: PROPOSE, QUOTE or PROPOSE_QUOTE, and its fields) for the
    running agent; the path its answer will have."""
    box = folder / OUTBOX
    box.mkdir(mode=0o700, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = box / f"{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(request))
    tmp.replace(box / f"{name}.json")  # whole or not at all for the agent's scan
    return box / f"{name}.done"


def take(folder: Path) -> list[tuple[Path, str]]:
    """The requests waiting in the outbox (path, JSON text), oldest first."""
    box = folder / OUTBOX
    if not box.is_dir():
        return []
    found = sorted(box.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return [(p, p.read_text()) for p in found[:100]]


def answer(request: Path, error: str | None = None, code: int = 0, **result: Any) -> None:
    """Answer ``request``: what it gave (``result``: ``swap_id``, ``quote_id`` ...), or ``error``
    and the exit code the command ends with."""
    done = request.with_suffix(".done")
    tmp = request.with_suffix(".answer")
    tmp.write_text(json.dumps({**result, "error": error, "code": code}))
    tmp.replace(done)
    request.unlink(missing_ok=True)


def await_answer(done: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            data: dict[str, Any] = json.loads(done.read_text())
            done.unlink(missing_ok=True)
            return data
        time.sleep(0.1)
    raise ConfigError(f"{done.parent}: the running agent did not take the request within {timeout:.0f}s")
