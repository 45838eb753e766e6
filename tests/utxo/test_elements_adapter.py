"""ElementsAdapter against a real, wallet-less elementsd: issued assets, the HTLC on an issued
asset, single-ledger DvP in one transaction, all through the dvp adapter protocol."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

import pytest
import pytest_asyncio

from .conftest import elementsd_or_skip

elementsd_or_skip()

from dvp import errors  # noqa: E402
from dvp.models import Asset, AssetKind, Capability, DvpOrder, HtlcTerms, LockStatus, OrderStatus  # noqa: E402
from dvp.orchestrator import Outcome  # noqa: E402
from dvp_utxo.elements.adapter import ISSUE_SUPPLY, ISSUED_UNIT, ElementsAdapter  # noqa: E402
from dvp_utxo.elements.config import ElementsConfig  # noqa: E402

from ..testbed import ELEMENTS_MARKS  # noqa: E402

pytestmark = [pytest.mark.utxo, pytest.mark.asyncio, *ELEMENTS_MARKS]

ASSETS = [Asset(symbol="BOND", ledger="elements", kind=AssetKind.SECURITY),
          Asset(symbol="EUR", ledger="elements", kind=AssetKind.CASH, decimals=2)]  # fmt: skip
_config: dict = {}


@pytest_asyncio.fixture
async def adapter(elements_node):
    if not _config:  # bootstrap once per node: BOND and EUR issued by the issuer, then funded
        a = make(elements_node.config)
        async with a:
            updates = await a.bootstrap(ASSETS)
            _config.update({**elements_node.config, **updates})
            for asset, party in (("BOND", "seller"), ("EUR", "buyer")):
                await a.wait_final((await a.issue(asset, party, 1_000_000)).tx_id)
    a = make(_config)
    async with a:
        yield a


def make(config: dict) -> ElementsAdapter:
    """The adapter class the registry would pick: a dev chain's variant issues and mines."""
    c = ElementsConfig.model_validate(config)
    cls = ElementsAdapter.for_config(c)
    return cls("elements", c)  # type: ignore[return-value]


async def terms_for(adapter, *, blocks=20, amount=70, asset="BOND", secret=None):
    secret = secret or secrets.token_bytes(32)
    now = await adapter.now()
    t = HtlcTerms(sender="seller", recipient="buyer", asset=asset, amount=amount, hashlock=hashlib.sha256(secret).hexdigest(),
                  expiry=now.height + blocks, nonce=secrets.token_hex(32))  # fmt: skip
    return secret, t


async def test_bootstrap_issues_the_assets_once_and_records_their_ids(adapter):
    cfg = adapter.config
    assert set(cfg.assets) == {"LBTC", "BOND", "EUR"} and cfg.assets["LBTC"] == "native"
    assert len({cfg.assets["BOND"], cfg.assets["EUR"], cfg.policy_asset}) == 3
    assert cfg.units == {"BOND": ISSUED_UNIT, "EUR": ISSUED_UNIT}
    assert await adapter.bootstrap(ASSETS) == {}  # nothing new to issue
    assert await adapter.balance("issuer", "BOND") == ISSUE_SUPPLY // ISSUED_UNIT - 1_000_000
    assert adapter.supports(Capability.ATOMIC_DVP) and adapter.supports(Capability.TIME_TRAVEL)


async def test_check_lock_refuses_what_the_ledger_would_with_the_cause(adapter):
    _, ok = await terms_for(adapter)
    await adapter.check_lock(ok)
    with pytest.raises(errors.LockRefused, match="holds"):
        await adapter.check_lock(ok.model_copy(update={"amount": 10**9}))  # more bonds than the seller has
    with pytest.raises(errors.LockRefused, match="GOLD"):
        await adapter.check_lock(ok.model_copy(update={"asset": "GOLD"}))


