"""cockpit.rules.fleet_rule: a fleet run is kept iff its parent is still the incumbent and it
beats it; a run that beat its own parent after the incumbent moved is a stale discard whose
change is re-applied; a crash is a crash; cockpit.rules.dedupe's release."""

import pytest

from cockpit.rules.dedupe import TriedPrograms
from cockpit.rules.fleet_rule import STALE, fleet_verdict
from cockpit.rules.noise import KeepRule

STRICT = KeepRule()
NOISY = KeepRule(0.0, 0.01)  # sigma 0.01: a keep needs 2 sigma = 0.02 better


@pytest.mark.parametrize("val, parent, parent_val, incumbent, incumbent_val, rule, expected", [
    (1.00, "a", 1.10, "a", 1.10, STRICT, ("keep", "", False)),      # on the incumbent, better
    (1.20, "a", 1.10, "a", 1.10, STRICT, ("discard", "", False)),   # on the incumbent, worse
    (1.09, "a", 1.10, "a", 1.10, NOISY, ("discard", "", False)),    # better, within the noise
    (1.05, "a", 1.10, "b", 1.00, STRICT, ("discard", STALE, True)),  # beat its parent, incumbent moved
    (0.90, "a", 1.10, "b", 1.00, STRICT, ("discard", STALE, True)),  # even beating the new one: never kept untested
    (1.20, "a", 1.10, "b", 1.00, STRICT, ("discard", "", False)),   # lost to its own parent
    (1.095, "a", 1.10, "b", 1.00, NOISY, ("discard", "", False)),   # its gain on its parent is noise
    (None, "a", 1.10, "a", 1.10, STRICT, ("crash", "", False)),
    (None, "a", 1.10, "b", 1.00, STRICT, ("crash", "", False)),
    (1.30, "base", None, "base", None, STRICT, ("keep", "", False)),  # the baseline: nothing to beat
])
def test_the_fleet_verdict(val, parent, parent_val, incumbent, incumbent_val, rule, expected):
    verdict = fleet_verdict(val, parent, parent_val, incumbent, incumbent_val, rule)
    assert (verdict.status, verdict.mark, verdict.rebase) == expected


def test_a_released_program_is_new_again():
    tried = TriedPrograms()
    tried.started("LR = 0.04\n", 3)
    assert tried.refusal("LR = 0.04  # same program\n") == "the same train.py is in flight as #3"
    tried.released("LR = 0.04\n")
    assert tried.refusal("LR = 0.04\n") is None and tried.in_flight() == []
