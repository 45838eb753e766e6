"""One agent, several pinned peers (issue 22 items 1, 2, 4), on in-memory ledgers: a seller bank
facing two buyer banks over one channel end and one journal; every swap bound to its peer;
each peer's own policy and budgets."""

from __future__ import annotations

import asyncio
import secrets
import time
from itertools import count

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, Role, SwapSpec, Trade
from dvp.orchestrator import Outcome
from dvp.party.agent import Agent
from dvp.party.agreement import propose
from dvp.party.channel import LocalChannel
from dvp.party.limits import Limits
from dvp.party.messages import Kind, Message
from dvp.party.policy import AcceptPolicy
from dvp.party.quotes import QuoteRequest
from dvp.testing.memory import MemoryLedger
from dvp.testing.scenarios import DEV_POLICY

ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
    Asset(symbol="EUR", ledger="c", kind=AssetKind.CASH),
]
BANKS = ("seller", "buyer", "issuer")  # the testnets' third party plays the second buyer bank
SEQ = count(10**18)


def spec(buyer: str = "buyer", cash: str = "b", bond: int = 10, eur: int = 1000, **plan) -> SwapSpec:
    return SwapSpec(
        trade=Trade(
            security=Leg(ledger="a", asset="BOND", amount=bond),
            cash=Leg(ledger=cash, asset="EUR", amount=eur),
            seller="seller",
            buyer=buyer,
        ),
        plan=HtlcPlan(**{"holder_timeout": 100, "counter_timeout": 50, "reaction_window": 5, **plan}),
        fast_forward=True,
    )


@pytest.fixture
def ledgers():
    a, b, c = MemoryLedger("a"), MemoryLedger("b"), MemoryLedger("c")
    a.balances[("seller", "BOND")] = 100
    for ledger in (b, c):
        ledger.balances[("buyer", "EUR")] = 10_000
        ledger.balances[("issuer", "EUR")] = 10_000
    return {"a": a, "b": b, "c": c}


@pytest.fixture
async def banks(ledgers, tmp_path):
    ends = dict(zip(BANKS, LocalChannel.mesh(*BANKS)))
    agents = {
        "seller": Agent(
            "seller",
            ["buyer", "issuer"],
            ledgers,
            ASSETS,
            Journal(tmp_path / "seller.sqlite"),
            ends["seller"],
            policy=DEV_POLICY,
            progress=lambda s, m: print("seller", s, m),
        )
    }
    for bank in ("buyer", "issuer"):
        agents[bank] = Agent(
            bank,
            "seller",
            ledgers,
            ASSETS,
            Journal(tmp_path / f"{bank}.sqlite"),
            ends[bank],
            policy=DEV_POLICY,
            progress=lambda s, m, bank=bank: print(bank, s, m),
        )
    for agent in agents.values():
        await agent.start()
    yield agents
    for agent in agents.values():
        await agent.aclose()


async def ended(*pairs: tuple[Agent, str]):
    for _ in range(200):  # the acceptor's drive starts when the proposal reaches it
        if all(swap_id in agent.tasks for agent, swap_id in pairs):
            break
        await asyncio.sleep(0.05)
    async with asyncio.timeout(15):
        return await asyncio.gather(*(agent.tasks[swap_id] for agent, swap_id in pairs))


def as_message(sender: str, recipient: str, kind: Kind, swap_id: str, body: dict | None = None) -> Message:
    return Message(kind=kind, swap_id=swap_id, sender=sender, recipient=recipient, seq=next(SEQ), body=body or {})


