"""Live curves: the running experiment's train loss, MFU and tokens/s against training time.

x is seconds of training (``progress_pct`` x the run's ``budget_s``), so the
running curve grows from the left across a fixed axis, and the incumbent's
curve (the last run this cockpit saw kept, i.e. the best kept one) lies under
it for the whole budget: the two compare at equal training time. Steps arrive
in batches (see ``messages.py``); the plots are redrawn at most
``1 / REDRAW_INTERVAL_S`` times a second, and not at all while hidden. A run's
curve holds at most MAX_CURVE_STEPS steps, thinned evenly (its newest step
always kept): memory stays flat over a run of millions of steps.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from textual.app import ComposeResult, RenderResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

from cockpit.events import StepLogged
from cockpit.strided import Strided

REDRAW_INTERVAL_S = 0.25  # at most 4 redraws a second, whatever the step rate
MAX_POINTS = 400  # points per line handed to plotext (thinned evenly, the newest kept)
MAX_RUNS = 24  # run curves held (a fleet's runs in flight, the incumbent's and the followed one's stay)
MAX_CURVE_STEPS = 4096  # steps one RunCurve holds (every stride-th, the stride doubling, and the newest)
POINTS_PER_CELL = 2  # a braille cell is two dots wide: more points per cell are not seen, only paid for
RUNNING_COLOR, INCUMBENT_COLOR = "cyan", "gray"  # plotext's names for ANSI 6 and 8
LEGEND = {RUNNING_COLOR: "ansi_cyan", INCUMBENT_COLOR: "ansi_bright_black"}  # the same in Textual markup

# (series, plot id, name, format of a value)
SERIES = (
    ("loss", "curve-loss", "train loss", "{:.4f}"),
    ("mfu", "curve-mfu", "MFU %", "{:.1f}"),
    ("tok_per_s", "curve-tok", "tokens/s", "{:,.0f}"),
)


_COLUMNS = ("t", "loss", "mfu", "tok_per_s")  # a point's values, in this order


@dataclass(eq=False)
class RunCurve:
    """The steps of one run: training time in seconds and the metrics at each step
    (the columns ``t``, ``loss``, ``mfu``, ``tok_per_s``, lists of floats, oldest first).

    Every step up to ``limit`` (MAX_CURVE_STEPS); past it the curve is thinned evenly
    (``cockpit.strided.Strided``: every stride-th step and the newest), so it is at
    most ``limit`` + 1 points long."""

    experiment: int
    budget_s: float
    description: str = ""
    limit: int = MAX_CURVE_STEPS
    points: Strided = field(init=False, repr=False)
    _columns: dict = field(default_factory=dict, init=False, repr=False)  # built from points when read

    def __post_init__(self) -> None:
        self.points = Strided(self.limit)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def seen(self) -> int:
        """Steps added (also those thinned away)."""
        return self.points.seen

    def add(self, step: StepLogged) -> None:
        """Add the newest step."""
        self.points.append((step.progress_pct / 100.0 * self.budget_s, step.loss, step.mfu, step.tok_per_s))
        self._columns.clear()

    def column(self, name: str) -> list[float]:
        """One of ``_COLUMNS`` at every point, oldest first."""
        if name not in self._columns:
            index = _COLUMNS.index(name)
            self._columns[name] = [point[index] for point in self.points]
        return self._columns[name]

    t = property(lambda self: self.column("t"), doc="training time of each point, seconds")
    loss = property(lambda self: self.column("loss"), doc="training loss of each point, nats")
    mfu = property(lambda self: self.column("mfu"), doc="MFU of each point, percent")
    tok_per_s = property(lambda self: self.column("tok_per_s"), doc="tokens per second of each point")

    def at(self, series: str, t: float) -> Optional[float]:
        """``series`` at training time ``t``: its last step at or before ``t`` (None before the first)."""
        index = bisect_right(self.t, t)
        return self.column(series)[index - 1] if index else None


def thin(xs: Sequence[float], ys: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``limit`` (+1) evenly spaced finite points of a line, the last one always kept."""
    count = len(xs)
    stride = max(1, math.ceil(count / limit))
    indices = list(range(0, count, stride))
    if count and indices[-1] != count - 1:
        indices.append(count - 1)
    kept = [(xs[i], ys[i]) for i in indices if math.isfinite(ys[i])]
    return [x for x, _ in kept], [y for _, y in kept]


class CachedPlot(PlotextPlot):
    """A PlotextPlot that builds its picture only when its data (``changed()``), size or theme
    changed. Textual repaints a widget on every restyle (a pane key's focus change restyles the
    pane and what it holds), and PlotextPlot builds the whole plot on every repaint."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._data_version = 0
        self._built: Optional[tuple[tuple, RenderResult]] = None  # (what it was built from, the picture)

    def changed(self) -> None:
        """The plot's data changed: build it anew at the next repaint (and ask for one)."""
        self._data_version += 1
        self.refresh()

    def render(self) -> RenderResult:
        """The plot, built anew only when its data, size or theme changed since the last build."""
        key = (self._data_version, self.size, self.app.theme, self.theme)
        if self._built is None or self._built[0] != key:
            self._built = (key, super().render())
        return self._built[1]


