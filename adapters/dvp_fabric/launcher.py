"""The ``fabric`` node launcher: one local Fabric network, one channel per ledger name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dvp.errors import ConfigError
from dvp.launcher import ContainerSlot, LaunchedLedger, NodeLauncher

from .bins import FabricInstall, ImageInstall, chaincode_server
from .network import BATCH_TIMEOUT_MS, MAX_SKEW_SECONDS, FabricNetwork


class FabricLauncher(NodeLauncher):
    """Each ledger name (``fabric-a``, ``fabric-b`` ...) becomes a channel of the
    same name on one network of one orderer and two peers (SellerBank,
    BuyerBank).  The processes are shared, so every ledger lists all their pids.

    Ledger option ``batch_timeout_ms`` (default 100): the orderer's BatchTimeout,
    the longest a submitted transaction waits for its block; the ledgers share one
    orderer, so they must agree on it.  Ledger option ``max_skew_seconds`` (default 30): how far
    the chaincode lets a proposal's timestamp stray from the endorser's clock (docs/design.md, rule 8),
    the clock skew of every expiry on these ledgers; one chaincode server serves them all."""

    kind = "fabric"
    compose_file = "fabric.yaml"
    image_variables = ("DVP_FABRIC_TOOLS_IMAGE", "DVP_FABRIC_ORDERER_IMAGE", "DVP_FABRIC_PEER_IMAGE")
    shared_nodes = True

    def __init__(self, options: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(options)
        self.install = FabricInstall.default()
        self.network: FabricNetwork | None = None

    @classmethod
    def endpoint(cls, config: dict[str, Any]) -> str:
        # Every channel is served by the same peers: the first one answering means the network is up.
        peers: dict[str, dict[str, Any]] = config.get("peers") or {}
        first = next(iter(peers.values()), {})
        return str(first.get("endpoint", ""))

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

    def _network(self, names: list[str], run_dir: Path, port_base: int, install: FabricInstall) -> FabricNetwork:
        return FabricNetwork(Path(run_dir), list(names), port_base=port_base, install=install,
                             chaincode_cmd=chaincode_server(), batch_timeout_ms=self.batch_timeout_ms(names),
                             max_skew_seconds=self._shared(names, "max_skew_seconds", MAX_SKEW_SECONDS,
                                                           "its chaincode server"))  # fmt: skip

    def _ledgers(self, names: list[str], network: FabricNetwork, logs: list[str]) -> list[LaunchedLedger]:
        self.network = network
        return [LaunchedLedger(name=name, kind=self.kind, config=network.ledger_config(name), pids=list(network.pids),
                               logs=list(logs)) for name in names]  # fmt: skip

    def start(self, names: list[str], run_dir: Path, port_base: int) -> list[LaunchedLedger]:
        network = self._network(names, run_dir, port_base, self.install)
        network.start()  # stops what it started on failure
        return self._ledgers(names, network, [p.log for p in network.procs])

    def start_containers(self, names: list[str], slot: ContainerSlot) -> list[LaunchedLedger]:
        """The orderer and peers in containers of docker/fabric.yaml (official images or their
        stand-ins), every CLI step in its ``tools`` container, the chaincode server here; then
        the same channels and lifecycle as ``start``.  The ledger pids are the chaincode
        server's; the containers are the runtime's to stop."""
        run_dir = (slot.run_dir / self.kind).resolve()
        network = self._network(names, run_dir, 0, ImageInstall())
        network.allocate()
        # Node settings go in as env files, written from the functions the native runtime uses.
        env_dir = run_dir / "docker"
        env_dir.mkdir(parents=True, exist_ok=True)
        for service, env in network.node_envs().items():
            (env_dir / f"{service}.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        compose_env = {"DVP_FABRIC_DIR": run_dir}
        logs = [slot.start(compose_env, services=["tools"])]
        network.executor = lambda argv, env, timeout: slot.exec("tools", argv, env, cwd=run_dir, timeout=timeout)
        try:
            network.prepare()
            logs.append(slot.start(compose_env, services=["orderer", "peer-seller", "peer-buyer"]))
            network.wait_nodes(slot.wait)
            network.configure()
        except BaseException:
            network.stop()  # the chaincode server; the runtime removes the containers
            raise
        return self._ledgers(names, network, [p.log for p in network.procs] + [l for l in logs if l])
