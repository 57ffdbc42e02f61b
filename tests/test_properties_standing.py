"""Property-based tests (hypothesis) of the running-best replay, cockpit.rules.standing.

The expected values follow the module docstring's rules, not its output: a keep
with a val_bpb is pushed and is the incumbent (the running best is the incumbent's
val_bpb, even when a forced keep is worse); a " [reverted]" discard on the
incumbent's commit with a keep below it pops it; anything else changes nothing.
Rows are numbered 0, 1, 2, ... (one session), as results rows of one session are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.rules.standing import running_best

SETTINGS = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Row:
    """A results row in the shape the module reads."""

    experiment: int
    commit: str
    val_bpb: float
    status: str
    description: str


def commit_of(n: int) -> str:
    return f"{n:07x}abc"  # unique in its first 7 characters, as the module compares


BPB = st.floats(min_value=0.5, max_value=2.0, allow_nan=False, allow_infinity=False)
STATUS = st.sampled_from(["keep", "discard", "crash", "KEEP", "Discard", "CRASH"])


@st.composite
def plain_rows(draw, max_size=25):
    """Rows of any keep/discard/crash statuses (keeps may be worse: forced keeps),
    a crash's val_bpb 0.0 or a number; no revert marks."""
    specs = draw(st.lists(st.tuples(STATUS, BPB, st.booleans()), min_size=1, max_size=max_size))
    rows = []
    for n, (status, value, zero) in enumerate(specs):
        if status.lower() == "crash" and zero:
            value = 0.0
        rows.append(Row(n, commit_of(n), value, status, f"try {n}"))
    return rows


@st.composite
def ratchet_rows(draw, max_size=25):
    """Rows as the ratchet writes them without human controls: a run is kept only when
    its val_bpb is strictly below the best so far (the first one always), else
    discarded; some runs crash (val_bpb 0.0)."""
    specs = draw(st.lists(st.tuples(BPB, st.booleans()), min_size=1, max_size=max_size))
    rows, best = [], None
    for n, (value, crashed) in enumerate(specs):
        if crashed and n > 0:
            rows.append(Row(n, commit_of(n), 0.0, "crash", f"try {n}"))
        elif best is None or value < best:
            best = value
            rows.append(Row(n, commit_of(n), value, "keep", f"try {n}"))
        else:
            rows.append(Row(n, commit_of(n), value, "discard", f"try {n}"))
    return rows


@SETTINGS
@given(ratchet_rows())
def test_ratchet_running_best_never_increases_and_is_the_lowest_keep(rows):
    """Over ratchet keep/discard/crash rows the best never increases and is the lowest kept val_bpb."""
    standings = running_best(rows)
    bests = [s.best for s in standings]
    assert all(b is not None for b in bests)  # the first row is a keep
    assert all(later <= earlier for earlier, later in zip(bests, bests[1:]))
    for k, standing in enumerate(standings):
        assert standing.best == min(r.val_bpb for r in rows[:k + 1] if r.status == "keep")


@SETTINGS
@given(plain_rows())
def test_running_best_is_the_last_keep_even_when_worse(rows):
    """Without reverts the best after each row is the val_bpb of the last keep so far (None before one)."""
    expected: Optional[float] = None
    incumbent = None
    for row, standing in zip(rows, running_best(rows), strict=True):
        if row.status.lower() == "keep":
            expected, incumbent = row.val_bpb, row
        assert standing.best == expected
        assert standing.incumbent == incumbent
        assert standing.commit == (incumbent.commit if incumbent else "")


@SETTINGS
@given(plain_rows())
def test_discards_and_crashes_never_change_the_standing(rows):
    """A discard or crash row leaves the best, the incumbent and the baseline as they were."""
    standings = running_best(rows)
    for k in range(1, len(rows)):
        if rows[k].status.lower() in ("discard", "crash"):
            before, after = standings[k - 1], standings[k]
            assert (after.best, after.incumbent, after.baseline) == (before.best, before.incumbent, before.baseline)
            assert after.change == ""


@SETTINGS
@given(plain_rows(), st.data())
def test_replaying_a_prefix_gives_the_prefix_of_the_replay(rows, data):
    """running_best of the first k rows equals the first k standings of the whole replay."""
    k = data.draw(st.integers(0, len(rows)))
    assert running_best(rows[:k]) == running_best(rows)[:k]


@SETTINGS
@given(ratchet_rows(max_size=10), BPB, st.data())
def test_a_revert_of_a_forced_keep_brings_the_previous_incumbent_back(rows, worse, data):
    """A forced keep becomes the incumbent even when worse; its " [reverted]" discard restores the one before."""
    before = running_best(rows)[-1]
    n = len(rows)
    earlier = data.draw(st.integers(0, n - 1))
    forced = Row(n, commit_of(n), worse, "keep", f"try {earlier} [forced keep of #{earlier}]")
    revert = Row(n + 1, forced.commit, worse, "discard", f"try {earlier} [forced keep of #{earlier}] [reverted]")
    standings = running_best(rows + [forced, revert])
    assert standings[-2].best == worse and standings[-2].incumbent == forced and standings[-2].change == "keep"
    assert standings[-1].best == before.best and standings[-1].incumbent == before.incumbent
    assert standings[-1].change == "revert" and standings[-1].reverted == forced


@SETTINGS
@given(ratchet_rows(max_size=10))
def test_the_baseline_is_never_reverted(rows):
    """A " [reverted]" discard on the commit of the session's only keep changes nothing."""
    rows = [row for row in rows if row.status != "keep" or row.experiment == 0]  # the baseline is the only keep
    n = len(rows)
    revert = Row(n, rows[0].commit, rows[0].val_bpb, "discard", "try 0 [reverted]")
    standings = running_best(rows + [revert])
    assert standings[-1].best == rows[0].val_bpb and standings[-1].incumbent == rows[0]
    assert standings[-1].change == ""
