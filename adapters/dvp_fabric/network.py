"""A local Hyperledger Fabric network as plain processes on 127.0.0.1.

Layout: one Raft orderer (OrdererMSP) and two peer organisations, SellerBank
and BuyerBank, with one peer each; everything speaks TLS.  Crypto comes from
``cryptogen``; every channel's genesis block from ``configtxgen`` and is joined
through the orderer's channel participation API (``osnadmin``), with no system
channel; both peers join every channel.  The dvp chaincode (Node.js,
``contracts/fabric/node``) is deployed as chaincode-as-a-service through the
real lifecycle (ccaas package, install on both peers, approve by both orgs,
commit on every channel) and served by one ``fabric-chaincode-node server``
process that every peer dials.

Every node listens on 127.0.0.1 only and runs in its own process group (its
own session); its output is appended to ``logs/<name>.log`` and kept.  The pids
are recorded in ``network.json``, which is what stops them (``stop``,
``stop_recorded``) and what ``restart_peer`` updates.

Blocks: the orderer cuts a block after ``BatchTimeout`` (default 100 ms, the
``batch_timeout_ms`` option; Fabric's own default is 2 s, which a dev network
should not wait on) or ``MaxMessageCount`` transactions.  Both are written into
each channel's genesis block, so a warm start keeps the values a channel was
created with.

Identities (cryptogen users): SellerBank ``User1`` is the seller, SellerBank
``User2`` the issuer, BuyerBank ``User1`` the buyer; each org's ``Admin``
drives the lifecycle.  ``InitLedger`` names the issuer's account on each channel.

Nodes read the install's core.yaml and orderer.yaml (``FABRIC_CFG_PATH``) with every setting
that matters given as ``CORE_*`` / ``ORDERER_*`` environment variables; the
only generated configuration files are ``crypto-config.yaml`` and
``configtx.yaml`` in the run directory.

Warm restart: every step checks what the run directory (crypto, ledgers,
``network.json`` with the ports) and the running nodes already have and skips
it, so starting on an existing run directory reuses its ledgers.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from dvp.errors import ConfigError, LedgerUnavailable
from dvp.runtime.processes import alive, port_open, spawn, stop, wait_until
from dvp.runtime.run_dir import replace_pid

from .bins import FabricInstall, chaincode_dir, chaincode_server

DOMAIN = "dvp.test"  # reserved TLD: never resolves anywhere
ORDERER_ORG = "orderer"
CHAINCODE_NAME = "dvp"
CHAINCODE_VERSION = "1.0"
CHAINCODE_LABEL = f"{CHAINCODE_NAME}_{CHAINCODE_VERSION}"
MAX_SKEW_SECONDS = 30
STATE_FILE = "network.json"
BATCH_TIMEOUT_MS = 100
BATCH_MAX_MESSAGES = 50


@dataclass(frozen=True)
class Org:
    key: str  # "seller" or "buyer"
    name: str  # cryptogen org name
    msp_id: str

    @property
    def domain(self) -> str:
        return f"{self.name.lower()}.{DOMAIN}"

    @property
    def peer_host(self) -> str:
        return f"peer0.{self.domain}"


ORGS = (Org("seller", "SellerBank", "SellerBankMSP"), Org("buyer", "BuyerBank", "BuyerBankMSP"))
# party -> (org key, cryptogen user name)
PARTIES = {"seller": ("seller", "User1"), "issuer": ("seller", "User2"), "buyer": ("buyer", "User1")}
USERS_PER_ORG = {"seller": 2, "buyer": 1}


@dataclass
class Ports:
    orderer: int
    orderer_admin: int
    orderer_ops: int
    seller_peer: int
    seller_cc: int
    seller_ops: int
    buyer_peer: int
    buyer_cc: int
    buyer_ops: int
    chaincode: int

    @classmethod
    def allocate(cls, port_base: int) -> Ports:
        names = list(cls.__dataclass_fields__)
        if port_base:
            return cls(**{n: port_base + i for i, n in enumerate(names)})
        # Below the ephemeral range: the channel configs name these ports, so a warm start
        # needs them again, and an ephemeral port is soon some client connection's source port.
        low, high = 10_000, ephemeral_low()
        rng = random.Random()
        for _ in range(200):
            base = rng.randrange(low, high - len(names))
            if all(bindable(base + i) for i in range(len(names))):
                return cls(**{n: base + i for i, n in enumerate(names)})
        raise LedgerUnavailable(f"fabric: no {len(names)} consecutive free ports on 127.0.0.1 in {low}-{high}")

    def peer(self, org: Org) -> int:
        return self._of(org, "peer")

    def cc(self, org: Org) -> int:
        return self._of(org, "cc")

    def ops(self, org: Org) -> int:
        return self._of(org, "ops")

    def _of(self, org: Org, role: str) -> int:
        port: int = getattr(self, f"{org.key}_{role}")
        return port


# ---------------------------------------------------------------- configuration


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def crypto_config() -> dict[str, Any]:
    sans = ["127.0.0.1", "localhost"]
    return {
        "OrdererOrgs": [
            {
                "Name": "Orderer",
                "Domain": f"{ORDERER_ORG}.{DOMAIN}",
                "EnableNodeOUs": True,
                "Specs": [{"Hostname": "orderer", "SANS": sans}],
            }
        ],
        "PeerOrgs": [
            {
                "Name": org.name,
                "Domain": org.domain,
                "EnableNodeOUs": True,
                "Template": {"Count": 1, "SANS": sans},
                "Users": {"Count": USERS_PER_ORG[org.key]},
            }
            for org in ORGS
        ],
    }


class _NoAliases(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type stubs here
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    text: str = yaml.dump(data, Dumper=_NoAliases, sort_keys=False)
    return text


class Layout:
    """Paths inside a run directory."""

    def __init__(self, run_dir: Path):
        self.run = Path(run_dir)
        self.crypto = self.run / "crypto"
        self.config = self.run / "config"
        self.channels = self.run / "channels"
        self.logs = self.run / "logs"
        self.data = self.run / "data"

    # orderer
    @property
    def orderer_org(self) -> Path:
        return self.crypto / "ordererOrganizations" / f"{ORDERER_ORG}.{DOMAIN}"

    @property
    def orderer_node(self) -> Path:
        return self.orderer_org / "orderers" / f"orderer.{ORDERER_ORG}.{DOMAIN}"

    @property
    def orderer_tls_ca(self) -> Path:
        return self.orderer_node / "tls" / "ca.crt"

    @property
    def orderer_admin_tls(self) -> Path:
        return self.orderer_org / "users" / f"Admin@{ORDERER_ORG}.{DOMAIN}" / "tls"

    # peer orgs
    def org_dir(self, org: Org) -> Path:
        return self.crypto / "peerOrganizations" / org.domain

    def peer_node(self, org: Org) -> Path:
        return self.org_dir(org) / "peers" / org.peer_host

    def peer_tls_ca(self, org: Org) -> Path:
        return self.peer_node(org) / "tls" / "ca.crt"

    def user_msp(self, org: Org, user: str) -> Path:
        return self.org_dir(org) / "users" / f"{user}@{org.domain}" / "msp"

    def admin_msp(self, org: Org) -> Path:
        return self.user_msp(org, "Admin")


def configtx(layout: Layout, ports: Ports, batch_timeout_ms: int = BATCH_TIMEOUT_MS) -> dict[str, Any]:
    """configtx.yaml for the application channels (etcdraft, no system channel)."""

    def sig(rule: str) -> dict[str, str]:
        return {"Type": "Signature", "Rule": rule}

    def meta(rule: str) -> dict[str, str]:
        return {"Type": "ImplicitMeta", "Rule": rule}

    orderer_org = {
        "Name": "OrdererOrg",
        "ID": "OrdererMSP",
        "MSPDir": str(layout.orderer_org / "msp"),
        "Policies": {
            "Readers": sig("OR('OrdererMSP.member')"),
            "Writers": sig("OR('OrdererMSP.member')"),
            "Admins": sig("OR('OrdererMSP.admin')"),
        },
        "OrdererEndpoints": [f"127.0.0.1:{ports.orderer}"],
    }
    peer_orgs = []
    for org in ORGS:
        m = org.msp_id
        peer_orgs.append(
            {
                "Name": m,
                "ID": m,
                "MSPDir": str(layout.org_dir(org) / "msp"),
                "Policies": {
                    "Readers": sig(f"OR('{m}.admin', '{m}.peer', '{m}.client')"),
                    "Writers": sig(f"OR('{m}.admin', '{m}.client')"),
                    "Admins": sig(f"OR('{m}.admin')"),
                    "Endorsement": sig(f"OR('{m}.peer')"),
                },
                "AnchorPeers": [{"Host": "127.0.0.1", "Port": ports.peer(org)}],
            }
        )
    server_cert = str(layout.orderer_node / "tls" / "server.crt")
    channel_policies = {
        "Readers": meta("ANY Readers"),
        "Writers": meta("ANY Writers"),
        "Admins": meta("MAJORITY Admins"),
    }
    profile = {
        "Policies": channel_policies,
        "Capabilities": {"V2_0": True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "BatchTimeout": f"{batch_timeout_ms}ms",
            "BatchSize": {
                "MaxMessageCount": BATCH_MAX_MESSAGES,
                "AbsoluteMaxBytes": "99 MB",
                "PreferredMaxBytes": "512 KB",
            },
            "EtcdRaft": {
                "Consenters": [
                    {
                        "Host": "127.0.0.1",
                        "Port": ports.orderer,
                        "ClientTLSCert": server_cert,
                        "ServerTLSCert": server_cert,
                    }
                ],
                "Options": {
                    "TickInterval": "100ms",
                    "ElectionTick": 10,
                    "HeartbeatTick": 1,
                    "MaxInflightBlocks": 5,
                    "SnapshotIntervalSize": "16 MB",
                },
            },
            "Organizations": [orderer_org],
            "Policies": {**channel_policies, "BlockValidation": meta("ANY Writers")},
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": peer_orgs,
            "Policies": {
                **channel_policies,
                "LifecycleEndorsement": meta("MAJORITY Endorsement"),
                "Endorsement": meta("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }
    return {"Profiles": {"DvpChannel": profile}}


def ccaas_package(address: str, label: str = CHAINCODE_LABEL) -> bytes:
    """A chaincode-as-a-service package: metadata.json plus code.tar.gz holding
    connection.json.  Deterministic bytes, so the package id is stable."""

    def tar_gz(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        # mtime=0 in the gzip header as well as in each entry.
        import gzip

        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    connection = json.dumps({"address": address, "dial_timeout": "10s", "tls_required": False}).encode()
    code = tar_gz({"connection.json": connection})
    metadata = json.dumps({"type": "ccaas", "label": label}).encode()
    return tar_gz({"code.tar.gz": code, "metadata.json": metadata})


def package_id(package: bytes, label: str = CHAINCODE_LABEL) -> str:
    return f"{label}:{hashlib.sha256(package).hexdigest()}"


def _list(*paths: Path) -> str:
    return "[" + ",".join(str(p) for p in paths) + "]"


def orderer_env(layout: Layout, ports: Ports, config_dir: Path) -> dict[str, str]:
    tls = layout.orderer_node / "tls"
    data = layout.data / "orderer"
    return {
        "FABRIC_CFG_PATH": str(config_dir),
        "FABRIC_LOGGING_SPEC": "INFO",
        "ORDERER_GENERAL_LISTENADDRESS": "127.0.0.1",
        "ORDERER_GENERAL_LISTENPORT": str(ports.orderer),
        "ORDERER_GENERAL_LOCALMSPID": "OrdererMSP",
        "ORDERER_GENERAL_LOCALMSPDIR": str(layout.orderer_node / "msp"),
        "ORDERER_GENERAL_TLS_ENABLED": "true",
        "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_TLS_ROOTCAS": _list(tls / "ca.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
        "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
        "ORDERER_GENERAL_CLUSTER_ROOTCAS": _list(tls / "ca.crt"),
        "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
        "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
        "ORDERER_FILELEDGER_LOCATION": str(data / "ledger"),
        "ORDERER_CONSENSUS_WALDIR": str(data / "etcdraft" / "wal"),
        "ORDERER_CONSENSUS_SNAPDIR": str(data / "etcdraft" / "snapshot"),
        "ORDERER_ADMIN_LISTENADDRESS": f"127.0.0.1:{ports.orderer_admin}",
        "ORDERER_ADMIN_TLS_ENABLED": "true",
        "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
        "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
        "ORDERER_ADMIN_TLS_ROOTCAS": _list(tls / "ca.crt"),
        "ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED": "true",
        "ORDERER_ADMIN_TLS_CLIENTROOTCAS": _list(tls / "ca.crt"),
        "ORDERER_OPERATIONS_LISTENADDRESS": f"127.0.0.1:{ports.orderer_ops}",
        "ORDERER_OPERATIONS_TLS_ENABLED": "false",
        "ORDERER_METRICS_PROVIDER": "disabled",
    }


def peer_env(layout: Layout, ports: Ports, org: Org, install: FabricInstall) -> dict[str, str]:
    tls = layout.peer_node(org) / "tls"
    addr = f"127.0.0.1:{ports.peer(org)}"
    data = layout.data / org.peer_host
    builders = (
        f"[{{name: ccaas_builder, path: {install.ccaas_builder}, "
        "propagateEnvironment: [CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG]}]"
    )
    return {
        "FABRIC_CFG_PATH": str(install.config_dir),
        "FABRIC_LOGGING_SPEC": "INFO",
        "CORE_PEER_ID": org.peer_host,
        "CORE_PEER_ADDRESS": addr,
        "CORE_PEER_LISTENADDRESS": addr,
        "CORE_PEER_CHAINCODEADDRESS": f"127.0.0.1:{ports.cc(org)}",
        "CORE_PEER_CHAINCODELISTENADDRESS": f"127.0.0.1:{ports.cc(org)}",
        "CORE_PEER_GOSSIP_BOOTSTRAP": addr,
        "CORE_PEER_GOSSIP_EXTERNALENDPOINT": addr,
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(layout.peer_node(org) / "msp"),
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_CERT_FILE": str(tls / "server.crt"),
        "CORE_PEER_TLS_KEY_FILE": str(tls / "server.key"),
        "CORE_PEER_TLS_ROOTCERT_FILE": str(tls / "ca.crt"),
        "CORE_PEER_FILESYSTEMPATH": str(data / "production"),
        "CORE_LEDGER_SNAPSHOTS_ROOTDIR": str(data / "snapshots"),
        "CORE_PEER_GATEWAY_ENABLED": "true",
        "CORE_PEER_PROFILE_ENABLED": "false",
        "CORE_OPERATIONS_LISTENADDRESS": f"127.0.0.1:{ports.ops(org)}",
        "CORE_OPERATIONS_TLS_ENABLED": "false",
        "CORE_METRICS_PROVIDER": "disabled",
        "CORE_CHAINCODE_EXTERNALBUILDERS": builders,
        # No Docker: with an endpoint set, /healthz checks a Docker engine and stays
        # unhealthy on a machine with a docker CLI but no engine; ccaas needs none.
        "CORE_VM_ENDPOINT": "",
        # A peer refuses the other org's gossip until it has joined a channel naming that org,
        # then retries only every reconnectInterval (25 s by default): until then the Gateway
        # finds no peer of the other org to endorse with.  A dev network retries every second.
        "CORE_PEER_GOSSIP_RECONNECTINTERVAL": "1s",
        "CORE_PEER_GOSSIP_ALIVETIMEINTERVAL": "1s",
        "CORE_PEER_GOSSIP_MEMBERSHIPTRACKERINTERVAL": "1s",
        "CORE_PEER_GOSSIP_PUBLISHSTATEINFOINTERVAL": "1s",
    }


def client_env(layout: Layout, ports: Ports, org: Org, user: str, install: FabricInstall) -> dict[str, str]:
    """Environment for the ``peer`` CLI acting as ``user`` of ``org`` against its peer."""
    return {
        "FABRIC_CFG_PATH": str(install.config_dir),
        "FABRIC_LOGGING_SPEC": "WARNING",
        "CORE_PEER_LOCALMSPID": org.msp_id,
        "CORE_PEER_MSPCONFIGPATH": str(layout.user_msp(org, user)),
        "CORE_PEER_ADDRESS": f"127.0.0.1:{ports.peer(org)}",
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_ROOTCERT_FILE": str(layout.peer_tls_ca(org)),
    }


def _clean_environ() -> dict[str, str]:
    """os.environ without Fabric settings a caller's shell might carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CORE_", "ORDERER_", "FABRIC_"))}


