"""The status bar: where the session stands, in two lines.

Line 1: title, tag, experiment, phase, budget left; best val_bpb (the
incumbent's, cockpit.rules.standing) and its delta from the baseline (the session's
first kept row), the noise floor's sigma once measured. Line 2: the session's state (running,
pausing, paused, awaiting approval with the keys to press, stopping, ended),
the approval gate, experiments per hour (this session's rows over the time
since it started) against the ideal 3600 / budget and the GPU-idle share
(both from the engine's TimeAccounted, cockpit.rules.timekeeping), the agent's cost
so far, the last run's peak memory; and where it runs (branch, profile, agent).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cockpit.rules.standing import Standing

# What line 2 says for each pause state, and how.
PAUSE_LABELS = {
    "running": ("● running", "green"),
    "pausing": ("⏸ pausing after this experiment", "bold yellow"),
    "paused": ("⏸ paused · p to resume", "bold black on yellow"),
    "resuming": ("▶ resuming…", "bold yellow"),
}
AWAITING = ("◆ awaiting approval · F8/a approve · F6/v veto", "bold black on cyan")


def cost_of(usage: Any) -> Optional[float]:
    """``cost_usd`` of an agent usage (a dict, an object or None); None when unknown."""
    cost = usage.get("cost_usd") if isinstance(usage, Mapping) else getattr(usage, "cost_usd", None)
    return None if cost is None else float(cost)


def per_hour(count: int, seconds: float) -> Optional[float]:
    """``count`` events in ``seconds`` as a rate per hour (None before the first or within a second)."""
    return count * 3600.0 / seconds if count and seconds >= 1.0 else None


def format_left(seconds: float) -> str:
    """Budget left as m:ss."""
    minutes, secs = divmod(max(int(round(seconds)), 0), 60)
    return f"{minutes}:{secs:02d} left"


class StatusBar(Widget):
    """Session state, updated by the app's event handlers through its attributes."""

    title: reactive[str] = reactive("cockpit")
    tag: reactive[str] = reactive("")
    where: reactive[str] = reactive("")
    experiment: reactive[Optional[int]] = reactive(None)
    worker: reactive[str] = reactive("")  # a fleet's selected worker ("gpu3"): its run is the one shown
    phase: reactive[str] = reactive("starting")
    remaining_s: reactive[Optional[float]] = reactive(None)
    best: reactive[Optional[float]] = reactive(None)
    baseline: reactive[Optional[float]] = reactive(None)
    pause: reactive[str] = reactive("running")
    stopping: reactive[bool] = reactive(False)
    ended: reactive[str] = reactive("")
    gate: reactive[bool] = reactive(False)
    session_rows: reactive[int] = reactive(0)
    cost_usd: reactive[Optional[float]] = reactive(None)
    memory_gb: reactive[Optional[float]] = reactive(None)
    idle_share: reactive[Optional[float]] = reactive(None)
    sigma: reactive[Optional[float]] = reactive(None)
    ideal_per_hour: reactive[Optional[float]] = reactive(None)

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.started_at: Optional[float] = None
        self.gpus = 1  # GPUs of the session (TimeAccounted: a fleet's N)

    def on_mount(self) -> None:
        self.set_interval(10.0, self.refresh)  # the rate per hour moves with time alone

    def session_started(self, age_s: float = 0.0) -> None:
        """The session started ``age_s`` seconds ago (0: now)."""
        self.started_at = self.clock() - age_s

    def count_row(self, memory_gb: float, usage: Any) -> None:
        """A row of this session: the rate, the cost and the last run's peak memory."""
        self.session_rows += 1
        self.memory_gb = memory_gb if memory_gb > 0 else None
        self.add_cost(cost_of(usage))

    def account(self, session: Mapping) -> None:
        """The engine's session figures (TimeAccounted.session): GPU-idle share
        (0..1; a fleet's, the mean of its GPUs') and the ideal experiments per hour
        (a fleet's: N x 3600 / budget)."""
        self.gpus = int(session.get("workers") or 1)
        share, ideal = session.get("idle_share"), session.get("ideal_per_hour")
        self.idle_share = float(share) if share is not None else None
        self.ideal_per_hour = float(ideal) if ideal else None

    def add_cost(self, cost: Optional[float]) -> None:
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost

    def show_standing(self, standing: Optional[Standing]) -> None:
        """Show where the ratchet stands after the newest row (cockpit.rules.standing,
        the fold the staircase, the engine and ``cockpit report`` use): ``best``
        the incumbent's val_bpb (back up after a revert, a forced keep's even when
        worse), ``baseline`` its session's first keep. None: no row yet."""
        self.best = standing.best if standing is not None else None
        self.baseline = standing.baseline if standing is not None else None

    def render(self) -> Text:
        width = self.content_size.width
        top = self._line(self._progress(), self._score(), width)
        bottom = self._line(Text.assemble(self._state(), self._stats()), Text(self.where, style="dim"), width)
        return Text("\n").join([top, bottom])

    @staticmethod
    def _line(left: Text, right: Text, width: int) -> Text:
        """``left`` and ``right`` on one line; ``right`` gives way when space runs out."""
        if left.cell_len > width:  # never wider than the bar: stale cells would survive
            left = left.copy()
            left.truncate(max(width, 0), overflow="ellipsis")
        room = width - left.cell_len - 2
        if right.cell_len > room:
            right = right.copy() if room >= 8 else Text()
            right.truncate(max(room, 0), overflow="ellipsis")
        gap = max(width - left.cell_len - right.cell_len, 0 if not right else 2)
        return Text.assemble(left, " " * gap, right)

    def _progress(self) -> Text:
        text = Text.assemble((self.title, "bold"), " ", (self.tag, "bold cyan"))
        if self.worker:
            text.append(f" │ {self.worker}")
        if self.experiment is not None:
            text.append(f" {'' if self.worker else '│ '}exp {self.experiment}")
        text.append(" │ ").append(self.phase, style="bold")
        if self.remaining_s is not None and self.phase == "training":
            text.append(f" │ {format_left(self.remaining_s)}")
        return text

    def _score(self) -> Text:
        if self.best is None:
            return Text("best —", style="dim")
        text = Text.assemble("best ", (f"{self.best:.6f}", "bold"))
        if self.baseline is not None:
            delta = self.best - self.baseline
            text.append(f" (Δ {delta:+.6f})", style="green" if delta < 0 else "dim")
        if self.sigma is not None:
            text.append(f" σ {self.sigma:.6f}", style="dim")
        return text

    def _state(self) -> Text:
        if self.stopping:
            return Text("■ stopping… killing the run, writing its row", style="bold red")
        if self.ended:
            return Text(f"■ ended: {self.ended}", style="bold")
        if self.phase == "awaiting-approval":
            return Text(*AWAITING)
        label, style = PAUSE_LABELS.get(self.pause, (self.pause, ""))
        return Text(label, style=style)

    def _stats(self) -> Text:
        """The gate (while the session runs), experiments per hour, cost, the last run's peak memory."""
        text = Text()
        if not (self.ended or self.stopping):
            text = Text(" │ gate ").append("on", "bold cyan") if self.gate else Text(" │ gate off", style="dim")
        elapsed = None if self.started_at is None else self.clock() - self.started_at
        rate = None if elapsed is None else per_hour(self.session_rows, elapsed)
        if rate is not None:
            ideal = f"/{self.ideal_per_hour:.0f}" if self.ideal_per_hour else ""
            text.append(f" │ {rate:.1f}{ideal} exp/h")
        if self.idle_share is not None:
            text.append(f" │ {f'{self.gpus} GPUs' if self.gpus > 1 else 'GPU'} idle {100 * self.idle_share:.1f}%")
        if self.cost_usd is not None:
            text.append(f" │ ${self.cost_usd:.4f}")
        if self.memory_gb is not None:
            text.append(f" │ peak {self.memory_gb:.1f} GB")
        return text
