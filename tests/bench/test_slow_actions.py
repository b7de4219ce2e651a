"""The slow-action benchmark's schedule and its link to the test-only slow action
(`bench.slow_actions`)."""

from __future__ import annotations

from bench import slow_actions
from tests.actions import slow_actions as test_package


def test_one_turn_in_ten_is_marked_and_spread_over_the_customers() -> None:
    plan = slow_actions.schedule(20, 10)
    marked = [
        (c, t) for c, turns in enumerate(plan) for t, is_marked in enumerate(turns) if is_marked
    ]
    assert len(marked) == 20
    assert len({c for c, _ in marked}) == 20  # one per customer, not all on a few
    assert all(len(turns) == 10 for turns in plan)


def test_the_benchmark_marks_turns_the_way_the_slow_action_recognises() -> None:
    assert slow_actions.SLOW_MARKER == test_package.SLOW_MARKER
    assert slow_actions.SLOW_ACTIONS == test_package.__name__


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert slow_actions.percentile(values, 95) == 95.0
    assert slow_actions.percentile([], 95) != slow_actions.percentile([], 95)  # nan
