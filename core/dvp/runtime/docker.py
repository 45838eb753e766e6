"""The Docker runtime: every ledger a compose project from ``docker/``, state in a run directory.

``DockerRuntime`` has the interface of :class:`~dvp.runtime.local.LocalRuntime`
(``up``, ``down``, ``status``, ``state``) and writes the same ``state.json``:
adapters and the orchestrator cannot tell which runtime started a ledger.

Each ledger of a topology is one compose project (``dvp-<run dir hash>-<ledger>``)
started from its platform's compose file (``docker/evm.yaml``, ``docker/utxo.yaml``)
with host networking; ports, chain ids and the like go in through an env file the
runtime writes next to the state (``<run_dir>/docker/<ledger>.env``, mode 0600), so a
project can be inspected by hand with the same ``--env-file -f -p`` arguments.  Once a
container answers, the runtime does what the native launcher does after its process
answers, with the launcher's own functions (btcd: mine the initial blocks, fund the
parties, start the host-side block clock; anvil: nothing), then bootstraps every
adapter as ``LocalRuntime`` does.

Per ledger the state keeps ``pids`` (host processes the runtime started, e.g. the
btcd block clock; often empty) and ``docker`` (compose command, file, env file,
project, container ids), which is what ``down`` needs to stop everything.

The engine is found through ``DOCKER_HOST``, else the private engine of
``docker/engine.sh`` (``/run/dvp-docker/docker.sock``) when it runs, else Docker's
default socket.  Compose is ``$DVP_COMPOSE`` when set, else the ``docker compose``
plugin, else Debian's ``docker-compose`` (v1).  Images must be present (stand-ins from
``docker/standins.sh`` or pulled official ones) unless ``DVP_DOCKER_PULL=1`` lets
compose pull what is missing.  A platform whose ledgers share nodes (``shared_nodes``: Fabric, one
network whose channels are the ledgers) gets one compose project for all its ledgers, started by
its launcher's ``start_containers``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..env import env_command, env_flag
from ..errors import ConfigError, LedgerUnavailable
from ..launcher import LaunchedLedger
from ..models import Asset
from ..registry import launcher_class, ledger_endpoint
from ..topology import Topology
from .base import Runtime
from .bootstrap import bootstrap
from .processes import alive, endpoint_answers, free_port, stop

LABEL = "org.dvp.testnet"  # every service of docker/*.yaml carries it; engine.sh stop removes them
ENGINE_SOCKET = Path(os.environ.get("DVP_DOCKER_RUN", "/run/dvp-docker")) / "docker.sock"


def compose_file(kind: str) -> str | None:
    """The compose file of a platform, as its launcher names it (None: no Docker support)."""
    return launcher_class(kind).compose_file


def compose_path(kind: str) -> Path:
    name = compose_file(kind)
    if name is None:
        raise ConfigError(f"docker: {kind!r} has no Docker support yet")
    return compose_dir() / name


def compose_dir() -> Path:
    """Where the compose files are: ``$DVP_COMPOSE_DIR``, else ``docker/`` of the source tree."""
    env = os.environ.get("DVP_COMPOSE_DIR")
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        if any((base / "docker").glob("*.yaml")):
            return base / "docker"
    raise ConfigError("docker: compose files not found; set DVP_COMPOSE_DIR to the repository's docker/ directory")


# ----------------------------------------------------------------------------- engine


def docker_env() -> dict[str, str]:
    """The environment for docker and compose: ``DOCKER_HOST`` as found (see the module docstring)."""
    env = dict(os.environ)
    if not env.get("DOCKER_HOST") and ENGINE_SOCKET.is_socket():
        env["DOCKER_HOST"] = f"unix://{ENGINE_SOCKET}"
    return env


def docker_host() -> str:
    return docker_env().get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def engine_problem(timeout: float = 15.0) -> str | None:
    """None when a Docker engine answers; else why not, in one line."""
    if shutil.which("docker") is None:
        return "no docker client on PATH (docker/engine.sh start installs docker.io)"
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=docker_env(),
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"the Docker engine at {docker_host()} did not answer in {timeout:.0f} s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine reachable at {docker_host()}: {last}"
    return None


def compose_command() -> list[str]:
    """``$DVP_COMPOSE`` (e.g. ``docker-compose``), else the compose plugin, else compose v1."""
    env = env_command("DVP_COMPOSE")
    if env:
        return env
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, env=docker_env())
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ConfigError("docker: neither `docker compose` nor `docker-compose` is installed (docker/engine.sh start)")


def _docker(*args: str, timeout: float = 60.0, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], env=docker_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LedgerUnavailable(f"docker {' '.join(args)}: {proc.stderr.strip()[-1000:]}")
    return proc.stdout.strip()


def compose_images(file: Path) -> list[str]:
    """The images a compose file names (``image: ${VAR:-default}``), as the environment resolves them."""
    names = []
    for var, default in re.findall(r"^\s*image:\s*\$\{(\w+):-([^}]+)\}\s*$", Path(file).read_text(), re.M):
        names.append(os.environ.get(var) or default)
    return names


def missing_images(images: list[str]) -> list[str]:
    return [i for i in dict.fromkeys(images) if _docker("image", "inspect", "-f", "{{.Id}}", i, check=False) == ""]


def container_running(cid: str) -> bool:
    try:
        return _docker("inspect", "-f", "{{.State.Running}}", cid, timeout=20, check=False) == "true"
    except subprocess.TimeoutExpired:
        return True  # a slow engine is not a dead container


# ----------------------------------------------------------------------------- runtime


class Project:
    """One compose project: a ledger's containers."""

    def __init__(self, compose: list[str], file: Path, env_file: Path, name: str):
        self.compose, self.file, self.env_file, self.name = compose, Path(file), Path(env_file), name

    @classmethod
    def from_state(cls, entry: dict[str, Any]) -> "Project":
        return cls(entry["compose"], Path(entry["file"]), Path(entry["env_file"]), entry["project"])

    def record(self, containers: list[str]) -> dict[str, Any]:
        return {"compose": self.compose, "file": str(self.file), "env_file": str(self.env_file),
                "project": self.name, "containers": containers}  # fmt: skip

    def run(self, *args: str, timeout: float = 180.0) -> str:
        cmd = [*self.compose, "--env-file", str(self.env_file), "-f", str(self.file), "-p", self.name, *args]
        # compose v1 resolves relative paths against the compose file's directory.
        proc = subprocess.run(cmd, env=docker_env(), capture_output=True, text=True, timeout=timeout,
                              cwd=self.file.parent)  # fmt: skip
        if proc.returncode != 0:
            raise LedgerUnavailable(
                f"{' '.join(cmd)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-1500:]}"
            )
        return proc.stdout.strip()

    def containers(self) -> list[str]:
        return [c for c in self.run("ps", "-q").split() if c]

    def container(self, service: str) -> str:
        found = [c for c in self.run("ps", "-q", service).split() if c]
        if len(found) != 1:
            raise LedgerUnavailable(f"compose project {self.name}: service {service} has containers {found}")
        return found[0]


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, run_dir: Path, *, compose: list[str] | str | None = None):
        super().__init__(run_dir)
        self._compose = shlex.split(compose) if isinstance(compose, str) else compose

    # -- the LocalRuntime interface ---------------------------------------------------
    def up(self, topology: Topology, *, port_base: int | None = None,
           progress: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
        self.check_free()
        for spec in topology.ledgers:
            if compose_file(spec.kind) is None:
                raise ConfigError(f"ledgers.{spec.name}.kind: {spec.kind!r} has no Docker support yet")
        problem = engine_problem()
        if problem:
            raise ConfigError(f"runtime docker: {problem}; start one with docker/engine.sh start")
        compose = self._compose or compose_command()
        if not env_flag("DVP_DOCKER_PULL"):
            # No silent pulls: a missing image is named, with the two ways to get it.
            kinds = {spec.kind for spec in topology.ledgers}
            # the first image of each file is its ledger node (utxo.yaml: btcd; elementsd is a profile);
            # a platform of shared nodes needs every image of its file (fabric.yaml: tools, orderer, peer)
            wanted = [img for kind in sorted(kinds)
                      for img in compose_images(compose_path(kind))[:None if launcher_class(kind).shared_nodes else 1]]  # fmt: skip
            missing = missing_images(wanted)
            if missing:
                raise ConfigError(f"runtime docker: image(s) {', '.join(missing)} not present; build stand-ins "
                                  "(docker/standins.sh) or pull the official images (docker/README.md), "
                                  "or set DVP_DOCKER_PULL=1 to let compose pull them")  # fmt: skip
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "docker").mkdir(exist_ok=True)
        launched: list[LaunchedLedger] = []
        projects: dict[str, dict[str, Any]] = {}
        index: dict[str, int] = {}
        shared_done: set[str] = set()
        try:
            for n, spec in enumerate(topology.ledgers):
                cls = launcher_class(spec.kind)
                if cls.shared_nodes:
                    # One compose project of nodes for every ledger of this kind (e.g. Fabric channels).
                    if spec.kind in shared_done:
                        continue
                    shared_done.add(spec.kind)
                    specs = [s for s in topology.ledgers if s.kind == spec.kind]
                    names = [s.name for s in specs]
                    progress(f"starting {', '.join(names)} ({spec.kind}) in Docker")
                    slot = _Slot(self, compose, spec.kind, spec.kind, projects, names)
                    launched += cls({s.name: s.options for s in specs}).start_containers(names, slot)
                    self._write(launched, projects, topology.assets, partial=True)
                    continue
                i = index[spec.kind] = index.get(spec.kind, -1) + 1
                port = port_base + n if port_base else free_port()
                progress(f"starting {spec.name} ({spec.kind}) in Docker on 127.0.0.1:{port}")
                slot = _Slot(self, compose, spec.name, spec.kind, projects)
                launcher = cls({spec.name: spec.options})
                launched.append(launcher.start_container(spec.name, i, port, slot))
                self._write(launched, projects, topology.assets, partial=True)
            progress("deploying contracts and assets")
            configs = asyncio.run(bootstrap(launched, topology.assets))
            for ledger in launched:
                ledger.config = configs[ledger.name]
            return self._write(launched, projects, topology.assets)
        except BaseException:
            self._stop(launched, projects)
            self.state_path.unlink(missing_ok=True)
            raise

    def down(self) -> list[Any]:
        """Stop every container and host process the state records; what was stopped."""
        state = self.state()
        if state is None:
            return []
        stopped: list[Any] = []
        pids = [pid for ledger in state["ledgers"].values() for pid in ledger.get("pids", [])]
        stop(pids)
        stopped += pids
        problem = engine_problem() if any(l.get("docker") for l in state["ledgers"].values()) else None
        if problem:
            raise LedgerUnavailable(f"runtime docker: {problem}; containers of {self.run_dir} may still run "
                                    "(state kept; `docker/engine.sh stop` removes every dvp container)")  # fmt: skip
        for ledger in state["ledgers"].values():
            entry = ledger.get("docker")
            if entry:
                stopped += _remove(Project.from_state(entry), entry.get("containers", []))
        self.state_path.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        state = self.state() or {"ledgers": {}}
        rows = []
        for name, ledger in state["ledgers"].items():
            containers = (ledger.get("docker") or {}).get("containers", [])
            endpoint = ledger_endpoint(ledger["kind"], ledger["config"])
            rows.append({
                "ledger": name,
                "kind": ledger["kind"],
                "pids": ledger.get("pids", []),
                "containers": [c[:12] for c in containers],
                "alive": all(container_running(c) for c in containers) and all(alive(p) for p in ledger.get("pids", []))
                and (not endpoint or endpoint_answers(endpoint)),
                "endpoint": endpoint,
            })  # fmt: skip
        return rows

    # -- internals --------------------------------------------------------------------
    def project(self, compose: list[str], spec_name: str, kind: str, env: dict[str, Any]) -> Project:
        digest = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:8]
        name = f"dvp-{digest}-{re.sub(r'[^a-z0-9_-]', '-', spec_name.lower())}"
        env_file = self.run_dir / "docker" / f"{spec_name}.env"
        env = {"DVP_LEDGER": spec_name, **env}
        for key in launcher_class(kind).image_variables:  # the platform's own image overrides
            if os.environ.get(key):
                env[key] = os.environ[key]
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        os.chmod(env_file, 0o600)  # RPC passwords
        return Project(compose, compose_path(kind), env_file, name)

    def _write(self, launched: list[LaunchedLedger], projects: dict[str, dict[str, Any]], assets: list[Asset],
               partial: bool = False) -> dict[str, Any]:  # fmt: skip
        ledgers = {l.name: {"kind": l.kind, "config": l.config, "pids": l.pids, "logs": l.logs, "docker": projects.get(l.name)}
                   for l in launched}  # fmt: skip
        return self.save(ledgers, assets, partial=partial, docker_host=docker_host())

    def _stop(self, launched: list[LaunchedLedger], projects: dict[str, dict[str, Any]]) -> None:
        stop([pid for ledger in launched for pid in ledger.pids])
        for entry in projects.values():
            try:
                _remove(Project.from_state(entry), entry.get("containers", []))
            except Exception:
                pass


