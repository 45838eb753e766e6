"""Crash drills: the orchestrator is killed with SIGKILL after each journaled write in
turn, restarted with `dvp resume`, and every swap must end settled or refunded with
balances conserved."""

from __future__ import annotations

import signal

import pytest

from dvp.journal import Journal
from dvp.models import Behaviour
from dvp.sendlog import Boundary

from ..cli_helpers import dvp
from ..scenarios import SETTLED, UNCHANGED, assert_conserved, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS, ELEMENTS_MARKS, FABRIC_MARKS, SINGLE_LEDGERS, Pair

MAX_WRITES = 80  # far more journal writes than any swap makes


async def claim_in_mempool(ledger_set, journal_path) -> int:
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
    mempool = await ledger_set.ledgers["btc"]._rpc.call("getrawmempool")
    return int(last.tx_id in mempool)


def journal_steps(path, swap_id):
    journal = Journal(path)
    try:
        return journal.steps(swap_id)
    finally:
        journal.close()


FABRIC_DRILL_PAIRS = [
    Pair("fabric-a", "fabric-b"),
    Pair("fabric-a", "evm-a"),
    Pair("evm-a", "fabric-b"),
    Pair("fabric-a", "btc"),
    Pair("fabric-a", "fabric-a"),
]
# `make test` drills one scenario per platform (EVM, btc, Elements; Fabric in tests/fabric);
# `make test-drills` runs the whole matrix (marker `matrix`), which does not fit CI's budget.
MATRIX = [pytest.mark.matrix]
# (pair, behaviour, expected, every): crash after every `every`-th journal write.
DRILLS = [
    pytest.param(CROSS_PAIRS[0], Behaviour(), SETTLED, 1, id=f"htlc-settle-{CROSS_PAIRS[0].id}"),
    pytest.param(
        CROSS_PAIRS[0],
        Behaviour(holder_claims=False),
        UNCHANGED,
        1,
        id=f"htlc-refund-{CROSS_PAIRS[0].id}",
        marks=MATRIX,
    ),
    # btc and Elements: every third write in `make test`, every write in the matrix.
    pytest.param(CROSS_PAIRS[1], Behaviour(), SETTLED, 3, id=f"htlc-settle-{CROSS_PAIRS[1].id}-every-3rd"),
    pytest.param(CROSS_PAIRS[1], Behaviour(), SETTLED, 1, id=f"htlc-settle-{CROSS_PAIRS[1].id}", marks=MATRIX),
    pytest.param(
        Pair(SINGLE_LEDGERS[0], SINGLE_LEDGERS[0]),
        Behaviour(),
        SETTLED,
        1,
        id=f"atomic-{SINGLE_LEDGERS[0]}",
        marks=MATRIX,
    ),
    pytest.param(
        Pair("elements", "evm-a"),
        Behaviour(),
        SETTLED,
        3,
        id="htlc-settle-elements->evm-a-every-3rd",
        marks=ELEMENTS_MARKS,
    ),
    # Single-ledger DvP whose buyer walks away: every write, resumed to a cancelled order (never
    # an open one); evm-a in `make test`, Elements and Fabric in the matrix.
    pytest.param(
        Pair(SINGLE_LEDGERS[0], SINGLE_LEDGERS[0]),
        Behaviour(counter_locks=False),
        UNCHANGED,
        1,
        id=f"atomic-cancel-{SINGLE_LEDGERS[0]}",
    ),
    pytest.param(
        Pair("elements", "elements"),
        Behaviour(counter_locks=False),
        UNCHANGED,
        1,
        id="atomic-cancel-elements",
        marks=ELEMENTS_MARKS + MATRIX,
    ),
    pytest.param(
        Pair("fabric-a", "fabric-a"),
        Behaviour(counter_locks=False),
        UNCHANGED,
        1,
        id="atomic-cancel-fabric-a",
        marks=FABRIC_MARKS + MATRIX,
    ),
    # Every Elements pair, every write (skipped with one line without elementsd).
    *(
        pytest.param(
            p,
            Behaviour(),
            SETTLED,
            1,
            id=f"{'atomic' if p.security == p.cash else 'htlc-settle'}-{p.id}",
            marks=ELEMENTS_MARKS + MATRIX,
        )
        for p in (Pair("elements", "evm-a"), Pair("elements", "btc"), Pair("elements", "elements"))
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("pair", "behaviour", "expected", "every"), DRILLS)
async def test_killed_after_every_journaled_step_then_resumed(
    ledger_set, tmp_path, cli_env, journal_path, pair, behaviour, expected, every
):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair, behaviour=behaviour).model_dump_json())
    atomic = pair.security == pair.cash
    # A single-ledger swap that does not settle is aborted, its order cancelled on the ledger.
    outcome = "settled" if expected == SETTLED else "aborted" if atomic else "refunded"
    drills = 0
    unconfirmed_claims = 0
    seen: set[str] = set()
    for crash_after in range(1, MAX_WRITES, every):
        before = await snapshot(ledger_set)
        run = dvp(["swap", str(scenario)], cli_env, crash_after=crash_after)
        if run.returncode != -signal.SIGKILL:
            # The swap needed fewer writes than this: every step has been drilled.
            assert run.returncode in (0, 6), run.stderr
            break
        drills += 1
        unconfirmed_claims += await claim_in_mempool(ledger_set, journal_path)
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
        after = await snapshot(ledger_set)
        assert_conserved(before, after, steps)
        if swaps and swaps[-1].created >= max(s.created for s in swaps):
            last = swaps[-1]
            if crash_after > 1:  # the first write creates the swap; a crash at it may leave none
                assert last.outcome == outcome, f"crash after write {crash_after}: {last.outcome} {last.detail}"
                if atomic and outcome == "aborted":
                    assert f"order cancelled on {pair.security}" in (last.detail or ""), last.detail
                assert changes(before, after, pair, journal_steps(journal_path, last.id)) == expected, (
                    f"crash after write {crash_after}"
                )
    else:
        pytest.fail(f"swap never completed within {MAX_WRITES} journal writes")
    assert drills >= 5 // every, "the drill should have crashed the swap at several steps"
    if pair.cash == "btc" and expected == SETTLED and every == 1:
        # One crash landed with the holder's claim broadcast but not yet in a block.
        assert unconfirmed_claims >= 1