async def test_lock_audit_and_claim_an_issued_asset_fees_in_the_policy_asset(adapter):
    secret, t = await terms_for(adapter)
    lock_id = adapter.lock_id(t)
    assert await adapter.get_lock(lock_id) is None
    seller, buyer = await adapter.balance("seller", "BOND"), await adapter.balance("buyer", "BOND")
    status = await adapter.wait_final((await adapter.lock(t)).tx_id)
    assert status.fee > 0 and status.fee_asset == "LBTC"
    state = await adapter.get_lock(lock_id)
    assert state.status is LockStatus.LOCKED and state.terms.asset == "BOND" and state.terms.amount == 70
    assert (await adapter.audit(lock_id, t)).status is LockStatus.LOCKED
    with pytest.raises(errors.AuditFailed, match="amount"):
        await adapter.audit(lock_id, t.model_copy(update={"amount": 71}))
    with pytest.raises(errors.AuditFailed, match="asset"):
        await adapter.audit(lock_id, t.model_copy(update={"asset": "EUR"}))
    sub = await adapter.claim(lock_id, secret, submitter="buyer")
    assert [s.payer for s in sub] == ["seller"]  # the fee comes from the reserve the seller locked
    claim = await adapter.wait_final(sub.tx_id)
    assert claim.fee > 0 and claim.fee_asset == "LBTC"  # paid from the fee reserve, not from the bonds
    assert (
        await adapter.balance("buyer", "BOND") == buyer + 70 and await adapter.balance("seller", "BOND") == seller - 70
    )
    state = await adapter.get_lock(lock_id)
    assert state.status is LockStatus.CLAIMED and state.preimage == secret.hex()
    with pytest.raises(errors.LockError):
        await adapter.claim(lock_id, secret, submitter="buyer")


async def test_refund_only_after_expiry_and_below_dust_is_refused(adapter):
    _, t = await terms_for(adapter, blocks=3, asset="EUR", amount=5_000)
    t = t.model_copy(update={"sender": "buyer", "recipient": "seller"})
    lock_id = adapter.lock_id(t)
    before = await adapter.balance("buyer", "EUR")
    await adapter.wait_final((await adapter.lock(t)).tx_id)
    with pytest.raises(errors.LockExpired):
        await adapter.wait_final((await adapter.refund(lock_id, submitter="buyer")).tx_id)
    await adapter.advance_time(5)
    await adapter.wait_final((await adapter.refund(lock_id, submitter="buyer")).tx_id)
    assert (await adapter.get_lock(lock_id)).status is LockStatus.REFUNDED
    assert await adapter.balance("buyer", "EUR") == before


async def test_single_ledger_dvp_is_one_transaction_and_the_order_is_read_from_the_chain(adapter):
    now = await adapter.now()
    order = DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=9, cash="EUR", cash_amount=90_000,
                     deadline=now.height + 30, nonce=secrets.token_hex(32))  # fmt: skip
    order_id = adapter.order_id(order)
    assert order_id == adapter.order_id(order) and await adapter.get_order(order_id) is None
    before = {(p, a): await adapter.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")}
    await adapter.wait_final((await adapter.propose_dvp(order)).tx_id)
    assert (await adapter.get_order(order_id)).status is OrderStatus.OPEN
    with pytest.raises(errors.SubmitError, match="exists"):
        await adapter.propose_dvp(order)
    settle = await adapter.accept_dvp(order)
    status = await adapter.wait_final(settle.tx_id)
    assert status.fee > 0 and status.fee_asset == "LBTC"
    assert (await adapter.get_order(order_id)).status is OrderStatus.SETTLED
    after = {k: await adapter.balance(*k) for k in before}
    assert after[("buyer", "BOND")] - before[("buyer", "BOND")] == 9
    assert before[("seller", "BOND")] - after[("seller", "BOND")] == 9
    assert after[("seller", "EUR")] - before[("seller", "EUR")] == 90_000
    assert before[("buyer", "EUR")] - after[("buyer", "EUR")] == 90_000
    with pytest.raises(errors.SubmitError, match="no open order"):
        await adapter.accept_dvp(order)


async def test_only_the_seller_cancels_its_order_and_the_node_refuses_a_later_settlement(adapter):
    """The order script's own rules, each broken by a transaction sent to the node: the buyer
    cannot spend the seller's order output; once the seller spent it back (cancel), even a DvP
    transaction both parties signed before is refused, and nothing moved but the seller's fee."""
    from dvp_utxo.boundary import utxo_errors
    from dvp_utxo.elements.order import build_cancel
    from dvp_utxo.elements.tx import select_utxos

    now = await adapter.now()
    order = DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=4, cash="EUR", cash_amount=40_000,
                     deadline=now.height + 30, nonce=secrets.token_hex(32))  # fmt: skip
    order_id = adapter.order_id(order)
    before = {(p, a): await adapter.balance(p, a) for p in ("seller", "buyer") for a in ("BOND", "EUR")}
    await adapter.wait_final((await adapter.propose_dvp(order)).tx_id)
    await adapter._refresh("test")
    script, policy, rate = adapter._order(order), adapter.config.policy_asset, adapter.config.fee_rate
    offered = adapter.view.unspent(script.script_pubkey)
    buyer = adapter._key("buyer")
    stolen, _fee = build_cancel(script, offered, buyer, select_utxos(adapter.ledger.wallet(buyer), {}, policy, rate),
                                policy_asset=policy, fee_rate=rate, check=False)  # fmt: skip
    with pytest.raises(errors.SubmitError, match="script"):
        with utxo_errors("steal", "elements"):
            await adapter.ledger.send(stolen)
    assert (await adapter.get_order(order_id)).status is OrderStatus.OPEN
    settlement = adapter.signed_dvp(order)  # both parties' signatures, held back
    with pytest.raises(errors.SubmitError, match="no open order"):
        await adapter.cancel_dvp(order.model_copy(update={"nonce": secrets.token_hex(32)}))
    cancel = await adapter.cancel_dvp(order)
    status = await adapter.wait_final(cancel.tx_id)
    assert cancel[-1].purpose.value == "cancel" and cancel[-1].payer == "seller" and status.fee > 0
    assert (await adapter.get_order(order_id)).status is OrderStatus.CANCELLED
    with pytest.raises(errors.SubmitError, match="missingorspent|missing-inputs|bad-txns"):
        with utxo_errors("late accept", "elements"):
            await adapter.ledger.send(settlement)
    with pytest.raises(errors.SubmitError, match="no open order"):
        await adapter.cancel_dvp(order)
    await adapter.mine(1)
    assert {k: await adapter.balance(*k) for k in before} == before
    assert (await adapter.get_order(order_id)).status is OrderStatus.CANCELLED


