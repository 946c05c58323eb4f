"""A wall-clock budget for the training loop, and the immutable schedule it re-plans.

``train.time_limit`` asks for a run that ends inside a number of seconds (summed over resumes) with its
whole learning-rate schedule behind it. The rate is only known once the loop runs, so after a short probe
(the first steps pay for the allocator and autotuning) the run re-plans: the total becomes what fits at the
measured rate, and the milestones not yet passed move with it, keeping their place in the original plan.
The rate is averaged from the end of the probe, validations and checkpoints included; re-plans repeat every
tenth of the budget or so (at most every 30 s) so a run that slows down still ends in time, and 3% of what
is left is kept for the final validation and checkpoint.

A re-plan makes a new ``Schedule``; nothing here changes the config (an earlier version edited
``cfg.train`` in place, and a resumed run then stopped at a stale plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROBE_STEPS = 5  # steps skipped before the rate is measured
FIRST_PLAN_STEPS = 100  # the first re-plan comes after this many measured steps, or one interval
RESERVE = 0.03  # of the time left, kept for validation and checkpoints


@dataclass(frozen=True)
class Schedule:
    """How long the loop runs and where the learning rate drops."""

    iterations: int
    milestones: tuple[int, ...] = ()

    @classmethod
    def from_list(cls, value: Sequence[Any]) -> Schedule:
        """From the checkpoint form ``[iterations, [milestones]]``."""
        return cls(int(value[0]), tuple(int(m) for m in value[1]))

    def to_list(self) -> list[Any]:
        return [self.iterations, list(self.milestones)]

    def fitted(self, plan: Schedule, total: int, done: int) -> Schedule:
        """``total`` iterations; the milestones not yet passed at ``done`` are ``plan``'s scaled by
        ``total / plan.iterations`` (and stay after ``done``), the passed ones stay where they were."""
        factor = total / plan.iterations
        moved = tuple(
            cur if cur <= done else max(done + 1, round(m * factor)) for m, cur in zip(plan.milestones, self.milestones)
        )
        return Schedule(total, moved)

    def resumed(self, plan: Schedule | None, done: int) -> Schedule:
        """A resumed budgeted run plans again from the original length (it may have stopped at its limit
        before a plan that it had slowed down from); the probe then fits it to the time left."""
        if plan is None:
            return self
        return Schedule(max(plan.iterations, done + 1), self.milestones)


class TimeBudget:
    """When to re-plan, to how many iterations, and whether ``limit`` seconds are spent.

    ``spent`` (seconds of loop time so far, over resumes) is passed in by the loop, which owns the clock;
    ``now`` is wall time. The rate window starts ``PROBE_STEPS`` after ``start_iter``.
    """

    def __init__(self, limit: float, start_iter: int) -> None:
        if limit <= 0:
            raise ValueError(f"a time budget needs a positive limit, got {limit}")
        self.limit = float(limit)
        self.start_iter = start_iter
        self.window: tuple[int, float] | None = None  # (iteration, time) the rate is averaged from
        self.last_plan: float | None = None  # time of the last re-plan

    @property
    def interval(self) -> float:
        """Seconds between re-plans: a tenth of the budget, at most 30 s, at least a twentieth."""
        return max(min(30.0, self.limit / 10), self.limit / 20)

    def measuring(self, it: int, now: float) -> bool:
        """After step ``it``: False during the probe; the first call after it starts the rate window."""
        if self.window is None:
            if it - self.start_iter >= PROBE_STEPS:
                self.window = (it, now)
            return False
        return True

    def due(self, it: int, now: float) -> bool:
        """A re-plan is due: one interval since the last (or since the window began), or, before the first,
        ``FIRST_PLAN_STEPS`` measured steps."""
        if self.window is None:
            return False
        it0, t0 = self.window
        if self.last_plan is None:
            return now - t0 >= self.interval or it - it0 >= FIRST_PLAN_STEPS
        return now - self.last_plan >= self.interval

    def rate(self, it: int, now: float) -> float:
        """Iterations per second since the window began."""
        if self.window is None:
            raise RuntimeError("no rate before the probe has ended")
        it0, t0 = self.window
        return (it - it0) / max(now - t0, 1e-9)

    def left(self, spent: float) -> float:
        return max(self.limit - spent, 0.0)

    def over(self, spent: float) -> bool:
        return spent >= self.limit

    def plan(self, it: int, now: float, spent: float) -> int:
        """The total that fits: ``it`` plus what the measured rate does in what is left (less the reserve);
        records ``now`` as the last re-plan."""
        self.last_plan = now
        return it + max(1, int(self.rate(it, now) * self.left(spent) * (1 - RESERVE)))
