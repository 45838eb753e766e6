"""geth as a second EVM client: ``geth --dev`` with a block period, on 127.0.0.1 only.

The binary is built from geth's Go module by ``make setup`` (mk/evm.mk) into
``${DVP_CACHE:-~/.cache/dvp}/geth-<version>/bin``, or taken from ``DVP_GETH``.  Dev mode
has one pre-funded, unlocked account; the launcher pays the parties from it with the
standard ``eth_sendTransaction``, so the adapter then needs nothing but standard JSON-RPC.
geth has no time travel: refund paths wait for real expiry.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from dvp.env import cache_dir
from dvp.errors import ConfigError, LedgerUnavailable
from dvp.launcher import LaunchedLedger, NodeLauncher
from dvp.runtime.processes import free_port, spawn, stop, wait_until

from .launcher import dev_keys

GETH_VERSION = "v1.16.7"  # keep in step with GETH_VERSION in mk/evm.mk
CHAIN_ID = 1337  # what geth --dev always uses
PARTY_FUNDS_WEI = 10_000 * 10**18
# Same block gas limit as anvil's default, so the two clients' bounds compare.
GAS_LIMIT = 30_000_000


def geth_binary() -> Path:
    override = os.environ.get("DVP_GETH")
    return Path(override) if override else cache_dir() / f"geth-{GETH_VERSION}" / "bin" / "geth"


def geth_missing() -> str | None:
    """Why geth cannot run here (for skips and errors), or None."""
    path = geth_binary()
    if path.is_file() and os.access(path, os.X_OK):
        return None
    return f"geth {GETH_VERSION} not found at {path}; build it with `make geth-bin` or set DVP_GETH"


def geth_args(datadir: Path, http_port: int, auth_port: int, block_time: float) -> list[str]:
    return [
        "--dev", "--dev.period", f"{max(1, round(block_time))}", "--dev.gaslimit", str(GAS_LIMIT),
        "--datadir", str(datadir), "--ipcdisable", "--nodiscover", "--maxpeers", "0", "--port", "0",
        "--http", "--http.addr", "127.0.0.1", "--http.port", str(http_port),
        "--http.api", "eth,net,web3,debug,txpool",
        # The engine API port is opened even in dev mode: keep it on loopback, on a free port.
        "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(auth_port),
        "--verbosity", "2",
    ]  # fmt: skip


def rpc(url: str, method: str, params: list[Any], timeout: float = 10.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.load(resp)
    if "error" in reply:
        raise LedgerUnavailable(f"geth {method}: {reply['error'].get('message')}")
    return reply["result"]


def answers(url: str) -> bool:
    try:
        return rpc(url, "eth_chainId", [], timeout=1.0) is not None
    except (OSError, LedgerUnavailable, ValueError):
        return False


def fund(url: str, addresses: list[str], *, timeout: float = 60.0) -> None:
    """Pay each address from geth's dev account and wait until every payment is mined."""
    dev = rpc(url, "eth_accounts", [])[0]
    hashes = [
        rpc(url, "eth_sendTransaction", [{"from": dev, "to": a, "value": hex(PARTY_FUNDS_WEI)}]) for a in addresses
    ]
    deadline = time.monotonic() + timeout
    for tx in hashes:
        while rpc(url, "eth_getTransactionReceipt", [tx]) is None:
            if time.monotonic() > deadline:
                raise LedgerUnavailable(f"geth: funding transaction {tx} not mined after {timeout:.0f}s")
            time.sleep(0.1)


class GethLauncher(NodeLauncher):
    kind = "geth"

    @classmethod
    def missing(cls) -> str | None:
        return geth_missing()

    def prepare(self) -> None:
        missing = geth_missing()
        if missing:
            raise ConfigError(missing)

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        if len(names) > 1:
            # --dev always runs chain id 1337; two such chains would share ids and replay.
            raise ConfigError(f"ledgers: at most one geth ledger per topology (chain id {CHAIN_ID}), got {names}")
        binary = geth_binary()
        keys = dev_keys()
        started: list[LaunchedLedger] = []
        try:
            for i, name in enumerate(names):
                port = port_base + i if port_base else free_port()
                block_time = float(self.options.get(name, {}).get("block_time", 1.0))
                log = run_dir / f"{name}.log"
                args = geth_args(run_dir / name, port, free_port(), block_time)
                pid = spawn([str(binary), *args], log)
                config = ledger_config(port, max(1, round(block_time)), keys)
                started.append(LaunchedLedger(name=name, kind=self.kind, pids=[pid], logs=[str(log)], config=config))
                url = config["rpc_url"]
                wait_until(partial(answers, url), timeout=60, what=f"geth {name}", pid=pid, log=log)
                from eth_account import Account

                fund(url, [Account.from_key(k).address for k in keys.values()])
        except BaseException:
            stop([p for ledger in started for p in ledger.pids])
            raise
        return started


def ledger_config(port: int, block_time: float, keys: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "geth",
        "rpc_url": f"http://127.0.0.1:{port}",
        "chain_id": CHAIN_ID,
        "accounts": keys,
        "block_interval": block_time,
    }
