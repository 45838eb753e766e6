"""Bench figures from a recorded (hand-written) journal timeline, checked against
values computed by hand."""

from __future__ import annotations

import asyncio
import time

import pytest
from rich.console import Console

from dvp.bench import metrics as m
from dvp.bench import parties as pm
from dvp.bench import render, runner
from dvp.bench.agents import delta
from dvp.bench.figures import AgentSwap
from dvp.journal import Step, SwapRecord
from dvp.models import SwapSpec
from dvp.orchestrator import Outcome, SwapResult
from dvp.report import swap_report, timeline
from dvp.views import steps_table

LEDGERS = {
    "evm-a": m.LedgerInfo("evm-a", "ethereum", "wei", clock="time", block_interval=1.0),
    "btc": m.LedgerInfo("btc", "utxo", "sat", clock="height", block_interval=1.0),
}
SPEC = {
    "kind": None,
    "trade": {
        "seller": "seller",
        "buyer": "buyer",
        "security": {"ledger": "evm-a", "asset": "BOND", "amount": 10},
        "cash": {"ledger": "btc", "asset": "BTC", "amount": 1000},
    },
    "plan": {"secret_holder": "seller", "holder_timeout": 600, "counter_timeout": 300},
}
DATA = {"terms_security": {"expiry": 5600}, "terms_cash": {"expiry": 400}}
EVM = {"fee_asset": None}
SAT = {"fee_asset": "BTC"}


def rows(swap_id: str, spec: list[tuple]) -> list[Step]:
    """(step, phase, ledger, wall, tx, height, ledger_time, detail); a result with a fee stands
    for the transaction's ``final`` row (fee, payer) followed by the step's ``result``."""
    expanded = []
    for step, phase, ledger, wall, tx, height, ltime, detail in spec:
        detail = detail or {}
        if phase == "result" and "fee" in detail:
            expanded.append((step, "final", ledger, wall, tx, height, ltime, {"purpose": step.split()[0], **detail}))
            detail = {k: v for k, v in detail.items() if k not in ("fee", "fee_asset", "payer")}
        expanded.append((step, phase, ledger, wall, tx, height, ltime, detail))
    return [
        Step(i + 1, swap_id, step, phase, ledger, tx, detail, wall, height, ltime)
        for i, (step, phase, ledger, wall, tx, height, ltime, detail) in enumerate(expanded)
    ]


HAPPY = rows(
    "h",
    [
        ("lock security", "intent", "evm-a", 1000.5, None, 10, 5000.0, None),
        ("lock security", "submitted", "evm-a", 1001.0, "0xaa", 10, 5001.0, None),
        ("lock security", "result", "evm-a", 1002.0, "0xaa", 11, 5002.0, {"fee": 300, "payer": "seller", **EVM}),
        ("audit security", "result", "evm-a", 1002.25, None, 11, 5002.25, {"confirmations": 1}),
        ("lock cash", "intent", "btc", 1002.5, None, 100, 9.0, None),
        ("lock cash", "submitted", "btc", 1002.75, "bb", 100, 9.0, None),
        ("lock cash", "result", "btc", 1003.5, "bb", 101, 10.0, {"fee": 200, "payer": "buyer", **SAT}),
        ("audit cash", "result", "btc", 1003.75, None, 101, 10.0, {}),
        ("claim cash", "intent", "btc", 1004.0, None, 101, 10.0, None),
        ("claim cash", "submitted", "btc", 1004.5, "cc", 101, 10.0, None),
        ("claim cash", "result", "btc", 1005.0, "cc", 102, 11.0, {"fee": 150, "payer": "seller", **SAT}),
        ("extract secret", "result", "btc", 1005.25, None, 102, 11.0, {}),
        ("claim security", "intent", "evm-a", 1005.5, None, 12, 5005.5, None),
        ("claim security", "submitted", "evm-a", 1005.75, "0xdd", 12, 5005.5, None),
        ("claim security", "result", "evm-a", 1006.5, "0xdd", 13, 5006.0, {"fee": 100, "payer": "buyer", **EVM}),
    ],
)

