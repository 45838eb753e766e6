"""A real Fabric network from the launcher, driven with the `peer` CLI over TLS.

Needs a Fabric 3.1.5 install (`dvp_fabric.bins`) and Node.js for the chaincode;
skipped with the reason when either is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from dvp.runtime.processes import alive
from dvp_fabric.bins import fabric_problem
from dvp_fabric.launcher import FabricLauncher
from dvp_fabric.lockid import lock_id as compute_lock_id
from dvp_fabric.network import FabricNetwork

from ..testbed import binary_missing

CHANNELS = ["fabric-a", "fabric-b"]


@pytest.fixture(scope="module")
def binaries() -> None:
    problem = fabric_problem()
    if problem:
        binary_missing(problem)


def _our_processes(run_dir: Path) -> list[int]:
    """Pids of live processes the launcher started for ``run_dir`` (it tags their environment);
    other networks, e.g. another test's, may run beside this one."""
    tag = f"DVP_FABRIC_RUN_DIR={run_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if tag in env and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _listening(pids: list[int]) -> list[str]:
    """``ip:port`` of every TCP socket the processes ``pids`` listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                addr, port = cols[1].split(":")
                raw = bytes.fromhex(addr)
                # /proc prints the address as host-order 32-bit words.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                ip = ".".join(str(b) for b in words) if width == 8 else words.hex()
                found.append(f"{ip}:{int(port, 16)}")
    return found


def _invoke(net: FabricNetwork, ch: str, party: str, fn: str, *args: str):
    return net.invoke(ch, net.party_env(party), fn, *args, check=False)


def test_network_issue_lock_claim_and_warm_restart(binaries, tmp_path: Path):
    run_dir = tmp_path / "fabric"
    launcher = FabricLauncher()
    t0 = time.monotonic()
    ledgers = launcher.start(CHANNELS, run_dir, 0)
    cold = time.monotonic() - t0
    net = launcher.network
    try:
        assert [l.name for l in ledgers] == CHANNELS
        # Every node, the chaincode server included, listens on 127.0.0.1 only: 10 ports.
        listening = _listening(net.pids)
        assert len(listening) == 10 and all(a.startswith("127.0.0.1:") for a in listening), listening
        cfg = ledgers[0].config
        assert cfg["channel"] == "fabric-a" and cfg["chaincode"] == "dvp"
        assert set(cfg["parties"]) == {"seller", "buyer", "issuer"}
        assert all(Path(p["tls_ca"]).exists() for p in cfg["peers"].values())
        seller, buyer = cfg["parties"]["seller"]["account"], cfg["parties"]["buyer"]["account"]
        assert seller.startswith("SellerBankMSP::") and buyer.startswith("BuyerBankMSP::")

        ch = "fabric-a"
        # Only the issuer may issue.
        bad = _invoke(net, ch, "seller", "Issue", seller, "BOND", "100")
        assert bad.returncode != 0 and "DVP_UNAUTHORIZED" in bad.stderr
        ok = _invoke(net, ch, "issuer", "Issue", seller, "BOND", "100")
        assert ok.returncode == 0, ok.stderr
        assert net.query(ch, net.party_env("buyer"), "BalanceOf", seller, "BOND") == "100"
        # The other channel is another ledger.
        assert net.query("fabric-b", net.party_env("buyer"), "BalanceOf", seller, "BOND") == "0"

        secret = bytes(range(1, 33))
        hashlock = hashlib.sha256(secret).hexdigest()
        expiry = str(int(time.time()) + 600)
        locked = _invoke(net, ch, "seller", "Lock", buyer, "BOND", "40", hashlock, expiry, "0a0b")
        assert locked.returncode == 0, locked.stderr
        # The chaincode's answer is the id derived from the terms (pinned scheme).
        lock_id = compute_lock_id(
            seller, buyer, "BOND", 40, bytes.fromhex(hashlock), int(expiry), bytes.fromhex("0a0b")
        )
        assert lock_id in locked.stderr + locked.stdout
        lock = json.loads(net.query(ch, net.party_env("buyer"), "GetLock", lock_id))
        assert lock["status"] == "LOCKED" and lock["amount"] == "40"
        assert net.query(ch, net.party_env("buyer"), "BalanceOf", seller, "BOND") == "60"

        wrong = _invoke(net, ch, "buyer", "Claim", lock_id, "00" * 32)
        assert wrong.returncode != 0 and "DVP_INVALID_PREIMAGE" in wrong.stderr
        short = _invoke(net, ch, "buyer", "Claim", lock_id, secret[:31].hex())
        assert short.returncode != 0 and "DVP_INVALID_PREIMAGE" in short.stderr
        # Anyone may submit the preimage; the buyer is paid.
        claimed = _invoke(net, ch, "issuer", "Claim", lock_id, secret.hex())
        assert claimed.returncode == 0, claimed.stderr
        assert net.query(ch, net.party_env("seller"), "BalanceOf", buyer, "BOND") == "40"
        again = _invoke(net, ch, "buyer", "Claim", lock_id, secret.hex())
        assert again.returncode != 0 and "DVP_LOCK_NOT_ACTIVE" in again.stderr
    finally:
        pids = list(net.pids)
        net.stop()
    assert not any(alive(p) for p in pids)
    assert _our_processes(run_dir) == []

    # Warm restart on the same run dir keeps the ledgers.
    t1 = time.monotonic()
    again = FabricLauncher()
    ledgers = again.start(CHANNELS, run_dir, 0)
    warm = time.monotonic() - t1
    try:
        net = again.network
        assert net.query("fabric-a", net.party_env("buyer"), "BalanceOf", buyer, "BOND") == "40"

        # A peer killed with SIGKILL comes back on its ledger, found through network.json alone.
        recorded = FabricNetwork.attach(run_dir)
        old = recorded.proc("peer0.sellerbank.dvp.test").pid
        t2 = time.monotonic()
        new = recorded.restart_peer("seller")
        restart = time.monotonic() - t2
        assert new != old and not alive(old) and alive(new)
        assert FabricNetwork.attach(run_dir).proc("peer0.sellerbank.dvp.test").pid == new
        seller_env = net.party_env("seller")
        assert net.query("fabric-a", seller_env, "BalanceOf", buyer, "BOND") == "40"  # the restarted peer's own ledger
        # Both orgs endorse again: a transaction through the restarted peer commits.
        moved = _invoke(net, "fabric-a", "seller", "Transfer", buyer, "BOND", "1")
        assert moved.returncode == 0, moved.stderr[-800:]
        assert net.query("fabric-a", seller_env, "BalanceOf", buyer, "BOND") == "41"
    finally:
        FabricNetwork.attach(run_dir).stop()  # by the pids network.json records, the restarted peer's included
    assert _our_processes(run_dir) == []
    print(f"fabric cold start {cold:.1f}s, warm start {warm:.1f}s, peer SIGKILL+restart {restart:.1f}s")


def test_a_warm_up_of_the_process_runtime_reuses_the_ledgers(binaries, tmp_path: Path):
    """`dvp up` after `dvp down` on the same run dir: the channels, the chaincode and the balances are kept."""
    from dvp.runtime import local
    from dvp.topology import LedgerSpec, Topology

    topo = Topology(ledgers=[LedgerSpec(name=ch, kind="fabric") for ch in CHANNELS])
    runtime = local.LocalRuntime(tmp_path)
    state = runtime.up(topo, progress=lambda m: None)
    net = FabricNetwork.attach(tmp_path / "fabric")
    buyer = state["ledgers"]["fabric-b"]["config"]["parties"]["buyer"]["account"]
    try:
        assert [r["alive"] for r in runtime.status()] == [True, True]
        issued = _invoke(net, "fabric-b", "issuer", "Issue", buyer, "EUR", "77")
        assert issued.returncode == 0, issued.stderr[-800:]
    finally:
        stopped = runtime.down()
    assert stopped and not any(alive(p) for p in stopped) and _our_processes(tmp_path / "fabric") == []

    t0 = time.monotonic()
    state = runtime.up(topo, progress=lambda m: None)
    warm = time.monotonic() - t0
    try:
        assert state["ledgers"]["fabric-b"]["config"]["parties"]["buyer"]["account"] == buyer
        net = FabricNetwork.attach(tmp_path / "fabric")
        assert net.query("fabric-b", net.party_env("seller"), "BalanceOf", buyer, "EUR") == "77"
    finally:
        runtime.down()
    assert _our_processes(tmp_path / "fabric") == []
    print(f"warm `up` of the process runtime: {warm:.1f}s")
