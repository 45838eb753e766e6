"""The swap state machine on an in-memory ledger: outcomes, refusals and resume."""

from __future__ import annotations

import pytest

from dvp import errors
from dvp.journal import Journal
from dvp.lease import drive_lease
from dvp.models import Asset, AssetKind, Behaviour, DvpOrder, HtlcPlan, Leg, OrderStatus, Role, SwapSpec, Trade
from dvp.orchestrator import Orchestrator, Outcome, Unfinished
from dvp.testing.memory import MemoryDvpLedger, MemoryLiveLedger


@pytest.fixture
def orch(ledgers, journal_target):  # on each journal backend: SQLite and PostgreSQL
    assets = [
        Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
        Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
    ]
    return Orchestrator(ledgers, assets, Journal(journal_target))


def spec(**kw) -> SwapSpec:
    plan = kw.pop("plan", {})
    return SwapSpec(
        trade=Trade(
            security=Leg(ledger=kw.pop("sec_ledger", "a"), asset=kw.pop("sec_asset", "BOND"), amount=10),
            cash=Leg(ledger="b", asset="EUR", amount=kw.pop("cash", 1000)),
        ),
        plan=HtlcPlan(**{"holder_timeout": 100, "counter_timeout": 50, "reaction_window": 5, **plan}),
        fast_forward=True,
        **kw,
    )


def holdings(ledgers):
    a, b = ledgers["a"], ledgers["b"]
    return (
        a.balances[("seller", "BOND")],
        a.balances[("buyer", "BOND")],
        b.balances[("seller", "EUR")],
        b.balances[("buyer", "EUR")],
    )


async def test_happy_path_settles(orch, ledgers):
    result = await orch.run(spec())
    assert result.outcome is Outcome.SETTLED
    assert holdings(ledgers) == (90, 10, 1000, 9000)
    holder_leg = result.data["terms_security"]["expiry"]
    counter_leg = result.data["terms_cash"]["expiry"]
    assert holder_leg > counter_leg  # docs/design.md, rule 3: the secret holder's leg expires last


@pytest.mark.parametrize(
    ("behaviour", "outcome", "expected"),
    [
        (Behaviour(counter_locks=False), Outcome.REFUNDED, (100, 0, 0, 10_000)),
        (Behaviour(holder_claims=False), Outcome.REFUNDED, (100, 0, 0, 10_000)),
        (Behaviour(counter_claims=False), Outcome.PRINCIPAL_LOSS, (100, 0, 1000, 9000)),
    ],
)
async def test_failure_paths(orch, ledgers, behaviour, outcome, expected):
    result = await orch.run(spec(behaviour=behaviour))
    assert result.outcome is outcome
    assert holdings(ledgers) == expected


async def test_a_crash_mid_swap_is_resumed_to_settlement(orch, ledgers):
    ledgers["a"].fail_next["claim"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    [pending] = orch.journal.swaps(unfinished=True)
    [result] = await orch.resume_all()
    assert result.swap_id == pending.id and result.outcome is Outcome.SETTLED
    assert holdings(ledgers) == (90, 10, 1000, 9000)
    # Nothing was sent twice: one lock and one claim per ledger.
    assert ledgers["a"].sent.count("lock") == 1 and ledgers["b"].sent.count("claim") == 1


async def test_resume_does_not_resend_a_lock_that_reached_the_ledger(orch, ledgers):
    journal = orch.journal
    real_record_all = journal.arecord_all

    async def die_after_submit(swap_id, step, phase, rows, **kw):
        await real_record_all(swap_id, step, phase, rows, **kw)
        if step == "lock cash" and phase == "submitted":
            raise KeyboardInterrupt

    journal.arecord_all = die_after_submit
    with pytest.raises(KeyboardInterrupt):
        await orch.run(spec())
    journal.arecord_all = real_record_all
    [result] = await orch.resume_all()
    assert result.outcome is Outcome.SETTLED
    assert ledgers["b"].sent.count("lock") == 1


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"sec_ledger": "zz"}, errors.ConfigError, "trade.security.ledger: unknown ledger 'zz'"),
        ({"sec_asset": "GOLD"}, errors.ConfigError, "trade.security.asset: unknown asset 'GOLD'"),
        ({"plan": {"holder_timeout": 60, "counter_timeout": 55}}, errors.UnsafeTimeouts, "5s gap"),
        ({"cash": 10**9}, errors.LockRefused, "holds 10000 EUR"),
    ],
)
async def test_bad_plans_are_refused_before_anything_is_locked(orch, ledgers, kw, error, message):
    with pytest.raises(error, match=message):
        await orch.run(spec(**kw))
    assert ledgers["a"].sent == [] and ledgers["b"].sent == []
    assert orch.journal.swaps() == []


