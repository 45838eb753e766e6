"""A set of connected ledgers and their assets: what scripts and the CLI work with."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .adapter import LedgerAdapter
from .errors import ConfigError
from .journal import Journal
from .models import Asset
from .orchestrator import Orchestrator, Progress
from .registry import build_adapter
from .runtime.local import LocalRuntime


class Network:
    def __init__(self, ledgers: dict[str, LedgerAdapter], assets: list[Asset]):
        self.ledgers = ledgers
        self.assets = assets

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Network":
        ledgers = {name: build_adapter(name, entry["config"]) for name, entry in state["ledgers"].items()}
        return cls(ledgers, [Asset.model_validate(a) for a in state.get("assets", [])])

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> "Network":
        state = LocalRuntime(Path(run_dir)).state()  # every runtime writes the same state file
        if state is None or not state.get("complete", True):
            raise ConfigError(f"run_dir: no running testnets recorded in {run_dir}; run `dvp up` first")
        return cls.from_state(state)

    async def __aenter__(self) -> "Network":
        results = await asyncio.gather(*(a.connect() for a in self.ledgers.values()), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # Close the ledgers that did connect (and the one that half did): no client
            # session is left for the garbage collector to complain about.
            await self.__aexit__()
            raise failed[0]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.gather(*(a.aclose() for a in self.ledgers.values()), return_exceptions=True)

    def orchestrator(self, journal: Journal | str | Path, progress: Progress | None = None) -> Orchestrator:
        if not isinstance(journal, Journal):
            journal = Journal(journal)
        return Orchestrator(self.ledgers, self.assets, journal, progress)

    async def balances(self, parties: list[str]) -> dict[tuple[str, str, str], int]:
        """(ledger, asset, party) -> balance, for every asset of the network."""
        keys = [(a.ledger, a.symbol, p) for a in self.assets for p in parties]
        values = await asyncio.gather(*(self.ledgers[l].balance(p, s) for l, s, p in keys))
        return dict(zip(keys, values))
