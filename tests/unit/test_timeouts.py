"""The plan check and the runtime check before the second lock are one computation
(issue 10, item 2): whatever plan the check accepts leaves a second lock made promptly
after the first with the planned gap and time for the holder to claim."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvp import errors
from dvp.models import Finality, HtlcPlan, Role
from dvp.timeouts import budget, check_plan, second_leg_seconds

EVM = Finality.by_confirmations(1, 1.0, 2.0)
FAST_EVM = Finality.by_confirmations(1, 0.25, 2.0)


def test_the_stated_minimum_gap_is_accepted_and_one_less_is_refused_with_that_number():
    needed = budget(HtlcPlan(), EVM, EVM).gap_required
    assert needed == 36  # finality 1 + 1, skew 2 + 2, reaction window 30
    check_plan(HtlcPlan(holder_timeout=300 + needed, counter_timeout=300), EVM, EVM)
    with pytest.raises(errors.UnsafeTimeouts, match=f"leaves a {needed - 1}s gap .* at least {needed}s needed"):
        check_plan(HtlcPlan(holder_timeout=300 + needed - 1, counter_timeout=300), EVM, EVM)


def test_fractional_figures_are_rounded_up_and_printed_without_noise():
    b = budget(HtlcPlan(reaction_window=5), FAST_EVM, FAST_EVM)
    assert b.gap_required == 10  # 0.25 + 0.25 + 2 + 2 + 5 = 9.5, rounded up
    with pytest.raises(errors.UnsafeTimeouts) as info:
        check_plan(HtlcPlan(holder_timeout=39, counter_timeout=30, reaction_window=5), FAST_EVM, FAST_EVM)
    assert "at least 10s needed (finality 0.25s + 0.25s, skew 2s + 2s, reaction window 5s)" in str(info.value)


def test_a_second_lock_made_promptly_keeps_the_planned_gap_at_the_minimum():
    plan = HtlcPlan(holder_timeout=336, counter_timeout=300)
    b = check_plan(plan, EVM, EVM)
    # The first lock took its expected time to be final; the gap is still the planned 36 s.
    left = plan.holder_timeout - b.first_delay
    counter = second_leg_seconds(plan, EVM, EVM, holder_first=True, first_left=left)
    assert left - counter == 36
    # A slow counterparty: its leg is shortened, never the gap, until no claim time is left.
    assert second_leg_seconds(plan, EVM, EVM, holder_first=True, first_left=200) == 164
    with pytest.raises(errors.UnsafeTimeouts, match="the holder needs more than"):
        second_leg_seconds(plan, EVM, EVM, holder_first=True, first_left=36 + b.claim_window)


finalities = st.builds(
    Finality.by_confirmations,
    st.integers(1, 6),
    st.sampled_from([0.25, 1.0, 2.5, 600.0]),
    st.sampled_from([0.0, 1.0, 2.0, 30.0]),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    holder=finalities,
    counter=finalities,
    counter_timeout=st.integers(1, 20_000),
    extra=st.integers(0, 3),
    reaction=st.integers(0, 120),
    first=st.sampled_from([Role.SELLER, Role.BUYER]),
)
def test_every_accepted_plan_passes_the_runtime_check_after_a_prompt_first_lock(
    holder, counter, counter_timeout, extra, reaction, first
):
    needed = budget(HtlcPlan(reaction_window=reaction), holder, counter).gap_required
    if counter_timeout + needed + extra > 30 * 24 * 3600:
        return
    plan = HtlcPlan(
        holder_timeout=counter_timeout + needed + extra,
        counter_timeout=counter_timeout,
        reaction_window=reaction,
        first_locker=first,
    )
    try:
        b = check_plan(plan, holder, counter)
    except errors.UnsafeTimeouts:
        return
    holder_first = plan.locks_first is plan.secret_holder
    first_timeout = plan.holder_timeout if holder_first else plan.counter_timeout
    second = second_leg_seconds(
        plan, holder, counter, holder_first=holder_first, first_left=first_timeout - b.first_delay
    )
    gap = (first_timeout - b.first_delay) - second if holder_first else second - (first_timeout - b.first_delay)
    assert gap == plan.holder_timeout - plan.counter_timeout >= b.gap_required


# -- messages label time left as such (issue 23, item 5) ---------------------------------------------


def test_time_left_on_agreed_expiries_is_not_called_the_plans_field():
    from dvp.timeouts import check_time_left

    plan = HtlcPlan(holder_timeout=60, counter_timeout=30, reaction_window=30)
    with pytest.raises(errors.UnsafeTimeouts) as info:
        check_time_left(plan, 20, 10, EVM, EVM)
    text = str(info.value)
    assert "plan." not in text and "timeout" not in text, text
    assert text.startswith(
        "time left: the holder's leg has 20s left, a 10s gap over the counter leg's 10s; at least 36s needed"
    ), text
    with pytest.raises(errors.UnsafeTimeouts) as info:
        check_time_left(HtlcPlan(holder_timeout=600, counter_timeout=300, reaction_window=5), 15, 3, EVM, EVM)
    assert str(info.value).startswith("time left: the counter leg would run "), str(info.value)
    # The same figures as a plan keep the plan's field names.
    with pytest.raises(
        errors.UnsafeTimeouts, match=r"^plan.holder_timeout: 20s leaves a 10s gap over counter_timeout 10s"
    ):
        check_plan(HtlcPlan(holder_timeout=20, counter_timeout=10, reaction_window=30), EVM, EVM)
    check_time_left(HtlcPlan(holder_timeout=60, counter_timeout=30, reaction_window=10), 59, 29, EVM, EVM)


@pytest.mark.parametrize(("left", "needed"), [(5.0, 5.0), (4.6, 5.0), (5.4, 5.7), (0.2, 3.0)])
def test_too_late_to_lock_says_which_time_is_left_and_what_it_is_needed_for(left, needed):
    from dvp.timeouts import too_late_to_lock

    text = too_late_to_lock(left, needed)
    assert text == (
        f"too late to lock: the counter leg has {left:.1f}s left; the holder needs more than {needed:.1f}s to claim it"
    ).replace(".0s", "s"), text
