"""The Fabric ledger config: one channel of a network, the peers to reach, the parties' identities.

``FabricNetwork.ledger_config`` writes exactly this shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from dvp.adapter import LedgerConfig
from dvp.errors import unknown_party


class PeerConfig(BaseModel):
    model_config = {"extra": "forbid"}

    endpoint: str  # host:port of the peer's gRPC (Gateway) service
    host_name: str = ""  # a name in the peer's TLS certificate, when the endpoint's host is not
    tls_ca: str  # PEM file of the CA that signed the peer's TLS certificate
    msp_id: str


class OrdererConfig(BaseModel):
    model_config = {"extra": "forbid"}

    endpoint: str
    tls_ca: str


class PartyConfig(BaseModel):
    """A client identity: MSP folder (or explicit cert and key) and the org peer it talks to.

    A counterparty whose credentials this process does not hold has its MSP id and account
    only: it can be named in locks and read, never signed for."""

    model_config = {"extra": "forbid"}

    msp_id: str
    msp_dir: str = ""
    cert: str = ""
    key: str = ""
    peer: str = ""  # key into FabricConfig.peers
    account: str  # the chaincode's account id of this identity (its WhoAmI)

    @property
    def has_credentials(self) -> bool:
        return bool(self.msp_dir or self.key)

    @model_validator(mode="after")
    def _peer_to_sign(self) -> "PartyConfig":
        if self.has_credentials and not self.peer:
            raise ValueError("peer: required for an identity with credentials (msp_dir or key)")
        return self

    def public(self) -> "PartyConfig":
        """This identity as a counterparty sees it: no credentials, no peer of its own."""
        return PartyConfig(msp_id=self.msp_id, account=self.account)


class FabricConfig(LedgerConfig):
    kind: Literal["fabric"] = "fabric"
    channel: str
    chaincode: str = "dvp"
    peers: dict[str, PeerConfig]
    orderer: OrdererConfig
    parties: dict[str, PartyConfig]
    issuer: str = "issuer"
    # The chaincode refuses a proposal whose timestamp strays further from its endorser's clock:
    # the most a party can move "now" on this ledger, hence the clock skew of its expiries.
    max_skew_seconds: float = Field(default=30, gt=0)
    # The orderer cuts a block after this long at the latest: the usual time to finality.
    batch_timeout_ms: int = Field(default=100, gt=0)
    assets: list[str] = Field(default_factory=list)  # known symbols (the chaincode takes any)
    dev: bool = False

    def for_party(self, party: str) -> "FabricConfig":
        """``party``'s credentials only; every other party by its MSP id and account id.
        The peers and the orderer (endpoints, TLS CAs) stay: they are how it reaches the ledger."""
        own = self.parties.get(party)
        if own is None or not own.has_credentials:
            raise unknown_party(self.kind, party, [p for p, c in self.parties.items() if c.has_credentials])
        parties = {p: c if p == party else c.public() for p, c in self.parties.items()}
        return self.model_copy(update={"parties": parties})
