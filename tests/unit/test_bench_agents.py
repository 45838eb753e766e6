"""`dvp bench --agents` on in-memory ledgers: a batch of swaps between the seller's and the
buyer's agents (and with three agents, the seller bank's with two buyer banks at once), over the
real gRPC channel (loopback) and over the in-process fallback; the figures come from each swap's
two journals and, where the channel counts, are checked against it."""

from __future__ import annotations

import time

import pytest

from dvp.bench import agents as ag
from dvp.bench.metrics import LedgerInfo
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, SwapSpec, Trade

ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]
INFOS = {n: LedgerInfo(n, "memory", "none") for n in ("a", "b")}
SWAPS = 3


def spec() -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        # Long enough for K swaps at once: the memory ledger's clock moves a second per transaction.
        plan=HtlcPlan(holder_timeout=1000, counter_timeout=500, reaction_window=5),
        fast_forward=True,
    )


def test_without_dvp_agent_the_agents_talk_in_process_and_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(ag, "entry_points", lambda **kw: [])
    make, label = ag.channel_set()
    assert label == ag.LOCAL_LABEL and "dvp_agent not installed" in label
    ends = make(tmp_path, {"seller": ("buyer",), "buyer": ("seller",)}, ag.bench_limits(1))
    assert ag.counters(ends["seller"], ("buyer",)) is None  # no counters: the check says it was not made


def test_the_bench_agents_limits_fit_k_swaps_in_flight():
    """An agent's defaults refuse a peer's 21st unfinished swap and its 31st proposal in a
    minute; the bench's agents are one operator's, K swaps in flight between them."""
    assert ag.bench_limits(1) == ag.Limits(concurrent_calls=32, messages_per_minute=600, proposals_per_minute=60)
    wide = ag.bench_limits(50)
    assert (wide.unfinished_swaps, wide.proposals_per_minute, wide.concurrent_calls) == (50, 3000, 100)
    assert wide.messages_per_minute // 4 >= 50 * 10  # a quarter at once: every swap's ten messages


def agent(party: str, peers, ledgers, channel, limits, tmp_path, said) -> ag.BenchAgent:
    return ag.BenchAgent(
        party,
        peers,
        ledgers,
        ASSETS,
        Journal(tmp_path / f"{party}.sqlite"),
        channel,
        policy=ag.BENCH_POLICY,
        limits=limits,
        progress=lambda s, m: said[party].append(m),
    )


@pytest.mark.parametrize(
    ("via", "buyers", "k"),
    [("grpc", ("buyer",), 2), ("local", ("buyer",), 2), ("grpc", ("buyer", "issuer"), 25)],
    ids=["grpc", "local", "grpc-three-agents-k25"],
)
async def test_a_batch_between_agents_and_its_figures(ledgers, tmp_path, monkeypatch, via, buyers, k):
    if via == "local":
        monkeypatch.setattr(ag, "entry_points", lambda **kw: [])
    make, label = ag.channel_set()
    assert label == (ag.GRPC_LABEL if via == "grpc" else ag.LOCAL_LABEL)
    links = {"seller": buyers, **{b: ("seller",) for b in buyers}}
    limits = ag.bench_limits(k)
    ends = make(tmp_path, links, limits)
    said: dict[str, list[str]] = {p: [] for p in links}
    made = {p: agent(p, links[p], ledgers, ends[p], limits, tmp_path, said) for p in links}
    agents = ag.AgentSet(made["seller"], {b: made[b] for b in buyers}, label, tmp_path, limits)
    for a in made.values():
        await a.start()
    # K swaps at once, beyond an agent's default limits (20 unfinished, 30 proposals a minute).
    n = max(SWAPS, k)
    ledgers["a"].balances[("seller", "BOND")] = 10 * n
    for b in buyers:
        ledgers["b"].balances[(b, "EUR")] = 1000 * n
    try:
        before = agents.counted()
        specs = [ag.with_buyer(spec(), buyers[i % len(buyers)]) for i in range(n)]
        events: list[str] = []
        runs = await ag.run_agent_batch(agents, specs, k, 60, lambda kind, info: events.append(kind))
        figures = ag.agent_figures(agents, runs, specs, INFOS, ag.delta(agents.counted(), before), time.time()).dump()
    finally:
        for a in made.values():
            await a.aclose()
    assert events == ["swap"] * n and [r["error"] for r in runs] == [None] * n
    assert figures["stuck"] == [] and figures["channel"] == label and figures["buyers"] == sorted(buyers)
    bought = {b: sum(1 for s in specs if s.trade.buyer == b) for b in buyers}
    for b, count in bought.items():  # each buyer bank got exactly its swaps' bonds
        assert ledgers["a"].balances[(b, "BOND")] == 10 * count
    for party, a in made.items():
        s = figures["summary"][party]
        swaps = n if party == "seller" else bought[party]
        peers = links[party]
        # What this agent refused is what its peers were told it refused (the channel passed it).
        told = sum(1 for peer in peers for m in said[peer] if m.startswith(f"{party} refused our"))
        assert s["messages_refused"] == told
        assert s["outcomes"] == {"settled": swaps} and s["swaps"] == swaps
        rows = [m for r in runs if a.journal.get(r["swap_id"]) for m in a.journal.messages(r["swap_id"])]
        assert s["messages_sent"] == sum(1 for m in rows if m["direction"] == "out") > 0
        assert s["messages_received"] == sum(1 for m in rows if m["direction"] == "in") > 0
        if party != "seller":  # a buyer bank's journal holds its own swaps only
            assert {r.id for r in a.journal.swaps()} == {
                r["swap_id"] for r, sp in zip(runs, specs) if sp.trade.buyer == party
            }
    if via == "grpc":
        assert figures["channel_check"] == {"checked": True, "matches": True, "mismatches": []}
        summary = figures["summary"]
        assert figures["channel_counts"] == {
            p: {
                "sent": summary[p]["messages_sent"],
                "received": summary[p]["messages_received"] + summary[p]["messages_refused"],
            }
            for p in links
        }
    else:
        assert figures["channel_counts"] is None and not figures["channel_check"]["checked"]