REFUND = rows(
    "r",
    [
        ("lock security", "intent", "evm-a", 2000.0, None, 20, 6000.0, None),
        ("lock security", "submitted", "evm-a", 2000.5, "0x1", 20, 6000.0, None),
        ("lock security", "result", "evm-a", 2001.0, "0x1", 21, 6001.0, {"fee": 300, "payer": "seller", **EVM}),
        ("audit security", "result", "evm-a", 2001.5, None, 21, 6001.0, {}),
        ("lock cash", "intent", "btc", 2001.5, None, 200, 1.0, None),
        ("lock cash", "submitted", "btc", 2002.0, "b1", 200, 1.0, None),
        ("lock cash", "result", "btc", 2003.0, "b1", 201, 2.0, {"fee": 200, "payer": "buyer", **SAT}),
        ("audit cash", "result", "btc", 2003.5, None, 201, 2.0, {}),
        ("claim cash", "skipped", "btc", 2003.75, None, 201, 2.0, {"reason": "inside the safety margin"}),
        ("refund cash", "intent", "btc", 2004.0, None, 300, 3.0, None),
        ("refund cash", "submitted", "btc", 2004.5, "b2", 300, 3.0, None),
        ("refund cash", "result", "btc", 2005.0, "b2", 301, 4.0, {"fee": 180, "payer": "buyer", **SAT}),
        ("refund security", "intent", "evm-a", 2005.5, None, 30, 7000.0, None),
        ("refund security", "submitted", "evm-a", 2006.0, "0x2", 30, 7000.0, None),
        ("refund security", "result", "evm-a", 2007.0, "0x2", 31, 7001.0, {"fee": 250, "payer": "seller", **EVM}),
    ],
)

ATOMIC_SPEC = {**SPEC, "trade": {**SPEC["trade"], "cash": {"ledger": "evm-a", "asset": "EUR", "amount": 500}}}
ATOMIC = rows(
    "a",
    [
        ("propose", "intent", "evm-a", 3000.2, None, 40, 8000.0, None),
        ("propose", "submitted", "evm-a", 3000.7, "0xp", 40, 8000.0, None),
        ("propose", "result", "evm-a", 3001.2, "0xp", 41, 8001.0, {"fee": 500, "payer": "seller", **EVM}),
        ("settle", "intent", "evm-a", 3001.4, None, 41, 8001.0, None),
        ("settle", "submitted", "evm-a", 3001.6, "0xs", 41, 8001.0, None),
        ("settle", "result", "evm-a", 3002.4, "0xs", 42, 8002.0, {"fee": 700, "payer": "buyer", **EVM}),
    ],
)


def record(swap_id: str, kind: str, spec: dict, data: dict, outcome: str | None, created: float) -> SwapRecord:
    return SwapRecord(swap_id, kind, spec, data, outcome, None, created, created)


def happy():
    return m.swap_metrics(record("h", "htlc", SPEC, DATA, "settled", 1000.0), HAPPY, LEDGERS)


def refund():
    return m.swap_metrics(record("r", "htlc", SPEC, DATA, "refunded", 2000.0), REFUND, LEDGERS)


def atomic():
    return m.swap_metrics(record("a", "atomic", ATOMIC_SPEC, {}, "settled", 3000.0), ATOMIC, LEDGERS)


def test_step_times_and_end_to_end_latency():
    f = happy()
    got = [(e.step, e.phase, e.seconds, e.gap_before) for e in f.steps]
    assert got == [
        ("lock security", "lock", 1.5, 0.5),
        ("audit security", "audit", 0.25, 0.0),
        ("lock cash", "counter-lock", 1.0, 0.25),
        ("audit cash", "counter-audit", 0.25, 0.0),
        ("claim cash", "claim", 1.0, 0.25),
        ("extract secret", "extract secret", 0.25, 0.0),
        ("claim security", "second claim", 1.0, 0.25),
    ]
    assert f.total_seconds == 6.5
    assert f.steps_seconds == 5.25
    assert f.orchestration_seconds == 1.25
    assert f.total_seconds == pytest.approx(f.steps_seconds + f.orchestration_seconds)
    assert f.started == 1000.0 and f.finished == 1006.5
    assert [e.start for e in f.steps] == [0.5, 2.0, 2.5, 3.5, 4.0, 5.0, 5.5]


def test_each_finality_wait_and_submission():
    f = happy()
    tx = {e.step: (e.submit_seconds, e.finality_seconds) for e in f.steps if e.tx_id}
    assert tx == {
        "lock security": (0.5, 1.0),
        "lock cash": (0.25, 0.75),
        "claim cash": (0.5, 0.5),
        "claim security": (0.25, 0.75),
    }
    assert f.finality_seconds == 3.0
    audit = f.steps[1]
    assert audit.submit_seconds is None and audit.finality_seconds is None


def test_transactions_and_fees_with_explicit_units():
    f = happy()
    assert f.transactions == 4
    assert f.transactions_by_ledger == {"evm-a": 2, "btc": 2}
    assert f.dump()["fees"] == {"evm-a": {"fee": 400, "unit": "wei"}, "btc": {"fee": 350, "unit": "sat"}}


def test_process_steps_and_messages_per_party():
    assert happy().dump()["parties"] == {
        # lock security (tx + notice), audit cash, claim cash (tx)
        "seller": {"steps": 3, "transactions": 2, "messages": 3},
        # audit security, lock cash (tx + notice), extract secret, claim security (tx)
        "buyer": {"steps": 4, "transactions": 2, "messages": 3},
    }
    assert m.actor("extract secret", SwapSpec.model_validate({**SPEC, "plan": {"secret_holder": "buyer"}})) == "seller"
    assert m.actor("refund cash", SwapSpec.model_validate(SPEC)) == "buyer"


