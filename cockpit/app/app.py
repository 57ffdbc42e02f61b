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

import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from cockpit.app.controls import CONTROLS, ControlActions, control_bindings
from cockpit.app.handlers import EventHandlers
from cockpit.app.messages import EngineEvent, Relay, StepsLogged
from cockpit.app.run_details import RunDetailsStore
from cockpit.app.widgets import (
    AgentPane,
    DiffView,
    LiveCurves,
    PaneTabs,
    ProgramEditor,
    ResultRow,
    ResultsTable,
    StaircasePlot,
    StatusBar,
    TrainLog,
)
from cockpit.events import Command, Emit

# (pane, label) in key order 1-6; the widget with the pane's id takes the focus when it is picked.
PANES = (
    ("results", "Results"),
    ("curves", "Curves"),
    ("staircase", "Staircase"),
    ("diff", "Diff"),
    ("agent", "Agent"),
    ("program", "Program"),
)


class Engine(Protocol):
    """What the app needs of the engine."""

    async def run(self) -> None: ...

    def send(self, command: Command) -> None: ...


EngineFactory = Callable[[Emit], Engine]


def pane_bindings() -> list[Binding]:
    """1-6 (when no text widget has the focus) and F1-F5 (anywhere) pick a pane; the pane bar
    names them, so the footer keeps its room for the controls."""
    bindings = []
    for key, (pane, label) in enumerate(PANES, start=1):
        bindings.append(Binding(str(key), f"show_pane('{pane}')", label, show=False))
        if key <= 5:  # F6 and up are controls
            bindings.append(Binding(f"f{key}", f"show_pane('{pane}')", label, show=False, priority=True))
    return bindings


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
        self._rows = [ResultRow.from_dict(row, index) for index, row in enumerate(rows)]
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
        self._echoes: set[str] = set()  # EngineMessage texts that echo an ActionApplied shown
        self.run_details = RunDetailsStore()  # timings, cost, output tail per experiment
        self._handlers = self.handlers()

    def get_key_display(self, binding: Binding) -> str:
        """F-keys as F6, not f6."""
        key = binding.key
        return key.upper() if key[:1] == "f" and key[1:].isdigit() else super().get_key_display(binding)

    def compose(self) -> ComposeResult:
        yield StatusBar(clock=self._clock, id="status")
        yield PaneTabs(self.panes, id="tabs")
        with Container(id="panes", classes="-show-results"):
            yield ResultsTable(self._rows, id="results")
            yield StaircasePlot(id="staircase")
            if self._program_path is not None:
                yield ProgramEditor(self._program_path, id="program")
            yield TrainLog(max_lines=self._max_log_lines, id="log")
            yield LiveCurves(id="curves")
            yield DiffView(id="diff")
            yield AgentPane(id="agent")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.status_bar.title = self.title
        for row in self._rows:
            self.status_bar.record_row(row.status, row.val_bpb)
        self.staircase.show_rows(self._rows)
        self.results_table.focus()
        self._engine = self._engine_factory(self._relay.emit)
        self.run_worker(self._engine.run(), name="engine", group="engine", exit_on_error=False)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def results_table(self) -> ResultsTable:
        return self.query_one(ResultsTable)

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
        self.query_one("#panes").update_classes({f"-show-{name}": name == pane for name, _ in PANES})
        self.query_one(PaneTabs).active = pane
        self.query_one(f"#{pane}").focus()

    @on(PaneTabs.Picked)
    def _pane_clicked(self, message: PaneTabs.Picked) -> None:
        self.action_show_pane(message.pane)

    @on(DataTable.RowSelected, "#results")
    def _show_selected_row(self, message: DataTable.RowSelected) -> None:
        """enter on a results row: its description, timings, cost, output tail and diff, in the diff pane."""
        row = self.results_table.results[message.cursor_row]
        self.diff_view.show_experiment(row.experiment, row.description, self.run_details.describe(row.experiment))
        self.action_show_pane("diff")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for control in CONTROLS:
            yield SystemCommand(control.title, f"{control.help} ({control.fkey.upper()} or {control.letter})",
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

    # -------------------------------------------------------------- events --

    @on(EngineEvent)
    def _show_event(self, message: EngineEvent) -> None:
        handler = self._handlers.get(type(message.event))
        if handler is not None:
            handler(message.event)

    @on(StepsLogged)
    def _show_steps(self, message: StepsLogged) -> None:
        """A batch of steps: the curves take them all, the log and status bar the newest."""
        steps = self._relay.take(message)
        self.status_bar.remaining_s = steps[-1].remaining_s
        self.train_log.add_step(steps[-1])
        self.curves.add_steps(steps)
