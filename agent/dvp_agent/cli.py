"""`dvp agent ...`: registered on the `dvp` command through the entry-point group `dvp.commands`.

    dvp agent init [DIR] --party seller --listen 127.0.0.1:7101  # identity, own keys only, journal
    dvp agent pair [DIR] --peer buyer --endpoint 127.0.0.1:7102 --cert buyer-agent.crt  # one more peer
    dvp agent peers [DIR]                                       # the pinned peers, with fingerprints
    dvp agent unpair [DIR] --peer buyer                         # refused while a swap with it is unfinished
    dvp agent run [DIR] [--propose SCENARIO ...] [--until-done]
    dvp agent propose SCENARIO [DIR]                            # to the party's running agent
    dvp agent quote [DIR] --peer seller --security evm-a:BOND --amount 3 --side buy --cash btc:BTC
                                                                # a firm quote from a peer, by the running agent
    dvp agent propose --quote ID [DIR]                          # the running agent proposes on that quote

DIR defaults to RUN_DIR/agents/PARTY when ``--party`` names the party.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from dvp import errors
from dvp.cli_common import FiniteSeconds, console, fail_cleanly, out, progress_printer
from dvp.journal import Journal
from dvp.ledger_set import LedgerSet
from dvp.models import SwapSpec
from dvp.orchestrator import Outcome, SwapResult
from dvp.party.agent import Agent
from dvp.party.keys import load_party_file, party_state, write_party_file
from dvp.party.policy import AcceptPolicy, asset_key
from dvp.party.quotes import Quote, QuoteRequest
from dvp.runtime.local import LocalRuntime
from dvp.scenario import first_error, load_scenario
from dvp.settings import Settings
from dvp.views import print_result

# gRPC's own log lines (a failed bind ...) would come before our one-line error.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from . import ops, outbox
from .config import (
    CONFIG_FILE,
    AgentConfig,
    PeerSettings,
    agent_folder,
    load_config,
    peer_cert_file,
    save_config,
)
from .grpc_channel import GrpcChannel, PeerEndpoint, ip_port
from .identity import create_identity, load_identity, load_peer_cert
from .metrics import serve_metrics
from .status import status

EXIT_NOT_SETTLED = 6  # as `dvp swap`: a swap ended other than settled, or was left unfinished


@click.group()
def agent() -> None:
    """Run one party's agent: its own keys, its own journal, an authenticated channel to the other."""


agent.add_command(status)


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", required=True, help="The party this agent acts for (its keys only are exported).")
@click.option("--listen", default="127.0.0.1:7101", show_default=True, help="IP:PORT the agent serves its peer on.")
@click.pass_obj
@fail_cleanly
def init(settings: Settings, folder: Path | None, party: str, listen: str) -> None:
    """Make FOLDER an agent for PARTY on the testnets of --run-dir: a new identity (key 0600 and
    certificate), the ledgers with PARTY's keys only (0600), and agent.yaml."""
    folder = agent_folder(settings.run_dir, folder, party)
    if (folder / CONFIG_FILE).exists():
        raise errors.ConfigError(f"{folder / CONFIG_FILE}: exists already; this folder is an agent")
    state = LocalRuntime(settings.run_dir).state()
    if state is None or not state.get("complete", True):
        raise errors.ConfigError(f"run_dir: no running testnets recorded in {settings.run_dir}; run `dvp up` first")
    narrowed = party_state(state, party)
    config = AgentConfig(party=party, listen=listen)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.ConfigError(f"{folder}: cannot create it: {exc.strerror}") from None
    create_identity(folder, party)
    write_party_file(config.path(folder, config.ledgers), narrowed)
    config = config.model_copy(update={"policy": AcceptPolicy(max_send=asyncio.run(_holdings(narrowed, party)))})
    save_config(folder, config)
    out.print(
        f"agent for {party!r} in {folder}: ledgers {', '.join(narrowed['ledgers'])}; it may send at most "
        f"what it holds now (policy.max_send in {folder / CONFIG_FILE}); give "
        f"{folder / config.cert} to your counterparty, then `dvp agent pair {folder} --peer NAME "
        f"--endpoint IP:PORT --cert THEIR_CERT`"
    )


