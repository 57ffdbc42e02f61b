"""The workers strip of a fleet session (``--gpus N`` > 1): one cell per GPU slot.

Each cell is CELL_WIDTH characters: the selection mark, the worker ("gpu3"), where
it runs (its host when the fleet's hosts tell its nodes apart, else the first
characters of the Ray node id), its phase, its experiment, the time left of its
run (from the run's StepLogged) and the last val_bpb it measured::

    ▶gpu3 a1b2c3 train  #12  4:31 1.012345

Cells fill the width, CELL_WIDTH apart (80 columns: two, so 8 GPUs take 4 lines;
160: four, 2 lines), and the strip is as tall as its lines. It stays hidden until
the first WorkerUpdated (a session on one GPU never shows it). ``w`` / ``W`` (the
app's keys) and a click select a worker; the app then follows its run in the
curves and the log, and veto / force-keep act on it.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from cockpit.app.widgets.status_bar import format_left
from cockpit.events import StepLogged, WorkerUpdated

CELL_WIDTH = 40  # characters per worker: two fit 80 columns
# The phase as a cell shows it (5 characters), and its style.
PHASE_CELLS = {"baseline": ("base", "cyan"), "asking": ("ask", "dim"), "training": ("train", "bold green"),
               "deciding": ("decid", ""), "paused": ("pause", "yellow"), "lost": ("LOST", "bold red"),
               "done": ("done", "dim")}


class WorkersStrip(Widget):
    """The fleet's GPU slots, as WorkerUpdated and StepLogged events say them (module docstring)."""

    DEFAULT_CSS = """
    WorkersStrip { height: auto; display: none; background: $panel; }
    """

    class Selected(Message):
        """The person selected ``worker`` (a click; the keys go through the app's actions)."""

        def __init__(self, worker: str) -> None:
            super().__init__()
            self.worker = worker

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.slots: dict[str, WorkerUpdated] = {}  # worker -> its latest update, in the order they came
        self.left_s: dict[int, float] = {}  # experiment -> seconds of its budget left (its newest step)
        self.selected: Optional[str] = None

    # ---------------------------------------------------------------- state --

    def update_worker(self, event: WorkerUpdated) -> None:
        """A slot changed: show it (the first one makes the strip appear and is selected)."""
        old = self.slots.get(event.worker)
        self.slots[event.worker] = event
        if old is None:
            self.display = True
            self.selected = self.selected or event.worker
            self._fit()
        if old is None or old.experiment != event.experiment:
            self.left_s.pop(old.experiment if old else -1, None)
        self.refresh()

    def step(self, step: StepLogged) -> None:
        """The newest step of a run: its time left (a repaint only when the seconds shown change)."""
        before = self.left_s.get(step.experiment)
        self.left_s[step.experiment] = step.remaining_s
        if before is None or format_left(before) != format_left(step.remaining_s):
            self.refresh()

    def select(self, worker: Optional[str]) -> None:
        if worker in self.slots and worker != self.selected:
            self.selected = worker
            self.refresh()

    def cycle(self, step: int = 1) -> Optional[str]:
        """Select the next (``step`` 1) or previous (-1) worker; returns it (None: no worker)."""
        names = list(self.slots)
        if not names:
            return None
        at = names.index(self.selected) if self.selected in names else -step
        self.select(names[(at + step) % len(names)])
        return self.selected

    @property
    def current(self) -> Optional[WorkerUpdated]:
        """The selected worker's latest update (None: no fleet)."""
        return self.slots.get(self.selected) if self.selected else None

    # --------------------------------------------------------------- layout --

    def columns(self) -> int:
        """Cells per line at the strip's width (at least one)."""
        return max(1, (self.size.width or CELL_WIDTH) // CELL_WIDTH)

    def lines(self) -> int:
        """Lines the workers take at the strip's width."""
        return -(-len(self.slots) // self.columns()) if self.slots else 0

    def _fit(self) -> None:
        height = self.lines()
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = max(height, 1)

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def on_click(self, event: events.Click) -> None:
        index = event.y * self.columns() + event.x // CELL_WIDTH
        names = list(self.slots)
        if 0 <= index < len(names) and event.x // CELL_WIDTH < self.columns():
            self.select(names[index])
            self.post_message(self.Selected(names[index]))

    # -------------------------------------------------------------- drawing --

    def _where(self, event: WorkerUpdated) -> str:
        """The host when the fleet's hosts tell its nodes apart, else the node id's first 6 characters."""
        hosts = {w.host for w in self.slots.values()}
        nodes = {w.node for w in self.slots.values()}
        return (event.host if len(hosts) == len(nodes) and event.host else event.node)[:6]

    def cell(self, event: WorkerUpdated) -> Text:
        """One worker's CELL_WIDTH characters."""
        phase, style = PHASE_CELLS.get(event.phase, (event.phase[:5], ""))
        chosen = event.worker == self.selected
        left = self.left_s.get(event.experiment) if event.phase == "training" else None
        text = Text.assemble(("▶" if chosen else " ", "bold cyan"),
                             (f"{event.worker:<5.5}", "bold cyan" if chosen else "bold"), " ",
                             (f"{self._where(event):<6}", "dim"), " ", (f"{phase:<5}", style), " ",
                             f"{'#' + str(event.experiment) if event.experiment >= 0 else '':<5.5}", " ",
                             f"{format_left(left).removesuffix(' left') if left is not None else '':>5.5}", " ",
                             (f"{event.val_bpb:.6f}" if event.val_bpb is not None else "        ", ""))
        text.truncate(CELL_WIDTH, pad=True)
        return text

    def render(self) -> Text:
        columns, cells = self.columns(), [self.cell(e) for e in self.slots.values()]
        lines = [Text("").join(cells[i:i + columns]) for i in range(0, len(cells), columns)]
        return Text("\n").join(lines)
