"""Sign, journal, then broadcast (dvp.sendlog) on the in-memory ledger: killed at every send
boundary of every step, the resumed drive re-broadcasts the journaled transaction and never
builds a second one, unless the ledger proves the journaled one can never confirm."""

from __future__ import annotations

import pytest

from dvp import errors, sendlog
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, Behaviour, HtlcPlan, Leg, SwapSpec, Trade
from dvp.orchestrator import Orchestrator, Outcome, Unfinished
from dvp.sendlog import Boundary


class Killed(BaseException):
    """The process died here (nothing in the orchestrator catches a BaseException)."""


ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]


def spec(behaviour: Behaviour | None = None) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(holder_timeout=100, counter_timeout=50, reaction_window=5),
        fast_forward=True,
        behaviour=behaviour or Behaviour(),
    )


@pytest.fixture
def kill_at(monkeypatch):
    """Kill at the ``n``-th time (from 1) a send path passes ``boundary``."""

    def arm(boundary: Boundary, n: int) -> None:
        seen = [0]

        def hit(reached: Boundary) -> None:
            if reached is boundary:
                seen[0] += 1
                if seen[0] == n:
                    sendlog.at_boundary = None
                    raise Killed(f"{boundary} #{n}")

        monkeypatch.setattr(sendlog, "at_boundary", hit)

    return arm


def holdings(ledgers):
    a, b = ledgers["a"], ledgers["b"]
    return (
        a.balances[("seller", "BOND")],
        a.balances[("buyer", "BOND")],
        b.balances[("seller", "EUR")],
        b.balances[("buyer", "EUR")],
    )


# Settled: four sends (two locks, two claims); refunded: two locks, two refunds.  Only the
# security leg's lock is two transactions: one boundary between two of one submission.
CASES = [
    (b, n, beh, want)
    for beh, want in ((Behaviour(), (90, 10, 1000, 9000)), (Behaviour(holder_claims=False), (100, 0, 0, 10_000)))
    for b in Boundary
    for n in range(1, 2 if b is Boundary.BETWEEN else 5)
]


@pytest.mark.parametrize(
    ("boundary", "n", "behaviour", "expected"),
    CASES,
    ids=[f"{b}-{n}-{'settle' if w[1] else 'refund'}" for b, n, _, w in CASES],
)
async def test_killed_at_a_send_boundary_then_resumed_sends_nothing_twice(
    ledgers, tmp_path, kill_at, boundary, n, behaviour, expected
):
    ledgers["a"].approve_before_lock = True  # the security leg's lock is two transactions (approve, lock)
    journal = Journal(tmp_path / "j.sqlite")
    kill_at(boundary, n)
    with pytest.raises(Killed):
        await Orchestrator(ledgers, ASSETS, journal).run(spec(behaviour))
    journal.close()
    if boundary is Boundary.SIGNED:  # signed, never journaled: the bytes died with the process
        for ledger in ledgers.values():
            ledger.unsent.clear()
    journal = Journal(tmp_path / "j.sqlite")  # a new process
    [result] = await Orchestrator(ledgers, ASSETS, journal).resume_each()
    assert result.outcome is (Outcome.SETTLED if expected[1] else Outcome.REFUNDED), result.detail
    assert holdings(ledgers) == expected
    for ledger in ledgers.values():  # from the ledgers: each operation once
        assert sorted(ledger.sent) == sorted(set(ledger.sent)), ledger.sent
        assert not ledger.unsent
    signed = [s for s in result.steps if s.phase == "signed"]
    submitted = [s for s in result.steps if s.phase == "submitted"]
    # Every transaction that reached a ledger was journaled signed first, once.
    assert [s.tx_id for s in signed] == [s.tx_id for s in submitted]
    assert not [s for s in result.steps if s.phase == "abandoned"]
    if boundary is not Boundary.SIGNED:  # the killed step's journaled bytes were sent again, not rebuilt
        assert sum(len(ledger.rebroadcasts) for ledger in ledgers.values()) >= 1


async def test_a_journaled_transaction_the_ledger_proves_dead_is_abandoned_then_rebuilt(ledgers, tmp_path, kill_at):
    journal = Journal(tmp_path / "j.sqlite")
    kill_at(Boundary.JOURNALED, 1)  # the first lock is journaled signed, never broadcast
    with pytest.raises(Killed):
        await Orchestrator(ledgers, ASSETS, journal).run(spec())
    [dead] = ledgers["a"].unsent
    ledgers["a"].unsent.clear()
    ledgers["a"].superseded[dead] = "its nonce went to another transaction"
    [result] = await Orchestrator(ledgers, ASSETS, journal).resume_each()
    assert result.outcome is Outcome.SETTLED, result.detail
    assert holdings(ledgers) == (90, 10, 1000, 9000)
    [abandoned] = [s for s in result.steps if s.phase == "abandoned"]
    assert abandoned.tx_id == dead and "its nonce went to another transaction" in abandoned.detail["proof"]
    locks = [s.tx_id for s in result.steps if s.step == "lock security" and s.phase == "signed"]
    assert locks[0] == dead and len(locks) == 2 and ledgers["a"].sent.count("lock") == 1


async def test_outside_a_journaled_step_nothing_is_written(ledgers, tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    await ledgers["a"].issue("BOND", "seller", 5)  # set-up: no step, no hook
    assert journal.swaps() == [] and ledgers["a"].balances[("seller", "BOND")] == 105


async def test_the_journal_holding_signed_transactions_is_private_to_its_party(ledgers, tmp_path):
    """Created 0600, and SQLite's write-ahead and shared-memory files beside it too."""
    path = tmp_path / "j.sqlite"
    await Orchestrator(ledgers, ASSETS, Journal(path)).run(spec())
    files = [tmp_path / name for name in ("j.sqlite", "j.sqlite-shm", "j.sqlite-wal")]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), [oct(f.stat().st_mode) for f in files]


async def test_a_journaled_transaction_the_ledger_holds_back_is_sent_again_never_rebuilt(ledgers, tmp_path, kill_at):
    """A journaled lock the ledger does not take for now (a node's mempool chain limits, waited
    out) is not proven dead: the resume stops with HeldBack, builds no other lock and journals
    no intent or signed row (before: taken as failed on the ledger, a second lock was built and
    sent while the first could still confirm); a later resume sends the same bytes."""
    journal = Journal(tmp_path / "j.sqlite")
    kill_at(Boundary.JOURNALED, 1)  # the first lock is journaled signed, never broadcast
    with pytest.raises(Killed):
        await Orchestrator(ledgers, ASSETS, journal).run(spec())
    [held] = ledgers["a"].unsent
    ledgers["a"].held_back[held] = "too-long-mempool-chain; no block made room within 60 s"
    before = journal.steps(journal.swaps()[0].id)
    [result] = await Orchestrator(ledgers, ASSETS, journal).resume_each()
    assert isinstance(result, Unfinished) and isinstance(result.error, errors.HeldBack), result
    assert ledgers["a"].rebroadcasts == [held] and ledgers["a"].sent == []  # sent again, nothing built
    after = journal.steps(journal.swaps()[0].id)
    assert [(s.step, s.phase) for s in after[len(before) :]] == []  # no intent, no second signed lock
    del ledgers["a"].held_back[held]
    [result] = await Orchestrator(ledgers, ASSETS, journal).resume_each()
    assert result.outcome is Outcome.SETTLED, result.detail
    locks = [s.tx_id for s in result.steps if s.step == "lock security" and s.phase == "signed"]
    assert locks == [held] and ledgers["a"].sent.count("lock") == 1
    assert not [s for s in result.steps if s.phase == "abandoned"]
