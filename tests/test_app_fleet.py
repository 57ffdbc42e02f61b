"""Pilot tests of the cockpit showing a fleet session (``--gpus 8``): the workers strip at
80x24 and wider, the worker column, the status bar's fleet figures, selecting a worker
with w / W or a click, and veto / force-keep acting on the selected worker's run.

The engine is a small scripted fleet: the events cockpit.engine.fleet emits, for eight
workers on two nodes, then it waits for Stop and records every command."""

from __future__ import annotations

import asyncio

from app_harness import FakeClock, until
from cockpit.app.app import CockpitApp
from cockpit.app.widgets import ResultsTable, StatusBar, WorkersStrip
from cockpit.app.widgets.workers_strip import CELL_WIDTH
from cockpit.commands import ForceKeep, Stop, Veto
from cockpit.events import (RowLogged, RunStarted, SessionEnded, SessionStarted, StepLogged, TimeAccounted,
                            WorkerUpdated)

BUDGET = 5.0
NODES = ("a1b2c3d4e5f6", "0f9e8d7c6b5a")


def worker(i: int, phase: str = "training", experiment: int = -1) -> WorkerUpdated:
    return WorkerUpdated(f"gpu{i}", NODES[i // 4], "box", str(i % 4), phase,
                         experiment if experiment >= 0 else (i + 1 if phase == "training" else -1),
                         f"change {i + 1}", 1.5 + i / 1000, BUDGET)


def step(n: int, remaining: float) -> StepLogged:
    return StepLogged(n, 10, 50.0, 3.0 - n / 100, 1.0, 10.0, 1000.0, 1.0, 0, remaining)


class FleetScript:
    """Eight workers: gpu0-gpu6 train #1-#7, gpu7 asks; one row of #0 and one of #3."""

    def __init__(self, emit) -> None:
        self.emit, self.commands, self.stopped = emit, [], asyncio.Event()

    async def run(self) -> str:
        self.emit(SessionStarted("fleet", "autoresearch/fleet", "cpu", BUDGET, "/ws", "offline"))
        for i in range(8):
            self.emit(worker(i, "training" if i < 7 else "asking"))
            if i < 7:
                self.emit(RunStarted(i + 1, f"c{i + 1:06d}", f"change {i + 1}", BUDGET, "/ws/logs/x.log"))
                self.emit(step(i + 1, 271.0 - i))
        self.emit(RowLogged(0, "b000000", 1.5, 0.1, "keep", "baseline", 1.5, worker="gpu0"))
        self.emit(RowLogged(3, "c000003", 1.49, 0.1, "keep", "change 3", 1.49, worker="gpu2"))
        self.emit(TimeAccounted(3, {}, {"workers": 8, "idle_share": 0.031, "ideal_per_hour": 8 * 3600 / BUDGET}))
        await self.stopped.wait()
        self.emit(SessionEnded("stopped", 2))
        return "stopped"

    def send(self, command) -> None:
        self.commands.append(command)
        if isinstance(command, Stop):
            self.stopped.set()


class FleetHarness:
    def __init__(self) -> None:
        self.engine = None
        self.clock = FakeClock()
        self.app = CockpitApp(self._factory, clock=self.clock)

    def _factory(self, emit):
        self.engine = FleetScript(emit)
        return self.engine

    @property
    def strip(self) -> WorkersStrip:
        return self.app.query_one(WorkersStrip)


async def ready(pilot, harness: FleetHarness) -> None:
    await until(pilot, lambda: len(harness.strip.slots) == 8 and harness.app.results_table.row_count == 2)
    await pilot.pause()


async def test_the_strip_shows_eight_gpus_in_80x24_with_their_run_time_left_and_val_bpb():
    harness = FleetHarness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, harness)
        strip = harness.strip
        assert strip.display and strip.region.height == 4 and strip.region.width == 80  # 2 x 4 cells
        text = strip.render().plain.splitlines()
        assert len(text) == 4 and all(len(line) <= 80 for line in text)
        cells = [line[i:i + CELL_WIDTH] for line in text for i in (0, CELL_WIDTH)]
        assert [c.split()[0].lstrip("▶") for c in cells] == [f"gpu{i}" for i in range(8)]
        assert cells[0] == "▶gpu0  a1b2c3 train #1     4:31 1.500000"  # selected, node, phase, left
        assert "0f9e8d" in cells[4] and "ask" in cells[7] and "#" not in cells[7]
        # the table names the worker; the status bar the fleet's rate against N x 3600 / budget and idle share
        table = harness.app.query_one(ResultsTable)
        assert [c.label.plain for c in table.columns.values()][:2] == ["#", "worker"]
        assert table.get_row_at(1)[1].plain == "gpu2"
        harness.clock.now += 3600  # an hour on: 2 rows
        status = harness.app.query_one(StatusBar).render().plain
        assert "2.0/5760 exp/h" in status and "8 GPUs idle 3.1%" in status
        assert "gpu0 exp 1" in status and "training" in status
        # the curves follow gpu0's run, over the incumbent's (#3)
        assert harness.app.curves.running.experiment == 1 and harness.app.curves.incumbent.experiment == 3


async def test_a_wider_terminal_puts_more_workers_on_a_line():
    harness = FleetHarness()
    async with harness.app.run_test(size=(170, 50)) as pilot:
        await ready(pilot, harness)
        assert harness.strip.columns() == 4 and harness.strip.region.height == 2


async def test_w_and_a_click_select_a_worker_and_the_curves_log_and_bar_follow_it():
    harness = FleetHarness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, harness)
        await pilot.press("w")
        assert harness.strip.selected == "gpu1"
        assert harness.app.curves.running.experiment == 2
        assert "gpu1 exp 2" in harness.app.query_one(StatusBar).render().plain
        await pilot.press("W", "W")
        assert harness.strip.selected == "gpu7"  # wraps round
        await pilot.click(WorkersStrip, offset=(CELL_WIDTH + 3, 2))  # line 3, right cell: gpu5
        await pilot.pause()
        assert harness.strip.selected == "gpu5" and harness.app.curves.running.experiment == 6
        assert "▶gpu5" in harness.strip.render().plain and "▶gpu0" not in harness.strip.render().plain


async def test_veto_and_force_keep_act_on_the_selected_workers_run():
    harness = FleetHarness()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, harness)
        await pilot.press("w", "w", "v")  # gpu2 trains #3
        await pilot.press("w", "k", "y")  # gpu3 trains #4, after the y/n dialog
        await pilot.pause()
        assert harness.engine.commands == [Veto(3), ForceKeep(4)]
        await pilot.press("W", "W", "W", "W", "v")  # gpu7 asks: nothing to veto there
        await pilot.pause()
        assert harness.strip.selected == "gpu7" and harness.engine.commands == [Veto(3), ForceKeep(4)]
        assert any("gpu7 is asking" in n.message for n in harness.app._notifications)


async def test_a_session_on_one_gpu_shows_no_strip_and_no_worker_key():
    from app_harness import Harness

    harness = Harness(script=(), end_when_done=False)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine is not None and bool(harness.engine.events))
        assert not harness.app.query_one(WorkersStrip).display
        assert harness.app.check_action("next_worker", ()) is False
        await pilot.press("w")
        assert harness.engine.commands == []
