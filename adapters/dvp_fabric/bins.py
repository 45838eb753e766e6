"""Where the pinned Fabric binaries, Fabric's sampleconfig and the chaincode
server binary live, and how they are built (``build_bins.sh``,
``build_chaincode.sh`` beside this file; ``make fabric-bins`` runs the first)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dvp.errors import ConfigError

FABRIC_VERSION = "3.1.5"
FABRIC_COMMIT = "86c1172bec37e6590c6b1ae6f847833df48d65fc"
HERE = Path(__file__).resolve().parent
TOOLS = ("peer", "orderer", "configtxgen", "cryptogen", "osnadmin")
BUILDER_STEPS = ("detect", "build", "release")


def cache_root() -> Path:
    return Path(os.environ.get("DVP_CACHE") or Path.home() / ".cache" / "dvp")


@dataclass(frozen=True)
class FabricInstall:
    """One pinned install: ``bin/``, ``ccaas_builder/bin/`` and ``sampleconfig/``."""

    root: Path

    @classmethod
    def default(cls) -> FabricInstall:
        override = os.environ.get("DVP_FABRIC_HOME")
        return cls(Path(override) if override else cache_root() / f"fabric-{FABRIC_COMMIT}")

    def tool(self, name: str) -> Path:
        return self.root / "bin" / name

    @property
    def ccaas_builder(self) -> Path:
        return self.root / "ccaas_builder"

    @property
    def sampleconfig(self) -> Path:
        return self.root / "sampleconfig"

    def missing(self) -> list[str]:
        out = [t for t in TOOLS if not os.access(self.tool(t), os.X_OK)]
        out += [f"ccaas_builder/bin/{s}" for s in BUILDER_STEPS if not os.access(self.ccaas_builder / "bin" / s, os.X_OK)]
        out += [f"sampleconfig/{f}" for f in ("core.yaml", "orderer.yaml") if not (self.sampleconfig / f).is_file()]
        return out

    def present(self) -> bool:
        return not self.missing()

    def build(self) -> None:
        """Build what is missing (see build_bins.sh); raise ConfigError with the reason."""
        if self.present():
            return
        env = {**os.environ, "FABRIC_COMMIT": FABRIC_COMMIT, "DVP_CACHE": str(cache_root())}
        proc = subprocess.run(["bash", str(HERE / "build_bins.sh")], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not self.present():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ConfigError(f"fabric: could not build Fabric {FABRIC_VERSION} binaries into {self.root}:\n{tail}")


def chaincode_binary() -> Path:
    """Build (cached by source hash) and return the dvp chaincode server binary."""
    override = os.environ.get("DVP_FABRIC_CHAINCODE")
    if override:
        return Path(override)
    proc = subprocess.run(["bash", str(HERE / "build_chaincode.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise ConfigError(f"fabric: could not build the chaincode server (contracts/fabric/chaincode):\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])
