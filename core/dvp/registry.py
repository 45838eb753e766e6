"""Adapters and node launchers are found through entry points, never imported by name."""

from __future__ import annotations

import inspect
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from .adapter import LedgerAdapter
from .errors import ConfigError
from .launcher import NodeLauncher

ADAPTERS = "dvp.adapters"
LAUNCHERS = "dvp.launchers"


def _load(group: str, kind: str, base: type) -> Any:
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
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConfigError(f"{label}: {cls.__name__} does not implement {missing}")


@cache
def adapter_class(kind: str) -> type[LedgerAdapter]:
    cls: type[LedgerAdapter] = _load(ADAPTERS, kind, LedgerAdapter)
    return cls


@cache
def launcher_class(kind: str) -> type[NodeLauncher]:
    cls: type[NodeLauncher] = _load(LAUNCHERS, kind, NodeLauncher)
    return cls


def ledger_endpoint(kind: str, config: dict[str, Any]) -> str:
    """What ``NodeLauncher.endpoint`` says for a recorded ledger; the default when its launcher is gone."""
    try:
        return launcher_class(kind).endpoint(config)
    except ConfigError:
        return NodeLauncher.endpoint(config)


def installed_launchers() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=LAUNCHERS))


def installed_kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ADAPTERS))


def build_adapter(name: str, config: dict[str, Any]) -> LedgerAdapter:
    """The adapter for ledger ``name`` from its config dict; the config picks the class
    (``kind``, then :meth:`LedgerAdapter.for_config` for a dev variant)."""
    kind = config.get("kind")
    if not kind:
        raise ConfigError(f"ledgers.{name}.kind: missing")
    cls = adapter_class(kind)
    try:
        parsed = cls.config_model.model_validate(config)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"ledgers.{name}.{where}: {err['msg']}") from None
    variant = cls.for_config(parsed)
    check_class(variant, cls, f"{ADAPTERS}:{kind}")
    return variant(name, parsed)