async def _holdings(state: dict[str, Any], party: str) -> dict[str, int]:
    """LEDGER:ASSET -> what ``party`` holds now, for the assets of its reachable ledgers: a fresh
    agent's policy.max_send (a policy lists what may be sent; the bank narrows it)."""
    async with LedgerSet.from_state(state).reachable_only() as net:
        held = {}
        for asset in net.assets:
            if asset.ledger in net.ledgers:
                held[asset_key(asset.ledger, asset.symbol)] = await net.ledgers[asset.ledger].balance(
                    party, asset.symbol
                )
        return held


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="This agent's party (its folder is RUN_DIR/agents/PARTY).")
@click.option("--peer", required=True, help="The counterparty's party name (its certificate must name it).")
@click.option("--endpoint", required=True, help="IP:PORT of the counterparty's agent.")
@click.option("--cert", "cert", required=True, type=click.Path(path_type=Path), help="Its agent certificate (PEM).")
@click.pass_obj
@fail_cleanly
def pair(settings: Settings, folder: Path | None, party: str | None, peer: str, endpoint: str, cert: Path) -> None:
    """Pin one more counterparty's agent (or move one already pinned): its endpoint and
    certificate (copied into FOLDER/peers/PEER.crt).  A running agent takes it within a second."""
    folder = agent_folder(settings.run_dir, folder, party)
    config = load_config(folder)
    if peer == config.party:
        raise errors.ConfigError(f"peer: {peer!r} is this agent's own party")
    pinned = load_peer_cert(cert, peer)  # refuses a certificate that does not name the peer
    ip_port(endpoint, "endpoint")
    target = folder / peer_cert_file(peer)
    target.parent.mkdir(mode=0o700, exist_ok=True)
    if cert.resolve() != target.resolve():
        shutil.copyfile(cert, target)
    known = config.peer(peer)
    entry = PeerSettings(party=peer, endpoint=endpoint, policy=known.policy if known else None)
    peers = [entry if p.party == peer else p for p in config.peers] if known else [*config.peers, entry]
    save_config(folder, config.model_copy(update={"peers": peers}))
    out.print(
        f"{config.party!r} {'re-pinned' if known else 'pinned'} {peer!r} at {endpoint}, certificate SHA-256 "
        f"{pinned.fingerprint} ({len(peers)} peer{'s' if len(peers) != 1 else ''})"
    )


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="This agent's party (its folder is RUN_DIR/agents/PARTY).")
@click.pass_obj
@fail_cleanly
def peers(settings: Settings, folder: Path | None, party: str | None) -> None:
    """The pinned peers: endpoint, certificate SHA-256 fingerprint, and whose policy applies."""
    folder = agent_folder(settings.run_dir, folder, party)
    config = load_config(folder)
    if not config.peers:
        out.print(f"{config.party!r} has no peer; pin one with `dvp agent pair {folder} ...`")
    for peer in config.peers:
        try:
            fingerprint = load_peer_cert(config.path(folder, peer.cert_file), peer.party).fingerprint
        except errors.ConfigError as exc:
            fingerprint = f"unreadable: {exc}"
        policy = "its own policy" if peer.policy is not None else "the agent's policy"
        click.echo(f"{peer.party}\t{peer.endpoint}\t{fingerprint}\t{policy}")


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="This agent's party (its folder is RUN_DIR/agents/PARTY).")
@click.option("--peer", required=True, help="The counterparty to unpin.")
@click.pass_obj
@fail_cleanly
def unpair(settings: Settings, folder: Path | None, party: str | None, peer: str) -> None:
    """Unpin a counterparty; refused while a swap with it is unfinished (its agent is needed to
    finish it).  A running agent drops it within a second."""
    folder = agent_folder(settings.run_dir, folder, party)
    config = load_config(folder)
    known = config.peer(peer)
    if known is None:
        pinned = ", ".join(p.party for p in config.peers) or "none"
        raise errors.ConfigError(f"peer: {peer!r} is not pinned (pinned: {pinned})")
    with ops.read_only(config.path(folder, config.journal)) as db:
        open_with = [s.id for s in ops.open_swaps(db) if s.peer == peer]
    if open_with:
        raise errors.ConfigError(
            f"peer: {len(open_with)} swap(s) with {peer!r} unfinished ({', '.join(open_with[:5])}); "
            "unpair it once they have ended"
        )
    save_config(folder, config.model_copy(update={"peers": [p for p in config.peers if p.party != peer]}))
    if known.cert is None:
        with contextlib.suppress(FileNotFoundError):
            (folder / peer_cert_file(peer)).unlink()
    out.print(f"{config.party!r} unpinned {peer!r}")


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="This agent's party (its folder is RUN_DIR/agents/PARTY).")
@click.option(
    "--propose",
    "proposals",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A scenario file to propose to the peer (repeatable).",
)
@click.option("--until-done", is_flag=True, help="Exit once every swap it drives has ended (at least one).")
@click.option(
    "--max-seconds",
    type=FiniteSeconds(1, 7 * 24 * 3600),
    default=None,
    help="Stop after this long (unfinished swaps continue at the next start).",
)
@click.pass_obj
@fail_cleanly
def run(
    settings: Settings,
    folder: Path | None,
    party: str | None,
    proposals: tuple[Path, ...],
    until_done: bool,
    max_seconds: float | None,
) -> None:
    """Serve the peer and drive this party's swaps (and any a crash left unfinished)."""
    folder = agent_folder(settings.run_dir, folder, party)
    config = load_config(folder)
    specs = [load_scenario(p) for p in proposals]
    if not config.peers:
        raise errors.ConfigError(f"{folder / CONFIG_FILE}: peers: none pinned; run `dvp agent pair {folder} ...`")
    identity = load_identity(config.path(folder, config.key), config.path(folder, config.cert))
    if identity.party != config.party:
        raise errors.ConfigError(f"{config.path(folder, config.cert)}: names {identity.party!r}, not {config.party!r}")
    endpoints = _endpoints(folder, config)
    state = load_party_file(config.path(folder, config.ledgers))
    if state["party"] != config.party:
        raise errors.ConfigError(
            f"{config.path(folder, config.ledgers)}: holds {state['party']!r}'s keys, not {config.party!r}'s"
        )
    channel = GrpcChannel(identity, config.listen, endpoints, config.limits)
    with outbox.running(folder):
        results, ended = asyncio.run(_serve(config, folder, state, channel, specs, until_done, max_seconds))
    # Every swap driven to an end in this run counts, those whose task the agent let go too.
    code = EXIT_NOT_SETTLED if set(ended) - {Outcome.SETTLED.value} else 0
    for result in results:
        if isinstance(result, str):
            click.echo(f"error: swap {result}: unfinished; it continues at the agent's next start", err=True)
            code = EXIT_NOT_SETTLED
            continue
        print_result(out, result, False)
        if result.outcome is not Outcome.SETTLED:
            code = EXIT_NOT_SETTLED
    sys.exit(code)


