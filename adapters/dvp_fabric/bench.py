"""The Fabric raw baseline for `dvp bench`, and dvp's Gateway client beside the official one.

The workload: ``n`` issues of one unit, each to an account of its own, so no two transactions
in flight touch one key (none is invalidated by an MVCC conflict): one balance read and write
and an event, a transfer's credit.  At most ``in_flight`` at once, each endorsed, submitted
and waited for until its commit is VALID, signed by the ledger's issuer.

The same workload runs through the official Node client, ``@hyperledger/fabric-gateway``
(``node/throughput.mjs`` beside this file, its npm packages pinned in ``node/package-lock.json``
and installed on first use), on the same network in the same run, alternating with ours: each
client warmed up in the process that is then timed (Node's one long-lived process), three
rounds each, the median and the spread reported.

The chain's capacity (:func:`chain_capacity`, entry-point group ``dvp.bench.capacity``): the
same issues endorsed and signed before the clock starts, then sent to the orderer itself on one
Broadcast stream, at most ``in_flight`` uncommitted, counted per committed block from the
chaincode events of VALID transactions.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2_grpc

from dvp.errors import AdapterError, ConfigError

from .adapter import FabricAdapter, _read
from .gateway import Contract

NODE_DIR = Path(__file__).resolve().parent / "node"
# The client comparison needs enough in flight to load the peers, whatever the swaps' K.
COMPARE_IN_FLIGHT = 16
COMPARE_TXS = 160
COMPARE_ROUNDS = 3  # timed rounds per client, alternating
ROUND_TIMEOUT = 600.0


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
        proc = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            return f"npm ci in {NODE_DIR} failed: {' '.join(proc.stderr.strip().splitlines()[-1:])}"
    return None


class NodeClient:
    """The official Node client in one long-lived process (``node/throughput.mjs``): one
    connection, one round of submits per request, so its rounds after the first are timed warm,
    as ours are in this process."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self._proc = proc

    @classmethod
    async def start(cls, adapter: FabricAdapter) -> NodeClient:
        missing = node_missing()
        if missing:
            raise ConfigError(f"fabric bench: the Node Gateway client cannot run: {missing}")
        cfg = adapter.config
        party = cfg.parties[cfg.issuer]
        peer = cfg.peers[party.peer]
        msp = Path(party.msp_dir)
        spec = {
            "endpoint": peer.endpoint,
            "tls_ca": peer.tls_ca,
            "host_name": peer.host_name,
            "msp_id": party.msp_id,
            "cert": party.cert or str(next((msp / "signcerts").iterdir())),
            "key": party.key or str(next((msp / "keystore").iterdir())),
            "channel": cfg.channel,
            "chaincode": cfg.chaincode,
            "function": "Issue",
        }
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "throughput.mjs"),
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def round(self, args: list[list[str]], in_flight: int, timeout: float = ROUND_TIMEOUT) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write((json.dumps({"args": args, "in_flight": in_flight}) + "\n").encode())
        await self._proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await self._proc.stdout.readline()
        if not line:
            assert self._proc.stderr is not None
            async with asyncio.timeout(10):
                err = (await self._proc.stderr.read()).decode()
            raise ConfigError(f"fabric bench: the Node Gateway client failed: {' '.join(err.split())[-400:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def close(self) -> None:
        if self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()


def _spread(runs: list[dict[str, Any]]) -> dict[str, float]:
    tps = [r["tps"] for r in runs]
    return {"median": statistics.median(tps), "min": min(tps), "max": max(tps)}


async def compare_clients(
    adapter: FabricAdapter,
    asset: str,
    *,
    n: int = COMPARE_TXS,
    in_flight: int = COMPARE_IN_FLIGHT,
    rounds: int = COMPARE_ROUNDS,
) -> dict[str, Any]:
    """Ours and Node's on the same ledger: each warmed up by one untimed round in the process
    that is then timed, then ``rounds`` timed rounds alternating ours, Node's; the median round
    of each and the spread (slowest and fastest round)."""
    contract = adapter.contract(adapter.config.issuer)
    tag = f"{os.getpid()}-{int(time.time())}"
    node = await NodeClient.start(adapter)
    runs: dict[str, list[dict[str, Any]]] = {"python": [], "node": []}
    try:
        await python_throughput(contract, workload(f"{tag}-pw", in_flight, asset), in_flight)
        await node.round(workload(f"{tag}-nw", in_flight, asset), in_flight)
        for r in range(rounds):
            runs["python"].append(await python_throughput(contract, workload(f"{tag}-p{r}", n, asset), in_flight))
            runs["node"].append(await node.round(workload(f"{tag}-n{r}", n, asset), in_flight))
    finally:
        await node.close()
    py, nd = _spread(runs["python"]), _spread(runs["node"])
    ratio = py["median"] / nd["median"]
    return {
        "transactions": n,
        "in_flight": in_flight,
        "rounds": rounds,
        "python_tps": py["median"],
        "node_tps": nd["median"],
        "python": py,
        "node": nd,
        "ratio": ratio,
        "target": 0.9,
        "met": ratio >= 0.9,
        "method": "each client warmed up by one untimed round in its own timed process, then rounds "
        "alternating Python, Node; median round and spread",
        "runs": runs,
    }


async def raw_throughput(adapter: FabricAdapter, asset: str, n: int, in_flight: int, timeout: float) -> dict[str, Any]:
    """The baseline at the swaps' K, then (when Node is here) the two clients side by side."""
    contract = adapter.contract(adapter.config.issuer)
    tag = f"{os.getpid()}-{int(time.time())}"
    async with asyncio.timeout(timeout):
        base = await python_throughput(contract, workload(f"{tag}-b", n, asset), in_flight)
    out: dict[str, Any] = {
        **base,
        "method": "issues of one unit to fresh accounts (no key shared), Gateway client",
        "batch_timeout_ms": adapter.config.batch_timeout_ms,
    }
    note = f"orderer BatchTimeout {adapter.config.batch_timeout_ms} ms; fees: none"
    missing = node_missing()
    if missing:
        out["clients"] = {"skipped": f"Node Gateway client not run: {missing}"}
        note += f"; {out['clients']['skipped']}"
    else:
        async with asyncio.timeout(timeout):
            c = out["clients"] = await compare_clients(adapter, asset, in_flight=max(in_flight, COMPARE_IN_FLIGHT))
        py, nd = c["python"], c["node"]
        note += (
            f"; Gateway clients at {c['in_flight']} in flight, both warm, median of {c['rounds']} alternating "
            f"rounds (spread): dvp (Python) {py['median']:.1f} tx/s ({py['min']:.1f}-{py['max']:.1f}), "
            f"official Node {nd['median']:.1f} tx/s ({nd['min']:.1f}-{nd['max']:.1f}), "
            f"ratio {c['ratio']:.0%} (target 90%)"
        )
    out["note"] = note
    return out


# -- the chain's capacity: no per-call client work -------------------------------------------------

PREPARE_IN_FLIGHT = 16  # endorsements at once while preparing (not timed)


async def chain_capacity(adapter: FabricAdapter, asset: str, n: int, in_flight: int, timeout: float) -> dict[str, Any]:
    """What the orderer and peers do alone: ``n`` issues (the raw baseline's workload) endorsed
    through the Gateway and signed before the clock starts, then their envelopes written to the
    orderer on one Broadcast stream (no endorsement, signing or commit-status call per
    transaction), at most ``in_flight`` uncommitted; committed ones counted per block from the
    Gateway's chaincode events, which only VALID transactions emit.  Each issue emits one event."""
    contract = adapter.contract(adapter.config.issuer)
    tag = f"{os.getpid()}-{int(time.time())}"
    gate = asyncio.Semaphore(PREPARE_IN_FLIGHT)

    async def prepare(args: list[str]) -> tuple[str, common_pb2.Envelope]:
        async with gate:
            tx = await contract.new_proposal("Issue", *args).endorse()
        return tx.transaction_id, common_pb2.Envelope.FromString(tx.signed_envelope())

    async with asyncio.timeout(timeout):
        prepared = list(await asyncio.gather(*(prepare(a) for a in workload(f"{tag}-c", n, asset))))
        start_block = (await adapter.now()).height + 1
    orderer = adapter.config.orderer
    connection = grpc.aio.secure_channel(
        orderer.endpoint, grpc.ssl_channel_credentials(root_certificates=_read(orderer.tls_ca, "orderer.tls_ca"))
    )
    try:
        async with asyncio.timeout(timeout):
            result = await _pump(
                contract, ab_pb2_grpc.AtomicBroadcastStub(connection), prepared, in_flight, start_block
            )
    finally:
        await connection.close()
    return {
        "transactions": n,
        "in_flight": in_flight,
        **result,
        "method": "issues endorsed and signed before the clock starts, sent to the orderer on one Broadcast "
        "stream, counted per committed block (VALID only)",
        "batch_timeout_ms": adapter.config.batch_timeout_ms,
    }


async def _pump(
    contract: Contract, orderer: Any, prepared: list[tuple[str, common_pb2.Envelope]], in_flight: int, start_block: int
) -> dict[str, Any]:
    waiting: set[str] = set()
    per_block: dict[int, int] = {}  # ours committed VALID, per block
    room = asyncio.Event()
    sent = committed = 0
    broadcast = orderer.Broadcast()
    events = contract.channel.chaincode_events(contract.chaincode, start_block=start_block)

    async def count() -> None:
        nonlocal committed
        async for event in events:
            if event.transaction_id in waiting:
                waiting.discard(event.transaction_id)
                committed += 1
                per_block[event.block_number] = per_block.get(event.block_number, 0) + 1
                room.set()
                if committed == len(prepared):
                    return

    async def acks() -> None:
        for _ in range(len(prepared)):
            ack = await broadcast.read()
            if ack is grpc.aio.EOF or ack.status != 200:  # common.Status SUCCESS
                raise AdapterError(f"capacity on {contract.channel.name}: the orderer refused a transaction: {ack}")

    counter, acker = asyncio.create_task(count()), asyncio.create_task(acks())
    start = time.perf_counter()
    try:
        while committed < len(prepared):
            room.clear()
            free = max(0, min(in_flight - len(waiting), len(prepared) - sent))
            for tx_id, envelope in prepared[sent : sent + free]:
                waiting.add(tx_id)
                await broadcast.write(envelope)
            sent += free
            if counter.done() or (acker.done() and acker.exception()):
                break
            woken = asyncio.ensure_future(room.wait())
            await asyncio.wait(
                [woken, counter, *([] if acker.done() else [acker])], return_when=asyncio.FIRST_COMPLETED
            )
            woken.cancel()
        seconds = time.perf_counter() - start
        await acker
        await counter
        if committed < len(prepared):  # the block events ended first: a rate over what committed would flatter
            raise AdapterError(
                f"capacity on {contract.channel.name}: the block events ended with {committed} of "
                f"{len(prepared)} transactions committed"
            )
    finally:
        broadcast.cancel()
        counter.cancel()
        acker.cancel()
    return {
        "seconds": seconds,
        "tps": len(prepared) / seconds,
        "per_block_max": max(per_block.values(), default=0),
        "blocks": len(per_block),
    }
