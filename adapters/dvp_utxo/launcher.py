"""Local btcd regtest nodes for dvp: ``kind = "utxo"``.

``start`` runs one ``btcd --regtest`` per ledger name, RPC only (no P2P
listener) on ``127.0.0.1:<port_base + i>`` without TLS (btcd allows ``--notls``
on loopback only), logs in ``<run_dir>/<name>/``.  It then drives the chain to
a state the framework can use:

1. mines :data:`INITIAL_BLOCKS` blocks to the ``miner`` key: btcd's regtest
   activates segwit by BIP9 signalling at height 432, and coinbases need 100
   confirmations to be spent;
2. pays each party (seller, buyer, issuer) :data:`PARTY_OUTPUTS` outputs of
   :data:`PARTY_OUTPUT_SAT` from mature coinbases, signed locally, and mines
   them in;
3. optionally starts a block clock (``python -m dvp_utxo.miner``) that
   mines a block every ``block_interval`` seconds, as a real chain would.

Keys are deterministic dev keys per (ledger name, party) and travel in the
returned config as WIF.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

from dvp.errors import LedgerUnavailable
from dvp.launcher import ContainerSlot, LaunchedLedger, NodeLauncher
from dvp.runtime.processes import alive, free_port, spawn, stop

from .bins import BTCD_VERSION, ensure_btcd
from .chain import ChainView
from .dialect import dialect_for
from .htlc import UtxoLedger
from .keys import Key
from .rpc import RpcClient, RpcError, RpcUnavailable

PARTIES = ("seller", "buyer", "issuer")
MINER = "miner"
SEGWIT_HEIGHT = 432
INITIAL_BLOCKS = 440
PARTY_OUTPUTS = 5
PARTY_OUTPUT_SAT = 10 * 100_000_000
RPC_USER = "dvp"

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    value: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            value.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if error:
        raise error[0]
    return value[0]


def stop_process_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL after ``timeout``."""
    stop([pid], grace=timeout)


class RegtestLauncher(NodeLauncher):
    """What the btcd and elementsd launchers share: per-ledger settings over their defaults."""

    block_interval: float | None
    confirmations: int
    fee_rate: float

    def settings(self, name: str) -> tuple[float, int, float]:
        """(block time, confirmations, fee rate) of ledger ``name``: its topology options over the defaults."""
        opts = self.options.get(name, {})
        block_time = float(opts.get("block_time", self.block_interval or 0) or 0)
        return (
            block_time,
            int(opts.get("confirmations", self.confirmations)),
            float(opts.get("fee_rate", self.fee_rate)),
        )


