"""Deciding and recording: the keep / discard / crash verdict, the reset, the
results.tsv row and the records.jsonl object of each experiment.

The ``Bookkeeper`` owns the session's ``SessionState`` (best val_bpb, last kept
commit, rows, dropped proposals in a row, summed agent usage); the engine
(cockpit.ratchet) asks and trains, then hands each committed ``Trial`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from cockpit.control import Stopped
from cockpit.events import EngineMessage, Emit, PhaseChanged, RowLogged
from cockpit.ledger import ExperimentRecord, Row, append_record, append_row
from cockpit.programs import Program, ProgramSource
from cockpit.proposing import Outcome
from cockpit.repo import GitRepo, short
from cockpit.runner import RunResult
from cockpit.session import SessionConfig, SessionError, SessionState, decide, fixable
from cockpit.summary import summary_memory_gb, summary_val_bpb
from cockpit.usage import add_usage
from cockpit.workspace import Workspace, sha256_file

PRESERVED = ("program.md",)  # the human may edit these while a session runs


def now() -> str:
    """The time now, ISO-8601 UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Asked:
    """A proposal's ``outcome``, the ``program`` and ``steering`` notes its context
    held, and when asking ``started`` (ISO-8601 UTC)."""

    outcome: Outcome
    program: Program
    started: str
    steering: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trial:
    """A committed experiment: number, commit (full hash), row description, diff
    from the last keep, start time, the proposal (None for the baseline), and for
    a fix its attempt number (1..N) and the crashed commit it fixes (short)."""

    n: int
    commit: str
    description: str
    diff: str
    started: str
    asked: Optional[Asked] = None
    fix_attempt: int = 0
    fix_of: str = ""


class Bookkeeper:
    """Decides, resets and records for one session; ``budget_s`` and ``program``
    are set by the engine once the session has started."""

    def __init__(self, ws: Workspace, config: SessionConfig, agent_name: str, repo: GitRepo, emit: Emit) -> None:
        self.ws, self.config, self.agent_name, self.repo, self.emit = ws, config, agent_name, repo, emit
        self.state = SessionState()
        self.budget_s = 0.0
        self.program = ProgramSource(path=ws.program_md)

    def reset_to_kept(self) -> None:
        """``git reset --hard`` to the last kept commit unless HEAD is there."""
        if self.repo.head_commit() != self.state.last_kept:
            self.repo.reset_hard(self.state.last_kept, preserve=PRESERVED)

    def conclude(self, trial: Trial, result: RunResult, summary: dict, hold: bool = False) -> str:
        """Decide; reset unless kept (or ``hold`` and a fixable crash: fixes follow);
        append the row and the record. Returns the status; raises Stopped after a stop."""
        state, n = self.state, trial.n
        self.emit(PhaseChanged(n, "deciding"))
        status = decide(result, summary, state.best)
        val = summary_val_bpb(summary) if status != "crash" else None
        mem = summary_memory_gb(summary) if status != "crash" else 0.0
        description = trial.description + (" [stopped]" if result.stopped else
                                           " [timed out]" if result.timed_out else "")
        parent = state.last_kept
        if status == "keep":
            state.best, state.last_kept = val, trial.commit
        elif n > 0 and not (hold and status == "crash" and fixable(result)):
            self.repo.reset_hard(state.last_kept, preserve=PRESERVED)
        row = Row(short(trial.commit), val or 0.0, mem, status, description)
        append_row(self.ws.results_tsv, row)
        state.rows += 1
        usage = trial.asked.outcome.usage if trial.asked else None
        state.usage = add_usage(state.usage, usage)
        self.emit(RowLogged(n, row.commit, row.val_bpb, mem, status, description, state.best, usage))
        propose_s = trial.asked.outcome.propose_s if trial.asked else 0.0
        append_record(self.ws.records_jsonl, self._record(
            "experiment", n, status, description, trial.started, trial.asked, commit=short(trial.commit),
            parent=short(parent) if n else "", val_bpb=val, memory_gb=mem, diff=trial.diff, summary=summary,
            timings={"propose_s": propose_s, **result.timings()}, returncode=result.returncode,
            timed_out=result.timed_out, stopped=result.stopped, log_path=state.log_names.get(n, ""),
            fix_attempt=trial.fix_attempt, fix_of=trial.fix_of,
            errors=list(trial.asked.outcome.errors) if trial.asked else [],
            replies=[r[:20_000] for r in trial.asked.outcome.replies] if trial.asked else []))
        if result.stopped:
            raise Stopped
        return status

    def drop(self, n: int, asked: Asked, fix_attempt: int = 0) -> None:
        """Record a proposal dropped after its re-asks (no row, train.py untouched).
        Raises SessionError after ``max_consecutive_drops`` in a row."""
        state, outcome = self.state, asked.outcome
        state.drops += 1
        state.usage = add_usage(state.usage, outcome.usage)
        self.emit(EngineMessage(f"proposal dropped after {len(outcome.replies)} invalid replies", "warning"))
        append_record(self.ws.records_jsonl, self._record(
            "dropped", n, "dropped", "(dropped proposal)", asked.started, asked,
            parent=short(state.last_kept), timings={"propose_s": outcome.propose_s}, fix_attempt=fix_attempt,
            errors=list(outcome.errors), replies=[r[:20_000] for r in outcome.replies]))
        if state.drops >= self.config.max_consecutive_drops:
            raise SessionError(f"the agent produced no valid edit in {state.drops} proposals in a row")

    def _record(self, kind: str, n: int, status: str, description: str, started: str,
                asked: Optional[Asked], **fields) -> ExperimentRecord:
        program = asked.program if asked else None
        return ExperimentRecord(
            kind=kind, experiment=n, tag=self.config.tag, status=status, description=description,
            agent=self.agent_name, profile=self.ws.profile, budget_s=self.budget_s,
            program_sha256=program.sha256 if program else self.program.sha256(),
            program=self.program.label, harness_sha256=sha256_file(self.ws.prepare_py),
            agent_usage=asked.outcome.usage if asked else None, steering=list(asked.steering) if asked else [],
            started=started, ended=now(), **fields)
