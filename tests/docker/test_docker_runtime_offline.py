"""The docker runtime's parts that need no engine: compose files, refusals, the seam."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dvp.errors import ConfigError
from dvp.runtime import select
from dvp.runtime.docker import DockerRuntime, compose_command, compose_dir, engine_problem
from dvp.topology import LedgerSpec, Topology

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ENV = {  # every variable a compose file requires
    "DVP_PORT": "18545", "DVP_NODE_DIR": "/tmp/dvp-node", "DVP_RPC_PASSWORD": "x", "DVP_MINING_ADDRESS": "bcrt1qx",
}  # fmt: skip
FABRIC_SERVICES = ["orderer", "peer-seller", "peer-buyer"]  # each reads DVP_FABRIC_DIR/docker/<service>.env


def test_the_seam_selects_the_docker_runtime(tmp_path):
    assert isinstance(select("docker", tmp_path), DockerRuntime)
    assert compose_dir() == DOCKER


def test_platforms_without_docker_support_are_refused_before_anything_starts(tmp_path, monkeypatch):
    from dvp_fabric.launcher import FabricLauncher

    monkeypatch.setattr(FabricLauncher, "compose_file", None)  # a platform without a compose file
    topo = Topology(ledgers=[LedgerSpec(name="fab", kind="fabric")])
    with pytest.raises(ConfigError, match="ledgers.fab.kind: 'fabric' has no Docker support"):
        DockerRuntime(tmp_path).up(topo, progress=lambda m: None)
    assert not (tmp_path / "state.json").exists()


FILES = ["evm", "utxo", "fabric", "testnet"]


@pytest.mark.parametrize("name", FILES)
def test_every_service_uses_host_networking_and_publishes_no_port(name):
    services = yaml.safe_load((DOCKER / f"{name}.yaml").read_text())["services"]
    for svc, body in services.items():
        if "extends" in body:
            base = yaml.safe_load((DOCKER / body["extends"]["file"]).read_text())["services"][
                body["extends"]["service"]
            ]
            body = {**base, **body}
        assert body.get("network_mode") == "host", svc
        assert "ports" not in body, svc
        assert body.get("labels", {}).get("org.dvp.testnet"), svc  # engine.sh stop finds them by it
        text = yaml.safe_dump(body)
        assert "0.0.0.0" not in text, svc


@pytest.mark.parametrize("name", FILES)
def test_compose_accepts_the_file(name, monkeypatch, tmp_path):
    """`compose config` (slow with compose v1: run with the docker suite, when an engine is up)."""
    if engine_problem(timeout=5):
        pytest.skip("compose validation runs with the docker suite (make test-docker)")
    try:
        cmd = compose_command()
    except ConfigError as exc:
        pytest.skip(str(exc))
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "docker").mkdir()
    for service in FABRIC_SERVICES:
        (tmp_path / "docker" / f"{service}.env").write_text("FABRIC_LOGGING_SPEC=INFO\n")
    monkeypatch.setenv("DVP_FABRIC_DIR", str(tmp_path))
    out = subprocess.run([*cmd, "-f", str(DOCKER / f"{name}.yaml"), "config"], capture_output=True, text=True,
                         cwd=DOCKER)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("network_mode: host") >= 1


def test_standins_are_named_as_the_compose_files_name_them():
    listed = subprocess.run(["bash", str(DOCKER / "standins.sh"), "--list"], capture_output=True, text=True, check=True)
    images = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert images[:2] == ["foundry-rs/foundry:v1.7.1", "btcsuite/btcd:v0.24.2"]
    from dvp_fabric.bins import FabricInstall

    fabric = ["hyperledger/fabric-orderer:3.1.5", "hyperledger/fabric-peer:3.1.5", "hyperledger/fabric-tools:3.1.5"]
    assert [i for i in images if i.startswith("hyperledger/")] == (fabric if FabricInstall.default().present() else [])
    for image in fabric:
        var = "DVP_FABRIC_" + image.split("-")[1].split(":")[0].upper() + "_IMAGE"
        assert "${%s:-%s}" % (var, image) in (DOCKER / "fabric.yaml").read_text()
    assert "${DVP_FOUNDRY_IMAGE:-foundry-rs/foundry:v1.7.1}" in (DOCKER / "evm.yaml").read_text()
    assert "${DVP_BTCD_IMAGE:-btcsuite/btcd:v0.24.2}" in (DOCKER / "utxo.yaml").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_engine_script_knows_its_commands():
    out = subprocess.run(["bash", str(DOCKER / "engine.sh"), "bogus"], capture_output=True, text=True)
    assert out.returncode == 2 and "start|stop|status|env" in out.stderr


def test_a_missing_image_is_named_and_never_pulled(tmp_path, monkeypatch):
    if engine_problem(timeout=5):
        pytest.skip("needs a Docker engine (make test-docker)")
    monkeypatch.setenv("DVP_FOUNDRY_IMAGE", "dvp-test/absent:0")
    monkeypatch.delenv("DVP_DOCKER_PULL", raising=False)
    topo = Topology(ledgers=[LedgerSpec(name="evm-x", kind="ethereum")])
    with pytest.raises(ConfigError, match="dvp-test/absent:0 not present"):
        DockerRuntime(tmp_path).up(topo, progress=lambda m: None)
    assert not (tmp_path / "state.json").exists()


def test_every_compose_anvil_keeps_the_native_launchers_bound_on_states():
    """anvil spills old states to disk unless bounded (it once filled the disk): each compose
    file's anvil must keep the same number of states in memory as a native one."""
    from dvp_ethereum.launcher import KEPT_STATES

    commands = [
        service["command"]
        for name in ("evm", "testnet")
        for service in yaml.safe_load((DOCKER / f"{name}.yaml").read_text())["services"].values()
        if any(str(arg).startswith("--chain-id") for arg in service.get("command", []))
    ]
    assert len(commands) == 3  # evm.yaml's anvil; testnet.yaml's evm-a and evm-b
    for command in commands:
        assert f"--prune-history={KEPT_STATES}" in command
