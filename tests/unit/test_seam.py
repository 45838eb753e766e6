"""The seams themselves: what every adapter and runtime must provide, checked on the types."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import dvp.runtime.docker
from dvp.adapter import AtomicDvp, Issuing, LedgerAdapter, Observable, TimeTravel, capabilities_of
from dvp.models import Capability
from dvp.runtime import DEFAULT_RUNTIME, RUNTIMES, select
from dvp.runtime.base import Runtime
from dvp.testing.memory import MemoryDvpLedger, MemoryLedger, MemoryLiveLedger


@pytest.mark.parametrize("cls", [LedgerAdapter, AtomicDvp, Issuing, TimeTravel, Observable])
def test_every_abstract_method_states_its_contract(cls):
    for name in sorted(cls.__abstractmethods__):
        doc = inspect.getdoc(getattr(cls, name))
        assert doc and len(doc) > 20, f"{cls.__name__}.{name} has no contract in its docstring"


def test_capabilities_are_read_from_the_type():
    assert capabilities_of(MemoryLiveLedger) == {Capability.HTLC, Capability.ISSUE}
    assert capabilities_of(MemoryLedger) == {Capability.HTLC, Capability.ISSUE, Capability.TIME_TRAVEL}
    assert Capability.ATOMIC_DVP in capabilities_of(MemoryDvpLedger)
    ledger = MemoryLiveLedger("x")
    assert ledger.require(Issuing) is ledger
    with pytest.raises(Exception, match="does not support time_travel"):
        ledger.require(TimeTravel)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_implements_the_runtime_seam(tmp_path, name):
    runtime = select(name, tmp_path)
    assert isinstance(runtime, Runtime) and not inspect.isabstract(type(runtime))
    assert runtime.name == name
    assert DEFAULT_RUNTIME in RUNTIMES


def test_runtimes_import_no_private_name_of_one_another():
    tree = ast.parse(Path(dvp.runtime.docker.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "local" in node.module:
            pytest.fail(f"docker runtime imports from {node.module}: {[a.name for a in node.names]}")
