"""What the chain view reads from a block or transaction, whatever the node family.

Bitcoin and Elements serialise transactions differently (Elements adds asset tags,
value commitments, issuances and its own witness layout), but the chain view needs
the same few facts from both: the txid, the outpoints spent with their witnesses
(an HTLC claim reveals its preimage there), and the outputs created with their
value, script and, on Elements, asset.  Each dialect parses its own wire format
into these types (:meth:`dvp_utxo.dialect.Dialect.parse_tx`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bitcoin.core import CBlock, CTransaction, b2lx


@dataclass(frozen=True)
class WireIn:
    prev_txid: str  # display hex
    prev_vout: int
    witness: tuple[bytes, ...]


@dataclass(frozen=True)
class WireOut:
    script_pubkey: bytes
    value: int | None  # None: a confidential (blinded) value
    asset: str | None = None  # Elements: the explicit asset id; None on Bitcoin or when blinded
    confidential: bool = False


@dataclass(frozen=True)
class WireTx:
    txid: str
    coinbase: bool
    inputs: tuple[WireIn, ...]
    outputs: tuple[WireOut, ...]
    raw: bytes
    # Elements states its fee in explicit fee outputs; Bitcoin's is inputs minus outputs.
    explicit_fee: int | None = None


@dataclass(frozen=True)
class WireBlock:
    prev_hash: str  # display hex
    time: int
    txs: tuple[WireTx, ...]


def from_ctransaction(tx: CTransaction) -> WireTx:
    coinbase = tx.is_coinbase()
    wit = tx.wit.vtxinwit
    inputs = tuple(
        WireIn(
            b2lx(txin.prevout.hash),
            txin.prevout.n,
            tuple(bytes(x) for x in wit[i].scriptWitness.stack) if i < len(wit) else (),
        )
        for i, txin in enumerate(tx.vin)
    )
    outputs = tuple(WireOut(bytes(o.scriptPubKey), o.nValue) for o in tx.vout)
    return WireTx(b2lx(tx.GetTxid()), coinbase, () if coinbase else inputs, outputs, tx.serialize())


def from_cblock(block: CBlock) -> WireBlock:
    return WireBlock(b2lx(block.hashPrevBlock), block.nTime, tuple(from_ctransaction(tx) for tx in block.vtx))
