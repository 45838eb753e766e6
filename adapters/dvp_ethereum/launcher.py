"""Starts anvil (from the pinned npm package) as local processes on 127.0.0.1, or in a
container of the Docker runtime (docker/evm.yaml) with the same arguments and config."""

from __future__ import annotations

import platform
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from eth_account import Account

from dvp.env import env_executable
from dvp.errors import ConfigError
from dvp.launcher import ContainerSlot, LaunchedLedger, NodeLauncher
from dvp.runtime.processes import free_port, port_open, spawn, stop, wait_until

from .config import ANVIL_MNEMONIC

REPO = Path(__file__).resolve().parents[2]
PARTIES = ("issuer", "seller", "buyer")
# `dvp bench --party-pairs P`'s other party pairs (dvp.bench.runner.party_pair): dev accounts
# past the spare fourth one, funded with ether by anvil like the others.
BENCH_PARTIES = tuple(f"{role}-{i}" for i in range(2, 5) for role in ("seller", "buyer"))
ACCOUNTS = 4 + len(BENCH_PARTIES)  # also in docker/*.yaml
FIRST_CHAIN_ID = 31337
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_binary() -> Path:
    """The native anvil binary of the npm package (not its node wrapper, so stopping
    the process we started stops the node itself)."""
    env = env_executable("DVP_ANVIL")
    if env:
        return env
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine())
    path = REPO / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if path.exists():
        return path
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError(f"anvil: {path} missing; run `make setup` (npm ci)")


def dev_keys() -> dict[str, str]:
    Account.enable_unaudited_hdwallet_features()
    return {
        party: Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
        for i, party in [*enumerate(PARTIES), *enumerate(BENCH_PARTIES, start=4)]
    }


class AnvilLauncher(NodeLauncher):
    kind = "ethereum"
    compose_file = "evm.yaml"
    image_variables = ("DVP_FOUNDRY_IMAGE",)

    def prepare(self) -> None:
        if not anvil_binary().exists():
            subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=REPO, check=True)

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        binary = anvil_binary()
        keys = dev_keys()
        started: list[LaunchedLedger] = []
        try:
            for i, name in enumerate(names):
                port = port_base + i if port_base else free_port()
                chain_id, block_time = ledger_settings(self.options.get(name, {}), i)
                log = run_dir / f"{name}.log"
                pid = spawn([str(binary), *anvil_args(port, chain_id, block_time)], log)
                started.append(
                    LaunchedLedger(name=name, kind=self.kind, pids=[pid], logs=[str(log)],
                                   config=ledger_config(port, chain_id, block_time, keys))
                )  # fmt: skip
                wait_until(partial(port_open, port), timeout=30, what=f"anvil {name}", pid=pid, log=log)
        except BaseException:
            stop([p for ledger in started for p in ledger.pids])
            raise
        return started

    def start_container(self, name: str, index: int, port: int, slot: ContainerSlot) -> LaunchedLedger:
        chain_id, block_time = ledger_settings(self.options.get(name, {}), index)
        # The compose file always passes --block-time, which anvil refuses at 0: start with
        # 1 s and switch to mining on every transaction, which is anvil without it.
        log = slot.start({"DVP_PORT": port, "DVP_CHAIN_ID": chain_id,
                          "DVP_BLOCK_TIME": f"{block_time:g}" if block_time > 0 else "1"})  # fmt: skip
        config = ledger_config(port, chain_id, block_time, dev_keys())
        slot.wait(lambda: port_open(port), f"anvil {name}")
        if block_time <= 0:
            from web3 import Web3

            provider = Web3.HTTPProvider(config["rpc_url"], request_kwargs={"timeout": 10})
            provider.make_request("evm_setIntervalMining", [0])
            provider.make_request("evm_setAutomine", [True])
        return LaunchedLedger(name=name, kind=self.kind, config=config, logs=[log] if log else [])


# The pieces of ``start`` shared by both ways of running anvil.


def ledger_settings(opts: dict[str, Any], index: int) -> tuple[int, float]:
    """(chain id, block time) of the ``index``-th EVM ledger of a topology."""
    return int(opts.get("chain_id", FIRST_CHAIN_ID + index)), float(opts.get("block_time", 1.0))


# anvil keeps every block's state and spills the old ones to ~/.foundry/anvil/tmp: a testnet
# at 1 s blocks wrote gigabytes an hour there and filled the disk.  The last KEPT_STATES states
# stay in memory (enough to replay a just-mined transaction for its revert reason), none on disk.
KEPT_STATES = 256


def anvil_args(port: int, chain_id: int, block_time: float) -> list[str]:
    """anvil's arguments (without the binary); ``block_time <= 0``: mine on every transaction."""
    args = ["--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
            "--mnemonic", ANVIL_MNEMONIC, "--accounts", str(ACCOUNTS),
            "--prune-history", str(KEPT_STATES)]  # fmt: skip
    if block_time > 0:
        args += ["--block-time", f"{block_time:g}"]
    return args


def ledger_config(port: int, chain_id: int, block_time: float, keys: dict[str, str]) -> dict[str, Any]:
    """The adapter config (kind ethereum) of an anvil on 127.0.0.1:``port``."""
    return {
        "kind": "ethereum",
        "rpc_url": f"http://127.0.0.1:{port}",
        "chain_id": chain_id,
        "accounts": keys,
        "block_interval": block_time if block_time > 0 else 1.0,
        "dev": True,
    }
