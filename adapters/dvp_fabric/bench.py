"""The Fabric raw baseline for `dvp bench`, and dvp's Gateway client beside the official one.

The workload: ``n`` issues of one unit, each to an account of its own, so no two transactions
in flight touch one key (none is invalidated by an MVCC conflict): one balance read and write
and an event, a transfer's credit.  At most ``in_flight`` at once, each endorsed, submitted
and waited for until its commit is VALID, signed by the ledger's issuer.

The same workload runs through the official Node client, ``@hyperledger/fabric-gateway``
(``node/throughput.mjs`` beside this file, its npm packages pinned in ``node/package-lock.json``
and installed on first use), on the same network in the same run, alternating with ours.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from dvp.errors import ConfigError

from .adapter import FabricAdapter
from .gateway import Contract

NODE_DIR = Path(__file__).resolve().parent / "node"
# The client comparison needs enough in flight to load the peers, whatever the swaps' K.
COMPARE_IN_FLIGHT = 16
COMPARE_TXS = 160


def workload(tag: str, n: int, asset: str) -> list[list[str]]:
    return [[f"bench-{tag}-{i}", asset, "1"] for i in range(n)]


async def python_throughput(contract: Contract, args: list[list[str]], in_flight: int) -> dict[str, Any]:
    queue = list(args)

    async def worker() -> None:
        while queue:
            await contract.submit("Issue", *queue.pop(0))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    seconds = time.perf_counter() - start
    return {"transactions": len(args), "in_flight": in_flight, "seconds": seconds, "tps": len(args) / seconds}


def node_missing() -> str | None:
    """None when the Node client can run (installing its pinned packages if needed), else why."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not on PATH"
    if not (NODE_DIR / "node_modules" / "@hyperledger" / "fabric-gateway").is_dir():
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            return f"npm ci in {NODE_DIR} failed: {' '.join(proc.stderr.strip().splitlines()[-1:])}"
    return None


def node_throughput(adapter: FabricAdapter, args: list[list[str]], in_flight: int) -> dict[str, Any]:
    missing = node_missing()
    if missing:
        raise ConfigError(f"fabric bench: the Node Gateway client cannot run: {missing}")
    cfg = adapter.config
    party = cfg.parties[cfg.issuer]
    peer = cfg.peers[party.peer]
    msp = Path(party.msp_dir)
    spec = {
        "endpoint": peer.endpoint, "tls_ca": peer.tls_ca, "host_name": peer.host_name, "msp_id": party.msp_id,
        "cert": party.cert or str(next((msp / "signcerts").iterdir())),
        "key": party.key or str(next((msp / "keystore").iterdir())),
        "channel": cfg.channel, "chaincode": cfg.chaincode, "function": "Issue", "args": args,
        "in_flight": in_flight,
    }
    proc = subprocess.run(["node", str(NODE_DIR / "throughput.mjs"), json.dumps(spec)], capture_output=True,
                          text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"fabric bench: the Node Gateway client failed: {' '.join(proc.stderr.split())[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def compare_clients(adapter: FabricAdapter, asset: str, *, n: int = COMPARE_TXS,
                          in_flight: int = COMPARE_IN_FLIGHT, rounds: int = 1) -> dict[str, Any]:
    """Ours and Node's on the same ledger, one after the other (each warmed up first);
    the best round of each."""
    contract = adapter.contract(adapter.config.issuer)
    tag = f"{os.getpid()}-{int(time.time())}"
    await python_throughput(contract, workload(f"{tag}-pw", in_flight, asset), in_flight)
    await asyncio.to_thread(node_throughput, adapter, workload(f"{tag}-nw", in_flight, asset), in_flight)
    runs: dict[str, list[dict[str, Any]]] = {"python": [], "node": []}
    for r in range(rounds):
        runs["python"].append(await python_throughput(contract, workload(f"{tag}-p{r}", n, asset), in_flight))
        runs["node"].append(await asyncio.to_thread(node_throughput, adapter, workload(f"{tag}-n{r}", n, asset),
                                                    in_flight))
    py = max(x["tps"] for x in runs["python"])
    nd = max(x["tps"] for x in runs["node"])
    return {"transactions": n, "in_flight": in_flight, "python_tps": py, "node_tps": nd, "ratio": py / nd,
            "target": 0.9, "met": py / nd >= 0.9, "runs": runs}


async def raw_throughput(adapter: FabricAdapter, asset: str, n: int, in_flight: int, timeout: float) -> dict[str, Any]:
    """The baseline at the swaps' K, then (when Node is here) the two clients side by side."""
    contract = adapter.contract(adapter.config.issuer)
    tag = f"{os.getpid()}-{int(time.time())}"
    base = await asyncio.wait_for(python_throughput(contract, workload(f"{tag}-b", n, asset), in_flight), timeout)
    out: dict[str, Any] = {**base, "method": "issues of one unit to fresh accounts (no key shared), Gateway client",
                           "batch_timeout_ms": adapter.config.batch_timeout_ms}
    note = f"orderer BatchTimeout {adapter.config.batch_timeout_ms} ms; fees: none"
    missing = node_missing()
    if missing:
        out["clients"] = {"skipped": f"Node Gateway client not run: {missing}"}
        note += f"; {out['clients']['skipped']}"
    else:
        c = out["clients"] = await asyncio.wait_for(
            compare_clients(adapter, asset, in_flight=max(in_flight, COMPARE_IN_FLIGHT)), timeout)
        note += (f"; Gateway clients at {c['in_flight']} in flight: dvp (Python) {c['python_tps']:.1f} tx/s, "
                 f"official Node {c['node_tps']:.1f} tx/s, ratio {c['ratio']:.0%} (target 90%)")
    out["note"] = note
    return out
