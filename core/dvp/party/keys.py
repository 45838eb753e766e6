"""One party's key file: the run state of a set of ledgers as that party alone sees it.

`dvp up` records every party's keys in one state file, which a single process playing both
roles needs.  An agent gets :func:`party_state` of it instead: each ledger's config narrowed
by :meth:`~dvp.adapter.LedgerConfig.for_party` to that party's own secrets, every other party
(the counterparty, the issuer, the miner) by its public identity only, and node access
settings (RPC URLs and users, TLS CAs) unchanged, since they are not a party's keys.  The
file is created 0600 before a byte of it is written, and :func:`load_party_file` refuses one
that others can read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from ..errors import ConfigError, UnknownParty
from ..registry import build_adapter
from ..runtime.run_dir import RunState
from ..scenario import first_error

MODE = 0o600


def party_state(state: dict[str, Any], party: str) -> dict[str, Any]:
    """``state`` (the run-state shape) with every ledger's config narrowed to ``party``; a
    ledger where ``party`` does not exist is left out, with its assets.

    Raises ConfigError naming the ledger for a config that does not parse or that cannot be
    narrowed, and when ``party`` is on none of the ledgers."""
    ledgers: dict[str, Any] = {}
    for name, entry in _checked(state, "state").ledgers.items():
        try:
            narrowed = build_adapter(name, entry.config).config.for_party(party)
        except UnknownParty:
            continue
        except ConfigError as exc:
            raise ConfigError(f"ledgers.{name}: {exc}") from None
        ledgers[name] = {"kind": entry.kind, "config": _revealed(narrowed.model_dump())}
    if not ledgers:
        raise ConfigError(f"party {party!r}: on none of the ledgers ({', '.join(state.get('ledgers', {})) or 'none'})")
    assets = [a for a in state.get("assets", []) if a.get("ledger") in ledgers]
    return {"party": party, "runtime": state.get("runtime", "process"), "complete": True,
            "ledgers": ledgers, "assets": assets}  # fmt: skip


def write_party_file(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (from :func:`party_state`) to a new file, mode 0600 from its creation.

    Raises ConfigError if the file exists (never overwritten) or cannot be created."""
    path = Path(path)
    text = json.dumps(state, indent=1)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        raise ConfigError(f"party file {path}: exists already; remove it or choose another path") from None
    except OSError as exc:
        raise ConfigError(f"party file {path}: cannot create it: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, MODE)  # whatever the umask made of it
        f.write(text)


def load_party_file(path: Path | str) -> dict[str, Any]:
    """A party file as plain run-state data, for :meth:`dvp.ledger_set.LedgerSet.from_state`.

    Raises ConfigError (one line) if it is missing, readable by others than its owner,
    not JSON, or not of the run-state shape with a ``party``."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise ConfigError(f"party file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"party file {path}: {exc.strerror}") from None
    if mode & ~MODE:
        raise ConfigError(f"party file {path}: mode {mode:04o}, must be {MODE:04o} (chmod 600 {path})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"party file {path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"party file {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("party"), str) or not data["party"]:
        raise ConfigError(f"party file {path}: not a party file (no 'party' name)")
    return _checked(data, f"party file {path}").model_dump(mode="json")


def _checked(state: Any, where: str) -> RunState:
    try:
        return RunState.model_validate(state)
    except ValidationError as exc:
        raise ConfigError(f"{where}: wrong shape ({first_error(exc)})") from None


def _revealed(value: Any) -> Any:
    """A config dump with its secrets as plain strings: the file is the party's key store."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_revealed(v) for v in value]
    return value
