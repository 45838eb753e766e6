"""`dvp bench --agents [2|3]`: the cross-ledger swaps again, each proposed by the seller's agent
and accepted by a buyer's, every agent in the bench process but each with only its own keys
(:func:`dvp.party.keys.party_state`), its own journal and its own end of the channel.  With two
agents the seller bank trades with one buyer bank; with three, with two buyer banks (the
testnets' ``buyer`` and ``issuer``) at once, the pair's swaps alternating between them, the
seller's agent pinned to both and each buyer's to the seller only.

The channel is the agents' real one, gRPC over mutual TLS on 127.0.0.1 with a fresh identity
per party, pinned to its peers.  The core imports no gRPC: it is found through an entry point
(group ``dvp.channels``, name ``grpc``: a factory ``(folder, links, limits) -> {party:
Channel}``, ``links`` each party's peers), or through the module of the ``agent`` command that
``dvp_agent`` registers on ``dvp``.  Without ``dvp_agent`` the agents talk over
:class:`LocalChannel` (in process, no TLS, no signatures), and the results say so.

The bench's agents are one operator's, K swaps in flight between them: their limits per peer
(:func:`bench_limits`) are sized to K, where an agent's defaults suit a counterparty trading a
few swaps at a time (they refuse its 21st unfinished swap and its 31st proposal in a minute).

Refund swaps are not run between agents: an honest holder always claims, so a refund needs a
counterparty that stops, which the agent suites (tests/agent) drill instead.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..journal import Journal
from ..ledger_set import LedgerSet
from ..models import SwapSpec
from ..party.agent import Agent
from ..party.channel import Channel, LocalChannel
from ..party.keys import party_state
from ..party.limits import Limits
from ..party.messages import Message
from ..party.policy import SEND_ANY, AcceptPolicy
from ..runtime.processes import free_port
from . import parties as pm
from .figures import PairAgents
from .metrics import LedgerInfo, stats_of

Event = Callable[[str, dict[str, Any]], None]
Links = Mapping[str, tuple[str, ...]]  # each party: the peers it is pinned to
ChannelSet = Callable[[Path, Links, Limits], dict[str, Channel]]

SELLER, BUYER = "seller", "buyer"
SECOND_BUYER = "issuer"  # the testnets' third party: the second buyer bank of three agents
BUYERS = {2: (BUYER,), 3: (BUYER, SECOND_BUYER)}  # the buyer banks, by the number of agents
CHANNEL_GROUP = "dvp.channels"
REFUNDS_NOTE = (
    "not run between agents: an honest holder always claims; the agent suites drill a counterparty "
    "that stops after the first lock"
)
LOCAL_LABEL = "local (dvp_agent not installed: in-process, no TLS, no signatures)"
GRPC_LABEL = "grpc (mutual TLS on 127.0.0.1, signed messages)"
_GRPC_NAMES = ("GrpcChannel", "PeerEndpoint", "create_identity")


def _grpc_from(module: Any) -> ChannelSet:
    """A channel per party built from ``dvp_agent``'s own classes (``module`` carries them)."""

    def make(folder: Path, links: Links, limits: Limits) -> dict[str, Channel]:
        ids = {p: module.create_identity(folder / p, p) for p in links}
        ports = {p: free_port() for p in links}

        def end(me: str) -> Channel:
            peers = {peer: module.PeerEndpoint(f"127.0.0.1:{ports[peer]}", ids[peer].cert) for peer in links[me]}
            channel: Channel = module.GrpcChannel(ids[me], f"127.0.0.1:{ports[me]}", peers, limits)
            return channel

        return {party: end(party) for party in links}

    return make


def _local(folder: Path, links: Links, limits: Limits) -> dict[str, Channel]:
    return {end.party: end for end in LocalChannel.mesh(*links)}