async def test_observe_reports_locks_and_claims_with_the_secret(adapter):
    secret, t = await terms_for(adapter)
    lock_id = adapter.lock_id(t)
    await adapter.wait_final((await adapter.lock(t)).tx_id)
    await adapter.wait_final((await adapter.claim(lock_id, secret, submitter="buyer")).tx_id)
    events = [e async for e in adapter.observe() if e.lock_id == lock_id]
    assert [e.kind for e in events] == ["locked", "claimed"] and events[1].preimage == secret.hex()


async def open_order(adapter, amount: int = 3, cash: int = 30_000) -> DvpOrder:
    now = await adapter.now()
    order = DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=amount, cash="EUR",
                     cash_amount=cash, deadline=now.height + 30, nonce=secrets.token_hex(32))  # fmt: skip
    await adapter.wait_final((await adapter.propose_dvp(order)).tx_id)
    return order


async def test_two_halves_of_one_buyer_built_at_once_spend_other_coins_and_both_settle(adapter):
    """The buyer's half leaves this process unbroadcast: its coins are held out of the buyer's
    coin selection until the order closes, so a second half (or an HTLC lock) built meanwhile
    picks other coins, and the seller can complete both (they picked the same coins before:
    only one could confirm)."""
    from dvp_utxo.elements.dvp_tx import DvpTx

    for asset, amount in (("EUR", 50_000), ("EUR", 50_000), ("LBTC", 100_000), ("LBTC", 100_000)):
        await adapter.wait_final((await adapter.issue(asset, "buyer", amount)).tx_id)
    orders = [await open_order(adapter), await open_order(adapter)]
    halves = await asyncio.gather(*(adapter.sign_as_buyer(o) for o in orders))
    buyer = adapter._key("buyer").script_pubkey
    spent = [{u.outpoint for u in DvpTx.from_pset(h, "buyer").spent if u.script_pubkey == buyer} for h in halves]
    assert spent[0] and spent[1] and not spent[0] & spent[1], spent
    wallet = {u.outpoint for u in adapter.ledger.wallet(adapter._key("buyer"))}
    assert not wallet & (spent[0] | spent[1])  # held while the seller has the halves
    restarted = make(_config)  # a restarted buyer holds its journaled half's coins again
    async with restarted:
        await restarted._refresh("test")
        assert spent[0] <= {u.outpoint for u in restarted.ledger.wallet(restarted._key("buyer"))}
        restarted.hold_half(orders[0], halves[0])
        assert not spent[0] & {u.outpoint for u in restarted.ledger.wallet(restarted._key("buyer"))}
    settled = await asyncio.gather(*(adapter.complete_as_seller(o, h) for o, h in zip(orders, halves)))
    for s in settled:
        await adapter.wait_final(s.tx_id)
    for o in orders:
        assert (await adapter.get_order(adapter.order_id(o))).status is OrderStatus.SETTLED
    assert not adapter.ledger.held()  # released once the halves confirmed


