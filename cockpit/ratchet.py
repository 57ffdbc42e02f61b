"""The ratchet: baseline, then propose -> commit -> train -> keep or reset, forever.

``Engine(workspace, config, agent, emit)`` runs one session on a new branch
``autoresearch/<tag>``. It reports everything through ``emit(event)``
(cockpit.events) and takes Pause / Resume / Stop through ``send(command)``.
Keep rule: a run is kept iff it exits 0, was not killed, prints a finite val_bpb
and that val_bpb is strictly lower than the best kept one (the baseline is kept
unless it crashes). Anything else is reset to the last kept commit
(``git reset --hard``; program.md edits survive). Every experiment appends one
results.tsv row and one records.jsonl object; a dropped proposal only a record.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Optional

from cockpit.agents.base import Agent, AgentExhausted, HistoryRow, ProposalContext
from cockpit.edits import unified_diff
from cockpit.control import SessionControl, Stopped
from cockpit.events import (Command, EngineMessage, Emit, PhaseChanged, ProposalReady, ProposalRejected,
                            RowLogged, RunFinished, RunStarted, SessionEnded, SessionStarted)
from cockpit.ledger import ExperimentRecord, LedgerError, Row, append_record, append_row, read_rows
from cockpit.proposing import Outcome, obtain_proposal
from cockpit.repo import GitRepo, RepoError, short
from cockpit.runner import Run, RunnerError, RunResult
from cockpit.summary import parse_summary, summary_memory_gb, summary_val_bpb
from cockpit.workspace import Workspace, WorkspaceError, harness_budget, prepare_command, sha256_file

PRESERVED = ("program.md",)  # the human may edit these while a session runs


class SessionError(RuntimeError):
    """The session cannot go on (baseline crashed, prepare failed, agent keeps failing)."""


EXPECTED_ERRORS = (SessionError, RepoError, WorkspaceError, LedgerError, RunnerError)


@dataclass(frozen=True)
class SessionConfig:
    """Settings of one session (CLI flags); the workspace's cockpit.toml holds the rest."""

    tag: str
    """Session tag; the run branch is ``autoresearch/<tag>`` and must not exist."""
    max_experiments: Optional[int] = None
    """Stop after this many results rows, baseline included (None = run forever)."""
    budget_s: Optional[float] = None
    """Training budget override in seconds, passed as COCKPIT_TIME_BUDGET (None = profile's)."""
    run_command: tuple[str, ...] = (sys.executable, "-u", "train.py")
    """argv of one training run, run in the workspace."""
    prepare_command: tuple[str, ...] = tuple(prepare_command())
    """argv that prepares data before the baseline (idempotent, fast when cached)."""
    hard_limit_factor: float = 2.0
    """A run is killed (crash) after ``factor x budget + grace`` seconds."""
    hard_limit_grace_s: float = 30.0
    """Seconds added to the hard limit for start-up and evaluation."""
    kill_grace_s: float = 5.0
    """Seconds between SIGTERM and SIGKILL of a run's process group."""
    max_reasks: int = 3
    """Re-asks after an invalid reply before the proposal is dropped (1 + 3 asks)."""
    max_consecutive_drops: int = 5
    """End the session with an error after this many dropped proposals in a row."""

    @property
    def branch(self) -> str:
        return f"autoresearch/{self.tag}"


def decide(result: RunResult, summary: dict, best: Optional[float]) -> str:
    """keep / discard / crash for a finished run, given the best kept val_bpb (None
    before the baseline). Crash: killed, non-zero exit, or no finite val_bpb."""
    val = summary_val_bpb(summary)
    if result.stopped or result.timed_out or result.returncode != 0 or val is None:
        return "crash"
    return "keep" if best is None or val < best else "discard"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class _State:
    """Mutable session state: best kept val_bpb, last kept commit (full hash), counts."""

    best: Optional[float] = None
    last_kept: str = ""
    rows: int = 0
    drops: int = 0