async def test_one_agent_settles_with_two_peers_at_once_each_journal_its_own(banks, ledgers):
    seller, buyer, issuer = banks["seller"], banks["buyer"], banks["issuer"]
    with_buyer = await seller.propose(spec("buyer", "b", 10, 1000))
    with_issuer = await issuer.propose(spec("issuer", "c", 20, 3000, secret_holder=Role.BUYER))
    results = await ended((seller, with_buyer), (buyer, with_buyer), (seller, with_issuer), (issuer, with_issuer))
    assert [r.outcome for r in results] == [Outcome.SETTLED] * 4, [r.detail for r in results]
    # Every balance changed by exactly its trades.
    a, b, c = ledgers["a"], ledgers["b"], ledgers["c"]
    assert (a.balances[("seller", "BOND")], a.balances[("buyer", "BOND")], a.balances[("issuer", "BOND")]) == (
        70,
        10,
        20,
    )
    assert (b.balances[("seller", "EUR")], b.balances[("buyer", "EUR")], b.balances[("issuer", "EUR")]) == (
        1000,
        9000,
        10_000,
    )
    assert (c.balances[("seller", "EUR")], c.balances[("buyer", "EUR")], c.balances[("issuer", "EUR")]) == (
        3000,
        10_000,
        7000,
    )
    # One journal for the seller with both swaps, each bound to its peer; each buyer bank's
    # journal holds its own swap only, and the secret only where its party held it.
    assert {r.id: r.data["side"]["peer"] for r in seller.journal.swaps()} == {
        with_buyer: "buyer",
        with_issuer: "issuer",
    }
    assert [r.id for r in buyer.journal.swaps()] == [with_buyer]
    assert [r.id for r in issuer.journal.swaps()] == [with_issuer]
    assert seller.journal.get(with_buyer).data.get("secret") and not seller.journal.get(with_issuer).data.get("secret")
    assert issuer.journal.get(with_issuer).data.get("secret") and not buyer.journal.get(with_buyer).data.get("secret")
    # Each swap's messages went to and came from its own peer only.
    assert {m["peer"] for m in seller.journal.messages(with_buyer)} == {"buyer"}
    assert {m["peer"] for m in seller.journal.messages(with_issuer)} == {"issuer"}


async def test_a_message_naming_another_peers_swap_is_refused(banks):
    seller, buyer, issuer = banks["seller"], banks["buyer"], banks["issuer"]
    swap_id = await seller.propose(spec("buyer"))
    await ended((seller, swap_id), (buyer, swap_id))
    rows = len(seller.journal.messages(swap_id))
    for kind, body in (
        (Kind.PING, {}),
        (Kind.LOCKED, {"leg": "cash", "lock_id": "x"}),
        (Kind.CLAIMED, {"leg": "security", "lock_id": "x"}),
    ):
        with pytest.raises(errors.MessageRefused, match=f"swap {swap_id} is not a swap with 'issuer'"):
            await seller.handle(as_message("issuer", "seller", kind, swap_id, body))
    # A proposal under that id is refused the same way, whatever it says.
    proposal = await propose(swap_id, "issuer", spec("issuer", "c"), issuer.ledgers, secrets.token_hex(32))
    with pytest.raises(errors.MessageRefused, match="is not a swap with 'issuer'"):
        await seller.handle(as_message("issuer", "seller", Kind.PROPOSE, swap_id, proposal.model_dump(mode="json")))
    assert len(seller.journal.messages(swap_id)) == rows  # nothing journaled
    assert seller.admissions["issuer"].refused == {"not_its_swap": 4}
    assert seller.admissions["buyer"].refused == {}
    # Nor can a peer send as another: the channel end is its own.
    with pytest.raises(errors.MessageRefused):
        await banks["issuer"].channel.send(as_message("buyer", "seller", Kind.PING, swap_id), timeout=2)


async def test_a_trade_with_a_party_not_pinned_is_refused_before_anything(banks):
    with pytest.raises(errors.ConfigError, match="one of its peers"):
        await banks["buyer"].propose(spec("buyer").model_copy(update={"trade": spec("issuer").trade}))
    assert banks["buyer"].journal.swaps() == []


