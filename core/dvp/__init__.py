"""dvp: delivery-versus-payment across real ledgers.

The public API: models of a trade and a swap plan, a :class:`Network` of connected
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
    from .models import Asset, AssetKind, Behaviour, HtlcPlan, Leg, Role, SwapSpec, Trade
    from .network import Network
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
    "Network": "network",
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
    "Network",
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

    from .network import Network

    async def go() -> "SwapResult":
        async with Network.from_run_dir(run_dir) as net:
            return await net.orchestrator(journal or Path(run_dir) / "journal.sqlite").run(spec)

    return asyncio.run(go())
