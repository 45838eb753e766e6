"""pytest fixtures for tests against dvp testnets, containerised by default.

Enabled by the ``pytest11`` entry point ``dvp.pytest_plugin`` when dvp is installed
(or ``-p dvp.pytest_plugin``).  It only defines an option, a marker and fixtures:
nothing starts unless a test asks for a fixture, so suites that do not use it pay
nothing.

Fixtures
  ``dvp_testnet``        (session) a run directory with the testnets of ``dvp_topology``
                         up and bootstrapped; stopped at the end of the session.  With
                         the docker runtime and no reachable engine, every test using it
                         is skipped with the reason.
  ``dvp_ledger_set``     a connected :class:`dvp.ledger_set.LedgerSet` on ``dvp_testnet``
                         (an async fixture: needs pytest-asyncio).
  ``dvp_topology``       (session) what to start: ``dvp.topology.default()`` (evm-a,
                         evm-b, btc); override it in your conftest.
  ``dvp_runtime_name``   (session) ``docker`` or ``process``.
  ``dvp_compose_command``(session) the compose command for the docker runtime.
  ``dvp_compose_projects`` (session) ``{ledger: pytest_docker DockerComposeExecutor}``
                         for each ledger's compose project, e.g.
                         ``dvp_compose_projects["btc"].execute("logs")``.

``DVP_DOCKER_REQUIRED=1`` turns that skip into a failure (``make test-docker`` sets it).

Choosing the runtime: ``--dvp-runtime docker|process``, else ``DVP_RUNTIME``, else
``docker``.  The engine is found as ``dvp.runtime.docker`` finds it (``DOCKER_HOST``,
the private engine of ``docker/engine.sh``, Docker's default socket).

Compose: ``DVP_COMPOSE`` when set; else pytest-docker's ``docker_compose_command``
fixture (override it in a conftest, e.g. to ``"docker-compose"``) when that command
works here; else whichever of ``docker compose`` / ``docker-compose`` is installed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dvp.runtime import PLUGIN_DEFAULT_RUNTIME, RUNTIMES

if TYPE_CHECKING:
    from dvp.ledger_set import LedgerSet
    from dvp.runtime.base import Runtime
    from dvp.topology import Topology

pytest_asyncio: Any
try:  # async fixtures need pytest-asyncio; without it dvp_ledger_set is not offered
    import pytest_asyncio
except ImportError:  # pragma: no cover
    pytest_asyncio = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dvp", "dvp testnets")
    group.addoption("--dvp-runtime", choices=sorted(RUNTIMES), default=None,
                    help="runtime of the dvp_testnet fixture (default: $DVP_RUNTIME, else docker)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (dvp's docker runtime)")


def runtime_name(config: pytest.Config) -> str:
    name = str(
        config.getoption("--dvp-runtime", default=None) or os.environ.get("DVP_RUNTIME") or PLUGIN_DEFAULT_RUNTIME
    )
    if name not in RUNTIMES:
        raise pytest.UsageError(f"dvp runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
    return name


@pytest.fixture(scope="session")
def dvp_runtime_name(request: pytest.FixtureRequest) -> str:
    return runtime_name(request.config)


@pytest.fixture(scope="session")
def dvp_topology(dvp_runtime_name: str) -> Topology:
    from dvp.topology import default

    return default(block_time=1.0, containers=dvp_runtime_name == "docker")


@pytest.fixture(scope="session")
def dvp_compose_command(request: pytest.FixtureRequest) -> str:
    if os.environ.get("DVP_COMPOSE"):
        return os.environ["DVP_COMPOSE"]
    from dvp.runtime.docker import compose_command, docker_env

    try:  # pytest-docker's fixture, when installed (and overridden or working here)
        cmd = str(request.getfixturevalue("docker_compose_command"))
        probe = subprocess.run([*shlex.split(cmd), "version"], capture_output=True, env=docker_env())
        if probe.returncode == 0:
            return cmd
    except pytest.FixtureLookupError:
        pass
    return shlex.join(compose_command())


@pytest.fixture(scope="session")
def dvp_testnet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dvp_runtime_name: str,
                dvp_topology: Topology) -> Iterator[Path]:  # fmt: skip
    """Start the testnets once per session; stop everything they started, whatever happens."""
    from dvp.runtime import select

    if dvp_runtime_name == "docker":
        from dvp.runtime.docker import DockerRuntime, engine_problem

        problem = engine_problem()
        if problem:
            reason = f"dvp docker runtime: {problem} (start one: docker/engine.sh start)"
            if os.environ.get("DVP_DOCKER_REQUIRED"):  # make test-docker: a missing engine is a failure
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        path = tmp_path_factory.mktemp("dvp-testnet")
        runtime: Runtime = DockerRuntime(path, compose=request.getfixturevalue("dvp_compose_command"))
    else:
        path = tmp_path_factory.mktemp("dvp-testnet")
        runtime = select(dvp_runtime_name, path)
    try:
        runtime.up(dvp_topology, progress=lambda m: None)
        yield path
    finally:
        runtime.down()


@pytest.fixture(scope="session")
def dvp_compose_projects(dvp_testnet: Path) -> dict[str, Any]:
    """Each docker ledger's compose project as a pytest-docker executor (empty for the process runtime)."""
    from pytest_docker.plugin import DockerComposeExecutor

    from dvp.runtime.docker import docker_host
    from dvp.runtime.local import LocalRuntime

    state = LocalRuntime(dvp_testnet).state() or {"ledgers": {}}
    projects = {}
    for name, ledger in state["ledgers"].items():
        entry = ledger.get("docker")
        if entry:
            # pytest-docker runs the command in a shell with our environment: name the engine.
            cmd = shlex.join(
                ["env", f"DOCKER_HOST={docker_host()}", *entry["compose"], "--env-file", entry["env_file"]]
            )
            projects[name] = DockerComposeExecutor(cmd, entry["file"], entry["project"])
    return projects


if pytest_asyncio is not None:

    @pytest_asyncio.fixture  # type: ignore[untyped-decorator]  # pytest-asyncio is Any when optional
    async def dvp_ledger_set(dvp_testnet: Path) -> AsyncIterator[LedgerSet]:
        from dvp.ledger_set import LedgerSet

        async with LedgerSet.from_run_dir(dvp_testnet) as ledger_set:
            yield ledger_set