async def test_each_peer_has_its_own_policy(banks, ledgers):
    seller = banks["seller"]
    # The seller sends at most 5 BOND to the issuer, and only against cash on c; the buyer keeps the default.
    seller.policies["issuer"] = DEV_POLICY.model_copy(update={"max_send": {"a:BOND": 5}, "pairs": ["a:BOND/c:EUR"]})
    swap_id = await banks["issuer"].propose(spec("issuer", "c", 10, 1000))
    [result] = await ended((banks["issuer"], swap_id))
    assert result.outcome is Outcome.ABORTED
    assert "seller rejected the proposal: 10 BOND on a is above this party's policy.max_send of 5" in result.detail
    swap_id = await banks["issuer"].propose(spec("issuer", "b", 5, 1000))
    [result] = await ended((banks["issuer"], swap_id))
    assert "a:BOND/b:EUR is not in this party's policy.pairs (a:BOND/c:EUR)" in result.detail
    # The seller's own proposals pass the same per-peer policy.
    with pytest.raises(errors.ConfigError, match="policy for 'issuer': 10 BOND on a is above"):
        await seller.propose(spec("issuer", "c", 10, 1000))
    # The other peer is not bound by it.
    swap_id = await seller.propose(spec("buyer", "b", 10, 1000))
    results = await ended((seller, swap_id), (banks["buyer"], swap_id))
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED]


@pytest.mark.parametrize(
    ("rule", "the_spec", "why"),
    [
        ({"ledgers": ["a", "c"]}, spec(), "ledger b is not in this party's policy.ledgers (a, c)"),
        ({"assets": ["a:BOND", "c:EUR"]}, spec(), "b:EUR is not in this party's policy.assets (a:BOND, c:EUR)"),
        ({"pairs": ["a:BOND/c:EUR"]}, spec(), "a:BOND/b:EUR is not in this party's policy.pairs (a:BOND/c:EUR)"),
        ({"max_send": {"b:EUR": 999}}, spec(), "1000 EUR on b is above this party's policy.max_send of 999"),
        ({"max_send": {}}, spec(), "EUR on b is not in this party's policy.max_send (it sends nothing)"),
        ({"min_timeout": 60}, spec(), "a 50s timeout is below policy.min_timeout 60s"),
        ({"max_timeout": 90}, spec(), "a 100s timeout is above policy.max_timeout 90s"),
        ({"secret_holder": "self"}, spec(), "the peer would hold the secret; policy.secret_holder: self"),
        (
            {"secret_holder": "peer"},
            spec(secret_holder=Role.BUYER),
            "this party would hold the secret; policy.secret_holder: peer",
        ),
        ({"accept": False}, spec(), "this agent accepts no proposals from this peer (policy.accept: false)"),
    ],
)
async def test_each_policy_rule_is_refused_over_the_channel_with_its_reason(banks, rule, the_spec, why):
    """The buyer bank's policy refuses the seller's proposal; both sides say the rule in one line."""
    seller, buyer = banks["seller"], banks["buyer"]
    lines: list[str] = []
    buyer.progress = buyer.orch.progress = lambda s, m: lines.append(m)
    buyer.peer_logs["seller"].out = buyer.progress
    buyer.policy = AcceptPolicy.model_validate({**DEV_POLICY.model_dump(), **rule})
    swap_id = await seller.propose(the_spec)
    [result] = await ended((seller, swap_id))
    assert result.outcome is Outcome.ABORTED
    assert result.detail == f"buyer rejected the proposal: {why}; nothing moved"
    assert f"rejected seller's proposal: {why}" in lines
    assert buyer.journal.swaps() == []  # a refusal leaves no swap
    assert buyer.admissions["seller"].refused == {"rejected": 1}


