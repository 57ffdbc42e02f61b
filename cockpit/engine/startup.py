"""The session's start-up, its checks between experiments and its end (composed into
cockpit.engine.ratchet.Engine as ``SessionStart``).

Start-up, in order: take the journal lock (one engine per workspace); refuse a
workspace that cannot be written or a full disk; refuse uncommitted changes
to train.py/prepare.py; check records.jsonl (a corrupt line refuses the
session, a torn last line is set aside: cockpit.store.ledger); reconcile what a dead
engine left (cockpit.engine.reconcile); check results.tsv; refuse an existing branch
or an unknown program; resolve the budget; create the branch; record the
harness's sha256 and journal the session; announce it. ``start`` returns what it
established as a frozen ``SessionFacts`` (cockpit.engine.session), handed to the
Bookkeeper once, and what a resumed session knew (cockpit.engine.resume.Restored).
Then prepare.py runs (not in an upstream checkout).

Before every experiment and every run, ``preflight`` checks the environment
(cockpit.engine.preflight: writable, disk, run branch, harness unchanged) and
``_settle`` writes what a full disk held back; either pauses the engine with
one error line until Resume, then checks again.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Optional

from cockpit.engine.context import session_program
from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.control import SessionControl, Stopped
from cockpit.engine.agent_desk import AgentDesk
from cockpit.events import AgentChanged, Emit, EngineMessage, NoiseMeasured, PhaseChanged, RowLogged, SessionStarted
from cockpit.store.journal import DIRECTORY, JournalLock
from cockpit.store.records import check_records, set_aside_torn_record
from cockpit.store.results import read_rows
from cockpit.rules.noise import NoiseFloor, threshold
from cockpit.engine.preflight import run_problem, start_problem
from cockpit.engine.reconcile import reconcile
from cockpit.training.runner import Run
from cockpit.rules.run_env import hub_offline
from cockpit.engine.resume import (UPSTREAM, Restored, Resumable, restore, resumable_session, upstream_offers,
                                   upstream_session)
from cockpit.engine.session import SessionConfig, SessionError, SessionFacts
from cockpit.rules.standing import running_best
from cockpit.store.upstream import PREPARE_HINT
from cockpit.store.repo import GitRepo
from cockpit.rules.budget_clock import BudgetClock
from cockpit.store.workspace import Workspace, harness_budget, sha256_file

UNTRACKED = ("results.tsv", "records.jsonl", "logs/", f"{DIRECTORY}/")  # kept out of git (info/exclude if needed)


class SessionStart:
    """Start-up, between-experiment checks and the end of one session (module
    docstring)."""

    def __init__(self, ws: Workspace, repo: GitRepo, config: SessionConfig, book: Bookkeeper,
                 control: SessionControl, emit: Emit, desk: AgentDesk) -> None:
        self.ws, self.repo, self.config, self.book, self.control, self.emit = ws, repo, config, book, control, emit
        self.desk = desk
        self._state = book.state
        self.lock: Optional[JournalLock] = None

    async def start(self, gate: bool) -> tuple[SessionFacts, Optional[Restored]]:
        """Lock, check, reconcile, create the branch (or continue one), journal and announce
        the session (SessionStarted with the approval ``gate``). Returns its facts and,
        for a resumed session, what it knew. Raises SessionError (one line) on a refusal."""
        self.lock = JournalLock(self.ws.path)
        problem = start_problem(self.ws)
        if problem:
            raise SessionError(problem)
        try:
            self.lock.acquire()
        except OSError as exc:
            raise SessionError(f"cannot write {self.lock.path}: {exc.strerror or exc}") from None
        if self.repo.is_dirty(["train.py", "prepare.py"]):
            raise SessionError("train.py or prepare.py has uncommitted changes; commit or discard them first")
        self._check_records()
        self._reconcile()
        read_rows(self.ws.results_tsv)
        point = self._resume_point()
        if point is None:
            self.repo.refuse_existing_branch(self.config.branch)
        program = session_program(self.config.settings.program, self.ws)
        budget, clock = await self._resolve_budget()
        self.repo.exclude(UNTRACKED)
        harness = sha256_file(self.ws.prepare_py)
        restored = None
        if point is None:
            self._state.last_kept = base = self.repo.create_branch(self.config.branch)
        else:
            base, budget, restored = self._continue(point, harness, budget)
        facts = SessionFacts(self.config.tag, self.config.branch, base, budget, harness, program,
                             resumed=point is not None, clock=clock)
        self.book.begin(facts)
        self.book.writes.store("the journal", lambda: self.book.journal.append(
            "session", tag=facts.tag, branch=facts.branch, base=facts.base,
            harness_sha256=facts.harness_sha256, agent=self.desk.current.name, profile=self.ws.profile,
            budget_s=facts.budget_s, budget_clock=clock.kind, pid=os.getpid(), resumed=facts.resumed,
            results_offset=point.results_offset if point else self._results_size(),
            upstream=bool(point and point.ended == UPSTREAM)))
        self.emit(SessionStarted(facts.tag, facts.branch, self.ws.profile, facts.budget_s,
                                 str(self.ws.path), self.desk.current.name, gate, harness_sha256=facts.harness_sha256))
        self.emit(AgentChanged(self.desk.chosen, self.desk.current.name, list(self.desk.names)))
        self.emit(EngineMessage(f"program: {self.book.program.label} (read again before every proposal)"))
        if restored is not None:
            self._replay_rows(restored)
        return facts, restored

    # ------------------------------------------------------------- resume --

    def _resume_point(self) -> Optional[Resumable]:
        """The session to continue (``config.resume`` and cockpit.engine.resume agree), else None."""
        if not self.config.resume:
            self._offer_upstream()
            return None
        if self.config.resume_upstream:
            try:
                return upstream_session(self.ws.path, self.config.tag, self.repo.branch_exists)
            except ValueError as exc:
                raise SessionError(str(exc)) from None
        point = resumable_session(self.ws.path, self.repo.branch_exists)
        if point is None or point.tag != self.config.tag:
            raise SessionError(f"session {self.config.tag} cannot be continued (finished, never kept a "
                               "baseline, or its branch is gone); start a new one with --new-session")
        return point

    def _results_size(self) -> int:
        """results.tsv's size in bytes now (0 when missing): a new session's rows begin there."""
        try:
            return self.ws.results_tsv.stat().st_size
        except OSError:
            return 0

    def _offer_upstream(self) -> None:
        """In an upstream checkout, say which upstream sessions ``--resume-upstream`` continues."""
        if self.ws.layout != "upstream":
            return
        for line in upstream_offers(self.ws.path, self.repo.branches("autoresearch/")):
            self.emit(EngineMessage(line, "warning"))

    def _continue(self, point: Resumable, harness: str, budget: float) -> tuple[str, float, Restored]:
        """Pick session ``point`` up: its branch, budget, rows folded into the running best,
        noise floor, steering notes, attention backends (cockpit.engine.resume). Returns
        (its base commit, the budget it goes on with, what it knew). Raises SessionError
        when the harness (sha256 ``harness`` now) changed since it began or its branch
        moved past its last keep by hand."""
        if point.harness_sha256 and point.harness_sha256 != harness:
            raise SessionError(f"prepare.py changed since session {point.tag} began (sha256 "
                               f"{point.harness_sha256[:12]} -> {harness[:12]}): its results would not "
                               "compare; restore prepare.py, or start a new session with --new-session")
        if point.budget_s > 0 and point.budget_s != budget:
            self.emit(EngineMessage(f"session {point.tag} trains {point.budget_s:g} s per run; it goes on with that "
                                    f"budget, not {budget:g} s (--new-session for another)", "warning"))
            budget = point.budget_s
        head = self.repo.checkout_branch(point.branch)
        restored = restore(self.ws.path, point)
        rows = [replace(row, commit=self.repo.full_hash(row.commit), status=row.status.lower(), experiment=n,
                        val_bpb=0.0 if row.status.lower() == "crash" else row.val_bpb)
                for n, row in enumerate(restored.rows)]
        kept = self.book.restore(rows, restored.log_names, restored.backends,
                                 upstream_head=head if point.ended == UPSTREAM else None)
        if point.ended != UPSTREAM and head != kept:
            if not self.repo.cockpit_made(kept, head):
                raise SessionError(f"branch {point.branch} has commits past its last keep "
                                   f"{kept[:7]} that cockpit did not make; start a new session "
                                   "with --new-session")
            self.repo.reset_hard(kept)
        if restored.noise_measured and len(restored.noise_runs) >= 2:
            self.book.noise = NoiseFloor(restored.noise_runs, restored.noise_holdout_runs)
        self.control.restore_steering(restored.steering)
        return point.base or head, budget, restored

    def _replay_rows(self, restored: Restored) -> None:
        """Show the resumed session's rows (RowLogged, the running best after each) and its
        noise floor, then say what was picked up."""
        for n, standing in enumerate(running_best(restored.rows)):
            row = restored.rows[n]
            self.emit(RowLogged(n, row.commit, row.val_bpb, row.memory_gb, row.status.lower(), row.description,
                                standing.best, agent=restored.agents.get(n)))
        floor = self.book.noise
        if floor is not None:
            self.emit(NoiseMeasured(list(floor.runs), floor.sigma, threshold(self.config.settings.keep_threshold, floor.sigma)))
        best = "-" if self._state.best is None else f"{self._state.best:.6f}"
        sigma = f"noise floor sigma {floor.sigma:.6f}" if floor else "noise floor not measured"
        self.emit(EngineMessage(f"resumed session {self.config.tag}: {len(restored.rows)} rows, best {best} at "
                                f"{self._state.last_kept[:7]}, {sigma}; no baseline re-run; next is experiment "
                                f"{self._state.rows}"))

    def _check_records(self) -> None:
        """records.jsonl before anything is written or trained: a corrupt line (but a torn
        last one) refuses the session (LedgerError: one error line naming records.jsonl:LINE);
        a torn last line, what a kill or a full disk leaves mid-append, is moved to
        .cockpit/torn-records-*.txt with one warning, before reconciliation appends to the file."""
        check_records(self.ws.records_jsonl)
        note = set_aside_torn_record(self.ws.records_jsonl, self.ws.path / DIRECTORY)
        if note:
            self.emit(EngineMessage(note, "warning"))

    def _reconcile(self) -> None:
        """Settle what a dead engine left (cockpit.engine.reconcile) and say what was done."""
        try:
            notes = reconcile(self.ws, self.repo, self.book.journal)
        except OSError as exc:
            raise SessionError(f"cannot reconcile the interrupted session: {exc}") from None
        for level, text in notes:
            self.emit(EngineMessage(text, level))

    def finish(self, reason: str) -> None:
        """Write what is still queued (one last try), journal the end of the session
        (when it started) and drop the lock."""
        self.book.writes.flush()
        if self.book.facts is not None:
            self.book.writes.store("the journal", lambda: self.book.journal.append(
                "end", tag=self.config.tag, reason=reason))
        if self.book.writes.pending:
            lost = ", ".join(what for what, _ in self.book.writes.pending)
            self.emit(EngineMessage(f"the session ended with writes still pending ({lost}): the next start "
                                    "settles the experiment from the journal and its log", "error"))
        if self.lock is not None:
            self.lock.release()

    # ------------------------------------------------------------- checks --

    async def preflight(self, n: int) -> None:
        """Before an experiment or a run: write what is queued, check the
        environment; pause with one error line until it is fixed (or Stop)."""
        while True:
            await self._settle(n)
            problem = run_problem(self.ws, self.repo, self.config.branch, self._state.last_kept,
                                  self.book.harness_sha, self.book.facts.base if self.book.facts else "")
            if problem is None:
                return
            self.control.hold(problem)
            await self.control.wait_if_paused(n)

    async def _settle(self, n: int) -> None:
        """When a write failed (cockpit.engine.bookkeeping.store said why), pause; on each
        resume write the queue again, until it is all on disk."""
        while self.book.writes.pending:
            self.control.hold()
            await self.control.wait_if_paused(n)
            self.book.writes.flush()

    # ------------------------------------------------------ budget, prepare --

    def _budget_override(self) -> Optional[float]:
        return self.config.settings.budget_s if self.config.settings.budget_s is not None else self.ws.settings.budget_s

    async def _resolve_budget(self) -> tuple[float, BudgetClock]:
        """(seconds, clock): the override's seconds or prepare.py's TIME_BUDGET, and the
        clock prepare.py counts it on (the probe runs either way: the hard limit follows it)."""
        override = self._budget_override()
        if self.ws.layout != "upstream" and override is None:
            self.emit(EngineMessage("reading TIME_BUDGET from prepare.py"))
        budget, clock, note = await asyncio.to_thread(harness_budget, self.ws, env=self._env())
        if self.ws.layout == "upstream":
            self.emit(EngineMessage(note))
        return (override if override is not None else budget), clock

    def _env(self) -> dict:
        """What every run of workspace code gets on top of cockpit.rules.run_env's allow-list
        (prepare.py too): PYTHONUNBUFFERED, and COCKPIT_TIME_BUDGET when overridden."""
        override = self._budget_override()
        env = {"PYTHONUNBUFFERED": "1"}  # progress lines arrive live through `uv run` too
        return env if override is None else {**env, "COCKPIT_TIME_BUDGET": repr(float(override))}

    def train_env(self) -> dict:
        """``_env`` for a run of train.py (an experiment, a noise or holdout re-run):
        with HF_HUB_OFFLINE=1 unless the user set it (cockpit.rules.run_env ``hub_offline``:
        no Hub call during a timed run)."""
        return {**self._env(), **hub_offline()}

    async def prepare(self) -> None:
        """Run prepare.py before the baseline (not in an upstream checkout: a hint instead).
        Raises Stopped on a stop, SessionError when it fails."""
        if self.ws.layout == "upstream":
            self.emit(EngineMessage(PREPARE_HINT, "warning"))
            if self.config.settings.budget_s is not None:
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
            raise SessionError(f"prepare.py failed (exit {result.returncode}): {result.failure()}; fix what it "
                               f"says (missing data: run `python prepare.py` in {self.ws.path} until it ends "
                               "with 'ready'), then start again; its output is in logs/prepare.log")
