"""The chain's capacity on Elements for `dvp bench`: as on btcd (:mod:`dvp_utxo.bench`),
payments of the policy asset, each spending one output of one funding transaction."""

from __future__ import annotations

from typing import Any

from ..bench import OUTPUT, PAYMENT, capacity
from ..keys import Key
from ..tx import Utxo
from .adapter import ElementsAdapter
from .ledger import ElementsLedger
from .tx import TxOut, build_payment


async def chain_capacity(
    adapter: ElementsAdapter, asset: str, n: int, in_flight: int, timeout: float
) -> dict[str, Any]:
    ledger = adapter.ledger
    assert isinstance(ledger, ElementsLedger)
    policy = ledger.policy_asset

    async def fund(payer: Key, script: bytes, count: int) -> str:
        return await ledger.send(ledger.payment_tx(payer, [TxOut(script, policy, OUTPUT)] * count))

    def sign(key: Key, utxo: Utxo) -> tuple[str, str]:
        tx, _fee = build_payment(
            key, [utxo], [TxOut(key.script_pubkey, policy, PAYMENT)], policy_asset=policy, fee_rate=ledger.fee_rate
        )
        return tx.txid, tx.hex

    return await capacity(adapter, n, in_flight, timeout, fund, sign, coin=policy)
