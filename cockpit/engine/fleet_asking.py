"""The asking half of a fleet session (cockpit.engine.fleet): proposals for N GPUs at once.

``FleetAsker`` hands out experiment numbers (up to max experiments), asks the agent
for a proposal against the incumbent of the moment (told every experiment in flight),
refuses one whose train.py is in flight or was tried (cockpit.rules.dedupe: the
agent is asked again, and the duplicate joins what it is told is in flight),
re-applies a proposal onto the incumbent when it moved while the proposal waited,
and queues the change of a run that beat its parent after the incumbent moved
as a new experiment ``[rebased]``. What will not train is recorded ``superseded``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Optional

from cockpit.agents.base import AgentExhausted
from cockpit.clock import now_iso
from cockpit.engine.agent_desk import AgentDesk
from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.control import SessionControl
from cockpit.engine.proposing import Asked, Proposer, obtain_proposal
from cockpit.engine.session import SessionConfig, Trial
from cockpit.events import EngineMessage, Emit, ProposalRejected
from cockpit.rules.dedupe import TriedPrograms
from cockpit.rules.edits import EditError, apply_reply, unified_diff
from cockpit.rules.fleet_rule import REBASED
from cockpit.rules.redact import redact
from cockpit.store.repo import GitRepo, short
from cockpit.store.results import clean_description


@dataclass(frozen=True)
class Job:
    """A proposal ready to commit: experiment ``n``, the new train.py ``source``, its
    ``description``, the ``asked`` proposal (its reply re-applies it), the ``parent``
    keep it goes on (full hash) and ``base_source``, the train.py its reply was applied to."""

    n: int
    source: str
    description: str
    asked: Optional[Asked]
    parent: str
    base_source: str


class FleetAsker:
    """Numbers, proposals, duplicates and re-applied winners of one fleet session (module
    docstring). ``pending``: the experiments numbered and not yet concluded (number ->
    description), which every ask names as in flight."""

    def __init__(self, config: SessionConfig, book: Bookkeeper, repo: GitRepo, proposer: Proposer,
                 control: SessionControl, desk: AgentDesk, emit: Emit) -> None:
        self.config, self.book, self.repo, self.proposer = config, book, repo, proposer
        self.control, self.desk, self.emit = control, desk, emit
        self.tried = TriedPrograms()
        self.rebase_queue: deque[Job] = deque()
        self.next_n: Optional[int] = 1
        self.free: list[int] = []  # numbers of set-aside proposals, handed out again (smallest first)
        self.exhausted = False
        self.duplicates_refused = 0
        self._one_at_a_time = asyncio.Lock()
        self.pending: dict[int, str] = {}  # experiment -> description, from its number to its row

    def number(self) -> Optional[int]:
        """The next experiment number: a set-aside proposal's first (its ``superseded``
        record shares it with the experiment that trains under it, as the serial
        pipeline's do), else a new one; None when max experiments are taken."""
        if self.free:
            return heapq.heappop(self.free)
        limit = self.config.max_experiments
        if self.next_n is None or (limit is not None and self.next_n >= limit):
            self.next_n = None
            return None
        n, self.next_n = self.next_n, self.next_n + 1
        return n

    def full(self) -> bool:
        """True when no experiment number is left to hand out."""
        return self.next_n is None and not self.free

    async def ask(self, worker: str) -> Optional[Job]:
        """A proposal against the incumbent of now, none of whose train.py is in flight or
        tried (a duplicate is refused and the agent asked again, told so through the
        in-flight list). None when dropped, exhausted or full. An agent that answers from
        this process (``local``: the offline and sampler agents) is asked one slot at a
        time, so each ask sees the moves handed out before it; a model is asked by every
        free slot at once."""
        async with self._one_at_a_time if getattr(self.desk.current, "local", False) else nullcontext():
            return await self._ask(worker)

    async def _ask(self, worker: str) -> Optional[Job]:
        refused: list[str] = []
        for _ in range(self.config.max_reasks + 1):
            if self.full():
                return None
            parent = self.book.state.last_kept
            base_source = self.repo.show_file(parent, "train.py")
            flying = [text for _, text in sorted(self.pending.items())]  # as rows say them: the offline agent skips them
            program = self.proposer.read_program(self.book.state.rows)
            context = self.proposer.context(self.book.state.rows, base_source, program,
                                            in_flight=tuple(flying + refused))
            started = now_iso()
            try:
                outcome = await self.control.until_stopped(obtain_proposal(
                    self.desk.current, context, self.config.max_reasks,
                    lambda reason, attempt: self.emit(ProposalRejected(-1, reason, attempt))))
            except AgentExhausted as exc:
                if not self.exhausted:
                    self.emit(EngineMessage(f"the agent has nothing left to propose: {exc}", "warning"))
                self.exhausted = True
                return None
            asked = Asked(outcome, program, started, context.steering)
            if outcome.proposal is None:
                self.proposer.dropped(self.book.state.rows, asked)  # the Nth in a row pauses the session
                return None
            why = self.tried.refusal(outcome.new_source)
            if why is None:
                n = self.number()
                if n is None:
                    return None
                self.tried.started(outcome.new_source, n)
                description = clean_description(redact(outcome.proposal.description))
                self.pending[n] = description
                return Job(n, outcome.new_source, description, asked, parent, base_source)
            self.duplicates_refused += 1
            refused.append(outcome.proposal.description)
            self.emit(EngineMessage(f"{worker}: proposal refused before it cost a GPU: {why}"))
        return None

    def onto_incumbent(self, job: Optional[Job]) -> Optional[Job]:
        """``job`` as it is when its parent is still the incumbent; else its reply
        re-applied onto the incumbent (set aside, None, when it no longer applies there
        or the result is in flight or tried)."""
        incumbent = self.book.state.last_kept
        if job is None or job.parent == incumbent:
            return job
        moved = self.reapplied(job)
        if moved is None:
            self.set_aside(job, f"it no longer applies to the new best {short(incumbent)}, or is a duplicate there")
        else:
            self.tried.released(job.source)
            self.tried.started(moved.source, job.n)
        return moved

    def reapplied(self, job: Job) -> Optional[Job]:
        """``job``'s reply applied onto the incumbent's train.py (from the train.py it was
        applied to first); None when it does not apply or the result is in flight or tried."""
        incumbent = self.book.state.last_kept
        source = self.repo.show_file(incumbent, "train.py")
        try:
            _, new_source = apply_reply(job.asked.outcome.replies[-1], source, base=job.base_source)
        except EditError:
            return None
        if self.tried.refusal(new_source) is not None:
            return None
        return replace(job, source=new_source, parent=incumbent)

    def set_aside(self, job: Optional[Job], reason: str) -> None:
        """Record a numbered proposal that will not train (``superseded``: no row, no commit)."""
        if job is None or job.asked is None:
            return
        self.tried.released(job.source)
        self.pending.pop(job.n, None)
        heapq.heappush(self.free, job.n)
        self.emit(EngineMessage(f"#{job.n} ({job.description}) is set aside: {reason}"))
        self.book.unqueued("superseded", job.n, job.asked, job.parent, reason,
                           unified_diff(job.base_source, job.source))

    def queue_rebased(self, trial: Trial, job: Job) -> None:
        """``job`` beat its parent after the incumbent moved: its change onto the incumbent,
        queued as a new experiment ``[rebased]`` (said in one line when it does not apply)."""
        if job.asked is None:
            return
        moved = self.reapplied(job)
        if moved is None:
            self.emit(EngineMessage(f"#{trial.n} beat its parent after the best moved, but its change does not "
                                    f"apply to {short(self.book.state.last_kept)} (or is tried there)", "warning"))
            return
        n = self.number()
        if n is None:
            return
        self.tried.started(moved.source, n)
        description = clean_description(job.description.removesuffix(REBASED) + REBASED)
        self.pending[n] = description
        self.rebase_queue.append(replace(moved, n=n, description=description))
        self.emit(EngineMessage(f"#{trial.n} beat its parent after the best moved: re-applied onto "
                                f"{short(moved.parent)} as #{n}"))