async def test_the_most_sent_per_day_counts_every_swap_with_that_peer(banks):
    seller, buyer, issuer = banks["seller"], banks["buyer"], banks["issuer"]
    buyer.policy = DEV_POLICY.model_copy(update={"max_send_per_day": {"b:EUR": 2500}})
    first = await seller.propose(spec("buyer", "b", 1, 1000))
    second = await seller.propose(spec("buyer", "b", 1, 1000))
    await ended((seller, first), (seller, second), (buyer, first), (buyer, second))
    third = await seller.propose(spec("buyer", "b", 1, 1000))
    [result] = await ended((seller, third))
    assert result.outcome is Outcome.ABORTED
    assert "1000 EUR on b with 2000 sent in the last 24 h is above policy.max_send_per_day 2500" in result.detail
    # The buyer's own proposal is held to the same sum.
    with pytest.raises(errors.ConfigError, match="policy for 'seller': 600 EUR on b with 2000 sent"):
        await buyer.propose(spec("buyer", "b", 1, 600))
    assert (await ended((seller, await buyer.propose(spec("buyer", "b", 1, 500))))) is not None
    # An issuer bank's policy is its own: the buyer's sum is not the issuer's.
    issuer.policy = DEV_POLICY.model_copy(update={"max_send_per_day": {"c:EUR": 1000}})
    swap_id = await seller.propose(spec("issuer", "c", 1, 1000))
    results = await ended((seller, swap_id), (issuer, swap_id))
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED]


async def test_proposals_checked_at_once_still_keep_the_most_sent_per_day(banks):
    """Proposals are checked side by side (their ledger reads overlap), but the daily sum is
    taken again where nothing awaits before the swap's row: of three at once, whose sum is over
    the day's most, the third is rejected with the rule."""
    seller, buyer = banks["seller"], banks["buyer"]
    buyer.policy = DEV_POLICY.model_copy(update={"max_send_per_day": {"b:EUR": 2500}})
    check_own_lock = buyer._check_own_lock

    async def slow_ledger(*args):  # a real ledger's read: the three checks overlap
        await asyncio.sleep(1.0)
        return await check_own_lock(*args)

    buyer._check_own_lock = slow_ledger
    started = time.time()
    ids = await asyncio.gather(*(seller.propose(spec("buyer", "b", 1, 1000)) for _ in range(3)))
    results = await ended(*((seller, i) for i in ids))
    assert sorted(r.outcome.value for r in results) == ["aborted", "settled", "settled"]
    [aborted] = [r for r in results if r.outcome is Outcome.ABORTED]
    assert "with 2000 sent in the last 24 h is above policy.max_send_per_day 2500" in aborted.detail
    assert len(buyer.journal.swaps()) == 2  # the rejected one left no row
    accepted = [m["wall"] for i in ids for m in buyer.journal.messages(i) if m["kind"] == "accept"]
    assert len(accepted) == 2 and max(accepted) - started < 1.8  # one after another: 2 s at least


async def test_budgets_are_per_peer_a_flooding_peer_spends_only_its_own(ledgers, tmp_path):
    """Two peers flood the seller with pings and fresh proposals; the third's swap settles, and
    its budgets are untouched."""
    parties = ("seller", "buyer", "issuer", "mallory")
    ends = dict(zip(parties, LocalChannel.mesh(*parties)))
    limits = Limits(messages_per_minute=40, proposals_per_minute=3, unfinished_swaps=2)
    seller = Agent(
        "seller",
        ["buyer", "issuer", "mallory"],
        ledgers,
        ASSETS,
        Journal(tmp_path / "seller.sqlite"),
        ends["seller"],
        policy=DEV_POLICY,
        limits=limits,
    )
    buyer = Agent(
        "buyer", "seller", ledgers, ASSETS, Journal(tmp_path / "buyer.sqlite"), ends["buyer"], policy=DEV_POLICY
    )
    await seller.start()
    await buyer.start()
    try:
        refused = {"issuer": 0, "mallory": 0}
        for flooder in ("issuer", "mallory"):
            for n in range(60):
                fresh = f"flood-{flooder}-{n}"
                body = (await propose(fresh, flooder, spec(flooder, "c"), ledgers, secrets.token_hex(32))).model_dump(
                    mode="json"
                )
                kind = Kind.PROPOSE if n % 2 else Kind.PING
                try:
                    await seller.handle(
                        as_message(flooder, "seller", kind, fresh, body if kind is Kind.PROPOSE else {})
                    )
                except errors.MessageRefused:
                    refused[flooder] += 1
        assert all(n > 0 for n in refused.values()), refused
        for flooder in ("issuer", "mallory"):
            assert seller.admissions[flooder].refused.get("messages_per_minute", 0) > 0
        assert seller.admissions["buyer"].refused == {}
        swap_id = await buyer.propose(spec("buyer", "b"))
        results = await ended((buyer, swap_id), (seller, swap_id))
        assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED], [r.detail for r in results]
        # At most limits.unfinished_swaps per flooding peer were taken; the honest one got its own.
        by_peer: dict[str, int] = {}
        for record in seller.journal.swaps():
            by_peer[record.data["side"]["peer"]] = by_peer.get(record.data["side"]["peer"], 0) + 1
        assert by_peer["buyer"] == 1 and by_peer.get("issuer", 0) <= 2 and by_peer.get("mallory", 0) <= 2, by_peer
    finally:
        await seller.aclose()
        await buyer.aclose()