class UtxoLauncher(RegtestLauncher):
    compose_file = "utxo.yaml"
    image_variables = ("DVP_BTCD_IMAGE",)
    kind = "utxo"

    def __init__(
        self,
        options: dict[str, dict[str, Any]] | None = None,
        *,
        block_interval: float | None = 1.0,
        confirmations: int = 1,
        fee_rate: float = 2.0,
    ):
        """Per-ledger ``options`` (from the topology) override the defaults:
        ``block_time`` (seconds between blocks of the block clock; 0 = none, the
        adapter then mines on demand), ``confirmations``, ``fee_rate`` (sat/vB)."""
        super().__init__(options)
        self.block_interval = block_interval
        self.confirmations = confirmations
        self.fee_rate = fee_rate
        self._btcd: Path | None = None

    def prepare(self) -> None:
        self._btcd = ensure_btcd()

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        if self._btcd is None:
            self.prepare()
        run_dir = Path(run_dir)
        started: list[int] = []
        ledgers: list[LaunchedLedger] = []
        try:
            for i, name in enumerate(names):
                port = port_base + i if port_base else free_port()
                ledgers.append(self._start_one(name, run_dir / name, port, started))
        except BaseException:
            stop(started)
            raise
        return ledgers

    def start_container(self, name: str, index: int, port: int, slot: ContainerSlot) -> LaunchedLedger:
        """btcd in a container (docker/utxo.yaml); then the same chain set-up as ``start``."""
        block_time, confirmations, fee_rate = self.settings(name)
        node_dir = (slot.run_dir / self.kind / name).resolve()
        node_dir.mkdir(parents=True, exist_ok=True)
        keys = dev_keys(name)
        password = secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        args = btcd_args(node_dir, port, password, keys[MINER].address)  # also writes btcd.conf
        (node_dir / "btcd.cmd").write_text(
            "btcd (docker/utxo.yaml) " + " ".join(a if "--rpcpass" not in a else "--rpcpass=***" for a in args) + "\n"
        )
        # btcd runs as the caller's user, so the run directory stays the caller's to delete.
        log = slot.start({"DVP_PORT": port, "DVP_NODE_DIR": node_dir, "DVP_RPC_PASSWORD": password,
                          "DVP_MINING_ADDRESS": keys[MINER].address, "DVP_UID": os.getuid(), "DVP_GID": os.getgid()})  # fmt: skip
        btcd_log = node_dir / "logs" / "regtest" / "btcd.log"
        ledger = LaunchedLedger(name=name, kind=self.kind, config={}, logs=[str(btcd_log)] + ([log] if log else []))
        try:
            info = run_sync(bootstrap_chain(url, password, keys, fee_rate, alive=slot.running,
                                            what=f"btcd container of {name}", log=btcd_log))  # fmt: skip
            if block_time > 0:
                mpid, mlog = start_block_clock(url, password, block_time, node_dir)
                ledger.pids.append(mpid)
                ledger.logs.append(str(mlog))
        except BaseException:
            stop(ledger.pids)
            raise
        ledger.config = ledger_config(url, password, keys, block_time, confirmations, fee_rate)
        write_ledger_record(node_dir, name, ledger.pids, info["height"], keys)
        return ledger

    def _start_one(self, name: str, node_dir: Path, port: int, started: list[int]) -> LaunchedLedger:
        node_dir.mkdir(parents=True, exist_ok=True)
        block_time, confirmations, fee_rate = self.settings(name)
        keys = dev_keys(name)
        password = secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        log = node_dir / "btcd.log"
        cmd = [str(self._btcd), *btcd_args(node_dir, port, password, keys[MINER].address)]
        # btcd makes ~/.btcd even when every path is given: keep it in the run dir.
        pid = spawn(cmd, log, env={"HOME": str(node_dir)}, cwd=node_dir)
        started.append(pid)
        (node_dir / "btcd.cmd").write_text(" ".join(c if "--rpcpass" not in c else "--rpcpass=***" for c in cmd) + "\n")
        pids = [pid]
        logs = [str(log)]

        info = run_sync(self._bootstrap(url, password, keys, pid, log, fee_rate))

        if block_time > 0:
            mpid, mlog = start_block_clock(url, password, block_time, node_dir)
            started.append(mpid)
            pids.append(mpid)
            logs.append(str(mlog))

        config = ledger_config(url, password, keys, block_time, confirmations, fee_rate)
        write_ledger_record(node_dir, name, pids, info["height"], keys)
        return LaunchedLedger(name=name, kind=self.kind, config=config, pids=pids, logs=logs)

    async def _bootstrap(
        self, url: str, password: str, keys: dict[str, Key], pid: int, log: Path, fee_rate: float
    ) -> dict[str, Any]:
        return await bootstrap_chain(
            url, password, keys, fee_rate, alive=lambda: alive(pid), what=f"btcd (pid {pid})", log=log
        )


# The pieces of a ledger's start the Docker runtime (dvp.runtime.docker) reuses: it runs
# btcd with the same arguments in a container, then does the same set-up from the host.


def dev_keys(name: str) -> dict[str, Key]:
    """The deterministic dev keys of ledger ``name``: the miner and every party."""
    return {p: Key.dev(name, p) for p in (MINER, *PARTIES)}


def btcd_args(node_dir: Path, port: int, password: str, mining_address: str) -> list[str]:
    """btcd's arguments (without the binary): regtest, RPC on 127.0.0.1 only, every path in ``node_dir``.
    Writes the (empty) config file btcd is pointed at."""
    conf = node_dir / "btcd.conf"
    conf.write_text("# dvp: every setting is on the command line\n")
    return [
        "--regtest",
        f"--configfile={conf}",
        f"--datadir={node_dir / 'data'}",
        f"--logdir={node_dir / 'logs'}",
        "--nolisten",
        "--nodnsseed",
        f"--rpclisten=127.0.0.1:{port}",
        "--notls",
        f"--rpcuser={RPC_USER}",
        f"--rpcpass={password}",
        f"--miningaddr={mining_address}",
        "--txindex",
        "--rejectnonstd",
        "--debuglevel=info",
    ]


