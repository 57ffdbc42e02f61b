"""UI tests of the cockpit app with Pilot, driven by a scripted engine."""

from __future__ import annotations

import time

import pytest

from cockpit.app.widgets.results_table import FIXED_COLUMNS
from app_harness import Harness, ended, until
from cockpit.app.dialogs import ConfirmScreen
from cockpit.app import EngineEvent, StepsLogged
from cockpit.app.messages import Relay
from cockpit.row import Row
from cockpit.app.widgets import DiffView, LiveCurves, ResultsTable, StatusBar, TableRow
from cockpit.app.widgets.live_curves import MAX_POINTS, thin
from cockpit.app.widgets.staircase import StaircasePlot, staircase, step_line
from cockpit.commands import Pause, Resume, Stop
from cockpit.events import EngineMessage, LogLine, StepLogged
from scripted_engine import DEFAULT_SCRIPT, Experiment

SIZES = [(80, 24), (160, 48)]


@pytest.mark.parametrize("size", SIZES)
async def test_session_renders_rows_log_and_status(size):
    harness = Harness()
    async with harness.app.run_test(size=size) as pilot:
        await until(pilot, ended(harness))
        assert harness.statuses() == ["keep", "keep", "discard", "crash"]
        table = harness.app.query_one(ResultsTable)
        status = [label for label, _ in FIXED_COLUMNS].index("status")
        assert "green" in str(table.get_row_at(0)[status].style)
        assert "red" in str(table.get_row_at(3)[status].style)
        assert table.cursor_row == 3  # the newest row is selected, so in view
        assert any(line.startswith("step 00004 100.0% │ loss 3.000000") for line in harness.log_lines())
        status = harness.status()
        assert "best 0.993200 (Δ -0.004700)" in status
        assert "■ ended: max-experiments · 4 experiments · q to quit │ $0.0063" in status


async def test_status_bar_shows_phase_and_time_left():
    harness = Harness(hold_in_training=1)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.pause()
        status = harness.status()
        assert "mar21 │ exp 1 │ training │ 2:30 left" in status
        assert "best 0.997900" in status and "● running" in status
        harness.engine.release.set()
        await until(pilot, ended(harness))


async def test_pause_then_resume():
    harness = Harness(hold_in_training=1)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("p")
        assert harness.engine.commands == [Pause()]
        assert "pausing after this experiment" in harness.status()
        harness.engine.release.set()
        await until(pilot, lambda: "paused · p to resume" in harness.status())
        assert "exp 2 │ paused" in harness.status()
        await pilot.press("p")
        assert harness.engine.commands == [Pause(), Resume()]
        await until(pilot, ended(harness))
        assert "paused" not in harness.status()
        assert len(harness.statuses()) == 4


@pytest.mark.parametrize("key", ["q", "ctrl+c", "ctrl+q"])
async def test_q_detaches_and_leaves_the_engine_running(key):
    harness = Harness(hold_in_training=1)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press(key)
        await until(pilot, lambda: not harness.app.is_running)
    assert harness.engine.commands == []  # no Stop: a daemon goes on


async def test_stop_asks_then_stops_the_session_and_waits_for_it():
    harness = Harness(hold_in_training=1, hold_stop=True)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("x")
        assert isinstance(harness.app.screen, ConfirmScreen)
        await pilot.press("n")
        assert harness.engine.commands == [] and not isinstance(harness.app.screen, ConfirmScreen)
        await pilot.press("x", "y")
        await until(pilot, lambda: harness.statuses()[-1:] == ["crash"])
        assert harness.engine.commands == [Stop()]
        assert "stopping…" in harness.status()
        assert harness.app.is_running and not harness.engine.finished
        await pilot.press("x")  # a second x only says it is still stopping
        assert harness.engine.commands == [Stop()] and not isinstance(harness.app.screen, ConfirmScreen)
        harness.engine.stop_release.set()
        await until(pilot, lambda: not harness.app.is_running)
        assert harness.engine.finished
    assert harness.engine.events[-1].reason == "stopped"


async def test_q_while_stopping_detaches_without_waiting():
    harness = Harness(hold_in_training=0, hold_stop=True)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("x", "y")
        assert "stopping…" in harness.status()
        await pilot.press("q")
        await until(pilot, lambda: not harness.app.is_running)
    assert harness.engine.commands == [Stop()]
    assert not harness.engine.stop_release.is_set()


async def test_quit_after_the_session_ended_exits_at_once():
    harness = Harness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        await pilot.press("q")
        await until(pilot, lambda: not harness.app.is_running)
    assert harness.engine.commands == []


async def test_burst_of_steps_is_absorbed():
    harness = Harness(script=DEFAULT_SCRIPT[:1], steps=5_000)
    started = time.monotonic()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        lines = harness.log_lines()
        steps = [line for line in lines if line.startswith("step ")]
        assert steps[-1].startswith("step 04999 100.0%")
        assert len(steps) < 100  # coalesced, not 5,000 writes
        curves = harness.app.query_one(LiveCurves)
        assert curves.running.seen == 5_000  # ... but the curves took every step,
        assert len(curves.running) <= curves.running.limit + 1  # holding a bounded, evenly thinned few
        await pilot.press("2")
        await until(pilot, lambda: not curves.dirty)
    assert time.monotonic() - started < 3.0


