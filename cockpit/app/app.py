"""The cockpit's Textual app: renders engine events and sends commands.

The engine is built by ``engine_factory(emit)``; its ``run()`` goes in an async
worker. ``emit`` (``messages.Relay``) posts one ``EngineEvent`` per event and
batches steps into ``StepsLogged`` messages (a flood of steps is one message);
``handlers.py`` turns each event into widget changes, ``controls.py`` turns
keys into commands. The app never calls git, torch or litellm. Its engine is
an ``attach.AttachedEngine`` (the engine daemon, which outlives the app: ``q``
detaches, ``x`` stops the session) or, in tests, any object with ``run()`` and
``send()``; an engine that attaches late replays the session's events first.

The main area holds six panes: results (table and log), curves, staircase,
diff, agent and, when the app is given the program's path, the program
editor. Below 160x48 one shows at a time (tabs; keys 1-6 or F1-F5); from
160x48 on the first five show side by side, the keys move the focus, and the
program editor takes the staircase's place while it is picked. The screen's
breakpoint classes (``-wide``, ``-tall``) pick the layout in ``app.tcss``.
"""

from __future__ import annotations

import gc
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from cockpit.app.chrome import PANES, CockpitScreen, KeysFooter, pane_bindings
from cockpit.app.controls import CONTROLS, ControlActions, control_bindings
from cockpit.app.handlers import EventHandlers
from cockpit.app.messages import EngineEvent, Relay, StepsLogged
from cockpit.app.run_details import RunDetailsStore
from cockpit.app.widgets import (AgentPane, DiffView, LiveCurves, PaneTabs, ProgramEditor, ResultsTable, TableRow,
                                 StaircasePlot, StatusBar, TrainLog, WorkersStrip)
from cockpit.app.widgets.status_bar import format_left
from cockpit.commands import AcceptProgram, Command
from cockpit.events import (Emit)

# The collector's thresholds while the app runs (Python's: 700, 10, 10). A flood of steps allocates
# millions of short-lived objects: at 700 a young collection ran every few hundred lines and a
# full one, over every object of the app, took 100-200 ms now and then (a key waited for it).
GC_THRESHOLDS = (10_000, 50, 100)


class Engine(Protocol):
    """What the app needs of the engine."""

    async def run(self) -> None: ...

    def send(self, command: Command) -> None: ...


EngineFactory = Callable[[Emit], Engine]


