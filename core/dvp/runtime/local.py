"""The embedded runtime: ledgers as local processes, state in a run directory.

``up`` starts every ledger of a topology through its platform's launcher,
deploys on-ledger code and assets, and writes ``state.json`` (endpoints, keys,
contract addresses, process ids).  ``down`` stops exactly the process groups
recorded there.  The Docker runtime is a second implementation of this seam.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import Asset
from ..registry import adapter_class, launcher_class
from ..topology import Topology
from .launcher import LaunchedLedger
from .processes import alive, stop

STATE = "state.json"


class LocalRuntime:
    name = "process"

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE

    def state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        return json.loads(self.state_path.read_text())

    def up(self, topology: Topology, *, port_base: int | None = None, progress=print) -> dict[str, Any]:
        if self.state() is not None:
            raise ConfigError(f"run_dir: testnets already recorded in {self.state_path}; run `dvp down` first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        by_kind: dict[str, list[str]] = defaultdict(list)
        for spec in topology.ledgers:
            by_kind[spec.kind].append(spec.name)
        launched: list[LaunchedLedger] = []
        try:
            for kind, names in by_kind.items():
                launcher = launcher_class(kind)({s.name: s.options for s in topology.ledgers})
                progress(f"preparing {kind} binaries")
                launcher.prepare()
                progress(f"starting {', '.join(names)}")
                launched += launcher.start(names, self.run_dir / kind, port_base or 0)
                # Record pids as soon as they exist, so `down` can stop a half-started network.
                self._write(launched, topology.assets, partial=True)
            progress("deploying contracts and assets")
            configs = asyncio.run(_bootstrap(launched, topology.assets))
            for ledger in launched:
                ledger.config = configs[ledger.name]
            return self._write(launched, topology.assets)
        except BaseException:
            stop([pid for ledger in launched for pid in ledger.pids])
            self.state_path.unlink(missing_ok=True)
            raise

    def _write(self, launched: list[LaunchedLedger], assets: list[Asset], partial: bool = False) -> dict[str, Any]:
        state = {
            "runtime": self.name,
            "complete": not partial,
            "ledgers": {
                l.name: {"kind": l.kind, "config": l.config, "pids": l.pids, "logs": l.logs} for l in launched
            },
            "assets": [a.model_dump(mode="json") for a in assets],
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.chmod(tmp, 0o600)  # dev keys
        tmp.replace(self.state_path)
        return state

    def down(self) -> list[int]:
        state = self.state()
        if state is None:
            return []
        pids = [pid for ledger in state["ledgers"].values() for pid in ledger["pids"]]
        stop(pids)
        self.state_path.unlink(missing_ok=True)
        return pids

    def status(self) -> list[dict[str, Any]]:
        state = self.state() or {"ledgers": {}}
        return [
            {
                "ledger": name,
                "kind": ledger["kind"],
                "pids": ledger["pids"],
                "alive": all(alive(p) for p in ledger["pids"]),
                "endpoint": ledger["config"].get("rpc_url") or ledger["config"].get("endpoint", ""),
            }
            for name, ledger in state["ledgers"].items()
        ]


async def _bootstrap(launched: list[LaunchedLedger], assets: list[Asset]) -> dict[str, dict[str, Any]]:
    async def one(ledger: LaunchedLedger) -> tuple[str, dict[str, Any]]:
        cls = adapter_class(ledger.kind)
        adapter = cls(ledger.name, cls.config_model.model_validate(ledger.config))
        async with adapter:
            updates = await adapter.bootstrap([a for a in assets if a.ledger == ledger.name])
        return ledger.name, {**ledger.config, **updates}

    return dict(await asyncio.gather(*(one(l) for l in launched)))
