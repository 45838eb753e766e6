"""Where web3.py and aiohttp exceptions become dvp errors."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Iterator

import aiohttp
from eth_utils import keccak
from web3 import exceptions as w3x

from dvp import errors

from .artifacts import artifact

# Custom Solidity errors -> the dvp error that explains them.
_ERROR_TYPES: dict[str, type[errors.DvpError]] = {
    "WrongPreimage": errors.InvalidPreimage,
    "PreimageSize": errors.InvalidPreimage,
    "Expired": errors.LockExpired,
    "NotExpired": errors.LockExpired,
    "NoSuchLock": errors.LockNotFound,
    "NotLocked": errors.LockError,
    "DuplicateLock": errors.LockError,
    "OnlySender": errors.LockError,
    "ZeroAmount": errors.SubmitError,
    "ZeroRecipient": errors.SubmitError,
    "ExpiryNotInFuture": errors.LockExpired,
    "DeadlinePassed": errors.SubmitError,
    "DuplicateOrder": errors.SubmitError,
    "NotOpen": errors.SubmitError,
    "OnlyBuyer": errors.SubmitError,
    "OnlySeller": errors.SubmitError,
    "OnlyIssuer": errors.SubmitError,
    "ERC20InsufficientBalance": errors.SubmitError,
    "ERC20InsufficientAllowance": errors.SubmitError,
    "ERC2612InvalidSigner": errors.SubmitError,
    "ERC2612ExpiredSignature": errors.SubmitError,
    "PermitValue": errors.SubmitError,
}

_EXPLAIN = {
    "WrongPreimage": "sha256(preimage) does not match the hashlock",
    "PreimageSize": "preimage must be exactly 32 bytes",
    "Expired": "the lock has expired; claim refused",
    "NotExpired": "the lock has not expired yet; refund refused",
    "NoSuchLock": "no such lock",
    "NotLocked": "the lock was already claimed or refunded",
    "DuplicateLock": "a lock with these terms already exists",
    "OnlySender": "only the sender may refund",
    "ZeroAmount": "amount must be above zero",
    "ExpiryNotInFuture": "expiry must be in the future",
    "ERC20InsufficientBalance": "insufficient balance",
    "ERC20InsufficientAllowance": "insufficient allowance",
    "ERC2612InvalidSigner": "the permit was not signed by the owner for these terms (or its nonce was used)",
    "ERC2612ExpiredSignature": "the permit's deadline has passed",
    "PermitValue": "the permit's value does not cover the order",
    "OutOfGas": "ran out of gas (the state changed between gas estimation and execution)",
}


def _selectors() -> dict[str, str]:
    table = {}
    for name in ("HashedTimelockERC20", "DvpSettlement", "DvpToken"):
        for item in artifact(name)["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                table["0x" + keccak(text=sig)[:4].hex()] = item["name"]
    return table


def decode_revert(data: str | None) -> str | None:
    """The custom error name in revert data, if it is one of ours."""
    if not data or not isinstance(data, str):
        return None
    return _selectors().get(data[:10].lower())


def error_for(
    name: str | None, *, what: str, tx_id: str | None = None, mined: bool = False, fee: int | None = None,
    block: int | None = None,
) -> errors.DvpError:  # fmt: skip
    """The error of the rule ``name``; a ``mined`` transaction carries the ``fee`` its revert
    still cost and its ``block``."""
    detail = _EXPLAIN.get(name or "", name or "reverted")
    message = f"{what}: {detail}" + (f" (tx {tx_id})" if tx_id else "")
    cls = _ERROR_TYPES.get(name or "", errors.CommitError if mined else errors.SubmitError)
    if issubclass(cls, errors.TransactionError) and mined:
        cls = errors.CommitError
    if issubclass(cls, (errors.TransactionError, errors.LockError)):
        return cls(message, tx_id=tx_id, code=name or "reverted", fee=fee, block=block)
    return cls(message)


@contextmanager
def web3_errors(what: str, ledger: str) -> Iterator[None]:
    try:
        yield
    except errors.DvpError:
        raise
    except w3x.ContractCustomError as exc:
        raise error_for(decode_revert(exc.data if isinstance(exc.data, str) else exc.message), what=what) from exc
    except w3x.ContractLogicError as exc:
        raise error_for(
            decode_revert(exc.data if isinstance(exc.data, str) else None), what=f"{what} ({exc.message})"
        ) from exc
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, w3x.ProviderConnectionError) as exc:
        raise errors.LedgerUnavailable(f"ledger {ledger!r} unreachable during {what}: {exc}") from exc
    except w3x.TimeExhausted as exc:
        raise errors.FinalityTimeout(f"{what}: {exc}") from exc
    except w3x.Web3Exception as exc:
        raise errors.AdapterError(f"ledger {ledger!r}, {what}: {exc}") from exc
