"""Adapters and node launchers are found through entry points, never imported by name."""

from __future__ import annotations

import inspect
from functools import cache
from importlib.metadata import entry_points

from .adapter import LedgerAdapter
from .errors import ConfigError
from .runtime.launcher import NodeLauncher

ADAPTERS = "dvp.adapters"
LAUNCHERS = "dvp.launchers"


def _load(group: str, kind: str, base: type) -> type:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if kind not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(f"kind: no {group} entry point named {kind!r} (known: {known})")
    cls = found[kind].load()
    check_class(cls, base, f"{group}:{kind}")
    return cls


def check_class(cls: type, base: type, label: str) -> None:
    """Refuse a class that is not a ``base`` or still has abstract methods."""
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ConfigError(f"{label}: {cls!r} is not a {base.__name__}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigError(f"{label}: {cls.__name__} does not implement {missing}")


@cache
def adapter_class(kind: str) -> type[LedgerAdapter]:
    return _load(ADAPTERS, kind, LedgerAdapter)


@cache
def launcher_class(kind: str) -> type[NodeLauncher]:
    return _load(LAUNCHERS, kind, NodeLauncher)


def installed_kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ADAPTERS))
