"""The engine's start-up and its checks between experiments (a mixin of Engine).

Start-up, in order: take the journal lock (one engine per workspace); refuse a
workspace that cannot be written or a full disk; refuse uncommitted changes
to train.py/prepare.py; reconcile what a dead engine left (cockpit.reconcile);
check results.tsv; refuse an existing branch or an unknown program; resolve
the budget; create the branch; record the harness's sha256 and journal the
session; announce it. Then prepare.py runs (not in an upstream checkout).

Before every experiment and every run, ``_preflight`` checks the environment
(cockpit.preflight: writable, disk, run branch, harness unchanged) and
``_settle`` writes what a full disk held back; either pauses the engine with
one error line until Resume, then checks again.
"""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from cockpit.context import session_program
from cockpit.control import Stopped
from cockpit.events import EngineMessage, PhaseChanged, SessionStarted
from cockpit.journal import DIRECTORY, JournalLock
from cockpit.ledger import read_rows
from cockpit.preflight import run_problem, start_problem
from cockpit.reconcile import reconcile
from cockpit.runner import Run
from cockpit.session import SessionError
from cockpit.upstream import PREPARE_HINT
from cockpit.workspace import harness_budget, sha256_file

UNTRACKED = ("results.tsv", "records.jsonl", "logs/", f"{DIRECTORY}/")  # kept out of git (info/exclude if needed)


class SessionStart:
    """Start-up and between-experiment checks of ``cockpit.ratchet.Engine``."""

    async def _start(self) -> None:
        """Lock, check, reconcile, create the branch, journal and announce the session."""
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
        self._reconcile()
        read_rows(self.ws.results_tsv)
        self.repo.refuse_existing_branch(self.config.branch)
        self.book.program = session_program(self.config.program, self.ws)
        self.book.budget_s = await self._resolve_budget()
        self.repo.exclude(UNTRACKED)
        self._state.last_kept = self._base = self.repo.create_branch(self.config.branch)
        self.book.harness_sha = sha256_file(self.ws.prepare_py)
        self.book.store("the journal", lambda: self.book.journal.append(
            "session", tag=self.config.tag, branch=self.config.branch, base=self._base,
            harness_sha256=self.book.harness_sha, agent=self.agent.name, profile=self.ws.profile,
            budget_s=self.book.budget_s, pid=os.getpid()))
        self.emit(SessionStarted(self.config.tag, self.config.branch, self.ws.profile, self.book.budget_s,
                                 str(self.ws.path), self.agent.name, self.actions.gate,
                                 harness_sha256=self.book.harness_sha))
        self.emit(EngineMessage(f"program: {self.book.program.label} (read again before every proposal)"))

    def _reconcile(self) -> None:
        """Settle what a dead engine left (cockpit.reconcile) and say what was done."""
        try:
            notes = reconcile(self.ws, self.repo, self.book.journal)
        except OSError as exc:
            raise SessionError(f"cannot reconcile the interrupted session: {exc}") from None
        for level, text in notes:
            self.emit(EngineMessage(text, level))

    def _finish(self, reason: str) -> None:
        """Write what is still queued (one last try), journal the end of the session
        (when it started) and drop the lock."""
        self.book.flush()
        if getattr(self, "_base", None):
            self.book.store("the journal", lambda: self.book.journal.append(
                "end", tag=self.config.tag, reason=reason))
        if self.book.pending:
            lost = ", ".join(what for what, _ in self.book.pending)
            self.emit(EngineMessage(f"the session ended with writes still pending ({lost}): the next start "
                                    "settles the experiment from the journal and its log", "error"))
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    # ------------------------------------------------------------- checks --

    async def _preflight(self, n: int) -> None:
        """Before an experiment or a run: write what is queued, check the
        environment; pause with one error line until it is fixed (or Stop)."""
        while True:
            await self._settle(n)
            problem = run_problem(self.ws, self.repo, self.config.branch, self._state.last_kept,
                                  self.book.harness_sha, self._base)
            if problem is None:
                return
            self._hold(problem)
            await self.control.wait_if_paused(n)

    async def _settle(self, n: int) -> None:
        """When a write failed (cockpit.bookkeeping.store said why), pause; on each
        resume write the queue again, until it is all on disk."""
        while self.book.pending:
            self.control.hold()
            await self.control.wait_if_paused(n)
            self.book.flush()

    # ------------------------------------------------------ budget, prepare --

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
            raise SessionError(f"prepare.py failed (exit {result.returncode}): {result.last_line()}; fix what it "
                               f"says (missing data: run `python prepare.py` in {self.ws.path} until it ends "
                               "with 'ready'), then start again; its output is in logs/prepare.log")
