"""Where btcd, bitcoind and elementsd differ, in one place.

The rest of the package uses only calls every family has: ``getblockchaininfo``,
``getblockcount``, ``getblockhash``, ``getblockheader``, ``getblock <hash> 0``
(raw block), ``getrawmempool``, ``getrawtransaction <txid> 0`` (mempool
transactions; no tx index needed), ``sendrawtransaction <hex>``.  Blocks and
transactions are parsed locally, so no family's verbose JSON is relied upon.

What differs:

* mining on a dev chain: btcd has ``generate n`` (paying its ``--miningaddr``),
  bitcoind and elementsd have ``generatetoaddress n addr``;
* the wire format: Elements transactions carry asset tags, value commitments and
  issuances, and Elements blocks signed-block or dynamic-federation headers.  Each
  dialect parses its own bytes into the family-neutral :mod:`.wire` types the chain
  view reads (Bitcoin with python-bitcoinlib, Elements with
  :mod:`.elements_wire`, pure Python).
"""

from __future__ import annotations

import asyncio

from bitcoin.core import CBlock, CTransaction

from .rpc import RpcClient, RpcError
from .wire import WireBlock, WireTx, from_cblock, from_ctransaction


class Dialect:
    name = "abstract"

    def parse_block(self, raw_hex: str) -> WireBlock:
        return from_cblock(CBlock.deserialize(bytes.fromhex(raw_hex)))

    def parse_tx(self, raw_hex: str) -> WireTx:
        return from_ctransaction(CTransaction.deserialize(bytes.fromhex(raw_hex)))

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        raise NotImplementedError


class BtcdDialect(Dialect):
    name = "btcd"

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        # btcd pays every generated block to one of its --miningaddr addresses, and
        # refuses a second ``generate`` while one runs (e.g. the launcher's block clock).
        for attempt in range(200):
            try:
                hashes: list[str] = await rpc.call("generate", n)
                return hashes
            except RpcError as exc:
                if "already CPU mining" not in exc.message or attempt == 199:
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")


class BitcoindDialect(Dialect):
    name = "bitcoind"

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        hashes: list[str] = await rpc.call("generatetoaddress", n, address)
        return hashes


class ElementsDialect(BitcoindDialect):
    name = "elementsd"

    def parse_block(self, raw_hex: str) -> WireBlock:
        from .elements_wire import parse_block

        return parse_block(bytes.fromhex(raw_hex))

    def parse_tx(self, raw_hex: str) -> WireTx:
        from .elements_wire import parse_tx

        return parse_tx(bytes.fromhex(raw_hex))


DIALECTS: dict[str, type[Dialect]] = {d.name: d for d in (BtcdDialect, BitcoindDialect, ElementsDialect)}


def dialect_for(name: str) -> Dialect:
    try:
        return DIALECTS[name]()
    except KeyError:
        raise ValueError(f"dialect: unknown {name!r}; known: {sorted(DIALECTS)}") from None
