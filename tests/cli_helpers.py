"""Running the `dvp` command line as a user would, for the suites that check its output."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dvp.journal import Journal

T = TypeVar("T")

DVP = str(Path(sys.executable).parent / "dvp")


def dvp(args: list[str], env: dict, crash_after: int | None = None, crash_at: str | None = None
        ) -> subprocess.CompletedProcess:  # fmt: skip
    """`dvp ARGS`; with ``crash_after``, killed right after that journal write, with
    ``crash_at`` (``BOUNDARY:N``) at the N-th pass of that send boundary (the test seams)."""
    if crash_after is None and crash_at is None:
        return subprocess.run([DVP, *args], env=env, capture_output=True, text=True, timeout=300)
    env = {
        **env,
        **({"DVP_CRASH_AFTER_WRITES": str(crash_after)} if crash_after is not None else {}),
        **({"DVP_CRASH_AT": crash_at} if crash_at is not None else {}),
    }
    return subprocess.run([sys.executable, "-m", "dvp.testing.crash", *args], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0], lines[0]


def wait_for_journal(
    journal_path: Path, found: Callable[[Journal], T | None], what: str, *, timeout: float, poll: float = 0.1
) -> T:
    """Poll the journal another `dvp` process writes until ``found`` returns a value;
    fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal_path.exists():
            journal = Journal(journal_path)
            try:
                value = found(journal)
                if value is not None:
                    return value
            finally:
                journal.close()
        time.sleep(poll)
    raise AssertionError(what)