def _endpoints(folder: Path, config: AgentConfig) -> dict[str, PeerEndpoint]:
    """Each pinned peer's endpoint and certificate, as ``agent.yaml`` has them."""
    return {
        p.party: PeerEndpoint(p.endpoint, load_peer_cert(config.path(folder, p.cert_file), p.party))
        for p in config.peers
    }


def _stamp(folder: Path) -> tuple[int, int] | None:
    """When and how big ``agent.yaml`` was last written (`dvp agent pair` replaces it whole)."""
    try:
        found = (folder / CONFIG_FILE).stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


async def _take_pairing(folder: Path, party: Agent, channel: GrpcChannel) -> None:
    """``agent.yaml`` changed (or SIGHUP): serve its peers with their policies from now on, as
    `dvp agent pair` and `unpair` left them; anything it says wrong leaves the pairing as it was.
    Only the peers and their policies are taken so; the rest waits for the next start."""
    try:
        config = load_config(folder)
        endpoints = channel.checked(_endpoints(folder, config))
        kept = party.set_peers(list(endpoints), config.policies())
    except errors.ConfigError as exc:
        click.echo(
            f"error: {folder / CONFIG_FILE}: pairing not taken: {exc}; still serving {', '.join(party.peers)}", err=True
        )
        return
    for peer in kept:  # an unfinished swap needs it: as it was pinned
        endpoints[peer] = channel.peers[peer]
    await channel.set_peers(endpoints)
    said = f"; kept {', '.join(kept)} (unfinished swaps with them)" if kept else ""
    console.print(
        f"[dim]{config.party}[/] agent: pairing taken from {CONFIG_FILE}, peers {', '.join(party.peers)}{said}"
    )


