"""The noise floor and the keep rule (cockpit.rules.noise), at the boundaries the module
docstring sets: the threshold, the confirming re-run, the marks and the rebuilt rule."""

from __future__ import annotations

import math
import statistics

import pytest

from cockpit.rules.noise import (CONFIRM_FROM, CONFIRMED, WITHIN_NOISE, Judgement, KeepRule, NoiseFloor, judge, noise_mark,
                                 rule_of_session, threshold)


def test_the_floor_is_the_sample_deviation_of_its_runs():
    floor = NoiseFloor((1.0, 1.5))
    assert floor.sigma == pytest.approx(statistics.stdev([1.0, 1.5]))  # n - 1: 0.3536, not 0.25
    assert NoiseFloor((1.0,)).sigma == 0.0 and NoiseFloor(()).sigma == 0.0
    assert NoiseFloor((1.0, 1.5), (2.0, 2.5, 3.0)).holdout_sigma == pytest.approx(0.5)
    assert NoiseFloor((1.0, 1.5), (2.0,)).holdout_sigma == 0.0 and floor.holdout_sigma == 0.0


def test_the_floors_record():
    record = NoiseFloor((1.0, 1.5), (2.0, 2.5)).as_record("dec06")
    assert record == {"kind": "noise-floor", "tag": "dec06", "runs": [1.0, 1.5],
                      "sigma": pytest.approx(statistics.stdev([1.0, 1.5])), "mean": 1.25, "holdout_runs": [2.0, 2.5],
                      "holdout_sigma": pytest.approx(statistics.stdev([2.0, 2.5]))}
    assert NoiseFloor(()).as_record("t")["mean"] is None


def test_the_threshold():
    assert threshold(0.0, 0.01) == pytest.approx(0.02)
    assert threshold(0.0, 0.01, runs=4) == pytest.approx(0.01)  # 2 sigma / sqrt(4)
    assert threshold(0.0, 0.01, runs=0) == pytest.approx(0.02)  # no runs reads as one
    assert threshold(0.03, 0.01) == 0.03 and threshold(0.01, 0.01) == pytest.approx(0.02)


def test_judge_keeps_only_beyond_the_threshold_and_confirms_a_close_one():
    # sigma 0.25: threshold(1) = 0.5, threshold(2) = 0.3536 (binary fractions: exact boundaries)
    assert judge(2.0, (1.25,), 0.0, 0.25).verdict == "keep"
    assert judge(2.0, (1.5,), 0.0, 0.25).verdict == "confirm"  # delta 0.5 == threshold: not beyond
    assert judge(2.0, (1.7,), 0.0, 0.25).verdict == "confirm"  # 1.2 sigma better
    assert judge(2.0, (1.75,), 0.0, 0.25).verdict == "discard"  # exactly CONFIRM_FROM = 1 sigma: not beyond
    assert judge(2.0, (1.9,), 0.0, 0.25).verdict == "discard"  # 0.4 sigma: a re-run would not change it
    assert judge(2.0, (1.9,), 0.0, 0.25, can_confirm=False).threshold == 0.5
    assert CONFIRM_FROM == 1.0 and judge(2.0, (1.74,), 0.0, 0.25).verdict == "confirm"
    assert judge(2.0, (2.0,), 0.0, 0.25).verdict == "discard"  # no improvement: nothing to confirm
    assert judge(2.0, (1.5,), 0.0, 0.25, can_confirm=False).verdict == "discard"
    assert judge(2.0, (1.5,), 0.0, 0.0).verdict == "keep"  # no noise: strict rule
    assert judge(2.0, (1.5,), 0.5, 0.0).verdict == "discard"  # a fixed threshold, no sigma: never confirm
    assert judge(2.0, (1.75, 1.75), 0.0, 0.25).verdict == "discard"  # two runs are never confirmed again
    assert judge(2.0, (1.5, 1.75), 0.0, 0.25).verdict == "keep"  # mean 1.625: 0.375 > 0.3536
    judged = judge(2.0, (1.5, 1.75), 0.0, 0.25)
    assert judged.delta == 0.375 and judged.threshold == pytest.approx(0.5 / math.sqrt(2))
    assert judged.sigma == 0.25 and judged.runs == (1.5, 1.75)


def test_a_judgement_in_sigmas_and_as_a_record():
    judged = judge(2.0, (1.5,), 0.0, 0.25)
    assert judged.delta_sigma == -2.0  # better by two sigma reads -2
    assert judge(2.0, (2.5,), 0.0, 0.25).delta_sigma == 2.0
    assert judge(2.0, (1.5,), 0.0, 0.0).delta_sigma is None
    assert judged.as_record() == {"delta": 0.5, "threshold": 0.5, "sigma": 0.25, "runs": [1.5],
                                  "delta_sigma": -2.0, "verdict": "confirm"}


