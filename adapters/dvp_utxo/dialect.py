"""Where btcd, bitcoind and elementsd differ, in one place.

The rest of the package uses only calls every family has: ``getblockchaininfo``,
``getblockcount``, ``getblockhash``, ``getblockheader``, ``getblock <hash> 0``
(raw block), ``getrawmempool``, ``getrawtransaction <txid> 0`` (mempool
transactions; no tx index needed), ``sendrawtransaction <hex>``.  Blocks and
transactions are parsed locally, so no family's verbose JSON is relied upon.

What differs:

* mining on a dev chain: btcd has ``generate n`` (paying its ``--miningaddr``),
  bitcoind and elementsd have ``generatetoaddress n addr``;
* the wire format: Elements transactions carry confidential values and asset
  tags, so parsing them needs an Elements-aware decoder.  The chain view still
  reads python-bitcoinlib ``CTransaction``/``CBlock``, which cannot hold them:
  :class:`ElementsDialect` refuses those, which keeps the gap visible, and
  offers :meth:`ElementsDialect.parse_elements_tx` (wallycore, see
  ``dvp_utxo.elements``) for transactions.
"""

from __future__ import annotations

import asyncio

from bitcoin.core import CBlock, CTransaction

from .rpc import RpcClient, RpcError


class Dialect:
    name = "abstract"

    def parse_block(self, raw_hex: str) -> CBlock:
        return CBlock.deserialize(bytes.fromhex(raw_hex))

    def parse_tx(self, raw_hex: str) -> CTransaction:
        return CTransaction.deserialize(bytes.fromhex(raw_hex))

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        raise NotImplementedError


class BtcdDialect(Dialect):
    name = "btcd"

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        # btcd pays every generated block to one of its --miningaddr addresses, and
        # refuses a second ``generate`` while one runs (e.g. the launcher's block clock).
        for attempt in range(200):
            try:
                return await rpc.call("generate", n)
            except RpcError as exc:
                if "already CPU mining" not in exc.message or attempt == 199:
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("unreachable")


class BitcoindDialect(Dialect):
    name = "bitcoind"

    async def mine(self, rpc: RpcClient, n: int, address: str) -> list[str]:
        return await rpc.call("generatetoaddress", n, address)


class ElementsDialect(BitcoindDialect):
    name = "elementsd"

    def parse_block(self, raw_hex: str) -> CBlock:
        raise NotImplementedError("Elements block parsing is not implemented yet")

    def parse_tx(self, raw_hex: str) -> CTransaction:
        raise NotImplementedError("Elements transactions are not CTransactions: use parse_elements_tx")

    def parse_elements_tx(self, raw_hex: str):
        """An :class:`dvp_utxo.elements.tx.ElementsTx` (needs ``wallycore``)."""
        from .elements.tx import ElementsTx

        return ElementsTx.from_hex(raw_hex)


DIALECTS: dict[str, type[Dialect]] = {d.name: d for d in (BtcdDialect, BitcoindDialect, ElementsDialect)}


def dialect_for(name: str) -> Dialect:
    try:
        return DIALECTS[name]()
    except KeyError:
        raise ValueError(f"dialect: unknown {name!r}; known: {sorted(DIALECTS)}") from None
