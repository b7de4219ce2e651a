"""`bench.familiarity`: how the familiarity threshold is chosen."""

from __future__ import annotations

import numpy as np

from bench.familiarity import choose


def test_threshold_is_the_highest_that_keeps_the_in_scope_loss_within_budget():
    in_scope = np.linspace(0.3, 0.9, 1000)  # 0.3 .. 0.9, evenly
    threshold = choose(in_scope, budget=1.0)
    assert float(np.mean(in_scope < threshold)) <= 0.01
    assert float(np.mean(in_scope < threshold + 0.005)) > 0.01


def test_no_budget_means_no_in_scope_answer_is_lost():
    in_scope = np.asarray([0.5, 0.6, 0.7])
    threshold = choose(in_scope, budget=0.0)
    assert threshold <= 0.5 and float(np.mean(in_scope < threshold)) == 0.0