async def test_missing_capability_is_refused(ledgers, tmp_path):
    """What a ledger can do is its type: no TimeTravel mixin on either leg, no fast-forward (one
    leg that can jump is enough: the other waits for real expiry); no AtomicDvp, no atomic run."""
    for name in ("a", "b"):
        held = ledgers[name].balances
        ledgers[name] = MemoryLiveLedger(name)
        ledgers[name].balances.update(held)
    assets = [
        Asset(symbol="BOND", ledger="a", kind=AssetKind.SECURITY),
        Asset(symbol="EUR", ledger="b", kind=AssetKind.CASH),
        Asset(symbol="EUR", ledger="a", kind=AssetKind.CASH),
    ]
    orch = Orchestrator(ledgers, assets, Journal(tmp_path / "j.sqlite"))
    with pytest.raises(errors.NotSupportedError, match="'a' .* does not support time_travel"):
        await orch.run(spec())
    with pytest.raises(errors.NotSupportedError, match="does not support atomic_dvp"):
        await orch.run(
            SwapSpec(
                trade=Trade(
                    security=Leg(ledger="a", asset="BOND", amount=1), cash=Leg(ledger="a", asset="EUR", amount=1)
                )
            )
        )
    assert orch.journal.swaps() == []


async def test_atomic_across_two_ledgers_is_refused(orch):
    with pytest.raises(errors.ConfigError, match="kind: atomic DvP needs both legs on one ledger"):
        await orch.run(spec(kind="atomic"))


async def test_a_plan_that_leaves_no_claim_time_after_a_prompt_first_lock_is_refused(orch, ledgers):
    # The counter leg would run 48 s from its lock, inside the 48 s margin + 1 s finality.
    with pytest.raises(errors.UnsafeTimeouts, match="the holder needs more than 49s to claim"):
        await orch.run(spec(plan={"claim_margin": 48}))
    assert ledgers["a"].sent == [] and ledgers["b"].sent == []


async def test_buyer_as_secret_holder_keeps_the_longer_leg(orch, ledgers):
    result = await orch.run(spec(plan={"secret_holder": Role.BUYER}))
    assert result.outcome is Outcome.SETTLED
    assert result.data["terms_cash"]["expiry"] > result.data["terms_security"]["expiry"]
    assert [s.step for s in result.steps if s.phase == "result"][0] == "lock cash"


async def test_holder_keeps_the_secret_inside_the_safety_margin(orch, ledgers):
    """docs/design.md, rule 4: when the counter leg is too close to expiry the holder does not reveal."""
    # The plan leaves the holder time to claim (the counter leg runs 48 s, more than the 45 s
    # margin + 1 s finality) when the counterparty is prompt; this one takes 5 s more.
    sent = ledgers["b"].lock

    async def slow_lock(terms):
        submitted = await sent(terms)
        ledgers["b"].time += 5
        return submitted

    ledgers["b"].lock = slow_lock
    result = await orch.run(spec(plan={"claim_margin": 45}))
    assert result.outcome is Outcome.REFUNDED
    assert holdings(ledgers) == (100, 0, 0, 10_000)
    assert any(s.step == "claim cash" and s.phase == "skipped" for s in result.steps)
    assert "claim" not in ledgers["b"].sent


