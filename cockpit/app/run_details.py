"""What the cockpit remembers of each experiment beyond its results row.

Built only from engine events (live or replayed on attach): the run's timings
and exit from RunFinished, the agent's tokens and cost from RowLogged, where
its seconds went (model, start-up, training, eval, git, the cockpit's own
overhead) from TimeAccounted, and the last lines of its output from LogLine. The diff pane shows them when a results
row is selected.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from rich.text import Text

from cockpit.events import LogLine, RowLogged, RunFinished, TimeAccounted

LOG_TAIL_LINES = 12  # output lines kept per experiment


@dataclass
class RunDetails:
    """One experiment's timings (seconds), exit, agent usage and output tail."""

    wall_s: Optional[float] = None
    training_s: Optional[float] = None
    total_s: Optional[float] = None
    returncode: Optional[int] = None
    timed_out: bool = False
    usage: Any = None
    account: Optional[dict] = None
    log_tail: deque = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))


class RunDetailsStore:
    """RunDetails by experiment number, fed by the app's event handlers."""

    def __init__(self) -> None:
        self.runs: dict[int, RunDetails] = {}

    def _of(self, experiment: int) -> RunDetails:
        return self.runs.setdefault(experiment, RunDetails())

    def log_line(self, event: LogLine) -> None:
        self._of(event.experiment).log_tail.append(event.text)

    def run_finished(self, event: RunFinished) -> None:
        details = self._of(event.experiment)
        details.wall_s, details.returncode, details.timed_out = event.wall_s, event.returncode, event.timed_out
        details.training_s = _number(event.summary.get("training_seconds"))
        details.total_s = _number(event.summary.get("total_seconds"))

    def row_logged(self, event: RowLogged) -> None:
        usage = getattr(event, "agent_usage", None)
        if usage:
            self._of(event.experiment).usage = usage

    def time_accounted(self, event: TimeAccounted) -> None:
        self._of(event.experiment).account = dict(event.timings)

    def describe(self, experiment: int) -> Optional[Text]:
        """Timings, usage and output tail of ``experiment`` as text (None when nothing is known)."""
        details = self.runs.get(experiment)
        if details is None:
            return None
        text = Text()
        facts = _timings(details) + _usage(details.usage)
        if facts:
            text.append(" · ".join(facts) + "\n", style="dim")
        if details.account:
            text.append(account_line(details.account) + "\n", style="dim")
        if details.log_tail:
            text.append("output, last lines:\n", style="dim")
            text.append("\n".join(details.log_tail) + "\n")
        return text


def _timings(details: RunDetails) -> list[str]:
    facts = []
    if details.training_s is not None:
        facts.append(f"training {details.training_s:.1f} s")
    if details.total_s is not None:
        facts.append(f"total {details.total_s:.1f} s")
    if details.wall_s is not None:
        facts.append(f"wall {details.wall_s:.1f} s")
    if details.returncode not in (None, 0):
        facts.append("timed out" if details.timed_out else f"exit {details.returncode}")
    return facts


def account_line(timings: Mapping) -> str:
    """Where an experiment's seconds went (TimeAccounted.timings), one line: the
    model's time and how much of it the GPU waited for, start-up, training,
    eval, the human, the pause, git and the rest of the cockpit's overhead."""
    get = lambda key: float(timings.get(key) or 0.0)  # noqa: E731
    parts = [f"model {get('propose_s'):.1f} s (GPU waited {get('wait_model_s'):.1f} s)",
             f"start-up {get('startup_s'):.1f} s", f"training {get('training_s'):.1f} s",
             f"eval {get('eval_s'):.1f} s"]
    if get("wait_human_s"):
        parts.append(f"approval {get('wait_human_s'):.1f} s")
    if get("paused_s"):
        parts.append(f"paused {get('paused_s'):.1f} s")
    parts.append(f"cockpit {get('overhead_s'):.2f} s (git {get('git_s'):.2f} s)")
    return "time: " + " · ".join(parts)


def _usage(usage: Any) -> list[str]:
    if not usage:
        return []
    get = usage.get if isinstance(usage, Mapping) else (lambda key: getattr(usage, key, None))
    facts = []
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    if prompt is not None or completion is not None:
        facts.append(f"tokens {prompt or 0:,} in / {completion or 0:,} out")
    cost = get("cost_usd")
    facts.append(f"cost ${cost:.4f}" if cost is not None else "cost unknown")
    return facts


def _number(value: Any) -> Optional[float]:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
