"""Whole DvP swaps on ledgers in containers, driven as tests/e2e drives them."""

from __future__ import annotations

import json

import pytest

from dvp.models import Behaviour
from dvp.orchestrator import Outcome
from dvp.registry import launcher_class, ledger_endpoint

from ..scenarios import SETTLED, UNCHANGED, changes, run, spec_for
from ..testbed import CROSS_PARAMS, container_ledgers, container_params

LEDGERS = container_ledgers()
cross = pytest.mark.parametrize("pair", container_params(CROSS_PARAMS), ids=lambda p: p.id)


def test_state_is_the_process_runtime_format(docker_run_dir, dvp_runtime_name):
    state = json.loads((docker_run_dir / "state.json").read_text())
    assert state["runtime"] == dvp_runtime_name and state["complete"] is True
    assert set(state["ledgers"]) == {spec.name for spec in LEDGERS}  # elements too, when installed
    for name, ledger in state["ledgers"].items():
        assert {"kind", "config", "pids", "logs"} <= set(ledger), name
        assert ledger["config"]["kind"] == ledger["kind"]
        endpoint = ledger_endpoint(ledger["kind"], ledger["config"])
        assert endpoint.startswith(("http://127.0.0.1:", "127.0.0.1:")), (name, endpoint)
    if dvp_runtime_name == "docker":
        from dvp.runtime.docker import DockerRuntime

        # One container per ledger, but ledgers that share nodes (Fabric channels) share one project.
        for l in state["ledgers"].values():
            assert len(l["docker"]["containers"]) == (1 if not launcher_class(l["kind"]).shared_nodes else 4)
        rows = DockerRuntime(docker_run_dir).status()
        assert [r["alive"] for r in rows] == [True] * len(LEDGERS)


@cross
async def test_cross_ledger_happy_path(ledger_set, journal_path, pair):
    result, before, after = await run(ledger_set, journal_path, spec_for(pair))
    assert result.outcome is Outcome.SETTLED, result.detail
    assert changes(before, after, pair, result.steps) == SETTLED
    done = [s.step for s in result.steps if s.phase == "result"]
    assert done == [
        "lock security",
        "audit security",
        "lock cash",
        "audit cash",
        "claim cash",
        "extract secret",
        "claim security",
    ]


@cross
async def test_buyer_never_locks_seller_refunds(ledger_set, journal_path, pair):
    result, before, after = await run(
        ledger_set, journal_path, spec_for(pair, behaviour=Behaviour(counter_locks=False))
    )
    assert result.outcome is Outcome.REFUNDED
    assert changes(before, after, pair, result.steps) == UNCHANGED
    steps = [s.step for s in result.steps if s.phase == "result"]
    assert "lock cash" not in steps and "refund security" in steps


def test_compose_projects_are_reachable_through_pytest_docker(request, dvp_runtime_name):
    pytest.importorskip("pytest_docker", reason="pytest-docker is not installed (extra: docker)")
    if dvp_runtime_name != "docker":
        pytest.skip("process runtime: no compose projects")
    dvp_compose_projects = request.getfixturevalue("dvp_compose_projects")
    out = dvp_compose_projects["btc"].execute("ps -q").decode().split()
    assert len(out) == 1
