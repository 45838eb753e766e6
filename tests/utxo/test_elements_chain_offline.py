"""The chain view on Elements blocks, offline: a fake node serves blocks made of transactions
wallycore built, so following the chain, balances per asset, explicit fees, a re-organisation
and a blinded output are checked without elementsd (tests/utxo/test_elementsd.py does the same
against the real node)."""

from __future__ import annotations

import hashlib

import pytest

wally = pytest.importorskip("wallycore", reason="wallycore (the Elements library) is not installed")

from dvp import errors  # noqa: E402
from dvp_utxo.chain import ChainView  # noqa: E402
from dvp_utxo.dialect import dialect_for  # noqa: E402
from dvp_utxo.elements.assets import ELEMENTSREGTEST_POLICY_ASSET, IssuedAsset  # noqa: E402
from dvp_utxo.elements.ledger import ElementsLedger  # noqa: E402
from dvp_utxo.elements.tx import TxOut, build_payment  # noqa: E402
from dvp_utxo.htlc import AuditError  # noqa: E402
from dvp_utxo.keys import Key  # noqa: E402
from dvp_utxo.rpc import RpcError  # noqa: E402
from dvp_utxo.script import HtlcScript  # noqa: E402
from dvp_utxo.tx import Utxo  # noqa: E402

from .elements_blocks import block as _block  # noqa: E402

pytestmark = [pytest.mark.utxo, pytest.mark.asyncio]

POLICY = ELEMENTSREGTEST_POLICY_ASSET
BOND = IssuedAsset.from_prevout("ab" * 32, 0).asset_id
SELLER, BUYER = Key.dev("chain-test", "seller"), Key.dev("chain-test", "buyer")


class FakeNode:
    """getbestblockhash, getblockcount, getblockhash, getblock <hash> 0 (batched), and an empty mempool."""

    def __init__(self):
        self.blocks: list[tuple[str, bytes]] = []

    def add(self, txs: list[bytes]) -> str:
        prev = bytes.fromhex(self.blocks[-1][0])[::-1] if self.blocks else b"\x00" * 32
        raw = _block(txs, dynafed=True, prev=prev, time=1_700_000_000 + len(self.blocks))
        block_hash = hashlib.sha256(raw).digest()[::-1].hex()  # any unique id serves the view
        self.blocks.append((block_hash, raw))
        return block_hash

    async def call(self, method, *params):
        if method == "getbestblockhash":
            return self.blocks[-1][0]
        if method == "getblockcount":
            return len(self.blocks) - 1
        if method == "getblockhash":
            if params[0] >= len(self.blocks):
                raise RpcError(method, -8, "Block height out of range")
            return self.blocks[params[0]][0]
        if method == "getrawmempool":
            return []
        raise AssertionError(method)

    async def batch(self, method, params_list):
        if method == "getblockhash":
            return [await self.call(method, *p) for p in params_list]
        by_hash = dict(self.blocks)
        return [by_hash[p[0]].hex() for p in params_list]


def funding(key: Key, *items: tuple[str, int], tag: int = 0) -> list[Utxo]:
    return [Utxo(f"{tag:062x}{i:02x}", i, v, key.script_pubkey, asset=a) for i, (a, v) in enumerate(items)]


async def seller_coins(node: FakeNode, n: int = 1) -> tuple[ChainView, list[Utxo]]:
    """A block paying the seller ``n`` outputs of 10**6 policy units, and a view that read it;
    the seller's outputs in order."""
    outputs = [TxOut(SELLER.script_pubkey, POLICY, 10**6)] * n
    seed, _ = build_payment(BUYER, funding(BUYER, (POLICY, 10**7), tag=9), outputs, policy_asset=POLICY, fee_rate=1.0)
    node.add([seed.raw])
    view = ChainView(node, dialect_for("elementsd"))
    await view.refresh()
    return view, sorted((u for u in view.unspent(SELLER.script_pubkey) if u.txid == seed.txid), key=lambda u: u.vout)


def seller_pays(coins: list[Utxo], amount: int):  # -> the Elements builder's signed transaction
    return build_payment(
        SELLER, coins, [TxOut(BUYER.script_pubkey, POLICY, amount)], policy_asset=POLICY, fee_rate=1.0
    )[0]


