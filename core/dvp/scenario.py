"""Scenario files (YAML or JSON) and flags, validated by the same models.

A scenario is small, plain data: files are read up to a size bound and must be UTF-8;
duplicate keys are an error (YAML and JSON parsers would silently keep the last one);
YAML aliases are refused (a few lines of them expand into billions of nodes).

YAML is read as written, with the YAML 1.2 core schema's plain scalars rather than PyYAML's
YAML 1.1 ones: an integer is plain decimal digits (``010``, ``0o10``, ``1:40``, ``0b11``,
``1_0``, ``0x10`` and ``+10`` stay text, which an amount or timeout then refuses naming the
field; YAML 1.1 would have read them as 8, 8, 100, 3, 10, 16 and 10), a boolean is
``true``/``false`` (not ``yes``/``on``), and dates stay text.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError
from .models import SwapSpec

MAX_SCENARIO_BYTES = 1 << 20
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")  # no leading zeros: YAML 1.1 and C read 010 as octal
_NOT_AS_WRITTEN = {"int_type": "a plain decimal integer", "bool_type": "true or false"}


class _Refused(Exception):
    """Raised by the parsers below; load_scenario turns it into one ConfigError line."""


def first_error(exc: ValidationError, prefix: str = "", tags: Collection[str] = ()) -> str:
    """One line naming the failing field: ``trade.cash.amount: Input should be greater than 0``
    (``tags``: the tags of a tagged union, left out of the path as they are no field)."""
    err = exc.errors()[0]
    where = ".".join(_key(p) for p in err["loc"] if not str(p).startswith("function-") and p not in tags)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in _NOT_AS_WRITTEN and isinstance(err.get("input"), str | float | bool):
        # Text (or another scalar) where a number or flag belongs: what is expected, and what was written.
        msg = f"expected {_NOT_AS_WRITTEN[err['type']]}, got {repr(err['input'])[:40]}"
    return f"{prefix}{where}: {msg}" if where else f"{prefix}{msg}"


def _key(part: Any) -> str:
    """A field path element as typed, quoted when it is not a plain name (it may come from the user)."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else repr(text)[:80]


def parse_spec(data: Any, source: str = "scenario") -> SwapSpec:
    if not isinstance(data, dict):
        got = "nothing (empty)" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping with 'trade', got {got}")
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
    data = _parse(_read_text(path), kind, f"scenario: {path}")
    return parse_spec(data, f"scenario: {path}")


def load_yaml(text: str, source: str) -> Any:
    """Another YAML file dvp reads (``agent.yaml``), by the same rules as a scenario;
    ConfigError ``SOURCE: ...`` in one line."""
    return _parse(text, "YAML", source)


def load_json(text: str, source: str) -> Any:
    """Another JSON file dvp reads (a bench ``results.json``), by the same rules as a scenario;
    ConfigError ``SOURCE: ...`` in one line."""
    return _parse(text, "JSON", source)


def _parse(text: str, kind: str, source: str) -> Any:
    try:
        with _default_recursion_limit():
            return _parse_json(text) if kind == "JSON" else _parse_yaml(text)
    except _Refused as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: JSON syntax, integer literals past Python's digit limit
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{source} is not valid {kind}: {line}") from None


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
        raise ConfigError(
            f"scenario: {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


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
    """safe_load without aliases and without silently overwritten duplicate keys, reading plain
    scalars by the YAML 1.2 core schema (the resolvers below replace PyYAML's YAML 1.1 ones)."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        """An explicit ``!!int`` too: plain decimal digits, or it stays text as written (YAML 1.1
        reads ``!!int 010`` as 8), which a number field refuses naming the field."""
        value = self.construct_scalar(node)
        return int(value) if PLAIN_DECIMAL.fullmatch(value) else value

    def construct_yaml_bool(self, node):  # type: ignore[no-untyped-def]
        value = self.construct_scalar(node)
        if value.lower() not in ("true", "false"):
            raise _Refused(f"!!bool {value[:40]!r} is not true or false (line {node.start_mark.line + 1})")
        return value.lower() == "true"

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


# The YAML 1.2 core schema's null, bool, int (plain decimal only) and float; anything else is text.
for _tag, _pattern, _first in [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^-?(?:0|[1-9][0-9]*)$", list("-0123456789")),
    # a float has a point or an exponent (the core schema would also take 010 and +10 as numbers)
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]:
    _ScenarioLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)
_ScenarioLoader.add_constructor("tag:yaml.org,2002:int", _ScenarioLoader.construct_yaml_int)
_ScenarioLoader.add_constructor("tag:yaml.org,2002:bool", _ScenarioLoader.construct_yaml_bool)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ScenarioLoader)


def parse_leg(value: str, field: str) -> dict[str, Any]:
    """``LEDGER:ASSET:AMOUNT`` from the command line; the amount in plain decimal digits."""
    parts = value.split(":")
    if len(parts) != 3:
        raise ConfigError(f"{field}: expected LEDGER:ASSET:AMOUNT, got {value!r}")
    ledger, asset, amount = parts
    if not PLAIN_DECIMAL.fullmatch(amount) or len(amount) > 80:
        raise ConfigError(f"{field}.amount: expected an integer in base units, got {amount[:40]!r}")
    return {"ledger": ledger, "asset": asset, "amount": int(amount)}
