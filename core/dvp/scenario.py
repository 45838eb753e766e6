"""Scenario files (YAML or JSON) and flags, validated by the same models.

A scenario is small, plain data: files are read up to a size bound and must be UTF-8;
duplicate keys are an error (YAML and JSON parsers would silently keep the last one);
YAML aliases are refused (a few lines of them expand into billions of nodes).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError
from .models import SwapSpec

MAX_SCENARIO_BYTES = 1 << 20
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DECIMAL = re.compile(r"-?[0-9]+")


class _Refused(Exception):
    """Raised by the parsers below; load_scenario turns it into one ConfigError line."""


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the failing field: ``trade.cash.amount: Input should be greater than 0``."""
    err = exc.errors()[0]
    where = ".".join(_key(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    return f"{prefix}{where}: {msg}" if where else f"{prefix}{msg}"


def _key(part: Any) -> str:
    """A field path element as typed, quoted when it is not a plain name (it may come from the user)."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else repr(text)[:80]


def parse_spec(data: Any, source: str = "scenario") -> SwapSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'trade', got {type(data).__name__}")
    try:
        return SwapSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None


@contextmanager
def _default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit while parsing: a library may have raised it (py_ecc, which
    web3 loads, sets 100000), and json's C scanner then overflows the C stack on deep input instead
    of raising RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(min(old, 1000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load_scenario(path: str | Path) -> SwapSpec:
    path = Path(path)
    kind = "JSON" if path.suffix == ".json" else "YAML"
    text = _read_text(path)
    try:
        with _default_recursion_limit():
            data = _parse_json(text) if kind == "JSON" else _parse_yaml(text)
    except _Refused as exc:
        raise ConfigError(f"scenario: {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"scenario: {path} is nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: JSON syntax, integer literals past Python's digit limit
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"scenario: {path} is not valid {kind}: {line}") from None
    return parse_spec(data, str(path))


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            what = "a directory" if path.is_dir() else "missing" if not path.exists() else "not a regular file"
            raise ConfigError(f"scenario: cannot read {path}: {what}")
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"scenario: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ConfigError(f"scenario: {path} is larger than {MAX_SCENARIO_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario: {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def _parse_json(text: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _Refused(f"duplicate key {key!r}")
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=pairs)


class _ScenarioLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type stubs here
    """safe_load without aliases and without silently overwritten duplicate keys."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _Refused(f"YAML aliases are not allowed (line {mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class names it
                break
            if duplicate:
                raise _Refused(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass


def parse_leg(value: str, field: str) -> dict[str, Any]:
    """``LEDGER:ASSET:AMOUNT`` from the command line; the amount in plain decimal digits."""
    parts = value.split(":")
    if len(parts) != 3:
        raise ConfigError(f"{field}: expected LEDGER:ASSET:AMOUNT, got {value!r}")
    ledger, asset, amount = parts
    if not _DECIMAL.fullmatch(amount) or len(amount) > 80:
        raise ConfigError(f"{field}.amount: expected an integer in base units, got {amount[:40]!r}")
    return {"ledger": ledger, "asset": asset, "amount": int(amount)}
