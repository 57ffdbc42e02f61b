"""Which clock a harness counts its time budget on (prepare.py's BUDGET_CLOCK and
BUDGET_THREADS, read by the engine's TIME_BUDGET probe): the hard limit follows it
(cockpit.training.budget_limit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BudgetClock:
    """``kind`` "wall" or "cpu" (prepare.py's BUDGET_CLOCK) and ``threads``, the divisor
    of the CPU clock (prepare.py's BUDGET_THREADS, >= 1). Raises ValueError otherwise."""

    kind: str = "wall"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("wall", "cpu"):
            raise ValueError(f"budget clock must be wall or cpu, not {self.kind!r}")
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"budget clock threads must be a whole number >= 1, not {self.threads!r}")

    def counts_cpu(self) -> bool:
        """True when the hard limit is counted in CPU seconds (and /proc can say them)."""
        return self.kind == "cpu" and Path("/proc/self/stat").exists()

    def describe(self) -> str:
        """"wall seconds" or "CPU seconds over N threads" (for messages)."""
        return "wall seconds" if self.kind == "wall" else f"CPU seconds over {self.threads} thread(s)"


WALL = BudgetClock()
