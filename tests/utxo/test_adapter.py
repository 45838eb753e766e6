"""UtxoAdapter against a real btcd regtest node: the dvp adapter protocol on UTXO."""

from __future__ import annotations

import hashlib
import secrets

import pytest
import pytest_asyncio

from dvp import errors, sendlog
from dvp.adapter import AtomicDvp, LedgerAdapter
from dvp.models import Asset, AssetKind, Capability, ClockKind, HtlcTerms, LockStatus
from dvp.registry import check_class
from dvp.runtime.processes import free_port
from dvp.sendlog import SignedTx
from dvp_utxo.adapter import UtxoAdapter
from dvp_utxo.config import UtxoConfig
from dvp_utxo.tx import build_payment, tx_hex

pytestmark = pytest.mark.utxo

AMOUNT = 2_000_000


def make(config: dict, **over) -> UtxoAdapter:
    parsed = UtxoConfig.model_validate({**config, **over})
    return UtxoAdapter.for_config(parsed)("btc", parsed)


@pytest_asyncio.fixture
async def adapter(btcd_ledger):
    a = make(btcd_ledger.config)
    async with a:
        yield a


async def terms(adapter, *, blocks=20, amount=AMOUNT, secret=None, sender="seller", recipient="buyer"):
    secret = secret or secrets.token_bytes(32)
    now = await adapter.now()
    t = HtlcTerms(
        sender=sender,
        recipient=recipient,
        asset="BTC",
        amount=amount,
        hashlock=hashlib.sha256(secret).hexdigest(),
        expiry=now.height + blocks,
        nonce=secrets.token_hex(32),
    )
    return secret, t


async def locked(adapter, **kw):
    secret, t = await terms(adapter, **kw)
    lock_id = adapter.lock_id(t)
    sub = await adapter.lock(t)
    status = await adapter.wait_final(sub.tx_id)
    assert status.successful and status.fee and status.fee > 0
    return secret, t, lock_id


def test_registry_accepts_the_adapter():
    check_class(UtxoAdapter, LedgerAdapter, "dvp.adapters:utxo")
    assert UtxoAdapter.clock is ClockKind.HEIGHT


@pytest.mark.asyncio
async def test_clock_finality_and_bootstrap(adapter):
    now = await adapter.now()
    assert now.height >= 441 and now.timestamp > 0
    assert adapter.finality.confirmations == 1
    assert adapter.expiry_after(now, 10) == now.height + 10  # 1 s notional blocks
    assert adapter.supports(Capability.TIME_TRAVEL) and not adapter.supports(Capability.ATOMIC_DVP)
    assert await adapter.bootstrap([Asset(symbol="EUR", ledger="btc", kind=AssetKind.CASH, decimals=2)]) == {
        "assets": {"BTC": "native", "EUR": "native"}
    }
    assert await adapter.balance("seller", "EUR") == await adapter.balance("seller", "BTC")
    with pytest.raises(errors.NotSupportedError, match="BOND"):
        await adapter.bootstrap([Asset(symbol="BOND", ledger="btc", kind=AssetKind.SECURITY)])
    with pytest.raises(errors.NotSupportedError, match="atomic_dvp"):
        adapter.require(AtomicDvp)


