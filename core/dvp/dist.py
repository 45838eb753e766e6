"""Install a platform from its release archive: download (or take from a mirror), verify, unpack,
rename into place.  Platform-neutral: each adapter package describes its own archive
(:class:`Release`: name, download address, pinned checksum, layout, target directory).

Sources, in this order:

* ``$DVP_DIST_MIRROR``: a local directory of release archives (as banks keep for hosts without
  internet) with a ``SHA256SUMS`` file (``sha256sum -c`` format); the archive must be listed there
  and match.  When the variable is set, only the mirror is tried.
* otherwise the release's official download address, checked against the checksum pinned in the
  adapter when there is one (when there is none, the install says so in one line and shows the
  archive's SHA-256, so the user can compare it with the published one).

The archive is unpacked into a temporary directory beside the target and renamed into place only
when the layout is complete, so an interrupted install never leaves a half install (a killed
set-up's temporary directory is removed by a later one, once it is an hour old).  Every failure
is a :class:`dvp.errors.ConfigError` with one line naming the archive, the source tried and what
to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

MIRROR_ENV = "DVP_DIST_MIRROR"
CHUNK = 1 << 20
STALE_SECONDS = 3600  # a temporary unpack directory this old belongs to no running set-up
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Release:
    """One platform's release archive and where it goes."""

    name: str  # "Hyperledger Fabric 3.1.5"
    archive: str  # the archive's file name, as published and as a mirror holds it
    url: str  # the official download address
    sha256: str | None  # the official archive's checksum, pinned; None when not pinned
    target: Path  # the installed tree (bin/ ...)
    required: tuple[str, ...]  # paths under the installed tree that must exist (executables: bin/...)
    top: str | None = None  # the archive's top folder that becomes ``target`` (None: the archive root)

    def missing(self, root: Path | None = None) -> list[str]:
        base = root or self.target
        return [p for p in self.required if not (base / p).exists()]

    def installed(self) -> bool:
        return not self.missing()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_sums(mirror: Path) -> dict[str, str]:
    """``SHA256SUMS`` of a mirror: file name -> checksum (a missing file: empty)."""
    sums = mirror / "SHA256SUMS"
    out: dict[str, str] = {}
    if not sums.is_file():
        return out
    for line in sums.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _download(release: Release, dest: Path, progress: Progress) -> None:
    last = 0.0
    try:
        with urllib.request.urlopen(release.url, timeout=60) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - last > 2 or done == total:
                    last = time.monotonic()
                    size = f"{done >> 20}/{total >> 20} MiB" if total else f"{done >> 20} MiB"
                    progress(f"{release.name}: downloading {release.archive} {size}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"{release.name}: could not download {release.archive} from {release.url} ({reason}); "
            f"with no internet access, set {MIRROR_ENV} to a directory holding the archive "
            "and its SHA256SUMS"
        ) from None


def fetch(release: Release, workdir: Path, progress: Progress) -> Path:
    """The verified archive: the mirror's file, or a download into ``workdir``."""
    mirror_raw = os.environ.get(MIRROR_ENV, "").strip()
    if mirror_raw:
        mirror = Path(mirror_raw).expanduser().resolve()
        path = mirror / release.archive
        if not path.is_file():
            raise ConfigError(
                f"{release.name}: {release.archive} is not in the mirror {mirror} ({MIRROR_ENV}); "
                f"put the release archive there with its line in SHA256SUMS, or unset {MIRROR_ENV} "
                "to download it"
            )
        want = mirror_sums(mirror).get(release.archive)
        if want is None:
            raise ConfigError(
                f"{release.name}: {release.archive} has no line in {mirror / 'SHA256SUMS'}; "
                "add its SHA-256 there (sha256sum ARCHIVE >> SHA256SUMS) after checking it"
            )
        progress(f"{release.name}: checking {path}")
        got = sha256_file(path)
        if got != want:
            raise ConfigError(
                f"{release.name}: {path} does not match its SHA256SUMS entry (sha256 {got[:16]}..., "
                f"expected {want[:16]}...): the archive is corrupt or altered; nothing installed, "
                "replace it from the official release"
            )
        return path
    path = workdir / release.archive
    _download(release, path, progress)
    got = sha256_file(path)
    if release.sha256 is None:
        progress(
            f"{release.name}: note: no pinned checksum for {release.archive}; its sha256 is {got}: "
            f"compare it with the one the release publishes"
        )
    elif got != release.sha256:
        raise ConfigError(
            f"{release.name}: {release.archive} from {release.url} does not match the pinned "
            f"sha256 (got {got[:16]}..., expected {release.sha256[:16]}...); nothing installed, "
            f"try again or use a checked mirror ({MIRROR_ENV})"
        )
    return path


def _unpack(release: Release, archive: Path, into: Path, progress: Progress) -> Path:
    try:
        size = archive.stat().st_size or 1
        last = 0.0
        # One pass over the stream (a random-access read of a .tar.gz decompresses it again per member).
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                tar.extract(member, into, filter="data")
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    progress(f"{release.name}: unpacking {archive.name} {100 * raw.tell() // size}%")
        progress(f"{release.name}: unpacked {archive.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigError(
            f"{release.name}: cannot unpack {archive} ({exc}); nothing installed, "
            "replace the archive from the official release"
        ) from None
    root = into / release.top if release.top else into
    lacking = release.missing(root)
    if lacking:
        raise ConfigError(
            f"{release.name}: {archive} lacks {', '.join(lacking[:3])} (not the official "
            f"{release.archive} layout); nothing installed, replace it from the official release"
        )
    return root


def install(release: Release, progress: Progress = _stderr) -> bool:
    """Install ``release`` into its target unless it is there; True when it installed it.
    ConfigError (one line) on any failure, with nothing left at the target."""
    if release.installed():
        return False
    target = release.target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):  # left by a killed set-up (an hour ago or more)
        if time.time() - stale.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.partial-", dir=target.parent) as tmp:
        work = Path(tmp)
        archive = fetch(release, work, progress)
        root = _unpack(release, archive, work / "tree", progress)
        try:
            os.rename(root, target)
        except OSError as exc:
            if release.installed():  # another set-up finished the same install meanwhile
                return False
            raise ConfigError(
                f"{release.name}: cannot move the unpacked tree to {target} ({exc.strerror}): "
                "if that directory holds an incomplete install, remove it and run the set-up again"
            ) from None
    progress(f"{release.name}: installed into {target} in {time.monotonic() - started:.1f} s")
    return True


def main(releases: list[tuple[Release, Callable[[], str | None]]]) -> int:
    """Set-up entry: install each release unless ``skip()`` says why not (e.g. a user-given
    install); one line per platform that could not be installed.  The set-up goes on: exit 0."""
    for release, skip in releases:
        reason = skip()
        if reason:
            _stderr(f"{release.name}: {reason}")
            continue
        try:
            if not install(release):
                _stderr(f"{release.name}: already installed in {release.target}")
        except ConfigError as exc:
            _stderr(f"error: {exc} (the rest of the set-up goes on without it)")
        except KeyboardInterrupt:  # the temporary directory is gone; the target was never touched
            _stderr(f"error: {release.name}: interrupted; nothing installed into {release.target}")
            return 130
    return 0
