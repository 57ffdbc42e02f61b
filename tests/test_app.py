"""UI tests of the cockpit app with Pilot, driven by a scripted engine."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from cockpit.app import CockpitApp
from cockpit.app.widgets import ResultsTable, StatusBar, TrainLog
from cockpit.events import EngineMessage, Pause, Resume, Stop
from scripted_engine import DEFAULT_SCRIPT, ScriptedEngine

SIZES = [(80, 24), (160, 48)]


class Harness:
    """A CockpitApp wired to a ScriptedEngine built with ``engine_options``."""

    def __init__(self, rows=(), **engine_options) -> None:
        self.engine: ScriptedEngine | None = None
        self.options = engine_options
        self.app = CockpitApp(self._factory, title="cockpit", rows=rows)

    def _factory(self, emit) -> ScriptedEngine:
        self.engine = ScriptedEngine(emit, **self.options)
        return self.engine

    def status(self) -> str:
        return self.app.query_one(StatusBar).render().plain

    def log_lines(self) -> list[str]:
        return [strip.text for strip in self.app.query_one(TrainLog).lines]

    def statuses(self) -> list[str]:
        table = self.app.query_one(ResultsTable)
        return [table.get_row_at(index)[4].plain for index in range(table.row_count)]


async def until(pilot, condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Let the app run until ``condition()`` holds (then one more settle)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.01)
    await pilot.pause()


def ended(harness: Harness) -> Callable[[], bool]:
    return lambda: harness.engine is not None and harness.engine.finished and harness.app._engine_done


@pytest.mark.parametrize("size", SIZES)
async def test_session_renders_rows_log_and_status(size):
    harness = Harness()
    async with harness.app.run_test(size=size) as pilot:
        await until(pilot, ended(harness))
        assert harness.statuses() == ["keep", "keep", "discard", "crash"]
        table = harness.app.query_one(ResultsTable)
        assert "green" in str(table.get_row_at(0)[4].style)
        assert "red" in str(table.get_row_at(3)[4].style)
        assert table.cursor_row == 3  # the newest row is selected, so in view
        assert any(line.startswith("step 00004 100.0% │ loss 3.000000") for line in harness.log_lines())
        status = harness.status()
        assert "best 0.993200 (Δ -0.004700)" in status
        assert "session ended: max-experiments · 4 experiments" in status


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


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_stops_the_engine_and_waits_for_it(key):
    harness = Harness(hold_in_training=1, hold_stop=True)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press(key)
        await until(pilot, lambda: harness.statuses()[-1:] == ["crash"])
        assert harness.engine.commands == [Stop()]
        assert "stopping…" in harness.status()
        assert harness.app.is_running and not harness.engine.finished
        await pilot.press("q")  # a second q only says it is still stopping
        assert harness.engine.commands == [Stop()]
        harness.engine.stop_release.set()
        await until(pilot, lambda: not harness.app.is_running)
        assert harness.engine.finished
    assert harness.engine.events[-1].reason == "stopped"


async def test_second_ctrl_c_exits_without_waiting():
    harness = Harness(hold_in_training=0, hold_stop=True)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("ctrl+c")
        assert "stopping…" in harness.status()
        await pilot.press("ctrl+c")
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
    assert time.monotonic() - started < 3.0


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
    assert harness.engine.commands == [Stop()]


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
        assert "engine stopped" in harness.status()
        await pilot.press("q")
        await until(pilot, lambda: not harness.app.is_running)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_of_an_ended_session(snap_compare, size):
    harness = Harness()

    async def settle(pilot) -> None:
        await until(pilot, ended(harness))

    assert snap_compare(harness.app, terminal_size=size, run_before=settle)
