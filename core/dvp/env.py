"""Typed reads of ``DVP_*`` environment variables: a malformed value is a one-line
ConfigError naming the variable, never a traceback from deep inside a command."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_int(name: str, *, minimum: int = 0) -> int | None:
    """An integer variable (decimal digits), or None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or int(raw) < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {raw[:40]!r}")
    return int(raw)


def env_flag(name: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (unset or empty: no)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: expected 1 or 0 (yes/no), got {raw[:40]!r}")


def env_command(name: str) -> list[str] | None:
    """A command line in a variable, split as a shell would, or None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: cannot split {raw[:60]!r} into a command: {exc}") from None
    return words or None


def env_executable(name: str) -> Path | None:
    """A program named by a variable (``DVP_ANVIL=/opt/anvil``), or None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(f"{name}: {raw[:200]} is not an executable file")
    return path


def cache_dir() -> Path:
    """Where built node binaries are cached: ``$DVP_CACHE``, else ``~/.cache/dvp``."""
    raw = os.environ.get("DVP_CACHE", "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "dvp"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"DVP_CACHE: {path} is not a directory")
    return path