async def test_the_seller_audits_the_halfs_fee_at_its_signed_size(adapter, monkeypatch):
    """The seller's audit of the buyer's half measures the fee against the transaction as it
    will be sent, the seller's order witness added (signature and order script): a fee that
    covers the half as it came but not the signed transaction is refused (before, it was
    taken), and the honest half at the ledger's rate completes and confirms."""
    from dvp_utxo.elements.dvp_tx import DvpTx, sign_dvp, signed_vsize
    from dvp_utxo.tx import fee_for

    order = await open_order(adapter, 2, 20_000)
    half = await adapter.sign_as_buyer(order)
    dvp, terms = DvpTx.from_pset(half, "buyer"), adapter._dvp_terms(order)
    came, signed = dvp.tx.vsize, signed_vsize(dvp, terms)
    assert signed - came >= 35, (came, signed)  # the seller's signature and 69-byte order script, / 4
    # A rate at which the fee covers the half as it came, not the signed transaction.
    rate = dvp.fee / ((came + signed) / 2)
    assert fee_for(came, rate) <= dvp.fee < fee_for(signed, rate), (came, signed, dvp.fee, rate)
    monkeypatch.setattr(adapter.config, "fee_rate", rate)
    with pytest.raises(errors.AuditFailed, match=f"below the ledger's rate for {signed} vbytes once signed"):
        await adapter.complete_as_seller(order, half)
    monkeypatch.undo()
    done = await adapter.complete_as_seller(order, half)
    await adapter.wait_final(done.tx_id)
    assert (await adapter.get_order(adapter.order_id(order))).status is OrderStatus.SETTLED
    seller = adapter._key("seller")
    sent = sign_dvp(dvp, seller, terms, "seller", policy_asset=adapter.config.policy_asset, max_fee=0).tx
    assert sent.txid == done.tx_id and sent.vsize <= signed and dvp.fee >= fee_for(sent.vsize, adapter.config.fee_rate)


async def test_a_revocation_refused_for_its_fee_is_retried_not_taken_as_spent(adapter, monkeypatch):
    """The buyer's drive voids a half the seller holds; the node refuses the revocation for a
    cause other than its inputs being spent (here: below the relay fee).  The half is still
    valid, so the drive must not report it void: it stops with the refusal and a resume
    revokes again; a refusal because the inputs are spent already is the end of it."""
    from types import SimpleNamespace

    from dvp.party.atomic import AtomicPartyRun

    order = await open_order(adapter, 2, 20_000)
    order_id = adapter.order_id(order)
    half = await adapter.sign_as_buyer(order)

    async def status():
        return (await adapter.get_order(order_id)).status

    async def transact(step, ledger, send, already_done):
        if not await already_done():
            await adapter.wait_all(await send())

    party = AtomicPartyRun.__new__(AtomicPartyRun)  # the drive's revoke, without a journal
    party.steps = SimpleNamespace(transact=transact)
    party.run = SimpleNamespace(ledger="elements", status=status, state=SimpleNamespace(order=order, order_id=order_id))
    monkeypatch.setattr(adapter.config, "fee_rate", 0.01)
    with pytest.raises(errors.SubmitError, match="min relay fee"):
        await party.revoke(adapter, half)
    assert not await adapter.half_void(order, half) and await status() is OrderStatus.OPEN
    monkeypatch.undo()
    outcome, detail = await party.revoke(adapter, half)
    assert outcome is Outcome.ABORTED and "can never confirm" in detail, detail
    assert await adapter.half_void(order, half)
    outcome, _ = await party.revoke(adapter, half)  # refused again: its inputs are spent by the first
    assert outcome is Outcome.ABORTED
    assert not adapter.ledger.held()
    await adapter.wait_final((await adapter.cancel_dvp(order)).tx_id)