def test_liquidity_locked_per_leg():
    liq = happy().dump()["liquidity"]
    assert liq["security"]["seconds"] == 4.5 and liq["security"]["amount_seconds"] == 45.0
    assert liq["cash"]["seconds"] == 1.5 and liq["cash"]["amount_seconds"] == 1500.0
    assert liq["security"]["ended_by"] == "claim"
    # Both legs valued at the trade's price (1000 BTC base units): one currency x seconds.
    assert liq["security"]["value_seconds"] == 4500.0 and liq["cash"]["value_seconds"] == 1500.0
    assert liq["security"]["value_asset"] == liq["cash"]["value_asset"] == "BTC"


def test_liquidity_reads_in_the_cash_currency_in_report_and_chart():
    swap = happy()
    pair = {"id": "evm-a/btc", "cash": "btc", "swaps": [swap.dump()], "summary": m.summarize([swap]).dump()}
    run = {"assets": {"btc/BTC": {"kind": "cash", "decimals": 8}}, "pairs": [pair]}
    legs = {v["leg"]: v for v in render.liquidity_values(run, pair)}
    assert legs["security"]["currency"] == legs["cash"]["currency"] == "BTC"
    assert legs["security"]["value_seconds"] == pytest.approx(4500 / 1e8)
    # A run saved before the value was stored: valued from each swap's cash amount.
    for leg in pair["summary"]["liquidity"].values():
        del leg["value_seconds"], leg["value_asset"]
    again = {v["leg"]: v for v in render.liquidity_values(run, pair)}
    assert again["security"]["value_seconds"] == pytest.approx(4500 / 1e8)


def test_fees_in_the_unit_a_reader_counts():
    assert render.fee_text(311_167_975_585_330, "wei", "gwei", 10**9) == "311,168 gwei"
    assert render.fee_text(933, "sat") == "933 sat"
    assert render.fee_text(0.5e9, "wei", "gwei", 10**9) == "0.5 gwei"


def _platform_run(pairs: list, **single: str) -> dict:
    ledgers = {"evm-a": {"kind": "ethereum", "fee_unit": "wei"}, "btc": {"kind": "utxo", "fee_unit": "sat"}}
    for name, why in single.items():
        ledgers[name.replace("_", "-")]["single_ledger_dvp"] = why
    base = {"confirmation": {"p50": 1.0}, "throughput": {"tps": 10.0}}
    return {"ledgers": ledgers, "baselines": {"evm-a": base, "btc": base}, "pairs": pairs}


def test_a_platform_without_a_single_ledger_figure_says_why():
    rows = {
        r["platform"]: r
        for r in runner.platforms_table(
            _platform_run([], evm_a=runner.SINGLE_LEDGER_POSSIBLE, btc="not possible on btc (no security asset)")
        )
    }
    assert rows["ethereum"]["note"] == "single-ledger DvP: not run (no single-ledger pair in --pairs)"
    assert rows["utxo"]["note"] == "single-ledger DvP: not possible on btc (no security asset)"
    unsupported = runner.platforms_table(_platform_run([], evm_a="not supported on this platform"))
    assert unsupported[0]["note"] == "single-ledger DvP: not supported on this platform"
    assert runner.platforms_table(_platform_run([]))[0]["note"] == "single-ledger DvP: not run"  # an older results file


def test_principal_risk_window_against_the_second_claim():
    r = happy().dump()["principal_risk"]
    # reveal: claim cash submitted at 1004.5; nearest evm-a clock row: 1005.5 at ledger time 5005.5
    assert r["holder_leg"] == "security" and r["ledger"] == "evm-a"
    assert r["window_seconds"] == pytest.approx(5600 - 5005.5 + 1.0)
    assert r["second_claim_seconds"] == 2.0
    assert r["margin_seconds"] == pytest.approx(593.5)
    assert r["used_fraction"] == pytest.approx(2.0 / 595.5)


def test_principal_risk_on_a_height_clock():
    """Buyer holds the secret: its cash leg on btc expires by height."""
    spec = {**SPEC, "plan": {"secret_holder": "buyer"}}
    steps = rows(
        "b",
        [
            ("lock cash", "result", "btc", 10.0, "t1", 100, 0.0, {"fee": 1, **SAT}),
            ("claim security", "submitted", "evm-a", 11.0, "t2", 5, 0.0, None),
            ("claim cash", "intent", "btc", 12.0, None, 104, 0.0, None),
            ("claim cash", "result", "btc", 13.0, "t3", 105, 0.0, {"fee": 1, **SAT}),
        ],
    )
    r = m.principal_risk(record("b", "htlc", spec, {"terms_cash": {"expiry": 160}}, "settled", 0.0), steps, LEDGERS)
    # nearest btc row to 11.0 is either 10.0 or 12.0 (equal distance, first wins): height 100 at 10.0
    assert r is not None
    assert r.window_seconds == pytest.approx((160 - 100) * 1.0 - 1.0)
    assert r.second_claim_seconds == 2.0