@pytest.mark.asyncio
async def test_lock_audit_claim_reveals_secret_and_resumes_statelessly(adapter, btcd_ledger):
    buyer_before = await adapter.balance("buyer", "BTC")
    secret, t, lock_id = await locked(adapter)
    state = await adapter.audit(lock_id, t)
    # Every term the chain holds agrees; the nonce has no place in the script and is not guessed.
    assert state.status is LockStatus.LOCKED and state.final and state.terms.agrees_with(t)
    assert state.terms.nonce is None and state.terms.asset == "BTC"

    with pytest.raises(errors.InvalidPreimage):
        await adapter.claim(lock_id, secrets.token_bytes(32), submitter="buyer")
    with pytest.raises(errors.InvalidPreimage):
        await adapter.claim(lock_id, secret + b"\x00", submitter="buyer")

    sub = await adapter.claim(lock_id, secret, submitter="buyer")
    pending = await adapter.get_lock(lock_id)
    assert pending.status is LockStatus.CLAIMED and pending.preimage == secret.hex() and not pending.final
    status = await adapter.wait_final(sub.tx_id)
    assert status.block_number and status.fee > 0
    assert await adapter.balance("buyer", "BTC") == buyer_before + AMOUNT - status.fee

    # A fresh adapter (a restarted process) rebuilds the lock from its id and the chain.
    async with make(btcd_ledger.config) as fresh:
        st = await fresh.get_lock(lock_id)
        assert st.status is LockStatus.CLAIMED and st.preimage == secret.hex() and st.final
        assert (st.terms.sender, st.terms.recipient, st.terms.amount, st.terms.expiry) == (
            "seller",
            "buyer",
            AMOUNT,
            t.expiry,
        )
        assert st.terms.agrees_with(t) and st.terms.nonce is None
        assert fresh.lock_id(t) == lock_id  # pure: the same id in any process
    with pytest.raises(errors.LockError, match="already claimed"):
        await adapter.claim(lock_id, secret, submitter="buyer")
    with pytest.raises(errors.LockError, match="already claimed"):
        await adapter.refund(lock_id, submitter="seller")
    with pytest.raises(errors.AuditFailed, match="claimed"):
        await adapter.audit(lock_id, t)


@pytest.mark.asyncio
async def test_refund_only_after_expiry_node_decides(adapter):
    secret, t, lock_id = await locked(adapter, blocks=4)
    with pytest.raises(errors.LockExpired, match="not reached"):  # the node's rejection, mapped
        await adapter.refund(lock_id, submitter="seller")
    now = await adapter.now()
    assert not adapter.is_expired(now, t.expiry)
    await adapter.advance_time(int(adapter.seconds_left(now, t.expiry)))
    assert adapter.is_expired(await adapter.now(), t.expiry)
    with pytest.raises(errors.LockError, match="only the sender"):
        await adapter.refund(lock_id, submitter="buyer")
    with pytest.raises(errors.LockExpired, match="races"):
        await adapter.claim(lock_id, secret, submitter="buyer")
    sub = await adapter.refund(lock_id, submitter="seller")
    await adapter.wait_final(sub.tx_id)
    st = await adapter.get_lock(lock_id)
    assert st.status is LockStatus.REFUNDED and st.preimage is None


@pytest.mark.asyncio
async def test_audit_mismatches(adapter):
    secret, t = await terms(adapter)
    lock_id = adapter.lock_id(t)
    with pytest.raises(errors.LockNotFound):
        await adapter.audit(lock_id, t)
    assert await adapter.get_lock(lock_id) is None
    await adapter.wait_final((await adapter.lock(t)).tx_id)
    with pytest.raises(errors.AuditFailed, match="amount"):
        await adapter.audit(lock_id, t.model_copy(update={"amount": AMOUNT + 1}))
    for change in ({"expiry": t.expiry + 1}, {"recipient": "issuer"}, {"sender": "issuer"}, {"hashlock": "11" * 32}):
        field = next(iter(change))
        with pytest.raises(errors.AuditFailed, match=field):
            await adapter.audit(lock_id, t.model_copy(update=change))
    with pytest.raises(errors.AuditFailed, match="asset"):
        await adapter.audit(lock_id, t.model_copy(update={"asset": "BOND"}))
    strict = make(adapter.config.model_dump(mode="python") | {"rpc_password": adapter.config.rpc_password.get_secret_value(),
                                                            "keys": {p: k.get_secret_value() for p, k in adapter.config.keys.items()},
                                                            "confirmations": 5})  # fmt: skip
    async with strict:
        with pytest.raises(errors.AuditFailed, match="confirmations"):
            await strict.audit(lock_id, t)


