"""The Elements adapter (``kind: elements``): the UTXO adapter on an Elements chain.

Everything the Bitcoin-family adapter does (:class:`dvp_utxo.adapter.UtxoAdapter`:
the P2WSH HTLC whose witness script is the lock id, the chain view read block by
block, claims refused once the lock height is reached) holds unchanged; what
Elements adds:

* **issued assets**: a security and a cash asset (BOND, EUR) are Elements assets the
  issuer issues at bootstrap; their ids go to the config (and so to the run state).
  ``issue`` pays them out of the issuer's supply (the policy asset out of the
  issuer's or the miner's coins);
* **units**: Elements amounts carry 8 decimals, so a protocol base unit of an asset
  with ``decimals`` d is 10**(8 - d) on-chain units (:attr:`ElementsConfig.units`);
* **fees** are paid in the policy asset only, in explicit fee outputs: the lock's by
  the sender, and a claim's or refund's out of a fee reserve the sender locks beside
  an issued asset (so the recipient needs no policy asset to claim, and the refund
  needs no wallet input); the fees are journaled in the policy asset's symbol;
* **confidential outputs** are never spent or audited: the audit names them.
"""

from __future__ import annotations

from typing import Any

from dvp import errors
from dvp.models import Asset, Submitted

from ..adapter import UtxoAdapter
from ..boundary import utxo_errors
from ..chain import ChainView
from ..dialect import Dialect
from ..keys import p2wpkh_script
from ..rpc import RpcClient
from ..tx import Utxo
from .config import ElementsConfig
from .ledger import ElementsLedger
from .tx import TxOut

ISSUE_SUPPLY = 10**14  # on-chain units issued per asset at bootstrap (MAX_MONEY is 2.1e15)
ELEMENTS_DECIMALS = 8


class ElementsAdapter(UtxoAdapter):
    kind = "elements"
    config_model = ElementsConfig

    config: ElementsConfig

    def _make_ledger(self, rpc: RpcClient, dialect: Dialect, view: ChainView) -> ElementsLedger:
        return ElementsLedger(rpc, dialect, view, policy_asset=self.config.policy_asset, fee_rate=self.config.fee_rate)

    @property
    def ledger(self) -> ElementsLedger:
        led = super().ledger
        assert isinstance(led, ElementsLedger)
        return led

    # -- assets ----------------------------------------------------------------------------
    def _onchain(self, asset: str) -> tuple[str, int]:
        kind = self.known(self.config.assets, asset, "asset", f"unknown (known: {sorted(self.config.assets)})")
        return (self.config.policy_asset if kind == "native" else kind), self.config.units.get(asset, 1)

    def _symbol(self, asset_id: str | None) -> str | None:
        for sym, kind in self.config.assets.items():
            if (kind == "native" and asset_id == self.config.policy_asset) or kind == asset_id:
                return sym
        return None

    def _locked_asset(self, outputs: list[Utxo]) -> tuple[str, int]:
        # An issued asset is locked beside its policy-asset fee reserve: the issued one is the lock.
        issued = [u for u in outputs if u.asset != self.config.policy_asset]
        u = (issued or outputs)[0]
        sym = self._symbol(u.asset) or str(u.asset)
        return sym, u.value // self.config.units.get(sym, 1)

    async def bootstrap(self, assets: list[Asset]) -> dict[str, Any]:
        """Issue each asset of the topology that the config does not know yet, by the issuer,
        and wait until the issuances are final; returns the new ``assets`` and ``units``."""
        mapping, units = dict(self.config.assets), dict(self.config.units)
        todo = [a for a in assets if a.symbol not in mapping]
        if not todo:
            return {}
        issuer = self._key(self.config.issuer)
        await self._refresh("bootstrap")
        txids = []
        async with self._send_lock:
            for a in todo:
                with utxo_errors(f"issue {a.symbol}", self.name):
                    tx, issued = self.ledger.issuance_tx(issuer, ISSUE_SUPPLY)
                    txids.append(await self.ledger.send(tx))
                mapping[a.symbol] = issued.asset_id
                units[a.symbol] = 10 ** max(0, ELEMENTS_DECIMALS - a.decimals)
        for txid in txids:
            await self.wait_final(txid)
        self.config = self.config.model_copy(update={"assets": mapping, "units": units})
        return {"assets": mapping, "units": units}

    async def issue(self, asset: str, to: str, amount: int) -> Submitted:
        """Dev ledgers: pay ``amount`` of ``asset`` to ``to`` from the issuer's supply (the policy
        asset from the issuer, or from the miner when the issuer lacks it)."""
        onchain, unit = self._onchain(asset)
        out = [TxOut(p2wpkh_script(self._pubkey(to)), onchain, amount * unit)]
        await self._refresh("issue")
        async with self._send_lock:
            with utxo_errors(f"issue {asset}", self.name):
                payer = self._key(self.config.issuer)
                policy_left = self.ledger.balance(payer.script_pubkey, self.config.policy_asset, min_conf=0)
                if onchain == self.config.policy_asset and policy_left < amount * unit + 100_000 and self.config.miner in self._keys:
                    payer = self._key(self.config.miner)
                txid = await self.ledger.send(self.ledger.payment_tx(payer, out))
        return Submitted(ledger=self.name, tx_id=txid)
