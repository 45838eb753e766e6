"""Operations of a real `dvp agent` pair on evm-a/evm-b: `dvp agent status` and the Prometheus
endpoint, scraped while a swap is unfinished and after it settled, each figure checked
against the agent's own journal."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dvp.runtime.processes import free_port
from dvp_agent.config import load_config, save_config
from dvp_agent.identity import load_peer_cert
from dvp_agent.metrics import MetricsSettings

from ..cli_helpers import dvp, one_line_error, wait_for_journal
from ..scenarios import spec_for
from ..testbed import CROSS_PAIRS
from .conftest import Agents

pytestmark = pytest.mark.agent

PLAN = {"holder_timeout": 120, "counter_timeout": 60}  # time for a restart before the buyer answers


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain"), reply.headers
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status(agents: Agents, party: str) -> dict:
    done = dvp(["agent", "status", str(agents.folders[party]), "--json"], agents.env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def journal_rows(agents: Agents, party: str, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{agents.journal(party)}?mode=ro", uri=True)
    try:
        return list(db.execute(sql))
    finally:
        db.close()


def test_status_and_metrics_match_the_journal(agents: Agents):
    port = free_port()
    seller_dir = agents.folders["seller"]
    save_config(
        seller_dir, load_config(seller_dir).model_copy(update={"metrics": MetricsSettings(listen=f"127.0.0.1:{port}")})
    )
    fingerprint = load_peer_cert(seller_dir / "peers" / "buyer.crt", "buyer").fingerprint

    # Before the agent ever ran: its peer, no journal yet.
    first = status(agents, "seller")
    assert first["peers"] == [
        {
            "party": "buyer",
            "endpoint": f"127.0.0.1:{agents.ports['buyer']}",
            "fingerprint": fingerprint,
            "last_contact": None,
        }
    ]
    assert (first["unfinished"], first["outcomes"]) == ([], {})

    # The seller proposes while the buyer's agent is not up yet: unfinished, awaiting an answer.
    seller = agents.start("seller").ready()
    assert f"metrics on http://127.0.0.1:{port}/metrics" in seller.output()
    spec = spec_for(CROSS_PAIRS[0], **PLAN)
    done = dvp(["agent", "propose", str(agents.scenario(spec)), str(seller_dir)], agents.env)
    assert done.returncode == 0, done.stderr
    swap_id = re.search(r"proposed swap (\w+)", done.stdout).group(1)
    waiting = status(agents, "seller")
    [open_swap] = waiting["unfinished"]
    created = journal_rows(agents, "seller", f"SELECT created FROM swaps WHERE id = '{swap_id}'")[0][0]
    deadline = open_swap["next_deadline"]
    assert (open_swap["id"], open_swap["agreed"], open_swap["role"]) == (swap_id, False, "seller")
    # The counter leg (the buyer's cash) expires first: the plan's counter_timeout from creation.
    assert (deadline["leg"], deadline["expiry"]) == ("cash", None), deadline
    assert abs(deadline["seconds_left"] - (created + PLAN["counter_timeout"] - time.time())) < 5, deadline
    during = scrape(port)
    assert during[("dvp_agent_swaps_unfinished", ())] == 1
    assert not any(name == "dvp_agent_swaps_finished_total" for name, _ in during)

    # Restarted (a fresh channel, not one backing off from the buyer's absence) once the
    # buyer's agent is up; the buyer dies right after auditing the seller's lock, before its own.
    seller.stop()
    buyer = agents.start("buyer", crash_after_step="audit security").ready()
    seller = agents.start("seller").ready()
    assert buyer.wait(timeout=90) == -9, buyer.output()
    wait_for_journal(
        agents.journal("seller"),
        lambda j: j.last(swap_id, "lock security", "result"),
        "the seller's lock was not journaled",
        timeout=30,
    )
    locked = status(agents, "seller")
    [open_swap] = locked["unfinished"]
    deadline = open_swap["next_deadline"]
    agreed = agents.record("seller", swap_id).data
    # The counter leg expires first, by evm-b's own clock, at the agreed expiry.
    assert (open_swap["agreed"], deadline["leg"], deadline["ledger"], deadline["by"]) == (
        True,
        "cash",
        "evm-b",
        "ledger clock",
    ), open_swap
    assert deadline["expiry"] == agreed["terms_cash"]["expiry"]
    assert 0 < deadline["seconds_left"] <= PLAN["counter_timeout"], deadline
    security = spec.trade.security
    assert locked["locked"] == [{"ledger": security.ledger, "asset": security.asset, "amount": security.amount}]
    held = scrape(port)
    assert (
        held[("dvp_agent_locked_amount", (("asset", security.asset), ("ledger", security.ledger)))] == security.amount
    )
    assert held[("dvp_agent_swaps_unfinished", ())] == 1

    buyer = agents.start("buyer").ready()  # back: it locks, and the swap settles
    for party in ("seller", "buyer"):
        try:
            record = agents.outcome(party, swap_id, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{seller.output()[-3000:]}\n{buyer.output()[-3000:]}") from None
        assert record.outcome == "settled", (record.detail, seller.output()[-3000:], buyer.output()[-3000:])

    after = scrape(port)
    assert after[("dvp_agent_swaps_unfinished", ())] == 0
    assert after[("dvp_agent_swaps_finished_total", (("outcome", "settled"),))] == 1
    # Messages by peer, direction and kind: the journal's rows, one for one.
    journaled = Counter(
        (p, d, k) for p, d, k in journal_rows(agents, "seller", "SELECT peer, direction, kind FROM messages")
    )
    scraped = {
        (dict(labels)["peer"], dict(labels)["direction"], dict(labels)["kind"]): v
        for (name, labels), v in after.items()
        if name == "dvp_agent_messages_total"
    }
    assert scraped == journaled and journaled[("buyer", "out", "propose")] >= 1, (scraped, journaled)
    # Step latencies: one observation per step with an intent and a result, per step and ledger.
    steps = {
        (step, ledger)
        for step, ledger in journal_rows(agents, "seller", "SELECT step, ledger FROM steps WHERE phase = 'result'")
    }
    counts = {
        (dict(labels)["step"], dict(labels)["ledger"]): v
        for (name, labels), v in after.items()
        if name == "dvp_agent_step_seconds_count"
    }
    assert ("lock security", "evm-a") in counts and set(counts) <= steps, (counts, steps)
    assert all(v == 1 for v in counts.values()), counts
    # Nothing locked once settled, nothing refused.
    assert not any(name in ("dvp_agent_locked_amount", "dvp_agent_refusals_total") for name, _ in after)
    last_in = max(w for (w,) in journal_rows(agents, "seller", "SELECT wall FROM messages WHERE direction = 'in'"))
    assert after[("dvp_agent_peer_last_contact_seconds", (("peer", "buyer"),))] == pytest.approx(last_in)

    # `dvp agent status` while the agent runs and after it stopped: the same, the journal's.
    running = status(agents, "seller")
    seller.stop()
    stopped = status(agents, "seller")
    for found in (running, stopped):
        assert (found["unfinished"], found["outcomes"], found["locked"]) == ([], {"settled": 1}, [])
        assert found["peers"][0]["last_contact"] == pytest.approx(last_in)
    text = dvp(["agent", "status", str(seller_dir)], agents.env)
    assert text.returncode == 0 and "swaps by outcome: 1 settled" in text.stdout, text.stdout
    assert f"certificate SHA-256 {fingerprint}" in text.stdout


def test_status_bad_input_is_one_line(agents: Agents, tmp_path):
    one_line_error(dvp(["agent", "status", str(tmp_path / "nowhere")], agents.env), 2, "no agent.yaml")
    seller = agents.folders["seller"]
    (seller / "journal.sqlite").write_text("not a journal")
    one_line_error(dvp(["agent", "status", str(seller)], agents.env), 2, "not a dvp journal")
    (seller / "journal.sqlite").unlink()
    config = (seller / "agent.yaml").read_text()
    assert "\nmetrics: null\n" in config
    (seller / "agent.yaml").write_text(config.replace("\nmetrics: null\n", "\nmetrics: {listen: 0.0.0.0:9100}\n"))
    one_line_error(dvp(["agent", "status", str(seller)], agents.env), 2, "not a loopback address")
