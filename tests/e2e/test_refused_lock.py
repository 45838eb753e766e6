"""A lock the ledger refuses never strands the other leg nor poisons the journal (issue 10,
item 1): the swap unwinds (refund after expiry) and says why, and the next swap on the same
journal runs."""

from __future__ import annotations

import json
import secrets
import signal

from dvp.journal import Journal
from dvp.models import HtlcTerms
from dvp.orchestrator import Outcome
from dvp.runtime.processes import free_port

from ..cli_helpers import dvp, one_line_error
from ..htlc_helpers import pass_time
from ..scenarios import CASH_AMOUNT, UNCHANGED, changes, snapshot, spec_for
from ..testbed import CROSS_PAIRS

PAIR = CROSS_PAIRS[0]


async def test_a_lock_refused_after_the_first_leg_unwinds_with_the_real_cause(ledger_set, journal_path):
    seller_ledger, buyer_ledger = ledger_set.ledgers[PAIR.security], ledger_set.ledgers[PAIR.cash]
    sent_lock = seller_ledger.lock
    side: list[HtlcTerms] = []

    async def lock_then_buyer_spends(terms):
        submitted = await sent_lock(terms)
        # Every check has passed and the seller's bonds are locked: now the buyer's cash
        # goes elsewhere (here: into a lock of its own), so its swap lock is refused.
        have = await buyer_ledger.balance("buyer", "EUR")
        spend = HtlcTerms(
            sender="buyer",
            recipient="seller",
            asset="EUR",
            amount=have - CASH_AMOUNT + 1,
            hashlock=secrets.token_hex(32),
            expiry=buyer_ledger.expiry_after(await buyer_ledger.now(), 20),
            nonce=secrets.token_hex(32),
        )
        await buyer_ledger.wait_final((await buyer_ledger.lock(spend)).tx_id)
        side.append(spend)
        return submitted

    before = await snapshot(ledger_set)
    seller_ledger.lock = lock_then_buyer_spends
    try:
        result = await ledger_set.orchestrator(journal_path).run(spec_for(PAIR))
    finally:
        del seller_ledger.lock
        for spend in side:  # give the buyer its cash back for the rest of the session
            await pass_time(buyer_ledger, 21)
            lock_id = buyer_ledger.lock_id(spend)
            await buyer_ledger.wait_final((await buyer_ledger.refund(lock_id, submitter="buyer")).tx_id)
    assert side, "the buyer's cash was never spent elsewhere"
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert "cash lock refused by evm-b" in result.detail and "insufficient balance" in result.detail, result.detail
    assert changes(before, await snapshot(ledger_set), PAIR, result.steps) == UNCHANGED
    journal = ledger_set.orchestrator(journal_path).journal
    assert journal.swaps(unfinished=True) == []


async def test_locks_the_ledger_would_refuse_are_refused_before_anything_is_locked(ledger_set, cli_env, journal_path):
    # The cases: a 1 sat cash leg on btc (below dust), and the buyer's whole btc
    # balance (nothing left for the fee).  Both legs are checked before the first lock.
    whole = await ledger_set.ledgers["btc"].balance("buyer", "BTC")
    before = await snapshot(ledger_set)
    for cash, text in (
        ("btc:BTC:1", "below"),
        (f"btc:BTC:{whole}", f"holds {whole} sat on btc, needs {whole} sat plus a fee of up to"),
    ):
        refused = dvp(
            [
                "swap",
                "--security",
                "evm-a:BOND:1",
                "--cash",
                cash,
                "--holder-timeout",
                "100",
                "--counter-timeout",
                "60",
                "--fast-forward",
            ],
            cli_env,
        )
        one_line_error(refused, 3, text)
    assert await snapshot(ledger_set) == before
    nothing = dvp(["resume"], cli_env)
    assert nothing.returncode == 0 and "no unfinished swaps" in nothing.stdout, nothing.stderr
    ok = dvp(["swap", "--security", "evm-a:BOND:1", "--cash", "btc:BTC:100000"], cli_env)
    assert ok.returncode == 0 and "resuming" not in ok.stderr, ok.stderr


async def test_a_ledger_down_stops_only_the_swaps_on_it(ledger_set, run_dir, tmp_path, cli_env, journal_path):
    """`dvp resume` with btc unreachable settles the evm-a/evm-b swap and reports the
    evm-a/btc one in one line; once btc answers again, that one settles too."""
    ids = {}
    for pair in CROSS_PAIRS:  # evm-a/evm-b and evm-a/btc, each killed right after it started
        scenario = tmp_path / f"{pair.cash}.json"
        scenario.write_text(spec_for(pair).model_dump_json())
        crashed = dvp(["swap", str(scenario)], cli_env, crash_after=3)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        journal = Journal(journal_path)
        ids[pair.cash] = next(r.id for r in journal.swaps(unfinished=True) if r.id not in ids.values())
        journal.close()
    state = json.loads((run_dir / "state.json").read_text())
    state["ledgers"]["btc"]["config"]["rpc_url"] = f"http://127.0.0.1:{free_port()}"
    down = tmp_path / "btc-down"
    down.mkdir()
    (down / "state.json").write_text(json.dumps(state))
    partly = dvp(["resume"], {**cli_env, "DVP_RUN_DIR": str(down)})
    assert partly.returncode == 3, (partly.stdout, partly.stderr)
    errors_ = [line for line in partly.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1 and f"swap {ids['btc']}" in errors_[0] and "'btc' unreachable" in errors_[0], partly.stderr
    assert "Unclosed" not in partly.stderr
    journal = Journal(journal_path)
    assert journal.get(ids["evm-b"]).outcome == "settled"
    assert journal.get(ids["btc"]).outcome is None
    journal.close()
    again = dvp(["resume"], cli_env)
    assert again.returncode == 0, again.stderr
    journal = Journal(journal_path)
    assert journal.get(ids["btc"]).outcome == "settled"
    journal.close()
