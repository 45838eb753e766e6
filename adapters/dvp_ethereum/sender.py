"""Signing and broadcasting each account's transactions back to back, and waiting for them.

A step that needs several transactions (an approve, then the lock that spends it) gets
consecutive nonces in one batch, so they execute in that order, usually in one block,
and no other transaction of the account can come between them.  Nothing here waits for
a block except :meth:`Sender.receipt`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_account.types import TransactionDictType
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract.async_contract import AsyncContractConstructor, AsyncContractFunction
from web3.types import TxParams

from dvp import errors, sendlog
from dvp.sendlog import SignedTx

from .boundary import decode_revert, error_for
from .nonces import AccountNonces, InFlight, PermitNonces, nonce_taken
from .receipts import ReceiptWatcher
from .rpc import JsonRpc

# How geth ("already known") and anvil ("transaction already imported") refuse bytes they hold.
_ALREADY_HAVE = ("already known", "already imported")

# Broadcast failures worth one more try with the same signed bytes.
_TRANSIENT = (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError)

# A permit is consumed by the transaction that carries it; the deadline only bounds a
# signature whose transaction got stuck.
PERMIT_WINDOW = 3600


@dataclass(frozen=True)
class Signature:
    deadline: int
    v: int
    r: bytes
    s: bytes


@dataclass(frozen=True)
class PermitRequest:
    """An ERC-2612 permit of the sending account for ``spender`` on ``token`` (a web3
    contract), for the transaction's ``value``."""

    token: Any
    spender: str


# A transaction before it is signed: a contract's function called, or a contract deployed.
ContractCall = AsyncContractFunction | AsyncContractConstructor


@dataclass
class Tx:
    what: str
    build: Callable[[Signature | None, int | None], ContractCall]  # (permit signature, value) -> web3 call
    gas: int | None = None  # None: estimate (only for a transaction that depends on nothing pending)
    # An amount the call approves or permits; a coroutine is worked out under the account's
    # nonce lock, in the order the transactions will execute.
    value: int | Callable[[], Awaitable[int]] | None = None
    permit: PermitRequest | None = None
    settled: Callable[[str, bool], None] | None = None
    purpose: str | None = None  # a TxPurpose value, journaled with the signed bytes (default: what)


