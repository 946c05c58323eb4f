"""TimeBudget and Schedule on a synthetic clock: when the loop re-plans, to what, and when it stops."""

from __future__ import annotations

import dataclasses

import pytest

from swinir.train.budget import FIRST_PLAN_STEPS, PROBE_STEPS, Schedule, TimeBudget


def test_no_rate_during_the_probe_then_the_window_starts() -> None:
    b = TimeBudget(100.0, start_iter=40)  # a resumed run: the probe counts from where it starts
    for it in range(41, 40 + PROBE_STEPS):
        assert not b.measuring(it, now=float(it))
        assert not b.due(it, float(it))
    assert not b.measuring(40 + PROBE_STEPS, now=50.0)  # this step opens the window
    assert b.window == (40 + PROBE_STEPS, 50.0)
    assert b.measuring(46, now=51.0)
    assert b.rate(55, now=60.0) == pytest.approx(1.0)  # 10 steps in 10 s since the window opened


def test_first_plan_after_enough_steps_or_one_interval_then_every_interval() -> None:
    b = TimeBudget(600.0, start_iter=0)  # interval: min(30, 60) = 30 s
    assert b.interval == 30.0
    b.measuring(PROBE_STEPS, now=0.0)
    assert not b.due(PROBE_STEPS + FIRST_PLAN_STEPS - 1, now=1.0)
    assert b.due(PROBE_STEPS + FIRST_PLAN_STEPS, now=1.0)  # fast steps: plan after 100 of them
    slow = TimeBudget(600.0, start_iter=0)
    slow.measuring(PROBE_STEPS, now=0.0)
    assert not slow.due(PROBE_STEPS + 3, now=29.0) and slow.due(PROBE_STEPS + 3, now=30.0)  # slow steps: 30 s
    b.plan(PROBE_STEPS + FIRST_PLAN_STEPS, now=1.0, spent=1.0)
    assert b.last_plan == 1.0
    assert not b.due(10_000, now=30.9)  # after the first plan, only time counts
    assert b.due(10_000, now=31.0)


def test_interval_is_a_tenth_of_short_budgets_and_at_least_a_twentieth_of_long_ones() -> None:
    assert TimeBudget(6.0, 0).interval == pytest.approx(0.6)
    assert TimeBudget(3600.0, 0).interval == pytest.approx(180.0)  # 30 s would be < 3600/20


def test_plan_fits_the_time_left_at_the_measured_rate_less_the_reserve() -> None:
    b = TimeBudget(100.0, start_iter=0)
    b.measuring(5, now=0.0)
    # 20 it/s measured, 40 s of the 100 spent: 60 s left, 97% of them -> 1164 more steps
    assert b.plan(105, now=5.0, spent=40.0) == 105 + int(20.0 * 60.0 * 0.97)
    assert b.plan(105, now=5.0, spent=100.0) == 106  # spent: at least one more step
    assert not b.over(99.9) and b.over(100.0)
    assert b.left(120.0) == 0.0


def test_no_rate_before_the_window_and_no_empty_budget() -> None:
    with pytest.raises(RuntimeError):
        TimeBudget(10.0, 0).rate(3, 1.0)
    with pytest.raises(ValueError):
        TimeBudget(0.0, 0)


def test_schedule_is_immutable_and_fitting_scales_milestones_not_yet_passed() -> None:
    plan = Schedule(100_000, (50_000, 80_000))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.iterations = 5  # type: ignore[misc]
    first = plan.fitted(plan, total=1000, done=105)
    assert first == Schedule(1000, (500, 800)) and plan == Schedule(100_000, (50_000, 80_000))
    # later the rate drops: the passed milestone stays, the next one keeps its place in the original plan
    second = first.fitted(plan, total=700, done=600)
    assert plan.fitted(plan, total=700, done=0).milestones == (350, 560)
    assert second == Schedule(700, (500, 601))  # 560 would be behind step 600: moved to the next step
    assert Schedule.from_list(plan.to_list()) == plan and plan.to_list() == [100_000, [50_000, 80_000]]


def test_a_resumed_budget_plans_again_from_the_original_length() -> None:
    plan = Schedule(100_000, (50_000, 80_000))
    stale = Schedule(900, (450, 720))  # the run stopped at 850 of a plan that it slowed down from
    assert stale.resumed(plan, done=850) == Schedule(100_000, (450, 720))  # the probe re-fits the milestones
    assert stale.resumed(None, done=850) is stale
    assert Schedule(10, ()).resumed(Schedule(10, ()), done=10).iterations == 11  # always one step more