def _remove(project: Project, containers: list[str]) -> list[str]:
    try:
        project.run("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=120)
    except (LedgerUnavailable, subprocess.TimeoutExpired):
        pass
    left = [c for c in containers if _docker("inspect", "-f", "{{.Id}}", c, check=False)]
    if left:
        _docker("rm", "-f", *left, check=False)
    return containers


def exec_in(
    cid: str, argv: list[str], env: dict[str, str], *, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``docker exec`` of ``argv`` in container ``cid`` with ``env`` and working directory ``cwd``."""
    flags = [f for k, v in env.items() for f in ("-e", f"{k}={v}")]
    return subprocess.run(["docker", "exec", *flags, "-w", str(cwd), cid, *argv], env=docker_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _start_project(project: Project, what: str, services: list[str] | None = None) -> tuple[list[str], str]:
    """``up -d`` the project (or only ``services`` of it); (the containers started, the first one's log file).
    Without ``services`` the project must run exactly one container."""
    project.run("up", "-d", "--no-build", *(services or []))
    if services:
        containers = [project.container(s) for s in services]
    else:
        containers = project.containers()
        if len(containers) != 1:
            raise LedgerUnavailable(
                f"{what}: expected one container in compose project {project.name}, got {containers}"
            )
    return containers, _docker("inspect", "-f", "{{.LogPath}}", containers[0], check=False)


def _wait(check: Callable[[], bool], cids: list[str], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last_inspect = 0.0
    while time.monotonic() < deadline:
        if check():
            return
        if time.monotonic() - last_inspect > 1.0:
            last_inspect = time.monotonic()
            for cid in cids:
                if not container_running(cid):
                    raise LedgerUnavailable(f"{what}: container {cid[:12]} exited: {_logs(cid)}")
        time.sleep(0.1)
    raise LedgerUnavailable(f"{what}: not healthy after {timeout:.0f}s: {_logs(cids[-1])}")


def _logs(cid: str, lines: int = 10) -> str:
    proc = subprocess.run(
        ["docker", "logs", "--tail", str(lines), cid], env=docker_env(), capture_output=True, text=True
    )
    return (proc.stdout + proc.stderr).strip()[-2000:]


class _Slot:
    """One compose project, as a launcher sees it (:class:`ContainerSlot`): one ledger's, or the
    shared nodes of several ledgers of one kind (``names``)."""

    def __init__(self, rt: "DockerRuntime", compose: list[str], name: str, kind: str, projects: dict[str, Any],
                 names: list[str] | None = None):  # fmt: skip
        self.run_dir = rt.run_dir
        self._rt, self._compose, self._name, self._kind, self._projects = rt, compose, name, kind, projects
        self._names = names or [name]
        self.project: Project | None = None
        self.cids: list[str] = []
        self._by_service: dict[str, str] = {}

    def _record(self) -> None:
        assert self.project
        for name in self._names:
            self._projects[name] = self.project.record(list(self.cids))

    def start(self, env: dict[str, Any], services: list[str] | None = None) -> str | None:
        if self.project is None:
            self.project = self._rt.project(self._compose, self._name, self._kind, env)
            self._record()  # recorded before `up`, so a failure still removes it
        cids, log = _start_project(self.project, f"{self._kind} {self._name}", services)
        self.cids += [c for c in cids if c not in self.cids]
        self._record()
        return log or None

    def container(self, service: str) -> str:
        assert self.project, "start the project first"
        # Asking compose costs a second (v1 is a Python program); a started container keeps its id.
        if service not in self._by_service:
            self._by_service[service] = self.project.container(service)
        return self._by_service[service]

    def exec(
        self, service: str, argv: list[str], env: dict[str, str], *, cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the running ``service`` container, with ``env`` and working directory ``cwd``."""
        return exec_in(self.container(service), argv, env, cwd=cwd, timeout=timeout)

    def wait(self, check: Callable[[], bool], what: str) -> None:
        _wait(check, self.cids, what)

    def running(self) -> bool:
        return all(container_running(c) for c in self.cids)
