"""The ledgers the suites run on, and the ledger pairs the scenarios are parametrized by."""

from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass

import pytest

from dvp.errors import ConfigError
from dvp.adapter import Issuing
from dvp.network import Network
from dvp.models import Asset, AssetKind
from dvp.registry import launcher_class
from dvp.testing import scenarios
from dvp.topology import LedgerSpec, Topology

FUNDS = 1_000_000_000
# Fast blocks keep the suite quick; clocks still follow the wall clock.
EVM_BLOCK_TIME = 0.25


def _assets(spec: LedgerSpec) -> list[Asset]:
    if spec.kind == "utxo":  # one cash asset: the chain's own coin, in satoshis
        return [Asset(symbol="BTC", ledger=spec.name, kind=AssetKind.CASH, decimals=8)]
    return [
        Asset(symbol="BOND", ledger=spec.name, kind=AssetKind.SECURITY),
        Asset(symbol="EUR", ledger=spec.name, kind=AssetKind.CASH, decimals=2),
    ]


LEDGERS = [
    LedgerSpec(name="evm-a", kind="ethereum", options={"block_time": EVM_BLOCK_TIME}),
    LedgerSpec(name="evm-b", kind="ethereum", options={"block_time": EVM_BLOCK_TIME}),
    # No block clock: the adapter mines the blocks it waits for, and fast-forward mines to expiry.
    LedgerSpec(name="btc", kind="utxo", options={"block_time": 0}),
]


def _elements_missing() -> str | None:
    try:
        return launcher_class("elements").missing()
    except (ConfigError, ImportError) as exc:  # an install without the elements entry point or extra
        return f"elements: {exc}"


# Elements joins when elementsd (and wallycore) are installed; its suites skip otherwise.
ELEMENTS_MISSING = _elements_missing()
ELEMENTS = LedgerSpec(name="elements", kind="elements", options={"block_time": 0})
if ELEMENTS_MISSING is None:
    LEDGERS.append(ELEMENTS)
# A second EVM client, in its own suite (tests/geth) next to an anvil: 1 s blocks (geth's
# shortest dev period) and no time travel, so its refund paths wait for real expiry.
GETH = LedgerSpec(name="geth", kind="geth", options={"block_time": 1})
NO_TIME_TRAVEL = {GETH.name}
_KNOWN = [*LEDGERS, GETH] + ([ELEMENTS] if ELEMENTS_MISSING else [])  # skipped params name it too


def testbed_topology() -> Topology:
    return Topology(ledgers=LEDGERS, assets=[a for spec in LEDGERS for a in _assets(spec)])


def geth_topology() -> Topology:
    """An anvil chain and a geth chain, for the geth suite."""
    ledgers = [LEDGERS[0], GETH]
    return Topology(ledgers=ledgers, assets=[a for spec in ledgers for a in _assets(spec)])


def cash_asset(ledger: str) -> str:
    spec = next(s for s in _KNOWN if s.name == ledger)
    return next(a.symbol for a in _assets(spec) if a.kind is AssetKind.CASH)


def htlc_asset(ledger: str) -> str:
    """The asset conformance tests lock on a ledger: a security where there is one."""
    spec = next(s for s in _KNOWN if s.name == ledger)
    return _assets(spec)[0].symbol


@dataclass(frozen=True)
class Pair(scenarios.Pair):
    """Securities (BOND) on one testbed ledger, that ledger's cash asset on another (or the same)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cash_asset", cash_asset(self.cash))


CROSS_PAIRS = [Pair("evm-a", "evm-b"), Pair("evm-a", "btc")]
SINGLE_LEDGERS = ["evm-a"]
ADAPTER_LEDGERS = ["evm-a", "btc"]  # one ledger per adapter kind, for the conformance suite
ELEMENTS_PAIRS = [Pair("elements", "evm-a"), Pair("evm-a", "elements"), Pair("elements", "btc")]
ELEMENTS_MARKS = [pytest.mark.skip(reason=ELEMENTS_MISSING)] if ELEMENTS_MISSING else []


def with_elements(values: list, elements: list) -> list:
    """``values`` plus the Elements ones, which skip with one line when elementsd is missing."""
    return values + [pytest.param(v, id=getattr(v, "id", v), marks=ELEMENTS_MARKS) for v in elements]


CROSS_PARAMS = with_elements(CROSS_PAIRS, ELEMENTS_PAIRS)
SINGLE_PARAMS = with_elements(SINGLE_LEDGERS, ["elements"])
ADAPTER_PARAMS = with_elements(ADAPTER_LEDGERS, ["elements"])


async def fund(run_dir: Path) -> None:
    """Issue FUNDS of every asset to the seller and the buyer, and wait until final."""
    async with Network.from_run_dir(run_dir) as net:
        sent = []
        for asset in net.assets:
            adapter = net.ledgers[asset.ledger]
            for party in ("seller", "buyer"):
                sent.append((adapter, await adapter.require(Issuing).issue(asset.symbol, party, FUNDS)))
        for adapter, sub in sent:
            await adapter.wait_all(sub)