async def test_the_view_follows_elements_blocks_per_asset_and_through_a_reorganisation():
    node = FakeNode()
    seller_coins = funding(SELLER, (BOND, 10**9), (POLICY, 10**6))
    pay, fee = build_payment(
        SELLER, seller_coins, [TxOut(BUYER.script_pubkey, BOND, 3 * 10**8)], policy_asset=POLICY, fee_rate=1.0
    )
    # Block 0 "creates" the seller's coins (a payment from the buyer's made-up outputs), block 1 pays the buyer.
    seed, _ = build_payment(BUYER, funding(BUYER, (BOND, 2 * 10**9), (POLICY, 10**7), tag=9),
                            [TxOut(SELLER.script_pubkey, BOND, 10**9), TxOut(SELLER.script_pubkey, POLICY, 10**6)],
                            policy_asset=POLICY, fee_rate=1.0)  # fmt: skip
    node.add([seed.raw])
    view = ChainView(node, dialect_for("elementsd"))
    await view.refresh()
    assert view.balance(SELLER.script_pubkey, asset=BOND) == 10**9
    assert view.balance(SELLER.script_pubkey, asset=POLICY) == 10**6
    assert view.balance(SELLER.script_pubkey) == 0  # no asset None on Elements
    node.add([pay.raw])
    await view.refresh()
    assert view.height == 1 and view.tx_height(pay.txid) == 1 and view.fee_of(pay.txid) == fee
    assert view.balance(BUYER.script_pubkey, asset=BOND) == 3 * 10**8 + (2 * 10**9 - 10**9)
    # Re-organisation: block 1 is replaced by one without the payment.
    node.blocks.pop()
    other, _ = build_payment(SELLER, funding(SELLER, (POLICY, 10**6), tag=7), [TxOut(BUYER.script_pubkey, POLICY, 10**5)],
                             policy_asset=POLICY, fee_rate=1.0)  # fmt: skip
    node.add([other.raw])
    node.add([])
    await view.refresh()
    assert view.height == 2 and view.tx_height(pay.txid) is None and view.tx_height(other.txid) == 1
    assert view.balance(BUYER.script_pubkey, asset=BOND) == 2 * 10**9 - 10**9  # the payment is undone
    assert view.spend_of(seller_coins[0].outpoint) is None


async def test_a_blinded_htlc_output_is_never_spent_and_the_audit_names_it():
    node = FakeNode()
    htlc = HtlcScript(b"\x11" * 32, BUYER.pubkey, SELLER.pubkey, 50)
    tx, _ = build_payment(SELLER, funding(SELLER, (BOND, 10**9), (POLICY, 10**6)), [TxOut(htlc.script_pubkey, BOND, 10**8)],
                          policy_asset=POLICY, fee_rate=1.0)  # fmt: skip
    raw = bytearray(tx.raw)
    at = raw.index(b"\x01" + bytes.fromhex(BOND)[::-1])  # the HTLC output's asset tag -> blinded
    raw[at] = 0x0A
    node.add([bytes(raw)])
    view = ChainView(node, dialect_for("elementsd"))
    ledger = ElementsLedger(node, dialect_for("elementsd"), view, policy_asset=POLICY)
    await view.refresh()
    assert [u.confidential for u in view.outputs_to(htlc.script_pubkey)] == [True]
    assert view.unspent(htlc.script_pubkey) == []
    with pytest.raises(AuditError) as info:
        ledger.audit(htlc, 10**8, asset=BOND, min_confirmations=0)
    assert info.value.field == "confidential"


