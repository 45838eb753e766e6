"""`dvp agent` as users type it: a long-running pair taking a proposal from either side, and
bad input answered in one line with a documented exit code, nothing locked."""

from __future__ import annotations

import os
import re

import pytest

from ..cli_helpers import dvp, one_line_error
from ..scenarios import spec_for
from ..testbed import CROSS_PAIRS
from .conftest import Agents

pytestmark = pytest.mark.agent


def test_either_side_proposes_to_its_running_agent(agents: Agents):
    """Both agents run for good; the buyer, then the seller, hand a trade to their own agent."""
    agents.start("seller").ready()
    agents.start("buyer").ready()
    scenario = str(agents.scenario(spec_for(CROSS_PAIRS[0])))
    ids = []
    for party in ("buyer", "seller"):
        done = dvp(["agent", "propose", scenario, str(agents.folders[party])], agents.env)
        assert done.returncode == 0, done.stderr
        ids.append(re.search(r"proposed swap (\w+)", done.stdout).group(1))
    for swap_id in ids:
        for party in ("seller", "buyer"):
            record = agents.outcome(party, swap_id, timeout=90)
            assert record.outcome == "settled", record.detail


def test_propose_without_a_running_agent(agents: Agents):
    scenario = str(agents.scenario(spec_for(CROSS_PAIRS[0])))
    one_line_error(
        dvp(["agent", "propose", scenario, str(agents.folders["seller"])], agents.env),
        2,
        "no agent is running from this folder",
    )


def test_a_second_agent_on_one_folder_is_refused(agents: Agents):
    first = agents.start("seller").ready()
    second = agents.start("seller")
    assert second.wait(timeout=60) == 2, second.output()
    assert "an agent is already running from this folder" in second.output()
    assert first.proc.poll() is None


def test_bad_setup_is_one_line(agents: Agents, tmp_path):
    seller = agents.folders["seller"]
    one_line_error(dvp(["agent", "init", str(seller), "--party", "seller"], agents.env), 2, "exists already")
    one_line_error(
        dvp(["agent", "init", str(tmp_path / "x"), "--party", "nobody"], agents.env),
        2,
        "party 'nobody': on none of the ledgers",
    )
    one_line_error(
        dvp(
            [
                "agent",
                "pair",
                str(seller),
                "--peer",
                "buyer",
                "--endpoint",
                "127.0.0.1:1",
                "--cert",
                str(seller / "agent.crt"),
            ],
            agents.env,
        ),
        2,
        "buyer",
    )  # the seller's cert does not name the buyer
    os.chmod(seller / "agent.key", 0o644)
    one_line_error(dvp(["agent", "run", str(seller)], agents.env), 2, "must be 0600")
    os.chmod(seller / "agent.key", 0o600)
    os.chmod(seller / "ledgers.json", 0o640)
    one_line_error(dvp(["agent", "run", str(seller)], agents.env), 2, "must be 0600")
    os.chmod(seller / "ledgers.json", 0o600)
    one_line_error(dvp(["agent", "run"], agents.env), 2, "give the agent's folder, or --party NAME")
