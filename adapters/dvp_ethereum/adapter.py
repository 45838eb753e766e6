"""The Ethereum-compatible adapter: ERC-20 assets, the HTLC and the DvP contract via web3.py."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Literal, cast

import aiohttp
from eth_abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector, keccak, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract.async_contract import AsyncContract, AsyncContractFunction
from web3.types import TxParams

from dvp import errors
from dvp.adapter import AtomicDvp, Issuing, LedgerAdapter, LedgerConfig, Observable, TimeTravel
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

from .artifacts import artifact
from .boundary import decode_revert, error_for, web3_errors
from .config import EthereumConfig, GethConfig
from .rpc import JsonRpc
from .sender import ContractCall, PermitRequest, Sender, Signature, Tx

_LOCK_STATUS = {1: LockStatus.LOCKED, 2: LockStatus.CLAIMED, 3: LockStatus.REFUNDED}
_ORDER_STATUS = {1: OrderStatus.OPEN, 2: OrderStatus.SETTLED, 3: OrderStatus.CANCELLED}
_POLL = 0.05
_LOCKED_TOPIC = "0x" + keccak(text="Locked(bytes32,address,address,address,uint256,bytes32,uint64)").hex()


class EthereumAdapter(LedgerAdapter, AtomicDvp, Issuing, Observable):
    """An EVM chain.  A dev chain's config (``dev: true``, anvil) gets
    :class:`DevEthereumAdapter`, which adds :class:`~dvp.adapter.TimeTravel`."""

    kind = "ethereum"
    config_model: ClassVar[type[LedgerConfig]] = EthereumConfig
    clock = ClockKind.TIME
    fee_unit = "wei"
    fee_display = ("gwei", 10**9)

    config: EthereumConfig

    @classmethod
    def for_config(cls, config: LedgerConfig) -> type[LedgerAdapter]:
        return DevEthereumAdapter if isinstance(config, EthereumConfig) and config.dev else cls

    def __init__(self, name: str, config: EthereumConfig):
        super().__init__(name, config)
        self._keys: dict[str, LocalAccount] = {
            p: Account.from_key(k.get_secret_value()) for p, k in config.accounts.items()
        }
        self._addresses: dict[str, str] = {p: a.address for p, a in self._keys.items()}
        self._addresses.update({p: to_checksum_address(a) for p, a in config.addresses.items()})
        self._parties = {a.lower(): p for p, a in self._addresses.items()}
        self._tokens = {s: to_checksum_address(a) for s, a in config.tokens.items()}
        self._lock_blocks: dict[str, int] = {}
        self._token_contracts: dict[str, AsyncContract] = {}  # by address: web3.py builds a contract object slowly
        self._has_permit: dict[str, bool] = {}
        self._clock: tuple[float, LedgerTime | None] = (0.0, None)
        self._audited_code: set[str] = set()  # code at an address cannot change: check it once
        # DvP proposals keep the seller's allowance: (party, asset) -> value last granted,
        # and the proposals in flight that granted it.
        self._granted: dict[tuple[str, str], int] = {}
        self._granting: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.w3: AsyncWeb3[AsyncHTTPProvider] | None = None
        self._sender: Sender | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        provider = AsyncHTTPProvider(self.config.rpc_url, request_kwargs={"timeout": self.config.request_timeout})
        # web3's own session opens a new TCP connection for every request (force_close), which
        # under load costs more than the request: keep connections alive instead.  The same
        # session carries the hot path's own JSON-RPC (rpc.py).
        http = aiohttp.ClientSession(
            raise_for_status=True, connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30))  # fmt: skip
        await provider.cache_async_session(http)
        self.w3 = AsyncWeb3(provider)
        stall = max(5.0, 4 * self.config.block_interval)
        rpc = JsonRpc(http, self.config.rpc_url, self.name, self.config.request_timeout)
        self._sender = Sender(self.w3, rpc, self.name, self.config.chain_id, _POLL, stall)
        with web3_errors("connect", self.name):
            chain_id = await self.w3.eth.chain_id
        if chain_id != self.config.chain_id:
            raise errors.ConfigError(
                f"ledgers.{self.name}.chain_id: configured {self.config.chain_id}, node reports {chain_id}"
            )
        self._bind_contracts()

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        if self.w3 is not None:
            await self.w3.provider.disconnect()
            self.w3 = None

    def _bind_contracts(self) -> None:
        self._token_contracts = {}  # bound to the connection being made
        self.htlc = self._contract("HashedTimelockERC20", self.config.htlc_address)
        self.dvp = self._contract("DvpSettlement", self.config.dvp_address)

    def _contract(self, name: str, address: str | None) -> AsyncContract | None:
        if address is None:
            return None
        return self._w3.eth.contract(address=to_checksum_address(address), abi=artifact(name)["abi"])

    @property
    def _w3(self) -> AsyncWeb3[AsyncHTTPProvider]:
        if self.w3 is None:
            raise errors.LedgerUnavailable(f"ledger {self.name!r} is not connected")
        return self.w3

    def _need(self, contract: AsyncContract | None, what: str) -> AsyncContract:
        if contract is None:
            raise errors.ConfigError(f"ledgers.{self.name}.{what}: not deployed; run `dvp up` or set it")
        return contract

    # -- set-up -------------------------------------------------------------------------------
    async def bootstrap(self, assets: list[Asset]) -> dict[str, Any]:
        """Deploy the HTLC, the DvP contract and one token per asset, if missing."""
        updates: dict[str, Any] = {}
        if self.config.htlc_address is None:
            updates["htlc_address"] = await self._deploy("HashedTimelockERC20")
        if self.config.dvp_address is None:
            updates["dvp_address"] = await self._deploy("DvpSettlement")
        tokens = dict(self.config.tokens)
        issuer = self._address(self.config.issuer)
        for asset in assets:
            if asset.symbol not in tokens:
                tokens[asset.symbol] = await self._deploy(
                    "DvpToken", asset.symbol, asset.symbol, asset.decimals, issuer
                )
        if tokens != self.config.tokens:
            updates["tokens"] = tokens
        self.config = self.config.model_copy(update=updates)
        self._tokens = {s: to_checksum_address(a) for s, a in self.config.tokens.items()}
        self._bind_contracts()
        return updates

    async def _deploy(self, name: str, *args: Any) -> str:
        art = artifact(name)
        factory = self._w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx_id = await self._send(self.config.issuer, factory.constructor(*args), f"deploy {name}")
        with web3_errors(f"deploy {name}", self.name):
            receipt = await self._sent.receipt(tx_id, timeout=60)
        if int(receipt["status"], 16) != 1:
            raise errors.CommitError(f"deploy {name} reverted", tx_id=tx_id, code="reverted")
        return to_checksum_address(receipt["contractAddress"])

    # -- clock and finality ---------------------------------------------------------------
    async def now(self) -> LedgerTime:
        # The orchestrator reads the clock around every step of every swap in flight: one
        # request serves all callers within a poll interval (the head moves once a block).
        at, cached = self._clock
        if cached is not None and time.monotonic() - at < _POLL:
            return cached
        with web3_errors("read clock", self.name):
            block = await self._sent.request("eth_getBlockByNumber", ["latest", False])
        clock = LedgerTime(height=int(block["number"], 16), timestamp=float(int(block["timestamp"], 16)))
        self._clock = (time.monotonic(), clock)
        return clock

    @property
    def finality(self) -> Finality:
        c = self.config
        return Finality.by_confirmations(c.confirmations, c.block_interval, c.clock_skew)

    async def wait_final(self, tx_id: str, *, timeout: float | None = None) -> TxStatus:
        timeout = self.finality_timeout(timeout)
        deadline = time.monotonic() + timeout
        with web3_errors(f"wait for {tx_id}", self.name):
            receipt = await self._sent.receipt(tx_id, timeout)
            block = int(receipt["blockNumber"], 16)
            # A mined receipt is one confirmation: ask for the head only when more are needed.
            while (
                self.config.confirmations > 1
                and await self._w3.eth.block_number - block + 1 < self.config.confirmations
            ):
                if time.monotonic() > deadline:
                    raise errors.FinalityTimeout(f"{tx_id} not final after {timeout:.0f}s", tx_id=tx_id, code="timeout")
                await asyncio.sleep(_POLL)
        fee = int(receipt["gasUsed"], 16) * int(receipt.get("effectiveGasPrice") or "0x0", 16)
        self._note_locks(receipt, block)
        if int(receipt["status"], 16) != 1:
            reason = await self._replay_reason(tx_id, block)
            # Reverted, but mined: its gas is paid all the same (the journal records it).
            raise error_for(reason, what=f"transaction on {self.name}", tx_id=tx_id, mined=True, fee=fee, block=block)
        return TxStatus(tx_id=tx_id, successful=True, code=0, block_number=block, fee=fee)

    def _note_locks(self, receipt: dict[str, Any], block: int) -> None:
        """Remember the block of each lock this receipt opened, so that an audit in this
        process need not search the chain's logs from genesis for it."""
        if self.htlc is None:
            return
        for log in receipt.get("logs") or []:
            topics = log.get("topics") or []
            if len(topics) > 1 and topics[0] == _LOCKED_TOPIC and log["address"].lower() == self.htlc.address.lower():
                self._lock_blocks["0x" + topics[1][2:].lower()] = block

    async def _replay_reason(self, tx_id: str, block: int) -> str | None:
        """Which rule a mined transaction broke: from a trace of the real execution where the
        node offers one (anvil, geth), else by re-running it on the state before its block."""
        try:
            trace = await self._w3.provider.make_request("debug_traceTransaction", [tx_id, {"tracer": "callTracer"}])
            result = trace.get("result") or {}
            if result.get("output") and result["output"] != "0x":
                return decode_revert(result["output"])
            if "out of gas" in str(result.get("error", "")).lower():
                return "OutOfGas"
        except Exception:
            pass
        try:
            tx = await self._w3.eth.get_transaction(HexStr(tx_id))
            call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
            await self._w3.eth.call(cast(TxParams, call), block_identifier=block - 1)
        except Exception as exc:
            data = getattr(exc, "data", None)
            return decode_revert(data if isinstance(data, str) else None)
        return None

    # -- accounts and assets ----------------------------------------------------------------
    def _address(self, party: str) -> str:
        return self.known(self._addresses, party, "party", "no account")

    def _key(self, party: str) -> LocalAccount:
        if party in self._addresses and party not in self._keys:  # a counterparty: known by its address only
            raise no_key(self.name, party, self._keys)
        return self.known(self._keys, party, "party", "no key")

    def _token(self, asset: str) -> str:
        return self.known(self._tokens, asset, "asset", "unknown")

    def _party(self, address: str) -> str:
        return self._parties.get(address.lower(), address)

    def _asset(self, address: str) -> str:
        return next((s for s, a in self._tokens.items() if a.lower() == address.lower()), address)

    def address_of(self, party: str) -> str:
        return self._address(party)

    def forget_sending_state(self, party: str) -> None:
        if self._sender is not None and party in self._addresses:
            self._sender.forget(self._address(party))

    def _erc20(self, asset: str) -> AsyncContract:
        address = to_checksum_address(self._token(asset))
        token = self._token_contracts.get(address)
        if token is None:  # one per token (8% of two agents' CPU at K=50, built anew for every lock)
            token = self._token_contracts[address] = self._w3.eth.contract(
                address=address, abi=artifact("DvpToken")["abi"]
            )
        return token

    async def balance(self, party: str, asset: str) -> int:
        view = _view("DvpToken", "balanceOf")
        call = view.call(self._token(asset), self._address(party))
        with web3_errors("balance", self.name):
            (out,) = await self._sent.batch([call])
        (have,) = view.decode(out)
        return int(have)

    async def issue(self, asset: str, to: str, amount: int) -> Submission:
        if self.config.issuer not in self._keys:
            raise no_key(self.name, self.config.issuer, self._keys, "issuing is signed by the issuer")
        call = self._erc20(asset).functions.mint(self._address(to), amount)
        tx_id = await self._send(self.config.issuer, call, f"issue {asset}")
        return Submission([self._submitted(tx_id, TxPurpose.ISSUE, self.config.issuer)])

    async def _spend(
        self, party: str, asset: str, spender: str, amount: int | Callable[[], Awaitable[int]],
        build: Callable[[Signature | None, int | None], Any], what: str, *, gas: int, purpose: TxPurpose,
        settled: Callable[[str, bool], None] | None = None,
    ) -> list[str]:  # fmt: skip
        """Send ``what``, which pulls ``amount`` of ``asset`` from ``party`` with transferFrom.

        On an ERC-2612 token it is one transaction carrying the party's permit (``build``
        gets the signature and the amount; ``None`` for the plain call).  Otherwise an
        approve goes first with the previous nonce, in the same batch: nothing of the party
        comes between them, and an approve a failed call left unspent is overwritten by the
        next one, never added to.  Nothing waits for a block."""
        key = self._key(party)  # before any I/O: a party this process cannot sign for is refused as such
        token = self._erc20(asset)
        with web3_errors(what, self.name):
            if await self._permit_token(asset):
                permit = PermitRequest(token, spender)
                return await self._sent.send(key, [Tx(what, build, gas=gas, value=amount, permit=permit, settled=settled,
                                                      purpose=purpose)], party)  # fmt: skip
            return await self._sent.send(key, [
                Tx(f"approve {asset}", lambda _s, v: token.functions.approve(spender, v), gas=_GAS["approve"], value=amount,
                   purpose=TxPurpose.APPROVE),
                Tx(what, lambda _s, _v: build(None, None), gas=gas, settled=settled, purpose=purpose),
            ], party)  # fmt: skip

    async def _permit_token(self, asset: str) -> bool:
        """Whether the token implements ERC-2612 (asked once: tokens do not change)."""
        if asset not in self._has_permit:
            try:
                await self._erc20(asset).functions.DOMAIN_SEPARATOR().call()
                self._has_permit[asset] = True
            except Exception:
                self._has_permit[asset] = False
        return self._has_permit[asset]

    # -- sending --------------------------------------------------------------------------
    @property
    def _sent(self) -> Sender:
        if self._sender is None:
            raise errors.LedgerUnavailable(f"ledger {self.name!r} is not connected")
        return self._sender

    async def _send(
        self, party: str, call: ContractCall, what: str, gas: int | None = None, purpose: TxPurpose | None = None
    ) -> str:
        """One transaction of ``party``, nonce assigned locally (see nonces.py)."""
        key = self._key(party)
        with web3_errors(what, self.name):
            (tx_id,) = await self._sent.send(key, [Tx(what, lambda _s, _v: call, gas=gas, purpose=purpose)], party)
        return tx_id

    async def rebroadcast(self, signed: SignedTx) -> None:
        with web3_errors(f"rebroadcast {signed.tx_id}", self.name):
            await self._sent.rebroadcast(signed.tx_id, bytes.fromhex(signed.raw))

    def _submitted(self, tx_id: str, purpose: TxPurpose, payer: str) -> Submitted:
        return Submitted(ledger=self.name, tx_id=tx_id, purpose=purpose, payer=payer)

    def _spent(self, ids: list[str], purpose: TxPurpose, payer: str) -> Submission:
        """What ``_spend`` sent: the call alone (a permit), or an approve before it."""
        return Submission(
            [self._submitted(i, TxPurpose.APPROVE, payer) for i in ids[:-1]]
            + [self._submitted(ids[-1], purpose, payer)]
        )

    # -- hashed time-locks ----------------------------------------------------------------
    def lock_id(self, terms: HtlcTerms) -> str:
        return self._derive_id(
            self._configured(self.config.htlc_address, "htlc_address"),
            ["address", "address", "address", "uint256", "bytes32", "uint64", "bytes32"],
            [
                self._address(terms.sender),
                self._address(terms.recipient),
                self._token(terms.asset),
                terms.amount,
                bytes.fromhex(terms.hashlock),
                terms.expiry,
                bytes.fromhex(terms.nonce),
            ],
        )

    def _configured(self, address: str | None, what: str) -> str:
        """A contract address from the static config (no connection needed)."""
        if address is None:
            raise errors.ConfigError(f"ledgers.{self.name}.{what}: not deployed; run `dvp up` or set it")
        return to_checksum_address(address)

    def _derive_id(self, contract: str, types: list[str], values: list[object]) -> str:
        """The id a contract derives on chain: keccak of (chain id, contract, every term)."""
        encoded = encode(["uint256", "address", *types], [self.config.chain_id, contract, *values])
        return "0x" + keccak(encoded).hex()

    async def check_lock(self, terms: HtlcTerms) -> None:
        await self._check_spend(terms.sender, terms.recipient, terms.asset, terms.amount, _GAS["lock"])

    async def _check_spend(self, sender: str, recipient: str, asset: str, amount: int, gas: int) -> None:
        """Refuse a spend the sender cannot pay: the amount of the token, and the gas of the
        call (and of an approve, on a token without permit) at the current price in the chain's coin."""
        try:
            owner = self._address(sender)  # a counterparty's address will do: this reads, it signs nothing
            self._address(recipient)
            self._token(asset)
        except errors.ConfigError as exc:
            raise errors.LockRefused(str(exc)) from None
        view = _view("DvpToken", "balanceOf")
        with web3_errors("balance and fee balance", self.name):  # one request
            out, price_hex, coin_hex = await self._sent.batch(
                [
                    view.call(self._token(asset), owner),
                    ("eth_gasPrice", []),
                    ("eth_getBalance", [to_checksum_address(owner), "latest"]),
                ]
            )
        (have,) = view.decode(out)
        if have < amount:
            unit = self.unit_of(asset)
            raise errors.LockRefused(funds_short(sender, self.name, Quantity(have, unit), Quantity(amount, unit)))
        price, coin = int(price_hex, 16), int(coin_hex, 16)
        approve = 0 if await self._permit_token(asset) else _GAS["approve"]  # a permit rides in the call
        fees = (approve + gas) * price
        if coin < fees:
            raise errors.LockRefused(
                funds_short(
                    sender,
                    self.name,
                    Quantity(coin, self.fee_unit),
                    Quantity(fees, self.fee_unit),
                    purpose=" for fees",
                    up_to=True,
                )
            )

    async def lock(self, terms: HtlcTerms) -> Submission:
        htlc = self._need(self.htlc, "htlc_address")
        args = (self._address(terms.recipient), self._token(terms.asset), terms.amount,
                bytes.fromhex(terms.hashlock), terms.expiry, bytes.fromhex(terms.nonce))  # fmt: skip

        def build(sig: Signature | None, _value: int | None) -> AsyncContractFunction:
            if sig is None:
                return htlc.functions.lock(*args)
            return htlc.functions.lockWithPermit(*args, (sig.deadline, sig.v, sig.r, sig.s))

        ids = await self._spend(
            terms.sender,
            terms.asset,
            htlc.address,
            terms.amount,
            build,
            "lock",
            gas=_GAS["lock"],
            purpose=TxPurpose.LOCK,
        )
        return self._spent(ids, TxPurpose.LOCK, terms.sender)

    async def claim(self, lock_id: str, preimage: bytes, *, submitter: str) -> Submission:
        if len(preimage) != 32:
            raise errors.InvalidPreimage(f"preimage: must be exactly 32 bytes, got {len(preimage)}")
        call = self._need(self.htlc, "htlc_address").functions.claim(self._lock_b32(lock_id), preimage)
        return Submission(
            [
                self._submitted(
                    await self._send(submitter, call, "claim", purpose=TxPurpose.CLAIM), TxPurpose.CLAIM, submitter
                )
            ]
        )

    async def refund(self, lock_id: str, *, submitter: str) -> Submission:
        call = self._need(self.htlc, "htlc_address").functions.refund(self._lock_b32(lock_id))
        return Submission(
            [
                self._submitted(
                    await self._send(submitter, call, "refund", purpose=TxPurpose.REFUND), TxPurpose.REFUND, submitter
                )
            ]
        )

    async def get_lock(self, lock_id: str) -> LockState | None:
        htlc = self._need(self.htlc, "htlc_address")
        view = _view("HashedTimelockERC20", "getLock")
        call = view.call(htlc.address, self._lock_b32(lock_id))
        with web3_errors("read lock", self.name):  # the lock and the head in one request
            out, head = await self._sent.batch([call, ("eth_blockNumber", [])])
        ((sender, recipient, token, amount, hashlock, expiry, status, preimage, nonce),) = view.decode(out)
        if status == 0:
            return None
        confirmations = await self._confirmations(htlc, lock_id, int(head, 16))
        return LockState(
            lock_id=lock_id,
            terms=LedgerTerms(
                sender=self._party(sender),
                recipient=self._party(recipient),
                asset=self._asset(token),
                amount=amount,
                hashlock=bytes(hashlock).hex(),
                expiry=expiry,
                nonce=bytes(nonce).hex(),
            ),
            status=_LOCK_STATUS[status],
            preimage=bytes(preimage).hex() if status == 2 else None,
            confirmations=confirmations,
            final=confirmations >= self.config.confirmations,
        )

    async def _confirmations(self, htlc: AsyncContract, lock_id: str, head: int) -> int:
        """Blocks from the lock's own to ``head`` (read with the lock), both counted."""
        with web3_errors("read lock events", self.name):
            block = self._lock_blocks.get(lock_id)
            if block is None:
                # Straight over JSON-RPC (the lock id is the event's first indexed topic): web3.py's
                # event filter builds a contract event and decodes every log, per lock read.
                topics = [_LOCKED_TOPIC, "0x" + self._lock_b32(lock_id).hex()]
                logs = await self._sent.request(
                    "eth_getLogs",
                    [{"address": htlc.address, "fromBlock": "0x0", "toBlock": "latest", "topics": topics}],
                )
                if not logs:
                    return 0
                block = self._lock_blocks[lock_id] = int(logs[0]["blockNumber"], 16)
            return max(0, head - block + 1)

    def _lock_b32(self, lock_id: str) -> bytes:
        """A lock id as the contract takes it; MalformedLockId unless 32 bytes of hex (0x optional)."""
        if not _HEX32.fullmatch(lock_id):
            raise self.malformed_lock_id(lock_id, "32 bytes of hex")
        return _b32(lock_id)

    async def audit(self, lock_id: str, expected: HtlcTerms) -> LockState:
        self._lock_b32(lock_id)
        htlc = self._need(self.htlc, "htlc_address")
        if htlc.address not in self._audited_code:
            with web3_errors("audit", self.name):
                code = await self._w3.eth.get_code(htlc.address)
            if "0x" + bytes(code).hex() != artifact("HashedTimelockERC20")["deployedBytecode"]:
                raise errors.AuditFailed(
                    f"audit {lock_id}: HTLC contract code at {htlc.address} is not the audited build"
                )
            self._audited_code.add(htlc.address)
        state = await self.locked_as_agreed(lock_id, expected)
        if not state.final:
            raise errors.AuditFailed(
                f"audit {lock_id}: {state.confirmations} confirmations, {self.config.confirmations} required"
            )
        if self.lock_id(expected) != lock_id:
            raise errors.AuditFailed(f"audit {lock_id}: id does not commit to the agreed terms")
        return state

    async def observe(self, since: str | None = None) -> AsyncIterator[LockEvent]:
        htlc = self._need(self.htlc, "htlc_address")
        after = _parse_checkpoint(since)
        with web3_errors("observe", self.name):
            head = await self._w3.eth.block_number
            start = after[0] if after else 0
            logs = []
            kinds: tuple[tuple[Any, Literal["locked", "claimed", "refunded"]], ...] = (
                (htlc.events.Locked, "locked"),
                (htlc.events.Claimed, "claimed"),
                (htlc.events.Refunded, "refunded"),
            )
            for event, kind in kinds:
                for log in await event.get_logs(from_block=start, to_block=head):
                    logs.append((log["blockNumber"], log["logIndex"], kind, log))
        for block, index, kind, log in sorted(logs, key=lambda x: (x[0], x[1])):
            if after and (block, index) <= after:
                continue
            preimage = log["args"].get("preimage")
            yield LockEvent(
                ledger=self.name,
                kind=kind,
                lock_id="0x" + bytes(log["args"]["lockId"]).hex(),
                tx_id="0x" + bytes(log["transactionHash"]).hex(),
                height=block,
                preimage=bytes(preimage).hex() if preimage is not None else None,
                checkpoint=f"{block}:{index}",
            )

    # -- single-ledger atomic DvP -----------------------------------------------------------
    def order_id(self, order: DvpOrder) -> str:
        return self._derive_id(
            self._configured(self.config.dvp_address, "dvp_address"),
            ["address", "address", "address", "uint256", "address", "uint256", "uint64", "bytes32"],
            [
                self._address(order.seller),
                self._address(order.buyer),
                self._token(order.security),
                order.security_amount,
                self._token(order.cash),
                order.cash_amount,
                order.deadline,
                bytes.fromhex(order.nonce),
            ],
        )

    async def propose_dvp(self, order: DvpOrder) -> Submission:
        dvp = self._need(self.dvp, "dvp_address")
        args = (self._address(order.buyer), self._token(order.security), order.security_amount,
                self._token(order.cash), order.cash_amount, order.deadline, bytes.fromhex(order.nonce))  # fmt: skip

        def build(sig: Signature | None, value: int | None) -> AsyncContractFunction:
            if sig is None:
                return dvp.functions.propose(*args)
            return dvp.functions.proposeWithPermit(*args, (value, sig.deadline, sig.v, sig.r, sig.s))

        # The seller's allowance is its consent to delivery; propose itself pulls nothing, so
        # the allowance must cover every open proposal of the seller: it grows by this one.
        key = (order.seller, order.security)
        token = self._erc20(order.security)

        async def allowance() -> int:
            if self._granting[key]:
                current = self._granted[key]
            else:  # nothing of ours in flight: the ledger is the truth (accepts spend it)
                current = await token.functions.allowance(self._address(order.seller), dvp.address).call()
            self._granted[key] = current + order.security_amount
            self._granting[key].add(order.nonce)  # in flight from now on, in nonce order
            return self._granted[key]

        def settled(_tx_id: str, _ok: bool) -> None:
            self._granting[key].discard(order.nonce)

        try:
            ids = await self._spend(order.seller, order.security, dvp.address, allowance, build, "propose DvP",
                                    gas=_GAS["propose"], purpose=TxPurpose.PROPOSE, settled=settled)  # fmt: skip
        except BaseException:
            self._granting[key].discard(order.nonce)
            raise
        return self._spent(ids, TxPurpose.PROPOSE, order.seller)

    async def accept_dvp(self, order: DvpOrder) -> Submission:
        dvp = self._need(self.dvp, "dvp_address")
        order_id = _b32(self.order_id(order))

        def build(sig: Signature | None, value: int | None) -> AsyncContractFunction:
            if sig is None:
                return dvp.functions.accept(order_id)
            return dvp.functions.acceptWithPermit(order_id, (value, sig.deadline, sig.v, sig.r, sig.s))

        ids = await self._spend(order.buyer, order.cash, dvp.address, order.cash_amount, build, "accept DvP",
                                gas=_GAS["accept"], purpose=TxPurpose.ACCEPT)  # fmt: skip
        return self._spent(ids, TxPurpose.ACCEPT, order.buyer)

    async def cancel_dvp(self, order: DvpOrder) -> Submission:
        """The seller's ``cancel``: the contract closes the order (only its seller, only while
        open), after which ``accept`` reverts NotOpen; the seller's allowance then moves nothing
        (not revoked: only an order the seller proposes can spend it; README, "One transaction per
        EVM step")."""
        call = self._need(self.dvp, "dvp_address").functions.cancel(_b32(self.order_id(order)))
        tx_id = await self._send(order.seller, call, "cancel DvP", gas=_GAS["cancel"], purpose=TxPurpose.CANCEL)
        return Submission([self._submitted(tx_id, TxPurpose.CANCEL, order.seller)])

    async def get_order(self, order_id: str) -> OrderState | None:
        dvp = self._need(self.dvp, "dvp_address")
        view = _view("DvpSettlement", "getOrder")
        call = view.call(dvp.address, _b32(order_id))
        with web3_errors("read order", self.name):
            (out,) = await self._sent.batch([call])
        ((*_, status),) = view.decode(out)
        return None if status == 0 else OrderState(order_id=order_id, status=_ORDER_STATUS[status])