def test_a_retried_step_counts_its_failed_attempt_as_submit_time():
    retried = rows(
        "t",
        [
            ("lock security", "intent", "evm-a", 10.0, None, 1, 0.0, None),
            ("lock security", "submitted", "evm-a", 10.5, "0x1", 1, 0.0, None),  # reverted; resumed
            ("lock security", "intent", "evm-a", 12.0, None, 3, 0.0, None),
            ("lock security", "submitted", "evm-a", 12.25, "0x2", 3, 0.0, None),
            ("lock security", "result", "evm-a", 13.0, "0x2", 4, 0.0, {"fee": 1, "payer": "seller", **EVM}),
        ],
    )
    [step] = m.swap_metrics(record("t", "htlc", SPEC, DATA, None, 10.0), retried, LEDGERS).steps
    assert step.seconds == 3.0 and step.submit_seconds == 2.25 and step.finality_seconds == 0.75


def test_free_option_of_the_party_locking_second():
    # first lock final at 1002.0, the buyer's own lock final at 1003.5
    assert happy().dump()["free_option"] == {"party": "buyer", "seconds": 1.5, "exercised": False}
    walked = rows(
        "w",
        [
            ("lock security", "result", "evm-a", 50.0, "0x1", 1, 0.0, {}),
            ("refund security", "result", "evm-a", 58.0, "0x2", 9, 0.0, {}),
        ],
    )
    walked_away = m.free_option("htlc", SwapSpec.model_validate(SPEC), walked)
    assert walked_away is not None and walked_away.dump() == {"party": "buyer", "seconds": 8.0, "exercised": True}
    buyer_first = SwapSpec.model_validate({**SPEC, "plan": {"secret_holder": "seller", "first_locker": "buyer"}})
    option = m.free_option("htlc", buyer_first, HAPPY)
    assert option is not None and option.party == "seller"
    assert atomic().free_option is None


def test_refund_path_durations():
    f = refund().dump()
    assert f["outcome"] == "refunded"
    assert f["refund"] == {"legs": {"cash": 2.0, "security": 6.0}, "unwind_seconds": 3.5}
    assert f["liquidity"]["security"]["amount_seconds"] == 60.0
    assert f["liquidity"]["cash"]["amount_seconds"] == 2000.0
    assert f["liquidity"]["cash"]["ended_by"] == "refund"
    assert f["principal_risk"] is None
    assert f["total_seconds"] == 7.0 and f["steps_seconds"] == 6.0 and f["orchestration_seconds"] == 1.0
    assert f["fees"] == {"evm-a": {"fee": 550, "unit": "wei"}, "btc": {"fee": 380, "unit": "sat"}}


def test_single_ledger_dvp():
    f = atomic().dump()
    assert [(e["phase"], e["seconds"]) for e in f["steps"]] == [("propose", 1.0), ("settle", pytest.approx(1.0))]
    assert f["total_seconds"] == pytest.approx(2.4)
    assert f["orchestration_seconds"] == pytest.approx(0.4)
    assert f["transactions"] == 2 and f["fees"] == {"evm-a": {"fee": 1200, "unit": "wei"}}
    assert f["parties"] == {
        "seller": {"steps": 1, "transactions": 1, "messages": 2},
        "buyer": {"steps": 1, "transactions": 1, "messages": 1},
    }
    assert f["liquidity"] == {} and f["principal_risk"] is None and f["refund"] is None


def test_percentiles_and_stats():
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert m.stats([3, None, 1, 2]) == {"n": 3, "mean": 2.0, "p50": 2.0, "p95": pytest.approx(2.9), "min": 1, "max": 3}
    assert m.stats([None]) is None


def test_summary_over_swaps():
    summary = m.summarize([happy(), refund()])
    s = summary.dump()
    assert s["swaps"] == 2 and s["outcomes"] == {"settled": 1, "refunded": 1}
    assert s["latency"]["mean"] == 6.75 and s["latency"]["max"] == 7.0
    assert s["transactions_per_swap"] == 4.0
    assert s["transactions_per_swap_by_ledger"] == {"evm-a": 2.0, "btc": 2.0}
    assert s["fees"] == {"evm-a": {"fee_per_swap": 475.0, "unit": "wei"}, "btc": {"fee_per_swap": 365.0, "unit": "sat"}}
    assert s["liquidity"]["security"]["amount_seconds"]["mean"] == 52.5
    assert s["phases"]["lock"]["seconds"]["mean"] == 1.25
    assert s["phases"]["lock"]["finality_seconds"]["mean"] == 0.75
    assert s["principal_risk"]["second_claim_seconds"]["n"] == 1
    assert s["refund"]["unwind_seconds"]["mean"] == 3.5
    assert s["elapsed_seconds"] == 1007.0
    assert m.throughput(summary) == pytest.approx(2 / 1007.0)


