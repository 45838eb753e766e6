"""The UTXO adapter (``kind: utxo``): P2WSH hashed time-locks on btcd / bitcoind.

How the protocol maps onto a UTXO chain:

* **clock**: block height (:attr:`ClockKind.HEIGHT`); ``expiry`` is the CLTV lock
  height, and a refund is valid once the tip has reached it (the refund spends
  in the next block, whose height is above its nLockTime).
* **lock id**: the HTLC witness script itself, as hex.  It is derived from the
  terms alone (recipient key, sender key, hashlock, expiry) so the journal has
  it before broadcast, and it is self-describing: after a restart,
  :meth:`get_lock` rebuilds the terms the chain holds from the id and the
  chain, no local state needed; the nonce, which the chain does not hold, is
  None, never guessed.  The P2WSH output it is funded at is ``OP_0 sha256(script)``.
  ``amount``, ``asset`` and ``nonce`` are not part of the script: two locks
  with the same parties, hashlock and expiry share one id, so :meth:`lock`
  refuses a second funding of a script (docs/design.md, rule 7).
* **amounts**: satoshis of the native coin.  Fees are paid in the same coin:
  the lock's fee by the sender on top of the amount, the claim's or refund's
  fee out of the locked amount (so the recipient needs no coins to claim).
  A lock below the amount whose claim and refund both stay above dust is
  refused (rule 9).
* **claim after expiry**: the script does not forbid it (the claim branch has
  no time lock), so a claim and a refund would race once the lock height is
  reached.  The adapter refuses such a claim with ``LockExpired`` before it
  reveals anything (rule 4); the ledger itself does not.
* **who signs**: only the recipient's key can sign a claim and only the
  sender's a refund.  A claim is signed with the recipient's key whoever
  ``submitter`` is (it pays the recipient either way) if this adapter holds
  that key; a refund must be submitted by the sender.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

from dvp import errors
from dvp.adapter import Issuing, LedgerAdapter, LedgerConfig, Observable, TimeTravel
from dvp.errors import no_key
from dvp.hashlock import matches
from dvp.models import (
    Asset,
    AssetKind,
    ClockKind,
    Finality,
    HtlcTerms,
    LedgerTerms,
    LedgerTime,
    LockEvent,
    LockState,
    LockStatus,
    Submission,
    Submitted,
    TxPurpose,
    TxStatus,
)
from dvp.sendlog import SignedTx
from dvp.units import Quantity, funds_short

from .boundary import utxo_errors
from .chain import ChainView
from .config import UtxoConfig
from .dialect import Dialect, dialect_for
from .htlc import HtlcStatus, UtxoLedger, journaled_as, release_early, room_until, sent_below
from .keys import Key, StandIn, check_network, check_pubkey, p2wpkh_address, p2wpkh_script, pubkey_hash
from .rpc import RpcClient
from .script import HtlcScript, ScriptError, parse_htlc_witness
from .tx import CHAIN_LIMIT, TxBuildError, Utxo

_T = TypeVar("_T")
_POLL = 0.1
_HEX = re.compile(r"(?:0x)?(?:[0-9a-fA-F]{2})+")  # a lock id: its script in hex (bytes.fromhex would skip spaces)
ISSUER_SIGNS = "issuing is signed by the issuer"


class UtxoAdapter(LedgerAdapter, Observable):
    """A Bitcoin-family chain whose blocks come on their own: no mining or paying out on
    demand.  A dev chain's config (``dev: true``) gets :meth:`for_config`'s variant, which
    adds :class:`~dvp.adapter.Issuing` and :class:`~dvp.adapter.TimeTravel`."""

    kind = "utxo"
    config_model: ClassVar[type[LedgerConfig]] = UtxoConfig
    clock = ClockKind.HEIGHT
    fee_unit = "sat"

    config: UtxoConfig

    @classmethod
    def for_config(cls, config: LedgerConfig) -> type[LedgerAdapter]:
        return DevUtxoAdapter if isinstance(config, UtxoConfig) and config.dev else cls

    def __init__(self, name: str, config: UtxoConfig):
        super().__init__(name, config)
        try:
            check_network(config.network)
        except ValueError as exc:
            raise errors.ConfigError(f"ledgers.{name}.{exc}") from None
        try:
            self._keys = {p: Key.parse(k.get_secret_value(), config.network) for p, k in config.keys.items()}
        except ValueError as exc:
            raise errors.ConfigError(f"ledgers.{name}.keys: {exc}") from None
        self._pubkeys: dict[str, bytes] = {p: k.pubkey for p, k in self._keys.items()}
        for p, text in config.pubkeys.items():
            self._pubkeys.setdefault(p, bytes.fromhex(text.removeprefix("0x")))
        self._parties = {v: p for p, v in self._pubkeys.items()}
        # Lock ids this adapter funded or audited: the only fundings observe() can recognise,
        # since a P2WSH output hides its script until spent.
        self._watched: set[str] = set()
        self._send_lock = asyncio.Lock()
        self._rpc: RpcClient | None = None
        self._view: ChainView | None = None
        self._ledger: UtxoLedger | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        c = self.config
        self._rpc = RpcClient(c.rpc_url, c.rpc_user, c.rpc_password.get_secret_value(), timeout=c.request_timeout)
        dialect = dialect_for(c.dialect)
        self._view = ChainView(self._rpc, dialect, start_height=c.start_height, limits=dialect.limits)
        self._ledger = self._make_ledger(self._rpc, dialect, self._view)
        self._ledger.room_timeout = self.finality_timeout(None)
        if c.dev and c.mine_on_wait:  # no block clock: the block that makes room is mined
            self._ledger.mine_to = self.address_of(c.miner) if c.miner in self._pubkeys else ""
        with utxo_errors("connect", self.name):
            info = await self._rpc.call("getblockchaininfo")
            if info.get("chain") != c.network:
                raise errors.ConfigError(
                    f"ledgers.{self.name}.network: configured {c.network}, node reports {info.get('chain')}"
                )
            await self._view.refresh()

    def _make_ledger(self, rpc: RpcClient, dialect: Dialect, view: ChainView) -> UtxoLedger:
        return UtxoLedger(rpc, dialect, view, fee_rate=self.config.fee_rate)

    async def aclose(self) -> None:
        if self._view is not None:
            self._view.close()
        if self._rpc is not None:
            await self._rpc.aclose()
            self._rpc = None

    @property
    def ledger(self) -> UtxoLedger:
        if self._ledger is None or self._rpc is None:
            raise errors.LedgerUnavailable(f"ledger {self.name!r} is not connected")
        return self._ledger

    @property
    def view(self) -> ChainView:
        return self.ledger.view

    @asynccontextmanager
    async def _sending(self) -> AsyncIterator[None]:
        """The send lock for choosing and signing one swap step's transaction; released as
        soon as the transaction is recorded in the chain view (its inputs spent), so the
        next swap's lock or claim is built while this one is journaled and broadcast.

        Every send takes the lock here, so none holds it while it waits for a block (the
        node's mempool chain limits: :meth:`_within_limits`, :meth:`UtxoLedger.broadcast_raw`);
        a claim checks its lock height under it, right before it is built, and a block that
        came while it waited for the lock is seen (rule 4)."""
        await self._send_lock.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._send_lock.release()

        try:
            with release_early(release):
                yield
        finally:
            release()

    async def _within_limits(self, send: Callable[[], Awaitable[_T]]) -> _T:
        """``send()`` (a step's choosing, signing and sending, under :meth:`_sending`), again
        after each block while it stops at the node's mempool chain limits (SubmitError with
        code :data:`~.tx.CHAIN_LIMIT`: every coin it could spend is chained too deep in the
        mempool, nothing was journaled or sent), with the send lock free meanwhile; for the
        ledger's finality timeout at most, then that error, saying so.  A signed transaction
        the node refuses for those limits is sent again after each block within the same
        deadline (:func:`~.htlc.room_until`), then HeldBack."""
        timeout = self.ledger.room_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with room_until(deadline):
            while True:
                try:
                    return await send()
                except errors.SubmitError as exc:
                    if exc.code != CHAIN_LIMIT:
                        raise
                    with utxo_errors("wait for a block", self.name):
                        moved = await self.ledger.next_block(deadline - loop.time())
                    if not moved:
                        raise errors.SubmitError(
                            f"{exc}; no block made room within {timeout:.0f} s", tx_id=exc.tx_id, code=CHAIN_LIMIT
                        ) from None

    async def _refresh(self, what: str, mempool: bool = True) -> None:
        with utxo_errors(what, self.name):
            await self.view.refresh(mempool=mempool)

    # -- set-up -------------------------------------------------------------------------------
    async def bootstrap(self, assets: list[Asset]) -> dict[str, Any]:
        """Map the ledger's one cash asset onto the native coin; nothing to deploy.

        A security, or a second cash asset, needs issued assets (Elements): refused."""
        cash = [a for a in assets if a.kind is AssetKind.CASH]
        other = [a for a in assets if a.kind is not AssetKind.CASH] + cash[1:]
        if other:
            names = ", ".join(repr(a.symbol) for a in other)
            raise errors.NotSupportedError(
                f"ledgers.{self.name}: assets {names} need issued assets (Elements); "
                "this ledger carries one cash asset, its native coin"
            )
        mapping = dict(self.config.assets)
        for a in cash:
            mapping[a.symbol] = "native"
        if mapping == self.config.assets:
            return {}
        self.config = self.config.model_copy(update={"assets": mapping})
        return {"assets": mapping}

    # -- clock and finality ---------------------------------------------------------------
    async def now(self) -> LedgerTime:
        await self._refresh("read clock", mempool=False)
        return LedgerTime(height=self.view.height, timestamp=float(self.view.tip_time))

    @property
    def finality(self) -> Finality:
        c = self.config
        return Finality.by_confirmations(c.confirmations, c.block_interval, c.clock_skew)

    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        timeout = self.finality_timeout(timeout)
        deadline = time.monotonic() + timeout
        missing = 0
        while True:
            await self._refresh(f"wait for {tx_id}")
            height = self.view.tx_height(tx_id)
            if height is not None:
                if self.view.confirmations(height) >= self.config.confirmations:
                    return TxStatus(
                        tx_id=tx_id,
                        successful=True,
                        code=0,
                        block_number=height,
                        fee=self._fee(tx_id),
                        fee_asset=self._fee_asset(),
                    )
            elif not self.view.in_mempool(tx_id):
                missing += 1
                if missing >= 3:  # neither mined nor pending: replaced by a conflicting spend, or dropped
                    raise errors.CommitError(
                        f"{tx_id} on {self.name} is neither in a block nor in the mempool (conflicting spend?)",
                        tx_id=tx_id,
                        code="dropped",
                    )
            if time.monotonic() > deadline:
                raise errors.FinalityTimeout(
                    f"{tx_id} not final after {timeout:.0f}s on {self.name}", tx_id=tx_id, code="timeout"
                )
            if self.config.dev and self.config.mine_on_wait and (height is not None or self.view.in_mempool(tx_id)):
                await self._mine(1)
            else:  # every swap waiting on this ledger polls on the same tick, in one refresh
                await self.view.wait_tick(_POLL)

    def _fee(self, tx_id: str) -> int | None:
        return self.view.fee_of(tx_id)

    def _fee_asset(self) -> str | None:
        """Fees are paid in the native coin, traded here under this symbol."""
        return next((s for s, kind in self.config.assets.items() if kind == "native"), None)

    async def _dev_advance_time(self, seconds: int) -> None:
        await self._mine(max(1, math.ceil(seconds / self.config.block_interval)))

    async def _mine(self, blocks: int) -> None:
        with utxo_errors("mine", self.name):
            await self.ledger.mine(
                blocks, self.address_of(self.config.miner) if self.config.miner in self._pubkeys else ""
            )

    # -- accounts and assets ----------------------------------------------------------------
    def forget_sending_state(self, party: str) -> None:
        """Another process may have sent from ``party``'s coins (a worker that held the
        account before this one): the chain view drops its unconfirmed transactions paying
        to or spending from them, and re-reads them from the node's mempool at the refresh
        every send starts with."""
        if self._view is not None and party in self._keys:
            self._view.forget_pending(self._keys[party].script_pubkey)

    def _key(self, party: str, why: str = "") -> Key:
        if party in self._pubkeys and party not in self._keys:  # a counterparty: known by its public key only
            raise no_key(self.name, party, self._keys, why)
        return self.known(self._keys, party, "party", "no key")

    def _pubkey(self, party: str) -> bytes:
        return self.known(self._pubkeys, party, "party", "no key or public key")

    def _native(self, asset: str) -> None:
        if self.config.assets.get(asset) != "native":
            raise errors.ConfigError(
                f"asset {asset!r}: unknown on ledger {self.name!r} (known: {sorted(self.config.assets)})"
            )

    def _onchain(self, asset: str) -> tuple[str | None, int]:
        """The asset as the chain names it (None: Bitcoin's coin) and its on-chain units per
        base unit of the protocol."""
        self._native(asset)
        return None, 1

    def pubkey_of(self, party: str) -> str:
        return self._pubkey(party).hex()

    def address_of(self, party: str) -> str:
        return p2wpkh_address(self._pubkey(party), self.config.network)

    async def balance(self, party: str, asset: str) -> int:
        onchain, unit = self._onchain(asset)
        await self._refresh("balance")
        return self.view.balance(p2wpkh_script(self._pubkey(party)), asset=onchain) // unit

    async def _dev_issue(self, asset: str, to: str, amount: int) -> Submission:
        """Pay ``amount`` sat of the native coin to ``to``, from the issuer or, when the
        issuer lacks the funds, from the miner's coinbase outputs."""
        self._native(asset)
        out = [(p2wpkh_script(self._pubkey(to)), amount)]
        await self._refresh("issue")

        async def send() -> tuple[str, str]:
            async with self._sending():
                with utxo_errors(f"issue {asset}", self.name):
                    payer = self.config.issuer
                    if (
                        self.view.balance(self._key(payer, ISSUER_SIGNS).script_pubkey, min_conf=0) < amount + 100_000
                        and self.config.miner in self._keys
                    ):
                        payer = self.config.miner
                    tx = await self.ledger.pay(self._key(payer), out)
                    return await self.ledger.broadcast(tx), payer

        txid, payer = await self._within_limits(send)
        return self._submission(txid, TxPurpose.ISSUE, payer)

    # -- hashed time-locks ----------------------------------------------------------------
    def _htlc(self, terms: HtlcTerms) -> HtlcScript:
        try:
            return HtlcScript(
                bytes.fromhex(terms.hashlock),
                check_pubkey(self._pubkey(terms.recipient)),
                check_pubkey(self._pubkey(terms.sender)),
                terms.expiry,
            )
        except (ScriptError, ValueError) as exc:
            raise errors.ConfigError(f"terms: {exc}") from None

    def _parse_id(self, lock_id: str) -> HtlcScript:
        try:
            if not _HEX.fullmatch(lock_id):
                raise ValueError(lock_id)
            return HtlcScript.parse(bytes.fromhex(lock_id.removeprefix("0x")))
        except (ScriptError, ValueError):
            raise self.malformed_lock_id(lock_id, "the hex of an HTLC script") from None

    def lock_id(self, terms: HtlcTerms) -> str:
        return self._htlc(terms).script.hex()

    async def check_lock(self, terms: HtlcTerms) -> None:
        """Build (not broadcast) the funding transaction: it fails exactly as the lock would
        for too small an amount (its claim or refund would leave dust) or too few coins
        for amount plus fee."""
        try:
            onchain, unit = self._onchain(terms.asset)
            htlc = self._htlc(terms)
            # A counterparty's lock is checked too (it is the ledger's verdict): its coins are
            # selected by its public key, and the funding is sized with a stand-in signature.
            sender = self._keys.get(terms.sender) or StandIn.of(self._pubkey(terms.sender))
        except errors.ConfigError as exc:
            raise errors.LockRefused(str(exc)) from None
        await self._refresh("check lock")
        try:
            self.ledger.check_funding(sender, htlc, terms.amount * unit, onchain)
        except TxBuildError as exc:
            if exc.code == "dust" or exc.need is None or exc.have is None:
                raise errors.LockRefused(f"lock on {self.name}: {exc}") from None
            if exc.asset != onchain:  # the coin that pays the fees, beside the asset locked
                coin = self.fee_unit_of()
                raise errors.LockRefused(
                    funds_short(
                        terms.sender, self.name, Quantity(exc.have, coin), Quantity(exc.need, coin), purpose=" for fees"
                    )
                ) from None
            have, name = await self.balance(terms.sender, terms.asset), self.unit_of(terms.asset)
            fee = exc.need - terms.amount * unit  # on-chain units of the locked asset: it pays its own fee
            raise errors.LockRefused(
                funds_short(
                    terms.sender,
                    self.name,
                    Quantity(have, name),
                    Quantity(terms.amount, name),
                    fee=Quantity(-(-fee // unit), name) if fee > 0 else None,
                )
            ) from None

    def unit_of(self, asset: str) -> str:
        """The chain's coin counts in sat; any other asset in its own base units."""
        return self.fee_unit if self.config.assets.get(asset) == "native" else asset

    def fee_unit_of(self) -> str:
        """What this chain's fees are counted in, for messages."""
        return self.fee_unit

    def _submission(self, txid: str, purpose: TxPurpose, payer: str) -> Submission:
        return Submission([Submitted(ledger=self.name, tx_id=txid, purpose=purpose, payer=payer)])

    async def lock(self, terms: HtlcTerms) -> Submission:
        onchain, unit = self._onchain(terms.asset)
        htlc = self._htlc(terms)
        lock_id = self.lock_id(terms)
        sender = self._key(terms.sender)
        await self._refresh("lock")

        async def send() -> str:
            async with self._sending():  # checked under the lock, as a claim's lock height is
                if htlc.lock_height <= self.view.height:
                    raise errors.LockExpired(
                        f"lock: expiry {htlc.lock_height} is not above the current height {self.view.height}"
                    )
                if self.view.outputs_to(htlc.script_pubkey):
                    raise errors.LockError(
                        f"lock: a lock with this script already exists on {self.name} (duplicate lock id)"
                    )
                with utxo_errors("lock", self.name), journaled_as(TxPurpose.LOCK, terms.sender):
                    txid, _vout = await self.ledger.fund(sender, htlc, terms.amount * unit, onchain)
                    return txid

        txid = await self._within_limits(send)
        self._watched.add(lock_id)
        return self._submission(txid, TxPurpose.LOCK, terms.sender)

    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        htlc = self._parse_id(lock_id)
        if len(preimage) != 32:
            raise errors.InvalidPreimage(f"preimage: must be exactly 32 bytes, got {len(preimage)}")
        if not matches(preimage, htlc.hashlock):
            raise errors.InvalidPreimage(f"claim {lock_id[:20]}...: sha256(preimage) does not match the hashlock")
        key = self._signer(htlc.recipient_pubkey, "claim", "recipient")
        await self._refresh("claim")

        async def send() -> tuple[str, str]:
            async with self._sending():
                # Checked under the send lock, right before the claim is built and sent (no
                # send waits for a block while holding it): the script would still take the
                # claim, but the refund is valid too now; revealing the secret in that race is
                # what rule 4 forbids.
                if self.view.height >= htlc.lock_height:
                    raise errors.LockExpired(
                        f"claim {lock_id[:20]}...: lock height {htlc.lock_height} reached (tip {self.view.height}); "
                        "a claim now races the sender's refund"
                    )
                st = self.ledger.status(htlc)
                if not st.unspent:
                    raise self._not_locked(lock_id, st, "claim")
                # The fee comes out of the locked amount: the recipient pays it, whoever submits.
                payer = self._spend_payer(htlc, self._party_name(htlc.recipient_pubkey))
                with (
                    utxo_errors("claim", self.name),
                    journaled_as(TxPurpose.CLAIM, payer),
                    sent_below(htlc.lock_height),
                ):
                    return await self.ledger.claim(htlc, key, preimage), payer

        txid, payer = await self._within_limits(send)
        return self._submission(txid, TxPurpose.CLAIM, payer)

    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        htlc = self._parse_id(lock_id)
        key = self._signer(htlc.sender_pubkey, "refund", "sender")
        if self._parties.get(htlc.sender_pubkey) != submitter:
            raise errors.LockError(f"refund {lock_id[:20]}...: only the sender may refund, not {submitter!r}")
        await self._refresh("refund")

        async def send() -> tuple[str, str]:
            async with self._sending():
                st = self.ledger.status(htlc)
                if not st.unspent:
                    raise self._not_locked(lock_id, st, "refund")
                payer = self._spend_payer(htlc, submitter)
                with utxo_errors("refund", self.name), journaled_as(TxPurpose.REFUND, payer):
                    return await self.ledger.refund(htlc, key), payer

        txid, payer = await self._within_limits(send)
        return self._submission(txid, TxPurpose.REFUND, payer)

    def _spend_payer(self, htlc: HtlcScript, spender: str) -> str:
        """Who pays the fee of a claim or refund of ``htlc``: the party spending it, out of
        the locked amount."""
        return spender

    async def rebroadcast(self, signed: SignedTx) -> None:
        """The journaled transaction again: nothing if in a block or the mempool; Superseded
        if one of its inputs is spent by another transaction (the proof: that spend);
        HeldBack if still over the node's mempool chain limits when the wait for room ends
        (it may confirm later: not proven dead)."""
        await self._refresh(f"rebroadcast {signed.tx_id}")
        if self.view.tx_height(signed.tx_id) is not None or self.view.in_mempool(signed.tx_id):
            return
        wire = self.ledger.dialect.parse_tx(signed.raw)

        async def send() -> None:
            async with self._sending():
                with utxo_errors(f"rebroadcast {signed.tx_id}", self.name, tx_id=signed.tx_id):
                    await self.ledger.broadcast_raw(signed.raw)

        try:
            await self._within_limits(send)
        except errors.TransactionError as exc:
            await self._refresh(f"rebroadcast {signed.tx_id}")
            for i in wire.inputs:
                spend = self.view.spend_of((i.prev_txid, i.prev_vout))
                if spend is not None and spend.txid != signed.tx_id:
                    where = f"in block {spend.height}" if spend.height is not None else "in the mempool"
                    raise errors.Superseded(
                        f"{signed.tx_id} on {self.name} can never confirm: its input {i.prev_txid}:{i.prev_vout} "
                        f"is spent by {spend.txid} ({where}); the node refused it: {exc}",
                        tx_id=signed.tx_id,
                        code="conflict",
                    ) from exc
            if exc.code == CHAIN_LIMIT and not isinstance(exc, errors.HeldBack):  # held back by the chain view
                raise errors.HeldBack(
                    f"rebroadcast {signed.tx_id} on {self.name}: not taken for now, not proven dead: {exc}",
                    tx_id=signed.tx_id,
                    code=CHAIN_LIMIT,
                ) from exc
            raise

    def _signer(self, pubkey: bytes, what: str, role: str) -> Key:
        party = self._parties.get(pubkey)
        if party is None:
            raise errors.LockError(
                f"{what}: only the {role}'s key can sign it, and ledger {self.name!r} does not know it"
            )
        return self._key(party, f"only the {role}'s key can sign a {what}")

    def _not_locked(self, lock_id: str, st: HtlcStatus, what: str) -> errors.DvpError:
        if st.claim_txid:
            return errors.LockError(f"{what} {lock_id[:20]}...: already claimed in {st.claim_txid}")
        if st.refund_txid:
            return errors.LockError(f"{what} {lock_id[:20]}...: already refunded in {st.refund_txid}")
        return errors.LockNotFound(f"{what} {lock_id[:20]}...: no funding output on {self.name}")

    def _party_name(self, pubkey: bytes) -> str:
        return self._parties.get(pubkey) or f"pkh-{pubkey_hash(pubkey).hex()}"

    def _locked_asset(self, outputs: list[Utxo]) -> tuple[str | None, int]:
        """(symbol, amount) of what an HTLC's outputs lock, read from the chain alone; the
        symbol is None when several symbols name the chain's coin."""
        coins = [s for s, kind in self.config.assets.items() if kind == "native"]
        return (coins[0] if len(coins) == 1 else None), outputs[0].value

    def _state(self, lock_id: str, htlc: HtlcScript) -> LockState | None:
        st = self.ledger.status(htlc)
        if not st.outputs:
            return None
        asset, amount = self._locked_asset(st.outputs)
        terms = LedgerTerms(
            sender=self._party_name(htlc.sender_pubkey),
            recipient=self._party_name(htlc.recipient_pubkey),
            asset=asset,
            amount=amount,  # lock() refuses a second funding of a script
            hashlock=htlc.hashlock.hex(),
            expiry=htlc.lock_height,
        )
        if st.claim_txid:
            status, height = LockStatus.CLAIMED, st.spend_height
        elif st.refund_txid:
            status, height = LockStatus.REFUNDED, st.spend_height
        else:
            status = LockStatus.LOCKED
            onchain, unit = self._onchain(terms.asset) if terms.asset else (None, 1)
            matching = [u for u in st.unspent if u.value == terms.amount * unit and u.asset == onchain] or st.unspent
            height = max((u.height for u in matching if u.height is not None), default=None)
            if any(u.height is None for u in matching) and not any(u.height is not None for u in matching):
                height = None
        conf = self.view.confirmations(height)
        return LockState(
            lock_id=lock_id,
            terms=terms,
            status=status,
            preimage=st.preimage.hex() if st.preimage else None,
            confirmations=conf,
            final=conf >= self.config.confirmations,
        )

    async def get_lock(self, lock_id: str) -> LockState | None:
        htlc = self._parse_id(lock_id)
        await self._refresh("read lock")
        return self._state(lock_id, htlc)

    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        """Rebuild the script from the agreed terms and check the funding output.

        The id must be the script rebuilt from ``expected`` byte for byte (recipient
        and sender keys, hashlock, the 32-byte preimage rule, the lock height); the
        P2WSH output must hold exactly ``expected.amount`` of the agreed asset,
        unspent, with the ledger's confirmations, and the lock height must still be
        ahead.  ``nonce`` has no on-ledger counterpart and is not checked."""
        htlc = self._parse_id(lock_id)
        if expected.asset not in self.config.assets:
            raise errors.AuditFailed(f"audit: asset {expected.asset!r} is not carried by ledger {self.name!r}")
        onchain, unit = self._onchain(expected.asset)
        want = self._htlc(expected)
        for field, got, agreed in (
            ("sender", htlc.sender_pubkey.hex(), want.sender_pubkey.hex()),
            ("recipient", htlc.recipient_pubkey.hex(), want.recipient_pubkey.hex()),
            ("hashlock", htlc.hashlock.hex(), want.hashlock.hex()),
            ("expiry", htlc.lock_height, want.lock_height),
        ):
            if got != agreed:
                raise errors.AuditFailed(
                    f"audit {lock_id[:20]}...: {field} in the script is {got!r}, agreed {agreed!r}"
                )
        if want.script != htlc.script:  # pragma: no cover - parse() already rebuilt it byte for byte
            raise errors.AuditFailed(f"audit {lock_id[:20]}...: script does not commit to the agreed terms")
        self._watched.add(lock_id)
        await self._refresh("audit")
        with utxo_errors("audit", self.name):
            self.ledger.audit(htlc, expected.amount * unit, min_confirmations=self.config.confirmations, min_blocks_left=1,
                              lock_id=htlc.script_hash.hex(), asset=onchain)  # fmt: skip
        state = self._state(lock_id, htlc)
        assert state is not None
        return state

    async def observe(self, since: str | None = None) -> AsyncIterator[LockEvent]:
        """Confirmed lock events after ``since`` ("height:tx:kind:index").

        Claims and refunds of any HTLC of this template are seen (the witness
        reveals the script); a funding is recognised as ``locked`` only for lock
        ids this adapter has funded or audited (``lock``, ``audit``), since a
        P2WSH output hides its script until it is spent."""
        after = _parse_checkpoint(since)
        await self._refresh("observe", mempool=False)
        known = {HtlcScript.parse(bytes.fromhex(i)).script_pubkey: i for i in self._watched}
        for height, txs in self.view.block_events(after[0] if after else 0):
            for t_index, (txid, created, spends) in enumerate(txs):
                events: list[tuple[tuple[int, int, int, int], LockEvent]] = []
                for u in created:
                    if u.script_pubkey in known:
                        pos = (height, t_index, 0, u.vout)
                        events.append((pos, LockEvent(ledger=self.name, kind="locked", lock_id=known[u.script_pubkey],
                                                      tx_id=txid, height=height, checkpoint=_checkpoint(pos))))  # fmt: skip
                for s in spends:
                    spend = parse_htlc_witness(s.witness)
                    if spend is None:
                        continue
                    pos = (height, t_index, 1, s.vin)
                    events.append((pos, LockEvent(
                        ledger=self.name,
                        kind="claimed" if spend.path == "claim" else "refunded",
                        lock_id=spend.htlc.script.hex(), tx_id=txid, height=height,
                        preimage=spend.preimage.hex() if spend.preimage else None,
                        checkpoint=_checkpoint(pos),
                    )))  # fmt: skip
                # One event per lock and kind in a transaction: an Elements lock of an issued
                # asset is two outputs (the asset and its fee reserve), spent by two inputs.
                seen: set[tuple[str, str]] = set()
                for pos, ev in sorted(events, key=lambda e: e[0]):
                    if (ev.kind, ev.lock_id) in seen:
                        continue
                    seen.add((ev.kind, ev.lock_id))
                    if after and pos <= after:
                        continue
                    yield ev


def _checkpoint(pos: tuple[int, int, int, int]) -> str:
    return ":".join(str(p) for p in pos)


def _parse_checkpoint(since: str | None) -> tuple[int, int, int, int] | None:
    if not since:
        return None
    try:
        parts = tuple(int(p) for p in since.split(":"))
    except ValueError:
        raise errors.ConfigError(f"since: malformed checkpoint {since!r}") from None
    if len(parts) != 4:
        raise errors.ConfigError(f"since: malformed checkpoint {since!r}")
    return parts  # type: ignore[return-value]


class DevUtxoAdapter(UtxoAdapter, Issuing, TimeTravel):
    """A dev chain (regtest, ``dev: true``): mining on demand moves its clock and pays out
    test coins."""

    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        return await self._dev_issue(asset, to, amount)

    async def advance_time(self, seconds: int) -> None:
        await self._dev_advance_time(seconds)

    async def mine(self, blocks: int = 1) -> None:
        await self._mine(blocks)
