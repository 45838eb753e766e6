"""What the `dvp` commands share with the commands other modules and packages add to it
(`dvp bench` and `dvp report` in :mod:`dvp.bench.cli`, `dvp agent` in ``dvp_agent``): the
consoles, the one-line error exit, the parameter types and the options several commands take.
It imports no command, so every command module imports it and none imports another."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from rich.console import Console

from . import errors

console = Console(stderr=True)
out = Console()

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1  # an exception dvp does not know: a bug, named in one line (DVP_TRACEBACK=1 shows it)


def one_line(text: str) -> str:
    """The first line of ``text`` with control characters escaped: messages quote user input."""
    first = (text.strip().splitlines() or [""])[0]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)


P = ParamSpec("P")
R = TypeVar("R")


def error_exit(message: str, code: int) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def fail_cleanly(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except errors.DvpError as exc:
            error_exit(str(exc) or type(exc).__name__, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; unfinished swaps continue with `dvp resume`", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if os.environ.get("DVP_TRACEBACK") == "1":
                raise
            error_exit(f"internal error: {type(exc).__name__}: {exc} (DVP_TRACEBACK=1 shows where)", EXIT_INTERNAL)

    return wrapper


class FiniteSeconds(click.ParamType):  # type: ignore[type-arg]  # generic only in the stubs
    """A number of seconds in [low, high]: nan and inf are refused (click.FloatRange lets nan through)."""

    name = "seconds"

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            self.fail(f"{value!r} is not between {self.low:g} and {self.high:g} seconds", param, ctx)
        return number


BLOCK_TIME = FiniteSeconds(0, 600)


FC = TypeVar("FC", bound=Callable[..., Any])


def shown_option(name: str, type: Any, default: Any, help: str | None = None) -> Callable[[FC], FC]:
    """An option whose default ``--help`` shows."""
    return click.option(name, type=type, default=default, show_default=True, help=help)


def block_time_option(help: str = "Block interval in seconds.") -> Callable[[FC], FC]:
    return shown_option("--block-time", BLOCK_TIME, 1.0, help)


def concurrency_option(default: int, help: str) -> Callable[[FC], FC]:
    return shown_option("--concurrency", click.IntRange(1, 1_000), default, help)


def out_dir_option(help: str) -> Callable[[FC], FC]:
    return click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help=help)


def progress_printer(label: str = "") -> Callable[[str, str], None]:
    def show(swap_id: str, message: str) -> None:
        console.print(f"[dim]{label}{swap_id}[/] {message}")

    return show
