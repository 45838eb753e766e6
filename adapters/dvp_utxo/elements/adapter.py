"""The Elements adapter (``kind: elements``): the UTXO adapter on an Elements chain.

Everything the Bitcoin-family adapter does (:class:`dvp_utxo.adapter.UtxoAdapter`:
the P2WSH HTLC whose witness script is the lock id, the chain view read block by
block, claims refused once the lock height is reached) holds unchanged; what
Elements adds:

* **issued assets**: a security and a cash asset (BOND, EUR) are Elements assets the
  issuer issues at bootstrap; their ids go to the config (and so to the run state).
  ``issue`` pays them out of the issuer's supply (the policy asset out of the
  issuer's or the miner's coins);
* **units**: a protocol base unit of an issued asset is :data:`ISSUED_UNIT` on-chain
  units (:attr:`ElementsConfig.units`), so that one base unit (one bond) is already
  above Elements' dust limit, which applies to issued assets too;
* **fees** are paid in the policy asset only, in explicit fee outputs: the lock's by
  the sender, and a claim's or refund's out of a fee reserve the sender locks beside
  an issued asset (so the recipient needs no policy asset to claim, and the refund
  needs no wallet input); the fees are journaled in the policy asset's symbol;
* **confidential outputs** are never spent or audited: the audit names them;
* **single-ledger DvP** in one transaction: the seller proposes by paying the
  security to its order output (:mod:`.order`, the order id is its script), the
  buyer accepts by building the transaction that spends it beside the buyer's own
  inputs, pays the security to the buyer and the cash to the seller; each party
  checks it from its own side and signs only its own inputs (:mod:`.dvp_tx`), and it
  is broadcast once.  Between two agents (:class:`dvp.adapter.CosignedDvp`) the buyer's
  half crosses the channel as a PSET (base64) and the seller audits, completes and
  broadcasts it.
"""

from __future__ import annotations

from typing import Any

from dvp import errors
from dvp.adapter import CosignedDvp, LedgerAdapter, LedgerConfig
from dvp.models import Asset, DvpOrder, OrderState, OrderStatus, Submission, TxPurpose

from ..adapter import ISSUER_SIGNS, DevUtxoAdapter, UtxoAdapter
from ..boundary import utxo_errors
from ..chain import ChainView
from ..dialect import Dialect
from ..htlc import journaled_as
from ..keys import Key, p2wpkh_script
from ..rpc import RpcClient
from ..script import HtlcScript, ScriptError
from ..tx import Utxo, fee_for
from .config import ElementsConfig
from .dvp_tx import DvpError, DvpTerms, DvpTx, build_dvp, check_dvp, finalize_dvp, sign_dvp, signed_vsize
from .launcher import address_of
from .ledger import ElementsLedger
from .order import OrderScript, build_cancel, order_hash, spend_back
from .tx import ElementsTx, TxOut, select_utxos

ISSUE_SUPPLY = 10**15  # on-chain units issued per asset at bootstrap (MAX_MONEY is 2.1e15)
ISSUED_UNIT = 1_000  # on-chain units per base unit of an issued asset: above the 546-unit dust limit


