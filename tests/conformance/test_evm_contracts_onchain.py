"""EVM only: each rule broken by a transaction that is actually mined, so the rejection
comes from the contract in a block (status 0), not from the client or gas estimation."""

from __future__ import annotations

import secrets

import pytest

from dvp import errors
from dvp.models import DvpOrder, LockStatus, OrderStatus

from ..evm_helpers import calldata, mined_call, reverted_with
from ..htlc_helpers import AMOUNT, locked, make_terms

LEDGER = "evm-a"


@pytest.fixture
def evm(ledger_set):
    return ledger_set.ledgers[LEDGER]


async def test_wrong_preimage_reverts_in_a_block(evm):
    lock_id, _, _ = await locked(evm)
    tx = await mined_call(
        evm, "buyer", evm.htlc.address, calldata(evm.htlc, "claim", bytes.fromhex(lock_id[2:]), secrets.token_bytes(32))
    )
    assert await reverted_with(evm, tx) == "WrongPreimage"
    assert (await evm.get_lock(lock_id)).status is LockStatus.LOCKED


async def test_oversized_preimage_reverts_even_when_its_first_32_bytes_are_right(evm):
    """A 33-byte preimage must be refused, never silently truncated to bytes32."""
    lock_id, _, preimage = await locked(evm)
    data = calldata(evm.htlc, "claim", bytes.fromhex(lock_id[2:]), preimage) + "00"
    tx = await mined_call(evm, "buyer", evm.htlc.address, data)
    assert await reverted_with(evm, tx) == "PreimageSize"
    assert (await evm.get_lock(lock_id)).status is LockStatus.LOCKED


async def test_early_refund_and_refund_by_another_party_revert(evm):
    lock_id, _, _ = await locked(evm)
    for party, code in (("seller", "NotExpired"), ("buyer", "OnlySender")):
        tx = await mined_call(evm, party, evm.htlc.address, calldata(evm.htlc, "refund", bytes.fromhex(lock_id[2:])))
        assert await reverted_with(evm, tx) == code


async def test_double_claim_reverts(evm):
    lock_id, _, preimage = await locked(evm)
    await evm.wait_final((await evm.claim(lock_id, preimage, submitter="buyer")).tx_id)
    tx = await mined_call(
        evm, "buyer", evm.htlc.address, calldata(evm.htlc, "claim", bytes.fromhex(lock_id[2:]), preimage)
    )
    assert await reverted_with(evm, tx) == "NotLocked"


async def test_claim_after_expiry_reverts(evm):
    lock_id, _, preimage = await locked(evm, seconds=20)
    await evm.advance_time(21)
    tx = await mined_call(
        evm, "buyer", evm.htlc.address, calldata(evm.htlc, "claim", bytes.fromhex(lock_id[2:]), preimage)
    )
    assert await reverted_with(evm, tx) == "Expired"


@pytest.mark.parametrize(("change", "code"), [({"amount": 0}, "ZeroAmount"), ({"seconds": -5}, "ExpiryNotInFuture")])
async def test_bad_lock_terms_revert(evm, change, code):
    now = await evm.now()
    seconds = change.get("seconds", 60)
    terms, _ = make_terms(evm, now, seconds=seconds)
    amount = change.get("amount", AMOUNT)
    data = calldata(
        evm.htlc,
        "lock",
        evm.address_of("buyer"),
        evm._token("BOND"),
        amount,
        bytes.fromhex(terms.hashlock),
        terms.expiry,
        bytes.fromhex(terms.nonce),
    )
    tx = await mined_call(evm, "seller", evm.htlc.address, data)
    assert await reverted_with(evm, tx) == code


async def test_duplicate_lock_reverts(evm):
    lock_id, terms, _ = await locked(evm)
    await evm.wait_final(
        await mined_call(
            evm, "seller", evm._token("BOND"), calldata(evm._erc20("BOND"), "approve", evm.htlc.address, AMOUNT)
        )
    )
    data = calldata(
        evm.htlc,
        "lock",
        evm.address_of("buyer"),
        evm._token("BOND"),
        AMOUNT,
        bytes.fromhex(terms.hashlock),
        terms.expiry,
        bytes.fromhex(terms.nonce),
    )
    tx = await mined_call(evm, "seller", evm.htlc.address, data)
    assert await reverted_with(evm, tx) == "DuplicateLock"


async def test_only_the_issuer_mints(evm):
    tx = await mined_call(
        evm, "seller", evm._token("EUR"), calldata(evm._erc20("EUR"), "mint", evm.address_of("seller"), 1)
    )
    assert await reverted_with(evm, tx) == "OnlyIssuer"