class CockpitApp(ControlActions, EventHandlers, App[None]):
    """Watch and steer one research session: results, log, curves, staircase, diff, agent, program."""

    CSS_PATH = "app.tcss"
    BINDINGS = [
        *control_bindings(),
        Binding("x", "stop_session", "Stop"),
        Binding("q", "detach", "Detach"),
        Binding("ctrl+c", "interrupt", "Detach", show=False, priority=True),
        *pane_bindings(),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (48, "-tall")]

    def __init__(
        self,
        engine_factory: EngineFactory,
        *,
        title: str = "cockpit",
        rows: Iterable[Mapping[str, Any]] = (),
        max_log_lines: int = 2000,
        program_path: Optional[Path] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``program_path``: the program file the engine reads (no editor pane when None);
        ``clock``: seconds, monotonic (the experiments-per-hour figure)."""
        super().__init__()
        self.title = title
        self._engine_factory = engine_factory
        self._rows = [TableRow.from_cells(row, index) for index, row in enumerate(rows)]
        self._max_log_lines = max_log_lines
        self._program_path = program_path
        self._clock = clock
        self.panes = PANES if program_path is not None else PANES[:-1]
        self._relay = Relay(self.post_message)
        self._engine: Optional[Engine] = None
        self._engine_done = False
        self._stopping = False
        self._pause = "running"  # running | pausing | paused | resuming
        self._gate = False  # what this cockpit last set (the engine starts with it off)
        self._agents: tuple[str, tuple[str, ...]] = ("", ())  # AgentChanged: the chosen agent, the choices
        self._where = ("", "")
        self._echoes: set[str] = set()  # EngineMessage texts that echo an ActionApplied shown
        self.run_details = RunDetailsStore()  # timings, cost, output tail per experiment
        self._gc_thresholds: Optional[tuple[int, ...]] = None  # Python's, while the app has its own
        self._handlers = self.handlers()

    def get_key_display(self, binding: Binding) -> str:
        """F-keys as F6, not f6."""
        key = binding.key
        return key.upper() if key[:1] == "f" and key[1:].isdigit() else super().get_key_display(binding)

    def get_default_screen(self) -> Screen:
        """The screen the panes are composed on (see CockpitScreen)."""
        return CockpitScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield StatusBar(clock=self._clock, id="status")
        yield WorkersStrip(id="workers")  # shown in a fleet session only
        yield PaneTabs(self.panes, id="tabs")
        with Container(id="panes"):
            yield ResultsTable(self._rows, id="results").add_class("-shown")  # the results pane first
            yield StaircasePlot(id="staircase")
            if self._program_path is not None:
                yield ProgramEditor(self._program_path, id="program")
            yield TrainLog(max_lines=self._max_log_lines, id="log").add_class("-shown")
            yield LiveCurves(id="curves")
            yield DiffView(id="diff")
            yield AgentPane(id="agent")
        yield KeysFooter(show_command_palette=False)

    def on_mount(self) -> None:
        self.status_bar.title = self.title
        self.show_standing()  # the rows given (results.tsv's): status bar and staircase
        self.results_table.focus()
        self._engine = self._engine_factory(self._relay.emit)
        self.run_worker(self._engine.run(), name="engine", group="engine", exit_on_error=False)
        self.call_after_refresh(self._settle_gc)

    def _settle_gc(self) -> None:
        """After the first frame: what exists now (modules, widgets, styles) lives as long as the app,
        so the collector leaves it out (``gc.freeze``), and it collects less often (GC_THRESHOLDS)."""
        if self._gc_thresholds is None:
            self._gc_thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)

    def on_unmount(self) -> None:
        """The collector as it was: the process may go on (tests, a detach prints a line)."""
        if self._gc_thresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def results_table(self) -> ResultsTable:
        return self.query_one(ResultsTable)

    @property
    def workers_strip(self) -> WorkersStrip:
        return self.query_one(WorkersStrip)

    @property
    def train_log(self) -> TrainLog:
        return self.query_one(TrainLog)

    @property
    def curves(self) -> LiveCurves:
        return self.query_one(LiveCurves)

    @property
    def staircase(self) -> StaircasePlot:
        return self.query_one(StaircasePlot)

    @property
    def diff_view(self) -> DiffView:
        return self.query_one(DiffView)

    @property
    def agent_pane(self) -> AgentPane:
        return self.query_one(AgentPane)

    @property
    def program_editor(self) -> Optional[ProgramEditor]:
        editors = self.query(ProgramEditor)
        return editors.first() if editors else None

    # --------------------------------------------------------------- panes --

    def action_show_pane(self, pane: str) -> None:
        """Show ``pane`` (below 160x48; the editor at any size) and focus it."""
        if pane not in dict(self.panes):
            return
        self._pick_pane(pane)
        self.query_one(PaneTabs).active = pane
        self.query_one(f"#{pane}").focus()

    def _pick_pane(self, pane: str) -> None:
        """Mark ``pane``'s widgets -shown (results: the table and the log; the program covers the
        staircase): only widgets whose class changes are restyled, not the whole main area."""
        shown = {pane, "log"} if pane == "results" else {pane}
        for widget in self.query_one("#panes").children:
            widget.set_class(widget.id in shown, "-shown")
        self.staircase.set_class(pane == "program", "-covered")

    @on(PaneTabs.Picked)
    def _pane_clicked(self, message: PaneTabs.Picked) -> None:
        self.action_show_pane(message.pane)

    @on(ProgramEditor.Saved)
    def _program_saved(self, message: ProgramEditor.Saved) -> None:
        """A save in the editor is a person's word for that text: a change held
        because it came while a run trained is released (cockpit.engine.program_hold)."""
        if self._engine is not None and not self._engine_done:
            self._engine.send(AcceptProgram(message.sha256))

    @on(DataTable.RowSelected, "#results")
    def _show_selected_row(self, message: DataTable.RowSelected) -> None:
        """enter on a results row: its description, timings, cost, output tail and diff, in the diff pane."""
        row = self.results_table.results[message.cursor_row]
        self.diff_view.show_experiment(row.experiment, row.description, self.run_details.describe(row.experiment))
        self.action_show_pane("diff")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for control in CONTROLS:
            keys = f"{control.fkey.upper()} or {control.letter}" if control.fkey else control.letter
            yield SystemCommand(control.title, f"{control.help} ({keys})",
                                getattr(self, f"action_{control.action}"))
        yield SystemCommand("Stop the session", "End the session now: kill the running training (x; asks y/n)",
                            self.action_stop_session)
        yield SystemCommand("Detach", "Close the cockpit; the engine goes on, `cockpit` attaches again (q)",
                            self.action_detach)
        for key, (pane, label) in enumerate(self.panes, start=1):
            yield SystemCommand(f"Show {label.lower()}", f"Switch to the {pane} pane (key {key})",
                                partial(self.action_show_pane, pane))
        if self.program_editor is not None:
            yield SystemCommand("Save program", "Write the program file (ctrl+o in the editor)",
                                self.program_editor.action_save)

    @on(Worker.StateChanged)
    def _engine_state_changed(self, message: Worker.StateChanged) -> None:
        if message.worker.name != "engine" or not message.worker.is_finished:
            return
        self._engine_done = True
        if message.state == WorkerState.ERROR:
            self._show_error(f"engine crashed: {message.worker.error!r}")
        if self._stopping:
            self.exit()
        elif not self.status_bar.ended:
            self.status_bar.ended = "engine gone · q to quit"
        self.train_log.flush()  # the session's last lines, now rather than at the next flush

    # -------------------------------------------------------------- events --

    @on(EngineEvent)
    def _show_event(self, message: EngineEvent) -> None:
        handler = self._handlers.get(type(message.event))
        if handler is not None:
            handler(message.event)

    @on(StepsLogged)
    def _show_steps(self, message: StepsLogged) -> None:
        """A batch of steps: the curves take them all, the log and status bar the newest (in a
        fleet, of the selected worker's run; the strip the newest of each run)."""
        steps = self._relay.take(message)
        self.curves.add_steps(steps)
        if self.fleet:
            for step in {s.experiment: s for s in steps}.values():
                self.workers_strip.step(step)
            steps = [s for s in steps if s.experiment == self.selected_run()]
            if not steps:
                return
        shown = self.status_bar.remaining_s
        if shown is None or format_left(steps[-1].remaining_s) != format_left(shown):
            self.status_bar.remaining_s = steps[-1].remaining_s  # a repaint only when the seconds shown change
        self.train_log.add_step(steps[-1])

    @on(WorkersStrip.Selected)
    def _worker_clicked(self, message: WorkersStrip.Selected) -> None:
        self.follow_worker()
