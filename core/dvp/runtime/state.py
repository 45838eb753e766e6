"""The run directory every runtime keeps: ``state.json`` with what it started."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import Asset

STATE = "state.json"


class RunDir:
    """Base of the runtimes: one ``state.json`` per run directory, written atomically (0600,
    it holds dev keys and RPC passwords)."""

    name: str

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE

    def state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        return json.loads(self.state_path.read_text())

    def check_free(self) -> None:
        if self.state() is not None:
            raise ConfigError(f"run_dir: testnets already recorded in {self.state_path}; run `dvp down` first")

    def save(self, ledgers: dict[str, dict[str, Any]], assets: list[Asset], *, partial: bool = False,
             **extra: Any) -> dict[str, Any]:
        state = {
            "runtime": self.name,
            "complete": not partial,
            **extra,
            "ledgers": ledgers,
            "assets": [a.model_dump(mode="json") for a in assets],
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(self.state_path)
        return state


def replace_pid(run_dir: Path, old: int, new: int) -> bool:
    """Swap ``old`` for ``new`` wherever ``run_dir/state.json`` records it (a node a
    launcher restarted), so ``down`` stops the process that runs now.  False when
    no state there lists ``old``."""
    rd = RunDir(run_dir)
    state = rd.state()
    if state is None:
        return False
    changed = False
    for ledger in state.get("ledgers", {}).values():
        pids = ledger.get("pids", [])
        if old in pids:
            ledger["pids"] = [new if p == old else p for p in pids]
            changed = True
    if changed:
        tmp = rd.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(rd.state_path)
    return changed