class Engine:
    """One ratchet session (see module docstring). ``run()`` once; ``send()`` any time
    from the same event loop."""

    def __init__(self, workspace: Workspace, config: SessionConfig, agent: Agent, emit: Emit) -> None:
        self.ws, self.config, self.agent, self.emit = workspace, config, agent, emit
        self.repo = GitRepo(workspace.path)
        self.budget_s = 0.0
        self._commands: asyncio.Queue = asyncio.Queue()
        self._state = _State()
        self.control = SessionControl(emit)
        self._log_names: dict[int, str] = {}

    def send(self, command: Command) -> None:
        """Queue Pause, Resume or Stop (cockpit.events)."""
        self._commands.put_nowait(command)

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
        self.emit(SessionEnded(reason, self._state.rows))
        return reason

    async def _listen(self) -> None:
        while True:
            self.control.apply(await self._commands.get())

    # ------------------------------------------------------------- session --

    async def _session(self) -> str:
        await self._start()
        await self._prepare()
        await self._baseline()
        while self.config.max_experiments is None or self._state.rows < self.config.max_experiments:
            await self.control.wait_if_paused(self._state.rows)
            try:
                await self._experiment(self._state.rows)
            except AgentExhausted as exc:
                self.emit(EngineMessage(f"the agent has nothing left to propose: {exc}", "warning"))
                return "agent-exhausted"
        return "max-experiments"

    async def _start(self) -> None:
        """Check the ledger and tree, resolve the budget, create the branch, announce."""
        read_rows(self.ws.results_tsv)
        if self.repo.is_dirty(["train.py", "prepare.py"]):
            raise SessionError("train.py or prepare.py has uncommitted changes; commit or discard them first")
        self.repo.refuse_existing_branch(self.config.branch)
        self.budget_s = await self._resolve_budget()
        self._state.last_kept = self.repo.create_branch(self.config.branch)
        self.emit(SessionStarted(self.config.tag, self.config.branch, self.ws.profile, self.budget_s,
                                 str(self.ws.path), self.agent.name))

    def _budget_override(self) -> Optional[float]:
        return self.config.budget_s if self.config.budget_s is not None else self.ws.budget_s

    async def _resolve_budget(self) -> float:
        override = self._budget_override()
        if override is not None:
            return override
        self.emit(EngineMessage("reading TIME_BUDGET from prepare.py"))
        return await asyncio.to_thread(harness_budget, self.ws)

    def _env(self) -> dict:
        override = self._budget_override()
        return {} if override is None else {"COCKPIT_TIME_BUDGET": repr(float(override))}

    async def _prepare(self) -> None:
        self.emit(PhaseChanged(0, "preparing"))
        run = Run(self.config.prepare_command, self.ws.path, self.ws.logs / "prepare.log",
                  env=self._env(), kill_grace_s=self.config.kill_grace_s, experiment=0, emit=self.emit)
        result = await self.control.guarded(run)
        if result.stopped:
            raise Stopped
        if result.returncode != 0:
            raise SessionError(f"prepare.py failed (exit {result.returncode}): "
                               f"{_last_line(result.text)}; see logs/prepare.log")

    # --------------------------------------------------------- experiments --

    async def _baseline(self) -> None:
        commit, started = self._state.last_kept, _now()
        result, summary = await self._train(0, commit, "baseline")
        status = self._conclude(0, commit, "baseline", result, summary, diff="", propose_s=0.0, started=started)
        if status == "crash" and not result.stopped:
            raise SessionError(f"the baseline run crashed (exit {result.returncode}"
                               f"{', timed out' if result.timed_out else ''}): {_last_line(result.text)}; "
                               f"see {self._log_names.get(0, 'logs/')}")

    async def _experiment(self, n: int) -> None:
        started = _now()
        self.emit(PhaseChanged(n, "proposing"))
        source = self.ws.train_py.read_text(encoding="utf-8")
        outcome = await self.control.until_stopped(self._propose(n, source))
        if outcome.proposal is None:
            self._drop(n, outcome, started)
            return
        self._state.drops = 0
        description = outcome.proposal.description
        self.emit(ProposalReady(n, description, unified_diff(source, outcome.new_source)))
        self.emit(PhaseChanged(n, "committing"))
        parent = self._state.last_kept
        self.ws.train_py.write_text(outcome.new_source, encoding="utf-8")
        commit = self.repo.commit_file("train.py", description)
        diff = self.repo.diff(parent, commit)
        result, summary = await self._train(n, commit, description)
        self._conclude(n, commit, description, result, summary, diff, outcome.propose_s, started)

    def _propose(self, n: int, source: str) -> Awaitable[Outcome]:
        history = tuple(HistoryRow(r.status, r.val_bpb, r.description) for r in read_rows(self.ws.results_tsv))
        program = self.ws.program_md.read_text(encoding="utf-8") if self.ws.program_md.exists() else ""
        context = ProposalContext(train_py=source, program_md=program, history=history, experiment=n)
        return obtain_proposal(self.agent, context, self.config.max_reasks,
                               lambda reason, attempt: self.emit(ProposalRejected(n, reason, attempt)))

    def _drop(self, n: int, outcome: Outcome, started: str) -> None:
        state = self._state
        state.drops += 1
        self.emit(EngineMessage(f"proposal dropped after {len(outcome.replies)} invalid replies", "warning"))
        record = self._record_base("dropped", n, "dropped", "(dropped proposal)", started)
        append_record(self.ws.records_jsonl, ExperimentRecord(
            **record, parent=short(state.last_kept), timings={"propose_s": outcome.propose_s},
            errors=list(outcome.errors), replies=[r[:20_000] for r in outcome.replies]))
        if state.drops >= self.config.max_consecutive_drops:
            raise SessionError(f"the agent produced no valid edit in {state.drops} proposals in a row")

    def _log_name(self, n: int, commit: str) -> str:
        name = f"logs/exp-{n:04d}-{short(commit)}.log"
        if (self.ws.path / name).exists():
            name = f"logs/exp-{n:04d}-{short(commit)}-{self.config.tag}.log"
        return name

    async def _train(self, n: int, commit: str, description: str) -> tuple[RunResult, dict]:
        log_name = self._log_name(n, commit)
        self.emit(PhaseChanged(n, "training"))
        self.emit(RunStarted(n, short(commit), description, self.budget_s, str(self.ws.path / log_name)))
        limit = self.budget_s * self.config.hard_limit_factor + self.config.hard_limit_grace_s
        run = Run(self.config.run_command, self.ws.path, self.ws.path / log_name, env=self._env(),
                  hard_limit_s=limit, kill_grace_s=self.config.kill_grace_s, experiment=n, emit=self.emit)
        result = await self.control.guarded(run)
        summary = parse_summary(result.text)
        self.emit(RunFinished(n, short(commit), result.returncode, result.timed_out, summary,
                              result.timings()["wall_s"]))
        self._log_names[n] = log_name
        return result, summary

    def _conclude(self, n, commit, description, result, summary, diff, propose_s, started) -> str:
        """Decide, reset if not kept, append the row and the record. Returns the status."""
        state = self._state
        self.emit(PhaseChanged(n, "deciding"))
        status = decide(result, summary, state.best)
        val = summary_val_bpb(summary) if status != "crash" else None
        mem = summary_memory_gb(summary) if status != "crash" else 0.0
        description += " [stopped]" if result.stopped else " [timed out]" if result.timed_out else ""
        parent = state.last_kept
        if status == "keep":
            state.best, state.last_kept = val, commit
        elif n > 0:
            self.repo.reset_hard(state.last_kept, preserve=PRESERVED)
        row = Row(short(commit), val or 0.0, mem, status, description)
        append_row(self.ws.results_tsv, row)
        state.rows += 1
        self.emit(RowLogged(n, row.commit, row.val_bpb, mem, status, description, state.best))
        record = self._record_base("experiment", n, status, description, started)
        append_record(self.ws.records_jsonl, ExperimentRecord(
            **record, commit=short(commit), parent=short(parent) if n else "", val_bpb=val, memory_gb=mem,
            diff=diff, summary=summary, timings={"propose_s": propose_s, **result.timings()},
            returncode=result.returncode, timed_out=result.timed_out, stopped=result.stopped,
            log_path=self._log_names.get(n, "")))
        if result.stopped:
            raise Stopped
        return status

    def _record_base(self, kind: str, n: int, status: str, description: str, started: str) -> dict:
        return dict(kind=kind, experiment=n, tag=self.config.tag, status=status, description=description,
                    agent=self.agent.name, profile=self.ws.profile, budget_s=self.budget_s,
                    program_sha256=sha256_file(self.ws.program_md),
                    harness_sha256=sha256_file(self.ws.prepare_py), started=started, ended=_now())


def _last_line(text: str) -> str:
    """The last non-empty line of a run's output (usually the error), or "no output"."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
