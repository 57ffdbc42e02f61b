"""Early abort of the running experiment, as an observer of the engine's events.

``AbortWatch`` keeps each run's loss curve, (training seconds, loss) from its
StepLogged events, by commit, so that the incumbent's curve is there when the next
experiment trains; while one trains, cockpit.rules.early_abort ``LossWatch`` compares
the two and, when the run is clearly behind (after ``abort_after`` of the budget, by
more than ``abort_margin``), the human controls stop it as an abort
(cockpit.engine.actions ``HumanActions.abort``: the row is a discard with its reason).
The seconds saved are summed in the session's time accounting (``saved_s``).
Registered with ``Engine.observe``; armed by the engine for each experiment's run.
"""

from __future__ import annotations

from typing import Callable, Optional

from cockpit.events import Event, StepLogged
from cockpit.rules.early_abort import LossWatch
from cockpit.rules.timekeeping import TimeKeeper
from cockpit.store.settings import Settings


class AbortWatch:
    """Loss curves by commit and the early-abort watch of the run in flight (module
    docstring). ``abort(reason) -> bool`` stops the run (False when it was not
    running any more); ``budget_s()`` is the session's time budget in seconds."""

    def __init__(self, settings: Settings, times: TimeKeeper, budget_s: Callable[[], float],
                 abort: Callable[[str], bool]) -> None:
        self.settings, self.times, self.budget_s, self.abort = settings, times, budget_s, abort
        self.watch: Optional[LossWatch] = None
        self._curve: Optional[list[tuple[float, float]]] = None
        self._curves: dict[str, list[tuple[float, float]]] = {}

    def arm(self, n: int, commit: str, incumbent: str) -> None:
        """Experiment ``n`` (``commit``) starts training against the keep ``incumbent``:
        record its curve, and watch it when early abort is on, ``n`` is not the
        baseline and the incumbent's curve is known (a resumed session's is not)."""
        curve = self._curves.get(incumbent)
        settings = self.settings
        self.watch = (LossWatch(curve, self.budget_s(), settings.abort_after, settings.abort_margin)
                      if settings.early_abort and n > 0 and curve else None)
        self._curve = self._curves[commit] = []

    def disarm(self) -> None:
        """The run ended: stop recording (its curve stays, for when it is the incumbent)."""
        self._curve = None

    @property
    def verdict(self) -> dict:
        """What early abort decided for the last watched run (LossWatch.verdict:
        reason, at_s, saved_s), {} when it was not watched."""
        return (self.watch.verdict if self.watch is not None else None) or {}

    def observe(self, event: Event) -> None:
        """Follow a StepLogged of the run in flight; abort it when it is clearly behind."""
        if not isinstance(event, StepLogged) or self._curve is None:
            return
        self._curve.append((event.progress_pct / 100.0 * self.budget_s(), event.loss))
        reason = self.watch.feed(event) if self.watch is not None else None
        if reason and self.abort(reason):
            self.times.totals["saved_s"] = self.times.totals.get("saved_s", 0.0) + self.watch.verdict["saved_s"]