class ElementsAdapter(UtxoAdapter, CosignedDvp):
    kind = "elements"
    config_model = ElementsConfig
    fee_unit = "sat"  # of the policy asset (L-BTC on Liquid), which pays every fee

    config: ElementsConfig

    @classmethod
    def for_config(cls, config: LedgerConfig) -> type[LedgerAdapter]:
        return DevElementsAdapter if isinstance(config, ElementsConfig) and config.dev else cls

    def _make_ledger(self, rpc: RpcClient, dialect: Dialect, view: ChainView) -> ElementsLedger:
        return ElementsLedger(rpc, dialect, view, policy_asset=self.config.policy_asset, fee_rate=self.config.fee_rate)

    @property
    def ledger(self) -> ElementsLedger:
        led = super().ledger
        assert isinstance(led, ElementsLedger)
        return led

    def address_of(self, party: str) -> str:
        """The party's unconfidential elementsregtest address (blocks are mined to the miner's)."""
        return address_of(p2wpkh_script(self._pubkey(party)))

    # -- assets ----------------------------------------------------------------------------
    def _onchain(self, asset: str) -> tuple[str, int]:
        kind = self.known(self.config.assets, asset, "asset", f"unknown (known: {sorted(self.config.assets)})")
        return (self.config.policy_asset if kind == "native" else kind), self.config.units.get(asset, 1)

    def unit_of(self, asset: str) -> str:
        """Issued assets in their base units (the trade's, not the x1000 on-chain units); the
        policy asset in sat of it."""
        return f"{self.fee_unit} of {asset}" if self.config.assets.get(asset) == "native" else asset

    def fee_unit_of(self) -> str:
        return self.unit_of(self._symbol(self.config.policy_asset) or "the policy asset")

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
        issuer = self._key(self.config.issuer, ISSUER_SIGNS)
        await self._refresh("bootstrap")
        txids = []
        for a in todo:
            async with self._sending():
                with utxo_errors(f"issue {a.symbol}", self.name):
                    tx, issued = self.ledger.issuance_tx(issuer, ISSUE_SUPPLY)
                    txids.append(await self.ledger.send(tx))
            mapping[a.symbol] = issued.asset_id
            units[a.symbol] = ISSUED_UNIT
        for txid in txids:
            await self.wait_final(txid)
        self.config = self.config.model_copy(update={"assets": mapping, "units": units})
        return {"assets": mapping, "units": units}

    async def _dev_issue(self, asset: str, to: str, amount: int) -> Submission:
        """Dev ledgers: pay ``amount`` of ``asset`` to ``to`` from the issuer's supply (the policy
        asset from the issuer, or from the miner when the issuer lacks it)."""
        onchain, unit = self._onchain(asset)
        out = [TxOut(p2wpkh_script(self._pubkey(to)), onchain, amount * unit)]
        await self._refresh("issue")

        async def send() -> tuple[str, Key]:
            async with self._sending():
                with utxo_errors(f"issue {asset}", self.name):
                    payer = self._key(self.config.issuer, ISSUER_SIGNS)
                    policy_left = self.ledger.balance(payer.script_pubkey, self.config.policy_asset, min_conf=0)
                    if (
                        onchain == self.config.policy_asset
                        and policy_left < amount * unit + 100_000
                        and self.config.miner in self._keys
                    ):
                        payer = self._key(self.config.miner)
                    return await self.ledger.send(self.ledger.payment_tx(payer, out)), payer

        txid, payer = await self._within_limits(send)
        payer_name = self.config.miner if payer is not self._key(self.config.issuer) else self.config.issuer
        return self._submission(txid, TxPurpose.ISSUE, payer_name)

    # -- who pays a claim's or refund's fee ----------------------------------------------------
    def _spend_payer(self, htlc: HtlcScript, spender: str) -> str:
        """An issued asset's claim or refund pays its fee from the policy-asset reserve the
        sender locked beside it: the sender paid that fee, whoever submits."""
        if not any(u.asset != self.config.policy_asset for u in self.view.outputs_to(htlc.script_pubkey)):
            return spender  # a policy-asset lock: the fee comes out of the amount, as on Bitcoin
        return self._party_name(htlc.sender_pubkey)

    # -- single-ledger DvP ------------------------------------------------------------------
    def _order(self, order: DvpOrder) -> OrderScript:
        return OrderScript(order_hash(order.model_dump(mode="json")), self._pubkey(order.seller))

    def order_id(self, order: DvpOrder) -> str:
        return self._order(order).script.hex()

    def _parse_order(self, order_id: str) -> OrderScript:
        try:
            return OrderScript.parse(bytes.fromhex(order_id))
        except (ScriptError, ValueError):
            raise errors.ConfigError(f"order {order_id[:20]}...: not an order id of ledger {self.name!r}") from None

    def _before_deadline(self, order: DvpOrder, what: str) -> None:
        """The next block is within the order's deadline: checked by each attempt of a send,
        under the send lock, so one built again after a wait for a block is checked again."""
        if self.view.height + 1 > order.deadline:
            raise errors.SubmitError(
                f"{what}: order deadline {order.deadline} passed (next block {self.view.height + 1})", code="deadline"
            )

    async def propose_dvp(self, order: DvpOrder) -> Submission:
        """The seller pays the security to the order's output (its consent, like an approve)."""
        script = self._order(order)
        sec, unit = self._onchain(order.security)
        seller = self._key(order.seller)
        await self._refresh("propose")

        async def send() -> str:
            async with self._sending():
                self._before_deadline(order, "propose")
                if self.view.outputs_to(script.script_pubkey):
                    raise errors.SubmitError(
                        f"propose: order {script.script.hex()[:20]}... exists already on {self.name}", code="duplicate"
                    )
                with utxo_errors("propose", self.name), journaled_as(TxPurpose.PROPOSE, order.seller):
                    tx = self.ledger.payment_tx(
                        seller, [TxOut(script.script_pubkey, sec, order.security_amount * unit)]
                    )
                    return await self.ledger.send(tx)

        txid = await self._within_limits(send)
        return self._submission(txid, TxPurpose.PROPOSE, order.seller)

    async def accept_dvp(self, order: DvpOrder) -> Submission:
        """The buyer builds the one transaction that moves both legs; each party checks and
        signs its own inputs; it is broadcast once."""
        await self._refresh("accept")

        async def send() -> str:
            async with self._sending():
                self._before_deadline(order, "accept")
                with utxo_errors("accept", self.name), journaled_as(TxPurpose.ACCEPT, order.buyer):
                    return await self.ledger.send(self.signed_dvp(order))

        txid = await self._within_limits(send)
        return self._submission(txid, TxPurpose.ACCEPT, order.buyer)  # fee_payer="buyer"

    def signed_dvp(self, order: DvpOrder) -> ElementsTx:
        """The DvP transaction of ``order`` from the chain view as it stands, checked and signed
        by the buyer, then the seller, each for its own inputs (not broadcast)."""
        terms = self._dvp_terms(order)
        with utxo_errors("accept", self.name):
            half = self._buyers_half(order, terms)
            seller = self._key(order.seller)
            signed = sign_dvp(half, seller, terms, "seller", policy_asset=self.config.policy_asset, max_fee=half.fee)
            return finalize_dvp(signed)

    def _dvp_terms(self, order: DvpOrder) -> DvpTerms:
        """The order's DvP terms in on-chain units, from the parties' public keys only."""
        sec, sec_unit = self._onchain(order.security)
        cash, cash_unit = self._onchain(order.cash)
        return DvpTerms(self._pubkey(order.seller), self._pubkey(order.buyer), sec, order.security_amount * sec_unit,
                        cash, order.cash_amount * cash_unit, seller_order=self._order(order).script)  # fmt: skip

    def _max_fee(self, tx: ElementsTx) -> int:
        return fee_for(2 * tx.vsize, self.config.fee_rate)

    def _buyers_half(self, order: DvpOrder, terms: DvpTerms) -> DvpTx:
        """The DvP transaction the buyer builds from the chain view, signed on its inputs only."""
        script = OrderScript.parse(terms.seller_order)
        offered = [
            u for u in self.view.unspent(script.script_pubkey)
            if u.asset == terms.security_asset and u.value == terms.security_amount
        ]  # fmt: skip
        if not offered:
            raise errors.SubmitError(
                f"accept: no open order {script.script.hex()[:20]}... on {self.name}", code="no-order"
            )
        policy = self.config.policy_asset
        buyer = self._key(order.buyer, "to sign the buyer's inputs")
        chosen = select_utxos(self.ledger.wallet(buyer), {terms.cash_asset: terms.cash_amount}, policy,
                              self.config.fee_rate, self.view.room(offered[:1]))  # fmt: skip
        dvp = build_dvp(
            terms, offered[:1], chosen, policy_asset=policy, fee_rate=self.config.fee_rate, fee_payer="buyer"
        )
        return sign_dvp(dvp, buyer, terms, "buyer", policy_asset=policy, max_fee=self._max_fee(dvp.tx))

    async def sign_as_buyer(self, order: DvpOrder) -> str:
        """The buyer's half as a PSET (base64): built, checked and signed on the buyer's inputs."""
        terms = self._dvp_terms(order)
        await self._refresh("accept")

        async def build() -> str:
            async with self._send_lock:  # no lock or other half of ours picks the same coins meanwhile
                self._before_deadline(order, "accept")
                with utxo_errors("accept", self.name):
                    half = self._buyers_half(order, terms)
                    self.ledger.hold(half)
                    return half.to_pset()

        return await self._within_limits(build)

    def hold_half(self, order: DvpOrder, half: str) -> None:
        """A resumed buyer's journaled ``half``: its inputs are kept out of the buyer's coin
        selection again (see :meth:`ElementsLedger.hold`)."""
        with utxo_errors("accept", self.name):
            self.ledger.hold(DvpTx.from_pset(half, "buyer"))

    async def half_void(self, order: DvpOrder, half: str) -> bool:
        """True when the chain view shows an input of ``half`` spent by another transaction
        (the half can never confirm)."""
        await self._refresh("revoke")
        with utxo_errors("revoke", self.name):
            dvp = DvpTx.from_pset(half, "buyer")
        spends = [self.view.spend_of(u.outpoint) for u in dvp.spent]
        return any(s is not None and s.txid != dvp.tx.txid for s in spends)

    def _audit_half(self, half: DvpTx, terms: DvpTerms) -> None:
        """The seller's audit of the buyer's half: each input spends an unspent output exactly
        as the chain has it, the buyer's inputs are signed, the fee is at least the ledger's
        rate for its size once the seller has signed too (:func:`signed_vsize`), and
        :func:`check_dvp` from the seller's side (it gives the security, receives
        the cash in full, pays nothing else)."""
        for i, u in enumerate(half.spent):
            onchain = self.view.output(u.outpoint)
            if onchain is None or self.view.spend_of(u.outpoint) is not None:
                raise DvpError(f"input {i} spends {u.txid}:{u.vout}, not an unspent output on {self.name}")
            if (onchain.script_pubkey, onchain.asset, onchain.value) != (u.script_pubkey, u.asset, u.value):
                raise DvpError(f"input {i}: its witness_utxo is not the output {u.txid}:{u.vout} on {self.name}")
            if half.owner(i, terms) == "buyer" and not half.signed[i]:
                raise DvpError(f"input {i}: the buyer's input is not signed")
        size = signed_vsize(half, terms)  # the seller's witnesses added: what the node will be sent
        if half.fee < fee_for(size, self.config.fee_rate):
            raise DvpError(f"fee {half.fee} is below the ledger's rate for {size} vbytes once signed")
        check_dvp(half, terms, "seller", policy_asset=self.config.policy_asset, max_fee=0)

    async def complete_as_seller(self, order: DvpOrder, half: str) -> Submission:
        """Audit the buyer's PSET against ``order``, sign the seller's inputs, broadcast."""
        terms = self._dvp_terms(order)
        await self._refresh("settle")

        async def send() -> str:
            async with self._sending():
                self._before_deadline(order, "settle")
                try:
                    dvp = DvpTx.from_pset(half, "buyer")
                    self._audit_half(dvp, terms)
                except DvpError as exc:
                    raise errors.AuditFailed(f"the buyer's PSET refused: {exc}", code="pset") from None
                with utxo_errors("settle", self.name), journaled_as(TxPurpose.ACCEPT, order.buyer):
                    seller = self._key(order.seller, "to sign the seller's inputs")
                    signed = sign_dvp(dvp, seller, terms, "seller", policy_asset=self.config.policy_asset, max_fee=0)
                    return await self.ledger.send(finalize_dvp(signed))

        txid = await self._within_limits(send)
        return self._submission(txid, TxPurpose.ACCEPT, order.buyer)  # the buyer's inputs pay the fee

    async def revoke_as_buyer(self, order: DvpOrder, half: str) -> Submission:
        """The buyer spends the inputs of its ``half`` still unspent back to itself (fee from
        them), so the half can never confirm."""
        buyer = self._key(order.buyer, "to spend the buyer's inputs back")
        await self._refresh("revoke")

        async def send() -> str:
            async with self._sending():
                with utxo_errors("revoke", self.name), journaled_as(TxPurpose.CANCEL, order.buyer):
                    mine = [
                        u for u in DvpTx.from_pset(half, "buyer").spent
                        if u.script_pubkey == buyer.script_pubkey and self.view.spend_of(u.outpoint) is None
                    ]  # fmt: skip
                    if not mine:
                        raise errors.SubmitError(
                            f"revoke: the half's inputs are spent already on {self.name}", code="spent"
                        )
                    policy = self.config.policy_asset
                    tx, _fee = spend_back(buyer, mine, policy_asset=policy, fee_rate=self.config.fee_rate)
                    return await self.ledger.send(tx)

        txid = await self._within_limits(send)
        return self._submission(txid, TxPurpose.CANCEL, order.buyer)

    async def cancel_dvp(self, order: DvpOrder) -> Submission:
        """The seller spends its order output back to itself (fee from its policy-asset
        outputs): the order script admits only the seller's key, and the DvP transaction
        can no longer spend the output, so the node refuses a later acceptance."""
        script = self._order(order)
        seller = self._key(order.seller)
        await self._refresh("cancel")

        async def send() -> str:
            async with self._sending():
                offered = self.view.unspent(script.script_pubkey)
                if not offered:
                    raise errors.SubmitError(
                        f"cancel: no open order {script.script.hex()[:20]}... on {self.name}", code="no-order"
                    )
                with utxo_errors("cancel", self.name), journaled_as(TxPurpose.CANCEL, order.seller):
                    policy = self.config.policy_asset
                    room = self.view.room(offered)
                    funds = select_utxos(self.ledger.wallet(seller), {}, policy, self.config.fee_rate, room)
                    tx, _fee = build_cancel(
                        script, offered, seller, funds, policy_asset=policy, fee_rate=self.config.fee_rate
                    )
                    return await self.ledger.send(tx)

        txid = await self._within_limits(send)
        return self._submission(txid, TxPurpose.CANCEL, order.seller)

    async def get_order(self, order_id: str) -> OrderState | None:
        """From the chain alone: no order output (None), unspent (open), spent by a transaction
        paying the seller another issued asset and the security to someone else (settled), or
        spent otherwise (cancelled)."""
        script = self._parse_order(order_id)
        await self._refresh("read order")
        outs = self.view.outputs_to(script.script_pubkey)
        if not outs:
            return None
        if any(self.view.spend_of(u.outpoint) is None for u in outs):
            return OrderState(order_id=order_id, status=OrderStatus.OPEN)
        seller = p2wpkh_script(script.seller_pubkey)
        policy = self.config.policy_asset
        for u in outs:
            spend = self.view.spend_of(u.outpoint)
            paid = self.view.outputs_of(spend.txid) if spend else []
            delivered = any(o.asset == u.asset and o.value >= u.value and o.script_pubkey != seller for o in paid)
            paid_seller = any(o.script_pubkey == seller and o.asset not in (u.asset, policy) for o in paid)
            if delivered and paid_seller:
                return OrderState(order_id=order_id, status=OrderStatus.SETTLED)
        return OrderState(order_id=order_id, status=OrderStatus.CANCELLED)


class DevElementsAdapter(ElementsAdapter, DevUtxoAdapter):
    """An Elements dev chain (``dev: true``): mining on demand moves its clock and pays out
    test coins of its issued assets."""
