"""The seam between the runtime layer and each platform's node launcher.

A launcher knows how to make a platform's binaries available (``prepare``) and
how to start one or more ledgers of that platform as local processes
(``start``).  The runtime layer owns the run directory, records process ids and
stops everything it started; launchers are found through the entry-point group
``dvp.launchers`` keyed by adapter ``kind``, so the core never imports one by
name.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .errors import NotSupportedError


@dataclass
class LaunchedLedger:
    """One started ledger: the adapter config to reach it and what to stop."""

    name: str
    kind: str
    config: dict[str, Any]
    pids: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


class ContainerSlot(Protocol):
    """What the Docker runtime hands a launcher for one ledger (or for the shared nodes of
    several): its compose project."""

    run_dir: Path

    def start(self, env: dict[str, Any], services: list[str] | None = None) -> str | None:
        """``up -d`` the project (or only ``services`` of it, which may be called again for
        others) with these variables; the (first) container's log file."""

    def container(self, service: str) -> str:
        """The id of a started service's container."""

    def exec(
        self, service: str, argv: list[str], env: dict[str, str], *, cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` run inside a started service's container (captured text output)."""

    def wait(self, check: Callable[[], bool], what: str) -> None:
        """Until ``check()`` holds; fails at once, with a container's log, if one exits."""

    def running(self) -> bool: ...


class NodeLauncher(ABC):
    kind: ClassVar[str]
    # The compose file in docker/ that runs this platform's node, if it has one.
    compose_file: ClassVar[str | None] = None
    # The environment variables that name its images in that file (``image: ${VAR:-default}``).
    image_variables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, dict[str, Any]] | None = None):
        # Per-ledger options from the topology, keyed by ledger name (e.g. block_time).
        self.options = options or {}

    @classmethod
    def missing(cls) -> str | None:
        """None when ``prepare`` can make the nodes available here; else one line saying what
        is missing and how to get it (a platform that default topologies include only when
        present, as Fabric, says so without building anything)."""
        return None

    @classmethod
    def endpoint(cls, config: dict[str, Any]) -> str:
        """The address whose answer shows a ledger of this kind is up (``dvp status``), from its config."""
        return str(config.get("rpc_url") or config.get("endpoint", ""))

    @abstractmethod
    def prepare(self) -> None:
        """Install or build what the nodes need; quick when already there."""

    @abstractmethod
    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        """Start one ledger per name, health-checked, ports from ``port_base`` up
        (``port_base == 0``: pick free ports on 127.0.0.1, as the tests do).

        Every process must be started in its own session (``start_new_session``)
        so the runtime can stop it and its children by process group.  On any
        failure the launcher stops what it started before raising.
        """

    # Ledgers of this kind share one set of nodes (Fabric: the channels of one network): the
    # Docker runtime calls ``start_containers`` once for all of them instead of ``start_container``.
    shared_nodes: ClassVar[bool] = False

    def start_containers(self, names: list[str], slot: ContainerSlot) -> list[LaunchedLedger]:
        """Start the shared nodes of ledgers ``names`` in ``slot`` and do what ``start`` does."""
        raise NotSupportedError(f"{self.kind}: no Docker support")

    def start_container(self, name: str, index: int, port: int, slot: ContainerSlot) -> LaunchedLedger:
        """Start ledger ``name`` (the ``index``-th of its kind) in ``slot`` on ``port`` and do
        the same set-up as ``start`` does once the node answers."""
        raise NotSupportedError(f"{self.kind}: no Docker support")
