"""The demo's two-bank part: the seller's and the buyer's agents as two `dvp agent run`
processes, each with only its own keys and journal, settling one cross-ledger swap over
their mutual-TLS channel.  Started as processes of the installed `dvp agent` command, so
the core imports nothing of the channel (gRPC) itself."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import yaml
from pydantic import ValidationError

from .errors import DvpError
from .journal import Journal, Step
from .models import SwapSpec
from .orchestrator import Orchestrator, SwapResult
from .party.policy import AcceptPolicy
from .runtime.processes import free_port
from .settings import Settings

PARTIES = ("seller", "buyer")


@dataclass
class AgentRun:
    party: str
    result: SwapResult
    sent: int
    received: int


def agents_installed() -> bool:
    return any(p.name == "agent" for p in entry_points(group="dvp.commands"))


def _dvp(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "dvp.cli", "--run-dir", str(settings.run_dir), *args]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DvpError(
            f"demo: `dvp {' '.join(command[3:5])}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
        )


def _stale(folder: Path) -> bool:
    """A demo agent folder written before a policy had to list what it sends: under today's
    rule (:class:`AcceptPolicy`, no ``max_send``: nothing sent) its agent would send nothing."""
    try:
        config = yaml.safe_load((folder / "agent.yaml").read_text())
    except FileNotFoundError:
        return False
    policy = config.get("policy") if isinstance(config, dict) else None
    try:
        return not AcceptPolicy.model_validate(policy or {}).max_send
    except ValidationError:
        return True  # written by a dvp whose policy this one no longer reads: made anew as well


def run_two_agents(settings: Settings, spec: SwapSpec, progress: Callable[[str], None]) -> list[AgentRun]:
    """Set up (once) and start both agents, the seller proposing ``spec``; each party's view."""
    home = settings.run_dir / "demo-agents"
    folders = {p: home / p for p in PARTIES}
    ports = {p: free_port() for p in PARTIES}
    for party in PARTIES:
        if _stale(folders[party]):
            kept = folders[party].with_name(f"{party}.old-{int(time.time())}")
            folders[party].rename(kept)
            progress(f"{party}: its agent folder predates the send policy; kept as {kept.name}, made anew")
        if not (folders[party] / "agent.yaml").exists():
            progress(f"{party}: new agent identity, its own keys only")
            _run(_dvp(settings, "agent", "init", str(folders[party]), "--party", party))
    for party, peer in (PARTIES, PARTIES[::-1]):
        # The listen port changes per run: rewrite both ends (pair copies the peer's certificate).
        config = yaml.safe_load((folders[party] / "agent.yaml").read_text())
        config["listen"] = f"127.0.0.1:{ports[party]}"
        (folders[party] / "agent.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _run(
            _dvp(
                settings,
                "agent",
                "pair",
                str(folders[party]),
                "--peer",
                peer,
                "--endpoint",
                f"127.0.0.1:{ports[peer]}",
                "--cert",
                str(folders[peer] / "agent.crt"),
            )
        )
    scenario = home / "swap.yaml"
    scenario.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    logs = {p: open(home / f"{p}.log", "wb") for p in PARTIES}
    try:
        buyer = subprocess.Popen(
            _dvp(settings, "agent", "run", str(folders["buyer"]), "--until-done", "--max-seconds", "600"),
            stdout=logs["buyer"],
            stderr=subprocess.STDOUT,
        )
        progress("buyer's agent started; the seller's agent proposes")
        seller = subprocess.Popen(
            _dvp(
                settings,
                "agent",
                "run",
                str(folders["seller"]),
                "--propose",
                str(scenario),
                "--until-done",
                "--max-seconds",
                "600",
            ),
            stdout=logs["seller"],
            stderr=subprocess.STDOUT,
        )
        for proc in (seller, buyer):
            try:
                proc.wait(timeout=660)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        for log in logs.values():
            log.close()
    runs = []
    for party in PARTIES:
        journal = Journal(folders[party] / "journal.sqlite")
        try:
            newest = journal.swaps()[-1]
            result = Orchestrator({}, [], journal).result(newest.id)
            messages = journal.messages(newest.id)
        finally:
            journal.close()
        runs.append(
            AgentRun(
                party,
                result,
                sum(m["direction"] == "out" for m in messages),
                sum(m["direction"] == "in" for m in messages),
            )
        )
    return runs


def all_steps(runs: list[AgentRun]) -> list[Step]:
    return [s for run in runs for s in run.result.steps]
