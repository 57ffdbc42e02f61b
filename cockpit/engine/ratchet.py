"""The ratchet: baseline, then propose -> commit -> train -> keep or reset, forever.

``Engine(workspace, config, agent, emit)`` runs one session on a new branch
``autoresearch/<tag>``, reports through ``emit(event)`` (cockpit.events, redacted,
seen first by the observers registered with ``observe``) and takes the human's
commands through ``send(command)``. It is composed of parts that are each handed
what they need when made, and call nothing private of one another:
``SessionStart`` (start-up, checks between runs, the end: cockpit.engine.startup;
it returns the frozen ``SessionFacts``), ``Proposer`` (asking the agent:
cockpit.engine.proposing), ``ProposalQueue`` (the proposal asked ahead while a run
trains: cockpit.engine.pipeline), ``HumanActions`` and ``Inbox`` (the human's commands:
cockpit.engine.actions, cockpit.engine.inbox), ``Trainer`` (one run on the device:
cockpit.engine.trainer), ``AbortWatch`` (early abort: cockpit.engine.abort_watch),
``Measurer`` (noise floor, confirming re-runs, holdout: cockpit.engine.measuring) and
``Bookkeeper`` (verdict, reset, row, record, journal: cockpit.engine.bookkeeping).

Keep rule: cockpit.rules.noise through cockpit.engine.session (strictly lower than
the best kept val_bpb, beyond the noise floor when measured). Anything else is reset
to the last kept commit (edits of program.md and prepare.py survive). Every
experiment appends one results.tsv row and one records.jsonl object; a dropped
proposal only a record. A fixable crash (``session.fixable``) gets ``fix_attempts``
tries on top of the crashed train.py with the run's log tail, each its own
experiment ("<idea> (fix k/N: <fix>)"). A proposal vetoed at the approval gate, or
overtaken by a forced keep or a revert, ends without training (``Restart``).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

from cockpit.engine.abort_watch import AbortWatch
from cockpit.engine.agent_desk import AgentDesk
from cockpit.engine.actions import HumanActions
from cockpit.engine.inbox import Inbox
from cockpit.agents.base import Agent, AgentExhausted, NoFix
from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.clock import now_iso
from cockpit.engine.context import log_tail
from cockpit.engine.control import Restart, SessionControl, Stopped
from cockpit.rules.edits import unified_diff
from cockpit.commands import Command
from cockpit.events import (EngineMessage, Emit, Event, LogLine, PhaseChanged, ProposalReady, SessionEnded,
                            StepLogged)
from cockpit.engine.faults import fault_point
from cockpit.store.results import clean_description
from cockpit.rules.holdout import read_holdout
from cockpit.engine.measuring import Measurer
from cockpit.engine.outcome import EXPECTED_ERRORS, session_reason
from cockpit.engine.pipeline import ProposalQueue
from cockpit.engine.proposing import Asked, Proposer
from cockpit.rules.redact import redact, redact_event
from cockpit.store.repo import GitRepo, short
from cockpit.training.runner import RunResult
from cockpit.engine.session import SessionConfig, SessionError, Trial, decide, fixable
from cockpit.engine.startup import SessionStart
from cockpit.engine.trainer import Trainer
from cockpit.store.workspace import Workspace


__all__ = ["Engine", "SessionConfig", "SessionError", "decide", "EXPECTED_ERRORS"]


class Engine:
    """One ratchet session (see module docstring). ``run()`` once; ``send()`` any time
    from the same event loop."""

    def __init__(self, workspace: Workspace, config: SessionConfig, agent: "Agent | AgentDesk", emit: Emit) -> None:
        self.ws, self.config, self._emit = workspace, config, emit
        self.desk = desk = AgentDesk.of(agent)  # the agents it may switch between (cockpit.engine.agent_desk)
        self._observers: list[Callable[[Event], None]] = []
        self.repo = GitRepo(workspace.path)
        self.control = SessionControl(self.emit)
        self.book = Bookkeeper(workspace, config, desk.current.name, self.repo, self.emit)
        self.proposer = Proposer(workspace, config, self.repo, self.book, self.control, desk, self.emit)
        self.ahead = ProposalQueue(config, self.book, self.control, desk, self.emit, self.proposer.context,
                                   gate=lambda: self.actions.gate, phase=lambda: self.actions.phase,
                                   read_program=self.proposer.read_program)
        self.actions = HumanActions(self.book, self.control, self.emit, config.settings.approval_gate, self.ahead)
        self.start_up = SessionStart(workspace, self.repo, config, self.book, self.control, self.emit, desk)
        self.trainer = Trainer(workspace, config, self.book, self.control, self.emit, self.start_up.train_env)
        self.measurer = Measurer(config, self.book, self.control, self.emit, self.trainer, self.start_up.preflight)
        self._state, self.times = self.book.state, self.book.times
        self.inbox = Inbox(self.actions, self.control, lambda: self.book.program, self.emit, desk)
        self.abort_watch = AbortWatch(config.settings, self.book.times, lambda: self.book.budget_s, self.actions.abort)
        for observer in (self.actions.observe, self.abort_watch.observe, *desk.observers()):
            self.observe(observer)  # the agents' too: the optuna agent learns each outcome
        self._baseline_scores: Optional[tuple[float, float]] = None  # (val_bpb, holdout_bpb) of the baseline
        self._noise_done = False  # a resumed session's floor was measured (or is off)

    def send(self, command: Command) -> None:
        """Queue a command (cockpit.events); cockpit.engine.inbox applies it, in order."""
        self.inbox.send(command)

    def command_now(self, command: Command) -> None:
        """Apply ``command`` at once, not through the queue (the signal handlers' path:
        cockpit.engine.inbox ``Inbox.apply_now``)."""
        self.inbox.apply_now(command)

    def observe(self, observer: Callable[[Event], None]) -> None:
        """Register ``observer``: it sees every event the engine emits (redacted), before
        the ``emit`` the engine was made with; observers are called in registration order."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        """Report ``event`` (redacted: no API key leaves the engine) to the registered
        observers (the human controls' phase, early abort's loss curve), then out."""
        if not isinstance(event, (StepLogged, LogLine)):  # the runner redacted those already
            event = redact_event(event)
        for observer in self._observers:
            observer(event)
        self._emit(event)

    async def run(self) -> str:
        """Run the session to its end; returns the SessionEnded reason
        ("max-experiments", "stopped", "agent-exhausted" or "error: ...")."""
        listener = asyncio.ensure_future(self.inbox.listen())
        reason = "error: unexpected"
        try:
            reason = await session_reason(self._session(), self.emit)
        finally:
            listener.cancel()
            self.control.kill_current()
            self.ahead.abandon("the session ended before it ran")
            self.start_up.finish(reason)
        if reason == "stopped":
            self.emit(PhaseChanged(self._state.rows, "stopped"))
        self.emit(SessionEnded(reason, self._state.rows, self._state.usage))
        return reason

    # ------------------------------------------------------------- session --

    async def _session(self) -> str:
        _, restored = await self.start_up.start(self.actions.gate)  # the facts go to the Bookkeeper
        if restored is not None:
            self._baseline_scores = restored.baseline_scores
            self._noise_done = (restored.noise_measured or self.config.settings.noise_runs <= 0
                                or len(restored.rows) > 1)
        await self.start_up.prepare()
        if restored is None:
            await self._baseline()
        if not self._noise_done:
            await self.measurer.measure_noise(self._baseline_scores)
        while not self._full():
            with self.times.waiting("paused_s"):
                await self.control.wait_if_paused(self._state.rows)
            await self.start_up.preflight(self._state.rows)
            self.control.fresh()
            if self._full():  # rows of forced keeps or reverts made while paused
                break
            try:
                await self._experiment(self._state.rows)
            except Restart:
                continue
            except AgentExhausted as exc:
                self.emit(EngineMessage(f"the agent has nothing left to propose: {exc}", "warning"))
                return "agent-exhausted"
        return "max-experiments"

    def _full(self) -> bool:
        limit = self.config.max_experiments
        return limit is not None and self._state.rows >= limit

    # --------------------------------------------------------- experiments --

    async def _baseline(self) -> None:
        trial = Trial(0, self._state.last_kept, "baseline", "", now_iso())
        self.book.opened(trial)
        result, summary, _, holdout = await self._train(trial, self.ws.train_py.read_text(encoding="utf-8"))
        status = self.book.conclude(trial, result, summary, extra={"holdout_bpb": holdout})
        row = self._state.last_row
        if status == "keep" and holdout is not None and row is not None and row.score is not None:
            self._baseline_scores = (row.score, holdout)
        if status == "crash" and not result.stopped:
            hint = "; is the data prepared (`uv run prepare.py`)?" if self.ws.layout == "upstream" else ""
            raise SessionError(f"the baseline run crashed (exit {result.returncode}"
                               f"{', timed out' if result.timed_out else ''}): {result.failure()}; "
                               f"see {self._state.log_names.get(0, 'logs/')}{hint}")

    async def _experiment(self, n: int) -> None:
        """One proposal (asked ahead while the previous run trained, or now) ->
        commit -> train -> decide; a fixable crash gets fix attempts."""
        source = self.ws.train_py.read_text(encoding="utf-8")
        taken = await self.ahead.take(n, source)
        asked, approved = taken if taken is not None else (await self.proposer.ask(n, source), False)
        if asked.outcome.proposal is None:
            self.proposer.dropped(n, asked)
            return
        idea = asked.outcome.proposal.description
        holds = self.config.settings.fix_attempts > 0
        status, result, trial = await self._try(n, source, asked, idea, hold=holds, approved=approved,
                                                base_source=source)
        if holds and status == "crash" and fixable(result):
            await self._fix(idea, trial, result)

    async def _fix(self, idea: str, crashed: Trial, result: RunResult) -> None:
        """Fix attempts 1..N for ``crashed`` (still HEAD), each on top of the last
        crashed train.py with that run's log tail. Ends at a keep or discard (the
        ratchet decided), a stop or time-out, a declined (NoFix) or dropped fix, the
        last attempt or max experiments; then resets to the last keep if needed."""
        total = self.config.settings.fix_attempts
        try:
            for k in range(1, total + 1):
                if self._full():
                    return
                n = self._state.rows
                with self.times.waiting("paused_s"):
                    await self.control.wait_if_paused(n)
                await self.start_up.preflight(n)
                self.control.check_restart()
                source = self.ws.train_py.read_text(encoding="utf-8")
                try:
                    asked = await self.proposer.ask(n, source, log_tail(result.text), k)
                except NoFix as exc:
                    self.emit(EngineMessage(f"no fix for the crash of {short(crashed.commit)}: {exc}"))
                    return
                if asked.outcome.proposal is None:
                    self.proposer.dropped(n, asked, fix_attempt=k)
                    return
                text = f"{idea} (fix {k}/{total}: {asked.outcome.proposal.description})"
                fix = (k, short(crashed.commit))
                status, result, crashed = await self._try(n, source, asked, text, hold=True, fix=fix)
                if status != "crash" or not fixable(result):
                    return
        finally:
            self.book.reset_to_kept()

    async def _try(self, n: int, source: str, asked: Asked, description: str, hold: bool,
                   fix: tuple[int, str] = (0, ""), approved: bool = False,
                   base_source: Optional[str] = None) -> tuple[str, RunResult, Trial]:
        """Commit the proposal on HEAD, hold it at the approval gate unless
        ``approved`` ahead (Restart when it is vetoed there), train it (asking for
        the next proposal against ``base_source``, the best train.py, meanwhile),
        conclude; returns (status, result, trial)."""
        self._state.drops = 0
        # it becomes a commit message, a row, a record: the same one line in each
        description = clean_description(redact(description))
        self.emit(ProposalReady(n, description, unified_diff(source, asked.outcome.new_source)))
        self.emit(PhaseChanged(n, "committing"))
        self.ws.train_py.write_text(asked.outcome.new_source, encoding="utf-8")
        with self.times.waiting("git_s"):
            commit = self.repo.commit_file("train.py", description)
            diff = self.repo.diff(self._state.last_kept, commit)
        trial = Trial(n, commit, description, diff, asked.started, asked, *fix)
        self.book.opened(trial)
        with self.times.waiting("wait_human_s"):
            await self.actions.hold_for_approval(trial, approved)
        result, summary, verdict, holdout = await self._train(trial, base_source)
        confirm = await self.measurer.confirm(trial, result, summary, verdict)
        extra = {"holdout_bpb": holdout, **({"abort": self.abort_watch.verdict} if verdict == "abort" else {})}
        status = self.book.conclude(trial, result, summary, hold, verdict, confirm, extra)
        if status == "keep" and holdout is not None:
            self.measurer.check_holdout(self._baseline_scores, holdout)
        return status, result, trial

    async def _train(self, trial: Trial, base_source: Optional[str] = None) -> tuple[RunResult, dict, str, Optional[float]]:
        """Run ``trial`` (with ``base_source``, the best kept train.py, the next
        proposal is asked meanwhile: cockpit.engine.pipeline); returns its result,
        parsed summary, the human's verdict and its holdout_bpb (cockpit.rules.holdout;
        None when not scored)."""
        await self._ready_to_run(trial)
        n, commit, log_name = trial.n, trial.commit, self.book.log_name(trial.n, trial.commit)
        self.actions.begin(trial)
        self.emit(PhaseChanged(n, "training"))
        scores = self.trainer.holdout_path(n, commit)

        def started() -> None:
            if base_source is not None:
                self.ahead.ask_next(trial, base_source)
            self.abort_watch.arm(trial.n, trial.commit, self._state.last_kept)

        result, summary = await self.trainer.train(
            n, commit, trial.description, log_name, scores, self._state.best,
            on_start=lambda pid: self.book.running(trial, pid), started=started, ended=self.abort_watch.disarm)
        self._state.log_names[n] = log_name
        fault_point("after-run", n)
        return result, summary, self.actions.finish_run(), read_holdout(scores)

    async def _ready_to_run(self, trial: Trial) -> None:
        """The checks before a run (cockpit.engine.startup ``SessionStart.preflight``: harness, branch,
        disk, ...); a Stop or a branch moved by the human while they hold the run
        withdraws ``trial`` (recorded, journal closed; Stopped or Restart)."""
        parent = self._state.last_kept
        try:
            await self.start_up.preflight(trial.n)
            self.control.check_restart()
        except Stopped:
            self.book.unrun("withdrawn", trial, parent, "the session stopped before it ran")
            raise
        except Restart:
            self.book.unrun("withdrawn", trial, parent, "the branch moved before it ran")
            raise
