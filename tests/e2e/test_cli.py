"""The command line against real ledgers: lifecycle, and bad input refused in one line
with a non-zero exit and nothing locked."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from dvp import topology
from dvp.demo import demo_swaps
from dvp.journal import Journal
from dvp.runtime.processes import alive

from ..cli_helpers import DVP, dvp, one_line_error
from ..htlc_helpers import locked
from ..scenarios import snapshot
from ..testbed import CROSS_PAIRS, ELEMENTS_MISSING, FABRIC_MISSING, IN_CI, binary_missing

PAIR = CROSS_PAIRS[0]


BAD_SWAPS = [
    (
        ["--security", f"{PAIR.security}:BOND:0", "--cash", f"{PAIR.cash}:EUR:5"],
        2,
        "trade.security.amount: Input should be greater than 0",
    ),
    (
        ["--security", f"{PAIR.security}:BOND:3", "--cash", f"{PAIR.cash}:EUR:-5"],
        2,
        "trade.cash.amount: Input should be greater than 0",
    ),
    (
        ["--security", "nowhere:BOND:3", "--cash", f"{PAIR.cash}:EUR:5"],
        2,
        "trade.security.ledger: unknown ledger 'nowhere'",
    ),
    (
        ["--security", f"{PAIR.security}:GOLD:3", "--cash", f"{PAIR.cash}:EUR:5"],
        2,
        "trade.security.asset: unknown asset 'GOLD'",
    ),
    (
        ["--security", f"{PAIR.security}:EUR:3", "--cash", f"{PAIR.cash}:EUR:5"],
        2,
        "trade.security.asset: 'EUR' is cash, not security",
    ),
    (
        ["--security", f"{PAIR.security}:BOND:x", "--cash", f"{PAIR.cash}:EUR:5"],
        2,
        "security.amount: expected an integer",
    ),
    (
        [
            "--security",
            f"{PAIR.security}:BOND:3",
            "--cash",
            f"{PAIR.cash}:EUR:5",
            "--holder-timeout",
            "40",
            "--counter-timeout",
            "35",
        ],
        5,
        "plan.holder_timeout: 40s leaves a 5s gap",
    ),
    (
        ["--security", f"{PAIR.security}:BOND:3", "--cash", f"{PAIR.cash}:EUR:5", "--kind", "atomic"],
        2,
        "kind: atomic DvP needs both legs on one ledger",
    ),
    # The ledger would refuse the lock (LockRefused): a ledger error, exit 3, not a refused plan.
    (["--security", f"{PAIR.security}:BOND:3", "--cash", f"{PAIR.cash}:EUR:{10**15}"], 3, "holds"),
]


@pytest.mark.parametrize(("args", "code", "text"), BAD_SWAPS, ids=[b[2][:40] for b in BAD_SWAPS])
async def test_bad_swap_input_is_refused_and_nothing_is_locked(ledger_set, cli_env, journal_path, args, code, text):
    before = await snapshot(ledger_set)
    one_line_error(dvp(["swap", *args], cli_env), code, text)
    assert await snapshot(ledger_set) == before
    if journal_path.exists():
        assert Journal(journal_path).swaps() == []


def test_bad_scenario_file_names_the_field(tmp_path, cli_env):
    path = tmp_path / "s.yaml"
    path.write_text(
        "trade:\n  security: {ledger: evm-a, asset: BOND, amount: 1}\n  cash: {ledger: evm-b, asset: EUR}\n"
    )
    one_line_error(dvp(["swap", str(path)], cli_env), 2, "trade.cash.amount: Field required")
    path.write_text("trade: [unclosed")
    one_line_error(dvp(["swap", str(path)], cli_env), 2, "is not valid YAML")
    one_line_error(dvp(["swap", str(tmp_path / "missing.json")], cli_env), 2, "scenario: cannot read")


async def test_claim_input_errors(ledger_set, cli_env):
    lock_id, _, preimage = await locked(ledger_set.ledgers[PAIR.security], amount=1, seconds=120)
    one_line_error(
        dvp(["claim", PAIR.security, lock_id, "zz" * 32, "--as", "buyer"], cli_env), 2, "preimage: malformed hex"
    )
    one_line_error(
        dvp(["claim", PAIR.security, lock_id, "ab" * 33, "--as", "buyer"], cli_env),
        2,
        "preimage: must be exactly 32 bytes, got 33",
    )
    one_line_error(
        dvp(["claim", PAIR.security, "0x1234", preimage.hex(), "--as", "buyer"], cli_env),
        2,
        f"lock id '0x1234': not a lock id of {PAIR.security} (32 bytes of hex)",
    )
    one_line_error(
        dvp(["claim", PAIR.security, lock_id, secrets.token_hex(32), "--as", "buyer"], cli_env),
        3,
        "sha256(preimage) does not match the hashlock",
    )
    one_line_error(dvp(["refund", PAIR.security, lock_id, "--as", "seller"], cli_env), 3, "has not expired yet")
    one_line_error(
        dvp(["claim", "nowhere", lock_id, preimage.hex(), "--as", "buyer"], cli_env),
        2,
        "ledger: unknown ledger 'nowhere'",
    )
    ok = dvp(["claim", PAIR.security, lock_id, preimage.hex(), "--as", "buyer"], cli_env)
    assert ok.returncode == 0, ok.stderr
    shown = dvp(["inspect", PAIR.security, lock_id], cli_env)
    assert json.loads(shown.stdout)["status"] == "claimed"


def test_a_malformed_lock_id_is_bad_input_on_every_ledger(ledger_set, cli_env):
    # Issue 23: btc answered exit 3 ("not an HTLC script id"), EVM a ConfigError of its own.
    for ledger in ledger_set.ledgers:
        one_line_error(dvp(["inspect", ledger, "zz"], cli_env), 2, f"lock id 'zz': not a lock id of {ledger}")
    one_line_error(dvp(["refund", "btc", "00" * 32, "--as", "seller"], cli_env), 2, "lock id '" + "00" * 32)


def test_swap_from_flags_prints_a_settled_report(cli_env):
    result = dvp(["swap", "--security", f"{PAIR.security}:BOND:2", "--cash", f"{PAIR.cash}:EUR:20", "--json"], cli_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Each ERC-20 lock carries its permit (the approve's replacement): four transactions,
    # each journaled with its purpose, payer and fee.
    assert report["outcome"] == "settled" and report["transactions"] == 4
    journal = Journal(cli_env["DVP_JOURNAL"])
    final = [s for s in journal.steps(report["swap_id"]) if s.phase == "final"]
    journal.close()
    assert [(s.step, s.detail["purpose"]) for s in final] == [
        ("lock security", "lock"),
        ("lock cash", "lock"),
        ("claim cash", "claim"),
        ("claim security", "claim"),
    ]
    assert all(s.detail["fee"] > 0 and s.tx_id for s in final)
    assert [s.detail["payer"] for s in final] == ["seller", "buyer", "seller", "buyer"]
    history = dvp(["history", report["swap_id"]], cli_env)
    assert history.returncode == 0 and "claim security" in history.stdout


def test_up_status_down_leaves_no_process_behind(tmp_path):
    env = {**os.environ, "DVP_RUN_DIR": str(tmp_path / "run")}
    up = subprocess.run([DVP, "up", "--block-time", "0.5"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "run" / "state.json").read_text())
        pids = [p for ledger in state["ledgers"].values() for p in ledger["pids"]]
        # The default topology: evm-a, evm-b, btc, and Elements and Fabric where installed.
        assert set(state["ledgers"]) == {spec.name for spec in topology.default().ledgers}
        assert {"evm-a", "evm-b", "btc"} <= set(state["ledgers"])
        assert len(pids) >= 3 and all(alive(p) for p in pids)
        status = subprocess.run([DVP, "status"], env=env, capture_output=True, text=True, timeout=60)
        assert all(name in status.stdout for name in state["ledgers"])
        again = subprocess.run([DVP, "up"], env=env, capture_output=True, text=True, timeout=60)
        one_line_error(again, 2, "already recorded")
    finally:
        down = subprocess.run([DVP, "down"], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and f"stopped {len(pids)}" in down.stdout
    assert not any(alive(p) for p in pids)
    assert not (tmp_path / "run" / "state.json").exists()
    logs = [Path(log) for entry in state["ledgers"].values() for log in entry["logs"]]
    assert logs and all(log.exists() for log in logs)  # logs are kept after the nodes stop


def test_commands_without_testnets_say_so(tmp_path):
    env = {**os.environ, "DVP_RUN_DIR": str(tmp_path / "empty")}
    one_line_error(
        subprocess.run([DVP, "balances"], env=env, capture_output=True, text=True, timeout=60), 2, "run `dvp up` first"
    )


def test_demo_and_up_down_as_the_readme_says_from_a_fresh_directory(tmp_path):
    """`dvp demo`, then `dvp up`/`status`/`down`, run as the README says: no flags, the default
    RELATIVE run dir `.dvp` of a fresh working directory (every path handed to a child process
    must be absolute: Fabric's CLI tools, for one, run in the run dir)."""
    for reason in (ELEMENTS_MISSING, FABRIC_MISSING):  # CI has both: the demo must settle their swaps too
        if reason and IN_CI:
            binary_missing(reason)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DVP_RUN_DIR", "DVP_JOURNAL", "DVP_REPORTS_DIR")}
    run = subprocess.run([DVP, "demo"], cwd=fresh, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in fresh.iterdir()) == [".dvp", "reports"]  # all of it where the README says
    data = json.loads((fresh / "reports" / "demo.json").read_text())
    ledgers = {spec.name for spec in topology.default().ledgers}
    expected = demo_swaps(ledgers)
    assert len(expected) >= 3  # the EVM and btc swaps, plus Elements and Fabric ones where installed
    assert [s["outcome"] for s in data["swaps"]] == ["settled"] * len(expected)
    assert [s["kind"] for s in data["swaps"]] == [
        "atomic" if spec.trade.security.ledger == spec.trade.cash.ledger else "htlc" for _, spec in expected
    ]
    assert data["conserved"] is True
    assert {entry["ledger"] for entry in data["ledgers"]} == ledgers
    pids = [p for entry in data["ledgers"] for p in entry["pids"]]
    assert pids and not any(alive(p) for p in pids)
    assert "balances conserved on every ledger" in run.stdout
    # Two banks, two processes: each agent's own view of the same swap, with its channel traffic.
    agents = data["two_agents"]
    assert [a["party"] for a in agents] == ["seller", "buyer"]
    assert {a["swap_id"] for a in agents} == {agents[0]["swap_id"]}
    assert [a["outcome"] for a in agents] == ["settled", "settled"]
    assert all(a["messages_sent"] > 0 and a["messages_received"] > 0 for a in agents)
    # dvp up / status / down in the same directory: the testnets run, then nothing is left running.
    up = subprocess.run([DVP, "up"], cwd=fresh, env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-2000:]
    try:
        status = subprocess.run([DVP, "status"], cwd=fresh, env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and all(name in status.stdout for name in ledgers), status.stdout
        state = json.loads((fresh / ".dvp" / "state.json").read_text())
        up_pids = [p for entry in state["ledgers"].values() for p in entry.get("pids", [])]
        assert up_pids and all(alive(p) for p in up_pids)
    finally:
        down = subprocess.run([DVP, "down"], cwd=fresh, env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr[-2000:]
    assert not any(alive(p) for p in up_pids)