@pytest.mark.asyncio
async def test_lock_guards(adapter):
    _, t, lock_id = await locked(adapter)
    with pytest.raises(errors.LockError, match="duplicate"):
        await adapter.lock(t.model_copy(update={"nonce": "22" * 32}))
    _, past = await terms(adapter, blocks=0)
    with pytest.raises(errors.LockExpired):
        await adapter.lock(past)
    _, tiny = await terms(adapter, amount=600)
    with pytest.raises(errors.SubmitError, match="dust"):
        await adapter.lock(tiny)
    with pytest.raises(errors.LockRefused, match="dust"):
        await adapter.check_lock(tiny)
    _, huge = await terms(adapter, amount=10**16)
    with pytest.raises(errors.SubmitError, match="insufficient"):
        await adapter.lock(huge)
    with pytest.raises(
        errors.LockRefused,
        match=r"'seller' holds \d+ sat on .*, needs 10000000000000000 sat plus a fee of up to \d+ sat$",
    ):
        await adapter.check_lock(huge)
    with pytest.raises(errors.ConfigError):
        await adapter.lock(t.model_copy(update={"asset": "DOGE"}))
    with pytest.raises(errors.LockRefused, match="DOGE"):
        await adapter.check_lock(t.model_copy(update={"asset": "DOGE"}))
    with pytest.raises(errors.LockRefused, match="nobody"):
        await adapter.check_lock(t.model_copy(update={"sender": "nobody"}))
    await adapter.check_lock(t.model_copy(update={"nonce": "33" * 32}))  # funds and amount are fine
    with pytest.raises(errors.LockNotFound):
        await adapter.get_lock("00" * 40)


@pytest.mark.asyncio
async def test_claim_needs_the_recipients_key(btcd_ledger):
    cfg = dict(btcd_ledger.config)
    keys = {p: w for p, w in cfg["keys"].items() if p != "buyer"}
    full = make(cfg)
    async with full:
        buyer_pub = full.pubkey_of("buyer")
        secret, _t, lock_id = await locked(full)
    async with make(cfg, keys=keys, pubkeys={"buyer": buyer_pub}) as seller_only:
        with pytest.raises(errors.ConfigError, match="no key for party .buyer.*recipient.s key"):
            await seller_only.claim(lock_id, secret, submitter="seller")


@pytest.mark.asyncio
async def test_issue_and_observe_resume(adapter):
    before = await adapter.balance("buyer", "BTC")
    sub = await adapter.issue("BTC", "buyer", 5_000_000)
    await adapter.wait_final(sub.tx_id)
    assert await adapter.balance("buyer", "BTC") == before + 5_000_000

    start = (await adapter.now()).height
    secret, t, lock_a = await locked(adapter)
    await adapter.wait_final((await adapter.claim(lock_a, secret, submitter="buyer")).tx_id)
    _, t2, lock_b = await locked(adapter, blocks=2)
    await adapter.advance_time(5)
    await adapter.wait_final((await adapter.refund(lock_b, submitter="seller")).tx_id)

    events = [e async for e in adapter.observe()]
    mine = [e for e in events if e.height > start]
    assert [(e.kind, e.lock_id) for e in mine] == [
        ("locked", lock_a),
        ("claimed", lock_a),
        ("locked", lock_b),
        ("refunded", lock_b),
    ]
    assert mine[1].preimage == secret.hex()
    resumed = [e async for e in adapter.observe(since=mine[1].checkpoint)]
    assert [(e.kind, e.lock_id) for e in resumed] == [("locked", lock_b), ("refunded", lock_b)]
    assert [e async for e in adapter.observe(since=mine[-1].checkpoint)] == []


