"""The outcome follows the ledgers (issue 10, item 4): legs claimed by hand with `dvp claim`
while the swap waits to refund them make the swap settled, not "aborted: nothing locked"."""

from __future__ import annotations

import subprocess

from dvp.journal import Journal
from dvp.models import Behaviour

from ..cli_helpers import DVP, dvp, wait_for_journal
from ..scenarios import SETTLED, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS

PAIR = CROSS_PAIRS[0]


def both_legs_locked(journal: Journal):
    swaps = journal.swaps()
    if swaps and {"lock_security", "lock_cash"} <= swaps[0].data.keys():
        steps = journal.steps(swaps[0].id)
        if any(s.step == "audit cash" and s.phase == "result" for s in steps):
            return swaps[0]
    return None


async def test_legs_claimed_by_hand_while_the_swap_unwinds_make_it_settled(ledger_set, tmp_path, cli_env, journal_path):
    scenario = tmp_path / "scenario.json"
    spec = spec_for(PAIR, behaviour=Behaviour(holder_claims=False), holder_timeout=40, counter_timeout=20)
    scenario.write_text(spec.model_copy(update={"fast_forward": False}).model_dump_json())
    before = await snapshot(ledger_set)
    driver = subprocess.Popen(
        [DVP, "swap", str(scenario)], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        record = wait_for_journal(
            journal_path, both_legs_locked, "the swap never locked both legs", timeout=90.0, poll=0.2
        )
        secret = record.data["secret"]
        # The seller takes the cash and, with the secret now public, the buyer the bonds.
        by_hand = [
            dvp(["claim", PAIR.cash, record.data["lock_cash"], secret, "--as", "seller"], cli_env),
            dvp(["claim", PAIR.security, record.data["lock_security"], secret, "--as", "buyer"], cli_env),
        ]
        out, err = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert all(c.returncode == 0 for c in by_hand), [c.stderr for c in by_hand]
    assert driver.returncode == 0, (out, err)
    journal = Journal(journal_path)
    [done] = journal.swaps()
    steps = journal.steps(done.id)
    journal.close()
    assert done.outcome == "settled", done.detail
    assert "nothing was locked" not in done.detail and "as the ledgers show" in done.detail, done.detail
    assert changes(before, await snapshot(ledger_set), PAIR, steps) == SETTLED