class Sender:
    def __init__(
        self, w3: AsyncWeb3[AsyncHTTPProvider], rpc: JsonRpc, ledger: str, chain_id: int, poll: float, stall: float
    ):
        self.w3 = w3
        self.rpc = rpc
        self.ledger = ledger
        self.chain_id = chain_id
        self.stall = stall
        self.watcher = ReceiptWatcher(self.request, poll)
        self._accounts: dict[str, AccountNonces] = {}
        self._permits: dict[tuple[str, str], PermitNonces] = {}
        self._domains: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, Tx] = {}  # tx id -> its spec, until settled
        self._permit_of: dict[str, PermitNonces] = {}
        self._fees: tuple[float, dict[str, int], int] | None = None
        self._fee_lock = asyncio.Lock()

    async def request(self, method: str, params: list[Any]) -> Any:
        return await self.rpc.call(method, params)

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request, past web3.py's request stack; results in order."""
        return await self.rpc.batch(calls)

    def account(self, address: str) -> AccountNonces:
        if address not in self._accounts:
            self._accounts[address] = AccountNonces(
                address, lambda: self.w3.eth.get_transaction_count(to_checksum_address(address), "pending")
            )
        return self._accounts[address]

    def permits(self, owner: str, token: Any) -> PermitNonces:
        key = (owner, token.address)
        if key not in self._permits:
            self._permits[key] = PermitNonces(lambda: token.functions.nonces(owner).call())
        return self._permits[key]

    def forget(self, address: str) -> None:
        """Another process may have sent from ``address``: its nonce and its permit nonces are
        read from the chain again before their next use."""
        for known, nonces in self._accounts.items():
            if known.lower() == address.lower():
                nonces.invalidate()
        for (owner, _token), permits in self._permits.items():
            if owner.lower() == address.lower():
                permits.void()

    async def close(self) -> None:
        await self.watcher.close()

    # -- sending ---------------------------------------------------------------------------
    async def send(self, account: LocalAccount, txs: list[Tx], payer: str | None = None) -> list[str]:
        """Broadcast ``txs`` with consecutive nonces; their ids, in order.

        Nonces are assigned and transactions signed under the account's lock; they are
        broadcast after it is released, so one account's sends do not queue behind each
        other's round trips (a node holds a later nonce until the earlier one arrives).
        Between signing and broadcasting, the signed bytes go to the journal
        (:func:`dvp.sendlog.before_broadcast`, ``payer`` the party that signs)."""
        fees, clock = await self._fee_fields()
        gases = [tx.gas or await self._estimate(account, tx) for tx in txs]
        ids: list[str] = []
        journaled: list[SignedTx] = []  # of this send, the first ``len(ids)`` broadcast
        nonces = self.account(account.address)
        for _attempt in range(3):
            signed: list[tuple[str, bytes, int]] = []
            async with nonces.batch(len(txs) - len(ids)) as batch:
                for tx, gas, nonce in zip(txs[len(ids) :], gases[len(ids) :], batch.nonces):
                    tx_id, raw = await self._sign_one(account, tx, gas, nonce, fees, clock)
                    batch.sent(tx_id, raw)
                    signed.append((tx_id, raw, nonce))
            journaled = journaled[: len(ids)] + [
                SignedTx(tx_id, raw.hex(), tx.purpose or tx.what, payer)
                for (tx_id, raw, _), tx in zip(signed, txs[len(ids) :])
            ]
            try:
                await sendlog.before_broadcast(journaled)
            except BaseException:  # not journaled, so never broadcast: the node's count is right
                for dead, _, _ in signed:
                    self.settled(dead, False)
                nonces.invalidate()
                raise
            for k, (tx_id, raw, _nonce) in enumerate(signed):
                try:
                    await self._broadcast(raw)
                except Exception as exc:
                    # This nonce (unless another sender took it) and the ones signed after it
                    # in the batch carry nothing: fill them with empty transactions, so what
                    # the account signed after them runs in the order it was signed (permits).
                    for dead, _, _ in signed[k:]:
                        self.settled(dead, False)
                    taken = nonce_taken(exc)
                    # A filler, or signing again, is a send the journal does not hold: first
                    # prove the swap's lease is still ours (a driver that lost it meanwhile,
                    # its swap taken over, stops here: JournalUnavailable).
                    try:
                        await sendlog.fence()
                    except BaseException:
                        nonces.invalidate()
                        raise
                    await self._fill(account, [n for _, _, n in signed[k + 1 if taken else k :]], fees)
                    if taken:  # another sender used the key: sign again
                        nonces.invalidate()
                        break
                    raise
                ids.append(tx_id)
                sendlog.sent(len(ids), len(txs))
            if len(ids) == len(txs):
                return ids
        raise errors.SubmitError(f"{txs[len(ids)].what}: nonce kept being taken by another sender")

    async def _fill(self, account: LocalAccount, unused: list[int], fees: dict[str, int]) -> None:
        """Spend each unused nonce on a transfer of nothing to the account itself; if that
        fails too, re-read the count so that the next transaction fills the gap."""
        for nonce in unused:
            filler = account.sign_transaction({"to": account.address, "value": 0, "gas": 21_000, "nonce": nonce,
                                               "chainId": self.chain_id, **fees})  # fmt: skip
            try:
                await self._broadcast(bytes(filler.raw_transaction))
            except Exception:
                self.account(account.address).invalidate()
                return

    async def rebroadcast(self, tx_id: str, raw: bytes) -> None:
        """Broadcast journaled signed bytes again (a resumed driver): nothing if mined or in
        the node's pool already; Superseded, with the proof, if their nonce went to another
        transaction."""
        if await self.request("eth_getTransactionByHash", [tx_id]) is not None:
            return  # pending or mined
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        address = Account.recover_transaction(raw)
        try:
            await self._broadcast(raw)
        except Exception as exc:
            if not nonce_taken(exc):
                raise
            if await self.request("eth_getTransactionByHash", [tx_id]) is not None:
                return  # pending after all (a race with its first broadcast)
            mined = await self.w3.eth.get_transaction_count(address, "latest")
            raise errors.Superseded(
                f"{tx_id} can never be mined: {address}'s nonce {tx['nonce']} is used by another transaction "
                f"(the account's mined count is {mined}; the node refused the bytes: {exc})",
                tx_id=tx_id,
                code="replaced",
            ) from exc
        # Known to this sender from now on: re-broadcast again if the pool drops it.
        self.account(address).in_flight[tx_id] = InFlight(int(tx["nonce"]), raw)

    async def _broadcast(self, raw: bytes) -> None:
        for attempt in range(3):
            try:
                await self.request("eth_sendRawTransaction", ["0x" + raw.hex()])
                return
            except Exception as exc:
                if any(m in str(exc).lower() for m in _ALREADY_HAVE):
                    return  # an earlier attempt got through
                if nonce_taken(exc) or attempt == 2 or not isinstance(exc, _TRANSIENT):
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _sign_one(self, account: LocalAccount, tx: Tx, gas: int, nonce: int, fees: dict[str, int],
                        clock: int) -> tuple[str, bytes]:  # fmt: skip
        sig = None
        permit_nonces = permit_nonce = None
        value = tx.value if tx.value is None or isinstance(tx.value, int) else await tx.value()
        if tx.permit is not None:
            p = tx.permit
            assert value is not None, "a permit needs a value"
            permit_nonces = self.permits(account.address, p.token)
            permit_nonce = await permit_nonces.take(self._settle_all)
            sig = await self._sign_permit(account, p.token, p.spender, value, permit_nonce, clock + PERMIT_WINDOW)
        try:
            call = tx.build(sig, value)
            fields = {"nonce": nonce, "chainId": self.chain_id, "gas": gas, **fees}
            if isinstance(call, AsyncContractFunction):
                # web3.py encodes the call; its build_transaction (formatters, validation, an
                # async round of middleware for fields given here already) is skipped
                built = {"to": call.address, "data": call._encode_transaction_data(), "value": 0, **fields}
            else:  # a deployment
                built = await call.build_transaction(cast(TxParams, {"from": account.address, **fields}))
            # web3's TxParams is the transaction dict eth-account signs (their types do not say so).
            signed = account.sign_transaction(cast(TransactionDictType, built))
        except BaseException:
            if permit_nonces is not None and permit_nonce is not None:
                permit_nonces.give_back(permit_nonce)
            raise
        tx_id = "0x" + bytes(signed.hash).hex()
        self._pending[tx_id] = tx
        if permit_nonces is not None:
            permit_nonces.sent(tx_id)
            self._permit_of[tx_id] = permit_nonces
        return tx_id, bytes(signed.raw_transaction)

    async def _estimate(self, account: LocalAccount, tx: Tx) -> int:
        call = tx.build(None, None)
        if not isinstance(call, AsyncContractFunction):  # a deployment
            return with_headroom(await call.estimate_gas({"from": account.address}))
        params = {"from": account.address, "to": call.address, "data": call._encode_transaction_data()}
        answer = await self.rpc.reply("eth_estimateGas", [params])
        error = answer.get("error")
        if not error:
            return with_headroom(int(answer["result"], 16))
        # The call would revert: why, as the boundary says it of web3.py's ContractLogicError.
        data = error.get("data")
        name = decode_revert(data if isinstance(data, str) else None)
        message = str(error.get("message") or "")
        if name is None and "revert" not in message.lower():
            raise errors.AdapterError(f"ledger {self.ledger!r}, {tx.what}: {message}")
        raise error_for(name, what=tx.what if name else f"{tx.what} ({message})")

    async def _fee_fields(self) -> tuple[dict[str, int], int]:
        """EIP-1559 fees and the head's timestamp, read at most once per second."""
        async with self._fee_lock:  # one read for every send waiting on it
            if self._fees is None or time.monotonic() - self._fees[0] > 1.0:
                block, tip_hex = await self.batch(
                    [("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])]
                )
                tip = int(tip_hex, 16)
                # Twice the base fee rides out several fuller blocks; only what is used is paid.
                fees = {"maxFeePerGas": 2 * int(block["baseFeePerGas"], 16) + tip, "maxPriorityFeePerGas": tip}
                self._fees = (time.monotonic(), fees, int(block["timestamp"], 16))
            return self._fees[1], self._fees[2]

    async def _sign_permit(self, account: LocalAccount, token: Any, spender: str, value: int, nonce: int,
                           deadline: int) -> Signature:  # fmt: skip
        domain = self._domains.get(token.address)
        if domain is None:
            _, name, version, chain_id, verifying, _, _ = await token.functions.eip712Domain().call()
            domain = self._domains[token.address] = {
                "name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying,
            }  # fmt: skip
        signed = account.sign_typed_data(
            domain_data=domain,
            message_types={"Permit": PERMIT_TYPES},
            message_data={"owner": account.address, "spender": spender, "value": value, "nonce": nonce,
                          "deadline": deadline},
        )  # fmt: skip
        return Signature(deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))

    # -- waiting ---------------------------------------------------------------------------
    async def receipt(self, tx_id: str, timeout: float) -> dict[str, Any]:
        """The receipt of ``tx_id`` once mined.  A transaction the node no longer knows
        (dropped from its pool) is broadcast again from its signed bytes."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.FinalityTimeout(f"{tx_id} not mined after {timeout:.0f}s", tx_id=tx_id, code="timeout")
            found = await self.watcher.receipt(tx_id, min(left, self.stall))
            if not found:  # stalled: mined in a block the poller did not scan, or dropped
                found = await self.request("eth_getTransactionReceipt", [tx_id])
            if found:
                self.settled(tx_id, int(found["status"], 16) == 1)
                return found
            await self._rebroadcast_if_dropped(tx_id)

    async def _rebroadcast_if_dropped(self, tx_id: str) -> None:
        if await self.request("eth_getTransactionByHash", [tx_id]) is not None:
            return
        for nonces in self._accounts.values():
            flight = nonces.in_flight.get(tx_id)
            if flight is None:
                continue
            try:
                await self.w3.eth.send_raw_transaction(flight.raw)
            except Exception as exc:
                if not nonce_taken(exc):
                    raise
                # Its nonce went to another transaction: this one can never be mined.
                if await self.request("eth_getTransactionReceipt", [tx_id]) is None:
                    self.settled(tx_id, False)
                    nonces.invalidate()
                    raise errors.CommitError(
                        f"{tx_id} was replaced by another transaction with nonce {flight.nonce}",
                        tx_id=tx_id,
                        code="replaced",
                    ) from exc
            return

    def settled(self, tx_id: str, ok: bool) -> None:
        for nonces in self._accounts.values():
            nonces.mined(tx_id)
        permit_nonces = self._permit_of.pop(tx_id, None)
        if permit_nonces is not None:
            permit_nonces.settled(tx_id, ok)
        tx = self._pending.pop(tx_id, None)
        if tx is not None and tx.settled is not None:
            tx.settled(tx_id, ok)

    async def _settle_all(self, tx_ids: set[str]) -> None:
        """Wait (bounded) until the permits sent before a failed one are mined or gone."""
        await asyncio.gather(*(self._settle_quietly(t) for t in tx_ids))

    async def _settle_quietly(self, tx_id: str) -> None:
        try:
            await self.receipt(tx_id, timeout=max(30.0, 6 * self.stall))
        except errors.DvpError:
            self.settled(tx_id, False)


PERMIT_TYPES = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

# The estimate holds for the state it ran on. Another swap's transaction mined first in the
# same block can turn a storage write from nonzero->nonzero into zero->nonzero (e.g. the HTLC's
# token balance drained by a claim, then refilled by a lock): 17,100 gas more. Only gas used is paid.
_GAS_HEADROOM = 30_000


def with_headroom(estimate: int) -> int:
    return int(estimate * 1.2) + _GAS_HEADROOM
