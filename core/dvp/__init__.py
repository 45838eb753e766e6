"""dvp: delivery-versus-payment across real ledgers.

The public API: models of a trade and a swap plan, a :class:`LedgerSet` of connected
ledgers, the :class:`Orchestrator` that runs swaps, and :func:`run_swap` for
synchronous scripts.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import DvpError
    from .ledger_set import LedgerSet
    from .models import Asset, AssetKind, Behaviour, HtlcPlan, Leg, Role, SwapSpec, Trade
    from .orchestrator import Orchestrator, Outcome, SwapResult

# Loaded on first use, so importing the pytest plugin (or any dvp.* module) stays cheap.
_LAZY = {
    "DvpError": "errors",
    "Asset": "models",
    "AssetKind": "models",
    "Behaviour": "models",
    "HtlcPlan": "models",
    "Leg": "models",
    "Role": "models",
    "SwapSpec": "models",
    "Trade": "models",
    "LedgerSet": "ledger_set",
    "Orchestrator": "orchestrator",
    "Outcome": "orchestrator",
    "SwapResult": "orchestrator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'dvp' has no attribute {name!r}")


__all__ = [
    "Asset",
    "AssetKind",
    "Behaviour",
    "DvpError",
    "HtlcPlan",
    "Leg",
    "LedgerSet",
    "Orchestrator",
    "Outcome",
    "Role",
    "SwapResult",
    "SwapSpec",
    "Trade",
    "run_swap",
]


def run_swap(spec: "SwapSpec", run_dir: str | Path = ".dvp", journal: str | Path | None = None) -> "SwapResult":
    """Run one swap on the testnets recorded in ``run_dir``, from synchronous code."""

    from .ledger_set import LedgerSet

    async def go() -> "SwapResult":
        async with LedgerSet.from_run_dir(run_dir) as ledger_set:
            return await ledger_set.orchestrator(journal or Path(run_dir) / "journal.sqlite").run(spec)

    return asyncio.run(go())
