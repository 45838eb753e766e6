"""The crash drills' test seam: ``python -m dvp.testing.crash ARGS...`` is the ``dvp``
command line, killed with SIGKILL right after the journal's N-th committed write, N from
``DVP_CRASH_AFTER_WRITES`` (unset: never).  Production code has no such switch."""

from __future__ import annotations

import os
import signal
import sys

from ..env import env_int
from ..errors import ConfigError
from ..journal import Journal

VARIABLE = "DVP_CRASH_AFTER_WRITES"


def install(after: int) -> None:
    """Kill this process right after the journal's ``after``-th committed write."""

    def maybe_die(writes: int) -> None:
        if writes >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.after_commit = maybe_die


def main() -> None:
    from ..cli import error_exit, main as cli

    try:
        after = env_int(VARIABLE, minimum=1)
    except ConfigError as exc:
        error_exit(str(exc), exc.exit_code)
    if after is not None:
        install(after)
    cli(args=sys.argv[1:], prog_name="dvp")


if __name__ == "__main__":
    main()
