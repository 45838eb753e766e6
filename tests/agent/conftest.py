"""Two parties' agents as real processes (`dvp agent run`) on the session testbed: each made
by `dvp agent init` with only its own keys, paired by `dvp agent pair`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from click.testing import CliRunner, Result

from dvp import cli
from dvp.journal import Journal, Step, SwapRecord
from dvp.ledger_set import LedgerSet
from dvp.models import SwapSpec
from dvp.party.policy import AcceptPolicy
from dvp.runtime.processes import free_port
from dvp.testing.scenarios import DEV_POLICY
from dvp_agent.config import load_config, save_config

from ..cli_helpers import wait_for_journal
from ..scenarios import snapshot

PARTIES = ("seller", "buyer")
T = TypeVar("T")


@dataclass
class AgentProcess:
    """One `dvp agent run` process; ended by its pid only."""

    party: str
    folder: Path
    proc: subprocess.Popen
    log: Path

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self, timeout: float = 60) -> "AgentProcess":
        """Wait until it serves its peer (its first line), or fail with its output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "agent listening on" in self.output():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.party}'s agent did not start: {self.output()[-2000:]}")


@dataclass
class Agents:
    """The seller's and the buyer's agent folders, and the processes started from them."""

    run_dir: Path
    env: dict[str, str]
    folders: dict[str, Path]
    ports: dict[str, int]
    processes: list[AgentProcess] = field(default_factory=list)
    init_policies: dict[str, AcceptPolicy] = field(default_factory=dict)  # as `dvp agent init` wrote them

    def start(
        self,
        party: str,
        *args: str,
        crash_after: int | None = None,
        crash_after_step: str | None = None,
        endpoint: str | None = None,
    ) -> AgentProcess:
        folder = self.folders[party]
        if endpoint is not None:  # reach the peer through this address (a proxy the test controls)
            peer = "buyer" if party == "seller" else "seller"
            pin(self.env, folder, peer, endpoint, self.folders[peer] / "agent.crt")
        env = dict(self.env)
        command = [sys.executable, "-m", "dvp.testing.crash", "agent", "run", str(folder), *args]
        if crash_after is not None:
            env["DVP_CRASH_AFTER_WRITES"] = str(crash_after)
        if crash_after_step is not None:
            env["DVP_CRASH_AFTER_STEP"] = crash_after_step
        log = folder / f"agent-{len(self.processes)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        process = AgentProcess(party, folder, proc, log)
        self.processes.append(process)
        return process

    def journal(self, party: str) -> Path:
        return self.folders[party] / "journal.sqlite"

    def scenario(self, spec: SwapSpec, name: str = "swap.yaml") -> Path:
        path = self.folders["seller"].parent / name
        path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
        return path

    def read(self, party: str, what: Callable[[Journal], T]) -> T:
        """``what`` of ``party``'s journal, opened and closed around the read."""
        journal = Journal(self.journal(party))
        try:
            return what(journal)
        finally:
            journal.close()

    def record(self, party: str, swap_id: str) -> SwapRecord | None:
        if not self.journal(party).exists():
            return None
        return self.read(party, lambda j: j.get(swap_id))

    def swap_ids(self, party: str) -> list[str]:
        return self.read(party, lambda j: [r.id for r in j.swaps()])

    def steps(self, party: str, swap_id: str) -> list[Step]:
        return self.read(party, lambda j: j.steps(swap_id))

    def messages(self, party: str, swap_id: str) -> list[dict]:
        return self.read(party, lambda j: j.messages(swap_id))

    def outcome(self, party: str, swap_id: str, timeout: float) -> SwapRecord:
        """Wait for ``party``'s journal to show the swap ended."""
        return wait_for_journal(
            self.journal(party),
            lambda j: _ended(j.get(swap_id)),
            f"{party}'s agent did not end swap {swap_id} in {timeout:.0f}s",
            timeout=timeout,
            poll=0.25,
        )

    def first_swap(self, party: str, timeout: float) -> str:
        return wait_for_journal(
            self.journal(party),
            lambda j: next((r.id for r in j.swaps()), None),
            f"{party}'s journal has no swap after {timeout:.0f}s",
            timeout=timeout,
            poll=0.2,
        )

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


def pin(env: dict[str, str], folder: Path, peer: str, endpoint: str, cert: Path) -> None:
    """`dvp agent pair FOLDER --peer PEER --endpoint ENDPOINT --cert CERT`, which must succeed."""
    done = in_process(["agent", "pair", str(folder), "--peer", peer, "--endpoint", endpoint, "--cert", str(cert)], env)
    assert done.exit_code == 0, done.output


def in_process(args: list[str], env: dict[str, str]) -> Result:
    """`dvp ARGS` run in this process: the set-up commands, without a Python start each
    (test_agent_cli.py runs them as processes, as users do)."""
    return CliRunner().invoke(cli.main, args, env=env)


def _ended(record: SwapRecord | None) -> SwapRecord | None:
    return record if record is not None and record.outcome is not None else None


def make_agents(run_dir: Path, tmp_path: Path, parties: tuple[str, ...], links: tuple[tuple[str, str], ...]) -> Agents:
    """An agent folder per party (`dvp agent init`, the tests' dev policy), each link's two
    parties pinned to each other (`dvp agent pair`); none started."""
    env = {**os.environ, "DVP_RUN_DIR": str(run_dir)}
    env.pop("DVP_JOURNAL", None)
    folders = {p: tmp_path / p for p in parties}
    ports = {p: free_port() for p in parties}
    written = {}
    for party in parties:
        done = in_process(
            ["agent", "init", str(folders[party]), "--party", party, "--listen", f"127.0.0.1:{ports[party]}"], env
        )
        assert done.exit_code == 0, done.output
        written[party] = load_config(folders[party]).policy
        # The tests' swaps (short reaction window, fast_forward on dev chains) need a dev policy.
        save_config(folders[party], load_config(folders[party]).model_copy(update={"policy": DEV_POLICY}))
    for one, other in links:
        for party, peer in ((one, other), (other, one)):
            pin(env, folders[party], peer, f"127.0.0.1:{ports[peer]}", folders[peer] / "agent.crt")
    return Agents(run_dir, env, folders, ports, init_policies=written)


@pytest.fixture
def agents(run_dir, tmp_path) -> Agents:
    pair = make_agents(run_dir, tmp_path, PARTIES, (PARTIES,))
    try:
        yield pair
    finally:
        pair.stop_all()


async def balances(run_dir):
    """Every asset of the testbed, for the seller and the buyer."""
    async with LedgerSet.from_run_dir(run_dir) as ledger_set:
        return await snapshot(ledger_set)


def run_async(coro):
    return asyncio.run(coro)


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
