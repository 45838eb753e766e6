"""Running the `dvp` command line as a user would, for the suites that check its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DVP = str(Path(sys.executable).parent / "dvp")


def dvp(args: list[str], env: dict, crash_after: int | None = None) -> subprocess.CompletedProcess:
    """`dvp ARGS`; with ``crash_after``, killed right after that journal write (the test seam)."""
    if crash_after is None:
        return subprocess.run([DVP, *args], env=env, capture_output=True, text=True, timeout=300)
    env = {**env, "DVP_CRASH_AFTER_WRITES": str(crash_after)}
    return subprocess.run([sys.executable, "-m", "dvp.testing.crash", *args], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0], lines[0]
