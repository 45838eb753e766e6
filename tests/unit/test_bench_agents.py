"""`dvp bench --agents` on in-memory ledgers: a batch of swaps between the seller's and the
buyer's agents, over the real gRPC channel (loopback) and over the in-process fallback; the
figures come from the two journals and, where the channel counts, are checked against it."""

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
        plan=HtlcPlan(holder_timeout=100, counter_timeout=50, reaction_window=5),
        fast_forward=True,
    )


def test_without_dvp_agent_the_agents_talk_in_process_and_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(ag, "entry_points", lambda **kw: [])
    make, label = ag.channel_pair()
    assert label == ag.LOCAL_LABEL and "dvp_agent not installed" in label
    one, two = make(tmp_path, "seller", "buyer")
    assert ag.counters(one, "buyer") is None  # no counters: the check says it was not made


@pytest.mark.parametrize("via", ["grpc", "local"])
async def test_a_batch_between_two_agents_and_its_figures(ledgers, tmp_path, monkeypatch, via):
    if via == "local":
        monkeypatch.setattr(ag, "entry_points", lambda **kw: [])
    make, label = ag.channel_pair()
    assert label == (ag.GRPC_LABEL if via == "grpc" else ag.LOCAL_LABEL)
    ends = make(tmp_path, "seller", "buyer")
    said: dict[str, list[str]] = {"seller": [], "buyer": []}
    seller = ag.BenchAgent(
        "seller",
        "buyer",
        ledgers,
        ASSETS,
        Journal(tmp_path / "seller.sqlite"),
        ends[0],
        policy=ag.BENCH_POLICY,
        progress=lambda s, m: said["seller"].append(m),
    )
    buyer = ag.BenchAgent(
        "buyer",
        "seller",
        ledgers,
        ASSETS,
        Journal(tmp_path / "buyer.sqlite"),
        ends[1],
        policy=ag.BENCH_POLICY,
        progress=lambda s, m: said["buyer"].append(m),
    )
    pair = ag.AgentPair(seller, buyer, label, tmp_path)
    await seller.start()
    await buyer.start()
    try:
        before = pair.counted()
        specs = [spec() for _ in range(SWAPS)]
        events: list[str] = []
        runs = await ag.run_agent_batch(pair, specs, 2, 30, lambda kind, info: events.append(kind))
        figures = ag.agent_figures(pair, runs, specs, INFOS, ag.delta(pair.counted(), before), time.time()).dump()
    finally:
        await seller.aclose()
        await buyer.aclose()
    assert events == ["swap"] * SWAPS and [r["error"] for r in runs] == [None] * SWAPS
    assert figures["stuck"] == [] and figures["channel"] == label
    assert ledgers["a"].balances[("buyer", "BOND")] == 10 * SWAPS
    for party, agent, peer in (("seller", seller, "buyer"), ("buyer", buyer, "seller")):
        s = figures["summary"][party]
        # What this agent refused is what its peer was told it refused (the channel passed it).
        assert s["messages_refused"] == sum(1 for m in said[peer] if m.startswith(f"{party} refused our"))
        assert s["outcomes"] == {"settled": SWAPS}
        rows = [m for r in runs for m in agent.journal.messages(r["swap_id"])]
        assert s["messages_sent"] == sum(1 for m in rows if m["direction"] == "out") > 0
        assert s["messages_received"] == sum(1 for m in rows if m["direction"] == "in") > 0
    if via == "grpc":
        assert figures["channel_check"] == {"checked": True, "matches": True, "mismatches": []}
        summary = figures["summary"]
        assert figures["channel_counts"] == {
            p: {
                "sent": summary[p]["messages_sent"],
                "received": summary[p]["messages_received"] + summary[p]["messages_refused"],
            }
            for p in ("seller", "buyer")
        }
    else:
        assert figures["channel_counts"] is None and not figures["channel_check"]["checked"]
