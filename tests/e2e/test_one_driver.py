"""One driver per swap (issue 10, item 3): a `dvp resume` or a second `dvp swap` started
while another process drives a swap skips it with one line; nothing is sent twice and each
transaction's result and fee are journaled once."""

from __future__ import annotations

import subprocess
from collections import Counter

from dvp.journal import Journal
from dvp.models import Behaviour

from ..cli_helpers import DVP, dvp, wait_for_journal
from ..scenarios import SETTLED, assert_conserved, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS

PAIR = CROSS_PAIRS[0]


def first_swap_with_steps(journal: Journal) -> str | None:
    swaps = journal.swaps()
    return swaps[0].id if swaps and journal.steps(swaps[0].id) else None


async def test_a_second_driver_skips_a_swap_another_process_drives(ledger_set, tmp_path, cli_env, journal_path):
    # A refund path without fast-forward: the first driver waits for real expiry, so the
    # others surely start while it holds the swap.
    scenario = tmp_path / "scenario.json"
    spec = spec_for(PAIR, behaviour=Behaviour(holder_claims=False), holder_timeout=25, counter_timeout=12)
    scenario.write_text(spec.model_copy(update={"fast_forward": False}).model_dump_json())
    before = await snapshot(ledger_set)
    first = subprocess.Popen(
        [DVP, "swap", str(scenario)], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        swap_id = wait_for_journal(
            journal_path, first_swap_with_steps, "the swap never appeared in the journal", timeout=60.0
        )
        resumed = dvp(["resume"], cli_env)
        again = dvp(["resume", swap_id], cli_env)
        # A second `dvp swap` on the same journal runs its own swap and leaves this one alone;
        # it settles, but the skipped swap is part of what the command did: exit 7 (issue 23).
        other = tmp_path / "other.json"
        other.write_text(spec_for(PAIR).model_dump_json())
        second = dvp(["swap", str(other)], cli_env)
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 6, err  # refunded: the holder walked away
    for other in (resumed, again):
        assert other.returncode == 7, (other.returncode, other.stdout, other.stderr)
        lines = other.stderr.strip().splitlines()
        assert len(lines) == 1 and f"swap {swap_id}" in lines[0] and "another process" in lines[0], other.stderr

    assert second.returncode == 7, (second.returncode, second.stdout, second.stderr)
    assert f"swap {swap_id} is being driven by another process" in second.stderr
    assert "settled" in second.stdout, second.stdout

    journal = Journal(journal_path)
    record, settled = journal.swaps()
    steps = journal.steps(swap_id)
    settled_steps = journal.steps(settled.id)
    journal.close()
    assert record.outcome == "refunded" and settled.outcome == "settled"
    results = Counter(s.tx_id for s in steps if s.phase == "result" and s.tx_id)
    assert results and all(n == 1 for n in results.values()), results
    intents = Counter(s.step for s in steps if s.phase == "intent")
    assert all(n == 1 for n in intents.values()), intents
    after = await snapshot(ledger_set)
    assert_conserved(before, after, steps + settled_steps)
    assert changes(before, after, PAIR, steps + settled_steps) == SETTLED
