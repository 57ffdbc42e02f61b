"""Early abort (cockpit.rules.early_abort): the smoothing, the interpolation and when a
run is stopped, at the boundaries the module docstring sets."""

from __future__ import annotations

import pytest

from cockpit.events import StepLogged
from cockpit.rules.early_abort import PATIENCE, SMOOTHING, LossWatch, at, smoothed

FLAT = [(float(t), 3.0) for t in range(0, 101, 10)]  # an incumbent at loss 3.0 throughout


def step(progress_pct: float, loss: float) -> StepLogged:
    return StepLogged(1, int(progress_pct), progress_pct, loss, 1.0, 10.0, 1.0, 1.0, 1, 0.0)


def run(watch: LossWatch, losses: list[float], every: float = 10.0) -> list[float]:
    """Feed one step per ``every`` percent; the progress at which the watch said stop."""
    stops = []
    for i, loss in enumerate(losses, start=1):
        if watch.feed(step(every * i, loss)):
            stops.append(every * i)
    return stops


def test_the_smoothing_is_a_bias_corrected_moving_average():
    assert SMOOTHING == 0.9 and PATIENCE == 3
    out = smoothed([(0.0, 4.0), (1.0, 2.0), (2.0, 2.0)])
    assert [t for t, _ in out] == [0.0, 1.0, 2.0]
    assert out[0][1] == pytest.approx(4.0)  # the first point is itself, not 0.1 x itself
    assert out[1][1] == pytest.approx((0.9 * 0.4 + 0.1 * 2.0) / (1 - 0.81))
    assert out[2][1] == pytest.approx((0.9 * 0.56 + 0.2) / (1 - 0.729))
    assert [v for _, v in smoothed(FLAT)] == pytest.approx([3.0] * len(FLAT))
    assert smoothed([]) == []


def test_the_curve_is_interpolated_inside_and_none_outside():
    curve = [(10.0, 4.0), (20.0, 3.0), (40.0, 1.0)]
    assert at(curve, 10.0) == 4.0 and at(curve, 20.0) == 3.0 and at(curve, 40.0) == 1.0
    assert at(curve, 15.0) == pytest.approx(3.5)
    assert at(curve, 25.0) == pytest.approx(2.5)
    assert at(curve, 39.0) == pytest.approx(1.1)
    assert at(curve, 9.99) is None and at(curve, 40.01) is None and at([], 1.0) is None
    assert at([(5.0, 2.0)], 5.0) == 2.0
    assert at([(0.0, 1.0), (5.0, 2.0), (5.0, 4.0)], 5.0) in (2.0, 4.0)


def test_a_run_clearly_behind_is_stopped_after_patience_lines_past_warmup():
    watch = LossWatch(FLAT, budget_s=200, warmup=0.3, margin=0.05)
    # behind from the first line: lines at 10 and 20 % are in warm-up; 30, 40, 50 % count
    assert run(watch, [3.1] * 10) == [50.0]
    verdict = watch.verdict
    assert verdict["at_s"] == 100.0 and verdict["saved_s"] == 100.0  # 50 % of a 200 s budget
    assert verdict["loss"] == pytest.approx(3.1) and verdict["incumbent_loss"] == pytest.approx(3.0)
    assert verdict["reason"] == ("smoothed training loss 3.1000 trails the incumbent's 3.0000 by more than "
                                 "0.05 at 100 s of 200 s")
    assert len(watch.points) == 5 and watch.points[-1] == (100.0, 3.1)


def test_warmup_is_a_share_of_the_budget():
    assert run(LossWatch(FLAT, budget_s=100, warmup=0.0, margin=0.05), [3.1] * 10) == [30.0]
    assert run(LossWatch(FLAT, budget_s=100, warmup=0.5, margin=0.05), [3.1] * 10) == [70.0]
    assert run(LossWatch(FLAT, budget_s=100), [3.1] * 10) == [50.0]  # default warm-up 0.3
    assert run(LossWatch(FLAT, budget_s=100, warmup=0.29, margin=0.05), [3.1] * 10) == [50.0]


def test_the_margin_is_strict_and_a_line_within_it_starts_the_count_again():
    assert run(LossWatch(FLAT, budget_s=100, margin=0.1), [3.09] * 10) == []
    assert run(LossWatch(FLAT, budget_s=100, margin=0.1), [3.11] * 10) == [50.0]
    assert run(LossWatch(FLAT, budget_s=100), [3.04] * 10) == []  # default margin 0.05
    assert run(LossWatch(FLAT, budget_s=100), [3.06] * 10) == [50.0]
    # smoothed, the 2.0 at 60 % brings the run back within the margin for one line:
    # behind at 40, 50, not at 60, behind again at 70, 80, 90 -> stopped at 90, not 70
    losses = [3.0, 3.0, 3.0, 3.6, 3.6, 2.0, 3.6, 3.6, 3.6, 3.6]
    assert run(LossWatch(FLAT, budget_s=100, margin=0.05), losses) == [90.0]


def test_ahead_or_level_is_never_stopped_and_a_stopped_run_says_so_once():
    assert run(LossWatch(FLAT, budget_s=100), [2.5] * 10) == []
    watch = LossWatch(FLAT, budget_s=100)
    assert run(watch, [4.0] * 10) == [50.0]  # and not again at 60, 70, ...
    assert watch.verdict["at_s"] == 50.0


def test_outside_the_incumbents_curve_nothing_is_judged():
    short = [(0.0, 3.0), (20.0, 3.0)]  # the incumbent logged only up to 20 s: two lines judged
    assert run(LossWatch(short, budget_s=100, warmup=0.0), [5.0] * 10) == []
    assert run(LossWatch([(0.0, 3.0), (30.0, 3.0)], budget_s=100, warmup=0.0), [5.0] * 10) == [30.0]
    assert run(LossWatch([], budget_s=100, warmup=0.0), [5.0] * 10) == []


def test_saved_time_is_never_negative():
    watch = LossWatch(FLAT, budget_s=50, warmup=0.0)
    stops = [pct for pct in (150, 160, 170) if watch.feed(step(pct, 9.0))]  # past 100 %: over the budget
    assert stops == [170]
    assert watch.verdict["at_s"] == 85.0 and watch.verdict["saved_s"] == 0.0


def test_level_with_the_incumbent_is_not_behind_even_with_no_margin():
    """A run that repeats the incumbent's losses at its times trails by exactly 0: not more
    than a margin of 0."""
    budget = 100.0
    losses = [4.0, 3.5, 3.2, 3.0, 2.9, 2.8]
    incumbent = [(pct / 100.0 * budget, loss) for pct, loss in zip(range(10, 70, 10), losses)]
    watch = LossWatch(incumbent, budget_s=budget, warmup=0.0, margin=0.0)
    assert [pct for pct, loss in zip(range(10, 70, 10), losses) if watch.feed(step(pct, loss))] == []
    watch = LossWatch(incumbent, budget_s=budget, warmup=0.0, margin=0.0)
    assert [pct for pct, loss in zip(range(10, 70, 10), losses) if watch.feed(step(pct, loss + 1e-9))] == [30]


def test_a_time_on_the_curve_reads_its_own_point_exactly():
    """Not an interpolation that rounds: after a huge loss (a diverged step) the next point
    still reads its own value."""
    curve = [(0.0, 1e16), (1.0, 1.0), (2.0, 0.5)]
    assert at(curve, 1.0) == 1.0 and at(curve, 2.0) == 0.5
