"""Crash drills: the orchestrator is killed with SIGKILL after each journaled write in
turn, restarted with `dvp resume`, and every swap must end settled or refunded with
balances conserved."""

from __future__ import annotations

import signal

import pytest

from dvp.journal import Journal
from dvp.models import Behaviour

from ..cli_helpers import dvp
from ..scenarios import SETTLED, UNCHANGED, assert_conserved, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS, ELEMENTS_MARKS, FABRIC_MARKS, SINGLE_LEDGERS, Pair

MAX_WRITES = 80  # far more journal writes than any swap makes


async def claim_in_mempool(net, journal_path) -> int:
    """1 if the crash came right after a claim was broadcast on btc and it is still unconfirmed."""
    journal = Journal(journal_path)
    try:
        swaps = journal.swaps(unfinished=True)
        steps = journal.steps(swaps[-1].id) if swaps else []
        last = steps[-1] if steps else None
    finally:
        journal.close()
    if not last or last.ledger != "btc" or last.phase != "submitted" or not last.step.startswith("claim"):
        return 0
    mempool = await net.ledgers["btc"]._rpc.call("getrawmempool")
    return int(last.tx_id in mempool)


def journal_steps(path, swap_id):
    journal = Journal(path)
    try:
        return journal.steps(swap_id)
    finally:
        journal.close()


FABRIC_DRILL_PAIRS = [Pair("fabric-a", "fabric-b"), Pair("fabric-a", "evm-a"), Pair("evm-a", "fabric-b"),
                      Pair("fabric-a", "btc"), Pair("fabric-a", "fabric-a")]
# `make test` drills one scenario per platform (EVM, btc, Elements; Fabric in tests/fabric);
# `make test-drills` runs the whole matrix (marker `matrix`), which does not fit CI's budget.
MATRIX = [pytest.mark.matrix]
# (pair, behaviour, expected, every): crash after every `every`-th journal write.
DRILLS = [
    pytest.param(CROSS_PAIRS[0], Behaviour(), SETTLED, 1, id=f"htlc-settle-{CROSS_PAIRS[0].id}"),
    pytest.param(CROSS_PAIRS[0], Behaviour(holder_claims=False), UNCHANGED, 1, id=f"htlc-refund-{CROSS_PAIRS[0].id}", marks=MATRIX),
    # btc and Elements: every third write in `make test`, every write in the matrix.
    pytest.param(CROSS_PAIRS[1], Behaviour(), SETTLED, 3, id=f"htlc-settle-{CROSS_PAIRS[1].id}-every-3rd"),
    pytest.param(CROSS_PAIRS[1], Behaviour(), SETTLED, 1, id=f"htlc-settle-{CROSS_PAIRS[1].id}", marks=MATRIX),
    pytest.param(Pair(SINGLE_LEDGERS[0], SINGLE_LEDGERS[0]), Behaviour(), SETTLED, 1, id=f"atomic-{SINGLE_LEDGERS[0]}", marks=MATRIX),
    pytest.param(Pair("elements", "evm-a"), Behaviour(), SETTLED, 3, id="htlc-settle-elements->evm-a-every-3rd",
                 marks=ELEMENTS_MARKS),
    # Single-ledger DvP whose buyer walks away: every write, resumed to a cancelled order (never
    # an open one); evm-a in `make test`, Elements and Fabric in the matrix.
    pytest.param(Pair(SINGLE_LEDGERS[0], SINGLE_LEDGERS[0]), Behaviour(counter_locks=False), UNCHANGED, 1,
                 id=f"atomic-cancel-{SINGLE_LEDGERS[0]}"),
    pytest.param(Pair("elements", "elements"), Behaviour(counter_locks=False), UNCHANGED, 1, id="atomic-cancel-elements",
                 marks=ELEMENTS_MARKS + MATRIX),
    pytest.param(Pair("fabric-a", "fabric-a"), Behaviour(counter_locks=False), UNCHANGED, 1, id="atomic-cancel-fabric-a",
                 marks=FABRIC_MARKS + MATRIX),
    # Every Elements pair, every write (skipped with one line without elementsd).
    *(pytest.param(p, Behaviour(), SETTLED, 1, id=f"{'atomic' if p.security == p.cash else 'htlc-settle'}-{p.id}",
                   marks=ELEMENTS_MARKS + MATRIX)
      for p in (Pair("elements", "evm-a"), Pair("elements", "btc"), Pair("elements", "elements"))),
]