def test_a_fresh_policy_sends_nothing():
    """The hole issue 23 named: a policy with no max_send was open; now it sends nothing."""
    policy = AcceptPolicy()
    with pytest.raises(errors.SwapAborted, match="not in this party's policy.max_send"):
        policy.check(
            spec(reaction_window=30).model_copy(update={"fast_forward": False}),
            Role.BUYER,
            {"a": MemoryLedger("a"), "b": MemoryLedger("b")},
        )


# -- requests for quotes ---------------------------------------------------------------------------

PRICED = DEV_POLICY.model_copy(update={"prices": {"a:BOND/c:EUR": 150, "a:BOND/b:EUR": 100}, "quote_seconds": 20})


async def test_a_quote_is_firm_terms_and_the_proposal_on_them_settles(banks, ledgers):
    """The issuer bank asks the seller bank for 4 BOND against its EUR on c or b; the seller
    quotes by its policy's price for the first it prices, and the proposal on the quote settles."""
    seller, issuer = banks["seller"], banks["issuer"]
    seller.policies["issuer"] = PRICED
    request = QuoteRequest(security="a:BOND", cash=["c:EUR", "b:EUR"], amount=4, side="buy")
    rows = len(seller.journal.swaps())
    asked = time.time()
    quote_id, quoted = await issuer.request_quote("seller", request)
    assert (quoted.trade.seller, quoted.trade.buyer) == ("seller", "issuer")
    assert (quoted.trade.cash.ledger, quoted.trade.cash.amount, quoted.trade.security.amount) == ("c", 600, 4)
    assert quoted.plan.secret_holder is Role.SELLER and not quoted.fast_forward
    given = seller.quotes._given["issuer"][quote_id]
    assert asked + 19 <= given.valid_until <= time.time() + 20  # bounded by its policy.quote_seconds
    assert len(seller.journal.swaps()) == rows and issuer.journal.swaps() == []  # a quote journals nothing
    swap_id = await issuer.propose(quoted, swap_id=quote_id)
    results = await ended((issuer, swap_id), (seller, swap_id))
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED], [r.detail for r in results]
    assert ledgers["c"].balances[("seller", "EUR")] == 600 and ledgers["a"].balances[("issuer", "BOND")] == 4
    assert seller.quotes.outstanding("issuer") == 0  # used


async def test_a_quote_only_for_what_the_policy_would_accept(banks):
    seller, issuer = banks["seller"], banks["issuer"]
    request = QuoteRequest(security="a:BOND", cash=["c:EUR"], amount=4, side="buy")
    with pytest.raises(
        errors.SwapAborted, match=r"seller gave no quote: no quote: no price for a:BOND .*policy.prices"
    ):
        await issuer.request_quote("seller", request)
    seller.policies["issuer"] = PRICED.model_copy(update={"max_send": {"a:BOND": 3}})
    with pytest.raises(errors.SwapAborted, match="4 BOND on a is above this party's policy.max_send of 3"):
        await issuer.request_quote("seller", request)
    # The buyer bank has no price: its own policy, not the issuer's.
    seller.policies["issuer"] = PRICED
    with pytest.raises(errors.SwapAborted, match="no price"):
        await banks["buyer"].request_quote("seller", request.model_copy(update={"cash": ["b:EUR"]}))
    assert seller.journal.swaps() == []


