"""The running best (cockpit.rules.standing), field by field: the row readers on rows that
lack attributes, sessions, deltas, baselines and reverts (the property tests in
tests/test_properties_standing.py check the incumbent over random histories)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

from cockpit.rules.standing import (REVERTED, Ladder, Standing, is_baseline, row_commit, running_best, scored,
                                    starts_session, status_of)


@dataclass(frozen=True)
class Row:
    status: str
    val_bpb: float
    commit: str
    description: str = ""
    experiment: Optional[int] = None


class Bare:
    """A row with no attributes at all."""


def test_status_reads_any_case_and_a_missing_status_is_empty():
    assert status_of(SimpleNamespace(status=" KEEP ")) == "keep"
    assert status_of(Bare()) == "" and status_of(SimpleNamespace(status=None)) == ""


def test_scored_is_a_positive_finite_number_only():
    assert scored(SimpleNamespace(val_bpb=1)) == 1.0 and type(scored(SimpleNamespace(val_bpb=1))) is float
    assert scored(SimpleNamespace(val_bpb=0.9979)) == 0.9979
    for value in (0.0, -1.0, float("nan"), float("inf"), True, "1.0", None):
        assert scored(SimpleNamespace(val_bpb=value)) is None, value
    assert scored(Bare()) is None


def test_a_baseline_is_read_from_the_commit_or_the_description():
    assert is_baseline(SimpleNamespace(commit=" Baseline ", description="first"))
    assert is_baseline(SimpleNamespace(commit="a1b2c3d", description="BASELINE [recovered]"))
    assert is_baseline(SimpleNamespace(commit="a1b2c3d", description="baseline [recovered] [x] "))
    assert not is_baseline(SimpleNamespace(commit="a1b2c3d", description="baseline again"))
    assert not is_baseline(SimpleNamespace(commit="a1b2c3d", description="[baseline]"))
    assert not is_baseline(SimpleNamespace(commit="a1b2c3d", description="lr 0.04"))
    assert not is_baseline(Bare()) and not is_baseline(SimpleNamespace(commit=None, description=None))
    assert is_baseline(SimpleNamespace(commit="baseline")) and is_baseline(SimpleNamespace(description="baseline"))


def test_a_session_starts_at_the_first_row_a_row_zero_or_an_unnumbered_baseline():
    numbered = SimpleNamespace(experiment=0, commit="a1b2c3d", description="x")
    assert starts_session(numbered, 0) and starts_session(numbered, 5)
    assert starts_session(SimpleNamespace(experiment=3), 0)  # the first row always does
    assert not starts_session(SimpleNamespace(experiment=3, commit="baseline"), 2)  # its number decides
    assert starts_session(SimpleNamespace(experiment=None, commit="baseline"), 2)
    assert not starts_session(SimpleNamespace(experiment=None, commit="a1b2c3d", description="x"), 2)
    # True is not the number 1 (nor 0): a bool falls back to reading the row
    assert starts_session(SimpleNamespace(experiment=False, commit="baseline"), 2)
    assert not starts_session(SimpleNamespace(experiment=False, commit="a1b2c3d", description="x"), 2)
    assert starts_session(Bare(), 0) and not starts_session(Bare(), 1)


def test_row_commit():
    assert row_commit(SimpleNamespace(commit="a1b2c3d")) == "a1b2c3d"
    assert row_commit(Bare()) == "" and row_commit(SimpleNamespace(commit=None)) == ""


def test_the_standing_of_a_session_field_by_field():
    rows = [Row("keep", 1.0, "baseline", "baseline", 0), Row("keep", 0.9, "b000001", "lr up", 1),
            Row("discard", 0.95, "c000002", "worse", 2), Row("keep", 0.8, "d000003", "deeper", 3)]
    out = running_best(rows)
    assert [s.best for s in out] == [1.0, 0.9, 0.9, 0.8]
    assert [s.commit for s in out] == ["baseline", "b000001", "b000001", "d000003"]
    assert [s.incumbent for s in out] == [rows[0], rows[1], rows[1], rows[3]]
    assert [s.baseline for s in out] == [1.0] * 4
    assert [s.session for s in out] == [0] * 4
    assert [s.change for s in out] == ["keep", "keep", "", "keep"]
    assert out[0].delta is None and out[2].delta is None
    assert abs(out[1].delta - (-0.1)) < 1e-12 and abs(out[3].delta - (-0.1)) < 1e-12
    assert all(s.reverted is None for s in out)


def test_a_forced_keep_of_a_worse_run_has_a_positive_delta():
    out = running_best([Row("keep", 1.0, "baseline"), Row("keep", 1.25, "b000001", "x [forced]")])
    assert out[1].delta == 0.25 and out[1].best == 1.25 and out[1].baseline == 1.0


def test_before_any_keep_nothing_stands():
    out = running_best([Row("crash", 0.0, "baseline", "baseline", 0), Row("keep", 0.0, "b000001", "x", 1)])
    assert [(s.best, s.commit, s.incumbent, s.baseline, s.change) for s in out] == [(None, "", None, None, "")] * 2
    assert running_best([]) == []


def test_the_baseline_is_the_sessions_first_keep():
    out = running_best([Row("crash", 0.0, "baseline", "baseline", 0), Row("keep", 1.2, "b000001", "x", 1),
                        Row("keep", 1.1, "c000002", "y", 2)])
    assert [s.baseline for s in out] == [None, 1.2, 1.2]
    assert out[1].delta is None  # the session's first keep has nothing to improve on


def test_each_session_starts_from_its_own_baseline():
    rows = [Row("keep", 1.0, "baseline", "baseline", 0), Row("keep", 0.9, "b000001", "x", 1),
            Row("keep", 1.3, "baseline", "baseline", 0), Row("discard", 1.4, "c000002", "y", 1),
            Row("keep", 1.2, "d000003", "z", 0)]
    out = running_best(rows)
    assert [s.session for s in out] == [0, 0, 1, 1, 2]
    assert [s.baseline for s in out] == [1.0, 1.0, 1.3, 1.3, 1.2]
    assert out[2].delta is None and out[2].best == 1.3  # not compared with the last session's 0.9
    # unnumbered rows (results.tsv of upstream): a baseline row starts a session
    flat = [SimpleNamespace(status="keep", val_bpb=1.0, commit="a000000", description="baseline"),
            SimpleNamespace(status="keep", val_bpb=0.9, commit="b000001", description="x"),
            SimpleNamespace(status="keep", val_bpb=1.1, commit="c000002", description="baseline")]
    assert [s.session for s in running_best(flat)] == [0, 0, 1]


def test_a_revert_pops_the_incumbent_only():
    rows = [Row("keep", 1.0, "baseline", "baseline", 0), Row("keep", 0.9, "b000001abc", "x", 1),
            Row("discard", 0.9, "B000001", "x " + REVERTED + "  ", 2)]
    out = running_best(rows)
    assert out[2].change == "revert" and out[2].reverted == rows[1]
    assert out[2].best == 1.0 and out[2].commit == "baseline" and out[2].incumbent == rows[0]
    assert out[2].delta is None and out[2].baseline == 1.0
    # not marked at the end, another commit, or no keep below: nothing happens
    for row in (Row("discard", 0.9, "b000001", "[reverted] x", 2), Row("discard", 0.9, "c000002", "x [reverted]", 2),
                Row("keep", 0.9, "b000001", "x [reverted]", 2)):
        assert running_best(rows[:2] + [row])[2].change != "revert"
    only_baseline = running_best([rows[0], Row("discard", 1.0, "baseline", "x [reverted]", 1)])
    assert only_baseline[1].change == "" and only_baseline[1].best == 1.0
    assert running_best(rows[:2] + [SimpleNamespace(status="discard", val_bpb=0.9, commit="b000001")])[2].change == ""


def test_the_ladder_folds_row_by_row():
    ladder = Ladder()
    assert ladder.best is None and ladder.stack == [] and ladder.session == -1 and ladder.rows == 0
    first = ladder.step(Row("keep", 1.0, "baseline", "baseline"))
    assert first == Standing(1.0, "baseline", Row("keep", 1.0, "baseline", "baseline"), 1.0, 0, "keep", None, None)
    ladder.step(Row("keep", 0.5, "b000001", "x"))
    assert ladder.rows == 2 and ladder.best == 0.5 and len(ladder.stack) == 2 and ladder.baseline == 1.0


def test_the_first_row_starts_session_zero_whatever_it_is():
    rows = [SimpleNamespace(status="discard", val_bpb=1.1, commit="a000000", description="x"),
            SimpleNamespace(status="keep", val_bpb=1.0, commit="b000001", description="y")]
    assert [s.session for s in running_best(rows)] == [0, 0]
    assert running_best(rows)[1].baseline == 1.0
