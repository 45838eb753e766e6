"""The set-up's install of Fabric and Elements from their release archives (dvp.dist with the
adapters' archive specs): from a mirror with SHA256SUMS, refused on a checksum mismatch, one line
and nothing installed on every failure, a no-op when present.

Archives are made here in each release's official layout (the installer reads only names and
layout); with ``DVP_DIST_MIRROR`` set (CI on this project's machines) the real Elements archive of
the mirror is corrupted by one byte too."""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dvp.dist import MIRROR_ENV, Release, install
from dvp.errors import ConfigError
from dvp_fabric.bins import FabricInstall, fabric_release
from dvp_utxo.bins import elements_release, find_elementsd

ROOT = Path(__file__).resolve().parents[2]
REAL_MIRROR = os.environ.get(MIRROR_ENV, "")  # read before the fixtures clear it


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("DVP_CACHE", str(path))
    for var in ("DVP_FABRIC_HOME", "DVP_ELEMENTSD", MIRROR_ENV):
        monkeypatch.delenv(var, raising=False)
    return path


def make_archive(release: Release, path: Path) -> None:
    """A .tar.gz in ``release``'s layout: its required files (executable scripts) under its top folder."""
    with tarfile.open(path, "w:gz") as tar:
        for rel in release.required:
            name = f"{release.top}/{rel}" if release.top else rel
            data = b"#!/bin/sh\necho installed\n"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


def make_mirror(directory: Path, *releases: Release) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for release in releases:
        make_archive(release, directory / release.archive)
        lines.append(f"{hashlib.sha256((directory / release.archive).read_bytes()).hexdigest()}  {release.archive}\n")
    (directory / "SHA256SUMS").write_text("".join(lines))
    return directory


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_installs_both_platforms_from_a_mirror_where_the_project_reads_them(cache, tmp_path, monkeypatch):
    mirror = make_mirror(tmp_path / "mirror", fabric_release(), elements_release())
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    lines: list[str] = []
    assert install(fabric_release(), lines.append) and install(elements_release(), lines.append)
    assert FabricInstall.default().present(), FabricInstall.default().missing()
    assert find_elementsd() == cache / "elements-23.3.3" / "bin" / "elementsd"
    assert any("unpack" in line for line in lines) and any("installed into" in line for line in lines)
    assert leftovers(cache) == sorted([fabric_release().target.name, "elements-23.3.3"])  # no temp dir left
    # a no-op the second time, even with the mirror gone
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "gone"))
    assert not install(fabric_release(), lines.append) and not install(elements_release(), lines.append)


@pytest.mark.parametrize("spec", [fabric_release, elements_release], ids=["fabric", "elements"])
def test_a_corrupted_archive_in_a_mirror_is_refused_and_nothing_is_installed(cache, tmp_path, monkeypatch, spec):
    mirror = make_mirror(tmp_path / "mirror", spec())
    flip_one_byte(mirror / spec().archive)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    with pytest.raises(ConfigError) as err:
        install(spec(), lambda m: None)
    line = str(err.value)
    assert "\n" not in line and spec().archive in line and "SHA256SUMS" in line and "nothing installed" in line
    assert leftovers(cache) == []


def test_the_real_elements_archive_of_the_mirror_one_byte_changed_is_refused(cache, tmp_path, monkeypatch):
    real = REAL_MIRROR
    if not real:
        pytest.skip(f"{MIRROR_ENV} is not set (no mirror of the release archives here)")
    release = elements_release()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(Path(real) / release.archive, mirror / release.archive)
    shutil.copy(Path(real) / "SHA256SUMS", mirror / "SHA256SUMS")
    flip_one_byte(mirror / release.archive)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    with pytest.raises(ConfigError, match="does not match its SHA256SUMS entry"):
        install(release, lambda m: None)
    assert leftovers(cache) == []


def test_an_archive_missing_from_the_mirror_or_from_its_sums_or_incomplete_is_one_line(cache, tmp_path, monkeypatch):
    release = elements_release()
    mirror = make_mirror(tmp_path / "mirror")  # empty SHA256SUMS, no archive
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    with pytest.raises(ConfigError, match=rf"{release.archive} is not in the mirror"):
        install(release, lambda m: None)
    make_archive(release, mirror / release.archive)
    with pytest.raises(ConfigError, match="has no line in"):
        install(release, lambda m: None)
    # listed and matching, but not the release's layout (elementsd absent): nothing renamed into place
    lacking = Release(**{**release.__dict__, "required": (*release.required, "bin/elements-qt")})
    (mirror / "SHA256SUMS").write_text(
        f"{hashlib.sha256((mirror / release.archive).read_bytes()).hexdigest()}  {release.archive}\n"
    )
    with pytest.raises(ConfigError, match="lacks bin/elements-qt"):
        install(lacking, lambda m: None)
    assert leftovers(cache) == []


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the pinned archives are for x86_64")
def test_the_set_up_entries_print_one_line_each_and_go_on(cache, tmp_path):
    """No mirror and no route to the download address (a proxy that refuses): one line per
    platform, exit 0, no traceback, nothing installed."""
    env = {
        **os.environ,
        "DVP_CACHE": str(cache),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    for var in ("DVP_FABRIC_HOME", "DVP_ELEMENTSD", MIRROR_ENV):
        env.pop(var, None)
    for args in (["-m", "dvp_fabric.bins"], ["-m", "dvp_utxo.bins", "install-elements"]):
        proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "could not download" in lines[0], proc.stderr
        assert MIRROR_ENV in lines[0] and "Traceback" not in proc.stderr
    assert leftovers(cache) == []


def test_an_install_interrupted_after_unpacking_leaves_no_half_install(cache, tmp_path, monkeypatch):
    release = fabric_release()
    monkeypatch.setenv(MIRROR_ENV, str(make_mirror(tmp_path / "mirror", release)))

    def interrupt(message: str) -> None:
        if "unpacked" in message:  # every file is out, the rename into place not done yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        install(release, interrupt)
    assert not release.target.exists() and leftovers(cache) == []
    # what a SIGKILLed set-up leaves (its temporary directory) is removed by the next one after an hour
    stale = cache / f".{release.target.name}.partial-killed"
    (stale / "tree").mkdir(parents=True)
    os.utime(stale, (1, 1))
    assert install(release, lambda m: None) and release.installed()  # the next set-up installs it whole
    assert leftovers(cache) == [release.target.name]