def test_long_curves_are_thinned_for_plotting():
    xs = [float(i) for i in range(5_000)]
    ys = [float("nan") if i == 7 else 1.0 for i in range(5_000)]
    thin_xs, thin_ys = thin(xs, ys)
    assert len(thin_xs) <= MAX_POINTS + 1 and thin_xs[0] == 0.0 and thin_xs[-1] == 4_999.0
    assert thin(xs[:10], ys[:10]) == (xs[:7] + xs[8:10], [1.0] * 9)  # short: all finite points


async def test_history_rows_are_loaded():
    rows = [
        {"commit": "a1b2c3d", "val_bpb": "0.997900", "memory_gb": "44.0", "status": "keep", "description": "baseline"},
        {"commit": "b2c3d4e", "val_bpb": "0.990000", "memory_gb": "44.2", "status": "keep", "description": "warmdown"},
    ]
    harness = Harness(rows=rows, script=(), end_when_done=False)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine is not None and bool(harness.engine.events))
        assert harness.statuses() == ["keep", "keep"]
        assert "best 0.990000 (Δ -0.007900)" in harness.status()
        await pilot.press("q")
        await until(pilot, lambda: not harness.app.is_running)
    assert harness.engine.commands == []


async def test_engine_error_is_shown():
    harness = Harness(script=(), messages=(EngineMessage("agent unreachable", "error"),))
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        assert "error: agent unreachable" in harness.log_lines()
        assert any(n.message == "agent unreachable" for n in harness.app._notifications)


async def test_engine_crash_is_shown_and_q_exits():
    harness = Harness(fail_with=RuntimeError("boom"))
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        assert any("engine crashed: RuntimeError('boom')" in line for line in harness.log_lines())
        assert "engine gone" in harness.status()
        await pilot.press("q")
        await until(pilot, lambda: not harness.app.is_running)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_of_an_ended_session(snap_compare, size, tmp_path):
    program = tmp_path / "program.md"
    program.write_text("# program\n")
    harness = Harness(program_path=program)

    async def settle(pilot) -> None:
        await until(pilot, ended(harness))
        curves = harness.app.query_one(LiveCurves)
        await until(pilot, lambda: not (curves.dirty and curves.display))  # drawn where shown
        harness.clock.now += 3600  # four rows in an hour
        harness.app.query_one(StatusBar).refresh()

    assert snap_compare(harness.app, terminal_size=size, run_before=settle)


# ------------------------------------------------------------------ panes --


def test_relay_batches_steps_and_keeps_the_order():
    posted = []
    relay = Relay(posted.append)
    step = StepLogged(1, 0, 10.0, 3.0, 1.0, 300.0, 5000.0, 1.5, 1, 270.0)
    relay.emit(step)
    relay.emit(step)
    relay.emit(LogLine(1, "between"))
    relay.emit(step)
    assert [type(m) for m in posted] == [StepsLogged, EngineEvent, StepsLogged]
    assert len(posted[0].steps) == 2 and len(posted[2].steps) == 1
    assert relay.take(posted[2]) == [step]
    relay.emit(step)  # the handled batch is closed: a new one starts
    assert len(posted) == 4 and posted[2].steps == [step]


async def test_curves_hold_the_running_steps_and_the_incumbents():
    harness = Harness(hold_in_training=2)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.pause()
        curves = harness.app.query_one(LiveCurves)
        running, incumbent = curves.running, curves.incumbent
        assert running.experiment == 2 and incumbent.experiment == 1  # exp 1 is the last keep
        assert running.loss == [step.loss for step in harness.steps(2)]
        assert running.t == pytest.approx([30.0, 60.0, 90.0, 120.0, 150.0])  # half of a 300 s budget
        assert incumbent.loss == [step.loss for step in harness.steps(1)]
        assert incumbent.t[-1] == pytest.approx(300.0)
        await pilot.press("2")
        await until(pilot, lambda: not curves.dirty)
        # exp 2 at 150 s; exp 1 at its last step by then (120 s): equal training time
        assert curves.titles["loss"] == "train loss 3.3750 · incumbent 3.4500"
        assert curves.titles["tok_per_s"] == "tokens/s 5,537 · incumbent 5,637"
        harness.engine.release.set()
        await until(pilot, ended(harness))
        assert curves.incumbent.experiment == 1  # exp 2 was discarded


