"""What an agent takes from its peer, and on whose terms (issue 23, item 4): the acceptor's
margins and dev switches are its own policy; its policy lists what it may send and binds its
own proposals too; bad input gets a REJECT with a reason (never a crash on the channel), and
every number in a message is finite.  Two agents in one process (LocalChannel), in-memory
ledgers."""

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
from dvp.party.agreement import Proposal, propose
from dvp.party.channel import LocalChannel
from dvp.party.messages import Kind, Message
from dvp.testing.scenarios import DEV_POLICY

SEQ = itertools.count(1)
ASSETS = [Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY), Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH)]


def spec(**plan) -> SwapSpec:
    return SwapSpec(trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10),
                                cash=Leg(ledger="b", asset="EUR", amount=1000)),
                    plan=HtlcPlan(**{"holder_timeout": 100, "counter_timeout": 50, "reaction_window": 5, **plan}))


@pytest.fixture
async def pair(ledgers, tmp_path):
    """The seller proposes (a dev policy), the buyer answers: its policy is set per test."""
    one, two = LocalChannel.pair("seller", "buyer")
    said: list[str] = []
    seller = Agent("seller", "buyer", ledgers, ASSETS, Journal(tmp_path / "seller.sqlite"), one, policy=DEV_POLICY)
    buyer = Agent("buyer", "seller", ledgers, ASSETS, Journal(tmp_path / "buyer.sqlite"), two, policy=DEV_POLICY,
                  progress=lambda s, m: said.append(m))
    buyer.said = said  # type: ignore[attr-defined]
    await buyer.start()
    yield seller, buyer
    await buyer.aclose()


async def offer(seller: Agent, buyer: Agent, the_spec: SwapSpec, swap_id: str | None = None,
                proposal: Proposal | None = None) -> Message:
    """The seller's proposal of ``the_spec`` straight to the buyer's handler; its answer."""
    swap_id = swap_id or secrets.token_hex(6)
    if proposal is None:
        hashlock = secrets.token_hex(32)
        proposal = await propose(swap_id, "seller", the_spec, seller.ledgers, hashlock)
    message = Message(kind=Kind.PROPOSE, swap_id=swap_id, sender="seller", recipient="buyer", seq=next(SEQ),
                      body=proposal.model_dump(mode="json"))
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
    assert "plan.claim_margin: 0s is below this party's 10s (policy claim_margin)" in rejected(reply)
    assert (await offer(seller, buyer, spec(claim_margin=12))).kind is Kind.ACCEPT


async def test_the_default_policy_takes_no_dev_switch_and_no_short_reaction_window(pair):
    seller, buyer = pair
    buyer.policy = AcceptPolicy()
    assert "fast_forward: a dev switch this agent does not take" in rejected(
        await offer(seller, buyer, spec(reaction_window=30).model_copy(update={"fast_forward": True})))
    assert "plan.reaction_window: 5s is below this party's 30s" in rejected(await offer(seller, buyer, spec()))
    assert buyer.journal.swaps() == []
    assert (await offer(seller, buyer, spec(reaction_window=30))).kind is Kind.ACCEPT


# -- what may be sent, for the peer's proposals and one's own --------------------------------------

async def test_max_send_lists_what_may_be_sent_anything_else_is_refused(pair):
    seller, buyer = pair
    # The buyer pays EUR on b; a policy that lists only another asset refuses it.
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"a:BOND": 50}})
    assert "EUR on b is not in this party's policy max_send (it sends a:BOND)" in rejected(
        await offer(seller, buyer, spec()))
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {}})
    assert "(it sends nothing)" in rejected(await offer(seller, buyer, spec()))
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 999}})
    assert "1000 EUR on b is above this party's limit of 999" in rejected(await offer(seller, buyer, spec()))
    buyer.policy = DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 1000}})
    assert (await offer(seller, buyer, spec())).kind is Kind.ACCEPT


async def test_own_proposals_pass_the_same_policy(pair):
    seller, buyer = pair
    for policy, why in ((DEV_POLICY.model_copy(update={"max_send": {"a:BOND": 5}}), "above this party's limit of 5"),
                        (DEV_POLICY.model_copy(update={"max_send": {"b:EUR": 5}}), "BOND on a is not in this party's"),
                        (AcceptPolicy(reaction_window=5), "fast_forward: a dev switch"),
                        (DEV_POLICY.model_copy(update={"reaction_window": 10}), "plan.reaction_window: 5s is below")):
        seller.policy = policy
        with pytest.raises(errors.ConfigError, match=f"policy: .*{why}"):
            await seller.propose(spec().model_copy(update={"fast_forward": True}))
    assert seller.journal.swaps() == [] and seller.tasks == {}


# -- bad input is answered, never a crash ------------------------------------------------------------

async def test_an_unknown_ledger_is_a_reject_naming_it(pair):
    seller, buyer = pair
    good = await propose("x1", "seller", spec(), seller.ledgers, secrets.token_hex(32))
    odd = spec().model_copy(update={"trade": Trade(security=Leg(ledger="z", asset="BOND", amount=10),
                                                   cash=Leg(ledger="b", asset="EUR", amount=1000))})
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
    for text in (json.dumps(base).replace(f'"sent_at": {base["sent_at"]}', f'"sent_at": {number}'),
                 json.dumps({**base, "body": {"leg": "cash", "n": [1, {"x": 0.5}, 2.0]}}).replace("0.5", number)):
        assert number in text
        with pytest.raises(ValueError, match="finite"):
            Message.model_validate_json(text)