async def test_one_driver_per_swap_in_one_process(orch, ledgers):
    """Two tasks resuming one swap: one drives it, the other is told at once and sends nothing."""
    ledgers["a"].fail_next["claim"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    [pending] = orch.journal.swaps(unfinished=True)
    with drive_lease(orch.journal.path, pending.id):  # another task of this process drives it
        [skipped] = await orch.resume_each([pending.id])
        with pytest.raises(errors.SwapBusy, match=f"swap {pending.id} is being driven by another process"):
            await orch.resume(pending.id)
    assert isinstance(skipped, Unfinished) and isinstance(skipped.error, errors.SwapBusy)
    assert ledgers["a"].sent.count("claim") == 0 and ledgers["b"].sent.count("claim") == 1
    # The lease is gone with its driver: the next one may take the (now finished) swap.
    [again] = await orch.resume_each([pending.id])
    assert again.outcome is Outcome.SETTLED


async def test_resume_each_reports_a_stuck_swap_and_drives_the_others(orch, ledgers):
    ledgers["a"].fail_next["claim"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    ledgers["a"].fail_next["claim"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    first, second = (r.id for r in orch.journal.swaps(unfinished=True))
    ledgers["a"].fail_next["claim"] = errors.LedgerUnavailable("ledger 'a' unreachable")
    results = await orch.resume_each()
    assert [type(r).__name__ for r in results].count("Unfinished") == 1
    assert [r.outcome for r in results if type(r).__name__ == "SwapResult"] == [Outcome.SETTLED]
    assert {r.swap_id for r in results} == {first, second}


# -- issue 10, item 1: a refused lock unwinds the swap and never poisons the journal ----------------


async def test_a_second_lock_refused_after_the_first_unwinds_with_the_real_cause(orch, ledgers):
    first_lock = ledgers["a"].lock

    async def lock_then_buyer_spends(terms):
        submitted = await first_lock(terms)
        ledgers["b"].balances[("buyer", "EUR")] = 0  # spent elsewhere after every check passed
        return submitted

    ledgers["a"].lock = lock_then_buyer_spends
    result = await orch.run(spec())
    assert result.outcome is Outcome.REFUNDED, result.detail
    assert "cash lock refused" in result.detail and "insufficient balance" in result.detail
    assert holdings(ledgers)[:2] == (100, 0)  # the seller's bonds came back after expiry
    assert orch.journal.swaps(unfinished=True) == []
    # The journal is not poisoned: the next swap runs, and nothing is left to resume.
    ledgers["a"].lock = first_lock
    ledgers["b"].balances[("buyer", "EUR")] = 10_000
    assert (await orch.run(spec())).outcome is Outcome.SETTLED
    assert await orch.resume_each() == []


async def test_a_refused_first_lock_aborts_the_swap(orch, ledgers):
    ledgers["a"].fail_next["lock"] = errors.SubmitError("amount 1 is below the dust limit")
    result = await orch.run(spec())
    assert result.outcome is Outcome.ABORTED
    assert "security lock refused" in result.detail and "dust" in result.detail
    assert orch.journal.swaps(unfinished=True) == []


async def test_a_resumed_unwind_keeps_its_first_cause(orch, ledgers):
    first_lock = ledgers["a"].lock

    async def lock_then_buyer_spends(terms):
        submitted = await first_lock(terms)
        ledgers["b"].balances[("buyer", "EUR")] = 0
        return submitted

    ledgers["a"].lock = lock_then_buyer_spends
    ledgers["a"].fail_next["refund"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    [result] = await orch.resume_each()
    assert result.outcome is Outcome.REFUNDED and "insufficient balance" in result.detail
    assert "too little time" not in result.detail


# -- issue 10, item 4: the outcome follows the ledgers ------------------------------------------


async def _locked_then_crashed(orch, ledgers):
    """Both legs locked, the holder walked away, the process died waiting to refund."""

    async def died(seconds: int) -> None:
        raise ConnectionError("process died here")

    ledgers["b"].advance_time = died
    with pytest.raises(ConnectionError):
        await orch.run(spec(behaviour=Behaviour(holder_claims=False)))
    del ledgers["b"].advance_time
    [record] = orch.journal.swaps(unfinished=True)
    return record


async def test_legs_claimed_by_hand_make_the_swap_settled(orch, ledgers):
    record = await _locked_then_crashed(orch, ledgers)
    secret = bytes.fromhex(record.data["secret"])
    await ledgers["b"].claim(record.data["lock_cash"], secret, submitter="seller")
    await ledgers["a"].claim(record.data["lock_security"], secret, submitter="buyer")
    [result] = await orch.resume_each()
    assert result.outcome is Outcome.SETTLED, result.detail
    assert "nothing was locked" not in result.detail


async def test_a_counter_leg_claimed_by_hand_then_a_refund_is_a_principal_loss(orch, ledgers):
    record = await _locked_then_crashed(orch, ledgers)
    await ledgers["b"].claim(record.data["lock_cash"], bytes.fromhex(record.data["secret"]), submitter="seller")
    [result] = await orch.resume_each()
    assert holdings(ledgers) == (100, 0, 1000, 9000)  # the seller kept its bonds and got the cash
    assert result.outcome is Outcome.PRINCIPAL_LOSS, result.detail
    assert "buyer 'buyer' lost 1000 EUR" in result.detail


async def test_every_transaction_of_a_step_is_journaled_and_waited_for(orch, ledgers):
    """An operation of two transactions (approve, then lock): each is journaled signed
    (before either is broadcast), when broadcast and when final, with its purpose, payer
    and fee; the step has one result."""
    ledgers["a"].approve_before_lock = True
    ledgers["a"].fee = 21
    result = await orch.run(spec())
    assert result.outcome is Outcome.SETTLED
    rows = [
        (s.phase, s.detail.get("purpose"), s.detail.get("payer"), s.detail.get("fee"))
        for s in result.steps
        if s.step == "lock security"
    ]
    assert rows == [
        ("intent", None, None, None),
        ("signed", "approve", "seller", None),
        ("signed", "lock", "seller", None),
        ("submitted", "approve", "seller", None),
        ("submitted", "lock", "seller", None),
        ("final", "approve", "seller", 21),
        ("final", "lock", "seller", 21),
        ("result", None, None, None),
    ]
    lock_txs = [s.tx_id for s in result.steps if s.step == "lock security" and s.phase == "submitted"]
    assert ledgers["a"].waited[:2] == lock_txs  # in order, the approve first
    [result_row] = [s for s in result.steps if s.step == "lock security" and s.phase == "result"]
    assert result_row.tx_id == lock_txs[-1]


async def test_a_crash_after_journaling_a_submission_waits_for_it_instead_of_resending(orch, ledgers):
    ledgers["a"].approve_before_lock = True
    real_note = orch.journal.arecord

    async def die_before_final(swap_id, step, phase, **kw):
        if step == "lock security" and phase == "final":
            raise KeyboardInterrupt
        await real_note(swap_id, step, phase, **kw)

    orch.journal.arecord = die_before_final
    with pytest.raises(KeyboardInterrupt):
        await orch.run(spec())
    orch.journal.arecord = real_note
    [result] = await orch.resume_all()
    assert result.outcome is Outcome.SETTLED
    assert ledgers["a"].sent.count("lock") == 1
    finals = [s.detail["purpose"] for s in result.steps if s.step == "lock security" and s.phase == "final"]
    assert finals == ["approve", "lock"]


async def test_a_resume_after_a_revert_waits_for_the_submissions_later_transactions(orch, ledgers):
    """Approve then lock (a token without permit): the approve is mined but reverts, and the
    driver dies once that is journaled, before the lock's receipt.  The resume waits for the
    lock too and journals it final with its fee (it was broadcast, so paid for) before it reads
    the ledger for the step; before, it went straight to the ledger and the lock's fee was lost."""
    ledgers["a"].approve_before_lock = True
    ledgers["a"].fee = 21
    wait_final, real_note = ledgers["a"].wait_final, orch.journal.arecord
    approves: list[str] = []

    async def approve_reverts(tx_id, **kw):
        if not approves:  # the swap's first transaction on ledger a: the approve
            approves.append(tx_id)
            raise errors.TransactionError("approve reverted", tx_id=tx_id, code="Paused", fee=21, block=1)
        return await wait_final(tx_id, **kw)

    async def die_before_the_locks_final(swap_id, step, phase, **kw):
        if step == "lock security" and phase == "final" and kw.get("purpose") == "lock":
            raise KeyboardInterrupt
        await real_note(swap_id, step, phase, **kw)

    ledgers["a"].wait_final, orch.journal.arecord = approve_reverts, die_before_the_locks_final
    with pytest.raises(KeyboardInterrupt):
        await orch.run(spec())
    orch.journal.arecord = real_note
    [swap_id] = [r.id for r in orch.journal.swaps(unfinished=True)]
    [lock_tx] = [
        s.tx_id for s in orch.journal.steps(swap_id) if s.phase == "submitted" and s.detail["purpose"] == "lock"
    ]
    waited = len(ledgers["a"].waited)
    [result] = await orch.resume_all()
    assert lock_tx in ledgers["a"].waited[waited:]  # waited for on the resume
    finals = [
        (s.detail["purpose"], s.detail["fee"], s.detail.get("reverted"))
        for s in result.steps
        if s.step == "lock security" and s.phase == "final"
    ]
    assert finals == [("approve", 21, "Paused"), ("lock", 21, None)], finals
    assert result.outcome is Outcome.SETTLED and ledgers["a"].sent.count("lock") == 1  # the lock was on the ledger


# -- the single-ledger (atomic) run -------------------------------------------------------------


@pytest.fixture
def atomic(journal_target):
    ledger = MemoryDvpLedger("d")
    ledger.balances[("seller", "BOND")] = 100
    ledger.balances[("buyer", "EUR")] = 10_000
    assets = [
        Asset(symbol="BOND", ledger="d", kind=AssetKind.SECURITY),
        Asset(symbol="EUR", ledger="d", kind=AssetKind.CASH),
    ]
    return ledger, Orchestrator({"d": ledger}, assets, Journal(journal_target))


def atomic_spec(**kw) -> SwapSpec:
    return SwapSpec(
        trade=Trade(security=Leg(ledger="d", asset="BOND", amount=10), cash=Leg(ledger="d", asset="EUR", amount=1000)),
        **kw,
    )


def atomic_holdings(ledger):
    return tuple(
        ledger.balances[k] for k in (("seller", "BOND"), ("buyer", "BOND"), ("seller", "EUR"), ("buyer", "EUR"))
    )


async def test_atomic_run_moves_both_legs_in_one_transaction(atomic):
    ledger, orch = atomic
    result = await orch.run(atomic_spec())
    assert result.kind == "atomic" and result.outcome is Outcome.SETTLED
    assert atomic_holdings(ledger) == (90, 10, 1000, 9000)
    assert ledger.sent == ["propose", "settle"]
    assert [s.step for s in result.steps if s.phase == "result"] == ["propose", "settle"]
    assert result.data["order_id"] == ledger.order_id(DvpOrder.model_validate(result.data["order"]))


async def test_atomic_run_without_the_buyer_cancels_the_order_on_the_ledger(atomic):
    ledger, orch = atomic
    ledger.fee = 3
    result = await orch.run(atomic_spec(behaviour=Behaviour(counter_locks=False)))
    assert result.outcome is Outcome.ABORTED and "did not accept" in result.detail
    assert "order cancelled on d" in result.detail and "fees 6 unknown (seller)" in result.detail
    assert atomic_holdings(ledger) == (100, 0, 0, 10_000)
    assert ledger.sent == ["propose", "cancel"]
    assert [s.step for s in result.steps if s.phase == "result"] == ["propose", "cancel"]
    order = DvpOrder.model_validate(result.data["order"])
    state = await ledger.get_order(result.data["order_id"])
    assert state is not None and state.status is OrderStatus.CANCELLED
    # The buyer's acceptance after the cancellation is refused by the ledger.
    with pytest.raises(errors.SubmitError, match="no open order"):
        await ledger.accept_dvp(order)
    assert atomic_holdings(ledger) == (100, 0, 0, 10_000)


async def test_atomic_run_killed_before_cancelling_resumes_to_a_cancelled_order(atomic):
    ledger, orch = atomic
    ledger.fail_next["cancel"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(atomic_spec(behaviour=Behaviour(counter_locks=False)))
    [result] = await orch.resume_all()
    assert result.outcome is Outcome.ABORTED and "order cancelled on d" in result.detail
    assert ledger.sent == ["propose", "cancel"]
    state = await ledger.get_order(result.data["order_id"])
    assert state is not None and state.status is OrderStatus.CANCELLED


async def test_an_acceptance_that_lands_before_the_cancellation_settles(atomic, monkeypatch):
    """The race is the ledger's to decide: the cancellation is refused, the outcome reads the ledger."""
    ledger, orch = atomic
    cancel = ledger.cancel_dvp

    async def accepted_first(order):
        await ledger.accept_dvp(order)
        return await cancel(order)

    monkeypatch.setattr(ledger, "cancel_dvp", accepted_first)
    result = await orch.run(atomic_spec(behaviour=Behaviour(counter_locks=False)))
    assert result.outcome is Outcome.SETTLED and "landed before the cancellation" in result.detail
    assert atomic_holdings(ledger) == (90, 10, 1000, 9000)


async def test_the_seller_cancels_an_unfinished_atomic_swap(atomic):
    ledger, orch = atomic
    ledger.fail_next["settle"] = errors.SubmitError("the buyer's node refused")
    with pytest.raises(errors.SubmitError):
        await orch.run(atomic_spec())
    [record] = orch.journal.swaps(unfinished=True)
    with drive_lease(orch.journal.path, record.id):
        with pytest.raises(errors.SwapBusy):
            await orch.cancel(record.id)
    result = await orch.cancel(record.id)
    assert result.outcome is Outcome.ABORTED and "the seller cancelled the order" in result.detail
    assert ledger.sent == ["propose", "cancel"] and atomic_holdings(ledger) == (100, 0, 0, 10_000)
    with pytest.raises(errors.ConfigError, match="already ended aborted"):
        await orch.cancel(record.id)
    with pytest.raises(errors.UnknownSwap):
        await orch.cancel("nope")


async def test_only_a_single_ledger_swap_is_cancelled(orch, ledgers):
    ledgers["a"].fail_next["lock"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(spec())
    [record] = orch.journal.swaps(unfinished=True)
    with pytest.raises(errors.ConfigError, match="htlc swap has no order to cancel"):
        await orch.cancel(record.id)


async def test_atomic_run_killed_before_settling_resumes_without_proposing_twice(atomic):
    ledger, orch = atomic
    ledger.fail_next["settle"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(atomic_spec())
    [result] = await orch.resume_all()
    assert result.outcome is Outcome.SETTLED
    assert atomic_holdings(ledger) == (90, 10, 1000, 9000)
    assert ledger.sent == ["propose", "settle"]


async def test_atomic_run_refuses_a_short_balance_before_proposing(atomic):
    ledger, orch = atomic
    ledger.balances[("buyer", "EUR")] = 999
    with pytest.raises(errors.LockRefused, match="holds 999 EUR"):
        await orch.run(atomic_spec())
    assert ledger.sent == [] and orch.journal.swaps() == []


async def test_an_unknown_swap_id_is_its_own_error(orch):
    with pytest.raises(errors.UnknownSwap, match="no swap 'nope'") as info:
        await orch.resume("nope")
    assert not isinstance(info.value, errors.ConfigError) and info.value.exit_code == 2


async def test_a_cancel_after_a_proposal_that_may_be_in_flight_still_cancels_on_the_ledger(atomic):
    """Once the proposal's intent is journaled its broadcast may be pending unjournaled: the
    cancel drives the proposal to the ledger and cancels it there, rather than trusting a
    ledger read that may come before the pending proposal lands."""
    ledger, orch = atomic
    ledger.fail_next["propose"] = ConnectionError("process died here")
    with pytest.raises(ConnectionError):
        await orch.run(atomic_spec())
    [record] = orch.journal.swaps(unfinished=True)
    result = await orch.cancel(record.id)
    assert result.outcome is Outcome.ABORTED and "order cancelled on d" in result.detail
    assert ledger.sent == ["propose", "cancel"]


async def test_a_cancel_before_anything_was_proposed_sends_nothing(atomic):
    ledger, orch = atomic
    orch.journal.create("s1", "atomic", atomic_spec().model_dump(mode="json"), {})
    result = await orch.cancel("s1")
    assert result.outcome is Outcome.ABORTED and "never proposed" in result.detail
    assert ledger.sent == []