async def test_resume_with_nothing_to_do(cli_env):
    result = dvp(["resume"], cli_env)
    assert result.returncode == 0 and "no unfinished swaps" in result.stdout


async def test_a_new_swap_first_resumes_what_a_crash_left(ledger_set, tmp_path, cli_env, journal_path):
    pair = CROSS_PAIRS[0]
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair).model_dump_json())
    before = await snapshot(ledger_set)
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
    after = await snapshot(ledger_set)
    assert_conserved(before, after, steps)
    assert changes(before, after, pair, steps) == {k: 2 * v for k, v in SETTLED.items()}


@pytest.mark.slow
@pytest.mark.parametrize("pair", [pytest.param(p, id=p.id, marks=FABRIC_MARKS) for p in FABRIC_DRILL_PAIRS])
async def test_a_fabric_swap_killed_at_a_few_steps_then_resumed(ledger_set, tmp_path, cli_env, journal_path, pair):
    """One drill per Fabric pair within `make test`: SIGKILL after the swap is journaled, after
    its first transaction's intent, and after that transaction's signed envelope is journaled
    (not yet sent to the orderer), each time resumed to settlement."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair).model_dump_json())
    for crash_after in (2, 4, 5):
        before = await snapshot(ledger_set)
        run = dvp(["swap", str(scenario)], cli_env, crash_after=crash_after)
        assert run.returncode == -signal.SIGKILL, f"crash after write {crash_after}: {run.returncode} {run.stderr}"
        resumed = dvp(["resume"], cli_env)
        assert resumed.returncode == 0, resumed.stderr
        await last_swap_settled(ledger_set, journal_path, pair, before, f"crash after write {crash_after}")


async def last_swap_settled(ledger_set, journal_path, pair: Pair, before, why: str) -> list:
    """The journal's last swap settled, value conserved and the trade delivered; its steps."""
    journal = Journal(journal_path)
    last = journal.swaps()[-1]
    steps = journal.steps(last.id)
    journal.close()
    assert last.outcome == "settled", f"{why}: {last.outcome} {last.detail}"
    after = await snapshot(ledger_set)
    assert_conserved(before, after, steps)
    assert changes(before, after, pair, steps) == SETTLED, why
    return steps


async def sent_by(ledger_set, ledger: str, party: str) -> int:
    """How many transactions ``party`` has made on EVM ``ledger``, read from the ledger itself
    (the account's mined nonce, which counts reverted and empty transactions too)."""
    adapter = ledger_set.ledgers[ledger]
    address = adapter.address_of(party)
    pending = await adapter._w3.eth.get_transaction_count(address, "pending")
    mined = await adapter._w3.eth.get_transaction_count(address, "latest")
    assert pending == mined, f"{party} on {ledger}: {pending - mined} transaction(s) still in the pool"
    return int(mined)


async def ledger_counts(ledger_set, pair: Pair) -> dict[tuple[str, str], int]:
    """Each party's transaction count on each EVM ledger of the pair."""
    return {
        (ledger, party): await sent_by(ledger_set, ledger, party)
        for ledger in {pair.security, pair.cash}
        if ledger_set.ledgers[ledger].kind == "ethereum"
        for party in ("seller", "buyer")
    }


async def htlc_txs(ledger_set, ledger: str, lock_id: str) -> tuple[set[str], set[str]]:
    """On UTXO ``ledger``, read from its blocks: the transactions that paid the lock's script
    (its locks) and those that spent them (its claims and refunds)."""
    adapter = ledger_set.ledgers[ledger]
    await adapter._refresh("count")
    outputs = adapter.view.outputs_to(adapter._parse_id(lock_id).script_pubkey)
    spends = {adapter.view.spend_of(u.outpoint) for u in outputs}
    return {u.outpoint[0] for u in outputs}, {s.txid for s in spends if s is not None}


