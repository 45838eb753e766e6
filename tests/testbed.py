"""The ledgers the suites run on, and the ledger pairs the scenarios are parametrized by."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from dvp.adapter import Issuing
from dvp.ledger_set import LedgerSet
from dvp.models import Asset, AssetKind
from dvp.testing import scenarios
from dvp.topology import FABRIC_DEV_OPTIONS, FABRIC_LEDGERS, LedgerSpec, Topology, missing

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


# In CI (CI=true) a test that would skip because a Fabric, Elements or geth binary is missing fails
# the run with the reason (CI installs them: `make setup`); other skips stay skips.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def binary_missing(reason: str) -> NoReturn:
    """Skip for a missing node binary (one line with the reason); fail instead under CI=true."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a Fabric, Elements or geth test may not skip for a missing binary)",
                    pytrace=False)  # fmt: skip
    pytest.skip(reason)


def binary_marks(reason: str | None) -> list:
    """The marks of a test that needs a missing binary (tests/conftest.py applies them), or none."""
    return [pytest.mark.binary_missing(reason=reason)] if reason else []


# Elements joins when elementsd (and wallycore) are installed; its suites skip otherwise.
ELEMENTS_MISSING = missing("elements")
ELEMENTS = LedgerSpec(name="elements", kind="elements", options={"block_time": 0})
if ELEMENTS_MISSING is None:
    LEDGERS.append(ELEMENTS)
# Fabric (two channels of one network) joins when its binaries are installed; likewise.
FABRIC_MISSING = missing("fabric")
# The chaincode's bound on a proposal's timestamp against its endorser's clock (docs/design.md, rule 8),
# as `dvp up` sets it: short, so are the swap timeouts whose gap must cover it on both legs.
FABRIC_MAX_SKEW = FABRIC_DEV_OPTIONS["max_skew_seconds"]
FABRIC_SPECS = [LedgerSpec(name=n, kind="fabric", options=FABRIC_DEV_OPTIONS) for n in FABRIC_LEDGERS]
FABRIC = [] if FABRIC_MISSING else list(FABRIC_LEDGERS)
if FABRIC:
    LEDGERS += FABRIC_SPECS
# A second EVM client, in its own suite (tests/geth) next to an anvil: 1 s blocks (geth's
# shortest dev period) and no time travel, so its refund paths wait for real expiry.
GETH = LedgerSpec(name="geth", kind="geth", options={"block_time": 1})
NO_TIME_TRAVEL = {GETH.name, *FABRIC_LEDGERS}
# Skipped params name them too.
_KNOWN = [*LEDGERS, GETH] + ([ELEMENTS] if ELEMENTS_MISSING else []) + ([] if FABRIC else FABRIC_SPECS)


def container_ledgers() -> list[LedgerSpec]:
    """The testbed's ledgers the docker suite starts in containers: Fabric in containers has a
    suite of its own (tests/docker/test_fabric_docker.py)."""
    return [spec for spec in LEDGERS if spec.kind != "fabric"]


def testbed_topology(*, containers: bool = False) -> Topology:
    ledgers = container_ledgers() if containers else LEDGERS
    return Topology(ledgers=ledgers, assets=[a for spec in ledgers for a in _assets(spec)])


def geth_topology() -> Topology:
    """An anvil chain and a geth chain for the geth suite, with btc and the installed optional
    ledgers (Elements, Fabric), each settled once against geth (a few seconds to start them)."""
    ledgers = [LEDGERS[0], GETH, *(s for s in LEDGERS if s.kind in ("utxo", "elements", "fabric"))]
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
# Fabric across its own two channels, with EVM in both directions, and with a UTXO chain.
FABRIC_PAIRS = [
    Pair("fabric-a", "fabric-b"),
    Pair("fabric-a", "evm-a"),
    Pair("evm-a", "fabric-b"),
    Pair("fabric-a", "btc"),
]
ELEMENTS_MARKS = binary_marks(ELEMENTS_MISSING)
FABRIC_MARKS = binary_marks(FABRIC_MISSING and f"Fabric: {FABRIC_MISSING}")
# The agents' hostile, vanish, partition and crash matrices beyond evm-a/evm-b and evm-a/btc:
# each optional platform's base pairs (issue 22, item 5), with the marks that skip them when missing.
PLATFORM_BASE_PAIRS = [
    (Pair("fabric-a", "fabric-b"), FABRIC_MARKS),
    (Pair("fabric-a", "evm-a"), FABRIC_MARKS),
    (Pair("elements", "evm-a"), ELEMENTS_MARKS),
]


def platform_matrix(*values, name: str = "") -> list:
    """A case per platform base pair (the pair, then ``values``), each under `matrix`
    (`make test-drills`), its id the pair's (after ``name``)."""
    return [
        pytest.param(pair, *values, id=f"{name}{pair.id}", marks=[*marks, pytest.mark.matrix])
        for pair, marks in PLATFORM_BASE_PAIRS
    ]


def with_optional(values: list, extra: list, marks: list) -> list:
    """``values`` plus those of an optional platform, which skip with one line when it is missing."""
    return values + [pytest.param(v, id=getattr(v, "id", v), marks=marks) for v in extra]


def with_elements(values: list, elements: list) -> list:
    return with_optional(values, elements, ELEMENTS_MARKS)


def with_fabric(values: list, fabric: list) -> list:
    return with_optional(values, fabric, FABRIC_MARKS)


CROSS_PARAMS = with_fabric(with_elements(CROSS_PAIRS, ELEMENTS_PAIRS), FABRIC_PAIRS)
# Pairs outside the full scenario suite, settled once in each direction (the happy path only).
ONCE_PAIRS = [Pair("elements", "fabric-a"), Pair("fabric-a", "elements")]
ONCE_PARAMS = with_optional([], ONCE_PAIRS, ELEMENTS_MARKS + FABRIC_MARKS)
# geth against the other families (btc trades only its coin, as cash), once each, on the geth suite's testbed.
GETH_ONCE_PARAMS = with_fabric(
    with_elements(with_optional([], [Pair(GETH.name, "btc")], []), [Pair("elements", GETH.name)]),
    [Pair("fabric-a", GETH.name)],
)
SINGLE_PARAMS = with_fabric(with_elements(SINGLE_LEDGERS, ["elements"]), ["fabric-a"])
ADAPTER_PARAMS = with_fabric(with_elements(ADAPTER_LEDGERS, ["elements"]), ["fabric-a"])


def container_params(params: list) -> list:
    """``params`` (ledger pairs) without those of a platform the Docker runtime cannot start."""
    names = {spec.name for spec in container_ledgers()} | {"elements"}  # Elements skips by itself
    out = []
    for p in params:
        pair = p.values[0] if hasattr(p, "values") else p
        if {pair.security, pair.cash} <= names:
            out.append(p)
    return out


async def fund(run_dir: Path) -> None:
    """Issue FUNDS of every asset to the seller and the buyer, and wait until final."""
    async with LedgerSet.from_run_dir(run_dir) as ledger_set:
        sent = []
        for asset in ledger_set.assets:
            adapter = ledger_set.ledgers[asset.ledger]
            for party in ("seller", "buyer"):
                sent.append((adapter, await adapter.require(Issuing).issue(asset.symbol, party, FUNDS)))
        for adapter, sub in sent:
            await adapter.wait_all(sub)
