"""Ask the agent for an edit, re-asking with the error text when it is invalid.

One ask plus up to ``max_reasks`` re-asks; each reply is parsed, applied to
train.py and checked (``cockpit.rules.edits``). An ``EditError`` message goes back to
the agent as ``ProposalContext.last_error``. After the last failed re-ask the
proposal is dropped (``Outcome.proposal`` is None) and train.py stays as it was.
The agent's ``last_usage`` is read after every reply and summed (cockpit.rules.usage).

``Proposer`` is the session's asking half, composed into cockpit.engine.ratchet.Engine:
a fresh context before every ask (cockpit.engine.context), the program read again,
an unreadable program or an AgentFatal held as a pause until Resume, a dropped
proposal recorded (the ``max_consecutive_drops``-th in a row pauses).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Optional

from cockpit.agents.base import Agent, AgentFatal, ProposalContext
from cockpit.engine.agent_desk import AgentDesk
from cockpit.clock import now_iso
from cockpit.engine.control import SessionControl
from cockpit.engine.context import build_context, kept_diffs, vetoed_proposals
from cockpit.engine.faults import fault_point
from cockpit.events import Emit, EngineMessage, PhaseChanged, ProposalRejected
from cockpit.rules.edits import EditError, Proposal, apply_reply
from cockpit.rules.usage import add_usage, read_usage
from cockpit.store.programs import Program, ProgramError
from cockpit.store.repo import GitRepo
from cockpit.store.workspace import Workspace

if TYPE_CHECKING:  # bookkeeping imports Outcome from here
    from cockpit.engine.bookkeeping import Bookkeeper
    from cockpit.engine.session import SessionConfig


@dataclass(frozen=True)
class Outcome:
    """Result of asking: the valid ``proposal`` and ``new_source`` of train.py (both
    None when dropped), every reply and error message, ``propose_s`` seconds spent
    and the agent's summed ``usage`` over the replies (None for an agent without
    ``last_usage``); ``agent`` the name of the agent that replied (the records')."""

    proposal: Optional[Proposal]
    new_source: Optional[str]
    replies: tuple[str, ...]
    errors: tuple[str, ...]
    propose_s: float
    usage: Optional[dict] = None
    agent: str = ""


@dataclass(frozen=True)
class Asked:
    """A proposal's ``outcome``, the ``program`` and ``steering`` notes its context
    held, and when asking ``started`` (ISO-8601 UTC); ``queued`` the pipelining
    facts of a proposal asked while an earlier run trained (ExperimentRecord.queued)."""

    outcome: Outcome
    program: Program
    started: str
    steering: tuple[str, ...] = ()
    queued: dict = field(default_factory=dict)


async def obtain_proposal(
    agent: Agent,
    context: ProposalContext,
    max_reasks: int,
    on_reject: Callable[[str, int], None],
) -> Outcome:
    """Ask ``agent`` until a reply applies cleanly to ``context.train_py``.

    ``on_reject(reason, attempt)`` is called for each invalid reply (attempt 1 =
    the first ask). Exceptions of the agent (AgentExhausted, AgentFatal, NoFix)
    propagate; the usage of replies before one is lost with it.
    """
    started = time.monotonic()
    replies: list[str] = []
    errors: list[str] = []
    usage: Optional[dict] = None
    for attempt in range(max_reasks + 1):
        asked = replace(context, last_error=errors[-1] if errors else None, attempt=attempt)
        reply = await agent.propose(asked)
        replies.append(reply)
        usage = add_usage(usage, read_usage(agent))
        try:
            proposal, new_source = apply_reply(reply, context.train_py)
        except EditError as exc:
            errors.append(str(exc))
            on_reject(str(exc), attempt + 1)
            continue
        return Outcome(proposal, new_source, tuple(replies), tuple(errors), time.monotonic() - started, usage,
                       agent.name)
    return Outcome(None, None, tuple(replies), tuple(errors), time.monotonic() - started, usage, agent.name)


class Proposer:
    """Asks the session's agent for the next proposal (module docstring); ``book``
    records a dropped one and holds the program, ``control`` answers pauses and stops."""

    def __init__(self, ws: Workspace, config: "SessionConfig", repo: GitRepo, book: "Bookkeeper",
                 control: SessionControl, desk: AgentDesk, emit: Emit) -> None:
        self.ws, self.config, self.repo, self.book, self.control = ws, config, repo, book, control
        self.desk, self.emit = desk, emit  # desk.current: the agent asked now (cockpit.engine.agent_desk)
        self._program_sha = ""

    async def ask(self, n: int, source: str, crash_tail: Optional[str] = None, fix_attempt: int = 0) -> Asked:
        """Ask with a fresh context (cockpit.engine.context). An unreadable program or an
        AgentFatal pauses the session (error message, PhaseChanged "paused") until
        Resume, then asks again; nothing is committed meanwhile. Raises Stopped,
        Restart (the branch moved), AgentExhausted, NoFix."""
        while True:
            self.emit(PhaseChanged(n, "proposing"))
            fault_point("while-proposing", n)
            started = now_iso()
            try:
                program = self.read_program(n)
                context = self.context(n, source, program, crash_log_tail=crash_tail, fix_attempt=fix_attempt)
                with self.book.times.waiting("wait_model_s"):
                    outcome = await self.control.until_stopped(obtain_proposal(
                        self.desk.current, context, self.config.max_reasks,
                        lambda reason, attempt: self.emit(ProposalRejected(n, reason, attempt))))
                return Asked(outcome, program, started, context.steering)
            except ProgramError as exc:
                self.control.hold(f"cannot read the program: {exc}")
            except AgentFatal as exc:
                self.control.hold(f"the agent cannot go on: {exc}")
            with self.book.times.waiting("paused_s"):
                await self.control.wait_if_paused(n)
            self.control.check_restart()

    def context(self, n: int, source: str, program: Program, **extra) -> ProposalContext:
        """The agent's context for experiment ``n`` on train.py ``source`` (cockpit.engine.context:
        history, kept diffs up to the last keep, steering notes, vetoed proposals);
        ``extra``: crash_log_tail and fix_attempt for a fix, in_flight when asked ahead."""
        return build_context(
            experiment=n, train_py=source, program=program, results_tsv=self.ws.results_tsv,
            diffs=kept_diffs(self.repo, self.ws.records_jsonl, self.book.state.last_kept),
            steering=self.control.steering, max_fix_attempts=self.config.settings.fix_attempts,
            vetoed=vetoed_proposals(self.ws.records_jsonl), **extra)

    def read_program(self, n: int) -> Program:
        """The program read now; says so when its text changed since the last proposal."""
        program = self.book.program.read()
        if self._program_sha and program.sha256 != self._program_sha:
            self.emit(EngineMessage(f"{program.label} changed: experiment {n} reads the new text"))
        self._program_sha = program.sha256
        return program

    def dropped(self, n: int, asked: Asked, fix_attempt: int = 0) -> None:
        """Record a proposal dropped after its re-asks; the ``max_consecutive_drops``-th
        in a row pauses the session with one line holding the last rejection (the
        night resumes with ``p`` after a look at program.md or the model, and gets
        as many proposals again), where it used to end the session."""
        if not self.book.drop(n, asked, fix_attempt):
            return
        errors = [str(e).strip() for e in asked.outcome.errors if str(e).strip()]
        last = errors[-1].splitlines()[0] if errors else "no reply"
        self.control.hold(f"the agent produced no valid edit in {self.config.max_consecutive_drops} proposals "
                          f"in a row (last rejection: {last})")
