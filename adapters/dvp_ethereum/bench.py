"""The EVM raw baseline for `dvp bench`: the best this client and node do.

Plain ERC-20 transfers from several accounts at once, ``in_flight`` unconfirmed at a time,
sent through the same pipeline as the swaps (local nonces, one receipt poller), so the
bound a swap is measured against is the node's, not the sending code's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .adapter import EthereumAdapter

TRANSFER_GAS = 60_000


async def raw_throughput(
    adapter: EthereumAdapter, asset: str, n: int, in_flight: int, timeout: float
) -> dict[str, Any]:
    parties = sorted(p for p in adapter.config.accounts)
    # Each sender needs n units at most; minting is not timed.
    minted = [await adapter.issue(asset, p, n) for p in parties]
    await asyncio.gather(*(adapter.wait_final(s.tx_id) for s in minted))
    token = adapter._erc20(asset)
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        sender, recipient = parties[i % len(parties)], parties[(i + 1) % len(parties)]
        async with sem:
            call = token.functions.transfer(adapter.address_of(recipient), 1)
            tx_id = await adapter._send(sender, call, f"transfer {asset}", gas=TRANSFER_GAS)
            await adapter.wait_final(tx_id)

    t = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout)
    elapsed = time.perf_counter() - t
    return {
        "transactions": n,
        "in_flight": in_flight,
        "seconds": elapsed,
        "tps": n / elapsed,
        "method": f"ERC-20 transfers from {len(parties)} accounts, pipelined",
    }