async def wait_ready(rpc: RpcClient, *, alive: Callable[[], bool], what: str, log: Path, timeout: float = 60.0) -> None:
    """Wait until the node's RPC answers ``getblockchaininfo`` (btcd and elementsd alike); a node
    that exits, or does not answer within ``timeout`` seconds, is LedgerUnavailable with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise LedgerUnavailable(f"{what} exited during start-up: {log_tail(log)}")
        try:
            await rpc.call("getblockchaininfo")
            return
        except (RpcUnavailable, RpcError) as exc:  # -28: still loading
            if time.monotonic() > deadline:
                raise LedgerUnavailable(f"{what} not ready after {timeout:.0f} s ({exc}): {log_tail(log)}") from exc
            await asyncio.sleep(0.2)


async def bootstrap_chain(
    url: str, password: str, keys: dict[str, Key], fee_rate: float, *,
    alive: Callable[[], bool], what: str, log: Path,
) -> dict[str, Any]:  # fmt: skip
    """Wait for the node's RPC, mine :data:`INITIAL_BLOCKS`, check segwit, fund the parties.
    ``alive`` tells whether the node (process or container) still runs."""
    async with RpcClient(url, RPC_USER, password, timeout=60) as rpc:
        await wait_ready(rpc, alive=alive, what=what, log=log)
        dialect = dialect_for("btcd")
        view = ChainView(rpc, dialect)
        ledger = UtxoLedger(rpc, dialect, view, fee_rate=fee_rate)
        count = await rpc.call("getblockcount")
        if count < INITIAL_BLOCKS:
            await dialect.mine(rpc, INITIAL_BLOCKS - count, keys[MINER].address)
        info = await rpc.call("getblockchaininfo")
        segwit = (info.get("bip9_softforks") or {}).get("segwit", {}).get("status")
        if segwit != "active":
            raise LedgerUnavailable(
                f"segwit is not active on the btcd regtest chain at height {info.get('blocks')} ({segwit})"
            )
        await view.refresh()
        outputs = [(keys[p].script_pubkey, PARTY_OUTPUT_SAT) for p in PARTIES for _ in range(PARTY_OUTPUTS)]
        if all(view.balance(keys[p].script_pubkey) == 0 for p in PARTIES):
            tx = await ledger.pay(keys[MINER], outputs, include_unconfirmed=False)
            await ledger.broadcast(tx)
            await ledger.mine(1, keys[MINER].address)
        return {"height": view.height}


def start_block_clock(url: str, password: str, block_time: float, node_dir: Path, *, dialect: str = "btcd",
                      address: str = "") -> tuple[int, Path]:  # fmt: skip
    """Start ``python -m dvp_utxo.miner`` in its own session; (pid, log).  ``address``: where
    bitcoind and elementsd pay the blocks (btcd pays its ``--miningaddr``)."""
    mlog = node_dir / "miner.log"
    pkg_parent = str(Path(__file__).resolve().parent.parent)
    menv = {
        "DVP_UTXO_RPC_PASSWORD": password,
        "PYTHONPATH": os.pathsep.join(filter(None, [pkg_parent, os.environ.get("PYTHONPATH")])),
    }
    mpid = spawn(
        [sys.executable, "-m", "dvp_utxo.miner", "--url", url, "--user", RPC_USER,
         "--interval", f"{block_time:g}", "--dialect", dialect, *(["--address", address] if address else [])],
        mlog, env=menv, cwd=node_dir,
    )  # fmt: skip
    return mpid, mlog


def ledger_config(
    url: str, password: str, keys: dict[str, Key], block_time: float, confirmations: int, fee_rate: float
) -> dict[str, Any]:
    """The adapter config (kind utxo, dialect btcd) of a bootstrapped regtest node at ``url``."""
    return {
        "kind": "utxo",
        "rpc_url": url,
        "rpc_user": RPC_USER,
        "rpc_password": password,
        "network": "regtest",
        "dialect": "btcd",
        "keys": {p: k.wif for p, k in keys.items()},
        "issuer": "issuer",
        "miner": MINER,
        "confirmations": confirmations,
        "block_interval": block_time or 1.0,
        "fee_rate": fee_rate,
        "dev": True,
        "mine_on_wait": block_time <= 0,
        "start_height": 0,
    }


def write_ledger_record(
    node_dir: Path, name: str, pids: list[int], height: int, keys: dict[str, Key], **extra: Any
) -> None:
    """``ledger.json`` beside the node's data: what runs, and the parties' addresses.  ``extra``
    names the node and its version (default: btcd)."""
    node = extra or {"btcd": BTCD_VERSION}
    (node_dir / "ledger.json").write_text(
        json.dumps({"name": name, **node, "pids": pids, "height": height,
                    "addresses": {p: k.address for p, k in keys.items()}}, indent=2)
    )  # fmt: skip


def log_tail(path: Path, n: int = 2000) -> str:
    """The last ``n`` characters of a node's log, for an error message."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"
