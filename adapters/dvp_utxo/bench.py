"""The chain's capacity on a Bitcoin-family chain (btcd; Elements in ``elements.bench``) for
`dvp bench`: its node alone.

One funding transaction (not timed) gives a party ``n`` outputs; ``n`` payments, each
spending one of them back to the party, are signed before the clock starts, then sent as
raw transactions in JSON-RPC batches (``sendrawtransaction``, one HTTP request per refill),
at most ``in_flight`` unmined at once, and counted mined per block from the blocks' txids.
No coin selection, no chain view, no journal: the bound a swap client could reach at best.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dvp import errors

from .adapter import UtxoAdapter
from .boundary import utxo_errors
from .keys import Key
from .rpc import RpcClient
from .tx import Utxo, build_payment, tx_hex, txid_of

OUTPUT = 20_000  # sat per pre-funded output
PAYMENT = 10_000  # sat each payment sends back to the party; the rest is its change and fee
PARTY = "buyer"

Fund = Callable[[Key, bytes, int], Awaitable[str]]  # (payer, script, n) -> funding txid
Sign = Callable[[Key, Utxo], tuple[str, str]]  # (key, output) -> (txid, raw hex) of a payment


async def chain_capacity(adapter: UtxoAdapter, asset: str, n: int, in_flight: int, timeout: float) -> dict[str, Any]:
    async def fund(payer: Key, script: bytes, count: int) -> str:
        return await adapter.ledger.broadcast(await adapter.ledger.pay(payer, [(script, OUTPUT)] * count))

    def sign(key: Key, utxo: Utxo) -> tuple[str, str]:
        tx, _fee = build_payment(key, [utxo], [(key.script_pubkey, PAYMENT)], adapter.ledger.fee_rate)
        return txid_of(tx), tx_hex(tx)

    return await capacity(adapter, n, in_flight, timeout, fund, sign, coin=None)


async def capacity(
    adapter: UtxoAdapter, n: int, in_flight: int, timeout: float, fund: Fund, sign: Sign, *, coin: str | None
) -> dict[str, Any]:
    """Fund ``n`` outputs of :data:`PARTY` in ``coin`` (the fee coin's on-chain id; None on
    Bitcoin), sign a payment of each, time sending them all."""
    key = adapter._key(PARTY)
    await adapter._refresh("capacity")

    async def funding() -> str:  # paid as an issue is, within the node's mempool chain limits
        async with adapter._sending():
            with utxo_errors("capacity", adapter.name):
                payer = adapter._key(adapter.config.issuer)
                short = adapter.view.balance(payer.script_pubkey, min_conf=0, asset=coin) < n * OUTPUT + 100_000
                if short and adapter.config.miner in adapter._keys:
                    payer = adapter._key(adapter.config.miner)
                return await fund(payer, key.script_pubkey, n)

    txid = await adapter._within_limits(funding)
    await adapter.wait_final(txid)
    outputs = [u for u in adapter.view.unspent(key.script_pubkey) if u.txid == txid and u.value == OUTPUT]
    if len(outputs) != n:
        raise errors.AdapterError(f"capacity on {adapter.name}: {len(outputs)} of {n} funded outputs found")
    signed = [sign(key, u) for u in outputs]
    # a dev chain without a block clock mines on wait, as the adapter's own wait does
    on_demand = adapter.config.dev and adapter.config.mine_on_wait
    mine = adapter._mine if on_demand else None
    result = await asyncio.wait_for(_pump(adapter.ledger.rpc, signed, in_flight, mine), timeout)
    return {
        "transactions": n,
        "in_flight": in_flight,
        **result,
        "method": "payments of one key, pre-signed, raw in JSON-RPC batches"
        + (", blocks mined on demand" if on_demand else ""),
    }


async def _pump(
    rpc: RpcClient, signed: list[tuple[str, str]], in_flight: int, mine: Callable[[int], Awaitable[None]] | None
) -> dict[str, Any]:
    waiting: set[str] = set()
    sent = mined = 0
    blocks: list[int] = []  # ours per block
    head = int(await rpc.call("getblockcount"))
    start = time.perf_counter()
    while mined < len(signed):
        room = min(in_flight - len(waiting), len(signed) - sent)
        if room > 0:
            chunk = signed[sent : sent + room]
            await rpc.batch("sendrawtransaction", [[raw] for _, raw in chunk])
            waiting.update(t for t, _ in chunk)
            sent += room
        now = int(await rpc.call("getblockcount"))
        if now > head:
            hashes = await rpc.batch("getblockhash", [[h] for h in range(head + 1, now + 1)])
            for block in await rpc.batch("getblock", [[h, 1] for h in hashes]):
                ours = waiting.intersection(block["tx"])
                waiting -= ours
                mined += len(ours)
                blocks.append(len(ours))
            head = now
        elif mine is not None:
            await mine(1)
        else:
            await asyncio.sleep(0.02)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tps": len(signed) / seconds, "per_block_max": max(blocks, default=0)}
