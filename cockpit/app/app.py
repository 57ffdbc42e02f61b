"""The cockpit's Textual app: renders engine events and sends commands.

The engine is built by ``engine_factory(emit)``; its ``run()`` goes in an async
worker. ``emit`` (``messages.Relay``) posts one ``EngineEvent`` per event and
batches steps into ``StepsLogged`` messages (a flood of steps is one message);
the handlers below update the widgets. The app never calls git, torch or litellm.

The main area holds five panes: results (table and log), curves, staircase,
diff and agent. Below 160x48 one shows at a time (tabs; keys 1-5 or F1-F5);
from 160x48 on all show side by side and the keys move the focus. The screen's
breakpoint classes (``-wide``, ``-tall``) pick the layout in ``app.tcss``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from cockpit.events import (
    Command,
    Emit,
    EngineMessage,
    LogLine,
    Pause,
    PhaseChanged,
    ProposalReady,
    ProposalRejected,
    Resume,
    RowLogged,
    RunFinished,
    RunStarted,
    SessionEnded,
    SessionStarted,
    Stop,
)
from cockpit.app.messages import EngineEvent, Relay, StepsLogged
from cockpit.app.widgets import (
    AgentPane,
    DiffView,
    LiveCurves,
    PaneTabs,
    ResultRow,
    ResultsTable,
    StaircasePlot,
    StatusBar,
    TrainLog,
)

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}

# (pane, label) in key order 1-5; the widget with the pane's id takes the focus when it is picked.
PANES = (
    ("results", "Results"),
    ("curves", "Curves"),
    ("staircase", "Staircase"),
    ("diff", "Diff"),
    ("agent", "Agent"),
)


class Engine(Protocol):
    """What the app needs of the engine."""

    async def run(self) -> None: ...

    def send(self, command: Command) -> None: ...


EngineFactory = Callable[[Emit], Engine]


class CockpitApp(App[None]):
    """Watch one research session: results, log, curves, staircase, diff, agent; pause and quit."""

    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause", priority=True),
        Binding("q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        *(
            Binding(f"{key},f{key}", f"show_pane('{pane}')", label, priority=True)
            for key, (pane, label) in enumerate(PANES, start=1)
        ),
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
    ) -> None:
        super().__init__()
        self.title = title
        self._engine_factory = engine_factory
        self._rows = [ResultRow.from_dict(row, index) for index, row in enumerate(rows)]
        self._max_log_lines = max_log_lines
        self._relay = Relay(self.post_message)
        self._engine: Optional[Engine] = None
        self._engine_done = False
        self._stopping = False
        self._pause = "running"  # running | pausing | paused | resuming
        self._handlers: dict[type, Callable[[Any], None]] = {
            SessionStarted: self._show_session_started,
            PhaseChanged: self._show_phase,
            ProposalReady: self._show_proposal,
            ProposalRejected: self._show_rejection,
            RunStarted: self._show_run_started,
            LogLine: self._show_log_line,
            RunFinished: self._show_run_finished,
            RowLogged: self._show_row,
            EngineMessage: self._show_message,
            SessionEnded: self._show_session_ended,
        }

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield PaneTabs(PANES, id="tabs")
        with Container(id="panes", classes="-show-results"):
            yield ResultsTable(self._rows, id="results")
            yield StaircasePlot(id="staircase")
            yield TrainLog(max_lines=self._max_log_lines, id="log")
            yield LiveCurves(id="curves")
            yield DiffView(id="diff")
            yield AgentPane(id="agent")
        yield Footer()

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

    # --------------------------------------------------------------- panes --

    def action_show_pane(self, pane: str) -> None:
        """Show ``pane`` (below 160x48) and focus it."""
        self.query_one("#panes").update_classes({f"-show-{name}": name == pane for name, _ in PANES})
        self.query_one(PaneTabs).active = pane
        self.query_one(f"#{pane}").focus()

    @on(PaneTabs.Picked)
    def _pane_clicked(self, message: PaneTabs.Picked) -> None:
        self.action_show_pane(message.pane)

    @on(DataTable.RowSelected, "#results")
    def _show_selected_row(self, message: DataTable.RowSelected) -> None:
        """enter on a results row: its description and diff, in the diff pane."""
        row = self.results_table.results[message.cursor_row]
        self.diff_view.show_experiment(row.experiment, row.description)
        self.action_show_pane("diff")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Pause / resume", "Pause after the running experiment, or resume", self.action_toggle_pause)
        for key, (pane, label) in enumerate(PANES, start=1):
            yield SystemCommand(f"Show {label.lower()}", f"Switch to the {pane} pane (key {key})",
                                partial(self.action_show_pane, pane))

    # ------------------------------------------------------------ commands --

    def action_toggle_pause(self) -> None:
        if self._engine is None or self._engine_done or self._stopping:
            self.notify("The session is not running.", severity="warning")
            return
        if self._pause == "running":
            self._engine.send(Pause())
            self._set_pause("pausing")
        else:
            self._engine.send(Resume())
            self._set_pause("running" if self._pause == "pausing" else "resuming")

    async def action_quit(self) -> None:
        if self._engine is None or self._engine_done:
            self.exit()
        elif self._stopping:
            self.notify("Still stopping: waiting for the run to end and its row to be written.")
        else:
            self._stopping = True
            self.status_bar.stopping = True
            self._engine.send(Stop())

    async def action_interrupt(self) -> None:
        """ctrl+c: quit cleanly; a second ctrl+c while stopping exits without waiting."""
        if self._stopping:
            self.exit()
        else:
            await self.action_quit()

    def _set_pause(self, state: str) -> None:
        self._pause = state
        self.status_bar.pause = state

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
            self.status_bar.ended = "engine stopped · q to quit"

    # -------------------------------------------------------------- events --

    @on(EngineEvent)
    def _show_event(self, message: EngineEvent) -> None:
        handler = self._handlers.get(type(message.event))
        if handler is not None:
            handler(message.event)

    def _show_session_started(self, event: SessionStarted) -> None:
        self.curves.budget_s = event.budget_s
        self.status_bar.tag = event.tag
        self.status_bar.where = f"{event.branch} · {event.profile} · {event.agent}"
        self.train_log.add_rule(
            f"session {event.tag} · {event.branch} · {event.profile} · "
            f"agent {event.agent} · budget {event.budget_s:.0f}s"
        )

    def _show_phase(self, event: PhaseChanged) -> None:
        self.status_bar.experiment = event.experiment
        self.status_bar.phase = event.phase
        if event.phase == "paused":
            self._set_pause("paused")
        elif self._pause in ("paused", "resuming"):
            self._set_pause("running")

    def _show_proposal(self, event: ProposalReady) -> None:
        self.train_log.add_line(f"exp {event.experiment} proposal: {event.description}", "cyan")
        self.diff_view.add_proposal(event)
        self.agent_pane.add_proposal(event)

    def _show_rejection(self, event: ProposalRejected) -> None:
        first_line = event.reason.strip().splitlines()[0] if event.reason.strip() else ""
        self.train_log.add_line(
            f"exp {event.experiment} proposal rejected (attempt {event.attempt}): {first_line}", "yellow"
        )
        self.agent_pane.add_rejection(event)

    def _show_run_started(self, event: RunStarted) -> None:
        self.status_bar.remaining_s = event.budget_s
        self.train_log.border_title = f"log · exp {event.experiment} · {event.commit}"
        self.train_log.add_rule(f"exp {event.experiment} · {event.commit} · {event.description}")
        self.curves.start_run(event.experiment, event.description, event.budget_s)

    @on(StepsLogged)
    def _show_steps(self, message: StepsLogged) -> None:
        """A batch of steps: the curves take them all, the log and status bar the newest."""
        steps = self._relay.take(message)
        self.status_bar.remaining_s = steps[-1].remaining_s
        self.train_log.add_step(steps[-1])
        self.curves.add_steps(steps)

    def _show_log_line(self, event: LogLine) -> None:
        self.train_log.add_line(event.text)

    def _show_run_finished(self, event: RunFinished) -> None:
        self.status_bar.remaining_s = None
        val_bpb = event.summary.get("val_bpb")
        if event.returncode == 0 and val_bpb is not None:
            text, style = f"val_bpb {float(val_bpb):.6f} in {event.wall_s:.0f}s", "bold"
        else:
            why = "timed out" if event.timed_out else f"exit status {event.returncode}"
            text, style = f"crashed ({why}) after {event.wall_s:.0f}s", "bold red"
        self.train_log.add_line(f"exp {event.experiment} finished: {text}", style)

    def _show_row(self, event: RowLogged) -> None:
        self.results_table.add_result(
            ResultRow(
                experiment=event.experiment,
                commit=event.commit,
                val_bpb=event.val_bpb,
                memory_gb=event.memory_gb,
                status=event.status,
                description=event.description,
            )
        )
        self.status_bar.record_row(event.status, event.val_bpb, event.best_val_bpb)
        self.staircase.show_rows(self.results_table.results)
        self.curves.row_logged(event.experiment, event.status)

    def _show_message(self, event: EngineMessage) -> None:
        self.agent_pane.add_message(event)
        if event.level == "error":
            self._show_error(event.text)
        else:
            self.train_log.add_line(event.text, LEVEL_STYLES.get(event.level, ""))

    def _show_session_ended(self, event: SessionEnded) -> None:
        self.status_bar.phase = "ended"
        self.status_bar.ended = f"{event.reason} · {event.experiments} experiments · q to quit"
        self.train_log.add_rule(f"session ended: {event.reason}")

    def _show_error(self, text: str) -> None:
        self.train_log.add_line(f"error: {text}", LEVEL_STYLES["error"])
        self.notify(text, title="error", severity="error", timeout=15)
