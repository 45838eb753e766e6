"""The Hyperledger Fabric adapter: the dvp chaincode on one channel, through the Gateway.

Each party signs with its own X.509 identity and speaks to its own organisation's
peer, whose Gateway collects the endorsements the policy needs.  A sending operation
returns once the orderer accepted the transaction; ``wait_final`` waits for its commit
status, and only VALID is final (Fabric has no forks: a committed block is final).

Fabric has no block clock: the chaincode judges expiries on the transaction's
timestamp, which the client sets and the endorsers accept within ``max_skew_seconds``
of their own clocks.  ``now()`` is therefore this machine's clock, and that skew is
the ledger's clock skew in the swap's timeout budget.  There is no time travel:
refunds wait for the real expiry.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Literal, TypeVar

from fabric_protos.common import ledger_pb2
from fabric_protos.peer import transaction_pb2

from dvp import errors, sendlog
from dvp.adapter import AtomicDvp, Issuing, LedgerAdapter, Observable
from dvp.errors import no_key
from dvp.models import (
    Asset,
    ClockKind,
    DvpOrder,
    Finality,
    HtlcTerms,
    LedgerTerms,
    LedgerTime,
    LockEvent,
    LockState,
    LockStatus,
    OrderState,
    OrderStatus,
    Submission,
    Submitted,
    TxPurpose,
    TxStatus,
)
from dvp.sendlog import SignedTx
from dvp.units import Quantity, funds_short

from . import gateway
from .boundary import chaincode_code, gateway_errors
from .config import FabricConfig
from .keygate import KeyGate
from .lockid import lock_id as derive_lock_id
from .lockid import order_id as derive_order_id

T = TypeVar("T")
_LOCK_STATUS = {"LOCKED": LockStatus.LOCKED, "CLAIMED": LockStatus.CLAIMED, "REFUNDED": LockStatus.REFUNDED}
_ORDER_STATUS = {"OPEN": OrderStatus.OPEN, "SETTLED": OrderStatus.SETTLED, "CANCELLED": OrderStatus.CANCELLED}
_EVENTS: dict[str, Literal["locked", "claimed", "refunded"]] = {
    "HtlcLocked": "locked",
    "HtlcClaimed": "claimed",
    "HtlcRefunded": "refunded",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# How long a call keeps retrying while the peer is unreachable (a restart takes a few seconds).
RECONNECT_SECONDS = 45.0
# The peers' own work after the orderer cuts a block: validation and commit.
COMMIT_SECONDS = 0.5


class FabricAdapter(LedgerAdapter, AtomicDvp, Issuing, Observable):
    kind = "fabric"
    config_model = FabricConfig
    clock = ClockKind.TIME
    fee_unit = "none"  # Fabric charges no transaction fees

    config: FabricConfig

    def __init__(self, name: str, config: FabricConfig):
        super().__init__(name, config)
        self._accounts = {p: c.account for p, c in config.parties.items()}
        self._parties = {a: p for p, a in self._accounts.items()}
        self._connections: dict[str, Any] = {}  # gRPC channels to the peers, by peer key
        self._contracts: dict[str, gateway.Contract] = {}
        self._gate = KeyGate()

    # -- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        c = self.config
        for key, peer in c.peers.items():
            self._connections[key] = gateway.connect(
                peer.endpoint, _read(peer.tls_ca, f"peers.{key}.tls_ca"), host_name=peer.host_name or None
            )
        for party, p in c.parties.items():
            if not p.has_credentials:  # a counterparty: named in locks, never signed for
                continue
            identity, signer = gateway.load_msp(p.msp_id, p.msp_dir, p.cert or None, p.key or None)
            connection = self.known(self._connections, p.peer, "peer", f"not configured for party {party!r}")
            channel = gateway.Gateway(connection, identity, signer).get_channel(c.channel)
            self._contracts[party] = channel.get_contract(c.chaincode)
        await self.now()

    async def aclose(self) -> None:
        self._gate.cancel()
        connections, self._connections = self._connections, {}
        self._contracts.clear()
        for connection in connections.values():
            await connection.close()

    def contract(self, party: str) -> gateway.Contract:
        """``party``'s view of the chaincode (for tests and raw benchmarks)."""
        if not self._connections:
            raise errors.LedgerUnavailable(f"ledger {self.name!r} is not connected")
        self._signs(party)
        return self.known(self._contracts, party, "party", "no identity")

    def _signs(self, party: str, why: str = "") -> None:
        """Raise ConfigError unless this process holds ``party``'s credentials."""
        known = self.config.parties.get(party)
        if known is not None and not known.has_credentials:
            raise no_key(self.name, party, [p for p, c in self.config.parties.items() if c.has_credentials], why)

    @property
    def _reader(self) -> gateway.Contract:
        return self.contract(
            self.config.issuer if self.config.issuer in self._contracts else next(iter(self._contracts))
        )

    async def bootstrap(self, assets: list[Asset]) -> dict[str, Any]:
        """The chaincode holds any asset by name; record the symbols so unknown ones are refused."""
        symbols = sorted({*self.config.assets, *(a.symbol for a in assets)})
        if symbols == sorted(self.config.assets):
            return {}
        self.config = self.config.model_copy(update={"assets": symbols})
        return {"assets": symbols}

    # -- calls ------------------------------------------------------------------------------
    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call()``, again while the peer is unreachable (restarting), up to RECONNECT_SECONDS."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            try:
                with gateway_errors(what):
                    return await call()
            except gateway.GatewayUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _evaluate(self, function: str, *args: str, what: str) -> bytes:
        contract = self._reader
        return await self._retrying(lambda: contract.evaluate(function, *args), f"{what} on {self.name}")

    async def _send(
        self, party: str, function: str, args: list[str], keys: set[Hashable], purpose: TxPurpose, what: str
    ) -> Submission:
        """Endorse and submit as ``party``; return once the orderer has the transaction."""
        contract = self.contract(party)
        what = f"{what} on {self.name}"
        async with self._gate.turn(keys) as pending:
            # A new proposal per attempt: its timestamp must stay within the chaincode's skew bound.
            tx = await self._retrying(lambda: contract.new_proposal(function, *args).endorse(), what)
            envelope = tx.signed_envelope()
            # Sign, journal, then broadcast: the envelope and its id are journaled first.
            await sendlog.before_broadcast([SignedTx(tx.transaction_id, envelope.hex(), purpose.value, party)])
            commit = await self._retrying(lambda: tx.submit(envelope), what)
            sendlog.sent(1, 1)
            pending(commit.status())
        return Submission([Submitted(tx_id=tx.transaction_id, ledger=self.name, purpose=purpose, payer=party)])

    async def rebroadcast(self, signed: SignedTx) -> None:
        """The journaled envelope again (same transaction id), unless a block has it: nothing
        if it committed valid, Superseded (its validation code the proof) if invalid."""
        channel = self._reader.channel
        try:
            raw = await self._retrying(
                lambda: channel.get_contract("qscc").evaluate("GetTransactionByID", self.config.channel, signed.tx_id),
                f"look up {signed.tx_id} on {self.name}",
            )
        except gateway.EvaluateError:
            raw = None  # not in a block (qscc refuses an unknown id): send it again
        if raw is not None:
            code = transaction_pb2.ProcessedTransaction.FromString(raw).validationCode
            if code == transaction_pb2.TxValidationCode.VALID:
                return
            name = transaction_pb2.TxValidationCode.Name(code)
            raise errors.Superseded(
                f"{signed.tx_id} on {self.name} can never commit: a block holds it invalid ({name})",
                tx_id=signed.tx_id,
                code=name,
            )
        await self._retrying(
            lambda: channel.submit_envelope(signed.tx_id, bytes.fromhex(signed.raw), f"rebroadcast on {self.name}"),
            f"rebroadcast on {self.name}",
        )

    # -- clock and finality ---------------------------------------------------------------
    async def now(self) -> LedgerTime:
        raw = await self._retrying(
            lambda: self._reader.channel.get_contract("qscc").evaluate("GetChainInfo", self.config.channel),
            f"read height of {self.name}",
        )
        info = ledger_pb2.BlockchainInfo.FromString(raw)
        return LedgerTime(height=info.height - 1, timestamp=time.time())

    @property
    def finality(self) -> Finality:
        c = self.config
        batch = c.batch_timeout_ms / 1000
        return Finality(
            confirmations=1,
            block_interval=batch,
            expected_seconds=batch + COMMIT_SECONDS,
            clock_skew=c.max_skew_seconds,
        )

    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        timeout = self.finality_timeout(timeout)
        deadline = time.monotonic() + timeout
        commit = self._reader.channel.get_commit(tx_id)
        while True:
            try:
                status = await commit.expect_valid(timeout=max(0.1, deadline - time.monotonic()))
                break
            except gateway.GatewayUnavailable:
                if time.monotonic() > deadline:
                    raise errors.FinalityTimeout(
                        f"{tx_id} on {self.name}: peer unreachable for {timeout:.0f}s", tx_id=tx_id, code="UNAVAILABLE"
                    ) from None
                await asyncio.sleep(0.5)
        return TxStatus(tx_id=tx_id, successful=True, code=status.code, block_number=status.block_number, fee=0)

    # -- accounts and assets ----------------------------------------------------------------
    def account(self, party: str) -> str:
        """The chaincode's account id of ``party``."""
        return self.known(self._accounts, party, "party", "no identity")

    def _asset(self, asset: str) -> str:
        if self.config.assets and asset not in self.config.assets:
            raise errors.ConfigError(f"asset {asset!r}: unknown on ledger {self.name!r}")
        return asset

    def _party(self, account: str) -> str:
        return self._parties.get(account, account)

    async def balance(self, party: str, asset: str) -> int:
        raw = await self._evaluate("BalanceOf", self.account(party), self._asset(asset), what="balance")
        return int(raw)

    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        issuer = self.config.issuer
        self._signs(issuer, "issuing is signed by the issuer")
        account = self.account(to)
        return await self._send(
            issuer,
            "Issue",
            [account, self._asset(asset), str(amount)],
            {(account, asset)},
            TxPurpose.ISSUE,
            f"issue {asset}",
        )

    # -- hashed time-locks ----------------------------------------------------------------
    def lock_id(self, terms: HtlcTerms) -> str:
        return derive_lock_id(
            self.account(terms.sender),
            self.account(terms.recipient),
            self._asset(terms.asset),
            terms.amount,
            bytes.fromhex(terms.hashlock),
            terms.expiry,
            bytes.fromhex(terms.nonce),
        )

    async def check_lock(self, terms: HtlcTerms) -> None:
        try:
            self.account(terms.sender)
            self.account(terms.recipient)
            self._asset(terms.asset)
        except errors.ConfigError as exc:
            raise errors.LockRefused(f"lock on {self.name}: {exc}") from None
        held = await self.balance(terms.sender, terms.asset)
        if held < terms.amount:
            unit = self.unit_of(terms.asset)
            raise errors.LockRefused(
                funds_short(
                    terms.sender,
                    self.name,
                    Quantity(held, unit),
                    Quantity(terms.amount, unit),
                    note="Fabric charges no fees",
                )
            )

    async def lock(self, terms: HtlcTerms) -> Submission:
        sender = self.account(terms.sender)
        args = [
            self.account(terms.recipient),
            self._asset(terms.asset),
            str(terms.amount),
            terms.hashlock,
            str(terms.expiry),
            terms.nonce,
        ]
        return await self._send(
            terms.sender, "Lock", args, {(sender, terms.asset), ("lock", self.lock_id(terms))}, TxPurpose.LOCK, "lock"
        )

    async def _lock_keys(self, lock_id: str) -> set[Hashable]:
        """The keys a claim or refund of ``lock_id`` writes (the payee's balance depends on the lock)."""
        keys: set[Hashable] = {("lock", lock_id)}
        state = await self.get_lock(lock_id)
        if state is not None:
            t = state.terms
            keys |= {
                (self._accounts.get(t.sender, t.sender), t.asset),
                (self._accounts.get(t.recipient, t.recipient), t.asset),
            }
        return keys

    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        # The chaincode judges the preimage (32 bytes, SHA-256): nothing is refused here.
        return await self._send(
            submitter, "Claim", [lock_id, preimage.hex()], await self._lock_keys(lock_id), TxPurpose.CLAIM, "claim"
        )

    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        return await self._send(
            submitter, "Refund", [lock_id], await self._lock_keys(lock_id), TxPurpose.REFUND, "refund"
        )

    async def get_lock(self, lock_id: str) -> LockState | None:
        if not _HEX64.fullmatch(lock_id):  # not match: its $ would let a trailing newline through
            raise self.malformed_lock_id(lock_id, "64 lower-case hex")
        raw = await self._get_json("GetLock", lock_id, "DVP_LOCK_NOT_FOUND", "read lock")
        if raw is None:
            return None
        terms = LedgerTerms(
            sender=self._party(raw["sender"]),
            recipient=self._party(raw["recipient"]),
            asset=raw["asset"],
            amount=int(raw["amount"]),
            hashlock=raw["hashlock"],
            expiry=int(raw["expiry"]),
            nonce=raw["nonce"],
        )
        status = _LOCK_STATUS[raw["status"]]
        # Evaluate reads the peer's committed state: whatever it shows is final.
        return LockState(
            lock_id=lock_id,
            terms=terms,
            status=status,
            preimage=raw.get("preimage") or None,
            confirmations=1,
            final=True,
        )

    async def _get_json(self, function: str, key: str, missing: str, what: str) -> dict[str, Any] | None:
        try:
            raw = await self._evaluate(function, key, what=what)
        except gateway.GatewayError as exc:
            found = chaincode_code(exc)
            if found and found[0] == missing:
                return None
            raise
        except errors.LockNotFound:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        state = await self.locked_as_agreed(lock_id, expected)
        # The chaincode derived this id from the terms it stored; ours from the agreed ones.
        if self.lock_id(expected) != lock_id:
            raise errors.AuditFailed(f"audit {lock_id}: id does not commit to the agreed terms")
        return state

    async def observe(self, since: str | None = None) -> AsyncIterator[LockEvent]:
        checkpoint = gateway.Checkpoint.parse(since) if since else None
        channel = self._reader.channel
        stream = channel.chaincode_events(
            self.config.chaincode, checkpoint=checkpoint, start_block=None if checkpoint else 0, idle=1.0
        )
        with gateway_errors(f"observe {self.name}"):
            async for event in stream:
                kind = _EVENTS.get(event.name)
                if kind is None:
                    continue
                lock = json.loads(event.payload)["lock"]
                yield LockEvent(
                    ledger=self.name,
                    kind=kind,
                    lock_id=lock["id"],
                    tx_id=event.transaction_id,
                    height=event.block_number,
                    preimage=lock.get("preimage") or None,
                    checkpoint=gateway.Checkpoint.after(event).encode(),
                )

    # -- single-ledger atomic DvP -----------------------------------------------------------
    def order_id(self, order: DvpOrder) -> str:
        return derive_order_id(
            self.account(order.seller),
            self.account(order.buyer),
            self._asset(order.security),
            order.security_amount,
            self._asset(order.cash),
            order.cash_amount,
            order.deadline,
            bytes.fromhex(order.nonce),
        )

    async def propose_dvp(self, order: DvpOrder) -> Submission:
        args = [
            self.account(order.buyer),
            self._asset(order.security),
            str(order.security_amount),
            self._asset(order.cash),
            str(order.cash_amount),
            str(order.deadline),
            order.nonce,
        ]
        return await self._send(
            order.seller, "ProposeOrder", args, {("order", self.order_id(order))}, TxPurpose.PROPOSE, "propose DvP"
        )

    async def accept_dvp(self, order: DvpOrder) -> Submission:
        seller, buyer = self.account(order.seller), self.account(order.buyer)
        keys: set[Hashable] = {
            ("order", self.order_id(order)),
            (seller, order.security),
            (buyer, order.security),
            (seller, order.cash),
            (buyer, order.cash),
        }
        return await self._send(
            order.buyer, "AcceptOrder", [self.order_id(order)], keys, TxPurpose.ACCEPT, "accept DvP"
        )

    async def cancel_dvp(self, order: DvpOrder) -> Submission:
        """The chaincode's CancelOrder: only the order's seller, only while open; AcceptOrder
        refuses the order from then on (DVP_ORDER_NOT_OPEN)."""
        order_id = self.order_id(order)
        return await self._send(
            order.seller, "CancelOrder", [order_id], {("order", order_id)}, TxPurpose.CANCEL, "cancel DvP"
        )

    async def get_order(self, order_id: str) -> OrderState | None:
        raw = await self._get_json("GetOrder", order_id, "DVP_ORDER_NOT_FOUND", "read order")
        return None if raw is None else OrderState(order_id=order_id, status=_ORDER_STATUS[raw["status"]])


def _read(path: str, field: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise errors.ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