async def assert_sent_once(ledger_set, pair: Pair, swap, steps, sent_before, why: str) -> None:
    """From the LEDGERS: every transaction of the swap is one the journal has final, and each
    lock, claim and refund was made once."""
    finals = {s.tx_id: s for s in steps if s.phase == "final"}
    sent_after = await ledger_counts(ledger_set, pair)
    journaled = {key: sum(1 for s in finals.values() if (s.ledger, s.detail["payer"]) == key) for key in sent_after}
    on_ledgers = {key: sent_after[key] - sent_before[key] for key in sent_after}
    assert on_ledgers == journaled, f"{why}: EVM ledgers {on_ledgers}, journal {journaled}"
    for leg, ledger in (("security", pair.security), ("cash", pair.cash)):
        kind = ledger_set.ledgers[ledger].kind
        if kind == "ethereum":
            continue
        lock_id = swap.data[f"lock_{leg}"]
        if kind == "fabric":  # the chaincode's events: every valid transaction on the lock
            events = [e async for e in ledger_set.ledgers[ledger].observe() if e.lock_id == lock_id]
            locks = {e.tx_id for e in events if e.kind == "locked"}
            spends = {e.tx_id for e in events if e.kind != "locked"}
            assert len(events) == 2, f"{why}: {leg} leg on {ledger}: {[(e.kind, e.tx_id) for e in events]}"
        else:
            locks, spends = await htlc_txs(ledger_set, ledger, lock_id)
        mine = {s.tx_id for s in finals.values() if s.step.endswith(leg) and s.ledger == ledger}
        assert len(locks) == 1 and len(spends) == 1 and locks | spends == mine, (
            f"{why}: {leg} leg on {ledger}: locks {locks}, claims/refunds {spends}, journal {mine}"
        )
    mains = [(s.step, s.detail["purpose"]) for s in finals.values() if s.detail["purpose"] != "approve"]
    assert sorted(mains) == sorted(set(mains)) and len(mains) == 4, f"{why}: {mains}"
    assert not [s for s in steps if s.phase == "abandoned"], why
    # Each signed transaction was the one that went final: re-broadcast, never rebuilt.
    assert {s.tx_id for s in steps if s.phase == "signed"} == set(finals), why


# (pair, kill points): kill at the N-th pass of a send boundary (BOUNDARY:N).  `make test`: one
# cheap drill per platform, a few points; every boundary of every step under `matrix`.
EVERY_BOUNDARY = tuple(f"{b.value}:{n}" for b in Boundary for n in range(1, 5))
BOUNDARY_DRILLS = [
    pytest.param(
        CROSS_PAIRS[0], ("journaled:1", "broadcast:2", "journaled:3"), id=f"htlc-{CROSS_PAIRS[0].id}-3-points"
    ),
    pytest.param(CROSS_PAIRS[1], ("journaled:2", "broadcast:3"), id=f"htlc-{CROSS_PAIRS[1].id}-2-points"),
    pytest.param(
        Pair("elements", "evm-a"),
        ("journaled:1", "broadcast:3"),
        id="htlc-elements->evm-a-2-points",
        marks=ELEMENTS_MARKS,
    ),
    pytest.param(
        Pair("fabric-a", "evm-a"),
        ("journaled:1", "broadcast:3"),
        id="htlc-fabric-a->evm-a-2-points",
        marks=FABRIC_MARKS,
    ),
    *(
        pytest.param(p, EVERY_BOUNDARY, id=f"htlc-{p.id}-every-boundary", marks=MATRIX + marks)
        for p, marks in (
            (CROSS_PAIRS[0], []),
            (CROSS_PAIRS[1], []),
            (Pair("elements", "evm-a"), ELEMENTS_MARKS),
            (Pair("fabric-a", "evm-a"), FABRIC_MARKS),
        )
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("pair", "points"), BOUNDARY_DRILLS)
async def test_killed_at_a_send_boundary_then_resumed(ledger_set, tmp_path, cli_env, journal_path, pair, points):
    """Killed after signing, after journaling the signed bytes, between two transactions of
    one submission, right after a broadcast: the resumed swap settles, and the LEDGERS show
    no transaction the journal does not have final and none sent twice (EVM: each party's
    mined nonce; UTXO: the transactions paying and spending the lock's script): one lock and
    one claim per leg, and an approve where the token needs one."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(spec_for(pair).model_dump_json())
    killed = 0
    for point in points:
        before, sent_before = await snapshot(ledger_set), await ledger_counts(ledger_set, pair)
        run = dvp(["swap", str(scenario)], cli_env, crash_at=point)
        if run.returncode != -signal.SIGKILL:  # the swap never passed this boundary that often
            assert run.returncode == 0, run.stderr
        else:
            killed += 1
            resumed = dvp(["resume"], cli_env)
            assert resumed.returncode == 0, resumed.stderr
        steps = await last_swap_settled(ledger_set, journal_path, pair, before, f"killed at {point}")
        journal = Journal(journal_path)
        swap = journal.swaps()[-1]
        journal.close()
        await assert_sent_once(ledger_set, pair, swap, steps, sent_before, f"killed at {point}")
    assert killed >= min(len(points), 2), "the drill should have killed the swap at several boundaries"
