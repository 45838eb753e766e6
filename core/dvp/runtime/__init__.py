"""Runtimes start and stop the local testnets; every runtime writes the same
``state.json`` into its run directory, so adapters and the orchestrator cannot tell
which one started a ledger."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ..errors import ConfigError
from .base import Runtime
from .run_dir import STATE, read_state

RUNTIMES = {
    "process": "dvp.runtime.local:LocalRuntime",  # native processes
    "docker": "dvp.runtime.docker:DockerRuntime",  # compose files in docker/
}
DEFAULT_RUNTIME = "process"  # of the command line and the API
PLUGIN_DEFAULT_RUNTIME = "docker"  # of the pytest plugin's fixtures: users' suites want containers


def select(name: str, run_dir: Path) -> Runtime:
    """The runtime called ``name`` (process | docker) for ``run_dir``."""
    try:
        module, cls = RUNTIMES[name].split(":")
    except KeyError:
        raise ConfigError(f"runtime: unknown runtime {name!r} (known: {', '.join(RUNTIMES)})") from None
    try:
        runtime: Runtime = getattr(import_module(module), cls)(run_dir)
        return runtime
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"runtime: {name!r} is not available here: {exc}") from None


def recorded(run_dir: Path, default: str) -> Runtime:
    """The runtime that started the testnets recorded in ``run_dir`` (else ``default``), so
    `dvp down` stops containers even when ``--runtime`` is not repeated."""
    state = read_state(Path(run_dir) / STATE)
    return select(state["runtime"] if state else default, run_dir)
