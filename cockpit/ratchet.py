"""The ratchet: baseline, then propose -> commit -> train -> keep or reset, forever.

``Engine(workspace, config, agent, emit)`` runs one session on a new branch
``autoresearch/<tag>``. It reports everything through ``emit(event)``
(cockpit.events) and takes the human's commands through ``send(command)``
(applied and recorded by cockpit.actions: pause, steer, approval gate, veto,
force-keep, revert).
Keep rule: a run is kept iff it exits 0, was not killed, prints a finite val_bpb
and that val_bpb is strictly lower than the best kept one (the baseline is kept
unless it crashes). Anything else is reset to the last kept commit
(``git reset --hard``; program.md edits survive). Every experiment appends one
results.tsv row and one records.jsonl object; a dropped proposal only a record.

A crash (not a stop, not a time-out; see ``session.fixable``) is logged as its
row, then, before the reset, the agent gets ``fix_attempts`` tries on top of the
crashed train.py with the run's log tail; each fix is its own experiment (row
"<idea> (fix k/N: <fix>)") and the ratchet decides it as usual. A declined
(``NoFix``) or dropped fix, or the last crash, ends the attempts with a reset.
When the program cannot be read or the agent raises ``AgentFatal``, the engine
says why and pauses until Resume, then asks again; Stop while paused ends it.
A proposal vetoed at the approval gate, or overtaken by a forced keep or a
revert, ends the experiment without training (``Restart``); the loop asks anew.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from cockpit.actions import HumanActions
from cockpit.agents.base import Agent, AgentExhausted, AgentFatal, NoFix
from cockpit.bookkeeping import Asked, Bookkeeper, Trial, now
from cockpit.context import build_context, kept_diffs, log_tail, session_program, vetoed_proposals
from cockpit.control import Restart, SessionControl, Stopped
from cockpit.edits import unified_diff
from cockpit.events import (Command, EngineMessage, Emit, Event, PhaseChanged, ProposalReady, ProposalRejected,
                            RunFinished, RunStarted, SessionEnded, SessionStarted)
from cockpit.ledger import LedgerError, read_rows
from cockpit.programs import Program, ProgramError
from cockpit.proposing import obtain_proposal
from cockpit.repo import GitRepo, RepoError, short
from cockpit.runner import Run, RunnerError, RunResult
from cockpit.session import SessionConfig, SessionError, decide, fixable
from cockpit.summary import parse_summary
from cockpit.upstream import PREPARE_HINT
from cockpit.workspace import Workspace, WorkspaceError, harness_budget

UNTRACKED = ("results.tsv", "records.jsonl", "logs/")  # kept out of git (info/exclude if needed)
EXPECTED_ERRORS = (SessionError, RepoError, WorkspaceError, LedgerError, RunnerError, ProgramError)

__all__ = ["Engine", "SessionConfig", "SessionError", "decide", "EXPECTED_ERRORS"]


class Engine:
    """One ratchet session (see module docstring). ``run()`` once; ``send()`` any time
    from the same event loop."""

    def __init__(self, workspace: Workspace, config: SessionConfig, agent: Agent, emit: Emit) -> None:
        self.ws, self.config, self.agent, self._emit = workspace, config, agent, emit
        self.repo = GitRepo(workspace.path)
        self._commands: asyncio.Queue = asyncio.Queue()
        self.control = SessionControl(self.emit)
        self.book = Bookkeeper(workspace, config, agent.name, self.repo, self.emit)
        self.actions = HumanActions(self.book, self.control, self.emit, config.approval_gate)
        self._state = self.book.state
        self._program_sha = ""

    def send(self, command: Command) -> None:
        """Queue a command (cockpit.events); cockpit.actions says what each does when."""
        self._commands.put_nowait(command)

    def emit(self, event: Event) -> None:
        """Report ``event``; the human controls follow the phase through it."""
        self.actions.observe(event)
        self._emit(event)

    async def run(self) -> str:
        """Run the session to its end; returns the SessionEnded reason
        ("max-experiments", "stopped", "agent-exhausted" or "error: ...")."""
        listener = asyncio.ensure_future(self._listen())
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
        if reason == "stopped":
            self.emit(PhaseChanged(self._state.rows, "stopped"))
        self.emit(SessionEnded(reason, self._state.rows, self._state.usage))
        return reason

    async def _listen(self) -> None:
        while True:
            self.actions.apply(await self._commands.get())

    # ------------------------------------------------------------- session --

    async def _session(self) -> str:
        await self._start()
        await self._prepare()
        await self._baseline()
        while not self._full():
            await self.control.wait_if_paused(self._state.rows)
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

    async def _start(self) -> None:
        """Check the ledger, tree and program, resolve the budget, create the branch, announce."""
        read_rows(self.ws.results_tsv)
        if self.repo.is_dirty(["train.py", "prepare.py"]):
            raise SessionError("train.py or prepare.py has uncommitted changes; commit or discard them first")
        self.repo.refuse_existing_branch(self.config.branch)
        self.book.program = session_program(self.config.program, self.ws)
        self.book.budget_s = await self._resolve_budget()
        self.repo.exclude(UNTRACKED)
        self._state.last_kept = self.repo.create_branch(self.config.branch)
        self.emit(SessionStarted(self.config.tag, self.config.branch, self.ws.profile, self.book.budget_s,
                                 str(self.ws.path), self.agent.name, self.actions.gate))
        self.emit(EngineMessage(f"program: {self.book.program.label} (read again before every proposal)"))

    def _budget_override(self) -> Optional[float]:
        return self.config.budget_s if self.config.budget_s is not None else self.ws.budget_s

    async def _resolve_budget(self) -> float:
        override = self._budget_override()
        if override is not None:
            return override
        if self.ws.layout != "upstream":
            self.emit(EngineMessage("reading TIME_BUDGET from prepare.py"))
        budget, note = await asyncio.to_thread(harness_budget, self.ws)
        if self.ws.layout == "upstream":
            self.emit(EngineMessage(note))
        return budget

    def _env(self) -> dict:
        override = self._budget_override()
        env = {"PYTHONUNBUFFERED": "1"}  # progress lines arrive live through `uv run` too
        return env if override is None else {**env, "COCKPIT_TIME_BUDGET": repr(float(override))}

    async def _prepare(self) -> None:
        if self.ws.layout == "upstream":
            self.emit(EngineMessage(PREPARE_HINT, "warning"))
            if self.config.budget_s is not None:
                self.emit(EngineMessage("--budget sets only the hard limit here: upstream's train.py "
                                        "reads TIME_BUDGET from its prepare.py", "warning"))
            return
        self.emit(PhaseChanged(0, "preparing"))
        run = Run(self.config.prepare_command, self.ws.path, self.ws.logs / "prepare.log",
                  env=self._env(), kill_grace_s=self.config.kill_grace_s, experiment=0, emit=self.emit)
        result = await self.control.guarded(run)
        if result.stopped:
            raise Stopped
        if result.returncode != 0:
            raise SessionError(f"prepare.py failed (exit {result.returncode}): "
                               f"{result.last_line()}; see logs/prepare.log")

    # --------------------------------------------------------- experiments --

    async def _baseline(self) -> None:
        trial = Trial(0, self._state.last_kept, "baseline", "", now())
        result, summary, _ = await self._train(trial)
        status = self.book.conclude(trial, result, summary)
        if status == "crash" and not result.stopped:
            raise SessionError(f"the baseline run crashed (exit {result.returncode}"
                               f"{', timed out' if result.timed_out else ''}): {result.last_line()}; "
                               f"see {self._state.log_names.get(0, 'logs/')}")

    async def _experiment(self, n: int) -> None:
        """One proposal -> commit -> train -> decide; a fixable crash gets fix attempts."""
        source = self.ws.train_py.read_text(encoding="utf-8")
        asked = await self._ask(n, source)
        if asked.outcome.proposal is None:
            self.book.drop(n, asked)
            return
        idea = asked.outcome.proposal.description
        holds = self.config.fix_attempts > 0
        status, result, trial = await self._try(n, source, asked, idea, hold=holds)
        if holds and status == "crash" and fixable(result):
            await self._fix(idea, trial, result)

    async def _fix(self, idea: str, crashed: Trial, result: RunResult) -> None:
        """Fix attempts 1..N for ``crashed`` (still HEAD), each on top of the last
        crashed train.py with that run's log tail. Ends at a keep or discard (the
        ratchet decided), a stop or time-out, a declined (NoFix) or dropped fix, the
        last attempt or max experiments; then resets to the last keep if needed."""
        total = self.config.fix_attempts
        try:
            for k in range(1, total + 1):
                if self._full():
                    return
                n = self._state.rows
                await self.control.wait_if_paused(n)
                self.control.check_restart()
                source = self.ws.train_py.read_text(encoding="utf-8")
                try:
                    asked = await self._ask(n, source, log_tail(result.text), k)
                except NoFix as exc:
                    self.emit(EngineMessage(f"no fix for the crash of {short(crashed.commit)}: {exc}"))
                    return
                if asked.outcome.proposal is None:
                    self.book.drop(n, asked, fix_attempt=k)
                    return
                text = f"{idea} (fix {k}/{total}: {asked.outcome.proposal.description})"
                fix = (k, short(crashed.commit))
                status, result, crashed = await self._try(n, source, asked, text, hold=True, fix=fix)
                if status != "crash" or not fixable(result):
                    return
        finally:
            self.book.reset_to_kept()

    async def _ask(self, n: int, source: str, crash_tail: Optional[str] = None, fix_attempt: int = 0) -> Asked:
        """Ask with a fresh context (cockpit.context). An unreadable program or an
        AgentFatal pauses the session (error message, PhaseChanged "paused") until
        Resume, then asks again; nothing is committed meanwhile. Raises Stopped,
        Restart (the branch moved), AgentExhausted, NoFix."""
        while True:
            self.emit(PhaseChanged(n, "proposing"))
            started = now()
            try:
                program = self._read_program(n)
                context = build_context(
                    experiment=n, train_py=source, program=program, results_tsv=self.ws.results_tsv,
                    diffs=kept_diffs(self.repo, self.ws.records_jsonl, self._state.last_kept),
                    steering=self.control.steering, crash_log_tail=crash_tail, fix_attempt=fix_attempt,
                    max_fix_attempts=self.config.fix_attempts, vetoed=vetoed_proposals(self.ws.records_jsonl))
                outcome = await self.control.until_stopped(obtain_proposal(
                    self.agent, context, self.config.max_reasks,
                    lambda reason, attempt: self.emit(ProposalRejected(n, reason, attempt))))
                return Asked(outcome, program, started, context.steering)
            except ProgramError as exc:
                self._hold(f"cannot read the program: {exc}")
            except AgentFatal as exc:
                self._hold(f"the agent cannot go on: {exc}")
            await self.control.wait_if_paused(n)
            self.control.check_restart()

    def _read_program(self, n: int) -> Program:
        """The program read now; says so when its text changed since the last proposal."""
        program = self.book.program.read()
        if self._program_sha and program.sha256 != self._program_sha:
            self.emit(EngineMessage(f"{program.label} changed: experiment {n} reads the new text"))
        self._program_sha = program.sha256
        return program

    def _hold(self, why: str) -> None:
        self.emit(EngineMessage(f"{why}; paused: fix it, then resume", "error"))
        self.control.hold()

    async def _try(self, n: int, source: str, asked: Asked, description: str, hold: bool,
                   fix: tuple[int, str] = (0, "")) -> tuple[str, RunResult, Trial]:
        """Commit the proposal on HEAD, hold it at the approval gate (Restart when it
        is vetoed there), train it, conclude; returns (status, result, trial)."""
        self._state.drops = 0
        self.emit(ProposalReady(n, description, unified_diff(source, asked.outcome.new_source)))
        self.emit(PhaseChanged(n, "committing"))
        self.ws.train_py.write_text(asked.outcome.new_source, encoding="utf-8")
        commit = self.repo.commit_file("train.py", description)
        trial = Trial(n, commit, description, self.repo.diff(self._state.last_kept, commit), asked.started,
                      asked, *fix)
        await self.actions.hold_for_approval(trial)
        result, summary, verdict = await self._train(trial)
        return self.book.conclude(trial, result, summary, hold, verdict), result, trial

    async def _train(self, trial: Trial) -> tuple[RunResult, dict, str]:
        """Run ``trial``; returns its result, parsed summary and the human's verdict."""
        n, commit, log_name = trial.n, trial.commit, self.book.log_name(trial.n, trial.commit)
        self.actions.begin(trial)
        self.emit(PhaseChanged(n, "training"))
        budget = self.book.budget_s
        self.emit(RunStarted(n, short(commit), trial.description, budget, str(self.ws.path / log_name)))
        limit = budget * self.config.hard_limit_factor + self.config.hard_limit_grace_s
        run = Run(self.config.run_command, self.ws.path, self.ws.path / log_name, env=self._env(),
                  hard_limit_s=limit, kill_grace_s=self.config.kill_grace_s, experiment=n, emit=self.emit)
        result = await self.control.guarded(run)
        summary = parse_summary(result.text)
        self.emit(RunFinished(n, short(commit), result.returncode, result.timed_out, summary,
                              result.timings()["wall_s"]))
        self._state.log_names[n] = log_name
        return result, summary, self.actions.finish_run()
