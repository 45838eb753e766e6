"""The run directory every runtime keeps: ``state.json`` with what it started.

The file is read through :class:`RunState`, so a damaged or hand-edited one ends in one
line naming the file and the field, and is kept for the user to look at: process ids
from it are signalled by `dvp down`, so nothing unchecked from it is ever acted on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..models import Asset
from ..scenario import first_error

STATE = "state.json"

# 0 and 1 would signal our own process group or init; negative ids are whole groups.
Pid = Annotated[int, Field(gt=1, strict=True)]


class DockerEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    compose: list[str]
    file: str
    env_file: str
    project: str
    containers: list[str] = []


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str
    config: dict[str, Any]
    pids: list[Pid] = []
    logs: list[str] = []
    docker: DockerEntry | None = None


class RunState(BaseModel):
    model_config = ConfigDict(extra="allow")

    runtime: str = "process"
    complete: bool = True
    ledgers: dict[str, LedgerEntry]
    assets: list[Asset] = []


def read_state(path: Path) -> dict[str, Any] | None:
    """``state.json`` as checked plain data, or None when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"run_dir: cannot read {path}: {exc}") from None
    try:
        state = RunState.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"run_dir: {path} is damaged ({first_error(exc)}); fix it, or stop the nodes "
                          "it lists by hand and remove it") from None  # fmt: skip
    return state.model_dump(mode="json")


class RunDir:
    """Base of the runtimes: one ``state.json`` per run directory, written atomically (0600,
    it holds dev keys and RPC passwords)."""

    name: str

    def __init__(self, run_dir: Path):
        # Absolute once, here: every path handed to a child process (node data dirs, Fabric's CLI
        # tools run in the run dir, compose files, agents) derives from it, and a relative one
        # would be read against the child's own working directory (the default run dir is `.dvp`).
        self.run_dir = Path(run_dir).expanduser().absolute()

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE

    def state(self) -> dict[str, Any] | None:
        return read_state(self.state_path)

    def check_free(self) -> None:
        if self.state() is not None:
            raise ConfigError(f"run_dir: testnets already recorded in {self.state_path}; run `dvp down` first")

    def save(
        self, ledgers: dict[str, dict[str, Any]], assets: list[Asset], *, partial: bool = False, **extra: Any
    ) -> dict[str, Any]:
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
