"""The results table: one row per experiment (results.tsv plus the experiment number),
its delta against the best before it in units of the noise floor's sigma (Δσ,
negative is better; cockpit.rules.noise) and, for kept rows, the holdout shard's
bits per byte (holdout; the agent never sees it) and, when the table is wide enough
(``AGENT_COLUMN``), the agent that proposed it; in a fleet session (``show_worker``)
the worker that trained it (``WORKER_COLUMN``, after the number)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Optional

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from cockpit.row import Row

# Style of the status cell, and of the rest of the row, per status.
STATUS_STYLES = {"keep": "bold green", "discard": "yellow", "crash": "bold red"}
ROW_STYLES = {"keep": "", "discard": "dim", "crash": "dim"}

# (label, width) of every column but the description, which takes what is left.
FIXED_COLUMNS = (("#", 3), ("commit", 7), ("val_bpb", 8), ("Δσ", 5), ("holdout", 8), ("mem GB", 6), ("status", 7))
MIN_DESCRIPTION = 12
WORKER_COLUMN = ("worker", 6)  # a fleet's GPU slot ("gpu3"; cockpit.engine.fleet)
AGENT_COLUMN = ("agent", 11)  # shown when the description keeps 40 characters beside it ("optuna-cmaes" cut to 11)


def _number(value: Any) -> float:
    """A float from a results.tsv field (str or number); 0.0 when empty or unreadable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class TableRow(NamedTuple):
    """One experiment's row as the table shows it: the results row (cockpit.row
    ``Row``, numbered) and what the table adds to it, ``delta_sigma`` (its delta
    against the best before it in noise-floor sigmas, cockpit.rules.noise) and
    ``holdout_bpb`` (a kept row's holdout bits per byte), ``agent`` (the agent that
    proposed it, cockpit.events RowLogged), ``worker`` (a fleet's GPU slot that trained
    it); None when not known.
    The row's fields read through, so the running best (cockpit.rules.standing)
    and the staircase fold these as they fold rows."""

    row: Row
    delta_sigma: Optional[float] = None
    holdout_bpb: Optional[float] = None
    agent: Optional[str] = None
    worker: Optional[str] = None

    @property
    def experiment(self) -> int:
        """The session's number for the row (0 is the baseline)."""
        return self.row.experiment or 0

    @property
    def commit(self) -> str:
        """The short commit hash (7 characters)."""
        return self.row.commit

    @property
    def val_bpb(self) -> float:
        """Bits per byte (0.0 for a crash)."""
        return self.row.val_bpb

    @property
    def memory_gb(self) -> float:
        """Peak GPU memory in GB."""
        return self.row.memory_gb

    @property
    def status(self) -> str:
        """keep, discard or crash."""
        return self.row.status

    @property
    def description(self) -> str:
        """The row's one-line description."""
        return self.row.description

    @classmethod
    def from_cells(cls, cells: Mapping[str, Any], index: int) -> "TableRow":
        """A row from a results.tsv record (strings allowed, as any upstream-schema
        file holds them: the status in any case, ``0.000000`` for a crash);
        ``index`` numbers it if it has no ``experiment``."""
        return cls(Row(
            commit=str(cells.get("commit", ""))[:7],
            val_bpb=_number(cells.get("val_bpb")),
            memory_gb=_number(cells.get("memory_gb")),
            status=str(cells.get("status", "")).strip().lower(),
            description=str(cells.get("description", "")),
            experiment=int(cells.get("experiment", index)),
        ))


def _cells(row: TableRow, description_width: int, agent: bool = False, worker: bool = False) -> list[Text]:
    """The styled cells of one row (with the agent's when ``agent``, the worker's when
    ``worker``); the description is cut to the column's width."""
    style = ROW_STYLES.get(row.status, "")
    crashed = row.status == "crash" and row.val_bpb == 0.0
    bpb_style = "bold green" if row.status == "keep" else style
    description = row.description
    if len(description) > description_width:
        description = description[: max(description_width - 1, 0)] + "…"
    agent_cell = [Text((row.agent or "")[:AGENT_COLUMN[1]], style=style)] if agent else []
    worker_cell = [Text((row.worker or "")[:WORKER_COLUMN[1]], style=style)] if worker else []
    return [
        Text(str(row.experiment), style=style, justify="right"),
        *worker_cell,
        Text(row.commit, style=style),
        Text("—" if crashed else f"{row.val_bpb:.6f}", style=bpb_style, justify="right"),
        Text("" if row.delta_sigma is None else f"{row.delta_sigma:+.1f}", style=style, justify="right"),
        Text("" if row.holdout_bpb is None else f"{row.holdout_bpb:.6f}", style=style, justify="right"),
        Text(f"{row.memory_gb:.1f}", style=style, justify="right"),
        Text(row.status, style=STATUS_STYLES.get(row.status, "")),
        *agent_cell,
        Text(description, style=style),
    ]


class ResultsTable(DataTable):
    """Every experiment of the session, newest at the bottom and kept in view."""

    def __init__(self, rows: Iterable[TableRow] = (), *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", id=id)
        self.results: list[TableRow] = list(rows)
        self._description_width = 40
        self.show_agent = False
        self.show_worker = False  # a fleet session's: set_fleet
        self.border_title = "results · enter: the row's diff"

    def on_mount(self) -> None:
        self._rebuild()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def set_fleet(self) -> None:
        """A fleet session: the worker column shows (once; the description gives way)."""
        if not self.show_worker:
            self.show_worker = True
            self._fit(self.size.width, force=True)

    def _fit(self, total: int, force: bool = False) -> None:
        columns = FIXED_COLUMNS + ((WORKER_COLUMN,) if self.show_worker else ())
        fixed = sum(width + 2 * self.cell_padding for _, width in columns)
        width = max(MIN_DESCRIPTION, total - fixed - 2 * self.cell_padding - 1)
        agent = width - AGENT_COLUMN[1] - 2 * self.cell_padding >= 40
        if agent:
            width -= AGENT_COLUMN[1] + 2 * self.cell_padding
        if force or (width, agent) != (self._description_width, self.show_agent):
            self._description_width, self.show_agent = width, agent
            self._rebuild()

    def add_result(self, row: TableRow) -> None:
        """Append one row; follow it if the cursor was on the newest row."""
        follow = self.cursor_row >= self.row_count - 1
        self.results.append(row)
        self.add_row(*_cells(row, self._description_width, self.show_agent, self.show_worker))
        if follow:
            self.move_cursor(row=self.row_count - 1)

    def _rebuild(self) -> None:
        """Lay the columns and all rows out again (on mount and when the width changes)."""
        cursor = self.cursor_row
        follow = self.row_count == 0 or cursor >= self.row_count - 1
        self.clear(columns=True)
        columns = FIXED_COLUMNS[:1] + ((WORKER_COLUMN,) if self.show_worker else ()) + FIXED_COLUMNS[1:]
        for label, width in columns + ((AGENT_COLUMN,) if self.show_agent else ()):
            self.add_column(label, width=width)
        self.add_column("description", width=self._description_width)
        self.add_rows(_cells(row, self._description_width, self.show_agent, self.show_worker) for row in self.results)
        self.move_cursor(row=self.row_count - 1 if follow else cursor)