def channel_set() -> tuple[ChannelSet, str]:
    """How the agents talk, and its label for the results."""
    for ep in entry_points(group=CHANNEL_GROUP, name="grpc"):
        factory: ChannelSet = ep.load()
        return factory, GRPC_LABEL
    # The package that registers the `agent` command has the channel and identities its agents
    # run with (not its command module itself: that one imports the `dvp` command group).
    for ep in entry_points(group="dvp.commands", name="agent"):
        package = ep.module.rpartition(".")[0]
        try:
            parts = [importlib.import_module(f"{package}.{name}") for name in ("grpc_channel", "identity")]
        except ImportError:
            break
        found = SimpleNamespace(**{n: getattr(m, n, None) for m in parts for n in _GRPC_NAMES if hasattr(m, n)})
        if all(getattr(found, n, None) is not None for n in _GRPC_NAMES):
            return _grpc_from(found), GRPC_LABEL
    return _local, LOCAL_LABEL


def bench_limits(k: int) -> Limits:
    """Each bench agent's limits per peer, for K swaps in flight with it: every swap's messages
    (about ten, and a ping every few seconds while it waits), K proposals at once and one more
    as each swap ends, K unfinished swaps, two calls per swap at once."""
    return Limits(
        messages_per_minute=max(600, 600 * k),
        proposals_per_minute=max(30, 60 * k),
        unfinished_swaps=max(20, k),
        concurrent_calls=max(32, 2 * k),
    )


def counters(channel: Channel, peers: tuple[str, ...]) -> dict[str, int] | None:
    """What the channel itself counted (messages that passed it, to and from ``peers``), if it counts."""
    sent, received = getattr(channel, "sent", None), getattr(channel, "received", None)
    if not isinstance(sent, dict) or not isinstance(received, dict):
        return None
    return {"sent": sum(int(sent.get(p, 0)) for p in peers), "received": sum(int(received.get(p, 0)) for p in peers)}


# The bench's two agents are one operator's, taking the bench's own plans (short reaction
# windows, fast_forward on dev chains): no floor of their own beyond the plan check.
BENCH_POLICY = AcceptPolicy(reaction_window=0, claim_margin=0, fast_forward=True, max_send=SEND_ANY)


class BenchAgent(Agent):
    """An agent that also counts, per swap, the messages it refused: the channel passed them
    (and counted them), but the agent's journal keeps only the messages it took."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.refused: dict[str, int] = {}

    async def handle(self, message: Message) -> Message | None:
        try:
            return await super().handle(message)
        except Exception:
            self.refused[message.swap_id] = self.refused.get(message.swap_id, 0) + 1
            raise


@dataclass
class AgentSet:
    """The seller bank's agent and its buyer banks' agents of one bench run."""

    seller: BenchAgent
    buyers: dict[str, BenchAgent]
    channel: str  # its label
    folder: Path
    limits: Limits

    @property
    def agents(self) -> dict[str, BenchAgent]:
        return {SELLER: self.seller, **self.buyers}

    def counted(self) -> dict[str, dict[str, int]] | None:
        out = {}
        for party, agent in self.agents.items():
            c = counters(agent.channel, agent.peers)
            if c is None:
                return None
            out[party] = c
        return out


def only(state: dict[str, Any], ledgers: set[str]) -> dict[str, Any]:
    """``state`` with just ``ledgers`` and their assets: an agent connects only what it trades on."""
    return {
        **state,
        "ledgers": {n: e for n, e in state["ledgers"].items() if n in ledgers},
        "assets": [a for a in state.get("assets", []) if a.get("ledger") in ledgers],
    }


@asynccontextmanager
async def open_agents(
    state: dict[str, Any], folder: Path, buyers: tuple[str, ...] = (BUYER,), k: int = 1
) -> AsyncIterator[AgentSet]:
    """The seller's agent pinned to every buyer's, each buyer's to the seller's, all started:
    each on its own narrowed ledgers, journal and channel end (identities and journals in a
    fresh ``folder``), with :func:`bench_limits` for ``k`` swaps in flight."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    make, label = channel_set()
    links: dict[str, tuple[str, ...]] = {SELLER: buyers, **{b: (SELLER,) for b in buyers}}
    limits = bench_limits(k)
    ends = make(folder, links, limits)
    async with AsyncExitStack() as stack:
        agents = {}
        for party, peers in links.items():
            net = await stack.enter_async_context(LedgerSet.from_state(party_state(state, party)))
            journal = Journal(folder / f"{party}.sqlite")
            stack.callback(journal.close)
            agent = BenchAgent(
                party,
                peers,
                net.ledgers,
                net.assets,
                journal,
                ends[party],
                policy=BENCH_POLICY,
                limits=limits,
                progress=lambda s, m: None,
            )
            stack.push_async_callback(agent.aclose)
            await agent.start()
            agents[party] = agent
        yield AgentSet(agents[SELLER], {b: agents[b] for b in buyers}, label, folder, limits)


