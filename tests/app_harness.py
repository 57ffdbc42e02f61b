"""What the app's Pilot tests share: a CockpitApp wired to a ScriptedEngine, a clock, waiting."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from cockpit.app import CockpitApp
from cockpit.app.widgets import AgentPane, ResultsTable, StatusBar, TrainLog
from cockpit.app.widgets.results_table import FIXED_COLUMNS
from cockpit.events import ProposalReady, StepLogged
from scripted_engine import ScriptedEngine


class FakeClock:
    """A monotonic clock the test moves: ``clock.now += 3600``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """A CockpitApp wired to a ScriptedEngine built with ``engine_options``."""

    def __init__(self, rows=(), program_path: Optional[Path] = None, **engine_options) -> None:
        self.engine: ScriptedEngine | None = None
        self.options = engine_options
        self.clock = FakeClock()
        self.app = CockpitApp(self._factory, title="cockpit", rows=rows, program_path=program_path,
                              clock=self.clock)

    def _factory(self, emit) -> ScriptedEngine:
        self.engine = ScriptedEngine(emit, **self.options)
        return self.engine

    def status(self) -> str:
        return self.app.query_one(StatusBar).render().plain

    def log_lines(self) -> list[str]:
        return [strip.text for strip in self.app.query_one(TrainLog).lines]

    def statuses(self) -> list[str]:
        table = self.app.query_one(ResultsTable)
        column = [label for label, _ in FIXED_COLUMNS].index("status")
        return [table.get_row_at(index)[column].plain for index in range(table.row_count)]

    def steps(self, experiment: int) -> list[StepLogged]:
        return [e for e in self.engine.events if isinstance(e, StepLogged) and e.experiment == experiment]

    def proposals(self) -> list[ProposalReady]:
        return [e for e in self.engine.events if isinstance(e, ProposalReady)]

    def shown(self) -> list[str]:
        """Ids of the main area's widgets on screen."""
        return [widget.id for widget in self.app.query("#panes > *") if widget.display]

    def agent_lines(self) -> list[str]:
        return [strip.text for strip in self.app.query_one(AgentPane).lines]


async def until(pilot, condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Let the app run until ``condition()`` holds (then one more settle)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.01)
    await pilot.pause()


def ended(harness: Harness) -> Callable[[], bool]:
    return lambda: harness.engine is not None and harness.engine.finished and harness.app._engine_done
