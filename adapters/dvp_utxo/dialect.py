"""Where btcd, bitcoind and elementsd differ, in one place.

The rest of the package uses only calls every family has: ``getblockchaininfo``,
``getblockcount``, ``getblockhash``, ``getblockheader``, ``getblock <hash> 0``
(raw block), ``getrawmempool``, ``getrawtransaction <txid> 0`` (mempool
transactions; no tx index needed), ``sendrawtransaction <hex>``.  Blocks and
transactions are parsed locally, so no family's verbose JSON is relied upon.

What differs:

* mining on a dev chain: btcd has ``generate n`` (paying its ``--miningaddr``),
  bitcoind and elementsd have ``generatetoaddress n addr``;
* the mempool chain limits (:class:`MempoolLimits`): bitcoind and elementsd refuse a
  transaction with 25 unconfirmed ancestors or more counting itself, or one that would
  give an unconfirmed ancestor 25 descendants or more counting itself
  (``-limitancestorcount``, ``-limitdescendantcount``; their RPC does not report them, so
  the defaults are assumed); btcd has no such limit (its mempool counts ancestors and
  descendants only for replacements);
* the wire format: Elements transactions carry asset tags, value commitments and
  issuances, and Elements blocks signed-block or dynamic-federation headers.  Each
  dialect parses its own bytes into the family-neutral :mod:`.wire` types the chain
  view reads (Bitcoin with python-bitcoinlib, Elements with
  :mod:`.elements_wire`, pure Python).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bitcoin.core import CBlock, CTransaction

from .rpc import RpcClient, RpcError
from .wire import WireBlock, WireTx, from_cblock, from_ctransaction


@dataclass(frozen=True)
class MempoolLimits:
    """A node's mempool chain limits, each counting the transaction itself (bitcoind and
    elementsd: ``-limitancestorcount`` and ``-limitdescendantcount``, default 25 both): a
    new transaction is refused when it would have ``ancestors`` or more unconfirmed
    ancestors with itself, or when an unconfirmed ancestor would have ``descendants`` or
    more unconfirmed descendants with itself."""

    ancestors: int = 25
    descendants: int = 25

    def __str__(self) -> str:
        return (
            f"the node's mempool chain limits, -limitancestorcount={self.ancestors} "
            f"and -limitdescendantcount={self.descendants}"
        )


class Dialect:
    name = "abstract"
    limits: MempoolLimits | None = MempoolLimits()

    def parse_block(self, raw_hex: str) -> WireBlock:
        return from_cblock(CBlock.deserialize(bytes.fromhex(raw_hex)))

    def parse_tx(self, raw_hex: str) -> WireTx:
        return from_ctransaction(CTransaction.deserialize(bytes.fromhex(raw_hex)))

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        raise NotImplementedError


class BtcdDialect(Dialect):
    name = "btcd"
    limits = None

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