# Fixed gas limits for the transactions that spend an allowance or a permit: they cannot be
# estimated while the approve before them, or the permits before theirs, are still in the
# pool.  Measured use plus headroom for cold storage; only gas used is paid.
_GAS = {"approve": 80_000, "lock": 300_000, "propose": 300_000, "accept": 250_000, "cancel": 80_000}


class _View:
    """A view function called past web3.py's request stack (middleware, formatters,
    validation: most of a read's CPU with many swaps in flight): its selector and ABI types
    from the artifact, encoded and decoded with eth_abi, sent in a JSON-RPC batch."""

    def __init__(self, contract: str, function: str):
        abi = next(e for e in artifact(contract)["abi"] if e.get("type") == "function" and e["name"] == function)
        self.selector = function_abi_to_4byte_selector(abi)
        self.inputs = [collapse_if_tuple(i) for i in abi["inputs"]]
        self.outputs = [collapse_if_tuple(o) for o in abi["outputs"]]

    def call(self, to: str, *args: Any) -> tuple[str, list[Any]]:
        data = "0x" + (self.selector + encode(self.inputs, list(args))).hex()
        return "eth_call", [{"to": to, "data": data}, "latest"]

    def decode(self, out: str) -> tuple[Any, ...]:
        if not out or out == "0x":
            raise errors.AdapterError(f"{self.selector.hex()}: empty answer (no contract at the address?)")
        return decode(self.outputs, bytes.fromhex(out.removeprefix("0x")))


