"""EVM only: a lock (and each DvP side) is one transaction carrying an ERC-2612 permit, and
the contracts refuse every permit that does not authorise exactly that transaction.  Each
bad permit is sent in a transaction that is mined and reverts (status 0)."""

from __future__ import annotations

import secrets

import pytest

from dvp import errors
from dvp.models import DvpOrder, LockStatus, OrderStatus

from ..evm_helpers import calldata, mined_call, reverted_with
from ..htlc_helpers import AMOUNT, make_terms

LEDGER = "evm-a"


@pytest.fixture
def evm(ledger_set):
    return ledger_set.ledgers[LEDGER]


async def permit(evm, party: str, spender: str, value: int, *, asset="BOND", deadline=None, nonce=None, signer=None):
    """(deadline, v, r, s) of ``signer``'s (default: ``party``'s) permit for ``party``'s tokens."""
    token = evm._erc20(asset)
    owner = evm.address_of(party)
    if nonce is None:
        nonce = await token.functions.nonces(owner).call()
    if deadline is None:
        deadline = int((await evm.now()).timestamp) + 600
    account = evm._key(signer or party)
    if signer is not None:
        # Sign a message naming ``party`` as owner with another key.
        account = _SignAs(account, owner)
    sig = await evm._sent._sign_permit(account, token, spender, value, nonce, deadline)
    return (sig.deadline, sig.v, sig.r, sig.s)


class _SignAs:
    """A key that signs permits claiming to be ``owner``."""

    def __init__(self, account, owner):
        self._account, self.address = account, owner

    def sign_typed_data(self, **kw):
        return self._account.sign_typed_data(**kw)


def lock_data(evm, terms, sig) -> str:
    return calldata(evm.htlc, "lockWithPermit", evm.address_of(terms.recipient), evm._token(terms.asset), terms.amount,
                    bytes.fromhex(terms.hashlock), terms.expiry, bytes.fromhex(terms.nonce), sig)  # fmt: skip


async def test_a_lock_is_one_transaction_with_a_permit(evm):
    terms, _ = make_terms(evm, await evm.now())
    before = await evm.balance("seller", "BOND")
    tx = (await evm.lock(terms)).tx_id
    await evm.wait_final(tx)
    mined = await evm._w3.eth.get_transaction(tx)
    assert mined["to"] == evm.htlc.address and bytes(mined["input"])[:4] == _selector(evm.htlc, "lockWithPermit")
    assert await evm.balance("seller", "BOND") == before - AMOUNT
    # The permit was for exactly the amount, and the lock spent it.
    assert await evm._erc20("BOND").functions.allowance(evm.address_of("seller"), evm.htlc.address).call() == 0
    assert (await evm.get_lock(evm.lock_id(terms))).status is LockStatus.LOCKED


def _selector(contract, name: str) -> bytes:
    from eth_utils import function_abi_to_4byte_selector

    abi = next(i for i in contract.abi if i.get("name") == name)
    return function_abi_to_4byte_selector(abi)


@pytest.mark.parametrize("bad", ["other amount", "other spender", "expired", "other signer", "other sender"])
async def test_a_permit_that_does_not_authorise_this_lock_is_refused(evm, bad):
    terms, _ = make_terms(evm, await evm.now())
    spender, value, kw, sender = evm.htlc.address, terms.amount, {}, "seller"
    if bad == "other amount":
        value = terms.amount + 1
    elif bad == "other spender":
        spender = evm.dvp.address
    elif bad == "expired":
        kw["deadline"] = int((await evm.now()).timestamp) - 1
    elif bad == "other signer":
        kw["signer"] = "buyer"
    sig = await permit(evm, "seller", spender, value, **kw)
    if bad == "other sender":  # the buyer submits the seller's valid permit to lock the seller's tokens
        sender = "buyer"
    before = await evm.balance("seller", "BOND")
    tx = await mined_call(evm, sender, evm.htlc.address, lock_data(evm, terms, sig))
    code = await reverted_with(evm, tx)
    assert code == ("ERC2612ExpiredSignature" if bad == "expired" else "ERC2612InvalidSigner")
    assert await evm.balance("seller", "BOND") == before
    assert await evm.get_lock(evm.lock_id(terms)) is None


async def test_a_replayed_permit_is_refused(evm):
    terms, _ = make_terms(evm, await evm.now())
    sig = await permit(evm, "seller", evm.htlc.address, terms.amount)
    await evm.wait_final(await mined_call(evm, "seller", evm.htlc.address, lock_data(evm, terms, sig)))
    assert (await evm.get_lock(evm.lock_id(terms))).status is LockStatus.LOCKED
    # The same signature again, for a new lock of the same amount: its token nonce is spent.
    again = terms.model_copy(update={"nonce": secrets.token_hex(32)})
    tx = await mined_call(evm, "seller", evm.htlc.address, lock_data(evm, again, sig))
    assert await reverted_with(evm, tx) == "ERC2612InvalidSigner"
    assert await evm.get_lock(evm.lock_id(again)) is None


