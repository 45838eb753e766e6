"""A network partition between the two agents (a loopback proxy the test cuts) during each
phase of the swap: the swap completes or refunds, the same on both sides, value conserved."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from dvp.models import SwapSpec
from dvp.testing.proxy import PartitionProxy

from ..scenarios import assert_conserved, spec_for
from ..testbed import CROSS_PAIRS, Pair, platform_matrix
from .conftest import Agents, balances, run_async

pytestmark = pytest.mark.agent
# evm-a/evm-b and evm-a/btc in `make test`; each Fabric and Elements base pair under `matrix`.

PLAN = {"holder_timeout": 40, "counter_timeout": 20}


def has_result(step: str) -> Callable[[Agents, str, str], bool]:
    def check(agents: Agents, party: str, swap_id: str) -> bool:
        return any(s.step == step and s.phase == "result" for s in agents.steps(party, swap_id))

    return check


# (phase, whose journal shows it, the check, seconds the partition lasts: None = until the end)
PHASES = [
    pytest.param("seller", None, 3.0, id="before-the-proposal"),
    pytest.param("seller", has_result("lock security"), 4.0, id="after-the-holder-locked"),
    pytest.param("buyer", has_result("lock cash"), 4.0, id="after-the-counter-locked"),
    pytest.param("seller", has_result("claim cash"), None, id="after-the-reveal-for-good"),
]


@pytest.mark.parametrize("pair", CROSS_PAIRS + platform_matrix(), ids=lambda p: p.id)
@pytest.mark.parametrize(("watch", "reached", "lasts"), PHASES)
def test_partition(agents: Agents, pair: Pair, watch: str, reached, lasts: float | None):
    outcomes, details = cut_channel(agents, spec_for(pair, **PLAN), watch, reached, lasts)
    assert outcomes in (
        ["settled", "settled"],
        ["refunded", "refunded"],
        ["refunded", "aborted"],
        ["aborted", "aborted"],
    ), (outcomes, details)


def cut_channel(
    agents: Agents, spec: SwapSpec, watch: str, reached, lasts: float | None, *, stall: bool = False
) -> tuple[list[str | None], list[str | None]]:
    """Run ``spec`` between the two agents through a proxy each way and cut both when
    ``watch``'s journal shows ``reached`` (None: from the start), for ``lasts`` seconds (None:
    for good); with ``stall``, hold every byte instead of closing the connections (a peer that
    stopped answering).  Both sides' (outcomes, details); value conserved, checked here."""
    before = run_async(balances(agents.run_dir))
    ports = agents.ports
    with (
        PartitionProxy(("127.0.0.1", ports["buyer"])) as to_buyer,
        PartitionProxy(("127.0.0.1", ports["seller"])) as to_seller,
    ):
        proxies = (to_buyer, to_seller)
        agents.start("buyer", endpoint=f"127.0.0.1:{to_seller.port}")
        if reached is None:
            for proxy in proxies:
                proxy.partition(stall=stall)
        agents.start("seller", "--propose", str(agents.scenario(spec)), endpoint=f"127.0.0.1:{to_buyer.port}")
        swap_id = agents.first_swap("seller", timeout=60)
        cut_at = time.monotonic() if reached is None else None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if cut_at is None and reached(agents, watch, swap_id):
                for proxy in proxies:
                    proxy.partition(stall=stall)
                cut_at = time.monotonic()
            if cut_at is not None and lasts is not None and time.monotonic() - cut_at >= lasts and to_buyer.partitioned:
                for proxy in proxies:
                    proxy.heal()
            records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
            if all(r is not None and r.outcome for r in records):
                break
            time.sleep(0.2)
        assert cut_at is not None, "the phase to cut in was never reached"
    records = [agents.record(p, swap_id) for p in ("seller", "buyer")]
    agents.stop_all()
    after = run_async(balances(agents.run_dir))
    assert_conserved(before, after, agents.steps("seller", swap_id) + agents.steps("buyer", swap_id))
    return [r.outcome if r else None for r in records], [r.detail if r else None for r in records]