async def test_a_broadcast_during_a_mempool_refresh_is_not_forgotten():
    """A concurrent swap's broadcast can land while a refresh waits for getrawmempool; the
    view must keep it spent, or the next lock would pick the same outputs again."""
    node = FakeNode()
    view, mine = await seller_coins(node)
    pay = seller_pays(mine, 10**5)
    answer = node.call

    async def slow_mempool(method, *params):
        if method == "getrawmempool":
            view.add_local(dialect_for("elementsd").parse_tx(pay.hex))  # sent while the node answers
            return []  # the node's answer predates it
        return await answer(method, *params)

    node.call = slow_mempool  # type: ignore[method-assign]
    await view.refresh()
    assert view.unspent(SELLER.script_pubkey) == [u for u in view.unspent(SELLER.script_pubkey) if u.txid == pay.txid]
    assert view.spend_of(mine[0].outpoint) is not None  # still seen spent by our broadcast


async def test_concurrent_refreshes_share_one_round_and_a_late_caller_waits_for_the_next():
    """100 swaps polling one view ask the node once per round, not once each; a caller that
    arrives while a round is already asking the node gets the next round, which sees what
    the node has by then (here: a block mined during the first round)."""
    import asyncio

    node = FakeNode()
    node.add([])
    view = ChainView(node, dialect_for("elementsd"))
    await view.refresh()
    asked: list[str] = []
    answer = node.call

    async def counted(method, *params):
        asked.append(method)
        return await answer(method, *params)

    node.call = counted  # type: ignore[method-assign]
    heights = await asyncio.gather(*(view.refresh() for _ in range(100)))
    assert heights == [0] * 100
    assert asked == ["getbestblockhash", "getrawmempool"]  # one round for the hundred

    asked.clear()
    in_round, go_on = asyncio.Event(), asyncio.Event()

    async def slow(method, *params):
        asked.append(method)
        if method == "getrawmempool" and not go_on.is_set():
            in_round.set()
            await go_on.wait()
        return await answer(method, *params)

    node.call = slow  # type: ignore[method-assign]
    first = asyncio.ensure_future(view.refresh())
    await in_round.wait()  # the first round has read the tip and waits for the mempool
    node.add([])  # a block arrives meanwhile
    late = asyncio.ensure_future(view.refresh())
    go_on.set()
    assert await first == 0  # the tip it read before the block
    assert await late == 1  # its own round, started after it asked
    assert asked.count("getbestblockhash") == 2


async def test_a_broadcast_while_the_view_follows_again_is_not_forgotten():
    """Our lock A is mined between the chain follow and the mempool answer, so the view
    follows again; lock B, broadcast during that second follow, must stay spent in the view
    (it was dropped: the next lock picked B's input, "output already spent in mempool")."""
    node = FakeNode()
    view, (first, second) = await seller_coins(node, 2)
    a, b = seller_pays([first], 10**5), seller_pays([second], 10**5)
    view.add_local(dialect_for("elementsd").parse_tx(a.hex))
    answer = node.call
    answered = False

    async def racing(method, *params):
        nonlocal answered
        if method == "getrawmempool":
            node.add([a.raw])  # A is mined before the node answers
            answered = True
            return []
        if method == "getblockcount" and answered:  # following again
            view.add_local(dialect_for("elementsd").parse_tx(b.hex))  # B is broadcast meanwhile
        return await answer(method, *params)

    node.call = racing  # type: ignore[method-assign]
    await view.refresh()
    assert view.tx_height(a.txid) == 1
    assert view.spend_of(second.outpoint) is not None  # B still spends it
    assert all(u.outpoint != second.outpoint for u in view.unspent(SELLER.script_pubkey))


async def test_a_pending_broadcast_holds_its_inputs_and_its_spenders():
    """A transaction recorded before its broadcast (the send lock is released then, so the
    next lock is built meanwhile) counts its inputs spent; a transaction spending its change
    waits until it was sent; a broadcast the node refused gives its inputs back."""
    import asyncio

    node = FakeNode()
    view, (coin,) = await seller_coins(node)
    a = seller_pays([coin], 10**5)
    wire_a = dialect_for("elementsd").parse_tx(a.hex)
    view.add_local(wire_a, pending=True)
    assert view.spend_of(coin.outpoint) is not None
    await view.refresh()  # a refresh while it is not sent yet keeps it
    assert view.spend_of(coin.outpoint) is not None
    change = [u for u in view.unspent(SELLER.script_pubkey) if u.txid == a.txid]
    b = seller_pays(change, 10**4)
    waiting = asyncio.ensure_future(view.inputs_sent(dialect_for("elementsd").parse_tx(b.hex)))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # B spends A's change: it waits for A's broadcast
    view.forget_local(a.txid)  # the node refused A
    view.sent(a.txid)
    with pytest.raises(errors.SubmitError) as info:  # B's input never reached the node
        await asyncio.wait_for(waiting, 1)
    assert info.value.code == "parent-not-sent"
    assert view.spend_of(coin.outpoint) is None
    assert coin in view.unspent(SELLER.script_pubkey)


