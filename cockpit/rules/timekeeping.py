"""Where a session's seconds go: the GPU's busy time and every idle gap.

The GPU trains from a run's first counted step to its last (``training_s`` of
cockpit.training.runner's timings). Everything else is idle time, split into:

- ``startup_s`` / ``eval_s``: inside the run, before the first step and after
  the last one (imports, data loader, compile; the final evaluation);
- the gap between one run's exit and the next run's start (``gap_s``), which
  is ``wait_model_s`` (the loop waited for the agent: a proposal not ready in
  time, a re-ask, a fix), ``wait_human_s`` (the approval gate), ``paused_s``
  and ``overhead_s``: the cockpit's own work (git, parsing, writing rows,
  records and the journal, the checks before a run), ``git_s`` part of it.

Each experiment's record carries its account (the gap *before* its own run);
the session sums them from the moment the baseline run started. The ideal
rate is ``3600 / budget`` experiments an hour (upstream's figure: a 300 s
budget gives 12 an hour), reached only when nothing but training takes time.
Clocks are ``time.monotonic`` (seconds).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

IDLE_KINDS = ("wait_model_s", "wait_human_s", "paused_s", "git_s")
RUN_KINDS = ("startup_s", "training_s", "eval_s")


class TimeKeeper:
    """Accounts one session's time (see the module docstring). The engine calls
    ``waiting(kind)`` around waits, ``run_started`` / ``run_ended`` around each
    run, and ``account(run_timings, propose_s)`` when the experiment's row is
    written. ``clock`` (seconds) is replaceable for tests."""

    def __init__(self, budget_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.budget_s = budget_s
        self._session_start: Optional[float] = None
        self._last_end: Optional[float] = None
        self._gap = self._empty_gap()
        self._run_gap: dict = {}
        self.totals: dict = {kind: 0.0 for kind in (*IDLE_KINDS, "overhead_s", *RUN_KINDS)}
        self.experiments = 0

    @staticmethod
    def _empty_gap() -> dict:
        return {kind: 0.0 for kind in IDLE_KINDS}

    @contextmanager
    def waiting(self, kind: str) -> Iterator[None]:
        """Count the time spent inside the ``with`` block as ``kind`` (one of
        IDLE_KINDS) of the current gap; nested blocks of another kind are not
        subtracted, so wrap only leaf waits."""
        started = self.clock()
        try:
            yield
        finally:
            self._gap[kind] += self.clock() - started

    def run_started(self) -> dict:
        """A run's process starts now: close the gap before it. Returns the gap
        account ({gap_s, wait_model_s, wait_human_s, paused_s, git_s,
        overhead_s}); the first run (the baseline) has no gap and starts the
        session's clock."""
        now = self.clock()
        if self._session_start is None:
            self._session_start = now
            gap = {"gap_s": 0.0, **self._empty_gap(), "overhead_s": 0.0}
        else:
            total = now - (self._last_end if self._last_end is not None else now)
            waits = self._gap["wait_model_s"] + self._gap["wait_human_s"] + self._gap["paused_s"]
            gap = {"gap_s": total, **self._gap, "overhead_s": max(0.0, total - waits)}
        self._gap = self._empty_gap()
        self._run_gap = gap
        return gap

    def run_ended(self) -> None:
        """A run's process ended now: the next gap starts."""
        self._last_end = self.clock()

    def account(self, run_timings: dict, propose_s: float = 0.0, experiment: bool = True) -> dict:
        """The experiment's account (its run's ``run_timings`` from
        RunResult.timings() plus the gap before it and ``propose_s``), added to
        the session totals. Returns the per-experiment dict. A re-run
        (``experiment`` False: noise floor, confirming re-run) is added to the
        totals, its training counted as the GPU's work, but not as an experiment."""
        gap = self._run_gap or {"gap_s": 0.0, **self._empty_gap(), "overhead_s": 0.0}
        self._run_gap = {}
        own = {"propose_s": propose_s, **gap, **{k: float(run_timings.get(k, 0.0)) for k in (*RUN_KINDS, "wall_s")}}
        for kind in self.totals:
            self.totals[kind] += own.get(kind, 0.0)
        self.experiments += 1 if experiment else 0
        return own

    def session(self) -> dict:
        """Session figures so far: ``wall_s`` since the baseline started,
        ``training_s``, ``idle_share`` = 1 - training / wall (0 before any run),
        ``experiments_per_hour``, ``ideal_per_hour`` = 3600 / budget, and the
        summed kinds of ``totals``."""
        wall = 0.0 if self._session_start is None else self.clock() - self._session_start
        training = self.totals["training_s"]
        rate = self.experiments * 3600.0 / wall if wall > 0 else 0.0
        ideal = 3600.0 / self.budget_s if self.budget_s > 0 else 0.0
        return {"wall_s": wall, "idle_share": (1.0 - training / wall) if wall > 0 else 0.0,
                "experiments": self.experiments, "experiments_per_hour": rate, "ideal_per_hour": ideal,
                **self.totals}
