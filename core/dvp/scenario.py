"""Scenario files (YAML or JSON) and flags, validated by the same models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError
from .models import SwapSpec


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the failing field: ``trade.cash.amount: Input should be greater than 0``."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    return f"{prefix}{where}: {msg}" if where else f"{prefix}{msg}"


def parse_spec(data: Any, source: str = "scenario") -> SwapSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'trade', got {type(data).__name__}")
    try:
        return SwapSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None


def load_scenario(path: str | Path) -> SwapSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"scenario: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        line = str(exc).splitlines()[0]
        raise ConfigError(f"scenario: {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {line}") from None
    return parse_spec(data, str(path))


def parse_leg(value: str, field: str) -> dict[str, Any]:
    """``LEDGER:ASSET:AMOUNT`` from the command line."""
    parts = value.split(":")
    if len(parts) != 3:
        raise ConfigError(f"{field}: expected LEDGER:ASSET:AMOUNT, got {value!r}")
    ledger, asset, amount = parts
    try:
        number = int(amount)
    except ValueError:
        raise ConfigError(f"{field}.amount: expected an integer in base units, got {amount!r}") from None
    return {"ledger": ledger, "asset": asset, "amount": number}
