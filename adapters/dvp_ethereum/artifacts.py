"""Compiled contract artifacts, built from contracts/ethereum by `make` (never edited by hand)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from dvp.errors import ConfigError


def build_dir() -> Path:
    env = os.environ.get("DVP_EVM_ARTIFACTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "contracts" / "ethereum" / "build"


@cache
def artifact(name: str) -> dict[str, Any]:
    path = build_dir() / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"contract artifact {name}: {path} missing; run `make contracts`")
    compiled: dict[str, Any] = json.loads(path.read_text())
    return compiled
