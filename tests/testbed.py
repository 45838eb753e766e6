"""The ledgers the suites run on, and the ledger pairs the scenarios are parametrized by."""

from __future__ import annotations

from dataclasses import dataclass

from dvp.models import Asset, AssetKind
from dvp.topology import LedgerSpec, Topology

FUNDS = 1_000_000_000
# Fast blocks keep the suite quick; clocks still follow the wall clock.
EVM_BLOCK_TIME = 0.25


def _assets(ledger: str) -> list[Asset]:
    return [
        Asset(symbol="BOND", ledger=ledger, kind=AssetKind.SECURITY),
        Asset(symbol="EUR", ledger=ledger, kind=AssetKind.CASH, decimals=2),
    ]


LEDGERS = [
    LedgerSpec(name="evm-a", kind="ethereum", options={"block_time": EVM_BLOCK_TIME}),
    LedgerSpec(name="evm-b", kind="ethereum", options={"block_time": EVM_BLOCK_TIME}),
]


def testbed_topology() -> Topology:
    return Topology(ledgers=LEDGERS, assets=[a for spec in LEDGERS for a in _assets(spec.name)])


@dataclass(frozen=True)
class Pair:
    """Securities on one ledger, cash on another (or the same)."""

    security: str
    cash: str

    @property
    def id(self) -> str:
        return f"{self.security}->{self.cash}"


CROSS_PAIRS = [Pair("evm-a", "evm-b")]
SINGLE_LEDGERS = ["evm-a"]
ADAPTER_LEDGERS = ["evm-a"]  # one ledger per adapter kind, for the conformance suite