def test_overhead_and_throughput_ratios():
    s = m.summarize([happy()])
    o = m.overhead_ratio(s, {"evm-a": 1.0, "btc": 0.5})
    assert o is not None
    assert o.confirmations_seconds == 3.0  # 2 tx x 1.0 s + 2 tx x 0.5 s
    assert o.ratio == pytest.approx(6.5 / 3.0) and o.overhead == pytest.approx(6.5 / 3.0 - 1)
    t = m.throughput_ratio(s, {"evm-a": 10.0, "btc": 4.0})
    assert t is not None
    assert t.bounds == {"evm-a": 5.0, "btc": 2.0} and t.limited_by == "btc"
    assert t.swaps_per_second == pytest.approx(1 / 6.5)
    assert t.ratio == pytest.approx(1 / 6.5 / 2.0)


def test_rss_trend_flat_and_growing():
    flat = m.rss_trend([(1, 100_000), (2, 100_100), (3, 100_200), (4, 100_300)])
    assert flat is not None and flat.slope_kib_per_swap == pytest.approx(100.0) and flat.flat
    growing = m.rss_trend([(i, 100_000 + 10_000 * i) for i in range(1, 11)])
    assert growing is not None and growing.slope_kib_per_swap == pytest.approx(10_000.0)
    assert growing.growth_kib == pytest.approx(40_000.0) and not growing.flat
    assert m.rss_trend([(1, 5)]) is None