@pytest.mark.parametrize("fails", ["node refuses", "journal write fails"])
async def test_a_child_of_a_failed_broadcast_is_neither_journaled_nor_sent(fails):
    """Lock A is pending (recorded, not yet sent) when B, spending A's change, is broadcast:
    B waits for A.  A fails (the node refuses it, or its journal write fails): B must stop
    with a SubmitError before it is journaled, never reach the node, and leave the view as
    it was (A's input unspent again, B's spend gone)."""
    import asyncio

    from dvp import sendlog
    from dvp_utxo.htlc import journaled_as

    node = FakeNode()
    view, (coin,) = await seller_coins(node)
    ledger = ElementsLedger(node, dialect_for("elementsd"), view, policy_asset=POLICY)
    a = seller_pays([coin], 10**5)
    view.add_local(dialect_for("elementsd").parse_tx(a.hex), pending=True)  # to compute A's change
    b = seller_pays([u for u in view.unspent(SELLER.script_pubkey) if u.txid == a.txid], 10**4)
    view.forget_local(a.txid)
    view.sent(a.txid)
    journaled: list[str] = []
    sent: list[str] = []
    b_waits = asyncio.Event()
    answer = node.call

    async def journal(signed):
        if signed[0].tx_id == a.txid:
            await b_waits.wait()  # B is broadcast while A's journal write is under way
            if fails == "journal write fails":
                raise errors.JournalUnavailable("the journal's server is gone")
        journaled.extend(s.tx_id for s in signed)

    async def refusing(method, *params):
        if method == "sendrawtransaction":
            txid = dialect_for("elementsd").parse_tx(params[0]).txid
            sent.append(txid)
            raise RpcError(method, -26, "bad-txns-inputs-missingorspent")
        return await answer(method, *params)

    node.call = refusing  # type: ignore[method-assign]

    async def broadcast(tx) -> str:
        with sendlog.journaling(journal), journaled_as("lock", "seller"):
            return await ledger.send(tx)

    first = asyncio.ensure_future(broadcast(a))
    await asyncio.sleep(0)  # A is recorded pending, its journal write waits
    second = asyncio.ensure_future(broadcast(b))
    for _ in range(100):
        await asyncio.sleep(0)
    assert not second.done()  # B waits for A
    b_waits.set()
    with pytest.raises((RpcError, errors.JournalUnavailable)):
        await asyncio.wait_for(first, 1)
    with pytest.raises(errors.SubmitError) as info:
        await asyncio.wait_for(second, 1)
    assert info.value.code == "parent-not-sent"
    assert b.txid not in journaled and b.txid not in sent
    assert sent == ([a.txid] if fails == "node refuses" else [])
    assert view.spend_of(coin.outpoint) is None and coin in view.unspent(SELLER.script_pubkey)
    assert not view.in_mempool(b.txid) and not view.in_mempool(a.txid)


async def test_an_output_spent_in_a_block_a_reorganisation_removes_is_unspent_again():
    """Coin selection reads an index of unspent outputs per script: a spend in a block drops
    the output from it, the block's removal puts it back, and the removed block's outputs go."""
    node = FakeNode()
    view, (coin,) = await seller_coins(node)
    pay = seller_pays([coin], 10**5)
    node.add([pay.raw])
    await view.refresh()
    assert [u.txid for u in view.unspent(SELLER.script_pubkey)] == [pay.txid]  # its change only
    node.blocks.pop()
    node.add([])
    node.add([])
    await view.refresh()
    assert view.height == 2 and view.unspent(SELLER.script_pubkey) == [coin]