def test_the_marks():
    assert WITHIN_NOISE == " [within noise]" and CONFIRMED == " [confirmed]"  # results.tsv says these
    close = Judgement("discard", 0.1, 0.5, 0.25, (1.9,))
    assert noise_mark("discard", close) == WITHIN_NOISE
    assert noise_mark("discard", Judgement("discard", 0.0, 0.5, 0.25, (2.0,))) == ""
    assert noise_mark("discard", Judgement("discard", -0.1, 0.5, 0.25, (2.1,))) == ""
    assert noise_mark("keep", Judgement("keep", 0.4, 0.35, 0.25, (1.5, 1.7))) == CONFIRMED
    assert noise_mark("keep", Judgement("keep", 0.6, 0.5, 0.25, (1.4,))) == ""
    assert noise_mark("crash", close) == "" and noise_mark("discard", None) == ""


def test_the_keep_rule():
    strict = KeepRule()
    assert (strict.keep_threshold, strict.sigma) == (0.0, 0.0)
    assert strict.decide(None, 1.0) == ("crash", None)
    assert strict.decide(float("nan"), 1.0) == ("crash", None)
    assert strict.decide(float("inf"), 1.0) == ("crash", None)
    assert strict.decide(1.0, None) == ("keep", None)  # the baseline
    status, judged = strict.decide(0.999, 1.0)
    assert status == "keep" and judged.delta == pytest.approx(0.001)
    assert strict.decide(1.0, 1.0)[0] == "discard"
    noisy = KeepRule(0.0, 0.25)
    assert noisy.decide(1.75, 2.0)[0] == "discard"  # close, but no re-run possible by default
    assert noisy.decide(1.7, 2.0, can_confirm=True)[0] == "confirm"
    assert noisy.decide(1.8, 2.0, can_confirm=True)[0] == "discard"  # under 1 sigma: no re-run
    status, judged = noisy.decide(1.5, 2.0, confirm=(1.75,))
    assert status == "keep" and judged.runs == (1.5, 1.75)
    assert KeepRule(0.5, 0.0).decide(1.5, 2.0)[0] == "discard"


def test_the_rule_of_a_session_is_rebuilt_from_its_last_floor():
    records = [
        {"kind": "noise-floor", "tag": "a", "sigma": 0.01, "runs": [1.0, 1.1]},
        {"kind": "experiment", "tag": "a", "sigma": 9.0},
        {"kind": "noise-floor", "tag": "b", "sigma": 0.5},
        {"kind": "noise-floor", "tag": "a", "sigma": 0.02, "runs": [1.0, 1.1]},
    ]
    assert rule_of_session(records, "a", 0.003) == KeepRule(0.003, 0.02)
    assert rule_of_session(records, "b", 0.0) == KeepRule(0.0, 0.5)
    assert rule_of_session(records, "c", 0.001) == KeepRule(0.001, 0.0)  # no floor: strict (or fixed) rule
    assert rule_of_session([], "a", 0.0) == KeepRule()


@pytest.mark.parametrize("sigma", [None, "0.02", True, float("nan"), float("inf")])
def test_a_floor_without_a_usable_sigma_falls_back_to_its_runs(sigma):
    record = {"kind": "noise-floor", "tag": "a", "runs": [1.0, 1.5, "x", True, float("nan"), None]}
    if sigma is not None:
        record["sigma"] = sigma
    rule = rule_of_session([record], "a", 0.0)
    assert rule.sigma == pytest.approx(statistics.stdev([1.0, 1.5]))  # only the finite numbers
    assert type(rule.sigma) is float


def test_a_floor_with_too_few_runs_and_no_sigma_is_no_floor():
    assert rule_of_session([{"kind": "noise-floor", "tag": "a", "runs": [1.0]}], "a", 0.0).sigma == 0.0
    assert rule_of_session([{"kind": "noise-floor", "tag": "a", "runs": "1.0 1.5"}], "a", 0.0).sigma == 0.0
    assert rule_of_session([{"kind": "noise-floor", "tag": "a"}], "a", 0.0).sigma == 0.0
    # an integer sigma is a sigma
    assert rule_of_session([{"kind": "noise-floor", "tag": "a", "sigma": 1, "runs": [1.0, 5.0]}], "a", 0.0).sigma == 1.0
    assert rule_of_session([{"kind": "noise-floor", "tag": "a", "sigma": 0, "runs": [1.0, 5.0]}], "a", 0.0).sigma == 0.0