async def test_dvp_moves_neither_leg_when_one_cannot_move(evm):
    """Atomicity: the buyer cannot pay, so the seller's securities stay where they are."""
    now = await evm.now()
    rich = await evm.balance("buyer", "EUR")
    order = DvpOrder(
        seller="seller",
        buyer="buyer",
        security="BOND",
        security_amount=3,
        cash="EUR",
        cash_amount=rich + 1,
        deadline=evm.expiry_after(now, 60),
        nonce=secrets.token_hex(32),
    )
    await evm.wait_final((await evm.propose_dvp(order)).tx_id)
    before = [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")]
    # The buyer approves enough but does not hold it.
    await evm.wait_final(
        await mined_call(
            evm, "buyer", evm._token("EUR"), calldata(evm._erc20("EUR"), "approve", evm.dvp.address, rich + 1)
        )
    )
    tx = await mined_call(
        evm, "buyer", evm.dvp.address, calldata(evm.dvp, "accept", bytes.fromhex(evm.order_id(order)[2:]))
    )
    assert await reverted_with(evm, tx) == "ERC20InsufficientBalance"
    assert [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")] == before
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.OPEN
    # Only the named buyer may accept.
    tx = await mined_call(
        evm, "seller", evm.dvp.address, calldata(evm.dvp, "accept", bytes.fromhex(evm.order_id(order)[2:]))
    )
    assert await reverted_with(evm, tx) == "OnlyBuyer"


async def test_only_the_seller_cancels_and_a_cancelled_order_cannot_be_accepted(evm):
    """The settlement contract's own rules, each broken by a mined transaction: the buyer (or
    anyone but the seller) cannot cancel; once the seller cancelled, the buyer's acceptance
    reverts NotOpen and moves nothing, though the seller's allowance is still in force."""
    now = await evm.now()
    order = DvpOrder(
        seller="seller",
        buyer="buyer",
        security="BOND",
        security_amount=3,
        cash="EUR",
        cash_amount=30,
        deadline=evm.expiry_after(now, 60),
        nonce=secrets.token_hex(32),
    )
    order_id = bytes.fromhex(evm.order_id(order)[2:])
    await evm.wait_final((await evm.propose_dvp(order)).tx_id)
    tx = await mined_call(evm, "buyer", evm.dvp.address, calldata(evm.dvp, "cancel", order_id))
    assert await reverted_with(evm, tx) == "OnlySeller"
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.OPEN
    await evm.wait_final((await evm.cancel_dvp(order)).tx_id)
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.CANCELLED
    allowance = await evm._erc20("BOND").functions.allowance(evm.address_of("seller"), evm.dvp.address).call()
    assert allowance >= 3
    before = [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")]
    await evm.wait_final(
        await mined_call(evm, "buyer", evm._token("EUR"), calldata(evm._erc20("EUR"), "approve", evm.dvp.address, 30))
    )
    tx = await mined_call(evm, "buyer", evm.dvp.address, calldata(evm.dvp, "accept", order_id))
    assert await reverted_with(evm, tx) == "NotOpen"
    tx = await mined_call(evm, "seller", evm.dvp.address, calldata(evm.dvp, "cancel", order_id))
    assert await reverted_with(evm, tx) == "NotOpen"
    assert [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")] == before
    # Why the allowance left after a cancel is harmless (issue 20; not revoked): the contract
    # pulls a seller's bonds only in `accept`, of an open order whose seller is the account
    # that proposed it.  The cancelled order can never be open again ...
    seller, buyer = evm.address_of("seller"), evm.address_of("buyer")
    terms = (buyer, evm._token("BOND"), 3, evm._token("EUR"), 30, order.deadline, bytes.fromhex(order.nonce))
    tx = await mined_call(evm, "seller", evm.dvp.address, calldata(evm.dvp, "propose", *terms))
    assert await reverted_with(evm, tx) == "DuplicateOrder"
    # ... and an order anyone else proposes, same terms or not, pulls from its proposer: the
    # buyer's own order, accepted by the buyer, takes nothing of the seller's allowance.
    await evm.wait_final(await mined_call(evm, "buyer", evm.dvp.address, calldata(evm.dvp, "propose", *terms)))
    theirs = await evm.dvp.functions.orderIdFor(buyer, *terms).call()
    tx = await mined_call(evm, "buyer", evm.dvp.address, calldata(evm.dvp, "accept", theirs))
    assert await reverted_with(evm, tx) == "ERC20InsufficientAllowance"
    assert await evm._erc20("BOND").functions.allowance(seller, evm.dvp.address).call() == allowance
    assert [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")] == before


def copy_of(evm, **changes):
    """Another adapter (not connected) for ``evm``'s ledger, its config changed by ``changes``."""
    from dvp.registry import build_adapter

    return build_adapter(
        evm.name,
        evm.config.model_dump(mode="python")
        | {"accounts": {p: k.get_secret_value() for p, k in evm.config.accounts.items()}, **changes},
    )


async def test_lock_id_needs_no_connection(evm):
    """Pure: an adapter that never connected derives the id the contract gives the lock."""
    offline = copy_of(evm)
    terms, _ = make_terms(evm, await evm.now())
    assert offline.lock_id(terms) == evm.lock_id(terms)
    await evm.wait_all(await evm.lock(terms))
    state = await evm.get_lock(offline.lock_id(terms))
    assert state is not None and state.status is LockStatus.LOCKED


async def test_audit_refuses_a_lock_under_code_that_is_not_the_audited_htlc(evm):
    """docs/design.md, rule 5: a lock is relied on only under the audited HTLC build.  The same
    lock, read through a config that names another contract as the HTLC (here the settlement
    contract: other code at that address), fails the audit on the code, before any term."""
    lock_id, terms, _ = await locked(evm)
    assert (await evm.audit(lock_id, terms)).status is LockStatus.LOCKED
    async with copy_of(evm, htlc_address=evm.dvp.address) as elsewhere:
        with pytest.raises(errors.AuditFailed, match="not the audited build"):
            await elsewhere.audit(lock_id, terms)
