"""The clock a run's hard limit is counted on: the one its time budget is counted on.

prepare.py says which clock train.py's TIME_BUDGET runs on (``BUDGET_CLOCK``: "wall"
on a GPU, as upstream; "cpu" on the cpu and tiny profiles, the process's CPU seconds
divided by ``BUDGET_THREADS``; substrate/prepare.py ``budget_clock``). A hard limit
counted in wall seconds would kill a valid CPU-clock run on a loaded machine: one
busy loop beside a 60 s cpu-profile run stretched it to 138.7 s of wall time, near
the 150 s limit (docs/benchmarks.md "Budget clock"). So on the CPU clock the hard
limit counts the CPU seconds of the run's whole process group over the same thread
count, read from /proc (Linux; elsewhere the wall clock stands in), with a wall-clock
backstop of ``WALL_BACKSTOP`` times the limit, because a hung run (a deadlock, a
sleep) spends no CPU seconds at all.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cockpit.rules.budget_clock import BudgetClock

WALL_BACKSTOP = 4.0  # wall seconds per hard-limit second on the CPU clock: a hung run still ends
CHECK_S = 0.5  # seconds between reads of the group's CPU time




def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system, float) spent so far by the live processes of process
    group ``pgid`` and the children they have reaped, from /proc/<pid>/stat (fields 14-17:
    utime, stime, cutime, cstime, in clock ticks). A process gone mid-read counts 0."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 14 and int(fields[2]) == pgid:  # fields[0] is the state (stat field 3)
            total += sum(int(value) for value in fields[11:15])
    return total / tick


class LimitWatch:
    """Counts one run against its hard limit on ``clock``: ``spent(pgid)`` is the run's
    seconds so far on that clock (CPU seconds of the group over ``clock.threads``, or wall
    seconds since the watch was made), ``over(pgid)`` True once the limit ``limit_s`` or
    (on the CPU clock) the wall backstop ``limit_s * WALL_BACKSTOP`` is passed."""

    def __init__(self, clock: BudgetClock, limit_s: float) -> None:
        self.clock, self.limit_s = clock, limit_s
        self.started = time.monotonic()

    def spent(self, pgid: int) -> float:
        if not self.clock.counts_cpu():
            return time.monotonic() - self.started
        return group_cpu_seconds(pgid) / self.clock.threads

    def over(self, pgid: int) -> bool:
        wall = time.monotonic() - self.started
        if not self.clock.counts_cpu():
            return wall >= self.limit_s
        return self.spent(pgid) >= self.limit_s or wall >= self.limit_s * WALL_BACKSTOP