@pytest.mark.parametrize("blocks", ["block clock", "mined on wait"])
async def test_forty_issues_at_once_from_one_key_all_confirm_within_the_mempool_chain_limits(adapter, blocks):
    """Each issue spends the issuer's change from the one before: elementsd refuses a 26th
    unconfirmed transaction in that chain ("too-long-mempool-chain ... [limit: 25]", the bench
    at K=100 stopped there).  The issues beyond it wait for the block that confirms the chain
    (with a block clock; on a dev chain without one, mine it) and are built again then, so
    all 40 confirm, none refused, at most 25 of them in one block."""
    a = make({**_config, "mine_on_wait": blocks == "mined on wait"})
    async with a:

        async def clock() -> None:  # the launcher's block clock, as the bench runs it
            while True:
                await asyncio.sleep(0.5)
                await a.mine(1)

        ticking = asyncio.create_task(clock()) if blocks == "block clock" else None
        try:
            subs = await asyncio.wait_for(asyncio.gather(*(a.issue("EUR", "seller", 1) for _ in range(40))), 120)
            finals = await asyncio.wait_for(asyncio.gather(*(a.wait_final(s.tx_id) for s in subs)), 120)
        finally:
            if ticking is not None:
                ticking.cancel()
    assert len({s.tx_id for s in subs}) == 40 and all(f.successful for f in finals)
    per_block: dict[int, int] = {}
    for f in finals:
        per_block[f.block_number] = per_block.get(f.block_number, 0) + 1
    assert len(per_block) >= 2 and max(per_block.values()) <= 25, per_block


