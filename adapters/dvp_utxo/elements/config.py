"""The Elements adapter's config model (``kind: elements``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ..config import UtxoConfig

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ElementsConfig(UtxoConfig):
    kind: Literal["elements"] = "elements"  # type: ignore[assignment]
    network: Literal["elementsregtest"] = "elementsregtest"  # type: ignore[assignment]
    dialect: Literal["elementsd"] = "elementsd"  # type: ignore[assignment]
    # The chain's policy asset (L-BTC on Liquid): it pays every fee.
    policy_asset: str = Field(pattern=r"^[0-9a-f]{64}$")
    # symbol -> "native" (the policy asset, in its base units) or an issued asset id (display hex)
    assets: dict[str, str] = {"LBTC": "native"}
    # symbol -> on-chain units per base unit of the protocol (issued assets: 1000, so one
    # bond is above the dust limit Elements applies to every explicit output).  Missing: 1.
    units: dict[str, int] = {}
    fee_rate: float = Field(default=1.0, ge=0.1)  # policy-asset units per vbyte

    @field_validator("assets")
    @classmethod
    def _assets(cls, v: dict[str, str]) -> dict[str, str]:
        for sym, kind in v.items():
            if kind != "native" and not _HEX64.match(kind):
                raise ValueError(f"assets.{sym}: expected 'native' or a 64-hex-digit Elements asset id")
        return v

    @field_validator("units")
    @classmethod
    def _units(cls, v: dict[str, int]) -> dict[str, int]:
        for sym, unit in v.items():
            if unit < 1:
                raise ValueError(f"units.{sym}: must be at least 1")
        return v
