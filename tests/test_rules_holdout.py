"""The holdout shard's rules (cockpit.rules.holdout): the run's environment, reading the
score back, and the divergence warning."""

from __future__ import annotations

import json
import math

import pytest

from cockpit.rules.holdout import BEST_ENV, OUT_ENV, divergence, holdout_env, read_holdout


def test_the_environment_names_the_file_and_the_best_to_beat(tmp_path):
    path = tmp_path / "holdout.json"
    assert OUT_ENV == "COCKPIT_HOLDOUT_OUT" and BEST_ENV == "COCKPIT_BEST_VAL_BPB"  # the harness reads these
    assert holdout_env(path, None) == {OUT_ENV: str(path)}  # the baseline: always scored
    env = holdout_env(path, 1)
    assert env == {OUT_ENV: str(path), BEST_ENV: "1.0"}
    assert float(holdout_env(path, 0.9979123456789)[BEST_ENV]) == 0.9979123456789  # exact, not rounded
    assert holdout_env(path, 0.0)[BEST_ENV] == "0.0"  # a best of 0 is a best, not "none"


@pytest.mark.parametrize("content, expected", [
    ({"holdout_bpb": 1.0123, "tokens": 10, "seconds": 1.5}, 1.0123),
    ({"holdout_bpb": 1}, 1.0),
    ({"holdout_bpb": float("nan")}, None),
    ({"holdout_bpb": float("inf")}, None),
    ({"holdout_bpb": "1.0"}, None),
    ({"tokens": 10}, None),
    ([1.0], None),
])
def test_the_score_is_read_once_and_the_file_removed(tmp_path, content, expected):
    path = tmp_path / "holdout.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    value = read_holdout(path)
    assert value == expected and (value is None or type(value) is float)
    assert not path.exists()


def test_a_missing_or_broken_file_is_no_score(tmp_path):
    path = tmp_path / "holdout.json"
    assert read_holdout(path) is None  # never written: not scored
    path.write_text('{"holdout_bpb": 1.0', encoding="utf-8")
    assert read_holdout(path) is None and not path.exists()
    path.write_bytes(b'{"holdout_bpb": 1.5}')
    assert read_holdout(path) == 1.5


def test_divergence_is_said_with_its_numbers():
    said = divergence(1.50, 1.60, 1.40, 1.59, 0.01, 0.01)
    noise = 2 * math.hypot(0.01, 0.01)
    assert said == (f"val_bpb and holdout_bpb move apart: since the baseline val_bpb improved by 0.100000 but "
                    f"holdout_bpb by +0.010000 (gap 0.090000 > noise {noise:.6f}); the ratchet may be fitting "
                    "the validation shard")
    worse = divergence(1.50, 1.60, 1.40, 1.65, 0.01, 0.0)
    assert worse is not None and "holdout_bpb by -0.050000" in worse


def test_no_divergence_inside_the_noise_or_without_one():
    # exactly at the noise (binary fractions: gap 0.25 == noise 2 x 0.125) is not beyond it
    assert divergence(1.5, 1.5, 1.25, 1.5, 0.125, 0.0) is None
    assert divergence(1.5, 1.5, 1.2499, 1.5, 0.125, 0.0) is not None
    assert divergence(1.5, 1.5, 1.0, 1.5, 0.0, 0.0) is None  # no noise floor: nothing to judge by
    assert divergence(1.5, 1.5, 1.0, 1.5, 0.0, 0.01) is not None  # holdout noise alone is a noise
    assert divergence(1.5, 1.5, 1.4, 1.4, 0.01, 0.01) is None  # both moved together
