"""`dvp agent status DIR`: the agent's peers, their last contact, its unfinished swaps with
their next deadline, and its swaps by outcome, from its folder and its journal read
read-only (:mod:`.ops`); the agent may be running or not."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from dvp import errors
from dvp.cli_common import fail_cleanly
from dvp.ledger_set import LedgerSet
from dvp.party.keys import load_party_file
from dvp.settings import Settings

from . import ops
from .config import AgentConfig, agent_folder, load_config
from .identity import load_peer_cert

# How long the ledgers' clocks are waited for before the deadlines fall back to the plan's.
CLOCK_SECONDS = 10.0


def _peers(folder: Path, config: AgentConfig, contact: dict[str, float]) -> list[dict[str, Any]]:
    peers = []
    for peer in config.peers:
        try:
            fingerprint: str | None = load_peer_cert(config.path(folder, peer.cert_file), peer.party).fingerprint
        except errors.DvpError as exc:
            fingerprint = f"unreadable: {exc}"
        peers.append(
            {
                "party": peer.party,
                "endpoint": peer.endpoint,
                "fingerprint": fingerprint,
                "last_contact": contact.get(peer.party),
            }
        )
    return peers


async def _seconds_left(folder: Path, config: AgentConfig, swaps: list[ops.OpenSwap]) -> dict[tuple[str, str], float]:
    """(swap id, leg) -> seconds to the leg's agreed expiry by its ledger's clock, for the
    ledgers that answer within CLOCK_SECONDS."""
    wanted = {leg.ledger for swap in swaps for leg in swap.legs if leg.expiry is not None}
    if not wanted:
        return {}
    clocks = {}
    try:
        async with asyncio.timeout(CLOCK_SECONDS):
            state = load_party_file(config.path(folder, config.ledgers))
            state = {**state, "ledgers": {k: v for k, v in state["ledgers"].items() if k in wanted}}
            async with LedgerSet.from_state(state).reachable_only() as net:
                for name in wanted & set(net.ledgers):
                    try:
                        clocks[name] = (net.ledgers[name], await net.ledgers[name].now())
                    except errors.DvpError:
                        continue
    except (TimeoutError, errors.DvpError, OSError):
        pass
    left = {}
    for swap in swaps:
        for leg in swap.legs:
            if leg.expiry is not None and leg.ledger in clocks:
                adapter, now = clocks[leg.ledger]
                left[(swap.id, leg.leg)] = adapter.seconds_left(now, leg.expiry)
    return left


def _deadline(swap: ops.OpenSwap, left: dict[tuple[str, str], float], now: float) -> dict[str, Any] | None:
    """The nearer expiry of the swap's legs: by the ledger's clock where it was read, else by
    the wall clock from the swap's creation and the plan's timeouts."""
    options = []
    for leg in swap.legs:
        by_ledger = left.get((swap.id, leg.leg))
        if by_ledger is not None:
            options.append((by_ledger, leg, "ledger clock"))
        else:
            options.append((leg.wall_deadline - now, leg, "plan timeout from creation (ledger clock unread)"))
    if not options:
        return None
    seconds, leg, by = min(options, key=lambda o: o[0])
    return {
        "leg": leg.leg,
        "ledger": leg.ledger,
        "lock_id": leg.lock_id,
        "expiry": leg.expiry,
        "seconds_left": round(seconds, 1),
        "by": by,
    }


def gather(folder: Path, read_clocks: bool = True) -> dict[str, Any]:
    config = load_config(folder)
    with ops.read_only(config.path(folder, config.journal)) as db:
        outcomes, contact, swaps = ops.outcomes(db), ops.last_contact(db), ops.open_swaps(db)
    left = asyncio.run(_seconds_left(folder, config, swaps)) if read_clocks else {}
    now = time.time()
    unfinished = [{**ops.as_dict(s), "next_deadline": _deadline(s, left, now)} for s in swaps]
    return {
        "party": config.party,
        "listen": config.listen,
        "peers": _peers(folder, config, contact),
        "unfinished": unfinished,
        "outcomes": outcomes,
        "locked": [
            {"ledger": ledger, "asset": asset, "amount": n}
            for (ledger, asset), n in sorted(ops.locked_value(swaps).items())
        ],
    }


def _print(status: dict[str, Any]) -> None:
    click.echo(f"agent {status['party']!r}, listening on {status['listen']}")
    click.echo(f"peers ({len(status['peers'])}):")
    for peer in status["peers"]:
        click.echo(
            f"  {peer['party']} at {peer['endpoint']}, certificate SHA-256 {peer['fingerprint']}, last "
            f"contact {ops.ago(peer['last_contact'])}"
        )
    click.echo(f"unfinished swaps ({len(status['unfinished'])}):")
    for swap in status["unfinished"]:
        role = f"{swap['role']} with {swap['peer']}" if swap["role"] else "not an agent's swap"
        line = f"  {swap['id']}: {role}, {'agreed' if swap['agreed'] else 'awaiting the answer to its proposal'}"
        deadline = swap["next_deadline"]
        if deadline is not None:
            line += (
                f"; next deadline: the {deadline['leg']} leg on {deadline['ledger']} expires in "
                f"{deadline['seconds_left']:.0f}s (by {deadline['by']})"
            )
        click.echo(line)
    counts = ", ".join(f"{n} {o}" for o, n in sorted(status["outcomes"].items())) or "none"
    click.echo(f"swaps by outcome: {counts}")
    held = ", ".join(f"{x['amount']} {x['asset']} on {x['ledger']}" for x in status["locked"]) or "nothing"
    click.echo(f"locked now: {held}")


@click.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="This agent's party (its folder is RUN_DIR/agents/PARTY).")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@click.option("--no-clocks", is_flag=True, help="Do not read the ledgers' clocks (deadlines from the plan only).")
@click.pass_obj
@fail_cleanly
def status(settings: Settings, folder: Path | None, party: str | None, as_json: bool, no_clocks: bool) -> None:
    """The agent's peers and last contact, unfinished swaps with their next deadline, swaps by
    outcome; read from FOLDER, whether its agent runs or not."""
    found = gather(agent_folder(settings.run_dir, folder, party), read_clocks=not no_clocks)
    if as_json:
        click.echo(json.dumps(found, sort_keys=True))
    else:
        _print(found)
