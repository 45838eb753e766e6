"""The runtime seam: one way of running the local testnets (native processes, containers).

Every runtime writes the same ``state.json`` (:class:`~dvp.runtime.run_dir.RunDir`), so
adapters and the orchestrator cannot tell which one started a ledger.  Runtimes are named
in :data:`dvp.runtime.RUNTIMES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ..topology import Topology
from .run_dir import RunDir


class Runtime(RunDir, ABC):
    @abstractmethod
    def up(self, topology: Topology, *, port_base: int | None = None,
           progress: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
        """Start every ledger of ``topology``, install code and assets, write the state.

        Returns the state.  Raises ConfigError when testnets are already recorded here or a
        platform cannot start; stops what it started before raising."""

    @abstractmethod
    def down(self) -> list[int]:
        """Stop everything the recorded state says this runtime started; the pids stopped."""

    @abstractmethod
    def status(self) -> list[dict[str, Any]]:
        """One row per recorded ledger: ``ledger``, ``kind``, ``pids``, ``alive``, ``endpoint``."""