def _each(fn: Callable[[Any], None], items: Any) -> None:
    """``fn`` on every item at once (independent CLI steps: the orgs, the channels); the first error raised."""
    items = list(items)
    with ThreadPoolExecutor(len(items)) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def _peer_up(ports: Ports, org: Org) -> bool:
    # The operations endpoint answers before the peer's gRPC server listens: both must.
    return healthz(ports.ops(org)) and port_open(ports.peer(org))


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            status: int = resp.status
            return status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- the network


@dataclass
class Proc:
    name: str
    pid: int
    log: str


class FabricNetwork:
    """Start, deploy and stop one local network serving ``channels``."""

    def __init__(
        self,
        run_dir: Path,
        channels: list[str],
        *,
        port_base: int = 0,
        install: FabricInstall | None = None,
        chaincode_cmd: list[str] | None = None,
        batch_timeout_ms: int = BATCH_TIMEOUT_MS,
        max_skew_seconds: int = MAX_SKEW_SECONDS,
        log: Callable[[str], None] | None = None,
        timeout: float = 60.0,
    ):
        """``chaincode_cmd``: the chaincode server command (default ``bins.chaincode_server()``);
        ``batch_timeout_ms``: the orderer's BatchTimeout for channels created now;
        ``max_skew_seconds``: how far the chaincode lets a proposal's timestamp stray from its clock."""
        for ch in channels:
            if not ch or not all(c.islower() or c.isdigit() or c in ".-" for c in ch) or not ch[0].islower():
                raise ConfigError(f"fabric: channel name {ch!r} must match [a-z][a-z0-9.-]*")
        self.layout = Layout(run_dir)
        self.channels = channels
        self.install = install or FabricInstall.default()
        self.chaincode_cmd = chaincode_cmd
        if not 10 <= batch_timeout_ms <= 10_000:
            raise ConfigError(f"fabric: batch_timeout_ms {batch_timeout_ms} must be 10 to 10000")
        self.batch_timeout_ms = batch_timeout_ms
        if not 1 <= max_skew_seconds <= 3600:
            raise ConfigError(f"fabric: max_skew_seconds {max_skew_seconds} must be 1 to 3600")
        self.max_skew_seconds = max_skew_seconds
        self.port_base = port_base
        self.timeout = timeout
        self.say = log or (lambda _m: None)
        self.procs: list[Proc] = []
        # How CLI tools run: (argv, env, timeout) -> CompletedProcess, with cwd the run directory.
        self.executor: Callable[[list[str], dict[str, str], float], subprocess.CompletedProcess[str]] = self._exec_local
        self._ports: Ports | None = None
        self.package_id = ""  # set by the install step (or read from network.json)
        self.accounts: dict[str, str] = {}

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise ConfigError("fabric: the network has no ports yet (allocate() or start() first)")
        return self._ports

    @ports.setter
    def ports(self, ports: Ports) -> None:
        self._ports = ports

    @classmethod
    def attach(cls, run_dir: Path, *, install: FabricInstall | None = None) -> FabricNetwork:
        """The network recorded in ``run_dir/network.json`` (ports, channels, pids), without
        starting anything: to restart a peer, stop the nodes or drive the CLI."""
        state = Layout(run_dir).run / STATE_FILE
        if not state.exists():
            raise ConfigError(f"fabric: no network recorded in {state}")
        saved = json.loads(state.read_text())
        net = cls(Path(run_dir), list(saved.get("channels", [])), install=install)
        net.ports = Ports(**saved["ports"])
        # Only processes still running for this network: a recorded pid may since belong to another.
        net.procs = [p for p in (Proc(**p) for p in saved.get("procs", [])) if net.runs(p.pid)]
        net.package_id = saved.get("package_id") or ""
        net.accounts = dict(saved.get("accounts", {}))
        return net

    # ---- processes

    def _record(self) -> None:
        """Keep ``network.json`` in step with what runs: pids are what stops the nodes."""
        path = self.layout.run / STATE_FILE
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved.update({
            "ports": asdict(self._ports) if self._ports else saved.get("ports"),
            "channels": sorted(set(saved.get("channels", [])) | set(self.channels)),
            "procs": [asdict(p) for p in self.procs],
            "package_id": self.package_id,
            "accounts": self.accounts,
            "batch_timeout_ms": self.batch_timeout_ms,
        })  # fmt: skip
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=1))
        tmp.replace(path)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Proc:
        log = self.layout.logs / f"{name}.log"
        # Tags the node with its network, for whoever must tell it apart from another network's.
        env = {**env, "DVP_FABRIC_RUN_DIR": str(self.layout.run)}
        pid = spawn(cmd, log, env=env, cwd=cwd or self.layout.run)
        proc = Proc(name, pid, str(log))
        self.procs.append(proc)
        self._record()
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        """Stop every node this network recorded (by process group), and forget them."""
        stop(self.pids)
        self.procs.clear()
        if (self.layout.run / STATE_FILE).exists():
            self._record()

    def runs(self, pid: int) -> bool:
        """Whether ``pid`` is a live node of this network (``_spawn`` tags each one's environment)."""
        tag = f"DVP_FABRIC_RUN_DIR={self.layout.run}".encode()
        try:
            return alive(pid) and tag in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def proc(self, name: str) -> Proc:
        for p in self.procs:
            if p.name == name:
                return p
        raise ConfigError(f"fabric: no process {name!r} recorded (have {', '.join(p.name for p in self.procs)})")

    def restart_peer(self, org_key: str, *, sig: int = signal.SIGKILL) -> int:
        """Kill one org's peer (``seller`` or ``buyer``; SIGKILL by default, as a crash) and
        start it again on the same ledger data, waiting until it is healthy and both orgs endorse again.  Returns
        the new pid; ``network.json`` and the runtime's ``state.json`` beside the run
        directory (if it lists the old pid) are updated, so ``dvp down`` stops the new one."""
        org = next((o for o in ORGS if o.key == org_key), None)
        if org is None:
            raise ConfigError(f"fabric: org {org_key!r} is not one of {', '.join(o.key for o in ORGS)}")
        old = self.proc(org.peer_host)
        try:
            os.killpg(old.pid, sig)
        except ProcessLookupError:
            pass
        wait_until(lambda: not alive(old.pid), timeout=30, what=f"fabric {org.peer_host} to exit")
        self.procs.remove(old)
        new = self._start_peer(org)
        self._wait_peer(org, new)
        replace_pid(self.layout.run.parent, old.pid, new.pid)
        self.wait_endorsable()
        return new.pid

    def _exec_local(self, cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, env={**_clean_environ(), **env}, cwd=self.layout.run, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def run(
        self, tool: str, args: list[str], env: dict[str, str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a Fabric CLI tool (``self.executor``: here, or inside the Docker runtime's tools container)."""
        cmd = [str(self.install.tool(tool)), *args]
        proc = self.executor(cmd, env, timeout)
        with open(self.layout.logs / "cli.log", "a") as out:
            out.write(f"$ {tool} {' '.join(args)}\n[rc={proc.returncode}]\n{proc.stdout}{proc.stderr}\n")
        if check and proc.returncode != 0:
            raise LedgerUnavailable(
                f"fabric: `{tool} {' '.join(args[:3])}` failed: {(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        return proc

    def retry(self, what: str, fn: Callable[[], Any], *, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                return fn()
            except LedgerUnavailable:
                if time.monotonic() > deadline:
                    raise
                for p in self.procs:
                    if not alive(p.pid):
                        raise LedgerUnavailable(f"fabric: {p.name} exited during {what}; see {p.log}") from None
                time.sleep(0.5)

    # ---- steps

    def _load_or_allocate_ports(self) -> Ports:
        state = self.layout.run / STATE_FILE
        if state.exists():
            saved = json.loads(state.read_text())
            ports = Ports(**saved["ports"])
            if self.port_base and self.port_base != ports.orderer:
                raise ConfigError(
                    f"fabric: {self.layout.run} was created with port base {ports.orderer}; "
                    f"its channel configs name those ports, so it cannot restart on {self.port_base}"
                )
            # The channel configs name these ports: wait a little for a closing socket to go.
            deadline = time.monotonic() + 15
            while busy := [p for p in asdict(ports).values() if port_open(p)]:
                if time.monotonic() > deadline:
                    raise LedgerUnavailable(f"fabric: ports {busy} of {self.layout.run} are in use (its channels "
                                            "name them: stop what holds them, or start on a new run dir)")  # fmt: skip
                time.sleep(0.5)
            # Accounts are derived from the crypto material, which a warm start keeps.
            self.accounts = dict(saved.get("accounts") or {})
            # The channels keep the BatchTimeout of their genesis blocks.
            self.batch_timeout_ms = int(saved.get("batch_timeout_ms", self.batch_timeout_ms))
            return ports
        ports = Ports.allocate(self.port_base)
        state.write_text(json.dumps({"ports": asdict(ports), "channels": self.channels}, indent=1))
        return ports

    def _crypto(self) -> None:
        if (self.layout.orderer_node / "tls" / "server.crt").exists():
            return
        self.layout.config.mkdir(parents=True, exist_ok=True)
        cfg = self.layout.config / "crypto-config.yaml"
        cfg.write_text(dump_yaml(crypto_config()))
        self.run("cryptogen", ["generate", f"--config={cfg}", f"--output={self.layout.crypto}"], {})

    def _start_orderer(self) -> None:
        env = orderer_env(self.layout, self.ports, self.install.config_dir)
        proc = self._spawn("orderer", [str(self.install.tool("orderer"))], {**_clean_environ(), **env})
        wait_until(
            lambda: healthz(self.ports.orderer_ops),
            timeout=self.timeout,
            what="fabric orderer",
            pid=proc.pid,
            log=Path(proc.log),
        )

    def _start_peer(self, org: Org) -> Proc:
        env = peer_env(self.layout, self.ports, org, self.install)
        return self._spawn(
            org.peer_host, [str(self.install.tool("peer")), "node", "start"], {**_clean_environ(), **env}
        )

    def _wait_peer(self, org: Org, proc: Proc) -> None:
        wait_until(partial(_peer_up, self.ports, org), timeout=self.timeout, what=f"fabric {org.peer_host}",
                   pid=proc.pid, log=Path(proc.log))  # fmt: skip

    def _start_peers(self) -> None:
        started = [(org, self._start_peer(org)) for org in ORGS]
        for org, proc in started:
            self._wait_peer(org, proc)

    def _osnadmin_args(self) -> list[str]:
        tls = self.layout.orderer_admin_tls
        return [
            "-o",
            f"127.0.0.1:{self.ports.orderer_admin}",
            "--ca-file",
            str(self.layout.orderer_tls_ca),
            "--client-cert",
            str(tls / "client.crt"),
            "--client-key",
            str(tls / "client.key"),
        ]

    def _channels(self) -> None:
        self.layout.channels.mkdir(parents=True, exist_ok=True)
        (self.layout.config / "configtx.yaml").write_text(
            dump_yaml(configtx(self.layout, self.ports, self.batch_timeout_ms))
        )
        for ch in self.channels:
            block = self.layout.channels / f"{ch}.block"
            if not block.exists():
                self.run(
                    "configtxgen",
                    [
                        "-profile",
                        "DvpChannel",
                        "-channelID",
                        ch,
                        "-outputBlock",
                        str(block),
                        "-configPath",
                        str(self.layout.config),
                    ],
                    {"FABRIC_CFG_PATH": str(self.layout.config)},
                )
            # osnadmin prints "Status: 200" (joined) or "Status: 404" first.
            listed = self.run(
                "osnadmin", ["channel", "list", "--channelID", ch, *self._osnadmin_args()], {}, check=False
            )
            if listed.returncode == 0 and listed.stdout.lstrip().startswith("Status: 200"):
                continue
            self.retry(
                f"osnadmin join {ch}",
                partial(
                    self.run,
                    "osnadmin",
                    ["channel", "join", "--channelID", ch, "--config-block", str(block), *self._osnadmin_args()],
                    {},
                ),
            )

    def admin_env(self, org: Org) -> dict[str, str]:
        """The ``peer`` CLI environment of ``org``'s admin (OU admin), against its own peer."""
        return client_env(self.layout, self.ports, org, "Admin", self.install)

    def _join_peers(self) -> None:
        _each(self._join_peer, ORGS)

    def _join_peer(self, org: Org) -> None:
        env = self.admin_env(org)
        joined = self.retry(f"{org.peer_host} channel list", partial(self.run, "peer", ["channel", "list"], env)).stdout
        for ch in self.channels:
            if any(line.strip() == ch for line in joined.splitlines()):
                continue
            block = self.layout.channels / f"{ch}.block"
            self.retry(
                f"{org.peer_host} join {ch}", partial(self.run, "peer", ["channel", "join", "-b", str(block)], env)
            )

    def _install(self) -> None:
        pkg = ccaas_package(f"127.0.0.1:{self.ports.chaincode}")
        path = self.layout.channels / f"{CHAINCODE_LABEL}.tar.gz"
        path.write_bytes(pkg)
        self.package_id = package_id(pkg)

        def install(org: Org) -> None:
            env = self.admin_env(org)
            out = self.run("peer", ["lifecycle", "chaincode", "queryinstalled", "--output", "json"], env).stdout
            installed = {c.get("package_id") for c in (json.loads(out or "{}").get("installed_chaincodes") or [])}
            if self.package_id not in installed:
                self.run("peer", ["lifecycle", "chaincode", "install", str(path)], env, timeout=300)

        _each(install, ORGS)

    def _start_chaincode(self) -> None:
        cmd = self.chaincode_cmd or chaincode_server()
        address = f"127.0.0.1:{self.ports.chaincode}"
        env = {
            **_clean_environ(),
            # The names chaincode-as-a-service servers read; fabric-chaincode-node takes them as flags.
            "CHAINCODE_SERVER_ADDRESS": address,
            "CORE_CHAINCODE_ID_NAME": self.package_id,
            "DVP_MAX_SKEW_SECONDS": str(self.max_skew_seconds),
        }
        proc = self._spawn("chaincode", [*cmd, "--chaincode-address", address, "--chaincode-id", self.package_id],
                           env, cwd=chaincode_dir())  # fmt: skip
        wait_until(
            lambda: port_open(self.ports.chaincode),
            timeout=self.timeout,
            what="fabric chaincode server",
            pid=proc.pid,
            log=Path(proc.log),
        )

    def orderer_args(self) -> list[str]:
        return ["-o", f"127.0.0.1:{self.ports.orderer}", "--tls", "--cafile", str(self.layout.orderer_tls_ca)]

    def endorser_args(self) -> list[str]:
        out: list[str] = []
        for org in ORGS:
            out += [
                "--peerAddresses",
                f"127.0.0.1:{self.ports.peer(org)}",
                "--tlsRootCertFiles",
                str(self.layout.peer_tls_ca(org)),
            ]
        return out

    def _committed(self, ch: str) -> bool:
        env = self.admin_env(ORGS[0])
        return (
            self.run(
                "peer",
                ["lifecycle", "chaincode", "querycommitted", "--channelID", ch, "--name", CHAINCODE_NAME],
                env,
                check=False,
            ).returncode
            == 0
        )

    def _deploy(self, ch: str) -> None:
        if self._committed(ch):
            return
        common = ["--channelID", ch, "--name", CHAINCODE_NAME, "--version", CHAINCODE_VERSION, "--sequence", "1"]

        def approve(org: Org) -> None:
            self.retry(
                f"approve {ch} by {org.msp_id}",
                partial(
                    self.run,
                    "peer",
                    [
                        "lifecycle",
                        "chaincode",
                        "approveformyorg",
                        *self.orderer_args(),
                        *common,
                        "--package-id",
                        self.package_id,
                        "--waitForEvent",
                    ],
                    self.admin_env(org),
                ),
            )

        _each(approve, ORGS)
        self.retry(
            f"commit {ch}",
            lambda: self.run(
                "peer",
                [
                    "lifecycle",
                    "chaincode",
                    "commit",
                    *self.orderer_args(),
                    *common,
                    *self.endorser_args(),
                    "--waitForEvent",
                ],
                self.admin_env(ORGS[0]),
            ),
        )

    def party_env(self, party: str) -> dict[str, str]:
        org_key, user = PARTIES[party]
        org = next(o for o in ORGS if o.key == org_key)
        return client_env(self.layout, self.ports, org, user, self.install)

    def query(self, ch: str, env: dict[str, str], function: str, *args: str) -> str:
        payload = json.dumps({"function": function, "Args": list(args)})
        return self.run(
            "peer", ["chaincode", "query", "-C", ch, "-n", CHAINCODE_NAME, "-c", payload], env
        ).stdout.strip()

    def invoke(
        self, ch: str, env: dict[str, str], function: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Submit through both orgs' peers and wait for the commit.  The chaincode's
        answer is on stderr (``result: status:200 payload:"..."``), an endorsement
        failure's reason too (``message:"DVP_...: ..."``)."""
        payload = json.dumps({"function": function, "Args": list(args)})
        # INFO: the CLI prints the chaincode's result at that level.
        return self.run("peer", ["chaincode", "invoke", *self.orderer_args(), "-C", ch, "-n", CHAINCODE_NAME,
                                 *self.endorser_args(), "-c", payload, "--waitForEvent"],
                        {**env, "FABRIC_LOGGING_SPEC": "INFO"}, check=check)  # fmt: skip

    def _accounts(self, ch: str) -> None:
        # The chaincode answers only after a peer has launched it: retry the first query.
        for party in PARTIES:
            if party not in self.accounts:
                self.accounts[party] = self.retry(
                    f"WhoAmI on {ch}", partial(self.query, ch, self.party_env(party), "WhoAmI")
                )

    def _init_ledger(self, ch: str) -> None:
        current = self.run(
            "peer",
            [
                "chaincode",
                "query",
                "-C",
                ch,
                "-n",
                CHAINCODE_NAME,
                "-c",
                json.dumps({"function": "Issuer", "Args": []}),
            ],
            self.admin_env(ORGS[0]),
            check=False,
        )
        if current.returncode == 0:
            if current.stdout.strip() != self.accounts["issuer"]:
                raise ConfigError(
                    f"fabric: channel {ch} names issuer {current.stdout.strip()!r}, expected {self.accounts['issuer']!r}"
                )
            return
        self.retry(
            f"InitLedger on {ch}",
            lambda: self.invoke(ch, self.admin_env(ORGS[0]), "InitLedger", self.accounts["issuer"]),
        )

    def start(self) -> None:
        problem = self.install.problem()
        if problem:
            raise ConfigError(f"fabric: {problem}")
        try:
            self.prepare()
            self.say("fabric: orderer")
            self._start_orderer()
            self.say("fabric: peers")
            self._start_peers()
            self.configure()
        except BaseException:
            self.stop()
            raise

    def prepare(self) -> None:
        """Ports (kept in network.json) and crypto material: what the nodes need before they start."""
        self.allocate()
        self.say("fabric: crypto")
        self._crypto()

    def allocate(self) -> Ports:
        """The run directory and the ports, new or as network.json recorded them."""
        for d in (self.layout.run, self.layout.logs, self.layout.data):
            d.mkdir(parents=True, exist_ok=True)
        self.ports = self._load_or_allocate_ports()
        return self.ports

    def node_envs(self) -> dict[str, dict[str, str]]:
        """Every node's environment (the same settings whether it runs here or in a container)."""
        envs = {"orderer": orderer_env(self.layout, self.ports, self.install.config_dir)}
        for org in ORGS:
            envs[f"peer-{org.key}"] = peer_env(self.layout, self.ports, org, self.install)
        return envs

    def wait_nodes(self, wait: Callable[[Callable[[], bool], str], None]) -> None:
        """Until the orderer and both peers answer, with ``wait(check, what)``."""
        ports = self.ports
        wait(lambda: healthz(ports.orderer_ops) and port_open(ports.orderer_admin), "fabric orderer")
        for org in ORGS:
            wait(partial(_peer_up, ports, org), f"fabric {org.peer_host}")

    def configure(self) -> None:
        """Once orderer and peers answer: channels, peers joined, the chaincode installed,
        served, approved and committed, the ledgers initialised.  Every step skips what
        the run directory already has."""
        self.say(f"fabric: channels {', '.join(self.channels)}")
        self._channels()
        self._join_peers()
        self.say("fabric: chaincode")
        self._install()
        self._start_chaincode()
        # Every channel at once; the accounts (WhoAmI) once the chaincode answers.
        _each(self._deploy, self.channels)
        self._accounts(self.channels[0])
        _each(self._init_ledger, self.channels)
        self.say("fabric: waiting for both orgs' endorsements through each Gateway")
        self.wait_endorsable()
        self._record()

    def wait_endorsable(self, timeout: float | None = None) -> None:
        """Until every org's Gateway peer collects the endorsements the chaincode's policy needs
        (both orgs) on every channel: gossip must have connected the peers across orgs, which
        takes a moment after a (re)start.  A no-op without the Gateway client (fabric extra)."""
        try:
            from . import gateway
        except ImportError:
            return
        # In a thread: a caller may already run an event loop (an async test restarting a peer).
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._endorsable(gateway, timeout or self.timeout)).result()

    async def _endorsable(self, gw: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for org in ORGS:
            party = next(p for p, (key, _) in PARTIES.items() if key == org.key)
            for ch in self.channels:
                cfg = self.ledger_config(ch)
                who, peer = cfg["parties"][party], cfg["peers"][org.key]
                identity, signer = gw.load_msp(who["msp_id"], who["msp_dir"], who["cert"], who["key"])
                connection = gw.connect(
                    peer["endpoint"], Path(peer["tls_ca"]).read_bytes(), host_name=peer["host_name"]
                )
                try:
                    contract = gw.Gateway(connection, identity, signer).get_channel(ch).get_contract(CHAINCODE_NAME)
                    while True:
                        try:
                            await contract.new_proposal("WhoAmI").endorse()  # endorsed, never submitted
                            break
                        except gw.GatewayError as exc:
                            if time.monotonic() > deadline:
                                raise LedgerUnavailable(f"fabric: {org.peer_host} cannot gather endorsements on {ch} "
                                                        f"after {timeout:.0f}s: {exc}") from None  # fmt: skip
                            await asyncio.sleep(0.2)
                finally:
                    await connection.close()

    # ---- what an adapter needs

    def ledger_config(self, channel: str) -> dict[str, Any]:
        lay, ports = self.layout, self.ports
        peers = {
            org.key: {
                "endpoint": f"127.0.0.1:{ports.peer(org)}",
                "host_name": org.peer_host,
                "tls_ca": str(lay.peer_tls_ca(org)),
                "msp_id": org.msp_id,
            }
            for org in ORGS
        }
        parties = {}
        for party, (org_key, user) in PARTIES.items():
            org = next(o for o in ORGS if o.key == org_key)
            msp = lay.user_msp(org, user)
            keys = sorted((msp / "keystore").glob("*"))
            parties[party] = {
                "msp_id": org.msp_id,
                "msp_dir": str(msp),
                "cert": str(msp / "signcerts" / f"{user}@{org.domain}-cert.pem"),
                "key": str(keys[0]) if keys else "",
                "peer": org.key,
                "account": self.accounts.get(party, ""),
            }
        return {
            "kind": "fabric",
            "channel": channel,
            "chaincode": CHAINCODE_NAME,
            "peers": peers,
            "orderer": {"endpoint": f"127.0.0.1:{ports.orderer}", "tls_ca": str(lay.orderer_tls_ca)},
            "parties": parties,
            "max_skew_seconds": self.max_skew_seconds,
            "batch_timeout_ms": self.batch_timeout_ms,
            "dev": True,
        }
