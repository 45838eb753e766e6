"""A dev ledger's clock jump never lands under other swaps in flight (issue 21's bench hazard):
an unwinding swap in a concurrent batch fast-forwarded its chains past its locks' expiry, and so
past every other swap's in that batch (97-98 principal losses per K=100 run).  On in-memory
ledgers whose transactions take real time to be final, so the batch's swaps overlap."""

from __future__ import annotations

import asyncio
import time

from dvp.bench.runner import run_batch
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, Behaviour, HtlcPlan, Leg, SwapSpec, Trade
from dvp.orchestrator import Orchestrator, Outcome
from dvp.testing.memory import MemoryLedger

ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]
SETTLING = 6
FINAL_SECONDS = 0.02  # each transaction's wait for finality, in real time


class SlowLedger(MemoryLedger):
    """A memory ledger whose every transaction takes real time to be final, while its clock
    moves only by its blocks and by jumps (never in real time: a swap that waited for the real
    expiry would never end)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.jumps: list[int] = []

    async def wait_final(self, tx_id, *, timeout=None):
        await asyncio.sleep(FINAL_SECONDS)
        return await super().wait_final(tx_id, timeout=timeout)

    async def advance_time(self, seconds: int) -> None:
        self.jumps.append(seconds)
        await super().advance_time(seconds)


def spec(*, holder_claims: bool = True) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=1), cash=Leg(ledger="b", asset="EUR", amount=100)),
        plan=HtlcPlan(holder_timeout=120, counter_timeout=60, reaction_window=10),
        behaviour=Behaviour(holder_claims=holder_claims),
        fast_forward=True,
    )


def orchestrator(tmp_path) -> tuple[Orchestrator, dict[str, SlowLedger]]:
    a, b = SlowLedger("a"), SlowLedger("b")
    a.balances[("seller", "BOND")] = 100
    b.balances[("buyer", "EUR")] = 10_000
    ledgers = {"a": a, "b": b}
    return Orchestrator(ledgers, ASSETS, Journal(tmp_path / "journal.sqlite"), poll_interval=0.01), ledgers


async def test_a_refund_in_a_concurrent_batch_no_longer_expires_the_others(tmp_path):
    orch, ledgers = orchestrator(tmp_path)
    # The refund swap first: it unwinds while the settling swaps still lock, audit and claim.
    specs = [spec(holder_claims=False)] + [spec() for _ in range(SETTLING)]
    runs = await run_batch(orch, specs, len(specs), 60, "guard", lambda kind, info: None, None)
    assert [r["error"] for r in runs] == [None] * len(specs)
    outcomes = [orch.journal.get(r["swap_id"]).outcome for r in runs]
    assert outcomes == [Outcome.REFUNDED.value] + [Outcome.SETTLED.value] * SETTLING
    # Every settled swap moved exactly its trade; the refunded one moved nothing.
    a, b = ledgers["a"], ledgers["b"]
    assert (a.balances[("seller", "BOND")], a.balances[("buyer", "BOND")]) == (100 - SETTLING, SETTLING)
    assert (b.balances[("seller", "EUR")], b.balances[("buyer", "EUR")]) == (100 * SETTLING, 10_000 - 100 * SETTLING)
    # The refund still fast-forwarded (the memory clock never moves by itself), once the
    # others were done: no jump while a settling swap was in flight.
    assert a.jumps and b.jumps
    assert not orch.clocks._driving["a"] and not orch.clocks._driving["b"]


async def test_a_refund_alone_fast_forwards_at_once(tmp_path):
    orch, ledgers = orchestrator(tmp_path)
    t = time.perf_counter()
    [run] = await run_batch(orch, [spec(holder_claims=False)], 1, 60, "alone", lambda kind, info: None, None)
    assert orch.journal.get(run["swap_id"]).outcome == Outcome.REFUNDED.value
    assert ledgers["a"].jumps and ledgers["b"].jumps
    assert time.perf_counter() - t < 5  # no wait for anyone: 60 s and 120 s of ledger time jumped


async def test_two_refunds_in_a_batch_both_jump(tmp_path):
    """Unwinding swaps do not wait for one another: a jump only brings their expiries nearer."""
    orch, _ = orchestrator(tmp_path)
    runs = await run_batch(orch, [spec(holder_claims=False)] * 2, 2, 60, "two", lambda kind, info: None, None)
    assert [orch.journal.get(r["swap_id"]).outcome for r in runs] == [Outcome.REFUNDED.value] * 2
