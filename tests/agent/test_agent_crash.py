"""Each party's agent killed with SIGKILL right after one of its journal writes, and
restarted: both sides end settled or refunded, and no value is created or destroyed.

`make test` drills both agents at a spread of writes on evm-a/evm-b and one write per
other platform; the marker ``matrix`` (`make test-drills`) drills every write on evm-a/evm-b and
evm-a/btc, and the spread on each Fabric and Elements base pair."""

from __future__ import annotations

import time

import pytest

from ..scenarios import assert_conserved, spec_for
from ..testbed import CROSS_PAIRS, ELEMENTS_MARKS, FABRIC_MARKS, Pair, platform_matrix
from .conftest import Agents, balances, run_async

pytestmark = [pytest.mark.agent, pytest.mark.slow]

ENDED = {"settled", "refunded"}
# A happy swap is about 20 journal writes per agent (rows, messages, state).
EVERY_WRITE = range(1, 25)


def drill(agents: Agents, pair: Pair, victim: str, write: int, *, must_crash: bool = True) -> None:
    before = run_async(balances(agents.run_dir))
    scenario = str(agents.scenario(spec_for(pair)))
    crash = {victim: write}
    agents.start("buyer", crash_after=crash.get("buyer"))
    first = agents.start("seller", "--propose", scenario, crash_after=crash.get("seller"))
    victims = [p for p in agents.processes if p.party == victim]
    swap_id = agents.first_swap("seller", timeout=60)
    restarted = False
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if not restarted and victims[0].proc.poll() is not None:
            assert victims[0].proc.returncode == -9, victims[0].output()  # killed by the seam, nothing else
            agents.start(victim)  # the same folder and journal, no proposal: it resumes
            restarted = True
        records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
        if all(r is not None and r.outcome for r in records):
            break
        time.sleep(0.25)
    records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
    outcomes = [r.outcome if r else None for r in records]
    # A drill whose write lies beyond the swap's last (the matrix's tail) runs undisturbed.
    assert restarted or not must_crash, f"the {victim}'s agent made fewer than {write} journal writes"
    assert set(outcomes) <= ENDED and None not in outcomes, (
        outcomes,
        [r.detail if r else None for r in records],
        first.output()[-2000:],
    )
    agents.stop_all()
    after = run_async(balances(agents.run_dir))
    assert_conserved(before, after, agents.steps("seller", swap_id) + agents.steps("buyer", swap_id))


@pytest.mark.parametrize("write", [2, 9, 17])
@pytest.mark.parametrize("victim", ["seller", "buyer"])
@pytest.mark.parametrize("pair", [CROSS_PAIRS[0], *platform_matrix()], ids=lambda p: p.id)
def test_agent_crash_drill(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write)


# One drilled agent per other platform in `make test`.
PLATFORM_DRILLS = [
    pytest.param(CROSS_PAIRS[1], "buyer", 9, id="btc-buyer-9"),
    pytest.param(Pair("elements", "evm-a"), "seller", 9, id="elements-seller-9", marks=ELEMENTS_MARKS),
    pytest.param(Pair("fabric-a", "evm-a"), "seller", 9, id="fabric-seller-9", marks=FABRIC_MARKS),
]


@pytest.mark.parametrize(("pair", "victim", "write"), PLATFORM_DRILLS)
def test_agent_crash_drill_per_platform(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write)


@pytest.mark.matrix
@pytest.mark.parametrize("write", EVERY_WRITE)
@pytest.mark.parametrize("victim", ["seller", "buyer"])
@pytest.mark.parametrize("pair", CROSS_PAIRS, ids=lambda p: p.id)
def test_agent_crash_drill_every_write(agents: Agents, pair: Pair, victim: str, write: int):
    drill(agents, pair, victim, write, must_crash=False)
