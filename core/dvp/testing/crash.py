"""The crash drills' test seam: ``python -m dvp.testing.crash ARGS...`` is the ``dvp``
command line, killed with SIGKILL right after the journal's N-th committed write, N from
``DVP_CRASH_AFTER_WRITES`` (unset: never), or at the N-th pass of a send boundary
(:class:`dvp.sendlog.Boundary`), ``DVP_CRASH_AT=BOUNDARY:N`` (``journaled:2``: the second
step's signed bytes committed, nothing of it broadcast).  Production code has no such switch."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from .. import sendlog
from ..env import env_int
from ..errors import ConfigError
from ..journal import Journal
from ..sendlog import Boundary

VARIABLE = "DVP_CRASH_AFTER_WRITES"
# Kill right after the journal records a row of this step (e.g. "extract secret"): a party
# that vanishes at a chosen point of its protocol, whatever order its other writes took.
STEP_VARIABLE = "DVP_CRASH_AFTER_STEP"
BOUNDARY_VARIABLE = "DVP_CRASH_AT"


def install(after: int) -> None:
    """Kill this process right after the journal's ``after``-th committed write."""

    def maybe_die(writes: int) -> None:
        if writes >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.after_commit = maybe_die


def install_after_step(step: str) -> None:
    """Kill this process right after the journal records a row of ``step`` (a blocking write,
    or an awaited one: the runs' steps journal through ``arecord``)."""
    record, arecord = Journal.record, Journal.arecord

    def record_then_die(self: Journal, swap_id: str, name: str, phase: str, **kw: Any) -> None:
        record(self, swap_id, name, phase, **kw)
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    async def arecord_then_die(self: Journal, swap_id: str, name: str, phase: str, **kw: Any) -> None:
        await arecord(self, swap_id, name, phase, **kw)
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.record = record_then_die  # type: ignore[method-assign,assignment]
    Journal.arecord = arecord_then_die  # type: ignore[method-assign,assignment]


def install_at_boundary(value: str) -> None:
    """Kill this process the N-th time a send path passes a boundary (``BOUNDARY:N``)."""
    name, _, count = value.partition(":")
    try:
        boundary, after = Boundary(name), int(count or "1")
    except ValueError:
        raise ConfigError(
            f"{BOUNDARY_VARIABLE}: {value!r} is not BOUNDARY:N (BOUNDARY one of {', '.join(b.value for b in Boundary)})"
        ) from None
    seen = 0

    def maybe_die(reached: Boundary) -> None:
        nonlocal seen
        if reached is boundary:
            seen += 1
            if seen >= after:
                os.kill(os.getpid(), signal.SIGKILL)

    sendlog.at_boundary = maybe_die


def main() -> None:
    from ..cli import main as cli
    from ..cli_common import error_exit

    try:
        after = env_int(VARIABLE, minimum=1)
        if os.environ.get(BOUNDARY_VARIABLE):
            install_at_boundary(os.environ[BOUNDARY_VARIABLE])
    except ConfigError as exc:
        error_exit(str(exc), exc.exit_code)
    if after is not None:
        install(after)
    step = os.environ.get(STEP_VARIABLE)
    if step:
        install_after_step(step)
    cli(args=sys.argv[1:], prog_name="dvp")


if __name__ == "__main__":
    main()
