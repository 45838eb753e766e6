"""An ``elementsd -chain=elementsregtest`` node for tests, and the few RPC calls they use.

NOT RUN ON THIS PROJECT'S MACHINES YET: no ``elementsd`` binary is available
here (none is packaged for the registries we use), so every line below is
unverified against a real node.  ``tests/utxo/test_elementsd.py`` uses it and
skips with "elementsd binary not found (set DVP_ELEMENTSD)" when
:func:`find_elementsd` finds nothing.  See ``adapters/dvp_utxo/ELEMENTS.md``.

The node runs RPC-only on loopback with ``-txindex`` (so transactions are read
back by txid), ``-validatepegin=0`` (no Bitcoin node behind it), and the
genesis "free coins" of a custom chain, which a throwaway node wallet
(``anyonecanspendaremine``) hands out to the framework's keys once at start.
After that, nothing is signed by the node: every transaction is built and
signed by :mod:`dvp_utxo.elements` and sent with ``sendrawtransaction``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import wallycore as wally

from dvp.runtime.processes import alive, free_port, spawn, stop

from ..keys import Key
from ..rpc import RpcClient, RpcError, RpcUnavailable
from .tx import ElementsTx, ElementsUtxo

ELEMENTSD_ENV = "DVP_ELEMENTSD"
SKIP_REASON = "elementsd binary not found (set DVP_ELEMENTSD)"
RPC_USER = "dvp"
REGTEST_HRP = "ert"  # bech32 prefix of unconfidential elementsregtest addresses
COIN = 100_000_000


def find_elementsd() -> Path | None:
    """``$DVP_ELEMENTSD`` if it names an executable, else ``elementsd`` on PATH, else None."""
    given = os.environ.get(ELEMENTSD_ENV)
    if given:
        p = Path(given)
        return p if p.is_file() and os.access(p, os.X_OK) else None
    found = shutil.which("elementsd")
    return Path(found) if found else None


def elementsd_args(datadir: Path, port: int, password: str) -> list[str]:
    return [
        "-chain=elementsregtest",
        f"-datadir={datadir}",
        "-server=1",
        "-listen=0",
        "-rpcbind=127.0.0.1",
        "-rpcallowip=127.0.0.1",
        f"-rpcport={port}",
        f"-rpcuser={RPC_USER}",
        f"-rpcpassword={password}",
        "-txindex=1",
        "-validatepegin=0",
        "-initialfreecoins=2100000000000000",
        "-con_connect_genesis_outputs=1",
        "-anyonecanspendaremine=1",
        "-fallbackfee=0.0001",
        "-printtoconsole=1",
    ]


def address_of(script_pubkey: bytes) -> str:
    """Unconfidential bech32 address of a P2WPKH/P2WSH script on elementsregtest."""
    return wally.addr_segwit_from_bytes(bytes(script_pubkey), REGTEST_HRP, 0)


@dataclass
class ElementsdProcess:
    pid: int
    url: str
    password: str
    log: Path

    def stop(self) -> None:
        stop([self.pid])


def start_elementsd(binary: Path, run_dir: Path, port: int | None = None) -> ElementsdProcess:
    run_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    password = secrets.token_hex(16)
    log = run_dir / "elementsd.log"
    pid = spawn([str(binary), *elementsd_args(run_dir, port, password)], log, env={"HOME": str(run_dir)}, cwd=run_dir)
    return ElementsdProcess(pid, f"http://127.0.0.1:{port}", password, log)


@dataclass
class ElementsNode:
    """Test-side handle: RPC, the outputs our transactions created, mining and funding."""

    rpc: RpcClient
    policy_asset: str = ""
    known: dict[tuple[str, int], ElementsUtxo] = field(default_factory=dict)
    mine_to: str = ""

    @classmethod
    async def connect(cls, proc: ElementsdProcess, timeout: float = 60.0) -> "ElementsNode":
        rpc = RpcClient(proc.url, RPC_USER, proc.password)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await rpc.call("getblockcount")
                break
            except (RpcUnavailable, RpcError) as exc:  # -28: still warming up
                if not alive(proc.pid) or asyncio.get_running_loop().time() > deadline:
                    raise RpcUnavailable(f"elementsd (pid {proc.pid}) did not answer: {exc}; see {proc.log}") from exc
                await asyncio.sleep(0.2)
        node = cls(rpc)
        node.policy_asset = (await rpc.call("getsidechaininfo"))["pegged_asset"]
        return node

    async def height(self) -> int:
        return int(await self.rpc.call("getblockcount"))

    async def mine(self, n: int = 1) -> list[str]:
        return await self.rpc.call("generatetoaddress", n, self.mine_to)

    async def broadcast(self, tx: ElementsTx) -> str:
        txid = await self.rpc.call("sendrawtransaction", tx.hex)
        self.learn(tx)
        return txid

    def learn(self, tx: ElementsTx) -> None:
        for i, o in enumerate(tx.outputs):
            if not o.is_fee and o.is_explicit:
                self.known[(tx.txid, i)] = tx.utxo(i)

    async def get_tx(self, txid: str) -> ElementsTx:
        return ElementsTx.from_hex(await self.rpc.call("getrawtransaction", txid, False))

    async def confirmations(self, txid: str) -> int:
        return int((await self.rpc.call("getrawtransaction", txid, True)).get("confirmations", 0))

    async def is_unspent(self, u: ElementsUtxo) -> bool:
        return await self.rpc.call("gettxout", u.txid, u.vout, True) is not None

    async def unspent(self, script_pubkey: bytes) -> list[ElementsUtxo]:
        mine = [u for u in self.known.values() if u.script_pubkey == script_pubkey]
        return [u for u in mine if await self.is_unspent(u)]

    async def bootstrap(self, keys: dict[str, Key], *, per_party: int = 3, amount_btc: str = "100") -> None:
        """Claim the genesis free coins into a throwaway wallet and pay each key ``per_party`` outputs."""
        try:
            await self.rpc.call("createwallet", "dvp-bootstrap")
        except RpcError as exc:
            if "already exists" not in exc.message:
                raise
        await self.rpc.call("rescanblockchain")
        self.mine_to = await self.rpc.call("getnewaddress", "", "bech32")
        self.mine_to = (await self.rpc.call("getaddressinfo", self.mine_to)).get("unconfidential", self.mine_to)
        for key in keys.values():
            for _ in range(per_party):
                txid = await self.rpc.call("sendtoaddress", address_of(key.script_pubkey), float(Decimal(amount_btc)))
                self.learn(await self.get_tx(txid))
        await self.mine(1)


__all__ = [
    "COIN",
    "ELEMENTSD_ENV",
    "SKIP_REASON",
    "ElementsNode",
    "ElementsdProcess",
    "address_of",
    "elementsd_args",
    "find_elementsd",
    "start_elementsd",
]
