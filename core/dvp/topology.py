"""What `dvp up` starts: named ledgers of some kinds, and the assets issued on them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .models import Asset, AssetKind, Frozen, Name


class LedgerSpec(Frozen):
    name: Name
    kind: Name
    options: dict[str, Any] = {}


class Topology(Frozen):
    ledgers: list[LedgerSpec] = Field(min_length=1)
    assets: list[Asset] = []

    def assets_on(self, ledger: str) -> list[Asset]:
        return [a for a in self.assets if a.ledger == ledger]


def _assets(ledger: str) -> list[Asset]:
    return [
        Asset(symbol="BOND", ledger=ledger, kind=AssetKind.SECURITY, decimals=0),
        Asset(symbol="EUR", ledger=ledger, kind=AssetKind.CASH, decimals=2),
    ]


def evm_pair(block_time: float = 1.0) -> Topology:
    """Two independent EVM chains (different chain ids), each with a bond and a cash token."""
    names = ["evm-a", "evm-b"]
    return Topology(
        ledgers=[LedgerSpec(name=n, kind="ethereum", options={"block_time": block_time}) for n in names],
        assets=[a for n in names for a in _assets(n)],
    )


FABRIC_LEDGERS = ("fabric-a", "fabric-b")  # two channels of one Fabric network
# A dev network's orderer cuts a block after 100 ms (Fabric's default is 2 s), and its chaincode
# accepts a proposal timestamp within 4 s of the endorser's clock: one machine has one clock,
# and that skew, counted on both legs of every swap's timeout gap, is what a Fabric leg adds to
# the shortest safe plan (its refunds wait for real expiry: Fabric has no time travel).
FABRIC_DEV_OPTIONS = {"batch_timeout_ms": 100, "max_skew_seconds": 4}


def missing(kind: str) -> str | None:
    """Why ``kind``'s nodes cannot start here (one line with how to get them), or None."""
    from .errors import ConfigError
    from .registry import launcher_class

    try:
        return launcher_class(kind).missing()
    except (ConfigError, ImportError) as exc:  # the platform's package or its extra is not installed
        return f"{kind}: {exc}"


def optional_ledgers(block_time: float = 1.0, *, containers: bool = False) -> list[LedgerSpec]:
    """Ledgers whose node binaries users install themselves (elementsd, Fabric): present only
    when their launcher finds them (and, in containers, has a compose file for them)."""
    from .registry import launcher_class

    specs = []
    for names, kind, options in (
        (("elements",), "elements", {"block_time": block_time}),
        (FABRIC_LEDGERS, "fabric", FABRIC_DEV_OPTIONS),
    ):
        if missing(kind) is None and (not containers or launcher_class(kind).compose_file):
            specs += [LedgerSpec(name=n, kind=kind, options=options) for n in names]
    return specs


def optional_platforms_note(ledgers: set[str]) -> list[str]:
    """One line for each optional platform a topology lacks: what is missing and how to get it."""
    notes = []
    for name, kind, title in (
        ("elements", "elements", "Elements"),
        (FABRIC_LEDGERS[0], "fabric", "Hyperledger Fabric"),
    ):
        reason = None if name in ledgers else missing(kind)
        if reason:
            notes.append(f"{title} not included: {reason}")
    return notes


def default(block_time: float = 1.0, *, containers: bool = False) -> Topology:
    """What `dvp up` and `dvp demo` start: two EVM chains, a Bitcoin-family regtest chain
    (btcd) whose one asset is its own coin, traded as cash, and the optional ledgers that are
    installed: an Elements chain whose bond and euro are issued assets, two channels of one
    Fabric network with a bond and a euro each."""
    evm = evm_pair(block_time)
    btc = LedgerSpec(name="btc", kind="utxo", options={"block_time": block_time})
    extra = optional_ledgers(block_time, containers=containers)
    return Topology(
        ledgers=[*evm.ledgers, btc, *extra],
        assets=[
            *evm.assets,
            Asset(symbol="BTC", ledger="btc", kind=AssetKind.CASH, decimals=8),
            *(a for spec in extra for a in _assets(spec.name)),
        ],
    )


def with_ledgers(topology: Topology, kinds: tuple[str, ...] | list[str], block_time: float = 1.0) -> Topology:
    """``topology`` plus one ledger per kind, named after it, with a bond and a cash token
    (e.g. ``geth``: a second EVM client next to anvil)."""
    added = [LedgerSpec(name=k, kind=k, options={"block_time": block_time}) for k in kinds]
    return Topology(
        ledgers=[*topology.ledgers, *added],
        assets=[*topology.assets, *(a for spec in added for a in _assets(spec.name))],
    )