@pytest.mark.slow
@pytest.mark.parametrize(("pair", "behaviour", "expected", "every"), DRILLS)
async def test_killed_after_every_journaled_step_then_resumed(net, tmp_path, cli_env, journal_path, pair, behaviour,
                                                              expected, every):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair, behaviour=behaviour).model_dump_json())
    atomic = pair.security == pair.cash
    # A single-ledger swap that does not settle is aborted, its order cancelled on the ledger.
    outcome = "settled" if expected == SETTLED else "aborted" if atomic else "refunded"
    drills = 0
    unconfirmed_claims = 0
    seen: set[str] = set()
    for crash_after in range(1, MAX_WRITES, every):
        before = await snapshot(net)
        run = dvp(["swap", str(scenario)], cli_env, crash_after=crash_after)
        if run.returncode != -signal.SIGKILL:
            # The swap needed fewer writes than this: every step has been drilled.
            assert run.returncode in (0, 6), run.stderr
            break
        drills += 1
        unconfirmed_claims += await claim_in_mempool(net, journal_path)
        resumed = dvp(["resume"], cli_env)
        assert resumed.returncode == 0, resumed.stderr
        journal = Journal(journal_path)
        swaps = journal.swaps()
        # Fees paid by this drill's swap only; earlier drills' swaps share the journal.
        steps = [s for swap in swaps if swap.id not in seen for s in journal.steps(swap.id)]
        seen.update(swap.id for swap in swaps)
        journal.close()
        unfinished = [s.id for s in swaps if s.outcome is None]
        assert not unfinished, f"crash after write {crash_after}: still unfinished {unfinished}"
        after = await snapshot(net)
        assert_conserved(before, after, steps)
        if swaps and swaps[-1].created >= max(s.created for s in swaps):
            last = swaps[-1]
            if crash_after > 1:  # the first write creates the swap; a crash at it may leave none
                assert last.outcome == outcome, f"crash after write {crash_after}: {last.outcome} {last.detail}"
                if atomic and outcome == "aborted":
                    assert f"order cancelled on {pair.security}" in (last.detail or ""), last.detail
                assert changes(before, after, pair, journal_steps(journal_path, last.id)) == expected, f"crash after write {crash_after}"
    else:
        pytest.fail(f"swap never completed within {MAX_WRITES} journal writes")
    assert drills >= 5 // every, "the drill should have crashed the swap at several steps"
    if pair.cash == "btc" and expected == SETTLED and every == 1:
        # One crash landed with the holder's claim broadcast but not yet in a block.
        assert unconfirmed_claims >= 1


async def test_resume_with_nothing_to_do(cli_env):
    result = dvp(["resume"], cli_env)
    assert result.returncode == 0 and "no unfinished swaps" in result.stdout


async def test_a_new_swap_first_resumes_what_a_crash_left(net, tmp_path, cli_env, journal_path):
    pair = CROSS_PAIRS[0]
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair).model_dump_json())
    before = await snapshot(net)
    crashed = dvp(["swap", str(scenario)], cli_env, crash_after=6)
    assert crashed.returncode == -signal.SIGKILL
    second = dvp(["swap", str(scenario)], cli_env)
    assert second.returncode == 0, second.stderr
    assert "resuming 1 unfinished swap" in second.stderr
    journal = Journal(journal_path)
    swaps = journal.swaps()
    steps = [s for swap in swaps for s in journal.steps(swap.id)]
    journal.close()
    assert [s.outcome for s in swaps] == ["settled", "settled"]
    after = await snapshot(net)
    assert_conserved(before, after, steps)
    assert changes(before, after, pair, steps) == {k: 2 * v for k, v in SETTLED.items()}


@pytest.mark.slow
@pytest.mark.parametrize("pair", [pytest.param(p, id=p.id, marks=FABRIC_MARKS) for p in FABRIC_DRILL_PAIRS])
async def test_a_fabric_swap_killed_at_a_few_steps_then_resumed(net, tmp_path, cli_env, journal_path, pair):
    """One drill per Fabric pair within `make test`: SIGKILL after the swap is journaled, after
    its first transaction's intent, and after that transaction is journaled as submitted (a
    transaction broadcast, its commit not yet seen), each time resumed to settlement."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair).model_dump_json())
    for crash_after in (2, 4, 5):
        before = await snapshot(net)
        run = dvp(["swap", str(scenario)], cli_env, crash_after=crash_after)
        assert run.returncode == -signal.SIGKILL, f"crash after write {crash_after}: {run.returncode} {run.stderr}"
        resumed = dvp(["resume"], cli_env)
        assert resumed.returncode == 0, resumed.stderr
        journal = Journal(journal_path)
        last = journal.swaps()[-1]
        steps = journal.steps(last.id)
        journal.close()
        assert last.outcome == "settled", f"crash after write {crash_after}: {last.outcome} {last.detail}"
        after = await snapshot(net)
        assert_conserved(before, after, steps)
        assert changes(before, after, pair, steps) == SETTLED, f"crash after write {crash_after}"