def test_rss_trend_judges_each_pair_of_a_run_on_its_own():
    """Seven pairs of 200 swaps whose RSS steps up by 6 MiB as each pair starts and stays flat
    while its swaps finish (the k100 run of record: 38 KiB/swap "growing" over the whole run) are
    flat pair by pair; a pair whose swaps leave 200 KiB each behind is not, and is the one reported."""
    steps = [(n, 146_000 + 6_000 * ((n - 1) // 200)) for n in range(1, 1401)]
    ends = list(range(200, 1401, 200))
    whole = m.rss_trend(steps)
    assert whole is not None and not whole.flat
    by_pair = m.rss_trend(steps, segments=ends)
    assert by_pair is not None and by_pair.flat and by_pair.slope_kib_per_swap == 0.0
    assert (by_pair.first_kib, by_pair.last_kib) == (146_000, 182_000)
    leaking = [(n, kib + (200 * (n - 1000) if 1000 < n <= 1200 else 0)) for n, kib in steps]
    worst = m.rss_trend(leaking, segments=ends)
    assert worst is not None and not worst.flat and round(worst.slope_kib_per_swap) == 200
    assert m.rss_steps(steps, ends) == 6 * 6_000  # what the judgement pair by pair leaves out is shown
    assert m.rss_steps(steps, [1400]) is None


# -- two parties' agents, each with its own journal (dvp.bench.parties) ------------------------

SELLER_ROWS = rows(
    "x",
    [
        ("lock security", "intent", "evm-a", 1000.5, None, 10, 5000.0, None),
        ("lock security", "submitted", "evm-a", 1001.0, "0xaa", 10, 5001.0, None),
        ("lock security", "result", "evm-a", 1002.0, "0xaa", 11, 5002.0, {"fee": 300, "payer": "seller", **EVM}),
        ("audit cash", "result", "btc", 1003.75, None, 101, 10.0, {}),
        ("claim cash", "intent", "btc", 1004.0, None, 101, 10.0, None),
        ("claim cash", "submitted", "btc", 1004.5, "cc", 101, 10.0, None),
        ("claim cash", "result", "btc", 1005.0, "cc", 102, 11.0, {"fee": 150, "payer": "seller", **SAT}),
    ],
)
BUYER_ROWS = rows(
    "x",
    [
        ("audit security", "result", "evm-a", 1002.25, None, 11, 5002.25, {"confirmations": 1}),
        ("lock cash", "intent", "btc", 1002.5, None, 100, 9.0, None),
        ("lock cash", "submitted", "btc", 1002.75, "bb", 100, 9.0, None),
        ("lock cash", "result", "btc", 1003.5, "bb", 101, 10.0, {"fee": 200, "payer": "buyer", **SAT}),
        ("extract secret", "result", "btc", 1005.25, None, 102, 11.0, {}),
        ("claim security", "intent", "evm-a", 1005.5, None, 12, 5005.5, None),
        ("claim security", "submitted", "evm-a", 1005.75, "0xdd", 12, 5005.5, None),
        ("claim security", "result", "evm-a", 1006.5, "0xdd", 13, 5006.0, {"fee": 100, "payer": "buyer", **EVM}),
    ],
)


def msgs(party_out: list[str], party_in: list[str], peer: str = "buyer") -> list[dict]:
    return [
        {"peer": peer, "direction": "out", "kind": k, "seq": i + 1, "wall": 1000.0} for i, k in enumerate(party_out)
    ] + [{"peer": peer, "direction": "in", "kind": k, "seq": i + 1, "wall": 1000.0} for i, k in enumerate(party_in)]


# The seller proposes (a reply: accept), notices its lock and its claim (replies: ack); the
# buyer's two notices reach it as requests it acks.
SELLER_MSGS = msgs(["propose", "locked", "claimed", "ack", "ack"], ["accept", "ack", "ack", "locked", "claimed"])
BUYER_MSGS = msgs(
    ["accept", "ack", "ack", "locked", "claimed"], ["propose", "locked", "claimed", "ack", "ack"], "seller"
)


def agent_swap():
    seller = pm.PartyJournal("seller", 1000.0, 1007.0, "settled", SELLER_ROWS, SELLER_MSGS)
    buyer = pm.PartyJournal("buyer", 1000.125, 1006.75, "settled", BUYER_ROWS, BUYER_MSGS)
    return pm.agent_swap("x", SwapSpec.model_validate(SPEC), [seller, buyer], LEDGERS).dump()


def test_per_party_latency_steps_and_fees_from_each_journal():
    s = agent_swap()
    seller, buyer = s["parties"]["seller"], s["parties"]["buyer"]
    assert s["proposed"] == 1000.0  # the proposer's record
    assert s["last_step_seconds"] == 6.5  # the buyer's claim, the swap's last step
    assert seller["latency_seconds"] == 7.0 and buyer["latency_seconds"] == 6.75
    assert (seller["steps"], buyer["steps"]) == (3, 4)
    assert (seller["transactions"], buyer["transactions"]) == (2, 2)
    assert seller["fees"] == {"evm-a": {"fee": 300, "unit": "wei"}, "btc": {"fee": 150, "unit": "sat"}}
    assert buyer["fees"] == {"btc": {"fee": 200, "unit": "sat"}, "evm-a": {"fee": 100, "unit": "wei"}}


def test_locked_time_runs_from_own_lock_to_the_counterpartys_claim():
    s = agent_swap()
    # The seller's security lock (final at 1002.0) is claimed in the buyer's journal at 1006.5.
    assert s["parties"]["seller"]["locked"] == {
        "security": {"ledger": "evm-a", "amount": 10, "seconds": 4.5, "amount_seconds": 45.0, "ended_by": "claim"}
    }
    # The buyer's cash lock (1003.5) is claimed by the seller at 1005.0.
    assert s["parties"]["buyer"]["locked"]["cash"]["seconds"] == 1.5
    assert s["parties"]["buyer"]["locked_seconds"] == 1.5


def test_locked_time_of_a_refunded_lock_and_a_swap_unfinished_on_one_side():
    refunded = rows(
        "r",
        [
            ("lock security", "result", "evm-a", 2001.0, "0x1", 21, 6001.0, {"fee": 300, "payer": "seller", **EVM}),
            ("refund security", "result", "evm-a", 2007.0, "0x2", 31, 7001.0, {"fee": 250, "payer": "seller", **EVM}),
        ],
    )
    seller = pm.PartyJournal("seller", 2000.0, 2008.0, "refunded", refunded, [])
    buyer = pm.PartyJournal("buyer", 2000.5, None, None, [], [])
    s = pm.agent_swap("r", SwapSpec.model_validate(SPEC), [seller, buyer], LEDGERS).dump()
    assert s["parties"]["seller"]["locked"]["security"]["seconds"] == 6.0
    assert s["parties"]["seller"]["locked"]["security"]["ended_by"] == "refund"
    assert s["parties"]["seller"]["fees"] == {"evm-a": {"fee": 550, "unit": "wei"}}
    assert s["parties"]["buyer"]["latency_seconds"] is None and s["parties"]["buyer"]["locked_seconds"] is None


def test_a_transaction_journaled_final_twice_is_paid_once():
    again = [*SELLER_ROWS, SELLER_ROWS[2]]  # the lock's final row again (a resume)
    assert SELLER_ROWS[2].phase == "final"
    fig = pm.party_swap(
        pm.PartyJournal("seller", 1000.0, 1007.0, "settled", again, []),
        pm.PartyJournal("buyer", None, None, None),
        SwapSpec.model_validate(SPEC),
        1000.0,
        LEDGERS,
    )
    assert fig.transactions == 2 and fig.fees["evm-a"].fee == 300


def test_messages_per_party_are_the_journals_rows_by_direction_and_kind():
    s = agent_swap()
    seller = s["parties"]["seller"]
    assert (seller["messages_sent"], seller["messages_received"]) == (5, 5)
    assert seller["messages_by_kind"]["propose"] == {"sent": 1, "received": 0}
    assert seller["messages_by_kind"]["ack"] == {"sent": 2, "received": 2}
    assert s["parties"]["buyer"]["messages_by_kind"]["accept"] == {"sent": 1, "received": 0}


def test_pair_summary_per_party_and_the_channel_check():
    summary = pm.summarize_parties([AgentSwap.model_validate(agent_swap()) for _ in range(2)])
    seller = summary["seller"].dump()
    assert seller["swaps"] == 2 and seller["outcomes"] == {"settled": 2}
    assert seller["latency"]["mean"] == 7.0 and seller["steps_per_swap"] == 3.0
    assert seller["fees"]["btc"] == {"fee": 300, "unit": "sat", "fee_per_swap": 150.0}
    assert (seller["messages_sent"], seller["messages_received"], seller["messages_per_swap"]) == (10, 10, 10.0)
    counted = {"seller": {"sent": 10, "received": 10}, "buyer": {"sent": 10, "received": 10}}
    assert pm.check_channel(summary, counted).dump() == {"checked": True, "matches": True, "mismatches": []}
    counted["buyer"] = {"sent": 9, "received": 10}
    check = pm.check_channel(summary, counted)
    assert not check.matches and check.mismatches == ["buyer sent: journal 10, channel 9"]
    assert pm.check_channel(summary, None).dump() == {"checked": False, "matches": None, "mismatches": []}


def test_channel_counter_deltas_per_pair():
    before = {"seller": {"sent": 4, "received": 3}}
    assert delta({"seller": {"sent": 10, "received": 9}}, before) == {"seller": {"sent": 6, "received": 6}}
    assert delta(None, before) is None and delta(before, None) is None


def test_a_message_the_agent_refused_is_received_by_the_channel_but_not_journaled():
    seller = pm.PartyJournal("seller", 1000.0, 1007.0, "settled", SELLER_ROWS, SELLER_MSGS)
    buyer = pm.PartyJournal("buyer", 1000.125, 1006.75, "settled", BUYER_ROWS, BUYER_MSGS[:-1], refused=1)
    s = pm.agent_swap("x", SwapSpec.model_validate(SPEC), [seller, buyer], LEDGERS)
    assert (s.parties["buyer"].messages_received, s.parties["buyer"].messages_refused) == (4, 1)
    summary = pm.summarize_parties([s])
    assert summary["buyer"].messages_refused == 1
    counted = {"seller": {"sent": 5, "received": 5}, "buyer": {"sent": 5, "received": 5}}
    assert pm.check_channel(summary, counted).matches


def test_one_process_swaps_per_second_is_one_figure_in_the_agents_rows_and_targets():
    summary = pm.summarize_parties([AgentSwap.model_validate(agent_swap())])
    agents = {
        "summary": {party: s.dump() for party, s in summary.items()},
        "stuck": [],
        "channel_counts": None,
        "channel_check": {"checked": False, "matches": None, "mismatches": []},
        "swaps_per_second": 1.9,
        "last_step": {"mean": 6.5},
    }
    pair = {"id": "p", "swaps": [{}] * 4, "batch_seconds": 2.0, "summary": {"latency": {"mean": 6.5}}, "agents": agents}
    assert m.one_process_rate(pair) == 2.0  # 4 swaps in 2 s
    run = {"pairs": [pair], "ledgers": {}}
    assert {r["one process swaps/s"] for r in render.agent_rows(run)} == {"2.00"}
    rate = next(t for t in runner.agent_targets(pair, agents) if t["target"].startswith("agents: swaps/s"))
    assert rate["value"] == 0.95 and rate["why"] == "1.90 swaps/s against 2.00 in one process"
    untimed = {**pair, "batch_seconds": None}  # a run saved without the batch's seconds
    assert m.one_process_rate(untimed) is None
    assert {r["one process swaps/s"] for r in render.agent_rows({**run, "pairs": [untimed]})} == {"-"}
    assert not any(t["target"].startswith("agents: swaps/s") for t in runner.agent_targets(untimed, agents))


def test_a_step_that_reverted_has_its_row_and_its_fee():
    """A claim that lost the race is mined and reverts (EVM): the step fails without a result,
    yet its gas was paid.  Its row ends at its transaction's final row, with that fee and the
    rule it broke, so the steps' fees add up to the swap's (before, the row was missing); a step
    retried after a revert counts both attempts' fees in its one row."""
    lost = {"fee": 40, "payer": "buyer", "reverted": "NotLocked"}
    before = [(r.step, r.phase, r.ledger, r.wall, r.tx_id, r.ledger_height, r.ledger_time, r.detail) for r in HAPPY]
    raced = rows(
        "c",
        [
            *[r for r in before if r[0] != "claim security"],
            ("claim security", "intent", "evm-a", 1005.5, None, 12, 5005.5, None),
            ("claim security", "submitted", "evm-a", 1005.75, "0xdd", 12, 5005.5, None),
            ("claim security", "final", "evm-a", 1006.5, "0xdd", 13, 5006.0, lost),
            ("claim security", "skipped", "evm-a", 1006.75, None, 13, 5006.0, {"reason": "too late"}),
        ],
    )
    fig = m.swap_metrics(record("c", "htlc", SPEC, DATA, "principal loss", 1000.0), raced, LEDGERS)
    last = fig.steps[-1]
    assert (last.step, last.tx_id, last.fee, last.transactions) == ("claim security", "0xdd", 40, 1)
    assert (last.reverted, last.seconds, last.submit_seconds, last.finality_seconds) == ("NotLocked", 1.0, 0.25, 0.75)
    assert fig.total_seconds == 6.5 and not any(s.reverted for s in fig.steps[:-1])
    for ledger, fee in fig.fees.items():  # the steps' fees are the swap's
        assert sum(s.fee or 0 for s in fig.steps if s.ledger == ledger) == fee.fee, ledger
    assert fig.transactions == 4 and fig.parties["buyer"].transactions == 2
    assert "reverted" not in fig.steps[0].dump()  # results.json as before for the other steps
    result = SwapResult("c", "htlc", Outcome.PRINCIPAL_LOSS, "", SwapSpec.model_validate(SPEC), {}, raced)
    steps = swap_report(result)["steps"]  # `dvp swap --json`, `dvp history --json`
    assert steps[-1]["reverted"] == "NotLocked" and steps[-1]["fee"] == 40 and steps[0]["reverted"] is None
    console = Console(width=200, record=True)
    console.print(steps_table(result))
    assert "claim security (reverted: NotLocked)" in console.export_text()
    paused = {"fee": 7, "payer": "seller", "reverted": "Paused"}
    retried = rows(
        "t",
        [
            ("lock security", "intent", "evm-a", 10.0, None, 1, 0.0, None),
            ("lock security", "submitted", "evm-a", 10.5, "0x1", 1, 0.0, None),
            ("lock security", "final", "evm-a", 11.0, "0x1", 2, 0.0, paused),
            ("lock security", "intent", "evm-a", 12.0, None, 3, 0.0, None),
            ("lock security", "submitted", "evm-a", 12.25, "0x2", 3, 0.0, None),
            ("lock security", "result", "evm-a", 13.0, "0x2", 4, 0.0, {"fee": 1, "payer": "seller", **EVM}),
        ],
    )
    [step] = timeline(retried)
    assert (step.tx_id, step.fee, step.transactions, step.reverted, step.seconds) == ("0x2", 8, 2, None, 3.0)


def test_a_reverted_step_keeps_its_row_when_the_resume_sends_nothing():
    """After a claim reverted, a resume journals a new intent and its send fails before anything
    is broadcast (a pre-flight revert): the step still ends at its reverted transaction's final
    row, with that fee and rule (before, the intent was its last row, so the step had no row and
    its 40 wei were missing from the steps: only the lock's row came out)."""
    lost = {"fee": 40, "payer": "buyer", "reverted": "NotLocked"}
    journal = rows(
        "p",
        [
            ("lock_a", "intent", "evm-a", 1.0, None, 1, 0.0, None),
            ("lock_a", "submitted", "evm-a", 1.5, "0x1", 1, 0.0, None),
            ("lock_a", "result", "evm-a", 2.0, "0x1", 2, 0.0, {"fee": 10, "payer": "seller", **EVM}),
            ("claim", "intent", "evm-a", 3.0, None, 2, 0.0, None),
            ("claim", "submitted", "evm-a", 3.5, "0x2", 2, 0.0, None),
            ("claim", "final", "evm-a", 4.0, "0x2", 3, 0.0, lost),
            ("claim", "intent", "evm-a", 6.0, None, 3, 0.0, None),  # the resume's; its send failed
        ],
    )
    steps = timeline(journal)
    assert [(s.step, s.fee, s.reverted) for s in steps] == [("lock_a", 10, None), ("claim", 40, "NotLocked")]
    claim = steps[-1]
    assert (claim.tx_id, claim.transactions, claim.started, claim.finished) == ("0x2", 1, 3.0, 4.0)


async def test_raw_throughput_stops_the_issues_in_flight_when_one_fails():
    """The generic raw baseline: the third of ten issues (five in flight) is refused; the error is
    the refusal itself (a one-line error, not a group) and the issues still waiting are cancelled
    at once, not left sending on a ledger whose client the error path closes (gather left them)."""
    from dvp import errors
    from dvp.bench.runner import raw_throughput

    class Ledger:
        sent = cancelled = 0

        def require(self, _kind):
            return self

        async def issue(self, _asset, _party, _amount):
            self.sent += 1
            if self.sent == 3:
                raise errors.SubmitError("issue EUR: the node rejected the transaction")
            return type("Sub", (), {"tx_id": str(self.sent)})()

        async def wait_final(self, _tx_id):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    ledger = Ledger()
    started = time.monotonic()
    with pytest.raises(errors.SubmitError, match="rejected"):
        await raw_throughput(ledger, "EUR", 10, 5, 30)
    assert time.monotonic() - started < 1
    assert ledger.sent < 10 and ledger.cancelled == ledger.sent - 1  # every issue sent and waiting
