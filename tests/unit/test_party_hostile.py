"""An honest agent against a hostile or vanished counterparty, both in one process on
in-memory ledgers: whatever the other side does, the honest party ends whole (or, when the
other side vanished after the reveal, with both legs) and says why it refused.

The in-memory clocks move only when told: a bounded background task advances both, and
the agents poll the ledgers every few milliseconds instead of every second."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.models import Asset, AssetKind, HtlcPlan, Leg, Role, SwapSpec, Trade
from dvp.orchestrator import Outcome, SwapResult
from dvp.party.agent import Agent
from dvp.party.channel import LocalChannel
from dvp.testing.hostile import TAMPERED, Misbehaviour, hostile_agent
from dvp.testing.memory import MemoryLedger
from dvp.testing.scenarios import DEV_POLICY

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]

# Each ledger carries both assets, so a hostile party can lock the wrong one of its own.
ASSETS = [
    Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="a", kind=AssetKind.CASH),
    Asset(symbol="BOND", ledger="b", kind=AssetKind.SECURITY),
    Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
]
START = {("a", "seller", "BOND"): 100, ("b", "buyer", "EUR"): 10_000, ("b", "buyer", "BOND"): 1000}
TICK_SECONDS = 0.005  # each tick moves both ledger clocks one second
MAX_TICKS = 4000
LATE_TICK_SECONDS = 0.05  # the late-reveal test's clock: one ledger second is 50 ms


class StrictIdLedger(MemoryLedger):
    """Refuses ids it cannot have issued, as the seam allows (LockNotFound) and the UTXO
    and EVM adapters do: an in-memory ledger answers None to any string."""

    async def get_lock(self, lock_id: str):
        if not re.fullmatch(r"[0-9a-f]{64}", lock_id):
            raise errors.LockNotFound(f"lock {lock_id}: not an id ledger {self.name} issues")
        return await super().get_lock(lock_id)


def make_ledgers(kind: type[MemoryLedger] = MemoryLedger) -> dict[str, MemoryLedger]:
    ledgers = {"a": kind("a"), "b": kind("b")}
    for (ledger, party, asset), amount in START.items():
        ledgers[ledger].balances[(party, asset)] = amount
    return ledgers


@pytest.fixture
def ledgers() -> dict[str, MemoryLedger]:
    return make_ledgers()


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dvp.party.run.POLL_SECONDS", 0.02)


async def ticking(ledgers: dict[str, MemoryLedger], tick: float = TICK_SECONDS) -> None:
    for _ in range(MAX_TICKS):
        for ledger in ledgers.values():
            await ledger.advance_time(1)
        await asyncio.sleep(tick)


def holdings(ledgers: dict[str, MemoryLedger], party: str) -> dict[tuple[str, str], int]:
    return {
        (name, asset): ledger.balances[(party, asset)] for name, ledger in ledgers.items() for asset in ("BOND", "EUR")
    }


def started(party: str) -> dict[tuple[str, str], int]:
    return {(name, asset): START.get((name, party, asset), 0) for name in ("a", "b") for asset in ("BOND", "EUR")}


def spec(holder: Role) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="a", asset="BOND", amount=10), cash=Leg(ledger="b", asset="EUR", amount=1000)),
        plan=HtlcPlan(secret_holder=holder, holder_timeout=100, counter_timeout=50, reaction_window=5),
        fast_forward=True,
    )


class Mortal:
    """One party's handle on a shared in-memory ledger: once its process is dead, every call
    it makes waits until its tasks are cancelled.  (Cancelling them is not enough on its own:
    Python 3.11's wait_for drops a cancellation that arrives as the awaited reply completes.)"""

    def __init__(self, ledger: MemoryLedger):
        self.ledger = ledger
        self.dead = False

    def __getattr__(self, name):
        value = getattr(self.ledger, name)
        if not inspect.iscoroutinefunction(value):
            return value

        async def call(*args, **kwargs):
            if self.dead:
                await asyncio.Future()
            return await value(*args, **kwargs)

        return call


class Pair:
    """The honest seller and the buyer (hostile or honest) over one LocalChannel pair; a
    mortal buyer can be killed (:meth:`vanish`)."""

    def __init__(
        self,
        ledgers: dict[str, MemoryLedger],
        tmp_path,
        buyer_class: type[Agent] = Agent,
        mortal=False,
        tick: float = TICK_SECONDS,
    ):
        self.ledgers, self.tick = ledgers, tick
        self.mortal = {name: Mortal(ledger) for name, ledger in ledgers.items()}
        self.seller_channel, self.buyer_channel = LocalChannel.pair("seller", "buyer")
        self.seller = Agent(
            "seller",
            "buyer",
            ledgers,
            ASSETS,
            Journal(tmp_path / "seller.sqlite"),
            self.seller_channel,
            policy=DEV_POLICY,
            progress=lambda s, m: print("seller", m),
        )
        self.buyer = buyer_class(
            "buyer",
            "seller",
            self.mortal if mortal else ledgers,
            ASSETS,
            Journal(tmp_path / "buyer.sqlite"),
            self.buyer_channel,
            policy=DEV_POLICY,
            progress=lambda s, m: print("buyer ", m),
        )

    async def vanish(self) -> None:
        """The buyer's agent dies now, as a killed process would: it sends and answers nothing
        more (a partition until its channel is closed) and its drives stop where they wait."""
        self.buyer_channel.partitioned = True
        for ledger in self.mortal.values():
            ledger.dead = True
        for task in self.buyer.tasks.values():
            task.cancel()  # the buyer's drives are all suspended while this runs: none takes another step
        self.stopping = asyncio.create_task(self.buyer.aclose())

    async def __aenter__(self) -> Pair:
        await self.seller.start()
        await self.buyer.start()
        self.clock = asyncio.create_task(ticking(self.ledgers, self.tick))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.clock.cancel()
        await self.seller.aclose()
        await self.buyer.aclose()

    async def honest_result(self, swap_id: str, seconds: float = 10) -> SwapResult:
        async with asyncio.timeout(seconds):
            result = await self.seller.tasks[swap_id]
        assert result is not None, "the honest drive stopped unfinished"
        return result

    async def other_result(self, swap_id: str, seconds: float = 10) -> SwapResult | None:
        for _ in range(200):
            if swap_id in self.buyer.tasks:
                break
            await asyncio.sleep(0.01)
        async with asyncio.timeout(seconds):
            return await self.buyer.tasks[swap_id]


def refusal(misbehaviour: Misbehaviour, agreed_hashlock: str) -> str:
    """The differences the honest party names, for the hostile buyer's cash lock on ledger b."""
    return {
        Misbehaviour.SHORT_EXPIRY: r"expiry \d+ \(agreed \d+\)",
        Misbehaviour.OTHER_HASHLOCK: rf"hashlock (?!{agreed_hashlock})[0-9a-f]{{64}} \(agreed {agreed_hashlock}\)",
        Misbehaviour.SMALLER_AMOUNT: re.escape("amount 500 (agreed 1000)"),
        Misbehaviour.WRONG_RECIPIENT: re.escape("recipient buyer (agreed seller)"),
        Misbehaviour.WRONG_ASSET: re.escape("asset BOND (agreed EUR)"),
    }[misbehaviour]


# The hostile party is the buyer: the counterparty when the seller holds the secret, the
# secret holder (locking first) when the buyer does.
@pytest.mark.parametrize("hostile_role", ["counter", "holder"])
@pytest.mark.parametrize("misbehaviour", [m for m in Misbehaviour if m is not Misbehaviour.LATE_REVEAL])
async def test_honest_party_stays_whole(ledgers, tmp_path, misbehaviour, hostile_role):
    holder = Role.SELLER if hostile_role == "counter" else Role.BUYER
    async with Pair(ledgers, tmp_path, hostile_agent(misbehaviour)) as pair:
        swap_id = await pair.seller.propose(spec(holder))
        result = await pair.honest_result(swap_id)
        hostile = await pair.other_result(swap_id)
    detail = result.detail
    assert holdings(ledgers, "seller") == started("seller"), detail
    hashlock = pair.seller.journal.get(swap_id).data["hashlock"]
    if misbehaviour in TAMPERED:
        why = rf"the cash lock \w+ on b differs from the agreed terms: {refusal(misbehaviour, hashlock)}"
        # The cheat was a real lock of the hostile party's own funds, taken back after expiry.
        assert hostile is not None and hostile.outcome is Outcome.REFUNDED, hostile
        assert holdings(ledgers, "buyer") == started("buyer")
    else:
        why = re.escape(
            "the 'buyer' lock never appeared on b while there was time to claim it"
            if hostile_role == "counter"
            else "the 'buyer' lock never appeared (too late to lock"
        )
        assert "differs" not in detail
    if hostile_role == "counter":  # the honest seller locked first: refunded after expiry
        assert result.outcome is Outcome.REFUNDED, detail
        assert detail.endswith("; refunded my security leg"), detail
    else:
        assert result.outcome is Outcome.ABORTED, detail
        assert detail.endswith("; nothing of mine was locked"), detail
        assert not [lock for lock in ledgers["a"].locks.values() if lock.terms.sender == "seller"]
    assert re.search(why, detail), detail
    audits = [s.detail for s in pair.seller.journal.steps(swap_id) if s.phase == "skipped"]
    if misbehaviour is Misbehaviour.FALSE_NOTICES:
        assert any(a.get("reason", "").startswith("false notice") for a in audits), audits
    if misbehaviour is Misbehaviour.REPLAY:
        replays = pair.buyer.replays
        assert len(replays) == 2, replays
        assert all(r.refused and "replayed or reordered" in r.refused for r in replays), replays
        assert replays[0].message.body != replays[1].message.body
        assert replays[0].message.seq == replays[1].message.seq


async def test_false_notice_with_an_id_no_ledger_issues(tmp_path):
    """A notice naming an id the ledger refuses to read (as EVM and UTXO adapters refuse ids
    of the wrong shape) is a false notice like any other: the honest holder still refunds."""
    ledgers = make_ledgers(StrictIdLedger)
    async with Pair(ledgers, tmp_path, hostile_agent(Misbehaviour.FALSE_NOTICES)) as pair:
        swap_id = await pair.seller.propose(spec(Role.SELLER))
        result = await pair.honest_result(swap_id)
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert holdings(ledgers, "seller") == started("seller")


async def test_counterparty_vanishes_after_the_first_lock(ledgers, tmp_path, monkeypatch):
    ledger = ledgers["a"]
    lock = ledger.lock

    async with Pair(ledgers, tmp_path, mortal=True) as pair:

        async def lock_then_vanish(terms):
            submission = await lock(terms)
            await pair.vanish()
            return submission

        monkeypatch.setattr(ledger, "lock", lock_then_vanish)
        swap_id = await pair.seller.propose(spec(Role.SELLER))
        result = await pair.honest_result(swap_id)
        async with asyncio.timeout(5):
            await pair.stopping
        assert pair.buyer.tasks[swap_id].cancelled()
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert (
        "the 'buyer' lock never appeared on b while there was time to claim it; 'buyer''s agent has not "
        "answered since" in result.detail
    )
    assert holdings(ledgers, "seller") == started("seller")
    assert holdings(ledgers, "buyer") == started("buyer")


async def test_counterparty_vanishes_after_the_reveal(ledgers, tmp_path, monkeypatch):
    """The buyer dies the moment the seller's claim reveals the secret: the seller ends with
    both legs, and reports the buyer's principal loss and why."""
    ledger = ledgers["b"]
    claim = ledger.claim

    async with Pair(ledgers, tmp_path, mortal=True) as pair:

        async def claim_then_vanish(lock_id, preimage, *, submitter):
            submission = await claim(lock_id, preimage, submitter=submitter)
            await pair.vanish()
            return submission

        monkeypatch.setattr(ledger, "claim", claim_then_vanish)
        swap_id = await pair.seller.propose(spec(Role.SELLER))
        result = await pair.honest_result(swap_id)
    assert result.outcome is Outcome.PRINCIPAL_LOSS, result.detail
    assert result.detail.startswith("buyer 'buyer' lost 1000 EUR on b: the secret was revealed"), result.detail
    assert "'buyer''s agent has not answered since" in result.detail
    seller = started("seller")
    assert holdings(ledgers, "seller") == {**seller, ("b", "EUR"): 1000}  # its own BOND back, and the EUR
    assert holdings(ledgers, "buyer")[("b", "EUR")] == START[("b", "buyer", "EUR")] - 1000


async def test_secret_revealed_at_the_last_second(ledgers, tmp_path):
    """The hostile buyer holds the secret and claims the seller's lock one second before it
    expires: the seller still has the gap between the two expiries to claim the buyer's."""
    # A slower clock: the hostile has one ledger second to journal and send its claim, which
    # at the default tick is 5 ms of real time, less than a journal commit on a loaded machine.
    async with Pair(ledgers, tmp_path, hostile_agent(Misbehaviour.LATE_REVEAL), tick=LATE_TICK_SECONDS) as pair:
        swap_id = await pair.seller.propose(spec(Role.BUYER))
        result = await pair.honest_result(swap_id)
        hostile = await pair.other_result(swap_id)
    assert (result.outcome, hostile and hostile.outcome) == (Outcome.SETTLED, Outcome.SETTLED), result.detail
    assert holdings(ledgers, "seller") == {**started("seller"), ("a", "BOND"): 90, ("b", "EUR"): 1000}
    [claim] = [s for s in pair.buyer.journal.steps(swap_id) if s.step == "claim security" and s.phase == "intent"]
    expiry = pair.seller.journal.get(swap_id).data["terms_security"]["expiry"]
    assert expiry - claim.ledger_time <= 1, (expiry, claim.ledger_time)
