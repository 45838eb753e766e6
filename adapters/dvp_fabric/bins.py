"""Where the pinned Fabric binaries and the Node.js chaincode live.

A Fabric install is read from ``$DVP_FABRIC_HOME``, else from the cache
(``~/.cache/dvp/fabric-<v3.1.5 commit>/``, where ``make fabric-bins`` builds
it).  Two layouts are accepted:

* the official release tarball, as Fabric's install script unpacks it:
  ``bin/`` (peer, orderer, configtxgen, cryptogen, osnadmin), ``config/``
  (core.yaml, orderer.yaml) and ``builders/ccaas/bin/``;
* the Go module build of ``make fabric-bins``: ``bin/``, ``sampleconfig/`` and
  ``ccaas_builder/bin/``.

The chaincode is the npm package in ``contracts/fabric/node`` (its pinned
dependencies installed by ``make setup`` or, on first use, ``npm ci``).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dvp.dist import Release
from dvp.dist import main as install_main
from dvp.env import cache_dir
from dvp.errors import ConfigError

FABRIC_VERSION = "3.1.5"
FABRIC_COMMIT = "86c1172bec37e6590c6b1ae6f847833df48d65fc"
HERE = Path(__file__).resolve().parent
TOOLS = ("peer", "orderer", "configtxgen", "cryptogen", "osnadmin")
BUILDER_STEPS = ("detect", "build", "release")
FABRIC_ARCHIVE = f"hyperledger-fabric-linux-amd64-{FABRIC_VERSION}.tar.gz"
FABRIC_URL = f"https://github.com/hyperledger/fabric/releases/download/v{FABRIC_VERSION}/{FABRIC_ARCHIVE}"
# The official archive's SHA-256 is not pinned: Fabric's GitHub release publishes no checksum file,
# and it was not known when this was written (README: "Fabric and Elements from their release archives").
FABRIC_SHA256: str | None = None
HOW_TO_GET = (
    f"run `make setup` (installs the release archive {FABRIC_ARCHIVE}, from $DVP_DIST_MIRROR or its "
    f"official download address), set DVP_FABRIC_HOME to an unpacked Hyperledger Fabric {FABRIC_VERSION} "
    "release (bin/ and config/), or run `make fabric-bins` where the Go module proxy serves github.com/hyperledger/fabric"
)


def cache_root() -> Path:
    return cache_dir()


@dataclass(frozen=True)
class FabricInstall:
    """One pinned install (either layout of the module docstring)."""

    root: Path

    @classmethod
    def default(cls) -> FabricInstall:
        override = os.environ.get("DVP_FABRIC_HOME")
        return cls(Path(override) if override else cache_root() / f"fabric-{FABRIC_COMMIT}")

    def tool(self, name: str) -> Path:
        return self.root / "bin" / name

    @property
    def ccaas_builder(self) -> Path:
        """The chaincode-as-a-service external builder (its ``bin/`` holds detect, build, release)."""
        release = self.root / "builders" / "ccaas"
        return release if (release / "bin").is_dir() else self.root / "ccaas_builder"

    @property
    def config_dir(self) -> Path:
        """``FABRIC_CFG_PATH``: the directory holding core.yaml and orderer.yaml."""
        release = self.root / "config"
        return release if (release / "core.yaml").is_file() else self.root / "sampleconfig"

    def missing(self) -> list[str]:
        out = [f"bin/{t}" for t in TOOLS if not os.access(self.tool(t), os.X_OK)]
        builder = self.ccaas_builder
        out += [str((builder / "bin" / s).relative_to(self.root)) for s in BUILDER_STEPS
                if not os.access(builder / "bin" / s, os.X_OK)]  # fmt: skip
        out += [str((self.config_dir / f).relative_to(self.root)) for f in ("core.yaml", "orderer.yaml")
                if not (self.config_dir / f).is_file()]  # fmt: skip
        return out

    def present(self) -> bool:
        return not self.missing()

    def problem(self) -> str | None:
        """None when usable; else one line: what is missing and how to get it."""
        missing = self.missing()
        if not missing:
            return None
        return (
            f"Fabric {FABRIC_VERSION} not found in {self.root} (missing {', '.join(missing[:3])}"
            + (", ..." if len(missing) > 3 else "")
            + f"); {HOW_TO_GET}"
        )

    def build(self) -> None:
        """Build what is missing with ``build_bins.sh`` (the Go module route); ConfigError with the reason."""
        if self.present():
            return
        if os.environ.get("DVP_FABRIC_HOME"):
            raise ConfigError(f"fabric: {self.problem()}")
        env = {**os.environ, "FABRIC_COMMIT": FABRIC_COMMIT, "DVP_CACHE": str(cache_root())}
        proc = subprocess.run(["bash", str(HERE / "build_bins.sh")], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not self.present():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ConfigError(
                f"fabric: could not build Fabric {FABRIC_VERSION} into {self.root} ({HOW_TO_GET}):\n{tail}"
            )


def fabric_release() -> Release:
    """The official release archive (``bin/``, ``config/``, ``builders/ccaas/``), unpacked into the
    cache directory the project reads when ``DVP_FABRIC_HOME`` is unset."""
    return Release(
        name=f"Hyperledger Fabric {FABRIC_VERSION}", archive=FABRIC_ARCHIVE, url=FABRIC_URL, sha256=FABRIC_SHA256,
        target=cache_root() / f"fabric-{FABRIC_COMMIT}",
        required=(*(f"bin/{t}" for t in TOOLS), "config/core.yaml", "config/orderer.yaml",
                  *(f"builders/ccaas/bin/{s}" for s in BUILDER_STEPS)),
    )  # fmt: skip


def release_not_needed() -> str | None:
    """Why the set-up installs no release archive here (a user-given or present install), or None."""
    if os.environ.get("DVP_FABRIC_HOME"):
        return f"DVP_FABRIC_HOME is set: using {os.environ['DVP_FABRIC_HOME']}, nothing installed"
    install = FabricInstall.default()
    if install.present():
        return f"already installed in {install.root}"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"the pinned archive {FABRIC_ARCHIVE} is for Linux x86_64 only; {HOW_TO_GET}"
    return None


# ---------------------------------------------------------------- the chaincode


def chaincode_dir() -> Path:
    """The chaincode package: ``$DVP_FABRIC_CHAINCODE_DIR``, else ``contracts/fabric/node`` of the source tree."""
    env = os.environ.get("DVP_FABRIC_CHAINCODE_DIR")
    if env:
        return Path(env)
    return HERE.parents[1] / "contracts" / "fabric" / "node"


def chaincode_server(directory: Path | None = None) -> list[str]:
    """The command that serves the chaincode (``fabric-chaincode-node server``), installing its
    pinned npm dependencies first when they are missing or older than the lock file."""
    d = directory or chaincode_dir()
    if not (d / "package.json").is_file():
        raise ConfigError(f"fabric: no chaincode package at {d} (set DVP_FABRIC_CHAINCODE_DIR)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise ConfigError("fabric: the chaincode needs Node.js >= 18 with npm on PATH")
    cli = d / "node_modules" / "fabric-shim" / "cli.js"
    stamp = d / "node_modules" / ".installed"
    if not cli.is_file() or not stamp.exists() or stamp.stat().st_mtime < (d / "package-lock.json").stat().st_mtime:
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if proc.returncode != 0 or not cli.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ConfigError(f"fabric: `npm ci` in {d} failed:\n{tail}")
        stamp.touch()
    return [node, str(cli), "server", "--module-path", str(d)]


def fabric_problem() -> str | None:
    """None when a Fabric network can run here; else one line saying what is missing and how to get it."""
    problem = FabricInstall.default().problem()
    if problem:
        return problem
    try:
        chaincode_server()
    except ConfigError as exc:
        return str(exc).splitlines()[0]
    return None


@dataclass(frozen=True)
class ImageInstall(FabricInstall):
    """Fabric as laid out inside the official images (hyperledger/fabric-tools, -orderer, -peer):
    binaries on ``/usr/local/bin``, configuration in ``/etc/hyperledger/fabric``, the ccaas builder
    in ``/opt/hyperledger/ccaas_builder``.  The stand-ins of docker/standins.sh use the same paths."""

    root: Path = Path("/")

    def tool(self, name: str) -> Path:
        return Path("/usr/local/bin") / name

    @property
    def ccaas_builder(self) -> Path:
        return Path("/opt/hyperledger/ccaas_builder")

    @property
    def config_dir(self) -> Path:
        return Path("/etc/hyperledger/fabric")

    def missing(self) -> list[str]:
        return []  # the Docker runtime checks the images instead


if __name__ == "__main__":  # python -m dvp_fabric.bins: the set-up's install of the release archive
    raise SystemExit(install_main([(fabric_release(), release_not_needed)]))
