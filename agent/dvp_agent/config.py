"""An agent's folder: ``agent.yaml`` and the files it names, relative to the folder.

``dvp agent init`` writes it: the party's identity (``agent.key`` 0600, ``agent.crt``), its
ledgers with only its own keys (``ledgers.json`` 0600) and its journal; ``dvp agent pair``
adds the counterparty's endpoint and pinned certificate."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from dvp.errors import ConfigError
from dvp.models import Name
from dvp.party.agent import AcceptPolicy
from dvp.party.limits import Limits
from dvp.scenario import first_error, load_yaml

from .metrics import MetricsSettings

CONFIG_FILE = "agent.yaml"
PEER_CERT_FILE = "peer.crt"


class PeerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Name
    endpoint: str  # "127.0.0.1:PORT" of the counterparty's agent (or a proxy in front of it)
    cert: Path = Path(PEER_CERT_FILE)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: Name
    listen: str = "127.0.0.1:7101"
    key: Path = Path("agent.key")
    cert: Path = Path("agent.crt")
    ledgers: Path = Path("ledgers.json")
    journal: Path = Path("journal.sqlite")
    peer: PeerSettings | None = None
    policy: AcceptPolicy = AcceptPolicy()
    limits: Limits = Limits()
    metrics: MetricsSettings | None = None  # the Prometheus endpoint (dvp_agent.metrics); off unless set

    def path(self, folder: Path, name: Path) -> Path:
        return name if name.is_absolute() else folder / name


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