@pytest.mark.asyncio
async def test_unreachable_node_is_ledger_unavailable(btcd_ledger):
    a = make(btcd_ledger.config, rpc_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(errors.LedgerUnavailable):
        await a.connect()
    await a.aclose()
    bad = make(btcd_ledger.config, rpc_password="wrong")
    with pytest.raises(errors.LedgerUnavailable, match="credentials"):
        await bad.connect()
    await bad.aclose()


class _Died(BaseException):
    """The driver died between journaling its signed lock and broadcasting it."""


async def test_a_journaled_lock_whose_input_was_spent_elsewhere_is_proven_dead(adapter):
    """Sign, journal, then broadcast: the funding transaction reaches the journal hook and the
    process dies before sending it; the key then spends one of its inputs in another
    transaction.  Re-broadcasting the journaled bytes raises Superseded naming that spend;
    re-broadcasting a transaction already in a block is a no-op."""
    journaled: list[SignedTx] = []

    async def journal_then_die(signed: list[SignedTx]) -> None:
        journaled.extend(signed)
        raise _Died

    _, t = await terms(adapter)
    with sendlog.journaling(journal_then_die), pytest.raises(_Died):
        await adapter.lock(t)
    [lock] = journaled
    wire = adapter.ledger.dialect.parse_tx(lock.raw)
    key = adapter._key("seller")
    inputs = [
        u
        for u in adapter.view.unspent(key.script_pubkey)
        if (u.txid, u.vout) in {(i.prev_txid, i.prev_vout) for i in wire.inputs}
    ]
    assert inputs, "the journaled lock spends the seller's outputs"
    other, _fee = build_payment(key, inputs, [(key.script_pubkey, 10_000)], adapter.ledger.fee_rate)
    other_id = await adapter.ledger.broadcast(other)
    with pytest.raises(errors.Superseded, match=f"is spent by {other_id}") as proof:
        await adapter.rebroadcast(lock)
    assert proof.value.tx_id == lock.tx_id and await adapter.get_lock(adapter.lock_id(t)) is None
    assert (await adapter.wait_final(other_id)).successful
    await adapter.rebroadcast(SignedTx(other_id, tx_hex(other), "pay", "seller"))  # in a block: nothing


def _pending_to(adapter, script_pubkey: bytes) -> list[str]:
    """The unconfirmed transactions paying ``script_pubkey`` that ``adapter``'s chain view holds."""
    return [
        txid for txid, tx in adapter.view._mem_txs.items() if any(o.script_pubkey == script_pubkey for o in tx.outputs)
    ]


async def test_two_drivers_alternate_one_partys_account(btcd_ledger):
    """The account lease on UTXO (LedgerAdapter.forget_sending_state): two adapters, as two
    worker processes would have, send in turn from the seller's coins with no block between
    the sends, so each spends the unconfirmed change of the other's last lock.  One that
    takes the account over first drops what its chain view held pending of the seller's
    coins, then reads them again from the node, and sees exactly the coins the other sees.
    Every lock is accepted by the node (none refused as spending a coin already spent) and
    each lock script is paid once."""
    first, second = make(btcd_ledger.config), make(btcd_ledger.config)
    async with first, second:
        spk = first._key("seller").script_pubkey
        held, lock_ids, subs = [], [], []
        for turn in range(4):
            driver, other = (first, second) if turn % 2 == 0 else (second, first)
            held.append(len(_pending_to(driver, spk)))
            driver.forget_sending_state("seller")  # the account lease taken afresh
            assert _pending_to(driver, spk) == []  # nothing pending on its own say
            _, t = await terms(driver)  # reads the clock: a refresh without the mempool
            await driver._refresh("compare")
            await other._refresh("compare")
            assert {u.outpoint for u in driver.view.unspent(spk)} == {u.outpoint for u in other.view.unspent(spk)}
            subs.append((driver, await driver.lock(t)))
            lock_ids.append(driver.lock_id(t))
        assert held[2] >= 1 and held[3] >= 1, held  # the views did hold pending sends of the seller
        for driver, sub in subs:
            assert (await driver.wait_final(sub.tx_id)).successful
        await first._refresh("count")
        for lock_id in lock_ids:
            assert len(first.view.outputs_to(first._parse_id(lock_id).script_pubkey)) == 1