@functools.cache
def _view(contract: str, function: str) -> _View:
    return _View(contract, function)


_HEX32 = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


def _b32(hex_id: str) -> bytes:
    try:
        raw = bytes.fromhex(hex_id.removeprefix("0x"))
    except ValueError:
        raise errors.ConfigError(f"lock id: malformed hex {hex_id!r}") from None
    if len(raw) != 32:
        raise errors.ConfigError(f"lock id: must be 32 bytes of hex, got {len(raw)}")
    return raw


def _parse_checkpoint(since: str | None) -> tuple[int, int] | None:
    if not since:
        return None
    try:
        block, index = since.split(":")
        return int(block), int(index)
    except ValueError:
        raise errors.ConfigError(f"checkpoint: expected 'block:index', got {since!r}") from None


class DevEthereumAdapter(EthereumAdapter, TimeTravel):
    """A dev EVM chain (anvil) whose clock tests may move."""

    async def advance_time(self, seconds: int) -> None:
        with web3_errors("advance time", self.name):
            await self._w3.provider.make_request("evm_increaseTime", [int(seconds)])
            await self._w3.provider.make_request("evm_mine", [])
        self._clock = (0.0, None)

    async def mine(self, blocks: int = 1) -> None:
        with web3_errors("mine", self.name):
            for _ in range(blocks):
                await self._w3.provider.make_request("evm_mine", [])
        self._clock = (0.0, None)


class GethAdapter(EthereumAdapter):
    """The same adapter on geth: only standard JSON-RPC, so no time travel (whatever its
    config says); refund paths wait for real expiry."""

    kind = "geth"
    config_model = GethConfig

    @classmethod
    def for_config(cls, config: LedgerConfig) -> type[LedgerAdapter]:
        return cls