async def test_a_proposal_on_a_quote_must_take_its_terms_in_its_time(banks):
    seller, issuer = banks["seller"], banks["issuer"]
    seller.policies["issuer"] = PRICED
    request = QuoteRequest(security="a:BOND", cash=["c:EUR"], amount=4, side="buy")
    quote_id, quoted = await issuer.request_quote("seller", request)
    cheaper = quoted.trade.model_copy(
        update={"cash": quoted.trade.cash.model_copy(update={"amount": quoted.trade.cash.amount - 1})}
    )
    swap_id = await issuer.propose(quoted.model_copy(update={"trade": cheaper}), swap_id=quote_id)
    [result] = await ended((issuer, swap_id))
    assert result.detail == "seller rejected the proposal: the proposal is not on the quoted terms; nothing moved"
    quote_id, quoted = await issuer.request_quote("seller", request)
    given = seller.quotes._given["issuer"][quote_id]
    seller.quotes._given["issuer"][quote_id] = given.model_copy(update={"valid_until": time.time() - 1})
    swap_id = await issuer.propose(quoted, swap_id=quote_id)
    [result] = await ended((issuer, swap_id))
    assert "the quote it takes up has expired" in result.detail
    assert [r.outcome for r in seller.journal.swaps()] == []


async def test_a_peer_unpaired_while_its_proposal_is_checked_is_refused_with_the_reason(banks):
    """The buyer bank is unpaired while the seller checks its proposal (its own policy, with a
    daily sum, goes with it): the proposal is rejected naming that, no row is left, and the
    seller's other peer is served as before; no handler trips on the peer's budgets being gone."""
    seller, buyer = banks["seller"], banks["buyer"]
    seller.policies["buyer"] = DEV_POLICY.model_copy(update={"max_send_per_day": {"a:BOND": 100}})
    check_own_lock, checking = seller._check_own_lock, asyncio.Event()

    async def slow_ledger(*args):
        checking.set()
        await asyncio.sleep(0.5)
        return await check_own_lock(*args)

    seller._check_own_lock = slow_ledger
    swap_id = await buyer.propose(spec())
    async with asyncio.timeout(5):
        await checking.wait()
    assert seller.set_peers(["issuer"], {}) == []
    [result] = await ended((buyer, swap_id))
    assert result.outcome is Outcome.ABORTED
    assert "'buyer' was unpaired from 'seller''s agent while its message was handled; refused" in result.detail
    assert seller.journal.get(swap_id) is None and seller.peers == ("issuer",)
    seller._check_own_lock = check_own_lock
    other = await banks["issuer"].propose(spec("issuer", "c"))
    results = await ended((seller, other), (banks["issuer"], other))
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED]


async def test_a_peer_whose_agreed_row_is_being_written_is_kept(banks, monkeypatch):
    """Unpairing the buyer bank while the row of a swap the seller just agreed with it is being
    written keeps it (as for any unfinished swap), and the swap settles."""
    seller, buyer = banks["seller"], banks["buyer"]
    create, writing = seller.journal.acreate, asyncio.Event()

    async def slow_create(*args, **kwargs):
        writing.set()
        await asyncio.sleep(0.5)
        return await create(*args, **kwargs)

    monkeypatch.setattr(seller.journal, "acreate", slow_create)
    swap_id = await buyer.propose(spec())
    async with asyncio.timeout(5):
        await writing.wait()
    assert seller.set_peers(["issuer"], {}) == ["buyer"]
    results = await ended((seller, swap_id), (buyer, swap_id))
    assert [r.outcome for r in results] == [Outcome.SETTLED, Outcome.SETTLED], [r.detail for r in results]
    assert seller.peers == ("issuer", "buyer")
