"""Local ``elementsd -chain=elementsregtest`` nodes for dvp: ``kind = "elements"``.

``start`` runs one node per ledger name, RPC only (no P2P listener), on
``127.0.0.1:<port>``, in its own process group, with its data and log in
``<run_dir>/<name>/``, and no node wallet (``-disablewallet``: every key is the
framework's, so the project works on builds with or without the legacy wallet).
It then drives the chain to a state the framework can use:

1. the genesis block of a custom chain holds ``-initialfreecoins`` of the policy
   asset in an anyone-can-spend (OP_TRUE) output; one transaction, built and
   checked locally, pays each party :data:`PARTY_OUTPUTS` outputs from it and
   the rest to the ``miner`` key (which also funds ``issue`` of the policy asset);
2. a block mined to the miner confirms it;
3. optionally, a block clock (``python -m dvp_utxo.miner``) mines a block every
   ``block_time`` seconds, as for btcd.

The security and cash assets (BOND, EUR) are issued afterwards by the issuer key,
as Elements issued assets, in the adapter's ``bootstrap`` (their asset ids go to
the run state).  Block subsidy is zero on custom chains, so no coinbase needs to
mature.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable

from bitcoin.segwit_addr import encode as bech32_encode

from dvp.errors import ConfigError, LedgerUnavailable
from dvp.launcher import ContainerSlot, LaunchedLedger
from dvp.runtime.processes import alive, free_port, spawn, stop

from ..bins import ELEMENTS_VERSION, elementsd_missing, ensure_elementsd, find_elementsd
from ..chain import ChainView
from ..dialect import dialect_for
from ..keys import Key
from ..launcher import (
    MINER,
    PARTIES,
    RegtestLauncher,
    dev_keys,
    run_sync,
    start_block_clock,
    wait_ready,
    write_ledger_record,
)
from ..launcher import ledger_config as utxo_ledger_config  # the btcd config, completed for Elements
from ..rpc import RpcClient

PARTY_OUTPUTS = 5
PARTY_OUTPUT_SAT = 10 * 100_000_000
FREE_COINS = 21_000_000 * 100_000_000
RPC_USER = "dvp"
REGTEST_HRP = "ert"  # bech32 prefix of unconfidential elementsregtest addresses
POLICY_SYMBOL = "LBTC"  # the policy asset, which pays every fee


def address_of(script_pubkey: bytes) -> str:
    """Unconfidential bech32 address of a segwit v0 script on elementsregtest."""
    address: str | None = bech32_encode(REGTEST_HRP, script_pubkey[0], script_pubkey[2:])
    assert address is not None, "not a segwit v0 script"
    return address


def elementsd_args(node_dir: Path, port: int, password: str) -> list[str]:
    """elementsd's arguments (without the binary): elementsregtest, RPC on 127.0.0.1 only,
    no P2P, no wallet, every path in ``node_dir``."""
    return [
        "-chain=elementsregtest",
        f"-datadir={node_dir}",
        f"-conf={node_dir / 'elements.conf'}",
        "-server=1",
        "-listen=0",
        "-connect=0",
        "-dnsseed=0",
        "-rpcbind=127.0.0.1",
        "-rpcallowip=127.0.0.1",
        f"-rpcport={port}",
        f"-rpcuser={RPC_USER}",
        f"-rpcpassword={password}",
        "-disablewallet=1",
        "-txindex=1",
        "-validatepegin=0",
        f"-initialfreecoins={FREE_COINS}",
        "-acceptnonstdtxn=0",  # policy as on a public node: the rule tests see standardness too
        "-printtoconsole=1",
    ]


class ElementsLauncher(RegtestLauncher):
    compose_file = "elements.yaml"
    image_variables = ("DVP_ELEMENTS_IMAGE",)
    kind = "elements"

    def __init__(self, options: dict[str, dict[str, Any]] | None = None, *, block_interval: float | None = 1.0,
                 confirmations: int = 1, fee_rate: float = 1.0):  # fmt: skip
        """Per-ledger ``options`` (from the topology): ``block_time`` (0: no block clock, the
        adapter mines on demand), ``confirmations``, ``fee_rate`` (policy-asset units per vbyte)."""
        super().__init__(options)
        self.block_interval = block_interval
        self.confirmations = confirmations
        self.fee_rate = fee_rate
        self._binary: Path | None = None

    @classmethod
    def missing(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("wallycore") is None:
            return "wallycore is not installed (the 'elements' extra: pip install -e '.[elements]')"
        try:
            return None if find_elementsd() else elementsd_missing()
        except ConfigError as exc:  # DVP_ELEMENTSD names no executable
            return str(exc)

    def prepare(self) -> None:
        self._binary = ensure_elementsd()

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        if self._binary is None:
            self.prepare()
        started: list[int] = []
        ledgers: list[LaunchedLedger] = []
        try:
            for i, name in enumerate(names):
                port = port_base + i if port_base else free_port()
                ledgers.append(self._start_one(name, Path(run_dir) / name, port, started))
        except BaseException:
            stop(started)
            raise
        return ledgers

    def _start_one(self, name: str, node_dir: Path, port: int, started: list[int]) -> LaunchedLedger:
        node_dir = node_dir.resolve()  # elementsd runs in node_dir: a relative -datadir would not be found
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "elements.conf").write_text("# dvp: every setting is on the command line\n")
        keys = dev_keys(name)
        password = secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        log = node_dir / "elementsd.log"
        cmd = [str(self._binary), *elementsd_args(node_dir, port, password)]
        pid = spawn(cmd, log, env={"HOME": str(node_dir)}, cwd=node_dir)
        started.append(pid)
        (node_dir / "elementsd.cmd").write_text(
            " ".join(c if "-rpcpassword" not in c else "-rpcpassword=***" for c in cmd) + "\n"
        )
        ledger = LaunchedLedger(name=name, kind=self.kind, config={}, pids=[pid], logs=[str(log)])
        self._set_up(ledger, node_dir, url, password, keys, alive=lambda: alive(pid), what=f"elementsd (pid {pid})",
                     log=log)  # fmt: skip
        started.extend(ledger.pids[1:])  # the block clock
        return ledger

    def start_container(self, name: str, index: int, port: int, slot: ContainerSlot) -> LaunchedLedger:
        """elementsd in a container (docker/elements.yaml); then the same chain set-up as ``start``."""
        node_dir = (slot.run_dir / self.kind / name).resolve()
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "elements.conf").write_text("# dvp: every setting is on the command line\n")
        keys = dev_keys(name)
        password = secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        log = slot.start({"DVP_PORT": port, "DVP_NODE_DIR": node_dir, "DVP_RPC_PASSWORD": password,
                          "DVP_UID": os.getuid(), "DVP_GID": os.getgid()})  # fmt: skip
        ledger = LaunchedLedger(name=name, kind=self.kind, config={}, logs=[log] if log else [])
        self._set_up(ledger, node_dir, url, password, keys, alive=slot.running, what=f"elementsd container of {name}",
                     log=Path(log) if log else node_dir / "none")  # fmt: skip
        return ledger

    def _set_up(self, ledger: LaunchedLedger, node_dir: Path, url: str, password: str, keys: dict[str, Key], *,
                alive: Callable[[], bool], what: str, log: Path) -> None:  # fmt: skip
        """The chain set-up common to a process and a container: bootstrap the chain, start the block
        clock (its pid and log join ``ledger``'s; stopped again if a later step fails), fill in
        ``ledger.config``, write the ledger record."""
        block_time, confirmations, fee_rate = self.settings(ledger.name)
        clock: list[int] = []
        try:
            info = run_sync(bootstrap_chain(url, password, keys, fee_rate, alive=alive, what=what, log=log))
            if block_time > 0:
                mpid, mlog = start_block_clock(url, password, block_time, node_dir, dialect="elementsd",
                                               address=address_of(keys[MINER].script_pubkey))  # fmt: skip
                clock.append(mpid)
                ledger.logs.append(str(mlog))
            ledger.config = ledger_config(url, password, keys, block_time, confirmations, fee_rate,
                                          info["policy_asset"])  # fmt: skip
            write_ledger_record(node_dir, ledger.name, ledger.pids + clock, info["height"], keys,
                                elementsd=ELEMENTS_VERSION, policy_asset=info["policy_asset"])  # fmt: skip
        except BaseException:
            stop(clock)
            raise
        ledger.pids.extend(clock)


async def bootstrap_chain(
    url: str, password: str, keys: dict[str, Key], fee_rate: float, *, alive: Callable[[], bool], what: str, log: Path
) -> dict[str, Any]:
    """Wait for the node, check the chain, hand the genesis free coins to the framework's keys."""
    from .tx import ANYONE_CAN_SPEND, TxOut, build_free_coins_spend  # wallycore: the elements extra

    async with RpcClient(url, RPC_USER, password, timeout=60) as rpc:
        await wait_ready(rpc, alive=alive, what=what, log=log)
        info = await rpc.call("getblockchaininfo")
        if info.get("chain") != "elementsregtest":
            raise LedgerUnavailable(f"{what}: chain is {info.get('chain')!r}, expected elementsregtest")
        policy = (await rpc.call("getsidechaininfo"))["pegged_asset"]
        dialect = dialect_for("elementsd")
        view = ChainView(rpc, dialect)
        await view.refresh()
        if all(view.balance(keys[p].script_pubkey, asset=policy, min_conf=0) == 0 for p in PARTIES):
            free = [u for u in view.unspent(ANYONE_CAN_SPEND) if u.asset == policy]
            if not free:
                raise LedgerUnavailable(f"{what}: no anyone-can-spend genesis coins (is -initialfreecoins set?)")
            outs = [
                TxOut(keys[p].script_pubkey, policy, PARTY_OUTPUT_SAT) for p in PARTIES for _ in range(PARTY_OUTPUTS)
            ]
            tx, _fee = build_free_coins_spend(
                free[:1], outs, policy_asset=policy, fee_rate=fee_rate, change_script=keys[MINER].script_pubkey
            )
            await rpc.call("sendrawtransaction", tx.hex)
            await dialect.mine(rpc, 1, address_of(keys[MINER].script_pubkey))
            await view.refresh()
        return {"height": view.height, "policy_asset": policy}


def ledger_config(url: str, password: str, keys: dict[str, Key], block_time: float, confirmations: int, fee_rate: float,
                  policy_asset: str) -> dict[str, Any]:  # fmt: skip
    """The adapter config (kind elements) of a bootstrapped elementsregtest node at ``url``:
    the btcd one's fields, on Elements."""
    config = utxo_ledger_config(url, password, keys, block_time, confirmations, fee_rate)
    config.update(kind="elements", network="elementsregtest", dialect="elementsd", policy_asset=policy_asset,
                  assets={POLICY_SYMBOL: "native"})  # fmt: skip
    return config
