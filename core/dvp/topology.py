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


def optional_ledgers(block_time: float = 1.0) -> list[LedgerSpec]:
    """Ledgers whose node binary users install themselves (elementsd): present only when
    their launcher finds it."""
    from .errors import ConfigError
    from .registry import launcher_class

    specs = []
    for name, kind in (("elements", "elements"),):
        try:
            ready = launcher_class(kind).missing() is None
        except (ConfigError, ImportError):  # the platform's package or its extra is not installed
            ready = False
        if ready:
            specs.append(LedgerSpec(name=name, kind=kind, options={"block_time": block_time}))
    return specs


def default(block_time: float = 1.0) -> Topology:
    """What `dvp up` and `dvp demo` start: two EVM chains, a Bitcoin-family regtest chain
    (btcd) whose one asset is its own coin, traded as cash, and, when elementsd is installed,
    an Elements chain whose bond and euro are issued assets."""
    evm = evm_pair(block_time)
    btc = LedgerSpec(name="btc", kind="utxo", options={"block_time": block_time})
    extra = optional_ledgers(block_time)
    return Topology(
        ledgers=[*evm.ledgers, btc, *extra],
        assets=[*evm.assets, Asset(symbol="BTC", ledger="btc", kind=AssetKind.CASH, decimals=8),
                *(a for spec in extra for a in _assets(spec.name))],
    )


def with_ledgers(topology: Topology, kinds: tuple[str, ...] | list[str], block_time: float = 1.0) -> Topology:
    """``topology`` plus one ledger per kind, named after it, with a bond and a cash token
    (e.g. ``geth``: a second EVM client next to anvil)."""
    added = [LedgerSpec(name=k, kind=k, options={"block_time": block_time}) for k in kinds]
    return Topology(ledgers=[*topology.ledgers, *added],
                    assets=[*topology.assets, *(a for spec in added for a in _assets(spec.name))])
