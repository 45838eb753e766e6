"""The EVM raw baselines for `dvp bench`: the best this client and node do, and the node alone.

Plain ERC-20 transfers from several accounts at once, ``in_flight`` unconfirmed at a time,
sent through the same pipeline as the swaps (local nonces, one receipt poller), so the
bound a swap is measured against is the node's, not the sending code's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from .adapter import EthereumAdapter
from .rpc import JsonRpc

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
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t
    return {
        "transactions": n,
        "in_flight": in_flight,
        "seconds": elapsed,
        "tps": n / elapsed,
        "method": f"ERC-20 transfers from {len(parties)} accounts, pipelined",
    }


# -- the chain's capacity: no per-call client work -------------------------------------------------

_TRANSFER = keccak(text="transfer(address,uint256)")[:4]


async def chain_capacity(
    adapter: EthereumAdapter, asset: str, n: int, in_flight: int, timeout: float
) -> dict[str, Any]:
    """What the node itself does: ``n`` ERC-20 transfers signed before the clock starts,
    sent as raw bytes in JSON-RPC batches (one HTTP request per refill), at most
    ``in_flight`` unmined; mined ones counted per block from the block's transaction hashes.
    No web3.py, no journal, no receipts: the bound a swap client could reach at best."""
    parties = sorted(adapter.config.accounts)
    keys = {p: Account.from_key(adapter.config.accounts[p].get_secret_value()) for p in parties}
    minted = [await adapter.issue(asset, p, n) for p in parties]
    await asyncio.gather(*(adapter.wait_final(s.tx_id) for s in minted))
    sender = adapter._sent
    fees, _ = await sender._fee_fields()
    token = adapter._token(asset)
    async with aiohttp.ClientSession() as http:
        rpc = JsonRpc(http, adapter.config.rpc_url, adapter.name, timeout)
        counts = await rpc.batch([("eth_getTransactionCount", [keys[p].address, "pending"]) for p in parties])
        nonces = {p: int(c, 16) for p, c in zip(parties, counts)}
        signed: list[tuple[str, str]] = []  # (hash, raw hex), each account's in nonce order
        for i in range(n):
            p, to = parties[i % len(parties)], parties[(i + 1) % len(parties)]
            data = _TRANSFER + encode(["address", "uint256"], [keys[to].address, 1])
            tx = {"to": token, "data": data, "value": 0, "gas": TRANSFER_GAS, "nonce": nonces[p],
                  "chainId": adapter.config.chain_id, **fees}  # fmt: skip
            nonces[p] += 1
            s = keys[p].sign_transaction(tx)
            signed.append(("0x" + bytes(s.hash).hex(), "0x" + bytes(s.raw_transaction).hex()))
        try:
            async with asyncio.timeout(timeout):
                result = await _pump(rpc, signed, in_flight)
        finally:
            for p in parties:  # the swaps' sender counts nonces locally: read them again
                sender.account(keys[p].address).invalidate()
    return {
        "transactions": n,
        "in_flight": in_flight,
        **result,
        "method": f"ERC-20 transfers from {len(parties)} accounts, pre-signed, raw in JSON-RPC batches",
    }


async def _pump(rpc: JsonRpc, signed: list[tuple[str, str]], in_flight: int) -> dict[str, Any]:
    waiting: set[str] = set()
    sent = mined = 0
    blocks: list[int] = []  # ours per block
    head = int(await rpc.call("eth_blockNumber", []), 16)
    start = time.perf_counter()
    while mined < len(signed):
        room = min(in_flight - len(waiting), len(signed) - sent)
        if room > 0:
            chunk = signed[sent : sent + room]
            await rpc.batch([("eth_sendRawTransaction", [raw]) for _, raw in chunk])
            waiting.update(h for h, _ in chunk)
            sent += room
        now = int(await rpc.call("eth_blockNumber", []), 16)
        if now > head:
            found = await rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in range(head + 1, now + 1)])
            for block in found:
                ours = waiting.intersection(block["transactions"])
                waiting -= ours
                mined += len(ours)
                blocks.append(len(ours))
            head = now
        else:
            await asyncio.sleep(0.02)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tps": len(signed) / seconds, "per_block_max": max(blocks, default=0)}
