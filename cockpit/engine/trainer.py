"""One training run of train.py on the session's device: the part of the engine that
owns a run, composed into cockpit.engine.ratchet.Engine and used for experiments and
for re-runs (cockpit.engine.measuring) alike.

``Trainer.train`` announces the run (RunStarted), starts train.py through
cockpit.training.runner with the session's environment and the holdout score's path
(cockpit.rules.holdout), a hard limit of ``budget_s * hard_limit_factor +
hard_limit_grace_s`` seconds, snapshots what the run may not change
(cockpit.training.run_guard) and the program the proposals see
(cockpit.engine.program_hold), restores them afterwards, and returns the result and
its parsed summary (RunFinished). What only an experiment does (early abort, the
proposal asked ahead, the journal's ``running`` entry) comes in as callbacks; the
session's state is read, never written, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.control import SessionControl
from cockpit.engine.session import SessionConfig, SessionError
from cockpit.events import EngineMessage, Emit, RunFinished, RunStarted
from cockpit.rules.budget_clock import WALL
from cockpit.rules.holdout import holdout_env
from cockpit.rules.summary import parse_summary
from cockpit.store.repo import short
from cockpit.store.workspace import Workspace
from cockpit.training.run_guard import RunGuard
from cockpit.training.runner import Run, RunResult


class Trainer:
    """Trains one commit at a time on this session's device (module docstring).
    ``env()`` is the environment of a run of train.py on top of cockpit.rules.run_env's
    allow-list (cockpit.engine.startup ``SessionStart.train_env``)."""

    def __init__(self, ws: Workspace, config: SessionConfig, book: Bookkeeper, control: SessionControl,
                 emit: Emit, env: Callable[[], dict]) -> None:
        self.ws, self.config, self.book, self.control, self.emit, self.env = ws, config, book, control, emit, env

    def holdout_path(self, n: int, commit: str, what: str = "run") -> Path:
        """Where the harness writes this run's holdout score (cockpit.rules.holdout):
        .cockpit/holdout/<tag>-<n:04d>-<commit>-<what>.json (the folder is made)."""
        folder = self.ws.path / ".cockpit" / "holdout"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.config.tag}-{n:04d}-{short(commit)}-{what}.json"

    def log_path(self, name: str) -> Path:
        """The path of run log ``name`` (relative to the workspace, e.g. logs/exp-0001-abc1234.log)."""
        return self.ws.path / name

    def hard_limit_s(self) -> float:
        """Seconds after which a run is killed: the time budget times ``hard_limit_factor``
        plus ``hard_limit_grace_s`` (cockpit.engine.session.SessionConfig), counted on the
        budget's clock (SessionFacts.clock: on the CPU clock, the run's CPU seconds per
        thread with a wall backstop, cockpit.training.budget_limit)."""
        return self.book.budget_s * self.config.hard_limit_factor + self.config.hard_limit_grace_s

    async def train(self, n: int, commit: str, label: str, log_name: str, scores: Path, best: Optional[float],
                    on_start: Callable[[int], None], started: Callable[[], None] = lambda: None,
                    ended: Callable[[], None] = lambda: None) -> tuple[RunResult, dict]:
        """Run train.py at ``commit`` (checked out) as experiment ``n``, its output in
        ``log_name`` (relative to the workspace), its holdout score written to ``scores``
        when below ``best`` (None: always). ``on_start(pid)`` once the process runs,
        ``started()`` just before the wait, ``ended()`` when it is over (before the
        guard restores). Returns (RunResult, parsed summary: cockpit.rules.summary).
        Raises SessionError when what the run changed cannot be put back; Stopped or
        Restart never (a stopped run is a result with ``stopped``)."""
        self.emit(RunStarted(n, short(commit), label, self.book.budget_s, str(self.ws.path / log_name)))
        run = Run(self.config.run_command, self.ws.path, self.ws.path / log_name,
                  env={**self.env(), **holdout_env(scores, best)}, hard_limit_s=self.hard_limit_s(),
                  kill_grace_s=self.config.kill_grace_s, experiment=n, emit=self.emit, on_start=on_start,
                  limit_clock=self.book.facts.clock if self.book.facts else WALL)
        started()
        self.book.times.run_started()
        guard = self._guard()
        try:
            result = await self.control.guarded(run)
        finally:
            self.book.times.run_ended()
            ended()
            self._restore(guard, n)
        summary = parse_summary(result.text)
        if result.log_error:
            self.emit(EngineMessage(f"{result.log_error}; the run's output is kept in memory only", "error"))
        if result.stray_processes:
            self.emit(EngineMessage(f"killed {result.stray_processes} process(es) of the run that had left its "
                                    "process group (setsid)", "warning"))
        self.emit(RunFinished(n, short(commit), result.returncode, result.timed_out, summary,
                              result.timings()["wall_s"]))
        return result, summary

    def _guard(self) -> RunGuard:
        """Just before a run: snapshot what it may not change (cockpit.training.run_guard)
        and the program proposals see while it trains (cockpit.engine.program_hold)."""
        self.book.program.run_started()
        return RunGuard(self.ws.path)

    def _restore(self, guard: RunGuard, n: int) -> None:
        """Put back what the run changed of prepare.py and git's configuration,
        hooks and attributes (cockpit.training.run_guard), before the engine runs git
        again, and hold a change of the program (cockpit.engine.program_hold); one
        warning line for each."""
        held = self.book.program.run_ended(n)
        if held:
            self.emit(EngineMessage(held, "warning"))
        try:
            changed = guard.restore()
        except OSError as exc:
            raise SessionError(f"#{n}: the run changed prepare.py or git's configuration or hooks and it cannot "
                               f"be put back ({exc}); check them by hand") from None
        if changed:
            self.emit(EngineMessage(f"#{n}: the run changed {', '.join(changed)}; restored (a run may not "
                                    "change prepare.py or git's configuration, hooks or attributes)", "warning"))
