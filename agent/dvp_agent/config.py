"""An agent's folder: ``agent.yaml`` and the files it names, relative to the folder.

``dvp agent init`` writes it: the party's identity (``agent.key`` 0600, ``agent.crt``), its
ledgers with only its own keys (``ledgers.json`` 0600), its journal and its policy; each
``dvp agent pair`` adds one counterparty (``peers:``) with its endpoint and pinned certificate
(``peers/PARTY.crt``), and may give it a policy of its own (:mod:`dvp.party.policy`).  One
listening port, one identity and one journal serve every peer.

An ``agent.yaml`` of one peer (``peer:``, the pinned certificate in ``peer.crt``) is read as a
list of that one peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from dvp.errors import ConfigError
from dvp.models import Name
from dvp.party.limits import Limits
from dvp.party.policy import AcceptPolicy
from dvp.scenario import first_error, load_yaml

from .metrics import MetricsSettings

CONFIG_FILE = "agent.yaml"
PEER_CERT_FILE = "peer.crt"  # the one peer's certificate, in a folder made before several peers
PEERS_DIR = "peers"


def peer_cert_file(party: str) -> Path:
    """Where ``dvp agent pair`` copies a peer's certificate, in the agent's folder."""
    return Path(PEERS_DIR) / f"{party}.crt"


class PeerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Name
    endpoint: str  # "127.0.0.1:PORT" of the counterparty's agent (or a proxy in front of it)
    cert: Path | None = None  # None: peers/PARTY.crt
    policy: AcceptPolicy | None = None  # this peer's own rules; None: the agent's ``policy:``

    @property
    def cert_file(self) -> Path:
        return self.cert if self.cert is not None else peer_cert_file(self.party)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Name
    listen: str = "127.0.0.1:7101"
    key: Path = Path("agent.key")
    cert: Path = Path("agent.crt")
    ledgers: Path = Path("ledgers.json")
    journal: Path = Path("journal.sqlite")
    peers: list[PeerSettings] = []
    policy: AcceptPolicy = AcceptPolicy()  # for every peer without its own
    limits: Limits = Limits()  # per peer: each peer has its own budgets of these
    metrics: MetricsSettings | None = None  # the Prometheus endpoint (dvp_agent.metrics); off unless set

    @model_validator(mode="before")
    @classmethod
    def _one_peer(cls, data: Any) -> Any:
        """``peer:`` (a folder paired before agents had several peers): the one peer of ``peers:``."""
        if isinstance(data, dict) and "peer" in data:
            data = dict(data)
            peer = data.pop("peer")
            if isinstance(peer, dict):
                peer = {"cert": PEER_CERT_FILE, **peer}
            if peer is not None:
                data["peers"] = [*(data.get("peers") or []), peer]
        return data

    @model_validator(mode="after")
    def _distinct_peers(self) -> "AgentConfig":
        names = [p.party for p in self.peers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"peers: {name!r} is listed twice")
            if name == self.party:
                raise ValueError(f"peers: {name!r} is this agent's own party")
        return self

    def path(self, folder: Path, name: Path) -> Path:
        return name if name.is_absolute() else folder / name

    def peer(self, party: str) -> PeerSettings | None:
        return next((p for p in self.peers if p.party == party), None)

    def policies(self) -> dict[str, AcceptPolicy]:
        """Each peer's own policy, for the peers that have one."""
        return {p.party: p.policy for p in self.peers if p.policy is not None}


def agent_folder(run_dir: Path, folder: Path | None, party: str | None) -> Path:
    """The agent's folder: FOLDER as given, else RUN_DIR/agents/PARTY (``dvp agent``'s commands)."""
    if folder is not None:
        return folder
    if party is None:
        raise ConfigError("folder: give the agent's folder, or --party NAME for RUN_DIR/agents/NAME")
    return run_dir / "agents" / party


def load_config(folder: Path) -> AgentConfig:
    path = folder / CONFIG_FILE
    try:
        data = load_yaml(path.read_text(), str(path))  # numbers as written, as in a scenario
    except FileNotFoundError:
        raise ConfigError(f"agent: no {CONFIG_FILE} in {folder}; run `dvp agent init {folder} --party NAME`") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(first_error(exc, f"{path}: ")) from None


def save_config(folder: Path, config: AgentConfig) -> None:
    path = folder / CONFIG_FILE
    tmp = path.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=False), sort_keys=False))
    tmp.replace(path)
