"""HTLC, issuance, payments and single-ledger DvP on one Elements chain, wallet-less.

:class:`ElementsLedger` is :class:`dvp_utxo.htlc.UtxoLedger` (the same chain view,
broadcast and HTLC status reading) with the Elements builders of this package: every
output carries an explicit asset, fees are explicit outputs in the policy asset, and
an HTLC of an issued asset carries its fee reserve beside it (see :mod:`.htlc`).
"""

from __future__ import annotations

from ..chain import ChainView, Outpoint
from ..dialect import Dialect
from ..htlc import AuditError, Funding, UtxoLedger
from ..keys import Key
from ..rpc import RpcClient
from ..script import HtlcScript
from ..tx import Room, TxBuildError, Utxo, select_assets
from .assets import IssuedAsset
from .dvp_tx import DvpTerms, DvpTx, build_dvp
from .htlc import build_funding, build_htlc_spend, fee_reserve, min_htlc_amount
from .tx import ElementsTx, TxOut, build_issuance, build_payment, select_utxos


class ElementsLedger(UtxoLedger):
    def __init__(self, rpc: RpcClient, dialect: Dialect, view: ChainView, *, policy_asset: str, fee_rate: float = 1.0):
        super().__init__(rpc, dialect, view, fee_rate=fee_rate)
        self.policy_asset = policy_asset
        self._held: dict[str, frozenset[Outpoint]] = {}

    async def send(self, tx: ElementsTx) -> str:
        return await self.broadcast_raw(tx.hex)

    def hold(self, half: DvpTx) -> None:
        """Keep the inputs of a DvP ``half`` handed to a counterparty (not broadcast by us)
        out of :meth:`wallet`, so no other transaction of ours picks them, until one of them
        is spent: by the half itself, the order's cancellation or the buyer's revocation."""
        self._held[half.tx.txid] = frozenset(u.outpoint for u in half.spent)

    def held(self) -> set[Outpoint]:
        """The outpoints :meth:`hold` keeps out of :meth:`wallet` now."""
        for txid, outpoints in list(self._held.items()):
            if any(self.view.spend_of(op) is not None for op in outpoints):
                del self._held[txid]  # the half confirms, or can never confirm
        return set().union(*self._held.values())

    def wallet(self, key: Key) -> list[Utxo]:
        unspent = self.view.unspent(key.script_pubkey)
        if not self._held:
            return unspent
        held = self.held()
        return [u for u in unspent if u.outpoint not in held]

    def balance(self, script_pubkey: bytes, asset: str, *, min_conf: int = 1) -> int:
        return self.view.balance(script_pubkey, asset=asset, min_conf=min_conf)

    # -- payments and issuance ------------------------------------------------------------
    def payment_tx(self, key: Key, outputs: list[TxOut]) -> ElementsTx:
        """A payment from ``key``'s coins, chosen within the node's mempool chain limits."""
        needs: dict[str, int] = {}
        for o in outputs:
            needs[o.asset] = needs.get(o.asset, 0) + o.value
        chosen = select_utxos(self.wallet(key), needs, self.policy_asset, self.fee_rate, self.view.room())
        tx, _fee = build_payment(key, chosen, outputs, policy_asset=self.policy_asset, fee_rate=self.fee_rate)
        return tx

    def issuance_tx(self, key: Key, amount: int) -> tuple[ElementsTx, IssuedAsset]:
        """A new asset of ``amount`` units paid to ``key``, issued from one of its policy-asset outputs."""
        funds = select_utxos(self.wallet(key), {}, self.policy_asset, self.fee_rate, self.view.room())
        tx, issued, _fee = build_issuance(key, funds, amount, policy_asset=self.policy_asset, fee_rate=self.fee_rate)
        return tx, issued

    # -- hashed time-locks ------------------------------------------------------------------
    def min_lock(self, htlc: HtlcScript, asset: str) -> int:
        return min_htlc_amount(htlc, self.fee_rate, asset, self.policy_asset)

    def lock_cost(self, htlc: HtlcScript, asset: str) -> int:
        """Policy-asset units the sender spends beside the amount: the fee reserve locked
        with an issued asset (the funding transaction's own fee comes on top)."""
        return fee_reserve(htlc, self.fee_rate, asset, self.policy_asset)

    def elements_funding_tx(
        self, sender: Key, htlc: HtlcScript, asset: str, amount: int, room: Room | None = None
    ) -> ElementsTx:
        tx, _fee = build_funding(sender, htlc, asset, amount, self.wallet(sender), policy_asset=self.policy_asset,
                                 fee_rate=self.fee_rate, room=room)  # fmt: skip
        return tx

    def elements_spend_tx(self, htlc: HtlcScript, key: Key, *, preimage: bytes | None = None, refund: bool = False,
                          check: bool = True, destination: bytes | None = None) -> ElementsTx:  # fmt: skip
        utxos = self.view.unspent(htlc.script_pubkey)
        if any(u.confidential for u in self.view.outputs_to(htlc.script_pubkey)):
            raise TxBuildError("an output of this HTLC is confidential (blinded): it cannot be spent or audited here")
        tx, _fee = build_htlc_spend(htlc, utxos, key, policy_asset=self.policy_asset, fee_rate=self.fee_rate,
                                    preimage=preimage, refund=refund, check=check, destination=destination)  # fmt: skip
        return tx

    def check_funding(self, sender: Key, htlc: HtlcScript, amount: int, asset: str | None = None) -> None:
        self.elements_funding_tx(sender, htlc, asset or self.policy_asset, amount)

    async def fund(self, sender: Key, htlc: HtlcScript, amount: int, asset: str | None = None) -> tuple[str, int]:
        asset = asset or self.policy_asset
        tx = self.elements_funding_tx(sender, htlc, asset, amount, self.view.room())
        txid = await self.send(tx)
        vout = next(i for i, o in enumerate(tx.outputs) if o.script_pubkey == htlc.script_pubkey and o.asset == asset)
        return txid, vout

    async def claim(self, htlc: HtlcScript, key: Key, preimage: bytes) -> str:
        return await self.send(self.elements_spend_tx(htlc, key, preimage=preimage))

    async def refund(self, htlc: HtlcScript, key: Key) -> str:
        return await self.send(self.elements_spend_tx(htlc, key, refund=True))

    def locked(self, htlc: HtlcScript, asset: str) -> list[Utxo]:
        """The unspent outputs of ``asset`` in ``htlc`` (its fee reserve not counted)."""
        return [u for u in self.view.unspent(htlc.script_pubkey) if u.asset == asset]

    def audit(self, htlc: HtlcScript, amount: int, *, min_confirmations: int = 1, min_blocks_left: int = 1,
              lock_id: str | None = None, asset: str | None = None) -> Funding:  # fmt: skip
        """As :meth:`UtxoLedger.audit`, per asset (None: the policy asset): exactly ``amount`` of
        ``asset`` unspent in the script, no blinded output, and for an issued asset a fee reserve
        large enough to pay its claim or refund.  Raises :class:`AuditError` naming the first mismatch."""
        asset = asset or self.policy_asset
        outs = self.funding_outputs(htlc, lock_id)
        if any(u.confidential for u in outs):
            raise AuditError("confidential", "an output of the HTLC is blinded; only explicit locks can be audited")
        st = self.open_status(htlc)
        of_asset = [u for u in st.unspent if u.asset == asset]
        if not of_asset:
            raise AuditError(
                "asset", f"expected {asset}, the script holds {sorted({str(u.asset) for u in st.unspent})}"
            )
        candidates = [u for u in of_asset if u.value == amount]
        if not candidates:
            raise AuditError(
                "amount", f"expected {amount} on-chain units, found outputs of {[u.value for u in of_asset]}"
            )
        if asset != self.policy_asset:
            need = fee_reserve(htlc, self.fee_rate, asset, self.policy_asset)
            have = sum(u.value for u in st.unspent if u.asset == self.policy_asset)
            if have < need:
                raise AuditError(
                    "fee_reserve",
                    f"{have} sat of the policy asset locked beside the asset, {need} sat needed to claim or refund",
                )
        return self.final_checks(htlc, candidates, min_confirmations, min_blocks_left)

    # -- single-ledger DvP ------------------------------------------------------------------
    def dvp_tx(self, terms: DvpTerms, seller: Key, buyer: Key, *, fee_payer: str = "buyer") -> DvpTx:
        """The unsigned DvP transaction from each party's own outputs (the fee payer also
        brings policy-asset outputs for the fee)."""
        wallets = {"seller": self.wallet(seller), "buyer": self.wallet(buyer)}
        gives = {
            "seller": {terms.security_asset: terms.security_amount},
            "buyer": {terms.cash_asset: terms.cash_amount},
        }
        chosen: dict[str, list[Utxo]] = {}
        for role, wallet in wallets.items():
            room = self.view.room([u for c in chosen.values() for u in c])  # within the limits with the other's
            if role == fee_payer:
                chosen[role] = select_utxos(wallet, gives[role], self.policy_asset, self.fee_rate, room)
            else:
                asset, amount = next(iter(gives[role].items()))
                chosen[role] = select_assets(wallet, {asset: amount}, asset, lambda n: 0, room)  # pays no fee
        return build_dvp(
            terms,
            chosen["seller"],
            chosen["buyer"],
            policy_asset=self.policy_asset,
            fee_rate=self.fee_rate,
            fee_payer=fee_payer,
        )
