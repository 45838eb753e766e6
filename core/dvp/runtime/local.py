"""The embedded runtime: ledgers as local processes, state in a run directory.

``up`` starts every ledger of a topology through its platform's launcher,
deploys on-ledger code and assets, and writes ``state.json`` (endpoints, keys,
contract addresses, process ids).  ``down`` stops exactly the process groups
recorded there.  The Docker runtime is a second implementation of this seam.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ..launcher import LaunchedLedger
from ..models import Asset
from ..registry import launcher_class, ledger_endpoint
from ..topology import Topology
from .base import Runtime
from .bootstrap import bootstrap
from .processes import alive, endpoint_answers, stop


class LocalRuntime(Runtime):
    name = "process"

    def up(self, topology: Topology, *, port_base: int | None = None,
           progress: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
        self.check_free()
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
            configs = asyncio.run(bootstrap(launched, topology.assets))
            for ledger in launched:
                ledger.config = configs[ledger.name]
            return self._write(launched, topology.assets)
        except BaseException:
            stop([pid for ledger in launched for pid in ledger.pids])
            self.state_path.unlink(missing_ok=True)
            raise

    def _write(self, launched: list[LaunchedLedger], assets: list[Asset], partial: bool = False) -> dict[str, Any]:
        ledgers = {l.name: {"kind": l.kind, "config": l.config, "pids": l.pids, "logs": l.logs} for l in launched}
        return self.save(ledgers, assets, partial=partial)

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
        rows = []
        for name, ledger in state["ledgers"].items():
            endpoint = ledger_endpoint(ledger["kind"], ledger["config"])
            rows.append({
                "ledger": name,
                "kind": ledger["kind"],
                "pids": ledger["pids"],
                # A recorded pid can outlive its node (zombie, reused pid): alive means it answers.
                "alive": all(alive(p) for p in ledger["pids"]) and (not endpoint or endpoint_answers(endpoint)),
                "endpoint": endpoint,
            })  # fmt: skip
        return rows
