"""What one run of a training command left: its exit status, whether it was stopped
or killed at the hard limit, its output, its timings (seconds) and the stray
processes killed after it; and RunnerError (a run that cannot be started).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cockpit.rules.summary import fail_reason


class RunnerError(RuntimeError):
    """The command could not be started (missing interpreter, bad working directory)."""


class WorkerLost(RunnerError):
    """The Ray worker running an experiment (or its node) went away before the run ended
    (cockpit.training.ray_slots; the fleet makes it a crash row ``[worker lost]``)."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended. Times are ``time.monotonic()`` seconds; ``first_step`` /
    ``last_step`` are None when no progress line was seen. ``stopped`` is True when
    ``kill()`` ended it; ``timed_out`` when the hard limit did. ``stray_processes``:
    descendants that had left the process group, killed by ``sweep`` after it."""

    returncode: int
    timed_out: bool
    stopped: bool
    text: str
    started: float
    ended: float
    first_step: Optional[float]
    last_step: Optional[float]
    log_error: str = ""
    stray_processes: int = 0
    counted_start: Optional[float] = None
    """When the first counted training step began (the budget's clock started): the
    end of the last step line that still showed 0% progress minus that step's own
    time, i.e. the start of the first step whose time counted (train.py leaves
    warm-up and compile steps out, as upstream does); None when no line showed
    progress (then the first step line stands in)."""

    def last_line(self) -> str:
        """The last non-empty line of the output (usually the error), or "no output"."""
        lines = [line.strip() for line in self.text.replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "no output"

    def failure(self) -> str:
        """Why the run failed, in its own words: its last ``FAIL: <reason>`` line (the
        run contract, cockpit.rules.summary ``fail_reason``; up to 300 characters) when it
        printed one, else ``last_line()``."""
        reason = fail_reason(self.text)
        return f"FAIL: {reason}"[:300] if reason else self.last_line()

    def timings(self) -> dict:
        """{startup_s, training_s, eval_s, wall_s}: start -> the first counted training
        step (``counted_start``, else the first step line: imports, data, compile and the
        uncounted warm-up steps), then -> the last step line, last step line -> exit,
        start -> exit (seconds)."""
        wall = self.ended - self.started
        if self.first_step is None or self.last_step is None:
            return {"startup_s": wall, "training_s": 0.0, "eval_s": 0.0, "wall_s": wall}
        begun = self.counted_start if self.counted_start is not None else self.first_step
        begun = min(max(begun, self.started), self.last_step)
        return {
            "startup_s": begun - self.started,
            "training_s": self.last_step - begun,
            "eval_s": self.ended - self.last_step,
            "wall_s": wall,
        }
