"""The ledgers a script, the CLI or an agent works with, connected, and their assets (a :class:`LedgerSet`)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from .adapter import LedgerAdapter
from .errors import ConfigError, LedgerUnavailable
from .journal import Journal
from .models import Asset
from .orchestrator import Orchestrator, Progress
from .registry import build_adapter
from .runtime.local import LocalRuntime


class Unreachable:
    """Stands in for a ledger that did not answer when the set connected: its pure
    methods (lock ids, clock arithmetic, finality) work, and every call that would reach the
    ledger raises the error it gave, so only the swaps that need it stop."""

    def __init__(self, adapter: LedgerAdapter, error: LedgerUnavailable):
        self._adapter, self._error = adapter, error

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter, name)
        if name == "require":  # a capability view of this stand-in, not of the unconnected adapter
            return lambda kind: self if isinstance(self._adapter, kind) else value(kind)
        if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):

            async def down(*args: Any, **kwargs: Any) -> Any:
                raise LedgerUnavailable(str(self._error))

            return down
        return value


class LedgerSet:
    """Ledger adapters by name and the assets on them; ``async with`` connects and closes them all."""

    def __init__(self, ledgers: dict[str, LedgerAdapter], assets: list[Asset]):
        self.ledgers = ledgers
        self.assets = assets
        self._adapters = dict(ledgers)  # what __aexit__ closes, stand-ins or not
        self._tolerant = False

    def reachable_only(self) -> "LedgerSet":
        """Connect what answers; a ledger that does not is replaced by an :class:`Unreachable`
        stand-in instead of failing the whole set (resuming swaps: one ledger down
        stops only the swaps on it)."""
        self._tolerant = True
        return self

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LedgerSet":
        ledgers = {name: build_adapter(name, entry["config"]) for name, entry in state["ledgers"].items()}
        return cls(ledgers, [Asset.model_validate(a) for a in state.get("assets", [])])

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> "LedgerSet":
        state = LocalRuntime(Path(run_dir)).state()  # every runtime writes the same state file
        if state is None or not state.get("complete", True):
            raise ConfigError(f"run_dir: no running testnets recorded in {run_dir}; run `dvp up` first")
        return cls.from_state(state)

    async def __aenter__(self) -> "LedgerSet":
        results = await asyncio.gather(*(a.connect() for a in self.ledgers.values()), return_exceptions=True)
        if self._tolerant:
            for (name, adapter), result in zip(list(self.ledgers.items()), results):
                if isinstance(result, LedgerUnavailable):
                    self.ledgers[name] = Unreachable(adapter, result)  # type: ignore[assignment]
            results = [r for r in results if not isinstance(r, LedgerUnavailable)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # Close the ledgers that did connect (and the one that half did): no client
            # session is left for the garbage collector to complain about.
            await self.__aexit__()
            raise failed[0]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.gather(*(a.aclose() for a in self._adapters.values()), return_exceptions=True)

    def orchestrator(self, journal: Journal | str | Path, progress: Progress | None = None) -> Orchestrator:
        if not isinstance(journal, Journal):
            journal = Journal(journal)
        return Orchestrator(self.ledgers, self.assets, journal, progress)

    async def balances(self, parties: list[str]) -> dict[tuple[str, str, str], int]:
        """(ledger, asset, party) -> balance, for every asset of the set."""
        keys = [(a.ledger, a.symbol, p) for a in self.assets for p in parties]
        values = await asyncio.gather(*(self.ledgers[l].balance(p, s) for l, s, p in keys))
        return dict(zip(keys, values))
