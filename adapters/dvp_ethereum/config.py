from __future__ import annotations

from typing import Literal

from eth_account import Account
from eth_utils import to_checksum_address
from pydantic import Field, SecretStr

from dvp.adapter import LedgerConfig
from dvp.errors import ConfigError, unknown_party

# anvil's well-known development mnemonic: its keys hold dev funds on dev chains only.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


class EthereumConfig(LedgerConfig):
    kind: Literal["ethereum"] = "ethereum"
    rpc_url: str = Field(pattern=r"^https?://")
    chain_id: int = Field(gt=0)
    # party name -> private key (0x hex)
    accounts: dict[str, SecretStr]
    # party name -> address, for counterparties whose keys this process does not hold
    addresses: dict[str, str] = {}
    issuer: str = "issuer"
    confirmations: int = Field(default=1, ge=1)
    block_interval: float = Field(default=1.0, gt=0)
    clock_skew: float = Field(default=2.0, ge=0)
    htlc_address: str | None = None
    dvp_address: str | None = None
    tokens: dict[str, str] = {}  # asset symbol -> token address
    dev: bool = False  # allow evm_increaseTime / evm_mine (anvil, hardhat)
    request_timeout: float = Field(default=30.0, gt=0)

    def for_party(self, party: str) -> "EthereumConfig":
        """``party``'s key only; every other party by its address."""
        if party not in self.accounts:
            raise unknown_party(self.kind, party, [*self.accounts, *self.addresses])
        addresses = {p: to_checksum_address(a) for p, a in self.addresses.items()}
        for p, key in self.accounts.items():
            try:
                addresses[p] = Account.from_key(key.get_secret_value()).address
            except ValueError as exc:
                raise ConfigError(f"accounts.{p}: not a private key ({exc})") from None
        del addresses[party]  # its key stands for it
        return self.model_copy(update={"accounts": {party: self.accounts[party]}, "addresses": addresses})


class GethConfig(EthereumConfig):
    """An EVM ledger on geth: standard JSON-RPC only, no time travel."""

    kind: Literal["geth"] = "geth"  # type: ignore[assignment]
    dev: Literal[False] = False  # type: ignore[assignment]