async def _serve(
    config: AgentConfig,
    folder: Path,
    state: dict[str, Any],
    channel: GrpcChannel,
    specs: list[SwapSpec],
    until_done: bool,
    max_seconds: float | None,
) -> tuple[list[SwapResult | str], dict[str, int]]:
    """The results of the swaps whose tasks the agent still holds (an id: unfinished), and how
    many of all it drove to an end in this run ended how."""
    stop, repair = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, repair.set)  # take agent.yaml's pairing now
    stamp = _stamp(folder)
    deadline = time.monotonic() + max_seconds if max_seconds else None
    async with LedgerSet.from_state(state).reachable_only() as net:
        journal = Journal(config.path(folder, config.journal))
        party = Agent(
            config.party,
            [p.party for p in config.peers],
            net.ledgers,
            net.assets,
            journal,
            channel,
            policy=config.policy,
            policies=config.policies(),
            limits=config.limits,
            progress=progress_printer(f"{config.party} "),
        )
        metrics = None
        try:
            await party.start()
            metrics = serve_metrics(config.metrics, config.path(folder, config.journal), party)
            pinned = ", ".join(f"{p.party} at {p.endpoint}" for p in config.peers)
            console.print(f"[dim]{config.party}[/] agent listening on {config.listen}, peers {pinned}")
            for spec in specs:
                await party.propose(spec)
            for _ in range(10_000_000):
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    break
                if until_done and party.tasks and all(t.done() for t in party.tasks.values()):
                    break
                await _take_outbox(folder, party)
                if repair.is_set() or _stamp(folder) != stamp:
                    repair.clear()
                    stamp = _stamp(folder)
                    await _take_pairing(folder, party, channel)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await stop.wait()
        finally:
            finished = {
                sid: t.result()
                for sid, t in party.tasks.items()
                if t.done() and not t.cancelled() and t.exception() is None
            }
            await party.aclose()
            journal.close()
            if metrics is not None:
                metrics.close()
    return [finished.get(sid) or sid for sid in party.tasks], dict(party.ended)


async def _take_outbox(folder: Path, party: Agent) -> None:
    """Do what `dvp agent propose` or `dvp agent quote` left for this agent; answer each with
    its swap id or quote, or why not."""
    for request, text in outbox.take(folder):
        try:
            outbox.answer(request, **await _do(party, json.loads(text)))
        except errors.DvpError as exc:
            outbox.answer(request, str(exc), exc.exit_code)
        except (ValueError, KeyError, TypeError) as exc:  # the request file was changed after its command checked it
            why = first_error(exc, "request: ") if isinstance(exc, ValidationError) else f"request: {exc}"
            outbox.answer(request, why, errors.ConfigError.exit_code)


