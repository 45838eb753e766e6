"""The ``fabric`` node launcher: one local Fabric network, one channel per ledger name."""

from __future__ import annotations

from pathlib import Path

from dvp.runtime.launcher import LaunchedLedger, NodeLauncher

from .bins import FabricInstall, chaincode_binary
from .network import FabricNetwork


class FabricLauncher(NodeLauncher):
    """Each ledger name (``fabric-a``, ``fabric-b`` ...) becomes a channel of the
    same name on one network of one orderer and two peers (SellerBank,
    BuyerBank).  The processes are shared, so every ledger lists all their pids."""

    kind = "fabric"

    def __init__(self, options=None):
        super().__init__(options)
        self.install = FabricInstall.default()
        self.network: FabricNetwork | None = None

    def prepare(self) -> None:
        self.install.build()
        chaincode_binary()

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        network = FabricNetwork(Path(run_dir), list(names), port_base=port_base, install=self.install,
                                chaincode_bin=chaincode_binary())
        network.start()  # stops what it started on failure
        self.network = network
        logs = [p.log for p in network.procs]
        return [
            LaunchedLedger(name=name, kind=self.kind, config=network.ledger_config(name),
                           pids=list(network.pids), logs=list(logs))
            for name in names
        ]