def with_buyer(spec: SwapSpec, buyer: str) -> SwapSpec:
    """``spec`` with ``buyer`` as its buying party."""
    return spec.model_copy(update={"trade": spec.trade.model_copy(update={"buyer": buyer})})


async def run_agent_batch(
    agents: AgentSet, specs: list[SwapSpec], k: int, timeout: float, on_event: Event
) -> list[dict[str, Any]]:
    """Each spec proposed by the seller's agent to its buyer's, at most ``k`` swaps in flight;
    a swap is done when both its agents' drives ended (bounded by ``timeout``).  Per swap:
    {swap_id, error}."""
    sem = asyncio.Semaphore(k)
    tag = uuid.uuid4().hex[:6]

    async def both(swap_id: str, buyer: BenchAgent) -> None:
        await agents.seller.tasks[swap_id]
        # The buyer's drive exists once it accepted; the seller's ends after the buyer claimed.
        if swap_id in buyer.tasks:
            await buyer.tasks[swap_id]

    async def one(i: int, spec: SwapSpec) -> dict[str, Any]:
        swap_id = f"agents-{tag}-{i:04d}"
        error = None
        async with sem:
            try:
                await agents.seller.propose(spec, swap_id)
                async with asyncio.timeout(timeout):
                    await both(swap_id, agents.buyers[spec.trade.buyer])
            except TimeoutError:
                error = f"timed out after {timeout:.0f}s"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        on_event("swap", {"swap_id": swap_id, "error": error})
        return {"swap_id": swap_id, "error": error}

    return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(specs))))


def _party_journal(agent: BenchAgent, swap_id: str) -> pm.PartyJournal:
    record = agent.journal.get(swap_id)
    refused = agent.refused.get(swap_id, 0)
    if record is None:
        return pm.PartyJournal(agent.party, None, None, None, refused=refused)
    finished = record.updated if record.outcome is not None else None
    return pm.PartyJournal(
        agent.party,
        record.created,
        finished,
        record.outcome,
        agent.journal.steps(swap_id),
        agent.journal.messages(swap_id),
        refused,
    )


def agent_figures(
    agents: AgentSet,
    runs: list[dict[str, Any]],
    specs: list[SwapSpec],
    infos: dict[str, LedgerInfo],
    counted: dict[str, dict[str, int]] | None,
    started: float,
) -> PairAgents:
    """Every figure of one pair's agent swaps, from each swap's two journals (the seller's and
    its buyer's), checked against what the channel counted over the same swaps; the batch runs
    from ``started`` (a ``time.time()``) until these figures are made."""
    swaps = []
    for run, spec in zip(runs, specs):
        pair = (agents.seller, agents.buyers[spec.trade.buyer])
        fig = pm.agent_swap(run["swap_id"], spec, [_party_journal(a, run["swap_id"]) for a in pair], infos)
        fig.error = run["error"]
        swaps.append(fig)
    summary = pm.summarize_parties(swaps)
    last_step = stats_of(s.last_step_seconds for s in swaps)
    check = pm.check_channel(summary, counted)
    batch_seconds = time.time() - started
    return PairAgents(
        channel=agents.channel,
        buyers=sorted({s.trade.buyer for s in specs}),
        last_step=last_step,
        summary=summary,
        channel_counts=counted,
        channel_check=check,
        stuck=[s.swap_id for s in swaps if any(p.outcome is None for p in s.parties.values())],
        refunds=REFUNDS_NOTE,
        swaps=swaps,
        batch_seconds=batch_seconds,
        swaps_per_second=len(specs) / batch_seconds,
    )


def delta(
    after: dict[str, dict[str, int]] | None, before: dict[str, dict[str, int]] | None
) -> dict[str, dict[str, int]] | None:
    if after is None or before is None:
        return None
    return {party: {k: v - before.get(party, {}).get(k, 0) for k, v in c.items()} for party, c in after.items()}
