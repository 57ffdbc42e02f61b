"""Deciding and recording: the verdict, the reset, the row, the record and the journal of each experiment.

The ``Bookkeeper`` owns the session's ``SessionState`` (cockpit.engine.session); the
engine asks and trains, then hands each committed ``Trial`` to ``conclude`` (the
human's veto or force-keep with it; the verdict is cockpit.engine.verdict's). Rows
that did not train (a forced keep, a revert) go through ``relog``; proposals that never
trained through ``unrun``, ``unqueued`` and ``drop``. The journal gets ``open``, ``train``,
``row`` and ``close`` entries; every append goes through ``writes`` (write_queue: nothing
lost or out of order when the disk fails). Resets only on the run branch. Rows name their agent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from cockpit.clock import now_iso
from cockpit.engine.control import Stopped
from cockpit.events import EngineMessage, Emit, PhaseChanged, RowLogged, TimeAccounted
from cockpit.engine.faults import fault_point, torn_write
from cockpit.store.journal import Journal, entry_id
from cockpit.store.records import ExperimentRecord, append_record
from cockpit.row import Row
from cockpit.store.results import append_row, row_text
from cockpit.engine.program_hold import ProgramHold
from cockpit.store.programs import ProgramSource
from cockpit.rules.redact import redact
from cockpit.engine.proposing import Asked
from cockpit.store.repo import GitRepo, short
from cockpit.training.runner import RunResult
from cockpit.engine.session import SessionConfig, SessionFacts, SessionState, Trial, fixable
from cockpit.engine.verdict import attention_warning, verdict as decide_run
from cockpit.engine.write_queue import WriteQueue
from cockpit.rules.summary import attention_backend, summary_memory_gb, summary_val_bpb
from cockpit.rules.noise import KeepRule, NoiseFloor
from cockpit.rules.timekeeping import TimeKeeper
from cockpit.rules.usage import add_usage
from cockpit.store.workspace import Workspace, sha256_file

# Working-tree edits that survive a reset: the human may edit program.md while a
# session runs; a hand edit of prepare.py is kept so the harness check sees it
# (and refuses the next run) instead of a reset wiping it silently.
PRESERVED = ("program.md", "prepare.py")


class Bookkeeper:
    """Decides, resets and records for one session; the session's facts (budget,
    harness sha256, program) arrive once, frozen, through ``begin`` when start-up
    has established them; until then ``budget_s`` is 0.0 and ``harness_sha`` ""."""

    def __init__(self, ws: Workspace, config: SessionConfig, agent_name: str, repo: GitRepo, emit: Emit) -> None:
        self.ws, self.config, self.agent_name, self.repo, self.emit = ws, config, agent_name, repo, emit
        self.state = SessionState()
        self.facts: Optional[SessionFacts] = None
        self.program = ProgramHold(ProgramSource(path=ws.program_md))
        self.journal = Journal(ws.path)
        self.writes = WriteQueue(emit)  # every append, in order, queued when the disk fails
        self.times = TimeKeeper()  # where the session's seconds go (cockpit.rules.timekeeping)
        self.noise: Optional[NoiseFloor] = None  # measured at session start (cockpit.rules.noise)

    def begin(self, facts: SessionFacts) -> None:
        """The session has started with ``facts`` (cockpit.engine.startup): every row and
        record from now on carries its budget and harness sha256, every proposal reads
        its program (held during runs: cockpit.engine.program_hold)."""
        self.facts = facts
        self.program = ProgramHold(facts.program)

    @property
    def budget_s(self) -> float:
        """The session's time budget per run, seconds (0.0 before ``begin``)."""
        return self.facts.budget_s if self.facts else 0.0

    @property
    def harness_sha(self) -> str:
        """sha256 of prepare.py when the session started ("" before ``begin``)."""
        return self.facts.harness_sha256 if self.facts else ""

    def restore(self, rows: list[Row], log_names: dict[int, str], backends: dict[str, str],
                upstream_head: Optional[str] = None) -> str:
        """A resumed session's rows folded into the state (SessionState.restore; the last
        keep's short hash made full); returns the last kept commit (full hash)."""
        self.state.restore(rows, log_names, backends, upstream_head)
        if upstream_head is None:
            self.state.last_kept = self.repo.full_hash(self.state.last_kept)
        return self.state.last_kept

    @property
    def rule(self) -> KeepRule:
        """The session's keep rule (cockpit.rules.noise): ``keep_threshold`` from the
        config, sigma of the noise floor once measured (0.0 before)."""
        return KeepRule(self.config.settings.keep_threshold, self.noise.sigma if self.noise else 0.0)

    # -------------------------------------------------------------- journal --

    def opened(self, trial: Trial, parent: Optional[str] = None) -> None:
        """Journal: ``trial`` is committed on ``parent`` (default the last keep) and about to run."""
        size = self.ws.results_tsv.stat().st_size if self.ws.results_tsv.exists() else 0
        fields = dict(id=entry_id(self.config.tag, trial.n, trial.commit), tag=self.config.tag,
                      experiment=trial.n, commit=trial.commit, parent=(parent or self.state.last_kept) if trial.n else "",
                      description=trial.description, started=trial.started, results_offset=size,
                      log_path=self.log_name(trial.n, trial.commit), harness_sha256=self.harness_sha)
        self.writes.store("the journal", lambda: self.journal.append("open", **fields))
        fault_point("after-commit", trial.n)

    def running(self, trial: Trial, pid: int) -> None:
        """Journal: ``trial``'s run started as process group ``pid``."""
        self.writes.store("the journal", lambda: self.journal.append(
            "train", id=entry_id(self.config.tag, trial.n, trial.commit), pid=pid))

    def aux_running(self, run_id: str, pid: int) -> None:
        """Journal: a re-run (no row: noise floor, confirming re-run) started as
        process group ``pid``; a dead engine's restart kills it (cockpit.engine.reconcile)."""
        self.writes.store("the journal", lambda: self.journal.append("aux-train", id=run_id, pid=pid))

    def aux_closed(self, run_id: str) -> None:
        self.writes.store("the journal", lambda: self.journal.append("aux-close", id=run_id))

    def append_record(self, record: dict) -> None:
        """Append ``record`` (a records.jsonl object: a re-run's, an action's) through ``writes``."""
        self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))

    def record_noise(self, floor: NoiseFloor, **facts) -> None:
        """records.jsonl ``kind`` "noise-floor" (cockpit.rules.noise) with ``facts``; the session's from now on."""
        self.noise = floor
        record = {**floor.as_record(self.config.tag), **facts}
        self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))

    def close(self, trial: Trial) -> None:
        self.writes.store("the journal", lambda: self.journal.append(
            "close", id=entry_id(self.config.tag, trial.n, trial.commit)))

    # ---------------------------------------------------------------- branch --

    def _on_branch(self) -> bool:
        """True when the run branch is checked out (a reset would move it, not another)."""
        if self.repo.current_branch() == self.config.branch:
            return True
        self.emit(EngineMessage(f"not resetting: {self.config.branch} is not checked out", "warning"))
        return False

    def reset_to_kept(self) -> None:
        """``git reset --hard`` to the last kept commit unless HEAD is there."""
        if self.repo.head_commit() != self.state.last_kept and self._on_branch():
            self._reset(self.state.last_kept)

    def _reset(self, commit: str) -> None:
        with self.times.waiting("git_s"):
            self.repo.reset_hard(commit, preserve=PRESERVED)

    def log_name(self, n: int, commit: str) -> str:
        """The log file of experiment ``n`` (relative): ``logs/exp-NNNN-<commit7>.log``,
        with the tag added when an earlier session left that name."""
        name = f"logs/exp-{n:04d}-{short(commit)}.log"
        if (self.ws.path / name).exists():
            name = f"logs/exp-{n:04d}-{short(commit)}-{self.config.tag}.log"
        return name

    def move_to(self, commit: str) -> None:
        """``git reset --hard commit`` (a forced keep, a revert); PRESERVED files survive."""
        if self._on_branch():
            self._reset(commit)

    def conclude(self, trial: Trial, result: RunResult, summary: dict, hold: bool = False,
                 verdict: str = "", confirm: tuple = (), extra: Optional[dict] = None) -> str:
        """Decide (``verdict`` "veto", "force-keep" or "abort": cockpit.engine.verdict;
        ``confirm`` the val_bpb of a confirming re-run, cockpit.rules.noise); reset unless
        kept (or ``hold`` and a fixable crash: fixes follow); append the row and the
        record (``extra`` fields added to it, and the run's ``attention`` backend:
        a finished run on another backend than the incumbent's gets a warning
        after its row, cockpit.engine.verdict ``attention_warning``). Returns the status; raises Stopped
        after a stop."""
        state, n = self.state, trial.n
        self.emit(PhaseChanged(n, "deciding"))
        status, mark, judged, refused = decide_run(result, summary, state.best, self.rule, verdict, confirm)
        if refused:
            self.emit(EngineMessage(refused, "warning"))
        val = summary_val_bpb(summary) if status != "crash" else None
        if val is not None and judged is not None and len(judged.runs) > 1:
            val = sum(judged.runs) / len(judged.runs)  # a confirmed run's row holds the mean of its runs
        mem = summary_memory_gb(summary) if status != "crash" else 0.0
        description = trial.description + mark
        attention = attention_backend(summary, result.text)
        warning = attention_warning(state, f"#{n}", attention) if val is not None else ""
        state.backends[short(trial.commit)] = attention
        parent = state.last_kept
        if status != "keep" and n > 0 and not (hold and status == "crash" and fixable(result)) and self._on_branch():
            self._reset(state.last_kept)
        usage = trial.asked.outcome.usage if trial.asked else None
        propose_s = trial.asked.outcome.propose_s if trial.asked else 0.0
        self.times.budget_s = self.budget_s
        timings = self.times.account(result.timings(), propose_s)
        session = self.times.session()
        record = self.new_record(
            "experiment", n, status, description, trial.started, trial.asked, commit=short(trial.commit),
            parent=short(parent) if n else "", val_bpb=val, memory_gb=mem, diff=trial.diff, summary=summary,
            timings=timings, session=session, queued=trial.asked.queued if trial.asked else {},
            returncode=result.returncode,
            timed_out=result.timed_out, stopped=result.stopped and verdict not in ("veto", "abort"),
            stray_processes=result.stray_processes, log_path=state.log_names.get(n, ""),
            fix_attempt=trial.fix_attempt, fix_of=trial.fix_of, noise=judged.as_record() if judged else {},
            attention=attention, **(extra or {}),
            errors=list(trial.asked.outcome.errors) if trial.asked else [],
            replies=[r[:20_000] for r in trial.asked.outcome.replies] if trial.asked else [])
        holdout = (extra or {}).get("holdout_bpb") if status == "keep" else None
        self.log_row(Row(trial.commit, val or 0.0, mem, status, description, n), usage, record, trial,
                      judged.delta_sigma if judged else None, holdout)
        if warning:
            self.emit(EngineMessage(warning, "warning"))
        self.emit(TimeAccounted(n, timings, session))
        fault_point("after-row", n)
        self.close(trial)
        if result.stopped and verdict not in ("veto", "abort"):
            raise Stopped
        return status

    def log_row(self, row: Row, usage: Optional[dict] = None, record: Optional[ExperimentRecord] = None,
                 trial: Optional[Trial] = None, delta_sigma: Optional[float] = None,
                 holdout_bpb: Optional[float] = None) -> None:
        """Append ``row`` to results.tsv and its ``record`` (if any) to records.jsonl,
        update the state (SessionState.log), journal the row (with the last keep
        after it), emit RowLogged."""
        line = replace(row, commit=short(row.commit))
        torn_write("mid-row", row.experiment, self.ws.results_tsv, lambda: row_text(self.ws.results_tsv, line))
        self.writes.store("results.tsv", lambda: append_row(self.ws.results_tsv, line))
        if record is not None:
            self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))
        self.state.log(row)
        fields = dict(id=entry_id(self.config.tag, trial.n, trial.commit) if trial else None, tag=self.config.tag,
                      experiment=row.experiment, commit=row.commit, status=row.status, kept=self.state.last_kept)
        self.writes.store("the journal", lambda: self.journal.append("row", **fields))
        self.state.usage = add_usage(self.state.usage, usage)
        self.emit(RowLogged(row.experiment, line.commit, line.val_bpb, row.memory_gb, row.status, row.description,
                            self.state.best, usage, delta_sigma, holdout_bpb, record.agent if record is not None and
                            row.experiment else None, getattr(record, "worker", None) or None))

    def relog(self, source: Row, status: str, description: str) -> Row:
        """Append a row for ``source``'s commit that did not train again (a forced keep
        of a finished experiment, a revert): its val_bpb and memory, the new
        ``status`` and ``description``. The caller moved the branch first; the
        state follows the row (``SessionState.log``: a keep row is the reference, a
        " [reverted]" discard of the incumbent puts the keep before it back)."""
        row = replace(source, status=status, description=description, experiment=self.state.rows)
        self.log_row(row)
        return row

    def unrun(self, kind: str, trial: Trial, parent: str, reason: str) -> None:
        """Record a committed proposal that never trained (``kind`` "vetoed" or
        "withdrawn"; no row) after resetting it away; ``parent`` is the keep it was
        built on, ``reason`` why it did not train."""
        self.reset_to_kept()
        asked = trial.asked
        self.state.usage = add_usage(self.state.usage, asked.outcome.usage if asked else None)
        record = self.new_record(
            kind, trial.n, kind, trial.description, trial.started, asked, commit=short(trial.commit),
            parent=short(parent), diff=trial.diff, reason=reason, fix_attempt=trial.fix_attempt,
            fix_of=trial.fix_of, timings={"propose_s": asked.outcome.propose_s if asked else 0.0})
        self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))
        self.close(trial)

    def unqueued(self, kind: str, n: int, asked: Asked, parent: str, reason: str, diff: str) -> None:
        """Record a pipelined proposal that was never committed (``kind`` "vetoed":
        dropped at the approval gate while a run trained; "superseded": stale or
        left over, see ExperimentRecord); no row, no commit, no git change.
        ``parent`` is the keep it was asked against, ``diff`` its change there."""
        self.state.usage = add_usage(self.state.usage, asked.outcome.usage)
        description = redact(asked.outcome.proposal.description) if asked.outcome.proposal else "(no proposal)"
        record = self.new_record(
            kind, n, kind, description, asked.started, asked, parent=short(parent), diff=diff, reason=reason,
            queued=asked.queued, timings={"propose_s": asked.outcome.propose_s})
        self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))

    def drop(self, n: int, asked: Asked, fix_attempt: int = 0) -> bool:
        """Record a proposal dropped after its re-asks (no row, train.py untouched).
        Returns True when it is the ``max_consecutive_drops``-th in a row (the
        engine then pauses with the last rejection; the count starts again)."""
        state, outcome = self.state, asked.outcome
        state.drops += 1
        state.usage = add_usage(state.usage, outcome.usage)
        self.emit(EngineMessage(f"proposal dropped after {len(outcome.replies)} invalid replies", "warning"))
        record = self.new_record(
            "dropped", n, "dropped", "(dropped proposal)", asked.started, asked,
            parent=short(state.last_kept), timings={"propose_s": outcome.propose_s}, fix_attempt=fix_attempt,
            errors=list(outcome.errors), replies=[r[:20_000] for r in outcome.replies])
        self.writes.store("records.jsonl", lambda: append_record(self.ws.records_jsonl, record))
        if state.drops < self.config.max_consecutive_drops:
            return False
        state.drops = 0
        return True

    def new_record(self, kind: str, n: int, status: str, description: str, started: str,
                asked: Optional[Asked], **fields) -> ExperimentRecord:
        program = asked.program if asked else None
        return ExperimentRecord(
            kind=kind, experiment=n, tag=self.config.tag, status=status, description=description,
            agent=asked.outcome.agent if asked and asked.outcome.agent else self.agent_name, profile=self.ws.profile,
            budget_s=self.budget_s,
            program_sha256=program.sha256 if program else self.program.sha256(),
            program=self.program.label, harness_sha256=self.harness_sha or sha256_file(self.ws.prepare_py),
            agent_usage=asked.outcome.usage if asked else None, steering=list(asked.steering) if asked else [],
            started=started, ended=now_iso(), **fields)
