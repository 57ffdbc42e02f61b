"""What each GPU of a fleet is doing, and how busy the fleet is (``--gpus N`` > 1).

``FleetBoard(slots, emit)`` is the fleet's account for the cockpit: ``show(slot,
phase, ...)`` emits a WorkerUpdated when a slot's phase, experiment or last
val_bpb changes (the workers strip renders them); ``running(slot)`` and
``ran(slot)`` bracket each train.py a slot runs, so the busy seconds count runs
still in flight; ``session(rows, budget_s)`` gives the figures of TimeAccounted's
``session`` (experiments per hour against the ideal N x 3600 / budget, the fleet's
idle share) and ``figures(...)`` the fleet record's (bench/scaling.py reads them).
All times are seconds from ``clock`` (time.monotonic).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

from cockpit.events import Emit, WorkerUpdated


class FleetBoard:
    """The slots' phases and busy seconds (module docstring)."""

    def __init__(self, slots: Sequence, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        self.slots, self.emit, self.clock = list(slots), emit, clock
        self.busy_s = [0.0] * len(self.slots)  # seconds each slot ran train.py, since ``begin``
        self.started: Optional[float] = None  # when the baselines ended (idle counts from there)
        self._since: dict[int, float] = {}  # slot index -> when its run in flight started
        self._shown: dict[int, WorkerUpdated] = {}
        self._vals: dict[int, float] = {}  # slot index -> the last val_bpb its runs measured

    def show(self, slot, phase: str, experiment: int = -1, description: str = "", budget_s: float = 0.0) -> None:
        """Slot ``slot`` is in ``phase`` (cockpit.events.WORKER_PHASES) on ``experiment``:
        a WorkerUpdated when that differs from what was shown last."""
        event = WorkerUpdated(slot.worker, slot.node, slot.host, slot.gpu, phase, experiment, description,
                              self._vals.get(slot.index), budget_s)
        if self._shown.get(slot.index) != event:
            self._shown[slot.index] = event
            self.emit(event)

    def measured(self, slot, val_bpb: Optional[float]) -> None:
        """A run of ``slot`` ended with ``val_bpb`` (None: it had none; the last one stays)."""
        if val_bpb is not None:
            self._vals[slot.index] = val_bpb

    def begin(self) -> None:
        """The baselines ended: the busy seconds and the idle share count from now."""
        self.started = self.clock()
        self.busy_s = [0.0] * len(self.slots)
        self._since = {i: self.started for i in self._since}

    def running(self, slot) -> None:
        """``slot`` started a train.py."""
        self._since[slot.index] = self.clock()

    def ran(self, slot) -> None:
        """``slot``'s train.py ended: its seconds count as busy."""
        began = self._since.pop(slot.index, None)
        if began is not None:
            self.busy_s[slot.index] += self.clock() - max(began, self.started or began)

    def idle_share(self) -> list[float]:
        """Per slot, the share (0..1) of the seconds since ``begin`` it ran no train.py
        (a run in flight counts up to now); zeros before ``begin``."""
        if self.started is None:
            return [0.0] * len(self.slots)
        now = self.clock()
        elapsed = now - self.started
        if elapsed <= 0:
            return [0.0] * len(self.slots)
        busy = [b + (now - max(self._since[i], self.started) if i in self._since else 0.0)
                for i, b in enumerate(self.busy_s)]
        return [max(0.0, 1.0 - b / elapsed) for b in busy]

    def session(self, rows: int, budget_s: float) -> dict:
        """TimeAccounted's ``session`` for a fleet: ``workers`` (N), ``wall_s`` since the
        baselines ended, ``experiments_per_hour`` (rows since then; None before), the ideal
        ``ideal_per_hour`` N x 3600 / ``budget_s`` and ``idle_share``, the mean of the slots'."""
        shares = self.idle_share()
        wall = self.clock() - self.started if self.started is not None else 0.0
        return {"workers": len(self.slots), "wall_s": wall, "rows": rows,
                "experiments_per_hour": rows * 3600.0 / wall if wall > 0 else None,
                "ideal_per_hour": len(self.slots) * 3600.0 / budget_s if budget_s > 0 else None,
                "idle_share": sum(shares) / len(shares) if shares else 0.0}

    def figures(self, rows: int, duplicates_refused: int) -> dict:
        """The fleet record's figures: {"rows", "duplicates_refused", "idle_share": [per slot,
        0..1], "elapsed_s"} since the baselines ended."""
        elapsed = self.clock() - self.started if self.started is not None else 0.0
        return {"rows": rows, "duplicates_refused": duplicates_refused, "idle_share": self.idle_share(),
                "elapsed_s": elapsed}
