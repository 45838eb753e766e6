"""What every runtime does once its nodes answer: install on-ledger code and assets through
each ledger's adapter (:meth:`~dvp.adapter.LedgerAdapter.bootstrap`)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..launcher import LaunchedLedger
from ..models import Asset
from ..registry import build_adapter


async def bootstrap(launched: list[LaunchedLedger], assets: list[Asset]) -> dict[str, dict[str, Any]]:
    async def one(ledger: LaunchedLedger) -> tuple[str, dict[str, Any]]:
        adapter = build_adapter(ledger.name, {"kind": ledger.kind, **ledger.config})
        async with adapter:
            updates = await adapter.bootstrap([a for a in assets if a.ledger == ledger.name])
        return ledger.name, {**ledger.config, **updates}

    return dict(await asyncio.gather(*(one(l) for l in launched)))
