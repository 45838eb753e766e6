"""The Fabric launcher's generated configuration, checked without any Fabric binary."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from dvp.errors import ConfigError
from dvp_fabric import network as fn
from dvp_fabric.bins import FabricInstall
from dvp_fabric.launcher import FabricLauncher


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_ccaas_package_shape_and_stable_id():
    pkg = fn.ccaas_package("127.0.0.1:7109")
    outer = _untar(pkg)
    assert set(outer) == {"code.tar.gz", "metadata.json"}
    assert json.loads(outer["metadata.json"]) == {"type": "ccaas", "label": "dvp_1.0"}
    conn = json.loads(_untar(outer["code.tar.gz"])["connection.json"])
    assert conn == {"address": "127.0.0.1:7109", "dial_timeout": "10s", "tls_required": False}
    assert gzip.decompress(pkg)  # a real gzip stream
    assert fn.package_id(pkg) == fn.package_id(fn.ccaas_package("127.0.0.1:7109"))
    assert fn.package_id(pkg) != fn.package_id(fn.ccaas_package("127.0.0.1:7110"))
    label, digest = fn.package_id(pkg).split(":")
    assert label == "dvp_1.0" and len(digest) == 64


def test_ports_from_base_and_free_ports_are_distinct():
    p = fn.Ports.allocate(7100)
    assert (p.orderer, p.chaincode) == (7100, 7109)
    free = fn.Ports.allocate(0)
    values = list(vars(free).values())
    assert len(set(values)) == len(values) and all(v > 0 for v in values)
    # Outside the ephemeral range, so a warm start finds them free again.
    assert all(10_000 <= v < fn.ephemeral_low() for v in values)


def test_crypto_config_has_both_banks_orderer_and_issuer_user():
    cfg = yaml.safe_load(fn.dump_yaml(fn.crypto_config()))
    orgs = {o["Name"]: o for o in cfg["PeerOrgs"]}
    assert set(orgs) == {"SellerBank", "BuyerBank"}
    assert all(o["EnableNodeOUs"] and "127.0.0.1" in o["Template"]["SANS"] for o in orgs.values())
    assert orgs["SellerBank"]["Users"]["Count"] == 2  # User1 seller, User2 issuer
    assert cfg["OrdererOrgs"][0]["Specs"][0]["SANS"] == ["127.0.0.1", "localhost"]
    assert fn.PARTIES == {"seller": ("seller", "User1"), "issuer": ("seller", "User2"), "buyer": ("buyer", "User1")}


def test_configtx_is_raft_with_tls_anchors_and_both_orgs(tmp_path: Path):
    lay, ports = fn.Layout(tmp_path), fn.Ports.allocate(7100)
    text = fn.dump_yaml(fn.configtx(lay, ports))
    assert "&id" not in text and "*id" not in text  # no YAML aliases
    prof = yaml.safe_load(text)["Profiles"]["DvpChannel"]
    assert "Consortiums" not in prof  # no system channel
    orderer = prof["Orderer"]
    assert orderer["OrdererType"] == "etcdraft"
    (consenter,) = orderer["EtcdRaft"]["Consenters"]
    assert (consenter["Host"], consenter["Port"]) == ("127.0.0.1", 7100)
    assert consenter["ServerTLSCert"].endswith("tls/server.crt")
    assert orderer["Organizations"][0]["OrdererEndpoints"] == ["127.0.0.1:7100"]
    app = prof["Application"]
    assert [o["ID"] for o in app["Organizations"]] == ["SellerBankMSP", "BuyerBankMSP"]
    assert [o["AnchorPeers"][0]["Port"] for o in app["Organizations"]] == [7103, 7106]
    assert app["Policies"]["Endorsement"]["Rule"] == "MAJORITY Endorsement"


def test_node_environments_use_tls_loopback_and_the_install_config(tmp_path: Path):
    lay, ports = fn.Layout(tmp_path), fn.Ports.allocate(7100)
    inst = FabricInstall(tmp_path / "fabric")
    o = fn.orderer_env(lay, ports, inst.config_dir)
    assert o["FABRIC_CFG_PATH"] == str(inst.config_dir)
    assert o["ORDERER_GENERAL_TLS_ENABLED"] == "true" and o["ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED"] == "true"
    assert o["ORDERER_GENERAL_LISTENADDRESS"] == "127.0.0.1"
    assert o["ORDERER_OPERATIONS_LISTENADDRESS"] == "127.0.0.1:7102"
    for org in fn.ORGS:
        p = fn.peer_env(lay, ports, org, inst)
        assert p["CORE_PEER_TLS_ENABLED"] == "true"
        assert p["CORE_PEER_LISTENADDRESS"].startswith("127.0.0.1:")
        assert str(inst.ccaas_builder) in p["CORE_CHAINCODE_EXTERNALBUILDERS"]
        assert p["CORE_PEER_FILESYSTEMPATH"].startswith(str(tmp_path))
    every = [
        v for env in (o, *(fn.peer_env(lay, ports, g, inst) for g in fn.ORGS)) for k, v in env.items() if "ADDRESS" in k
    ]
    assert all(v.startswith("127.0.0.1") for v in every)


def test_channel_names_validated(tmp_path: Path):
    with pytest.raises(ConfigError):
        fn.FabricNetwork(tmp_path, ["Fabric_A"])
    fn.FabricNetwork(tmp_path, ["fabric-a", "fabric-b"])


def test_start_without_binaries_says_how_to_get_them(tmp_path: Path):
    net = fn.FabricNetwork(tmp_path / "run", ["fabric-a"], install=FabricInstall(tmp_path / "none"))
    with pytest.raises(ConfigError, match="DVP_FABRIC_HOME"):
        net.start()
    assert net.procs == []


def test_launcher_kind():
    assert FabricLauncher.kind == "fabric"
    assert not getattr(FabricLauncher, "__abstractmethods__", None)


def test_batch_timeout_goes_into_the_channel_config(tmp_path: Path):
    lay, ports = fn.Layout(tmp_path), fn.Ports.allocate(7100)
    default = fn.configtx(lay, ports)["Profiles"]["DvpChannel"]["Orderer"]
    assert default["BatchTimeout"] == "100ms"
    assert fn.configtx(lay, ports, 250)["Profiles"]["DvpChannel"]["Orderer"]["BatchTimeout"] == "250ms"
    with pytest.raises(ConfigError, match="batch_timeout_ms"):
        fn.FabricNetwork(tmp_path, ["fabric-a"], batch_timeout_ms=0)
    launcher = FabricLauncher({"fabric-a": {"batch_timeout_ms": 200}, "fabric-b": {}})
    with pytest.raises(ConfigError, match="share its orderer"):
        launcher.batch_timeout_ms(["fabric-a", "fabric-b"])
    assert launcher.batch_timeout_ms(["fabric-a"]) == 200


def _executables(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / n).write_text("#!/bin/sh\n")
        (root / n).chmod(0o755)


def test_install_accepts_the_release_tarball_and_the_go_build_layouts(tmp_path: Path):
    release = FabricInstall(tmp_path / "release")
    _executables(release.root / "bin", ["peer", "orderer", "configtxgen", "cryptogen", "osnadmin"])
    assert "ccaas_builder/bin/detect" in release.missing()  # neither builder layout yet
    _executables(release.root / "builders" / "ccaas" / "bin", ["detect", "build", "release"])
    (release.root / "config").mkdir()
    for f in ("core.yaml", "orderer.yaml"):
        (release.root / "config" / f).write_text("")
    assert release.present() and release.problem() is None
    assert release.config_dir == release.root / "config"
    assert release.ccaas_builder == release.root / "builders" / "ccaas"

    gobuild = FabricInstall(tmp_path / "go")
    _executables(gobuild.root / "bin", ["peer", "orderer", "configtxgen", "cryptogen", "osnadmin"])
    _executables(gobuild.root / "ccaas_builder" / "bin", ["detect", "build", "release"])
    (gobuild.root / "sampleconfig").mkdir()
    for f in ("core.yaml", "orderer.yaml"):
        (gobuild.root / "sampleconfig" / f).write_text("")
    assert gobuild.present()
    assert (gobuild.config_dir, gobuild.ccaas_builder) == (
        gobuild.root / "sampleconfig",
        gobuild.root / "ccaas_builder",
    )

    none = FabricInstall(tmp_path / "none")
    problem = none.problem()
    assert problem and "\n" not in problem and "DVP_FABRIC_HOME" in problem and "make fabric-bins" in problem


def test_replace_pid_updates_the_runtime_state(tmp_path: Path):
    from dvp.runtime.run_dir import RunDir, replace_pid

    class Rd(RunDir):
        name = "process"

    Rd(tmp_path).save({"fabric-a": {"kind": "fabric", "config": {}, "pids": [10, 11]},
                       "fabric-b": {"kind": "fabric", "config": {}, "pids": [11, 12]}}, [])  # fmt: skip
    assert replace_pid(tmp_path, 11, 99)
    ledgers = Rd(tmp_path).state()["ledgers"]
    assert ledgers["fabric-a"]["pids"] == [10, 99] and ledgers["fabric-b"]["pids"] == [99, 12]
    assert not replace_pid(tmp_path, 11, 5)
    assert not replace_pid(tmp_path / "absent", 1, 2)


def test_status_endpoint_of_a_fabric_ledger_is_its_first_peer(tmp_path: Path):
    from dvp.registry import ledger_endpoint

    net = fn.FabricNetwork(tmp_path, ["fabric-a"])
    net.ports = fn.Ports.allocate(7100)
    cfg = net.ledger_config("fabric-a")
    assert FabricLauncher.endpoint(cfg) == "127.0.0.1:7103" == ledger_endpoint("fabric", cfg)
    assert ledger_endpoint("no-such-kind", {"rpc_url": "http://127.0.0.1:1"}) == "http://127.0.0.1:1"
    assert FabricLauncher.shared_nodes and FabricLauncher.compose_file == "fabric.yaml"


def test_attach_keeps_only_live_processes_of_this_network(tmp_path: Path):
    import json
    import os

    net = fn.FabricNetwork(tmp_path, ["fabric-a"])
    net.ports = fn.Ports.allocate(7100)
    # This test's own pid is alive but is no node of this network; 2**22 + 1 is no process at all.
    net.procs = [fn.Proc("peer0.sellerbank.dvp.test", os.getpid(), "x.log"), fn.Proc("orderer", 2**22 + 1, "y.log")]
    net._record()
    assert json.loads((tmp_path / fn.STATE_FILE).read_text())["procs"][0]["pid"] == os.getpid()
    attached = fn.FabricNetwork.attach(tmp_path)
    assert attached.procs == [] and attached.ports.orderer == 7100 and attached.channels == ["fabric-a"]
    with pytest.raises(ConfigError, match="no process"):
        attached.restart_peer("seller")
