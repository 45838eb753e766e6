"""`dvp cancel SWAP_ID` (issue 23, item 1): the seller withdraws the open order of an
unfinished single-ledger swap; the order is cancelled on the ledger, or the command says in
one line why not, with its documented exit code."""

from __future__ import annotations

import signal

from dvp.journal import Journal
from dvp.lease import drive_lease
from dvp.models import OrderStatus
from dvp.state import AtomicSwapState

from ..cli_helpers import dvp, one_line_error
from ..scenarios import UNCHANGED, assert_conserved, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS, Pair

PAIR = Pair("evm-a", "evm-a")


def only_swap(journal_path) -> tuple[str, str | None, dict]:
    journal = Journal(journal_path)
    try:
        [swap] = journal.swaps()
        return swap.id, swap.outcome, swap.data
    finally:
        journal.close()


async def test_the_seller_cancels_an_open_order_once(ledger_set, tmp_path, cli_env, journal_path):
    scenario = tmp_path / "atomic.json"
    scenario.write_text(spec_for(PAIR).model_dump_json())
    before = await snapshot(ledger_set)
    # Killed once the order is on the ledger, just before the buyer's acceptance is sent.
    crashed = dvp(["swap", str(scenario)], {**cli_env, "DVP_CRASH_AFTER_STEP": "settle"}, crash_after=10_000)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    swap_id, outcome, data = only_swap(journal_path)
    state = AtomicSwapState.model_validate(data)
    assert outcome is None and state.order_id is not None
    adapter = ledger_set.ledgers[PAIR.security]
    assert (await adapter.get_order(state.order_id)).status is OrderStatus.OPEN
    with drive_lease(journal_path, swap_id):  # another process drives it now
        one_line_error(dvp(["cancel", swap_id], cli_env), 7, "being driven by another process")
    done = dvp(["cancel", swap_id], cli_env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "order cancelled on evm-a" in done.stdout.replace("\n", " ")
    assert (await adapter.get_order(state.order_id)).status is OrderStatus.CANCELLED
    _, outcome, _ = only_swap(journal_path)
    assert outcome == "aborted"
    journal = Journal(journal_path)
    steps = journal.steps(swap_id)
    journal.close()
    assert [s.step for s in steps if s.phase == "result"] == ["propose", "cancel"]
    after = await snapshot(ledger_set)
    assert_conserved(before, after, steps)
    assert changes(before, after, PAIR, steps) == UNCHANGED
    one_line_error(dvp(["cancel", swap_id], cli_env), 2, "already ended aborted")
    one_line_error(dvp(["cancel", "nope"], cli_env), 2, "no swap 'nope'")


async def test_a_cross_ledger_swap_has_no_order_to_cancel(tmp_path, cli_env, journal_path):
    htlc = tmp_path / "htlc.json"
    htlc.write_text(spec_for(CROSS_PAIRS[0]).model_dump_json())
    crashed = dvp(["swap", str(htlc)], cli_env, crash_after=1)  # the swap exists, nothing sent
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    htlc_id, _, _ = only_swap(journal_path)
    one_line_error(dvp(["cancel", htlc_id], cli_env), 2, "htlc swap has no order to cancel")
