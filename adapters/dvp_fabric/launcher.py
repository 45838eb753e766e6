"""The ``fabric`` node launcher: one local Fabric network, one channel per ledger name."""

from __future__ import annotations

import shutil
from pathlib import Path

from dvp.errors import ConfigError
from dvp.runtime.launcher import LaunchedLedger, NodeLauncher

from .bins import FabricInstall, chaincode_server
from .network import BATCH_TIMEOUT_MS, MAX_SKEW_SECONDS, FabricNetwork


class FabricLauncher(NodeLauncher):
    """Each ledger name (``fabric-a``, ``fabric-b`` ...) becomes a channel of the
    same name on one network of one orderer and two peers (SellerBank,
    BuyerBank).  The processes are shared, so every ledger lists all their pids.

    Ledger option ``batch_timeout_ms`` (default 100): the orderer's BatchTimeout,
    the longest a submitted transaction waits for its block; the ledgers share one
    orderer, so they must agree on it.  Ledger option ``max_skew_seconds`` (default 30): how far
    the chaincode lets a proposal's timestamp stray from the endorser's clock (HTLC rule 8),
    the clock skew of every expiry on these ledgers; one chaincode server serves them all."""

    kind = "fabric"

    def __init__(self, options=None):
        super().__init__(options)
        self.install = FabricInstall.default()
        self.network: FabricNetwork | None = None

    @classmethod
    def missing(cls) -> str | None:
        problem = FabricInstall.default().problem()
        if problem is None and (shutil.which("node") is None or shutil.which("npm") is None):
            problem = "the Fabric chaincode needs Node.js >= 18 with npm on PATH"
        return problem

    def prepare(self) -> None:
        self.install.build()
        chaincode_server()

    def batch_timeout_ms(self, names: list[str]) -> int:
        return self._shared(names, "batch_timeout_ms", BATCH_TIMEOUT_MS, "its orderer")

    def _shared(self, names: list[str], option: str, default: int, what: str) -> int:
        values = {int(self.options.get(n, {}).get(option, default)) for n in names}
        if len(values) != 1:
            raise ConfigError(f"ledgers.{names[0]}.options.{option}: the channels of one Fabric network "
                              f"share {what}, so they need one value (got {sorted(values)})")  # fmt: skip
        return values.pop()

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        network = FabricNetwork(Path(run_dir), list(names), port_base=port_base, install=self.install,
                                chaincode_cmd=chaincode_server(), batch_timeout_ms=self.batch_timeout_ms(names),
                                max_skew_seconds=self._shared(names, "max_skew_seconds", MAX_SKEW_SECONDS,
                                                              "its chaincode server"))  # fmt: skip
        network.start()  # stops what it started on failure
        self.network = network
        logs = [p.log for p in network.procs]
        return [
            LaunchedLedger(name=name, kind=self.kind, config=network.ledger_config(name),
                           pids=list(network.pids), logs=list(logs))  # fmt: skip
            for name in names
        ]
