"""Pipelined proposals: the agent prepares experiment n+1 while experiment n trains.

Upstream's loop is serial: the GPU idles while the agent thinks (often 30-60 s
of a 300 s budget). Here, as soon as a run starts, the engine asks the agent
for the next proposal against the best kept train.py (the run in flight is
named in the context, ``ProposalContext.in_flight``, so it is not proposed
twice). When the run ends:

- it was discarded or crashed without fixes: the best did not move, the
  queued proposal is committed as it is;
- it was kept (or the human moved the best: force-keep, revert): the queued
  reply is re-applied onto the new best train.py (``rebased``); when it no
  longer applies the agent is asked again (a "superseded" record keeps its
  cost);
- it crashed and gets fix attempts: the fixes come first (they need the crash
  log); the queued proposal waits and is then re-applied as above;
- a steering note or a program.md change that came after it was asked makes
  it stale: superseded, asked again with the new text.

With the approval gate on, a queued proposal is shown (ProposalQueued with
``awaiting_approval``) while the run trains: Approve lets it train right after
(no wait at the gate), DropQueued records it as vetoed and asks for another at
once. Undecided, it waits at the gate after its commit as any proposal does.
Nothing is lost: a queued proposal that never trains is a records.jsonl object
("vetoed" or "superseded") with its usage; the session's usage counts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Callable, Optional

from cockpit.agents.base import AgentFatal, ProposalContext
from cockpit.engine.agent_desk import AgentDesk
from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.proposing import Asked
from cockpit.engine.control import SessionControl
from cockpit.engine.session import SessionConfig, Trial
from cockpit.clock import now_iso
from cockpit.rules.edits import EditError, apply_reply, unified_diff
from cockpit.events import Emit, EngineMessage, PhaseChanged, ProposalQueued, ProposalRejected
from cockpit.store.programs import Program, ProgramError
from cockpit.engine.proposing import obtain_proposal
from cockpit.store.repo import short


@dataclass
class Queued:
    """A proposal asked ahead: tentative number ``n``, asked while experiment
    ``running`` (``trial``) trained, against keep ``base`` whose train.py is
    ``source``; ``task`` yields its
    ``Asked``; ``decision`` "approve" or "veto" when the human decided ahead;
    ``offered`` when it was shown at the gate."""

    n: int
    running: int
    trial: Trial
    base: str
    source: str
    task: "asyncio.Future[Asked]"
    decision: str = ""
    offered: bool = False


class ProposalQueue:
    """The proposal asked ahead while a run trains, owned on its own (composed into
    cockpit.engine.ratchet.Engine, not mixed in). It asks through ``context(n,
    source, program, **extra) -> ProposalContext``; ``gate()`` and ``phase()`` read the human controls' approval gate and phase
    (cockpit.engine.actions); ``read_program(n)`` reads the program for proposal ``n`` (the
    Proposer's, which says when its text changed); ``book`` records what never trains, ``control``
    answers stops and pauses. HumanActions calls ``approve`` and ``drop``."""

    def __init__(self, config: SessionConfig, book: Bookkeeper, control: SessionControl, desk: AgentDesk,
                 emit: Emit, context: Callable[..., ProposalContext],
                 gate: Callable[[], bool], phase: Callable[[], str],
                 read_program: Optional[Callable[[int], Program]] = None) -> None:
        self.config, self.book, self.control, self.desk, self.emit = config, book, control, desk, emit
        self._context, self._gate, self._phase = context, gate, phase
        self._read_program = read_program or (lambda n: book.program.read())
        self._state = book.state
        self.queued: Optional[Queued] = None

    def ask_next(self, trial: Trial, base_source: str) -> None:
        """``trial`` starts training: ask for the next proposal against the best
        kept train.py ``base_source`` in the background (not when pipelining is
        off, one is queued already, the session stops or is full after this row)."""
        limit = self.config.max_experiments
        if (not self.config.settings.pipeline or self.queued is not None or self.control.stopped
                or (limit is not None and trial.n + 1 >= limit)):
            return
        n = trial.n + 1
        task = asyncio.ensure_future(self._ask_ahead(n, base_source, trial))
        queued = Queued(n, trial.n, trial, self._state.last_kept, base_source, task)
        self.queued = queued
        task.add_done_callback(lambda _: self._queued_ready(queued))

    async def _ask_ahead(self, n: int, source: str, running: Trial) -> Asked:
        started = now_iso()
        program = self._read_program(n)
        context = self._context(n, source, program, in_flight=(running.description,))
        outcome = await obtain_proposal(self.desk.current, context, self.config.max_reasks,
                                        lambda reason, attempt: self.emit(ProposalRejected(n, reason, attempt)))
        return Asked(outcome, program, started, context.steering,
                     {"asked_during": running.n, "base": short(self._state.last_kept)})

    def _queued_ready(self, queued: Queued) -> None:
        """The ask ahead ended: show a valid proposal (at the gate when it is on)."""
        if self.queued is not queued or queued.task.cancelled() or queued.task.exception() is not None:
            return
        outcome = queued.task.result().outcome
        if outcome.proposal is None:
            return
        gate = self._gate()
        queued.offered = gate
        self.emit(ProposalQueued(queued.n, queued.running, outcome.proposal.description,
                                 unified_diff(queued.source, outcome.new_source), gate))
        if gate:
            self.emit(EngineMessage(f"#{queued.n} is ready while #{queued.running} trains: approve (F8/a) to "
                                    "train it next, or drop it (d) to ask for another"))

    def drop(self) -> str:
        """DropQueued (HumanActions calls it): record the offered proposal as vetoed
        and ask for another at once. Returns what happened ("" when none is offered)."""
        queued = self.queued
        if queued is None or not queued.offered or queued.decision:
            return ""
        asked = queued.task.result()
        queued.decision = "veto"
        self.queued = None
        self.book.unqueued("vetoed", queued.n, asked, queued.base, "dropped at the approval gate while "
                           f"#{queued.running} trained", unified_diff(queued.source, asked.outcome.new_source))
        detail = f"#{queued.n} ({asked.outcome.proposal.description}) is dropped before it ran"
        if self._phase() == "training":
            self.ask_next(queued.trial, queued.source)
            detail += "; the agent is asked for another while the run trains"
        return detail

    def approve(self) -> str:
        """Approve ahead (HumanActions calls it): the offered proposal trains without
        waiting at the gate. Returns what happened ("" when none is offered)."""
        queued = self.queued
        if queued is None or not queued.offered or queued.decision:
            return ""
        queued.decision = "approve"
        description = queued.task.result().outcome.proposal.description
        return f"#{queued.n} ({description}) trains right after #{queued.running} (approved ahead)"

    async def take(self, n: int, source: str) -> Optional[tuple[Asked, bool]]:
        """The queued proposal for experiment ``n`` on train.py ``source`` (the best
        now), waiting for it if needed (counted as model wait): (asked, approved
        ahead), re-applied onto a newer best when the best moved; None when
        nothing is queued or it is stale, failed or no longer applies (then the
        caller asks as usual). An ask ahead that failed on the program (ProgramError)
        or the agent (AgentFatal: a missing key, an unknown model, an unreachable
        server) pauses the session with one line, as the serial ask does; on Resume
        the caller asks again. Raises Stopped / Restart from the waits."""
        queued = self.queued
        if queued is None:
            return None
        if not queued.task.done():
            # the engine waits on the agent between two runs, as the serial loop's ask does: the
            # phase says so, and the commands of that phase (force-keep, revert) apply
            self.emit(PhaseChanged(n, "proposing"))
        with self.book.times.waiting("wait_model_s"):
            # asyncio.wait never raises the task's error (task.result() would, out of
            # until_stopped, past the handling below) and, cancelled, leaves the task be
            await self.control.until_stopped(asyncio.wait({queued.task}))
        self.queued = None
        failure = queued.task.exception()
        if isinstance(failure, (ProgramError, AgentFatal)):
            # as the serial loop does (Engine._ask): one line, pause, ask afresh on resume
            self.control.hold(f"cannot read the program: {failure}" if isinstance(failure, ProgramError)
                       else f"the agent cannot go on: {failure}")
            with self.book.times.waiting("paused_s"):
                await self.control.wait_if_paused(n)
            self.control.check_restart()
            return None
        if failure is not None:
            self.emit(EngineMessage(f"the proposal asked ahead for #{n} failed ({failure}); asking again", "warning"))
            return None
        asked = queued.task.result()
        if asked.outcome.proposal is None:
            return asked, False  # dropped after its re-asks: the caller records it
        stale = self._staleness(asked)
        if stale:
            return self._supersede(queued, asked, stale)
        rebased = queued.base != self._state.last_kept
        if rebased:
            try:
                proposal, new_source = apply_reply(asked.outcome.replies[-1], source, base=queued.source)
            except EditError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "it does not apply"
                return self._supersede(queued, asked, f"it no longer applies to the new best "
                                       f"{short(self._state.last_kept)}: {first}")
            asked = replace(asked, outcome=replace(asked.outcome, proposal=proposal, new_source=new_source))
            self.emit(EngineMessage(f"#{n}: the proposal asked during #{queued.running} is re-applied onto the "
                                    f"new best {short(self._state.last_kept)}"))
        asked = replace(asked, queued={**asked.queued, "rebased": rebased,
                                       "approved_ahead": queued.decision == "approve"})
        return asked, queued.decision == "approve"

    def _staleness(self, asked: Asked) -> str:
        """Why ``asked`` no longer reflects what the agent must see ("" = fresh)."""
        if tuple(self.control.steering) != tuple(asked.steering):
            return "a steering note came after it was asked"
        try:
            if self.book.program.sha256() != asked.program.sha256:
                return f"{self.book.program.label} changed after it was asked"
        except ProgramError:
            return "the program cannot be read"
        return ""

    def _supersede(self, queued: Queued, asked: Asked, reason: str) -> None:
        self.emit(EngineMessage(f"the proposal asked during #{queued.running} is set aside ({reason}); "
                                "asking again"))
        self.book.unqueued("superseded", queued.n, asked, queued.base, reason,
                           unified_diff(queued.source, asked.outcome.new_source))
        return None

    def abandon(self, reason: str) -> None:
        """The session ends: cancel an ask in flight, record a finished one."""
        queued, self.queued = self.queued, None
        if queued is None:
            return
        if not queued.task.done():
            queued.task.cancel()
            return
        if queued.task.cancelled() or queued.task.exception() is not None:
            return
        asked = queued.task.result()
        if asked.outcome.proposal is None:
            return
        self.book.unqueued("superseded", queued.n, asked, queued.base, reason,
                           unified_diff(queued.source, asked.outcome.new_source))
