"""HTLC operations on one UTXO ledger: fund, claim, refund, find, audit, reveal.

Everything is signed locally by keys the caller holds and broadcast with
``sendrawtransaction``; the node's mempool and consensus rules are the judge
(a rejected transaction raises :class:`~.rpc.RpcError` carrying the node's
reason).  Amounts are satoshis of the ledger's native coin: the asset concept
is kept to :class:`NativeAsset` so that Elements issued assets can slot in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Unpack

from bitcoin.core import CTransaction

from dvp import sendlog
from dvp.sendlog import SignedTx

from .chain import ChainView, Room
from .dialect import Dialect
from .keys import Key
from .rpc import RpcClient, RpcError
from .script import HtlcScript, parse_htlc_witness
from .tx import (
    CHAIN_LIMIT,
    SpendOptions,
    TxBuildError,
    Utxo,
    build_htlc_spend,
    build_payment,
    min_htlc_amount,
    select_coins,
    tx_hex,
)


@dataclass(frozen=True)
class NativeAsset:
    """The chain's own coin, in satoshis.  Elements issued assets will add an asset id."""

    symbol: str = "BTC"
    kind: str = "native"


class AuditError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class NoFunding(AuditError):
    pass


@dataclass(frozen=True)
class Funding:
    utxo: Utxo
    confirmations: int


@dataclass(frozen=True)
class HtlcStatus:
    """What the chain says about one HTLC script."""

    htlc: HtlcScript
    outputs: list[Utxo]  # every output ever paid to the script
    unspent: list[Utxo]
    claim_txid: str | None = None
    refund_txid: str | None = None
    preimage: bytes | None = None
    spend_height: int | None = None


# (purpose, payer) of the transaction being sent in a swap's step: set by the adapter around
# the call that builds and broadcasts it, so that broadcast_raw journals it first.
_journaled_as: ContextVar[tuple[str, str] | None] = ContextVar("dvp_utxo_journaled_as", default=None)


@contextmanager
def journaled_as(purpose: str, payer: str) -> Iterator[None]:
    """The transaction broadcast within this block is a swap's ``purpose``, paid by ``payer``:
    its signed bytes go to the journal (:func:`dvp.sendlog.before_broadcast`) before it is sent."""
    token = _journaled_as.set((purpose, payer))
    try:
        yield
    finally:
        _journaled_as.reset(token)


# Releases the adapter's send lock once the transaction being sent is recorded in the chain
# view (its inputs spent for the next coin selection): set by UtxoAdapter._sending.
_release_send: ContextVar[Callable[[], None] | None] = ContextVar("dvp_utxo_release_send", default=None)


@contextmanager
def release_early(release: Callable[[], None]) -> Iterator[None]:
    """Within this block, :meth:`UtxoLedger.broadcast_raw` calls ``release`` as soon as the
    transaction it sends is recorded in the chain view, before journaling and broadcasting it."""
    token = _release_send.set(release)
    try:
        yield
    finally:
        _release_send.reset(token)


# Blocks one send's wait for room mines at most on a dev chain without a block clock: one
# makes room (a regtest block takes the whole mempool), so a refusal that outlasts a few is
# not one more blocks cure, and mining on would move the clock of every lock on the chain.
MAX_MINED = 3


@dataclass
class _Wait:
    """One send's wait for room: its deadline (the event loop's clock) and the blocks mined."""

    deadline: float
    mined: int = 0


# The wait for room of the send under way: set by the adapter around a step's send, so the
# wait before it is built and the wait after the node refused the signed transaction share
# one deadline and one budget of blocks mined.
_room: ContextVar[_Wait | None] = ContextVar("dvp_utxo_room", default=None)


@contextmanager
def room_until(deadline: float) -> Iterator[None]:
    """Within this block, :meth:`UtxoLedger.broadcast_raw` resends a transaction the node
    refuses for its mempool chain limits until ``deadline`` (loop time) at most, and the
    waits for a block mine :data:`MAX_MINED` blocks at most between them."""
    token = _room.set(_Wait(deadline))
    try:
        yield
    finally:
        _room.reset(token)


# A claim being sent: not sent again, after a refusal for the chain limits, once the tip has
# reached its lock height (the refund valid too: rule 4).  Set by the adapter's claim.
_send_below: ContextVar[int | None] = ContextVar("dvp_utxo_send_below", default=None)


