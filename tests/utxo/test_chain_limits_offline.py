"""The chain view's count of unconfirmed ancestors and descendants, against the mempool chain
limits bitcoind and elementsd keep (-limitancestorcount, -limitdescendantcount, 25 each
counting the transaction itself), and coin selection kept within them.  No node: the
transactions are recorded as our own broadcasts (add_local), blocks applied by hand; the
node's own verdict on the same boundary is tests/utxo/test_elementsd.py's."""

from __future__ import annotations

import hashlib

import pytest

from dvp_utxo.chain import ChainView
from dvp_utxo.dialect import ElementsDialect, MempoolLimits
from dvp_utxo.tx import CHAIN_LIMIT, TxBuildError, select_coins
from dvp_utxo.wire import WireBlock, WireIn, WireOut, WireTx

pytestmark = pytest.mark.utxo

SPK = b"\x00\x14" + b"\x11" * 20
CONFIRMED = ("c0" * 32, 0)  # an outpoint the view has not seen: counted as confirmed


def txid(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def tx(name: str, spends: list[tuple[str, int]], outputs: int = 1, value: int = 100_000) -> WireTx:
    return WireTx(
        txid(name),
        False,
        tuple(WireIn(t, n, ()) for t, n in spends),
        tuple(WireOut(SPK, value) for _ in range(outputs)),
        b"",
    )


def view(limits: MempoolLimits | None = MempoolLimits()) -> ChainView:
    return ChainView(None, ElementsDialect(), limits=limits)  # type: ignore[arg-type]  # no RPC is made


def chain(v: ChainView, n: int, prefix: str = "t") -> list[WireTx]:
    """``n`` transactions, each spending the previous one's output, the first a confirmed coin."""
    txs, prev = [], CONFIRMED
    for i in range(n):
        t = tx(f"{prefix}{i}", [prev], outputs=2)
        v.add_local(t)
        txs.append(t)
        prev = (t.txid, 0)
    return txs


def test_a_chain_of_25_is_the_most_the_node_takes_and_the_26th_is_refused_by_both_limits():
    v = view()
    txs = chain(v, 25)
    assert v.depth(txs[0].txid) == 1 and v.depth(txs[24].txid) == 25
    assert v.depth(CONFIRMED[0]) == 0
    refusal = v.over_limit([(txs[24].txid, 0)])  # the 26th: 25 unconfirmed ancestors
    assert refusal and "25 unconfirmed ancestors" in refusal and "-limitancestorcount=25" in refusal
    # A transaction spending tx 0's second output: 1 ancestor, but tx 0 already has 24
    # descendants, and a 25th is one too many.
    refusal = v.over_limit([(txs[0].txid, 1)])
    assert refusal and f"ancestor {txs[0].txid} would have 25 unconfirmed descendants" in refusal
    assert v.over_limit([(txs[22].txid, 1)]) is not None  # 23 ancestors, but tx 0's 25th descendant
    assert v.over_limit([CONFIRMED]) is None
    # One shorter: the 25th of a chain is taken.
    w = view()
    short = chain(w, 24)
    assert w.over_limit([(short[23].txid, 0)]) is None


def test_descendants_of_a_fan_out_count_against_their_parent_alone():
    v = view()
    root = tx("root", [CONFIRMED], outputs=30)
    v.add_local(root)
    for i in range(23):
        v.add_local(tx(f"child{i}", [(root.txid, i)]))
    assert v.over_limit([(root.txid, 23)]) is None  # the root's 24th descendant: taken
    v.add_local(tx("child23", [(root.txid, 23)]))
    refusal = v.over_limit([(root.txid, 24)])
    assert refusal and "would have 25 unconfirmed descendants" in refusal
    # Two inputs under one ancestor add one descendant to it, not two.
    w = view(MempoolLimits(ancestors=25, descendants=3))
    r = tx("r", [CONFIRMED], outputs=3)
    w.add_local(r)
    w.add_local(tx("a", [(r.txid, 0)]))
    assert w.over_limit([(r.txid, 1), (r.txid, 2)]) is None
    w.add_local(tx("b", [(r.txid, 1)]))
    assert w.over_limit([(r.txid, 2)]) is not None


def test_the_count_kept_as_transactions_are_added_is_the_one_rebuilt_from_the_mempool():
    v = view()
    a = chain(v, 5, "a")
    b = chain(v, 3, "b")
    v.add_local(tx("join", [(a[4].txid, 0), (b[2].txid, 0)], outputs=2))
    v.add_local(tx("after", [(txid("join"), 1)]))
    kept = (dict(v._ancestry()), dict(v._descendants))
    v._ancestors = None  # rebuilt from every unconfirmed transaction at once
    assert (dict(v._ancestry()), dict(v._descendants)) == kept
    assert v.depth(txid("after")) == 10  # 5 + 3 + join + itself
    assert v._descendants[a[0].txid] == 6  # a1..a4, join, after


def test_a_block_confirms_the_ancestors_and_a_forgotten_broadcast_leaves_the_count():
    v = view()
    txs = chain(v, 25)
    assert v.over_limit([(txs[24].txid, 0)]) is not None
    v._apply(WireBlock("00" * 32, 0, tuple(txs[:10])), 1, "b1" * 32)
    assert v.depth(txs[24].txid) == 15
    assert v.over_limit([(txs[24].txid, 0)]) is None
    w = view()
    more = chain(w, 25)
    w.forget_local(more[24].txid)  # the node refused it: its parent is a chain of 24 again
    assert w.over_limit([(more[23].txid, 0)]) is None


def test_no_limits_no_count():
    v = view(limits=None)
    txs = chain(v, 200)
    assert v.over_limit([(txs[-1].txid, 0)]) is None and v.room() is None and v.depth(txs[-1].txid) == 0


def test_coin_selection_prefers_confirmed_then_the_least_chained_and_passes_over_a_coin_the_node_would_refuse():
    v = view()
    deep = chain(v, 25, "deep")
    shallow = chain(v, 2, "shallow")
    coins = {u.txid: u for u in v.unspent(SPK)}
    deep_coin, shallow_coin = coins[deep[-1].txid], coins[shallow[-1].txid]
    confirmed = type(deep_coin)("c1" * 32, 0, 100_000, SPK, height=5)
    room = v.room()
    # Enough in the confirmed coin: taken alone.
    assert select_coins([deep_coin, shallow_coin, confirmed], 50_000, 1.0, 43, room) == [confirmed]
    # Not enough in it: the shallow chain's coin next, never the one 25 deep.
    assert select_coins([deep_coin, shallow_coin, confirmed], 150_000, 1.0, 43, room) == [confirmed, shallow_coin]
    # Only the deep coin would cover it: not insufficient funds, held back for a block.
    with pytest.raises(TxBuildError) as exc:
        select_coins([deep_coin, shallow_coin, confirmed], 250_000, 1.0, 43, room)
    assert exc.value.code == CHAIN_LIMIT and "27 unconfirmed ancestors" in str(exc.value)  # with the 2 shallow
    # Without the limits (btcd, or a check that only sizes a lock) the same coins are chosen.
    assert len(select_coins([deep_coin, shallow_coin, confirmed], 250_000, 1.0, 43)) == 3
    # Short of funds even with the deep coin: insufficient funds, counting it.
    with pytest.raises(TxBuildError) as exc:
        select_coins([deep_coin, shallow_coin, confirmed], 400_000, 1.0, 43, room)
    assert exc.value.code == "insufficient-funds" and exc.value.have == 300_000
    # Two coins each fine alone but not together (their chains, 13 + 13 deep, share no ancestor).
    w = view()
    one, two = chain(w, 13, "one"), chain(w, 13, "two")
    ws = {u.txid: u for u in w.unspent(SPK)}
    with pytest.raises(TxBuildError) as exc:
        select_coins([ws[one[-1].txid], ws[two[-1].txid]], 150_000, 1.0, 43, w.room())
    assert exc.value.code == CHAIN_LIMIT


async def test_a_closed_rpc_client_opens_no_new_session():
    """A task still running after the adapter closed (the bench's error path: the issues in
    flight beside the one the node refused) must not open a session nobody closes
    ("Unclosed client session"): a call after aclose raises RpcUnavailable."""
    from dvp_utxo.rpc import RpcClient, RpcUnavailable

    client = RpcClient("http://127.0.0.1:9", "u", "p")
    await client.aclose()
    with pytest.raises(RpcUnavailable, match="is closed"):
        await client.call("getblockcount")
    assert client._session is None


def test_the_ancestors_of_a_diamond_are_counted_whatever_the_order_the_mempool_lists_it():
    """C <- B <- A, and R spending A and B: R has 3 ancestors, A 2 (B and C), whatever the order
    the transactions come in and the order a set lists R's two parents (before: 8 of the 24
    orders gave A only B, which one depending on the process's hash seed).  Every order, for 16
    namings of the four, against the closure by brute force."""
    from itertools import permutations

    def closure(parents: dict[str, set[str]], t: str) -> set[str]:
        found, todo = set(), list(parents[t])
        while todo:
            p = todo.pop()
            if p not in found:
                found.add(p)
                todo.extend(parents[p])
        return found

    for salt in range(16):
        c = tx(f"c{salt}", [CONFIRMED], outputs=2)
        b = tx(f"b{salt}", [(c.txid, 0)], outputs=2)
        a = tx(f"a{salt}", [(b.txid, 0)])
        r = tx(f"r{salt}", [(a.txid, 0), (b.txid, 1)])
        parents = {c.txid: set(), b.txid: {c.txid}, a.txid: {b.txid}, r.txid: {a.txid, b.txid}}
        want = {t: closure(parents, t) for t in parents}
        assert want[r.txid] == {a.txid, b.txid, c.txid} and want[a.txid] == {b.txid, c.txid}
        for order in permutations([c, b, a, r]):
            v = view()
            for t in order:
                v.add_local(t)
            v._ancestors = None  # rebuilt from the mempool at once, in this order
            assert {t: set(s) for t, s in v._ancestry().items()} == want, [t.txid[:6] for t in order]
            assert dict(v._descendants) == {c.txid: 3, b.txid: 2, a.txid: 1}
            assert v.depth(r.txid) == 4


def test_coins_passed_over_that_cover_the_amount_but_not_their_own_input_fee_are_insufficient_funds():
    """The deep coin covers what is left of the amount but not with its own input's fee:
    a block later the payment would still be short, so insufficient funds at once, counting it
    (before: called a wait for the chain limits, which waited out the finality timeout for
    nothing)."""
    from dvp_utxo.tx import fee_for

    v = view()
    deep, shallow = chain(v, 25, "deep"), chain(v, 2, "shallow")
    coins = {u.txid: u for u in v.unspent(SPK)}
    confirmed = type(coins[deep[-1].txid])("c1" * 32, 0, 100_000, SPK, height=5)
    utxos = [coins[deep[-1].txid], coins[shallow[-1].txid], confirmed]  # 100,000 each
    two, three = (fee_for(11 + 43 + 68 * n + 31, 1.0) for n in (2, 3))
    left = (two + three) // 2  # what the three coins leave above the amount: the fee of two inputs, not three
    assert two < left < three
    with pytest.raises(TxBuildError) as exc:
        select_coins(utxos, 300_000 - left, 1.0, 43, v.room())
    assert exc.value.code == "insufficient-funds", exc.value
    assert exc.value.have == 300_000 and exc.value.need == 300_000 - left + three
    # An amount the three cover with the third input's fee too: a wait for a block.
    with pytest.raises(TxBuildError) as exc:
        select_coins(utxos, 300_000 - three, 1.0, 43, v.room())
    assert exc.value.code == CHAIN_LIMIT