class _WatchedLock(asyncio.Lock):
    """The adapter's send lock, saying when a task first asks for it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()

    async def acquire(self) -> bool:
        self.asked.set()
        return await super().acquire()


async def test_a_claim_checks_its_lock_height_under_the_send_lock_which_no_wait_for_a_block_holds(adapter, monkeypatch):
    """Rule 4 with the mempool chain limits' waits (a dev chain that mines on wait).

    A claim waiting for the send lock while a block reaches its lock height is refused
    (LockExpired) and nothing is sent: the height is checked under the lock (before: checked
    before it, the claim went out at the lock height, the refund valid).  And an issue whose
    sendrawtransaction the node refuses for its chain limits waits for (mines) the block that
    makes room with the send lock free: a claim started meanwhile, on a lock whose lock height
    is that block, goes out before it, below its lock height (before: the issue held the send
    lock while it mined, and the claim went out after, at the lock height)."""
    from dvp_utxo.rpc import RpcError
    from dvp_utxo.tx import CHAIN_LIMIT

    a = make({**_config, "mine_on_wait": True})
    async with a:
        now = (await a.now()).height
        (sa, ta), (sb, tb) = [await terms_for(a, blocks=blocks) for blocks in (8, 10)]
        for t in (ta, tb):
            await a.wait_final((await a.lock(t)).tx_id)
        await a.mine(ta.expiry - 1 - (await a.now()).height)
        assert (await a.now()).height == ta.expiry - 1 > now
        watched = a._send_lock = _WatchedLock()
        sent: list[tuple[str, int]] = []  # (txid, the chain view's tip) of each transaction sent
        refuse = asyncio.Event()  # the next sendrawtransaction is refused for the chain limits
        call = a.ledger.rpc.call

        async def node(method: str, *params):
            if method == "sendrawtransaction":
                if refuse.is_set():
                    refuse.clear()
                    raise RpcError(method, -26, f"{CHAIN_LIMIT}, too many unconfirmed ancestors [limit: 25]")
                sent.append((a.ledger.dialect.parse_tx(params[0]).txid, a.view.height))
            return await call(method, *params)

        monkeypatch.setattr(a.ledger.rpc, "call", node)

        # A claim that waits for the send lock while the block of its lock height comes.
        await watched.acquire()  # another send choosing its coins
        watched.asked.clear()
        claiming = asyncio.create_task(a.claim(a.lock_id(ta), sa, submitter="buyer"))
        await asyncio.wait_for(watched.asked.wait(), 10)
        await a.mine(1)
        watched.release()
        with pytest.raises(errors.LockExpired, match=f"lock height {ta.expiry} reached"):
            await asyncio.wait_for(claiming, 10)
        assert sent == [] and (await a.get_lock(a.lock_id(ta))).status is LockStatus.LOCKED

        # An issue refused for the chain limits waits for the block that makes room, lock free.
        await a.mine(tb.expiry - 1 - (await a.now()).height)
        mine, held_while_mining = a.ledger.mine, []
        claim_b: asyncio.Task | None = None

        async def gated(n: int, address: str, *, unless_past: int | None = None) -> list[str]:
            if unless_past is not None:  # the issue's wait for room
                for _ in range(100):  # until the claim is sent, 5 s at most (it may wait for the lock)
                    if claim_b is not None and claim_b.done():
                        break
                    await asyncio.sleep(0.05)
                held_while_mining.append(watched.locked())
            return await mine(n, address, unless_past=unless_past)

        monkeypatch.setattr(a.ledger, "mine", gated)
        refuse.set()
        issuing = asyncio.create_task(a.issue("EUR", "seller", 1))
        for _ in range(200):
            if not refuse.is_set():
                break
            await asyncio.sleep(0.05)
        claim_b = asyncio.create_task(a.claim(a.lock_id(tb), sb, submitter="buyer"))
        claim, issued = await asyncio.wait_for(asyncio.gather(claim_b, issuing), 60)
        assert held_while_mining and not any(held_while_mining), held_while_mining
        assert [tip for txid, tip in sent if txid == claim.tx_id] == [tb.expiry - 1], sent
        final = await a.wait_final(claim.tx_id)
        assert final.block_number <= tb.expiry  # a refund is valid from the block after
        assert (await a.wait_final(issued.tx_id)).successful


async def test_a_journaled_transaction_over_the_chain_limits_is_held_back_within_one_deadline(adapter, monkeypatch):
    """A rebroadcast (a resume's journaled bytes) that the chain view holds back for the mempool
    chain limits waits for a block; the node then refusing it for them, it is sent again after
    each block until the same deadline, then HeldBack, code too-long-mempool-chain: not proven
    dead, so the resume builds no other transaction (before: SubmitError with code -26, taken as
    failed on the ledger, and the wait after the refusal had its own timeout: twice the ledger's
    in all).  Blocks are simulated (two come, then none), the node's refusal faked."""
    from dvp.models import TxPurpose
    from dvp.sendlog import SignedTx
    from dvp_utxo.elements.tx import TxOut
    from dvp_utxo.rpc import RpcError
    from dvp_utxo.tx import CHAIN_LIMIT

    a = make({**_config, "mine_on_wait": False})
    async with a:
        await a._refresh("test")
        key = a._key("buyer")
        tx = a.ledger.payment_tx(key, [TxOut(key.script_pubkey, a.config.policy_asset, 10_000)])
        loop, deadlines = asyncio.get_running_loop(), []

        async def next_block(timeout: float) -> bool:
            deadlines.append(loop.time() + timeout)
            await asyncio.sleep(0.3)
            return len(deadlines) < 3

        held, over, call, refused = iter([True]), a.view.over_limit, a.ledger.rpc.call, []

        def over_limit(spent):
            return "25 unconfirmed ancestors (a test's)" if next(held, False) else over(spent)

        async def node(method: str, *params):
            if method == "sendrawtransaction":
                refused.append(params[0])
                raise RpcError(method, -26, f"{CHAIN_LIMIT}, too many unconfirmed ancestors [limit: 25]")
            return await call(method, *params)

        monkeypatch.setattr(a.ledger, "next_block", next_block)
        monkeypatch.setattr(a.view, "over_limit", over_limit)
        monkeypatch.setattr(a.ledger.rpc, "call", node)
        with pytest.raises(errors.HeldBack) as info:
            await a.rebroadcast(SignedTx(tx.txid, tx.hex, TxPurpose.LOCK.value, "buyer"))
        assert info.value.code == CHAIN_LIMIT and info.value.tx_id == tx.txid, info.value
        assert refused == [tx.hex, tx.hex]  # the view's block, then the node's refusal: sent again after one block
        assert len(deadlines) == 3 and max(deadlines) - min(deadlines) < 0.1, deadlines
        assert not a.view.in_mempool(tx.txid) and a.view.tx_height(tx.txid) is None


async def test_a_send_built_again_after_a_wait_for_a_block_checks_the_order_deadline_again(adapter, monkeypatch):
    """A proposal, and an acceptance, the chain view holds back for the mempool chain limits
    wait for the next block (mined on wait) and are built again: the order's deadline was the
    next block, so the second attempt is refused (SubmitError code deadline) and nothing is sent
    (before: the deadline was checked once, before the wait, and both went out after it)."""
    a = make({**_config, "mine_on_wait": True})
    async with a:
        sent: list[str] = []
        call, over = a.ledger.rpc.call, a.view.over_limit
        held = [False]

        async def node(method: str, *params):
            if method == "sendrawtransaction":
                sent.append(params[0])
            return await call(method, *params)

        def over_limit(spent):
            if held[0]:
                held[0] = False
                return "25 unconfirmed ancestors (a test's)"
            return over(spent)

        monkeypatch.setattr(a.ledger.rpc, "call", node)
        monkeypatch.setattr(a.view, "over_limit", over_limit)
        now = (await a.now()).height
        late = DvpOrder(seller="seller", buyer="buyer", security="BOND", security_amount=1, cash="EUR",
                        cash_amount=1_000, deadline=now + 1, nonce=secrets.token_hex(32))  # fmt: skip
        held[0] = True
        with pytest.raises(errors.SubmitError, match=f"propose: order deadline {now + 1} passed") as info:
            await a.propose_dvp(late)
        assert info.value.code == "deadline" and sent == [] and (await a.now()).height == now + 1

        order = await open_order(a)
        await a.mine(order.deadline - 1 - (await a.now()).height)
        sent.clear()
        held[0] = True
        with pytest.raises(errors.SubmitError, match=f"accept: order deadline {order.deadline} passed") as info:
            await a.accept_dvp(order)
        assert info.value.code == "deadline" and sent == []
        assert (await a.get_order(a.order_id(order))).status is OrderStatus.OPEN


async def test_a_refusal_that_outlasts_the_blocks_mined_for_it_mines_no_more(adapter, monkeypatch):
    """On a dev chain that mines on wait, a transaction the node keeps refusing for its chain
    limits (faked here: a block always makes room on regtest) is sent again after each block,
    but the wait mines MAX_MINED blocks at most, then waits for blocks it does not mine until
    its deadline, then HeldBack (before: a block mined back to back after each refusal for the
    whole wait, moving the clock of every lock on the chain)."""
    from dvp_utxo.htlc import MAX_MINED
    from dvp_utxo.rpc import RpcError
    from dvp_utxo.tx import CHAIN_LIMIT

    a = make({**_config, "mine_on_wait": True})
    async with a:
        a.ledger.room_timeout = 2.0
        call, refused = a.ledger.rpc.call, []

        async def node(method: str, *params):
            if method == "sendrawtransaction":
                refused.append(params[0])
                raise RpcError(method, -26, f"{CHAIN_LIMIT}, too many unconfirmed ancestors [limit: 25]")
            return await call(method, *params)

        monkeypatch.setattr(a.ledger.rpc, "call", node)
        start = (await a.now()).height
        with pytest.raises(errors.HeldBack) as info:
            await asyncio.wait_for(a.issue("EUR", "seller", 1), 20)
        assert info.value.code == CHAIN_LIMIT
        assert (await a.now()).height - start == MAX_MINED == 3
        assert len(refused) == MAX_MINED + 1 and len(set(refused)) == 1  # the same bytes after each block


async def test_a_claim_the_node_refuses_for_the_chain_limits_is_not_sent_again_at_its_lock_height(adapter, monkeypatch):
    """A signed claim the node refuses for its mempool chain limits (faked: a claim spends
    confirmed outputs, so another process's transactions would have to fill the mempool) is sent
    again after each block only while the tip is below its lock height: at the lock height the
    refund is valid too, and the claim would reveal the secret in that race (rule 4).  It ends
    HeldBack, so the swap's resume decides (its claim too late, it is skipped).  Before: sent
    again at the lock height and after."""
    from dvp_utxo.rpc import RpcError
    from dvp_utxo.tx import CHAIN_LIMIT

    a = make({**_config, "mine_on_wait": True})
    async with a:
        a.ledger.room_timeout = 2.0
        secret, t = await terms_for(a, blocks=6)
        await a.wait_final((await a.lock(t)).tx_id)
        await a.mine(t.expiry - 2 - (await a.now()).height)
        call, tips = a.ledger.rpc.call, []

        async def node(method: str, *params):
            if method == "sendrawtransaction":
                tips.append(a.view.height)
                raise RpcError(method, -26, f"{CHAIN_LIMIT}, too many unconfirmed ancestors [limit: 25]")
            return await call(method, *params)

        monkeypatch.setattr(a.ledger.rpc, "call", node)
        with pytest.raises(errors.HeldBack):
            await asyncio.wait_for(a.claim(a.lock_id(t), secret, submitter="buyer"), 20)
        assert tips == [t.expiry - 2, t.expiry - 1], (tips, t.expiry)
