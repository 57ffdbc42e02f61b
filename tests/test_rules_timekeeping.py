"""Where a session's seconds go (cockpit.rules.timekeeping): a TimeKeeper on a hand-driven clock."""

from __future__ import annotations

import pytest

from cockpit.rules.timekeeping import IDLE_KINDS, RUN_KINDS, TimeKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(budget: float = 300.0) -> tuple[TimeKeeper, Clock]:
    clock = Clock()
    return TimeKeeper(budget, clock=clock), clock


def test_before_any_run_the_session_is_empty():
    tk, clock = keeper()
    clock.now += 50
    figures = tk.session()
    assert figures["wall_s"] == 0.0 and figures["idle_share"] == 0.0 and figures["experiments_per_hour"] == 0.0
    assert figures["experiments"] == 0 and figures["ideal_per_hour"] == 12.0
    assert all(figures[k] == 0.0 for k in (*IDLE_KINDS, "overhead_s", *RUN_KINDS))
    assert TimeKeeper(0.0, clock=clock).session()["ideal_per_hour"] == 0.0  # no budget: no ideal rate


def test_the_baseline_has_no_gap_and_starts_the_clock():
    tk, clock = keeper()
    with tk.waiting("wait_model_s"):
        clock.now += 7  # before the baseline: not part of any gap
    gap = tk.run_started()
    assert gap == {"gap_s": 0.0, "wait_model_s": 0.0, "wait_human_s": 0.0, "paused_s": 0.0, "git_s": 0.0,
                   "overhead_s": 0.0}
    clock.now += 300
    tk.run_ended()
    assert tk.session()["wall_s"] == 300.0


def test_a_gap_splits_into_waits_and_overhead():
    tk, clock = keeper()
    tk.run_started()
    clock.now += 300
    tk.run_ended()
    with tk.waiting("wait_model_s"):
        clock.now += 20
    with tk.waiting("wait_human_s"):
        clock.now += 5
    with tk.waiting("paused_s"):
        clock.now += 3
    with tk.waiting("git_s"):
        clock.now += 2  # git is overhead, counted apart but not subtracted
    clock.now += 4
    gap = tk.run_started()
    assert gap["gap_s"] == pytest.approx(34.0)
    assert (gap["wait_model_s"], gap["wait_human_s"], gap["paused_s"], gap["git_s"]) == (20.0, 5.0, 3.0, 2.0)
    assert gap["overhead_s"] == pytest.approx(6.0)
    # the next gap starts empty
    clock.now += 300
    tk.run_ended()
    clock.now += 1
    assert tk.run_started() == {"gap_s": 1.0, "wait_model_s": 0.0, "wait_human_s": 0.0, "paused_s": 0.0,
                                "git_s": 0.0, "overhead_s": 1.0}


def test_a_wait_that_raises_is_still_counted():
    tk, clock = keeper()
    with pytest.raises(RuntimeError):
        with tk.waiting("wait_human_s"):
            clock.now += 9
            raise RuntimeError("stop")
    tk.run_started()  # baseline: drops the gap
    with pytest.raises(RuntimeError):
        with tk.waiting("wait_human_s"):
            clock.now += 9
            raise RuntimeError("stop")
    assert tk.run_started()["wait_human_s"] == 9.0


def test_overhead_is_never_negative():
    """The agent may be asked during a run: its wait then starts before the gap does."""
    tk, clock = keeper()
    tk.run_started()
    with tk.waiting("wait_model_s"):
        clock.now += 6
        tk.run_ended()
        clock.now += 4
    gap = tk.run_started()
    assert gap["gap_s"] == 4.0 and gap["wait_model_s"] == 10.0 and gap["overhead_s"] == 0.0


def test_a_run_started_again_without_an_end_has_a_zero_gap():
    tk, clock = keeper()
    tk.run_started()
    clock.now += 50
    assert tk.run_started()["gap_s"] == 0.0


def test_accounts_add_up_to_the_session_totals():
    tk, clock = keeper(budget=300.0)
    tk.run_started()
    clock.now += 320
    tk.run_ended()
    own = tk.account({"startup_s": 15.0, "training_s": 300.0, "eval_s": 5.0, "wall_s": 320.0}, propose_s=2.5)
    assert own == {"propose_s": 2.5, "gap_s": 0.0, "wait_model_s": 0.0, "wait_human_s": 0.0, "paused_s": 0.0,
                   "git_s": 0.0, "overhead_s": 0.0, "startup_s": 15.0, "training_s": 300.0, "eval_s": 5.0,
                   "wall_s": 320.0}
    with tk.waiting("wait_model_s"):
        clock.now += 30
    clock.now += 10
    tk.run_started()
    clock.now += 320
    tk.run_ended()
    second = tk.account({"training_s": 300, "startup_s": 20})
    assert second["gap_s"] == 40.0 and second["wait_model_s"] == 30.0 and second["overhead_s"] == 10.0
    assert second["eval_s"] == 0.0 and second["wall_s"] == 0.0 and second["propose_s"] == 0.0
    assert type(second["training_s"]) is float
    # a re-run: its training counts as the GPU's work, but not as an experiment
    tk.account({"training_s": 100.0}, experiment=False)
    figures = tk.session()
    assert figures["experiments"] == 2
    assert figures["training_s"] == 700.0 and figures["startup_s"] == 35.0 and figures["eval_s"] == 5.0
    assert figures["wait_model_s"] == 30.0 and figures["overhead_s"] == 10.0
    wall = 320 + 40 + 320
    assert figures["wall_s"] == wall
    assert figures["idle_share"] == pytest.approx(1 - 700 / wall)
    assert figures["experiments_per_hour"] == pytest.approx(2 * 3600 / wall)
    assert figures["ideal_per_hour"] == 12.0


def test_an_account_uses_its_own_gap_once():
    tk, clock = keeper()
    tk.run_started()
    tk.run_ended()
    clock.now += 8
    tk.run_started()
    assert tk.account({})["gap_s"] == 8.0
    assert tk.account({})["gap_s"] == 0.0  # no run started since: no gap to charge


def test_the_defaults_and_sub_second_figures():
    clock = Clock()
    tk = TimeKeeper(clock=clock)
    assert tk.budget_s == 0.0 and tk.session()["ideal_per_hour"] == 0.0  # no budget by default
    assert TimeKeeper(0.5, clock=clock).session()["ideal_per_hour"] == 7200.0
    tk.run_started()
    clock.now += 0.5
    tk.run_ended()
    tk.account({"training_s": 0.25})
    figures = tk.session()
    assert figures["wall_s"] == 0.5 and figures["experiments_per_hour"] == 7200.0
    assert figures["idle_share"] == 0.5


def test_an_account_without_a_run_has_an_empty_gap():
    tk, _ = keeper()
    assert tk.account({}, propose_s=1.0) == {"propose_s": 1.0, "gap_s": 0.0, "wait_model_s": 0.0,
                                             "wait_human_s": 0.0, "paused_s": 0.0, "git_s": 0.0,
                                             "overhead_s": 0.0, "startup_s": 0.0, "training_s": 0.0,
                                             "eval_s": 0.0, "wall_s": 0.0}
