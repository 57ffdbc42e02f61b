"""The ratchet: baseline, then propose -> commit -> train -> keep or reset, forever.

``Engine(workspace, config, agent, emit)`` runs one session on a new branch
``autoresearch/<tag>``. It reports everything through ``emit(event)``
(cockpit.events) and takes the human's commands through ``send(command)``
(applied and recorded by cockpit.engine.actions: pause, steer, approval gate, veto,
force-keep, revert).
Keep rule: a run is kept iff it exits 0, was not killed, prints a finite val_bpb
and that val_bpb is strictly lower than the best kept one (the baseline is kept
unless it crashes). Anything else is reset to the last kept commit
(``git reset --hard``; edits of program.md and prepare.py survive). Every
experiment appends one results.tsv row and one records.jsonl object; a dropped
proposal only a record.

A crash (not a stop, not a time-out; see ``session.fixable``) is logged as its
row, then, before the reset, the agent gets ``fix_attempts`` tries on top of the
crashed train.py with the run's log tail; each fix is its own experiment (row
"<idea> (fix k/N: <fix>)") and the ratchet decides it as usual. A declined
(``NoFix``) or dropped fix, or the last crash, ends the attempts with a reset.
When the program cannot be read or the agent raises ``AgentFatal``, the engine
says why and pauses until Resume, then asks again; Stop while paused ends it.
Start-up and the checks before every experiment and run (journal lock,
reconciliation of a dead engine's work, writable workspace, disk, run branch,
unchanged harness, writes a full disk held back) are cockpit.engine.startup's; the
journal (cockpit.store.journal) opens each experiment right after its commit and
closes it after its row.
A proposal vetoed at the approval gate, or overtaken by a forced keep or a
revert, ends the experiment without training (``Restart``); the loop asks anew.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from cockpit.engine.actions import HumanActions
from cockpit.agents.base import Agent, AgentExhausted, AgentFatal, NoFix, ProposalContext
from cockpit.engine.bookkeeping import Asked, Bookkeeper, Trial
from cockpit.clock import now_iso
from cockpit.engine.context import build_context, kept_diffs, log_tail, vetoed_proposals
from cockpit.engine.control import Restart, SessionControl, Stopped
from cockpit.rules.edits import unified_diff
from cockpit.events import (AcceptProgram, Command, EngineMessage, Emit, Event, LogLine, PhaseChanged,
                            ProposalReady, ProposalRejected, Resume, RunFinished, RunStarted, SessionEnded,
                            StepLogged, Stop)
from cockpit.engine.faults import fault_point
from cockpit.store.ledger import LedgerError
from cockpit.store.results import clean_description
from cockpit.rules.early_abort import LossWatch
from cockpit.store.journal import JournalError
from cockpit.rules.holdout import divergence, holdout_env, read_holdout
from cockpit.engine.measuring import Measuring
from cockpit.engine.pipeline import Pipelining
from cockpit.store.programs import Program, ProgramError
from cockpit.engine.proposing import obtain_proposal
from cockpit.rules.redact import redact, redact_event
from cockpit.training.run_guard import RunGuard
from cockpit.store.repo import GitRepo, RepoError, short
from cockpit.training.runner import Run, RunnerError, RunResult
from cockpit.engine.session import SessionConfig, SessionError, decide, fixable
from cockpit.engine.startup import SessionStart
from cockpit.rules.summary import parse_summary
from cockpit.store.workspace import Workspace, WorkspaceError

EXPECTED_ERRORS = (SessionError, JournalError, RepoError, WorkspaceError, LedgerError, RunnerError, ProgramError)

__all__ = ["Engine", "SessionConfig", "SessionError", "decide", "EXPECTED_ERRORS"]


class Engine(SessionStart, Pipelining, Measuring):
    """One ratchet session (see module docstring). ``run()`` once; ``send()`` any time
    from the same event loop."""

    def __init__(self, workspace: Workspace, config: SessionConfig, agent: Agent, emit: Emit) -> None:
        self.ws, self.config, self.agent, self._emit = workspace, config, agent, emit
        self.repo = GitRepo(workspace.path)
        self._commands: asyncio.Queue = asyncio.Queue()
        self.control = SessionControl(self.emit)
        self.book = Bookkeeper(workspace, config, agent.name, self.repo, self.emit)
        self.actions = HumanActions(self.book, self.control, self.emit, config.settings.approval_gate)
        self._state = self.book.state
        self._program_sha = ""
        self._base = ""  # the commit the branch started at (set by _start)
        self.lock = None
        self.queued = None  # the proposal asked ahead while a run trains (cockpit.engine.pipeline)
        self.actions.queue = self
        self.times = self.book.times
        self.watch: Optional[LossWatch] = None  # early abort of the running experiment (cockpit.rules.early_abort)
        self._curve: Optional[list] = None  # (training s, loss) of the running experiment
        self._curves: dict[str, list] = {}  # by commit: the incumbent's curve for early abort
        self._baseline_scores: Optional[tuple[float, float]] = None  # (val_bpb, holdout_bpb) of the baseline
        self._resumed = None  # what a resumed session knew (cockpit.engine.resume.Restored), set by _start
        self._noise_done = False  # a resumed session's floor was measured (or is off)

    def send(self, command: Command) -> None:
        """Queue a command (cockpit.events); cockpit.engine.actions says what each does when."""
        self._commands.put_nowait(command)

    def emit(self, event: Event) -> None:
        """Report ``event`` (redacted: no API key leaves the engine); the human
        controls follow the phase through it."""
        if not isinstance(event, (StepLogged, LogLine)):  # the runner redacted those already
            event = redact_event(event)
        elif isinstance(event, StepLogged) and self._curve is not None:
            self._watch_step(event)
        self.actions.observe(event)
        self._emit(event)

    async def run(self) -> str:
        """Run the session to its end; returns the SessionEnded reason
        ("max-experiments", "stopped", "agent-exhausted" or "error: ...")."""
        listener = asyncio.ensure_future(self._listen())
        reason = "error: unexpected"
        try:
            reason = await self._session()
        except Stopped:
            reason = "stopped"
        except EXPECTED_ERRORS as exc:
            reason = f"error: {exc}"
            self.emit(EngineMessage(str(exc), "error"))
        finally:
            listener.cancel()
            self.control.kill_current()
            self._abandon_queued("the session ended before it ran")
            self._finish(reason)
        if reason == "stopped":
            self.emit(PhaseChanged(self._state.rows, "stopped"))
        self.emit(SessionEnded(reason, self._state.rows, self._state.usage))
        return reason

    def _watch_step(self, step: StepLogged) -> None:
        """Keep the running experiment's loss curve; early abort stops it when it
        is clearly behind the incumbent's (cockpit.rules.early_abort)."""
        self._curve.append((step.progress_pct / 100.0 * self.book.budget_s, step.loss))
        reason = self.watch.feed(step) if self.watch is not None else None
        if reason and self.actions.abort(reason):
            self.times.totals["saved_s"] = self.times.totals.get("saved_s", 0.0) + self.watch.verdict["saved_s"]

    async def _listen(self) -> None:
        """Apply queued commands one by one, forever: a command that fails says so in
        one error line and the next one is still applied (the listener never dies)."""
        while True:
            self.command_now(await self._commands.get())

    def command_now(self, command: Command) -> None:
        """Apply ``command`` at once, not through the queue (the signal handlers'
        path: SIGTERM stops the engine even if a command before it misbehaved). An
        exception of the command is reported as one error line, never raised; a Stop
        that fails that way still stops the session."""
        try:
            if isinstance(command, (AcceptProgram, Resume)):
                self._accept_program(command)
            if not isinstance(command, AcceptProgram):
                self.actions.apply(command)
        except Exception as exc:  # noqa: BLE001 - one bad command must not take the controls down
            self.emit(EngineMessage(f"the command {type(command).__name__} failed and was ignored: "
                                    f"{type(exc).__name__}: {exc}", "error"))
            if isinstance(command, Stop):
                self.control.apply(command)

    # ------------------------------------------------------------- session --

    async def _session(self) -> str:
        await self._start()
        await self._prepare()
        if self._resumed is None:
            await self._baseline()
        if not self._noise_done:
            await self._measure_noise()
        while not self._full():
            with self.times.waiting("paused_s"):
                await self.control.wait_if_paused(self._state.rows)
            await self._preflight(self._state.rows)
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
        if status == "keep" and holdout is not None and row is not None and row.val_bpb is not None:
            self._baseline_scores = (row.val_bpb, holdout)
        if status == "crash" and not result.stopped:
            hint = "; is the data prepared (`uv run prepare.py`)?" if self.ws.layout == "upstream" else ""
            raise SessionError(f"the baseline run crashed (exit {result.returncode}"
                               f"{', timed out' if result.timed_out else ''}): {result.failure()}; "
                               f"see {self._state.log_names.get(0, 'logs/')}{hint}")

    async def _experiment(self, n: int) -> None:
        """One proposal (asked ahead while the previous run trained, or now) ->
        commit -> train -> decide; a fixable crash gets fix attempts."""
        source = self.ws.train_py.read_text(encoding="utf-8")
        taken = await self._take_queued(n, source)
        asked, approved = taken if taken is not None else (await self._ask(n, source), False)
        if asked.outcome.proposal is None:
            self._dropped(n, asked)
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
                await self._preflight(n)
                self.control.check_restart()
                source = self.ws.train_py.read_text(encoding="utf-8")
                try:
                    asked = await self._ask(n, source, log_tail(result.text), k)
                except NoFix as exc:
                    self.emit(EngineMessage(f"no fix for the crash of {short(crashed.commit)}: {exc}"))
                    return
                if asked.outcome.proposal is None:
                    self._dropped(n, asked, fix_attempt=k)
                    return
                text = f"{idea} (fix {k}/{total}: {asked.outcome.proposal.description})"
                fix = (k, short(crashed.commit))
                status, result, crashed = await self._try(n, source, asked, text, hold=True, fix=fix)
                if status != "crash" or not fixable(result):
                    return
        finally:
            self.book.reset_to_kept()

    async def _ask(self, n: int, source: str, crash_tail: Optional[str] = None, fix_attempt: int = 0) -> Asked:
        """Ask with a fresh context (cockpit.engine.context). An unreadable program or an
        AgentFatal pauses the session (error message, PhaseChanged "paused") until
        Resume, then asks again; nothing is committed meanwhile. Raises Stopped,
        Restart (the branch moved), AgentExhausted, NoFix."""
        while True:
            self.emit(PhaseChanged(n, "proposing"))
            fault_point("while-proposing", n)
            started = now_iso()
            try:
                program = self._read_program(n)
                context = self._context(n, source, program, crash_log_tail=crash_tail, fix_attempt=fix_attempt)
                with self.times.waiting("wait_model_s"):
                    outcome = await self.control.until_stopped(obtain_proposal(
                        self.agent, context, self.config.max_reasks,
                        lambda reason, attempt: self.emit(ProposalRejected(n, reason, attempt))))
                return Asked(outcome, program, started, context.steering)
            except ProgramError as exc:
                self._hold(f"cannot read the program: {exc}")
            except AgentFatal as exc:
                self._hold(f"the agent cannot go on: {exc}")
            with self.times.waiting("paused_s"):
                await self.control.wait_if_paused(n)
            self.control.check_restart()

    def _context(self, n: int, source: str, program: Program, **extra) -> ProposalContext:
        """The agent's context for experiment ``n`` on train.py ``source`` (cockpit.engine.context:
        history, kept diffs up to the last keep, steering notes, vetoed proposals);
        ``extra``: crash_log_tail and fix_attempt for a fix, in_flight when asked ahead."""
        return build_context(
            experiment=n, train_py=source, program=program, results_tsv=self.ws.results_tsv,
            diffs=kept_diffs(self.repo, self.ws.records_jsonl, self._state.last_kept),
            steering=self.control.steering, max_fix_attempts=self.config.settings.fix_attempts,
            vetoed=vetoed_proposals(self.ws.records_jsonl), **extra)

    def _read_program(self, n: int) -> Program:
        """The program read now; says so when its text changed since the last proposal."""
        program = self.book.program.read()
        if self._program_sha and program.sha256 != self._program_sha:
            self.emit(EngineMessage(f"{program.label} changed: experiment {n} reads the new text"))
        self._program_sha = program.sha256
        return program

    def _dropped(self, n: int, asked: Asked, fix_attempt: int = 0) -> None:
        """Record a proposal dropped after its re-asks; the ``max_consecutive_drops``-th
        in a row pauses the session with one line holding the last rejection (the
        night resumes with ``p`` after a look at program.md or the model, and gets
        as many proposals again), where it used to end the session."""
        if not self.book.drop(n, asked, fix_attempt):
            return
        errors = [str(e).strip() for e in asked.outcome.errors if str(e).strip()]
        last = errors[-1].splitlines()[0] if errors else "no reply"
        self._state.drops = 0
        self._hold(f"the agent produced no valid edit in {self.config.max_consecutive_drops} proposals in a row "
                   f"(last rejection: {last})")

    def _hold(self, why: str) -> None:
        # an agent's message may end with what to do already ("..., then resume")
        then = "paused" if why.rstrip().endswith("then resume") else "paused: fix it, then resume"
        self.emit(EngineMessage(f"{why}; {then}", "error"))
        self.control.hold()

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
        confirm = await self._confirm(trial, result, summary, verdict)
        extra = {"holdout_bpb": holdout, **({"abort": self.watch.verdict} if verdict == "abort" else {})}
        status = self.book.conclude(trial, result, summary, hold, verdict, confirm, extra)
        if status == "keep" and holdout is not None:
            self._check_holdout(holdout)
        return status, result, trial

    def _check_holdout(self, holdout: float) -> None:
        """Say so when val_bpb and holdout_bpb have moved apart since the baseline
        beyond the noise floor (cockpit.rules.holdout)."""
        row, floor = self._state.last_row, self.book.noise
        if self._baseline_scores is None or row is None or row.val_bpb is None or floor is None:
            return
        warning = divergence(*self._baseline_scores, row.val_bpb, holdout, floor.sigma, floor.holdout_sigma)
        if warning:
            self.emit(EngineMessage(f"#{row.experiment}: {warning}", "warning"))

    async def _train(self, trial: Trial, base_source: Optional[str] = None
                     ) -> tuple[RunResult, dict, str, Optional[float]]:
        """Run ``trial`` (with ``base_source``, the best kept train.py, the next
        proposal is asked meanwhile: cockpit.engine.pipeline); returns its result,
        parsed summary, the human's verdict and its holdout_bpb (cockpit.rules.holdout;
        None when not scored)."""
        await self._ready_to_run(trial)
        n, commit, log_name = trial.n, trial.commit, self.book.log_name(trial.n, trial.commit)
        self.actions.begin(trial)
        self.emit(PhaseChanged(n, "training"))
        budget = self.book.budget_s
        self.emit(RunStarted(n, short(commit), trial.description, budget, str(self.ws.path / log_name)))
        limit = budget * self.config.hard_limit_factor + self.config.hard_limit_grace_s
        scores = self._holdout_path(n, commit)
        run = Run(self.config.run_command, self.ws.path, self.ws.path / log_name,
                  env={**self._train_env(), **holdout_env(scores, self._state.best)},
                  hard_limit_s=limit, kill_grace_s=self.config.kill_grace_s, experiment=n, emit=self.emit,
                  on_start=lambda pid: self.book.running(trial, pid))
        if base_source is not None:
            self._queue_next(trial, base_source)
        incumbent = self._curves.get(self._state.last_kept)
        self.watch = (LossWatch(incumbent, budget, self.config.settings.abort_after, self.config.settings.abort_margin)
                      if self.config.settings.early_abort and trial.n > 0 and incumbent else None)
        self._curve = self._curves[trial.commit] = []
        self.times.run_started()
        guard = self._guard_run()
        try:
            result = await self.control.guarded(run)
        finally:
            self.times.run_ended()
            self._curve = None
            self._restore_after_run(guard, n)
        summary = parse_summary(result.text)
        if result.log_error:
            self.emit(EngineMessage(f"{result.log_error}; the run's output is kept in memory only", "error"))
        if result.stray_processes:
            self.emit(EngineMessage(f"killed {result.stray_processes} process(es) of the run that had left its "
                                    "process group (setsid)", "warning"))
        self.emit(RunFinished(n, short(commit), result.returncode, result.timed_out, summary,
                              result.timings()["wall_s"]))
        self._state.log_names[n] = log_name
        fault_point("after-run", n)
        return result, summary, self.actions.finish_run(), read_holdout(scores)

    def _guard_run(self) -> RunGuard:
        """Just before a run: snapshot what it may not change (cockpit.training.run_guard)
        and the program proposals see while it trains (cockpit.engine.program_hold)."""
        self.book.program.run_started()
        return RunGuard(self.ws.path)

    def _restore_after_run(self, guard: RunGuard, n: int) -> None:
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

    def _accept_program(self, command: Command) -> None:
        """AcceptProgram (its sha256) or Resume (the file as it is): release a held
        program change (cockpit.engine.program_hold); one line when one was released."""
        line = self.book.program.accept(command.sha256 if isinstance(command, AcceptProgram) else None)
        if line:
            self.emit(EngineMessage(line))

    def _holdout_path(self, n: int, commit: str, what: str = "run"):
        """Where the harness writes this run's holdout score (cockpit.rules.holdout)."""
        folder = self.ws.path / ".cockpit" / "holdout"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.config.tag}-{n:04d}-{short(commit)}-{what}.json"

    async def _ready_to_run(self, trial: Trial) -> None:
        """The checks before a run (cockpit.engine.startup ``_preflight``: harness, branch,
        disk, ...); a Stop or a branch moved by the human while they hold the run
        withdraws ``trial`` (recorded, journal closed; Stopped or Restart)."""
        parent = self._state.last_kept
        try:
            await self._preflight(trial.n)
            self.control.check_restart()
        except Stopped:
            self.book.unrun("withdrawn", trial, parent, "the session stopped before it ran")
            raise
        except Restart:
            self.book.unrun("withdrawn", trial, parent, "the branch moved before it ran")
            raise
