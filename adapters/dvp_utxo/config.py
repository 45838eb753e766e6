"""The UTXO adapter's config model (``kind: utxo``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from dvp.adapter import LedgerConfig
from dvp.errors import ConfigError, unknown_party

from .keys import Key


class UtxoConfig(LedgerConfig):
    kind: Literal["utxo"] = "utxo"
    rpc_url: str = Field(pattern=r"^https?://")
    rpc_user: str
    rpc_password: SecretStr
    # The chain the node must report (getblockchaininfo); keys and addresses are encoded for it.
    network: Literal["regtest", "test", "main"] = "regtest"
    dialect: Literal["btcd", "bitcoind", "elementsd"] = "btcd"
    # party name -> private key (WIF or 64 hex digits), held by the framework; no node wallet
    keys: dict[str, SecretStr]
    # party name -> 33-byte compressed public key (hex), for counterparties whose keys we do not hold
    pubkeys: dict[str, str] = {}
    # asset symbol -> "native" (the chain's coin, in satoshis); Elements asset ids later
    assets: dict[str, str] = {"BTC": "native"}
    issuer: str = "issuer"
    miner: str = "miner"  # party whose address dev mining pays (btcd: its --miningaddr)
    confirmations: int = Field(default=1, ge=1)
    block_interval: float = Field(default=1.0, gt=0)
    clock_skew: float = Field(default=0.0, ge=0)
    fee_rate: float = Field(default=2.0, ge=1.0)  # sat/vB
    start_height: int = Field(default=0, ge=0)  # first block the chain view reads
    dev: bool = False  # allow mining on demand (advance_time, issue from the miner); regtest only
    mine_on_wait: bool = False  # dev chains without a block clock: wait_final mines the blocks it waits for
    request_timeout: float = Field(default=30.0, gt=0)

    def for_party(self, party: str) -> "UtxoConfig":
        """``party``'s key only; every other party (the miner too, whose address dev mining
        pays) by its compressed public key."""
        if party not in self.keys:
            raise unknown_party(self.kind, party, [*self.keys, *self.pubkeys])
        pubkeys = dict(self.pubkeys)
        for p, secret in self.keys.items():
            try:
                pubkeys[p] = Key.parse(secret.get_secret_value(), self.network).pubkey.hex()
            except ValueError as exc:
                raise ConfigError(f"keys.{p}: {exc}") from None
        del pubkeys[party]  # its key stands for it
        return self.model_copy(update={"keys": {party: self.keys[party]}, "pubkeys": pubkeys})

    @field_validator("pubkeys")
    @classmethod
    def _pubkeys(cls, v: dict[str, str]) -> dict[str, str]:
        for party, text in v.items():
            raw = bytes.fromhex(text.removeprefix("0x"))
            if len(raw) != 33 or raw[0] not in (2, 3):
                raise ValueError(f"pubkeys.{party}: expected a 33-byte compressed public key")
        return v

    @field_validator("assets")
    @classmethod
    def _assets(cls, v: dict[str, str]) -> dict[str, str]:
        for sym, kind in v.items():
            if kind != "native":
                raise ValueError(f"assets.{sym}: only 'native' is supported on this ledger yet")
        return v
