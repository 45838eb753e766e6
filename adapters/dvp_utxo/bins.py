"""Make the node binaries available.

btcd and btcctl are built from the pinned Go module (the same recipe is the
``btcd-bins`` target of ``mk/utxo.mk``); both install into
``${DVP_CACHE:-$HOME/.cache/dvp}/btcd-<version>/bin`` outside the repository and
do nothing when the binaries are already there.

elementsd is never built here: the project reads ``$DVP_ELEMENTSD``, else
``${DVP_CACHE:-$HOME/.cache/dvp}/elements-<version>/bin/elementsd``, where the set-up
(``python -m dvp_utxo.bins install-elements``, run by ``make setup``) unpacks the official
Elements release archive, from ``$DVP_DIST_MIRROR`` or its download address.  Without it,
the ``elements`` ledger and its tests are left out with one line saying so.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from dvp.dist import Release
from dvp.dist import main as install_main
from dvp.env import cache_dir, env_executable
from dvp.errors import ConfigError

BTCD_MODULE = "github.com/btcsuite/btcd"
BTCD_VERSION = "v0.24.2"  # keep in step with BTCD_VERSION in mk/utxo.mk
ELEMENTS_VERSION = "23.3.3"
ELEMENTS_ARCHIVE = f"elements-{ELEMENTS_VERSION}-x86_64-linux-gnu.tar.gz"
ELEMENTS_URL = (
    f"https://github.com/ElementsProject/elements/releases/download/elements-{ELEMENTS_VERSION}/{ELEMENTS_ARCHIVE}"
)
# Not pinned: the release publishes its checksums in a signed SHA256SUMS.asc, whose value for this
# archive was not known when this was written (README: "Fabric and Elements from their release archives").
ELEMENTS_SHA256: str | None = None


def btcd_bin_dir(version: str = BTCD_VERSION) -> Path:
    return cache_dir() / f"btcd-{version}" / "bin"


def btcd_path(version: str = BTCD_VERSION) -> Path:
    return env_executable("DVP_BTCD") or btcd_bin_dir(version) / "btcd"


def ensure_btcd(version: str = BTCD_VERSION) -> Path:
    """Build btcd and btcctl with ``go install`` unless they are cached; return btcd's path."""
    path = btcd_path(version)
    bindir = btcd_bin_dir(version)
    if path.is_file() and (os.environ.get("DVP_BTCD") or (bindir / "btcctl").is_file()):
        return path
    go = shutil.which("go")
    if go is None:
        raise ConfigError(
            f"btcd {version} is not in {bindir} and no Go toolchain is on PATH to build it (make btcd-bins)"
        )
    bindir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(bindir), CGO_ENABLED="0")
    proc = subprocess.run(
        [go, "install", f"{BTCD_MODULE}@{version}", f"{BTCD_MODULE}/cmd/btcctl@{version}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0 or not path.is_file():
        raise ConfigError(f"building btcd {version} failed: {proc.stderr.strip()[-2000:]}")
    return path


def elementsd_path(version: str = ELEMENTS_VERSION) -> Path:
    """``$DVP_ELEMENTSD`` (a ConfigError if it names no executable), else the cache path."""
    return env_executable("DVP_ELEMENTSD") or cache_dir() / f"elements-{version}" / "bin" / "elementsd"


def find_elementsd(version: str = ELEMENTS_VERSION) -> Path | None:
    path = elementsd_path(version)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def elementsd_missing(version: str = ELEMENTS_VERSION) -> str:
    """One line: what is missing and how to get it."""
    return (
        f"elementsd {version} not found at {elementsd_path(version)}: run `make setup` (installs the release "
        f"archive {ELEMENTS_ARCHIVE}, from $DVP_DIST_MIRROR or its official download address), set "
        f"DVP_ELEMENTSD, or unpack the official Elements {version} release into {cache_dir() / f'elements-{version}'}"
    )


def elements_release() -> Release:
    """The official release archive, whose top folder ``elements-<version>/`` (bin/, lib/) becomes
    the cache directory :func:`elementsd_path` reads."""
    return Release(name=f"Elements {ELEMENTS_VERSION}", archive=ELEMENTS_ARCHIVE, url=ELEMENTS_URL,
                   sha256=ELEMENTS_SHA256, target=cache_dir() / f"elements-{ELEMENTS_VERSION}",
                   required=("bin/elementsd", "bin/elements-cli"), top=f"elements-{ELEMENTS_VERSION}")  # fmt: skip


def release_not_needed() -> str | None:
    """Why the set-up installs no Elements archive here (DVP_ELEMENTSD, or present), or None."""
    if os.environ.get("DVP_ELEMENTSD"):
        return f"DVP_ELEMENTSD is set: using {os.environ['DVP_ELEMENTSD']}, nothing installed"
    if find_elementsd():
        return f"already installed in {elements_release().target}"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"the pinned archive {ELEMENTS_ARCHIVE} is for Linux x86_64 only; set DVP_ELEMENTSD"
    return None


def ensure_elementsd(version: str = ELEMENTS_VERSION) -> Path:
    path = find_elementsd(version)
    if path is None:
        raise ConfigError(elementsd_missing(version))
    return path


if __name__ == "__main__":  # python -m dvp_utxo.bins [install-elements]
    if sys.argv[1:] == ["install-elements"]:
        raise SystemExit(install_main([(elements_release(), release_not_needed)]))
    print(ensure_btcd())