def test_staircase_running_minimum_is_the_min_of_kept_so_far():
    statuses = ["crash", "keep", "discard", "keep", "crash", "discard", "keep", "keep", "discard"]
    values = [0.0, 1.00, 1.20, 0.97, 0.0, 0.90, 0.95, 0.94, 0.93]
    rows = [TableRow(Row("c", v, 1.0, s, "", n)) for n, (s, v) in enumerate(zip(statuses, values))]
    data = staircase(rows)
    expected = []
    for n in range(1, len(rows)):
        kept = [r.val_bpb for r in rows[: n + 1] if r.status == "keep"]
        expected.append((n, min(kept)))
    assert data.best == expected
    assert data.kept == [(1, 1.00), (3, 0.97), (6, 0.95), (7, 0.94)]
    assert data.discarded == [(2, 1.20), (5, 0.90), (8, 0.93)]
    assert data.crashes == 2 and data.baseline == 1.00
    low, high = data.y_range()
    assert low < 0.94 < 1.00 < high < 1.20  # the 1.20 discard is left out, as upstream
    assert step_line([(1, 1.0), (3, 0.97)]) == ([1, 3, 3], [1.0, 1.0, 0.97])
    assert staircase([]).y_range() is None


async def test_staircase_shows_the_session():
    harness = Harness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        data = harness.app.query_one(StaircasePlot).data
        assert data.kept == [(0, 0.9979), (1, 0.9932)] and data.discarded == [(2, 0.9951)]
        assert data.crashes == 1 and data.best[-1] == (3, 0.9932)


async def test_diff_pane_shows_the_latest_proposal_during_its_run():
    harness = Harness(hold_in_training=2)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("4")
        diff_view = harness.app.query_one(DiffView)
        latest = harness.proposals()[-1]
        assert latest.experiment == 2 and diff_view.shown == (2, latest.description, latest.diff)
        body = diff_view.query_one("#diff-body").content
        assert body.code == latest.diff.rstrip("\n") and body.lexer.name == "Diff"
        assert str(diff_view.query_one("#diff-description").content) == latest.description
        harness.engine.release.set()
        await until(pilot, ended(harness))


async def test_enter_on_a_results_row_shows_its_diff():
    harness = Harness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        await pilot.press("up", "up", "enter")  # from the newest row (3) to row 1
        diff_view = harness.app.query_one(DiffView)
        assert diff_view.shown.experiment == 1 and diff_view.shown.diff == harness.proposals()[0].diff
        assert harness.shown() == ["diff"] and harness.app.focused is diff_view
        head = str(diff_view.query_one("#diff-description").content)
        assert "wall 305.0 s" in head and "compiling the model..." in head  # timings and output tail
        assert "cost $" in head and "tokens " in head  # the agent's usage of that experiment
        await pilot.press("1", "up", "enter")  # the baseline: no proposal
        assert diff_view.shown is None and "diff · exp 0" in str(diff_view.border_title)


async def test_agent_pane_shows_proposals_rejections_and_warnings():
    script = (
        DEFAULT_SCRIPT[0],
        Experiment("keep", 0.99, "raise the LR", rejections=("SEARCH text not found in train.py",)),
    )
    harness = Harness(script=script, messages=(EngineMessage("rate limited, retrying", "warning"),))
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        await pilot.press("5")  # a hidden RichLog renders what it was given once it has a size
        await until(pilot, lambda: len(harness.agent_lines()) >= 3)
        lines = harness.agent_lines()
        assert lines[0].startswith("warning: rate limited, retrying")
        assert lines[1].startswith("exp 1 rejected (attempt 1): SEARCH text not found in train.py")
        assert lines[2].startswith("exp 1 proposal raise the LR  (2 changed lines)")


async def test_number_and_function_keys_switch_panes_at_80x24():
    harness = Harness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, ended(harness))
        assert harness.shown() == ["results", "log"]
        steps = [("2", "curves"), ("3", "staircase"), ("4", "diff"), ("5", "agent"), ("1", "results"),
                 ("f2", "curves"), ("f1", "results")]
        for key, pane in steps:
            await pilot.press(key)
            assert harness.shown() == (["results", "log"] if pane == "results" else [pane]), key
            assert harness.app.focused.id == pane
            assert harness.app.query_one("#tabs").active == pane
        titles = {command.title for command in harness.app.get_system_commands(harness.app.screen)}
        assert {"Show curves", "Show staircase", "Show diff", "Show agent", "Pause / resume"} <= titles


@pytest.mark.parametrize("size", [(160, 48), (250, 70)])
async def test_wide_layout_shows_every_pane_side_by_side(size):
    harness = Harness()
    async with harness.app.run_test(size=size) as pilot:
        await until(pilot, ended(harness))
        assert not harness.app.query_one("#tabs").display
        assert harness.shown() == ["results", "staircase", "log", "curves", "diff", "agent"]
        regions = {w.id: w.region for w in harness.app.query("#panes > *")}
        assert all(r.width >= 40 and r.height >= 10 for r in regions.values()), regions
        ids = list(regions)
        assert not any(regions[a].overlaps(regions[b]) for a in ids for b in ids if a < b)
        assert regions["results"].y == regions["staircase"].y < regions["log"].y == regions["curves"].y
        await pilot.press("2")  # keys move the focus; every pane stays
        assert harness.app.focused.id == "curves" and len(harness.shown()) == 6
