"""Fixtures for the UTXO (btcd) tests: a real btcd regtest node per test module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import pytest_asyncio

from dvp.runtime.processes import alive

from ..testbed import ELEMENTS_MISSING, IN_CI, binary_missing

# Without python-bitcoinlib (the ``utxo`` extra) these tests cannot even be collected.
if importlib.util.find_spec("bitcoin") is None:  # pragma: no cover
    collect_ignore_glob = ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "utxo: UTXO ledger tests (btcd regtest; offline ones need no node)")


@pytest.fixture(scope="module")
def btcd_ledger(tmp_path_factory: pytest.TempPathFactory):
    """One btcd regtest node, no block clock (tests mine explicitly); stopped after the module."""
    from dvp_utxo.launcher import UtxoLauncher, stop_process_group

    launcher = UtxoLauncher(block_interval=None)  # no block clock: tests mine explicitly
    launcher.prepare()
    run_dir: Path = tmp_path_factory.mktemp("utxo-run")
    ledgers = launcher.start(["btc"], run_dir, 0)
    try:
        yield ledgers[0]
    finally:
        for led in ledgers:
            for pid in led.pids:
                stop_process_group(pid)
        leftovers = [pid for led in ledgers for pid in led.pids if alive(pid)]
        assert not leftovers, f"processes still running after stop: {leftovers}"


class Chain:
    """A test's handle on the node: RPC, chain view, HTLC operations and the party keys."""

    def __init__(self, config: dict):
        from dvp_utxo.chain import ChainView
        from dvp_utxo.dialect import dialect_for
        from dvp_utxo.htlc import UtxoLedger
        from dvp_utxo.keys import Key
        from dvp_utxo.rpc import RpcClient

        self.config = config
        self.rpc = RpcClient(config["rpc_url"], config["rpc_user"], config["rpc_password"])
        self.dialect = dialect_for(config["dialect"])
        self.view = ChainView(self.rpc, self.dialect)
        self.ledger = UtxoLedger(self.rpc, self.dialect, self.view, fee_rate=config["fee_rate"])
        self.keys = {p: Key.parse(w) for p, w in config["keys"].items()}

    async def mine(self, n: int = 1) -> None:
        await self.ledger.mine(n, self.keys["miner"].address)


@pytest_asyncio.fixture
async def chain(btcd_ledger):
    c = Chain(btcd_ledger.config)
    await c.view.refresh()
    try:
        yield c
    finally:
        await c.rpc.aclose()


# --- Elements: a real elementsd (elementsregtest), when its binary is present ------------------


def elementsd_or_skip() -> None:
    """At a module's import: skip the module with one line when elementsd or wallycore is missing.
    Under CI=true nothing happens here: the module's tests carry ``ELEMENTS_MARKS`` and fail with
    the reason (tests/conftest.py)."""
    if ELEMENTS_MISSING and not IN_CI:
        pytest.skip(ELEMENTS_MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def elements_node(tmp_path_factory: pytest.TempPathFactory):
    """One wallet-less elementsd, no block clock (tests mine explicitly); stopped after the module."""
    if ELEMENTS_MISSING:
        binary_missing(ELEMENTS_MISSING)
    from dvp_utxo.elements.launcher import ElementsLauncher
    from dvp_utxo.launcher import stop_process_group

    launcher = ElementsLauncher(block_interval=None)
    launcher.prepare()
    ledgers = launcher.start(["elements"], tmp_path_factory.mktemp("elements-run"), 0)
    try:
        yield ledgers[0]
    finally:
        for led in ledgers:
            for pid in led.pids:
                stop_process_group(pid)
        leftovers = [pid for led in ledgers for pid in led.pids if alive(pid)]
        assert not leftovers, f"processes still running after stop: {leftovers}"


class ElementsChain(Chain):
    """The Elements handle: the same chain view, the Elements builders, issued assets."""

    def __init__(self, config: dict):
        super().__init__(config)
        from dvp_utxo.elements.ledger import ElementsLedger

        self.policy = config["policy_asset"]
        self.ledger = ElementsLedger(
            self.rpc, self.dialect, self.view, policy_asset=self.policy, fee_rate=config["fee_rate"]
        )

    async def mine(self, n: int = 1) -> None:
        from dvp_utxo.elements.launcher import address_of

        await self.ledger.mine(n, address_of(self.keys["miner"].script_pubkey))

    async def send(self, tx) -> str:
        return await self.ledger.send(tx)
