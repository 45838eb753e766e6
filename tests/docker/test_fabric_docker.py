"""A Fabric network in containers (docker/fabric.yaml, official images or their stand-ins):
the Docker runtime starts orderer, peers and tools containers for both channels, the
chaincode is deployed through the lifecycle from the tools container, and a cross-channel
HTLC swap, a refund after expiry and a single-ledger DvP run on it with the peer CLI.

Skipped with the reason without an engine (a failure under DVP_DOCKER_REQUIRED=1, as
``make test-docker`` sets), without the Fabric images, or without Node.js.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest

import dvp.runtime.docker as docker_runtime
from dvp.env import env_flag
from dvp.runtime.docker import (
    DockerRuntime,
    Project,
    compose_dir,
    compose_images,
    engine_problem,
    exec_in,
    missing_images,
)
from dvp.runtime.processes import alive
from dvp.topology import LedgerSpec, Topology
from dvp_fabric.bins import ImageInstall, chaincode_server
from dvp_fabric.network import FabricNetwork

from ..testbed import binary_missing

SECRET = bytes(range(7, 39))
HASHLOCK = hashlib.sha256(SECRET).hexdigest()


@pytest.fixture(scope="module")
def fabric_in_docker(tmp_path_factory):
    problem = engine_problem()
    if problem:
        reason = f"dvp docker runtime: {problem} (start one: docker/engine.sh start)"
        if env_flag("DVP_DOCKER_REQUIRED"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    missing = missing_images(compose_images(compose_dir() / "fabric.yaml"))
    if missing:
        # The stand-ins are made from the Fabric install: a missing one fails under CI=true, as in tests/fabric.
        binary_missing(f"Fabric images {', '.join(missing)} not present: docker/standins.sh builds them from a "
                       "Fabric install (README: Getting Fabric), or pull the official ones (docker/README.md)")  # fmt: skip
    try:
        chaincode_server()
    except Exception as exc:
        pytest.skip(str(exc).splitlines()[0])
    run_dir = tmp_path_factory.mktemp("fabric-docker")
    runtime = DockerRuntime(run_dir)
    t0 = time.monotonic()
    # No assets in the topology: the test issues its own with the peer CLI.
    state = runtime.up(Topology(ledgers=[LedgerSpec(name="fabric-a", kind="fabric"),
                                         LedgerSpec(name="fabric-b", kind="fabric")]), progress=lambda m: None)  # fmt: skip
    print(f"fabric in docker: up in {time.monotonic() - t0:.1f}s")
    try:
        entry = state["ledgers"]["fabric-a"]["docker"]
        tools = Project.from_state(entry).container("tools")
        net = FabricNetwork.attach(run_dir / "fabric", install=ImageInstall())
        net.executor = lambda argv, env, timeout: exec_in(tools, argv, env, cwd=net.layout.run, timeout=timeout)
        yield runtime, state, net
    finally:
        runtime.down()


def _ok(net: FabricNetwork, ch: str, party: str, fn: str, *args: str) -> str:
    done = net.invoke(ch, net.party_env(party), fn, *args, check=False)
    assert done.returncode == 0, done.stderr[-800:]
    m = re.search(r'payload:"((?:[^"\\]|\\.)*)"', done.stderr)
    return m.group(1) if m else ""


def _bal(net: FabricNetwork, ch: str, who: str, asset: str) -> int:
    return int(net.query(ch, net.party_env("buyer"), "BalanceOf", net.accounts[who], asset))


def test_one_compose_project_serves_both_channels(fabric_in_docker):
    runtime, state, net = fabric_in_docker
    a, b = state["ledgers"]["fabric-a"], state["ledgers"]["fabric-b"]
    assert a["docker"]["containers"] == b["docker"]["containers"] and len(a["docker"]["containers"]) == 4
    assert (
        a["pids"] == b["pids"] == [p.pid for p in net.procs if p.name == "chaincode"]
    )  # the host-side chaincode server
    assert a["config"]["channel"] == "fabric-a" and b["config"]["channel"] == "fabric-b"
    assert [r["alive"] for r in runtime.status()] == [True, True]


def test_cross_channel_htlc_swap_refund_and_dvp_on_containers(fabric_in_docker):
    _, _, net = fabric_in_docker
    acct = net.accounts
    _ok(net, "fabric-a", "issuer", "Issue", acct["seller"], "BOND", "100")
    _ok(net, "fabric-b", "issuer", "Issue", acct["buyer"], "EUR", "5000")
    # The seller holds the secret and locks first, with the later expiry.
    far, near = str(int(time.time()) + 600), str(int(time.time()) + 300)
    sec = _ok(net, "fabric-a", "seller", "Lock", acct["buyer"], "BOND", "10", HASHLOCK, far, "01")
    cash = _ok(net, "fabric-b", "buyer", "Lock", acct["seller"], "EUR", "4000", HASHLOCK, near, "01")
    _ok(net, "fabric-b", "seller", "Claim", cash, SECRET.hex())
    revealed = json.loads(net.query("fabric-b", net.party_env("buyer"), "GetLock", cash))["preimage"]
    _ok(net, "fabric-a", "buyer", "Claim", sec, revealed)
    assert (_bal(net, "fabric-a", "buyer", "BOND"), _bal(net, "fabric-a", "seller", "BOND")) == (10, 90)
    assert (_bal(net, "fabric-b", "seller", "EUR"), _bal(net, "fabric-b", "buyer", "EUR")) == (4000, 1000)

    # A lock nobody claims goes back to its sender once expired, and only then.
    expiry = int(time.time()) + 3
    back = _ok(net, "fabric-a", "seller", "Lock", acct["buyer"], "BOND", "5", HASHLOCK, str(expiry), "02")
    early = net.invoke("fabric-a", net.party_env("seller"), "Refund", back, check=False)
    assert early.returncode != 0 and "DVP_LOCK_NOT_EXPIRED" in early.stderr
    time.sleep(max(0.0, expiry + 1.2 - time.time()))
    _ok(net, "fabric-a", "seller", "Refund", back)
    assert _bal(net, "fabric-a", "seller", "BOND") == 90

    # Single-ledger DvP on fabric-b: the buyer's acceptance moves both legs.
    _ok(net, "fabric-b", "issuer", "Issue", acct["seller"], "BOND", "3")
    order = _ok(net, "fabric-b", "seller", "ProposeOrder", acct["buyer"], "BOND", "3", "EUR", "300", far, "03")
    _ok(net, "fabric-b", "buyer", "AcceptOrder", order)
    assert (_bal(net, "fabric-b", "buyer", "BOND"), _bal(net, "fabric-b", "seller", "EUR")) == (3, 4300)


def test_down_removes_the_containers_and_stops_the_chaincode_server(tmp_path_factory):
    """A second network beside the module's, brought up and down again."""
    problem = engine_problem()
    if problem or missing_images(compose_images(compose_dir() / "fabric.yaml")):
        pytest.skip("needs the engine and the Fabric images (see the tests above)")
    run_dir = tmp_path_factory.mktemp("fabric-docker-down")
    runtime = DockerRuntime(run_dir)
    state = runtime.up(Topology(ledgers=[LedgerSpec(name="fabric-x", kind="fabric")]), progress=lambda m: None)
    containers = state["ledgers"]["fabric-x"]["docker"]["containers"]
    pids = state["ledgers"]["fabric-x"]["pids"]
    runtime.down()
    assert not any(alive(p) for p in pids)
    assert not any(docker_runtime.container_running(c) for c in containers)
    assert runtime.state() is None