@contextmanager
def sent_below(height: int) -> Iterator[None]:
    """Within this block, a transaction the node refuses for its mempool chain limits is not
    sent again once the chain view's tip reaches ``height`` (the node's refusal is raised)."""
    token = _send_below.set(height)
    try:
        yield
    finally:
        _send_below.reset(token)


_POLL = 0.1


def refused_for_chain(exc: RpcError) -> bool:
    """The node refused a transaction for its mempool chain limits (bitcoind, elementsd)."""
    return exc.method == "sendrawtransaction" and CHAIN_LIMIT in exc.message


class UtxoLedger:
    def __init__(self, rpc: RpcClient, dialect: Dialect, view: ChainView, *, fee_rate: float = 2.0):
        self.rpc = rpc
        self.dialect = dialect
        self.view = view
        self.fee_rate = fee_rate
        # How long a transaction the node's mempool chain limits hold back waits for the
        # blocks that make room (the adapter sets its finality timeout), and on a dev chain
        # without a block clock the address of the block mined instead of waiting.
        self.room_timeout = 60.0
        self.mine_to: str | None = None
        self._mining = asyncio.Lock()  # the waiters' one block at a time (the node refuses a second on the same tip)

    async def next_block(self, timeout: float) -> bool:
        """Wait until the chain view's tip moves on (on a dev chain without a block clock:
        mine a block, one for all the waiters, :data:`MAX_MINED` at most in the send's wait,
        :func:`room_until`); False if it did not within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        start, deadline = self.view.height, loop.time() + timeout
        wait = _room.get()
        while loop.time() < deadline:
            if self.mine_to is not None and (wait is None or wait.mined < MAX_MINED):
                if await self.mine(1, self.mine_to, unless_past=start) and wait is not None:
                    wait.mined += 1
            else:
                await self.view.wait_tick(_POLL)
                await self.view.refresh()
            if self.view.height > start:
                return True
        return False

    # -- transactions -------------------------------------------------------------------
    async def broadcast(self, tx: CTransaction) -> str:
        """Submit ``tx``; resubmitting one the node already has is not an error."""
        return await self.broadcast_raw(tx_hex(tx))

    async def broadcast_raw(self, raw_hex: str) -> str:
        """Submit a serialised transaction of this ledger's family (Bitcoin or Elements).

        It is recorded in the chain view first (its inputs spent, pending), so that within
        :func:`release_early` the next transaction is built while this one is journaled and
        broadcast; both wait for the pending transactions of ours they spend to be sent first.

        One that the node would refuse for its mempool chain limits, as the chain view
        counts them, is not: TxBuildError with code :data:`~.tx.CHAIN_LIMIT` (nothing
        journaled; the adapter waits for a block and builds again).  One the node refuses
        for them all the same (another process's transactions, not seen yet) is sent again,
        the same bytes, after each block, for :attr:`room_timeout` seconds at most."""
        wire = self.dialect.parse_tx(raw_hex)
        label = _journaled_as.get()
        if self.view.tx_height(wire.txid) is None and not self.view.in_mempool(wire.txid):
            why = self.view.over_limit((i.prev_txid, i.prev_vout) for i in wire.inputs)
            if why is not None:
                raise TxBuildError(f"transaction {wire.txid} held back: {why}", code=CHAIN_LIMIT)
        self.view.add_local(wire, pending=True)
        release = _release_send.get()
        if release is not None:
            release()
        try:
            await self.view.inputs_sent(wire)
            if label is not None:  # sign, journal, then broadcast
                await sendlog.before_broadcast([SignedTx(wire.txid, raw_hex, *label)])
            try:
                txid: str = await self._send_within_limits(raw_hex)
            except RpcError as exc:
                text = exc.message.lower()
                if (
                    exc.code == -27
                    or "already have transaction" in text
                    or "transaction already exists" in text
                    or "txn-already-known" in text
                ):
                    txid = wire.txid
                else:
                    raise
        except BaseException:
            self.view.forget_local(wire.txid)
            raise
        finally:
            self.view.sent(wire.txid)
        if label is not None:
            sendlog.sent(1, 1)
        return txid

    async def _send_within_limits(self, raw_hex: str) -> str:
        """``sendrawtransaction``; refused for the mempool chain limits, sent again after
        each block until the step's deadline (:func:`room_until`; else for :attr:`room_timeout`
        seconds; :data:`MAX_MINED` blocks mined at most on a dev chain; within
        :func:`sent_below`, until the tip reaches that height), then the node's refusal is raised."""
        loop = asyncio.get_running_loop()
        wait = _room.get()
        if wait is None:  # not within a step's wait for room: a wait of its own
            with room_until(loop.time() + self.room_timeout):
                return await self._send_within_limits(raw_hex)
        deadline = wait.deadline
        while True:
            try:
                txid: str = await self.rpc.call("sendrawtransaction", raw_hex)
                return txid
            except RpcError as exc:
                if not refused_for_chain(exc) or not await self.next_block(deadline - loop.time()):
                    raise
                below = _send_below.get()
                if below is not None and self.view.height >= below:
                    raise  # a claim at its lock height would race the refund (rule 4)

    async def pay(
        self, key: Key, outputs: list[tuple[bytes, int]], *, include_unconfirmed: bool = True
    ) -> CTransaction:
        """Build and sign (not broadcast) a payment from ``key``'s outputs, within the node's
        mempool chain limits."""
        utxos = self.view.unspent(key.script_pubkey, include_unconfirmed=include_unconfirmed)
        out_vbytes = sum(9 + len(s) for s, _ in outputs)
        chosen = select_coins(utxos, sum(v for _, v in outputs), self.fee_rate, out_vbytes, self.view.room())
        tx, _fee = build_payment(key, chosen, outputs, self.fee_rate)
        return tx

    def funding_tx(self, sender: Key, htlc: HtlcScript, amount: int, room: Room | None = None) -> CTransaction:
        if htlc.sender_pubkey != sender.pubkey:
            raise TxBuildError("the HTLC's sender key is not the funding key")
        floor = min_htlc_amount(htlc, self.fee_rate)
        if amount < floor:
            raise TxBuildError(
                f"amount {amount} sat is below {floor} sat: the claim or refund would leave dust", code="dust"
            )
        utxos = self.view.unspent(sender.script_pubkey)
        chosen = select_coins(utxos, amount, self.fee_rate, 43, room)
        tx, _fee = build_payment(sender, chosen, [(htlc.script_pubkey, amount)], self.fee_rate)
        return tx

    def check_funding(self, sender: Key, htlc: HtlcScript, amount: int, asset: str | None = None) -> None:
        """Build, without broadcasting, what :meth:`fund` would send: raises TxBuildError as
        it would (dust, funds short of amount plus fee; not the mempool chain limits, which
        only delay it)."""
        if asset is not None:
            raise TxBuildError(f"asset {asset}: this chain carries only its own coin")
        self.funding_tx(sender, htlc, amount)

    async def fund(self, sender: Key, htlc: HtlcScript, amount: int, asset: str | None = None) -> tuple[str, int]:
        """Lock ``amount`` sat in the HTLC; returns the funding outpoint.  ``asset``: None,
        the chain's coin (Elements: an asset id, see :class:`~.elements.ledger.ElementsLedger`)."""
        if asset is not None:
            raise TxBuildError(f"asset {asset}: this chain carries only its own coin")
        tx = self.funding_tx(sender, htlc, amount, self.view.room())
        txid = await self.broadcast(tx)
        vout = next(i for i, o in enumerate(tx.vout) if bytes(o.scriptPubKey) == htlc.script_pubkey)
        return txid, vout

    def claim_tx(
        self, htlc: HtlcScript, key: Key, preimage: bytes, utxos: list[Utxo] | None = None, **kw: Unpack[SpendOptions]
    ) -> CTransaction:
        utxos = utxos if utxos is not None else self.view.unspent(htlc.script_pubkey)
        tx, _ = build_htlc_spend(htlc, utxos, key, self.fee_rate, preimage=preimage, **kw)
        return tx

    def refund_tx(
        self, htlc: HtlcScript, key: Key, utxos: list[Utxo] | None = None, **kw: Unpack[SpendOptions]
    ) -> CTransaction:
        utxos = utxos if utxos is not None else self.view.unspent(htlc.script_pubkey)
        tx, _ = build_htlc_spend(htlc, utxos, key, self.fee_rate, refund=True, **kw)
        return tx

    async def claim(self, htlc: HtlcScript, key: Key, preimage: bytes) -> str:
        return await self.broadcast(self.claim_tx(htlc, key, preimage))

    async def refund(self, htlc: HtlcScript, key: Key) -> str:
        return await self.broadcast(self.refund_tx(htlc, key))

    async def mine(self, n: int, address: str, *, unless_past: int | None = None) -> list[str]:
        """Mine ``n`` blocks (dev chains), one caller at a time: the node refuses a block mined
        on a tip another call just moved.  ``unless_past``: nothing if the tip is above it by then."""
        async with self._mining:
            if unless_past is not None:
                await self.view.refresh(mempool=False)
                if self.view.height > unless_past:
                    return []
            hashes = await self.dialect.mine(self.rpc, n, address)
        await self.view.refresh()
        return hashes

    # -- reading ------------------------------------------------------------------------
    def status(self, htlc: HtlcScript) -> HtlcStatus:
        outs = self.view.outputs_to(htlc.script_pubkey)
        unspent, claim, refund, preimage, spend_height = [], None, None, None, None
        for u in outs:
            spend = self.view.spend_of(u.outpoint)
            if spend is None:
                unspent.append(u)
                continue
            seen = parse_htlc_witness(spend.witness)
            if seen is None or seen.htlc != htlc:
                continue  # cannot happen for a P2WSH output the node accepted a spend of
            if seen.path == "claim":
                claim = claim or spend.txid
                preimage = preimage or seen.preimage
            else:
                refund = refund or spend.txid
            if spend.height is not None:
                spend_height = max(spend_height or 0, spend.height)
        return HtlcStatus(htlc, outs, unspent, claim, refund, preimage, spend_height)

    def extract_preimage(self, htlc: HtlcScript) -> bytes | None:
        """The secret, read from the witness of a claim of this HTLC (chain or mempool)."""
        return self.status(htlc).preimage

    def audit(
        self,
        htlc: HtlcScript,
        amount: int,
        *,
        min_confirmations: int = 1,
        min_blocks_left: int = 1,
        lock_id: str | None = None,
        asset: str | None = None,
    ) -> Funding:
        """Find the funding output of ``htlc`` and check it against the agreed terms.

        The script is rebuilt from the terms (recipient key, sender key, hash,
        lock height) and must be byte for byte the one the output commits to;
        then amount, that it is unspent, its confirmations and the blocks left
        before the lock height.  Raises :class:`AuditError` naming the first
        mismatch.  Call after :meth:`ChainView.refresh`.
        """
        self.funding_outputs(htlc, lock_id)
        st = self.open_status(htlc)
        if asset is not None:
            raise AuditError("asset", f"{asset}: this chain carries only its own coin")
        candidates = [u for u in st.unspent if u.value == amount]
        if not candidates:
            raise AuditError("amount", f"expected {amount} sat, found outputs of {[u.value for u in st.unspent]} sat")
        return self.final_checks(htlc, candidates, min_confirmations, min_blocks_left)

    def funding_outputs(self, htlc: HtlcScript, lock_id: str | None) -> list[Utxo]:
        """The audit's first two checks: ``lock_id`` (if given) is the hash of the script rebuilt
        from the terms, and some output pays that script (they are returned)."""
        if lock_id is not None and lock_id != htlc.script_hash.hex():
            raise AuditError(
                "script",
                f"lock {lock_id} does not commit to the script rebuilt from the terms ({htlc.script_hash.hex()})",
            )
        outs = self.view.outputs_to(htlc.script_pubkey)
        if not outs:
            raise NoFunding("funding", f"no output pays the HTLC script {htlc.script_hash.hex()}")
        return outs

    def open_status(self, htlc: HtlcScript) -> HtlcStatus:
        """The status of ``htlc``, which must be neither claimed nor refunded (else AuditError)."""
        st = self.status(htlc)
        if st.claim_txid or st.refund_txid:
            raise AuditError(
                "status", f"already {'claimed' if st.claim_txid else 'refunded'} in {st.claim_txid or st.refund_txid}"
            )
        return st

    def final_checks(
        self, htlc: HtlcScript, candidates: list[Utxo], min_confirmations: int, min_blocks_left: int
    ) -> Funding:
        """The audit's last two checks, on the best-confirmed matching output: its
        confirmations, and the blocks left before the lock height."""
        best = max(candidates, key=lambda u: self.view.confirmations(u.height))
        conf = self.view.confirmations(best.height)
        if conf < min_confirmations:
            raise AuditError(
                "confirmations", f"{conf} < {min_confirmations} required (funding {best.txid}:{best.vout})"
            )
        left = htlc.lock_height - self.view.height
        if left < min_blocks_left:
            raise AuditError(
                "lock_height", f"{left} blocks left before lock height {htlc.lock_height} < {min_blocks_left} required"
            )
        return Funding(best, conf)