async def _do(party: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """One outbox request: a proposal, a request for a quote, or a proposal on a quote held."""
    kind = request["request"]
    if kind == outbox.PROPOSE:
        return {"swap_id": await party.propose(SwapSpec.model_validate(request["spec"]))}
    if kind == outbox.PROPOSE_QUOTE:
        return {"swap_id": await party.propose_on_quote(str(request["quote_id"]))}
    if kind != outbox.QUOTE:
        raise errors.ConfigError(f"request: {kind!r} is not a request this agent takes")
    peer = str(request["peer"])
    try:
        quote_id, _spec = await party.request_quote(peer, QuoteRequest.model_validate(request["rfq"]))
    except errors.SwapAborted as exc:  # the peer's REJECT, naming its rule
        raise errors.PeerError(str(exc)) from None
    return {"quote_id": quote_id, "peer": peer, "quote": party.quote_taken(quote_id)[1].model_dump(mode="json")}


def _ask(folder: Path, request: dict[str, Any], what: str) -> dict[str, Any]:
    """Hand ``request`` to the agent running from ``folder`` and wait for its answer; its refusal
    is this command's one-line error, with the exit code the agent gave."""
    if not outbox.is_running(folder):
        raise errors.ConfigError(
            f"{folder}: no agent is running from this folder; start it with `dvp agent run {folder}`"
            + (" (or give --propose to it)" if what == "propose" else "")
        )
    answer = outbox.await_answer(outbox.post_request(folder, request), timeout=30)
    if answer.get("error"):
        refused = errors.DvpError(f"the agent did not {what} it: {answer['error']}")
        refused.exit_code = int(answer.get("code") or errors.ConfigError.exit_code)
        raise refused
    return answer


@agent.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="The proposing party (its agent's folder is RUN_DIR/agents/PARTY).")
@click.option("--quote", "quote_id", default=None, help="Propose on this quote (`dvp agent quote`), not a scenario.")
@click.pass_obj
@fail_cleanly
def propose(
    settings: Settings, scenario: Path | None, folder: Path | None, party: str | None, quote_id: str | None
) -> None:
    """Have the party's running agent propose SCENARIO to its peer, or the terms of a quote it
    holds (--quote ID, under the quote's id, before it expires); prints the swap id."""
    if quote_id is not None:
        if scenario is not None and folder is not None:
            raise errors.ConfigError("scenario: give a scenario file or --quote, not both")
        folder = agent_folder(settings.run_dir, folder or scenario, party)
        load_config(folder)
        request: dict[str, Any] = {"request": outbox.PROPOSE_QUOTE, "quote_id": quote_id}
    else:
        if scenario is None:
            raise errors.ConfigError("scenario: give a scenario file to propose, or --quote ID")
        folder = agent_folder(settings.run_dir, folder, party)
        load_config(folder)
        request = {"request": outbox.PROPOSE, "spec": load_scenario(scenario).model_dump(mode="json")}
    answer = _ask(folder, request, "propose")
    out.print(
        f"proposed swap {answer['swap_id']}; its outcome: `dvp --journal {folder / 'journal.sqlite'} history "
        f"{answer['swap_id']}`"
    )


@agent.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--party", default=None, help="The asking party (its agent's folder is RUN_DIR/agents/PARTY).")
@click.option("--peer", required=True, help="The pinned peer asked for the quote.")
@click.option("--security", required=True, help="The instrument, LEDGER:ASSET (e.g. evm-a:BOND).")
@click.option("--amount", required=True, help="How much of it, in its base units.")
@click.option("--side", required=True, type=click.Choice(["buy", "sell"]), help="Whether this party buys or sells it.")
@click.option(
    "--cash",
    "cash",
    multiple=True,
    required=True,
    help="A cash asset it pays or is paid in, LEDGER:ASSET (repeatable, in its order).",
)
@click.pass_obj
@fail_cleanly
def quote(
    settings: Settings,
    folder: Path | None,
    party: str | None,
    peer: str,
    security: str,
    amount: str,
    side: str,
    cash: tuple[str, ...],
) -> None:
    """Have the party's running agent ask PEER for a firm quote (a request for quote: the
    instrument, the amount, this party's side and cash assets); prints the terms, the price and
    how long they hold.  `dvp agent propose --quote ID` then trades on them."""
    folder = agent_folder(settings.run_dir, folder, party)
    config = load_config(folder)
    if config.peer(peer) is None:
        pinned = ", ".join(p.party for p in config.peers) or "none"
        raise errors.ConfigError(f"peer: {peer!r} is not pinned (pinned: {pinned})")
    if not (amount.isascii() and amount.isdigit()):
        raise errors.ConfigError(f"amount: expected a whole number of base units, got {amount[:40]!r}")
    try:
        rfq = QuoteRequest(security=security, cash=list(cash), amount=int(amount), side=side)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise errors.ConfigError(first_error(exc)) from None
    answer = _ask(
        folder, {"request": outbox.QUOTE, "peer": peer, "rfq": rfq.model_dump(mode="json")}, "get a quote for"
    )
    given = Quote.model_validate(answer["quote"])
    trade = given.spec.trade
    until = datetime.datetime.fromtimestamp(given.valid_until, datetime.UTC)
    click.echo(
        f"quote {answer['quote_id']} from {peer}: {trade.seller} sells {trade.security.amount} {trade.security.asset} "
        f"on {trade.security.ledger} to {trade.buyer} for {trade.cash.amount} {trade.cash.asset} on "
        f"{trade.cash.ledger} (price {trade.cash.amount // trade.security.amount} a unit); firm until "
        f"{until:%Y-%m-%dT%H:%M:%SZ} ({given.valid_until - time.time():.0f}s); trade on it: "
        f"dvp agent propose --quote {answer['quote_id']} {folder}"
    )
