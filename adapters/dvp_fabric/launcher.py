"""The ``fabric`` node launcher: one local Fabric network, one channel per ledger name."""

from __future__ import annotations

from pathlib import Path

from dvp.errors import ConfigError
from dvp.runtime.launcher import LaunchedLedger, NodeLauncher

from .bins import FabricInstall, chaincode_server
from .network import BATCH_TIMEOUT_MS, FabricNetwork


class FabricLauncher(NodeLauncher):
    """Each ledger name (``fabric-a``, ``fabric-b`` ...) becomes a channel of the
    same name on one network of one orderer and two peers (SellerBank,
    BuyerBank).  The processes are shared, so every ledger lists all their pids.

    Ledger option ``batch_timeout_ms`` (default 100): the orderer's BatchTimeout,
    the longest a submitted transaction waits for its block; the ledgers share one
    orderer, so they must agree on it."""

    kind = "fabric"

    def __init__(self, options=None):
        super().__init__(options)
        self.install = FabricInstall.default()
        self.network: FabricNetwork | None = None

    def prepare(self) -> None:
        self.install.build()
        chaincode_server()

    def batch_timeout_ms(self, names: list[str]) -> int:
        values = {int(self.options.get(n, {}).get("batch_timeout_ms", BATCH_TIMEOUT_MS)) for n in names}
        if len(values) != 1:
            raise ConfigError(f"ledgers.{names[0]}.options.batch_timeout_ms: the channels of one Fabric network "
                              f"share its orderer, so they need one value (got {sorted(values)})")  # fmt: skip
        return values.pop()

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        network = FabricNetwork(Path(run_dir), list(names), port_base=port_base, install=self.install,
                                chaincode_cmd=chaincode_server(), batch_timeout_ms=self.batch_timeout_ms(names))  # fmt: skip
        network.start()  # stops what it started on failure
        self.network = network
        logs = [p.log for p in network.procs]
        return [
            LaunchedLedger(name=name, kind=self.kind, config=network.ledger_config(name),
                           pids=list(network.pids), logs=list(logs))  # fmt: skip
            for name in names
        ]