def points_shown(width: int) -> int:
    """Points per line worth plotting ``width`` cells wide (MAX_POINTS before the width is known):
    plotext's cost grows with the points, the picture does not past POINTS_PER_CELL a cell."""
    return MAX_POINTS if width <= 0 else max(16, min(MAX_POINTS, POINTS_PER_CELL * width))


class LiveCurves(Widget, can_focus=True):
    """Three plots (loss; MFU; tokens/s) of the running run over the incumbent's.

    The running run is the newest one, or, in a fleet session, the one ``follow``
    names (the cockpit's selected worker's): the curves of up to MAX_RUNS runs are
    held, so a worker picked later shows its run from its first step."""

    def __init__(self, *, budget_s: float = 300.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.budget_s = budget_s  # used for steps that arrive without a RunStarted
        self.runs: dict[int, RunCurve] = {}  # experiment -> its curve, oldest first
        self.followed: Optional[int] = None  # the experiment shown (None: the newest)
        self.incumbent: Optional[RunCurve] = None
        self.dirty = True
        self.titles: dict[str, str] = {}  # series -> the title its plot shows
        self.border_title = "curves"

    @property
    def running(self) -> Optional[RunCurve]:
        """The curve shown over the incumbent's: the followed run's, else the newest."""
        if self.followed is not None:
            return self.runs.get(self.followed)
        return next(reversed(self.runs.values()), None)

    def compose(self) -> ComposeResult:
        for _, plot_id, _, _ in SERIES:
            yield CachedPlot(id=plot_id)

    def on_mount(self) -> None:
        self.set_interval(REDRAW_INTERVAL_S, self.redraw_if_dirty)

    def on_resize(self) -> None:
        """The points plotted depend on the width: redraw at the next tick."""
        self.dirty = True

    def follow(self, experiment: Optional[int]) -> None:
        """Show ``experiment``'s run (None: always the newest)."""
        if experiment != self.followed:
            self.followed = experiment
            self.dirty = True

    def start_run(self, experiment: int, description: str, budget_s: float) -> None:
        """A new run: its curve starts empty."""
        self._add(RunCurve(experiment, budget_s, description))

    def _add(self, curve: RunCurve) -> RunCurve:
        self.runs.pop(curve.experiment, None)
        self.runs[curve.experiment] = curve
        keep = {curve.experiment, self.followed, self.incumbent.experiment if self.incumbent else None}
        for old in [n for n in self.runs if n not in keep][:max(0, len(self.runs) - MAX_RUNS)]:
            del self.runs[old]
        self.dirty = True
        return curve

    def add_steps(self, steps: Iterable[StepLogged]) -> None:
        for step in steps:
            curve = self.runs.get(step.experiment)
            if curve is None:
                curve = self._add(RunCurve(step.experiment, self.budget_s))
            curve.add(step)
        self.dirty = True

    def row_logged(self, experiment: int, status: str) -> None:
        """A kept row makes its run the incumbent (None if its steps were not seen)."""
        if status != "keep":
            return
        self.incumbent = self.runs.get(experiment)
        self.dirty = True

    @property
    def _overlay(self) -> bool:
        """Whether an incumbent other than the running run is drawn under it."""
        return self.incumbent is not None and self.incumbent is not self.running

    def redraw_if_dirty(self) -> None:
        if self.dirty and self.display:
            self.dirty = False
            self.redraw()

    def redraw(self) -> None:
        now = self.running.t[-1] if self.running else 0.0
        for series, plot_id, name, number in SERIES:
            self.titles[series] = self._title(series, name, number, now)
            self._draw(self.query_one(f"#{plot_id}", CachedPlot), series, self.titles[series])
        self.border_title = self._legend(now)

    def _draw(self, plot: CachedPlot, series: str, title: str) -> None:
        plt = plot.plt
        plt.clear_data()
        lines = [(self.incumbent if self._overlay else None, INCUMBENT_COLOR), (self.running, RUNNING_COLOR)]
        limit = points_shown(plot.size.width)
        for curve, color in lines:
            if curve is not None and len(curve):
                plt.plot(*thin(curve.t, getattr(curve, series), limit), color=color, marker="braille")
        budget = self.running.budget_s if self.running else self.budget_s
        plt.xlim(0, max(budget, 1.0))
        plt.title(title)
        plot.changed()

    def _title(self, series: str, name: str, number: str, now: float) -> str:
        """``name``, the running value now and the incumbent's at the same training time."""
        current = self.running.at(series, now) if self.running else None
        if current is None:
            return name
        title = f"{name} {number.format(current)}"
        best = self.incumbent.at(series, now) if self._overlay else None
        return title if best is None else f"{title} · incumbent {number.format(best)}"

    def _legend(self, now: float) -> str:
        if self.running is None:
            return "curves · waiting for the first step"
        legend = f"curves · [{LEGEND[RUNNING_COLOR]}]━ exp {self.running.experiment}[/] at {now:.0f}s"
        if self._overlay:
            legend += f" · [{LEGEND[INCUMBENT_COLOR]}]━ incumbent exp {self.incumbent.experiment}[/]"
        elif self.incumbent is self.running:
            legend += " (the incumbent)"
        return legend
