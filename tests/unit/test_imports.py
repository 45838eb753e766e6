"""Every module of every package imports alone, first, in an interpreter that has imported
nothing of the project: an import cycle that only works in one order (``import dvp_agent.cli``
before ``dvp.cli`` failed so) shows here.  The layers themselves are import-linter's contracts
in pyproject.toml, run by ``make lint``.

One fresh interpreter imports the third-party libraries only (web3 alone takes about a second),
then forks a child per module, which imports that module first and exits: each child starts
with none of the project's modules loaded, as a fresh interpreter would."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("dvp", "dvp_ethereum", "dvp_utxo", "dvp_fabric", "dvp_agent")
# What the packages import from outside (none of it imports the project).
LIBRARIES = (
    "pydantic", "pydantic_settings", "click", "rich.console", "yaml", "aiohttp", "web3", "eth_account",
    "bitcoin.core", "wallycore", "grpc", "grpc.aio", "cryptography.x509", "fabric_protos.gateway.gateway_pb2",
    "prometheus_client", "psycopg", "matplotlib",
)  # fmt: skip

FORK_EACH = """
import importlib, json, os, sys

packages, libraries, modules, out = json.loads(sys.argv[1])
for library in libraries:
    try:
        importlib.import_module(library)
    except ImportError:
        pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in packages)
assert not loaded, f"a library imported the project: {loaded}"
results = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            importlib.import_module(module)
            why = ""
        except BaseException as exc:
            why = f"{type(exc).__name__}: {exc}"
        os.write(write, why.encode()[:4000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        why = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    results[module] = why or ("" if status == 0 else f"the child ended with status {status}")
with open(out, "w") as f:
    json.dump(results, f)
"""


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join((package, *parts)))
    return found


MODULES = _modules()


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, str]:
    """Each module's import, first thing in a child of an interpreter without the project:
    '' when it succeeds, else its error in one line."""
    out = tmp_path_factory.mktemp("imports") / "results.json"
    arguments = json.dumps([PACKAGES, LIBRARIES, MODULES, str(out)])
    done = subprocess.run(
        [sys.executable, "-c", FORK_EACH, arguments], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    return json.loads(out.read_text())


def test_every_package_has_modules():
    assert len(MODULES) > 100 and {"dvp.cli", "dvp_agent.cli", "dvp_fabric.gateway.events"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_alone(module, imported):
    assert imported[module] == "", f"import {module} alone: {imported[module]}"
