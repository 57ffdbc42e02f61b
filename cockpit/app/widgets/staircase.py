"""The val_bpb staircase, drawn like upstream's analysis figure (progress.png).

Every experiment with a val_bpb is a point at (experiment number, val_bpb):
kept ones green, discarded ones grey; the running best is a step line. The
running best is cockpit.rules.standing's, the incumbent's val_bpb after each row
(the same fold the engine, the status bar and ``cockpit report`` use): it
goes back up after a revert and follows a forced keep of a worse run, where a
plain running minimum would not. Crashes have no val_bpb and are **not
plotted** (the title counts them). As upstream, the y axis runs from just
below the best to just above the baseline (the first keep); discards worse
than that are left out and counted. Statuses are read in any case.
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Optional, Sequence

from cockpit.app.widgets.live_curves import CachedPlot
from cockpit.app.widgets.results_table import TableRow
from cockpit.rules.standing import Standing, running_best, scored, status_of

KEEP_COLOR, DISCARD_COLOR = "green", "gray"
LEGEND = "[ansi_green]● keep[/] [ansi_bright_black]• discard[/] [ansi_green]━ best so far[/]"
MARGIN = 0.15  # of the baseline-to-best span, above and below (upstream's)
MAX_TICKS = 8


class Staircase(NamedTuple):
    """What the staircase plots: points per status and the running best."""

    kept: list[tuple[int, float]]
    discarded: list[tuple[int, float]]
    crashes: int  # rows with no val_bpb (crash rows): not plotted
    best: list[tuple[int, float]]  # the incumbent's val_bpb (cockpit.rules.standing) at every row from the first keep on

    @property
    def baseline(self) -> Optional[float]:
        return self.kept[0][1] if self.kept else None

    def y_range(self) -> Optional[tuple[float, float]]:
        """Just below the lowest of the best line and the kept points to just above
        the baseline (or the line, when a forced keep took it higher); None before
        the first keep."""
        if not self.kept:
            return None
        line = [y for _, y in self.best]
        top = max([self.kept[0][1], *line])
        bottom = min([*line, *(y for _, y in self.kept)])
        margin = max((top - bottom) * MARGIN, top * 1e-3)
        return bottom - margin, top + margin


def staircase(rows: Iterable[TableRow], standings: Optional[Sequence[Standing]] = None) -> Staircase:
    """The staircase of ``rows`` (oldest first); ``standings`` is
    ``cockpit.rules.standing.running_best(rows)`` when the caller has it already."""
    rows = list(rows)
    standings = running_best(rows) if standings is None else standings
    kept: list[tuple[int, float]] = []
    discarded: list[tuple[int, float]] = []
    best: list[tuple[int, float]] = []
    crashes = 0
    for row, standing in zip(rows, standings):
        value, status = scored(row), status_of(row)
        if value is None or status == "crash":
            crashes += 1
        elif status == "keep":
            kept.append((row.experiment, value))
        else:
            discarded.append((row.experiment, value))
        if standing.best is not None:
            best.append((row.experiment, standing.best))
    return Staircase(kept, discarded, crashes, best)


def step_line(points: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
    """A post-step line through ``points``: flat until the next x, then straight down."""
    xs: list[float] = []
    ys: list[float] = []
    for index, (x, y) in enumerate(points):
        if index:
            xs.append(x)
            ys.append(ys[-1])
        xs.append(x)
        ys.append(y)
    return xs, ys


def _ticks(first: int, last: int) -> list[int]:
    step = max(1, math.ceil((last - first + 1) / MAX_TICKS))
    return list(range(first, last + 1, step))


class StaircasePlot(CachedPlot, can_focus=True):
    """val_bpb per experiment, redrawn whenever a results row is added."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = Staircase([], [], 0, [])
        self.border_title = "staircase"
        self.border_subtitle = LEGEND

    def show_rows(self, rows: Iterable[TableRow], standings: Optional[Sequence[Standing]] = None) -> None:
        """Plot ``rows`` (``standings``: their cockpit.rules.standing.running_best, if known)."""
        self.data = data = staircase(rows, standings)
        plt = self.plt
        plt.clear_data()
        y_range = data.y_range()
        low, high = y_range if y_range else (-math.inf, math.inf)
        shown = [(x, y) for x, y in data.discarded if y <= high]
        if shown:
            plt.scatter(*zip(*shown), marker="•", color=DISCARD_COLOR)
        if data.best:
            plt.plot(*step_line(data.best), marker="braille", color=KEEP_COLOR)
            plt.scatter(*zip(*data.kept), marker="●", color=KEEP_COLOR)
            plt.ylim(low, high)
        numbers = [x for x, _ in data.best + data.discarded]
        if numbers:
            plt.xlim(min(numbers) - 0.5, max(numbers) + 0.5)
            plt.xticks(_ticks(min(numbers), max(numbers)))
        plt.title(self._title(len(data.discarded) - len(shown)))
        plt.xlabel("experiment")
        self.changed()

    def _title(self, above: int) -> str:
        data = self.data
        parts = [f"val_bpb · {len(data.kept)} kept · {len(data.discarded)} discarded"]
        if data.crashes:
            parts.append(f"{data.crashes} crash{'es' if data.crashes > 1 else ''} not shown")
        if above:
            parts.append(f"{above} above the baseline not shown")
        return " · ".join(parts)
