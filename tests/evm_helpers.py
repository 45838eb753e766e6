"""Sending raw EVM calls that must be mined and revert, for the suites that break the
contracts' rules on purpose."""

from __future__ import annotations

import pytest

from dvp import errors

GAS = 400_000


async def mined_call(adapter, party: str, to: str, data: bytes | str) -> str:
    """Sign and send raw calldata with a fixed gas limit, skipping estimation."""
    w3 = adapter._w3
    account = adapter._key(party)
    tx = {
        "to": to,
        "data": data,
        "gas": GAS,
        "nonce": await w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": adapter.config.chain_id,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = account.sign_transaction(tx)
    return "0x" + bytes(await w3.eth.send_raw_transaction(signed.raw_transaction)).hex()


async def reverted_with(adapter, tx_id: str) -> str:
    with pytest.raises((errors.CommitError, errors.LockError)) as info:
        await adapter.wait_final(tx_id)
    receipt = await adapter._w3.eth.get_transaction_receipt(tx_id)
    assert receipt["status"] == 0 and receipt["blockNumber"]
    assert info.value.tx_id == tx_id
    return info.value.code


def calldata(contract, fn: str, *args) -> str:
    return contract.encode_abi(fn, args=list(args))
