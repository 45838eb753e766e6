"""What an agent takes from its peer, and on whose terms (issue 23, item 4): the acceptor's
margins and dev switches are its own policy; its policy lists what it may send and binds its
own proposals too; bad input gets a REJECT with a reason (never a crash on the channel), and
every number in a message is finite; one peer's bounds (dvp.party.limits): a message over a
bound is refused with the bound's name and not journaled, a proposal over one gets a REJECT and
leaves no row, the log the peer causes is rate-limited and says what it held back.  Two agents
in one process (LocalChannel), in-memory ledgers; tests/agent/test_flood.py floods a real
`dvp agent`."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, SwapSpec, Trade
from dvp.party.agent import AcceptPolicy, Agent
from dvp.party.agreement import propose
from dvp.party.channel import LocalChannel
from dvp.party.limits import Bucket, Limits, QuietLog
from dvp.party.messages import Kind, Message
from dvp.terms import Proposal
from dvp.testing.scenarios import DEV_POLICY

SEQ = itertools.count(1)
ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]


def spec(**plan) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(**{"holder_timeout": 100, "counter_timeout": 50, "reaction_window": 5, **plan}),
    )


@pytest.fixture
async def pair(ledgers, tmp_path):
    """The seller proposes (a dev policy), the buyer answers: its policy is set per test."""
    one, two = LocalChannel.pair("seller", "buyer")
    said: list[str] = []
    seller = Agent("seller", "buyer", ledgers, ASSETS, Journal(tmp_path / "seller.sqlite"), one, policy=DEV_POLICY)
    buyer = Agent(
        "buyer",
        "seller",
        ledgers,
        ASSETS,
        Journal(tmp_path / "buyer.sqlite"),
        two,
        policy=DEV_POLICY,
        progress=lambda s, m: said.append(m),
    )
    buyer.said = said  # type: ignore[attr-defined]
    await buyer.start()
    yield seller, buyer
    await buyer.aclose()


async def offer(
    seller: Agent, buyer: Agent, the_spec: SwapSpec, swap_id: str | None = None, proposal: Proposal | None = None
) -> Message:
    """The seller's proposal of ``the_spec`` straight to the buyer's handler; its answer."""
    swap_id = swap_id or secrets.token_hex(6)
    if proposal is None:
        hashlock = secrets.token_hex(32)
        proposal = await propose(swap_id, "seller", the_spec, seller.ledgers, hashlock)
    message = Message(
        kind=Kind.PROPOSE,
        swap_id=swap_id,
        sender="seller",
        recipient="buyer",
        seq=next(SEQ),
        body=proposal.model_dump(mode="json"),
    )
    reply = await buyer.handle(message)
    assert reply is not None
    return reply


def rejected(reply: Message) -> str:
    assert reply.kind is Kind.REJECT, reply
    reason = reply.body["reason"]
    assert isinstance(reason, str) and reason
    return reason


# -- the acceptor's own margins and switches ----------------------------------------------------


async def test_a_plan_below_the_acceptors_reaction_window_is_refused(pair):
    seller, buyer = pair
    buyer.policy = DEV_POLICY.model_copy(update={"reaction_window": 20})
    reply = await offer(seller, buyer, spec(reaction_window=0, holder_timeout=100, counter_timeout=50))
    assert "plan.reaction_window: 0s is below this party's 20s" in rejected(reply)
    assert buyer.journal.swaps() == []
    assert (await offer(seller, buyer, spec(reaction_window=20))).kind is Kind.ACCEPT


async def test_a_plan_below_the_acceptors_claim_margin_is_refused(pair):
    seller, buyer = pair
    buyer.policy = DEV_POLICY.model_copy(update={"claim_margin": 10})
    reply = await offer(seller, buyer, spec(claim_margin=0))
    assert "plan.claim_margin: 0s is below this party's 10s (policy.claim_margin)" in rejected(reply)
    assert (await offer(seller, buyer, spec(claim_margin=12))).kind is Kind.ACCEPT


async def test_the_default_policy_takes_no_dev_switch_and_no_short_reaction_window(pair):
    seller, buyer = pair
    buyer.policy = AcceptPolicy()  # a policy lists what may be sent: by default, nothing
    assert "(it sends nothing)" in rejected(await offer(seller, buyer, spec(reaction_window=30)))
    buyer.policy = AcceptPolicy(max_send={"b:EUR": 1000})
    assert "fast_forward: a dev switch this agent does not take" in rejected(
        await offer(seller, buyer, spec(reaction_window=30).model_copy(update={"fast_forward": True}))
    )
    assert "plan.reaction_window: 5s is below this party's 30s" in rejected(await offer(seller, buyer, spec()))
    assert buyer.journal.swaps() == []
    assert (await offer(seller, buyer, spec(reaction_window=30))).kind is Kind.ACCEPT


# -- what may be sent, for the peer's proposals and one's own --------------------------------------


async def test_max_send_lists_what_may_be_sent_anything_else_is_refused(pair):
    seller, buyer = pair
    # The buyer pays EUR on b; a policy that lists only another asset refuses it.
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"a:BOND": 50}})
    assert "EUR on b is not in this party's policy.max_send (it sends a:BOND)" in rejected(
        await offer(seller, buyer, spec())
    )
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {}})
    assert "(it sends nothing)" in rejected(await offer(seller, buyer, spec()))
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 999}})
    assert "1000 EUR on b is above this party's policy.max_send of 999" in rejected(await offer(seller, buyer, spec()))
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 1000}})
    assert (await offer(seller, buyer, spec())).kind is Kind.ACCEPT


async def test_own_proposals_pass_the_same_policy(pair):
    seller, buyer = pair
    for policy, why in (
        (DEV_POLICY.model_copy(update={"max_send": {"a:BOND": 5}}), "above this party's policy.max_send of 5"),
        (DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 5}}), "BOND on a is not in this party's"),
        (AcceptPolicy(reaction_window=5), "fast_forward: a dev switch"),
        (DEV_POLICY.model_copy(update={"reaction_window": 10}), "plan.reaction_window: 5s is below"),
    ):
        seller.policy = policy
        with pytest.raises(errors.ConfigError, match=f"policy for 'buyer': .*{why}"):
            await seller.propose(spec().model_copy(update={"fast_forward": True}))
    assert seller.journal.swaps() == [] and seller.tasks == {}


# -- bad input is answered, never a crash ------------------------------------------------------------


async def test_an_unknown_ledger_is_a_reject_naming_it(pair):
    seller, buyer = pair
    good = await propose("x1", "seller", spec(), seller.ledgers, secrets.token_hex(32))
    odd = spec().model_copy(
        update={
            "trade": Trade(
                security=Leg(ledger="z", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)
            )
        }
    )
    proposal = good.model_copy(update={"spec": odd})
    reply = await offer(seller, buyer, odd, "x1", proposal)
    assert "trade.security.ledger: unknown ledger 'z'" in rejected(reply)
    assert buyer.journal.get("x1") is None


async def test_the_same_proposal_sent_at_once_gets_one_answer(pair, monkeypatch):
    seller, buyer = pair
    check = buyer._check_own_lock

    async def slow_ledger(*args):  # a ledger read takes time: the copies arrive while the first is checked
        await asyncio.sleep(0.05)
        await check(*args)

    monkeypatch.setattr(buyer, "_check_own_lock", slow_ledger)
    proposal = await propose("same-1", "seller", spec(), seller.ledgers, secrets.token_hex(32))
    replies = await asyncio.gather(*(offer(seller, buyer, spec(), "same-1", proposal) for _ in range(4)))
    assert [r.kind for r in replies] == [Kind.ACCEPT] * 4, [r.body for r in replies]
    assert len({json.dumps(r.body, sort_keys=True) for r in replies}) == 1
    assert [r.id for r in buyer.journal.swaps()] == ["same-1"]
    assert buyer._proposing == {}  # nothing kept per swap id once answered


async def test_a_proposal_that_breaks_the_handler_is_rejected_with_the_reason(pair, monkeypatch):
    seller, buyer = pair

    def broken(*args, **kwargs):
        raise KeyError("evm-z")

    monkeypatch.setattr(buyer.orch, "validate", broken)
    assert "cannot check it: KeyError: 'evm-z'" in rejected(await offer(seller, buyer, spec()))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_numbers_in_a_message_are_finite(number):
    base = Message(kind=Kind.PING, swap_id="s1", sender="seller", recipient="buyer", seq=1).model_dump(mode="json")
    for text in (
        json.dumps(base).replace(f'"sent_at": {base["sent_at"]}', f'"sent_at": {number}'),
        json.dumps({**base, "body": {"leg": "cash", "n": [1, {"x": 0.5}, 2.0]}}).replace("0.5", number),
    ):
        assert number in text
        with pytest.raises(ValueError, match="finite"):
            Message.model_validate_json(text)


# -- one peer's bounds ------------------------------------------------------------------------------

NOTICE_SEQ = itertools.count(10**18)


def rows(agent: Agent) -> int:
    return sum(len(agent.journal.messages(r.id)) for r in agent.journal.swaps())


def notice(swap_id: str, lock_id: str | None = None, kind: Kind = Kind.LOCKED) -> Message:
    body = {} if kind is Kind.PING else {"leg": "cash", "lock_id": lock_id or "0x" + secrets.token_hex(32)}
    return Message(kind=kind, swap_id=swap_id, sender="seller", recipient="buyer", seq=next(NOTICE_SEQ), body=body)


async def refused(agent: Agent, message: Message) -> str:
    with pytest.raises(errors.MessageRefused) as exc:
        await agent.handle(message)
    assert "refused, not journaled" in str(exc.value)
    return str(exc.value)


async def test_a_rejected_proposal_leaves_no_row(pair):
    seller, buyer = pair
    for _ in range(5):
        bad = await propose(secrets.token_hex(4), "seller", spec(), seller.ledgers, secrets.token_hex(32))
        bad = bad.model_copy(update={"cash": bad.cash.model_copy(update={"expiry": 1})})
        assert (await offer(seller, buyer, spec(), bad.swap_id, bad)).kind is Kind.REJECT
    assert buyer.journal.swaps() == [] and rows(buyer) == 0
    assert buyer.admission.refused == {"rejected": 5}


async def test_proposals_per_minute_and_unfinished_swaps(pair):
    seller, buyer = pair
    buyer.limits = Limits(proposals_per_minute=3, unfinished_swaps=2)
    buyer.admission = type(buyer.admission)(buyer.limits)
    answers = [await offer(seller, buyer, spec()) for _ in range(4)]
    assert [a.kind for a in answers] == [Kind.ACCEPT, Kind.ACCEPT, Kind.REJECT, Kind.REJECT]
    assert (
        "this agent has 2 unfinished swaps with 'seller', its limit per peer (limits.unfinished_swaps)"
        in answers[2].body["reason"]
    )
    assert "more than 3 proposals a minute from 'seller' (limits.proposals_per_minute)" in answers[3].body["reason"]
    assert len(buyer.journal.swaps()) == 2
    assert buyer.admission.refused == {"unfinished_swaps": 1, "proposals_per_minute": 1}


async def test_messages_per_swap_and_other_locks_per_swap(pair):
    seller, buyer = pair
    buyer.limits = Limits(messages_per_swap=6, other_locks_per_swap=2)
    buyer.admission = type(buyer.admission)(buyer.limits)
    swap_id = "s1"
    assert (await offer(seller, buyer, spec(), swap_id)).kind is Kind.ACCEPT
    agreed = buyer.journal.get(swap_id).data["lock_cash"]
    # Notices naming another lock than the agreed one: two, then refused (each a ledger read).
    for _ in range(2):
        assert (await buyer.handle(notice(swap_id))).kind is Kind.ACK
    assert "(limits.other_locks_per_swap)" in await refused(buyer, notice(swap_id))
    # The agreed lock and pings still pass, up to the swap's bound of journaled messages.
    assert (await buyer.handle(notice(swap_id, agreed))).kind is Kind.ACK
    assert (await buyer.handle(notice(swap_id, kind=Kind.PING))).kind is Kind.ACK
    taken = len([m for m in buyer.journal.messages(swap_id) if m["direction"] == "in"])
    assert taken == 5  # the proposal, two other locks, the agreed lock, the ping
    assert (await buyer.handle(notice(swap_id, kind=Kind.PING))).kind is Kind.ACK
    before = rows(buyer)
    for _ in range(20):
        assert "more than 6 messages for swap s1 from 'seller' (limits.messages_per_swap)" in await refused(
            buyer, notice(swap_id, kind=Kind.PING)
        )
    assert rows(buyer) == before
    assert buyer.admission.refused == {"other_locks_per_swap": 1, "messages_per_swap": 20}


async def test_other_locks_are_bounded_per_minute_over_all_the_peers_swaps(pair):
    """Per swap alone, a peer with many swaps could make the agent read its ledgers that many
    times over: two notices naming made-up locks on each of three swaps is over the peer's 4 a
    minute, however they are spread; the agreed lock still passes; a minute later there is room."""
    seller, buyer = pair
    now = [0.0]
    buyer.limits = Limits(other_locks_per_swap=2, other_locks_per_minute=4)
    buyer.admission = type(buyer.admission)(buyer.limits, clock=lambda: now[0])
    swaps = ["r1", "r2", "r3"]
    for swap_id in swaps:
        assert (await offer(seller, buyer, spec(), swap_id)).kind is Kind.ACCEPT
    answers = []
    for swap_id in swaps * 2:
        try:
            answers.append((await buyer.handle(notice(swap_id))).kind.value)
        except errors.MessageRefused as exc:
            answers.append(str(exc))
    assert answers[:4] == ["ack"] * 4, answers
    for said in answers[4:]:
        assert "more than 4 notices a minute naming a lock other than the agreed one from 'seller'" in said
        assert "(limits.other_locks_per_minute); refused, not journaled" in said
    agreed = buyer.journal.get("r3").data["lock_cash"]
    assert (await buyer.handle(notice("r3", agreed))).kind is Kind.ACK
    now[0] += 30.0  # half a minute: two more
    assert [(await buyer.handle(notice(s))).kind for s in ("r2", "r3")] == [Kind.ACK, Kind.ACK]
    # r1 had its two: its own bound again, whatever the rate.
    assert "(limits.other_locks_per_swap)" in await refused(buyer, notice("r1"))
    assert buyer.admission.refused == {"other_locks_per_minute": 2, "other_locks_per_swap": 1}


async def test_messages_per_minute_is_checked_first(pair):
    seller, buyer = pair
    buyer.limits = Limits(messages_per_minute=8)  # a burst of 2
    buyer.admission = type(buyer.admission)(buyer.limits)
    assert (await offer(seller, buyer, spec(), "s2")).kind is Kind.ACCEPT
    assert (await buyer.handle(notice("s2", kind=Kind.PING))).kind is Kind.ACK
    said = await refused(buyer, notice("s2", kind=Kind.PING))
    assert "more than 8 messages a minute from 'seller' (limits.messages_per_minute)" in said
    # Refused before anything else is read: even a message for no swap.
    assert "(limits.messages_per_minute)" in await refused(buyer, notice("nothing", kind=Kind.PING))


def test_bucket_and_quiet_log_by_the_clock():
    now = [0.0]
    bucket = Bucket(60, 2, clock=lambda: now[0])  # one a second, two at once
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert [bucket.take(), bucket.take()] == [True, False]
    lines: list[str] = []
    log = QuietLog(lambda swap_id, line: lines.append(line), 2, clock=lambda: now[0])
    for n in range(10):
        log("s", f"line {n}")
    assert lines == ["line 0", "line 1"]
    now[0] += 30.0  # one more line's worth
    log("s", "line 10")
    assert lines[-1] == "line 10 (8 similar lines suppressed before this one)"
    log("s", "line 11")
    log.flush()
    assert lines[-1] == "1 similar lines suppressed (limits.log_lines_per_minute)" and log.total_suppressed == 9


async def test_a_signed_half_is_taken_only_by_the_seller_of_a_single_ledger_order(pair):
    """A buyer's half (``signed``) names a single-ledger order of which this agent is the seller:
    sent for an HTLC swap, to its buyer, it is refused in one line and not journaled."""
    seller, buyer = pair
    assert (await offer(seller, buyer, spec(), "h1")).kind is Kind.ACCEPT
    before = rows(buyer)
    message = notice("h1", kind=Kind.SIGNED).model_copy(update={"body": {"leg": "cash", "lock_id": "ab", "half": "x"}})
    with pytest.raises(errors.MessageRefused, match="this agent is not its order's seller") as exc:
        await buyer.handle(message)
    assert "\n" not in str(exc.value) and rows(buyer) == before
    assert buyer.hints_of("h1").halves == []