async def _order(evm, **kw) -> DvpOrder:
    now = await evm.now()
    fields = dict(seller="seller", buyer="buyer", security="BOND", security_amount=3, cash="EUR",
                  cash_amount=300, deadline=evm.expiry_after(now, 60), nonce=secrets.token_hex(32))  # fmt: skip
    return DvpOrder(**{**fields, **kw})


def _propose_args(evm, order: DvpOrder) -> list:
    return [evm.address_of(order.buyer), evm._token(order.security), order.security_amount, evm._token(order.cash),
            order.cash_amount, order.deadline, bytes.fromhex(order.nonce)]  # fmt: skip


async def test_dvp_sides_are_one_transaction_each_and_settle(evm):
    order = await _order(evm)
    before = [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")]
    for sub in (await evm.propose_dvp(order), await evm.accept_dvp(order)):
        await evm.wait_final(sub.tx_id)
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.SETTLED
    after = [await evm.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")]
    assert [a - b for a, b in zip(after, before)] == [-3, 300, 3, -300]
    # Concurrent proposals each got their allowance: the buyer's permit was spent exactly.
    assert await evm._erc20("EUR").functions.allowance(evm.address_of("buyer"), evm.dvp.address).call() == 0


async def test_dvp_permits_for_other_terms_or_replayed_are_refused(evm):
    order = await _order(evm)
    # A proposal whose permit does not cover its securities.
    sig = await permit(evm, "seller", evm.dvp.address, order.security_amount - 1)
    data = calldata(evm.dvp, "proposeWithPermit", *_propose_args(evm, order), (order.security_amount - 1, *sig))
    assert await reverted_with(evm, await mined_call(evm, "seller", evm.dvp.address, data)) == "PermitValue"
    # A permit signed for one value but presented with another.
    sig = await permit(evm, "seller", evm.dvp.address, order.security_amount)
    data = calldata(evm.dvp, "proposeWithPermit", *_propose_args(evm, order), (order.security_amount + 5, *sig))
    assert await reverted_with(evm, await mined_call(evm, "seller", evm.dvp.address, data)) == "ERC2612InvalidSigner"
    assert await evm.get_order(evm.order_id(order)) is None
    await evm.wait_final((await evm.propose_dvp(order)).tx_id)
    order_id = bytes.fromhex(evm.order_id(order)[2:])
    # The buyer's permit for the HTLC, not the DvP contract.
    sig = await permit(evm, "buyer", evm.htlc.address, order.cash_amount, asset="EUR")
    data = calldata(evm.dvp, "acceptWithPermit", order_id, (order.cash_amount, *sig))
    assert await reverted_with(evm, await mined_call(evm, "buyer", evm.dvp.address, data)) == "ERC2612InvalidSigner"
    # A permit for less than the price.
    sig = await permit(evm, "buyer", evm.dvp.address, order.cash_amount - 1, asset="EUR")
    data = calldata(evm.dvp, "acceptWithPermit", order_id, (order.cash_amount - 1, *sig))
    assert await reverted_with(evm, await mined_call(evm, "buyer", evm.dvp.address, data)) == "PermitValue"
    # An expired one.
    past = int((await evm.now()).timestamp) - 1
    sig = await permit(evm, "buyer", evm.dvp.address, order.cash_amount, asset="EUR", deadline=past)
    data = calldata(evm.dvp, "acceptWithPermit", order_id, (order.cash_amount, *sig))
    assert await reverted_with(evm, await mined_call(evm, "buyer", evm.dvp.address, data)) == "ERC2612ExpiredSignature"
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.OPEN
    # A valid one settles; presented again on a second order, it is refused.
    sig = await permit(evm, "buyer", evm.dvp.address, order.cash_amount, asset="EUR")
    data = calldata(evm.dvp, "acceptWithPermit", order_id, (order.cash_amount, *sig))
    await evm.wait_final(await mined_call(evm, "buyer", evm.dvp.address, data))
    assert (await evm.get_order(evm.order_id(order))).status is OrderStatus.SETTLED
    second = await _order(evm)
    await evm.wait_final((await evm.propose_dvp(second)).tx_id)
    data = calldata(evm.dvp, "acceptWithPermit", bytes.fromhex(evm.order_id(second)[2:]), (order.cash_amount, *sig))
    assert await reverted_with(evm, await mined_call(evm, "buyer", evm.dvp.address, data)) == "ERC2612InvalidSigner"


async def test_check_lock_refuses_what_the_ledger_would(evm):
    terms, _ = make_terms(evm, await evm.now())
    await evm.check_lock(terms)
    too_much = terms.model_copy(update={"amount": await evm.balance("seller", "BOND") + 1})
    with pytest.raises(errors.LockRefused, match="holds"):
        await evm.check_lock(too_much)
    with pytest.raises(errors.LockRefused, match="nobody"):
        await evm.check_lock(terms.model_copy(update={"recipient": "nobody"}))
