"""The human's commands on their way into a running session.

Commands (cockpit.events: Pause, Resume, Stop, Steer, Veto, ForceKeep, Approve,
SetApprovalGate, RevertLastKeep, DropQueued, AcceptProgram, SwitchAgent) are queued by ``send``
from the daemon or the app and applied one at a time by ``listen``, on the
engine's event loop, by the human controls (cockpit.engine.actions); AcceptProgram
and Resume also release a program change held during a run
(cockpit.engine.program_hold); SwitchAgent changes the session's agent
(cockpit.engine.agent_desk). A command that fails says so in one error line and
the next is still applied; a Stop that fails that way still stops the session.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from cockpit.engine.actions import HumanActions
from cockpit.engine.control import SessionControl
from cockpit.engine.program_hold import ProgramHold
from cockpit.commands import AcceptProgram, Command, Resume, Stop, SwitchAgent
from cockpit.engine.agent_desk import AgentDesk
from cockpit.events import AgentChanged, Emit, EngineMessage


class Inbox:
    """The session's command queue (module docstring). ``program()`` is the session's
    ProgramHold now (the Bookkeeper's, replaced once the session has started)."""

    def __init__(self, actions: HumanActions, control: SessionControl, program: Callable[[], ProgramHold],
                 emit: Emit, desk: AgentDesk) -> None:
        self.actions, self.control, self.program, self.emit, self.desk = actions, control, program, emit, desk
        self._commands: asyncio.Queue = asyncio.Queue()

    def send(self, command: Command) -> None:
        """Queue ``command``; it is applied in order by ``listen``."""
        self._commands.put_nowait(command)

    async def listen(self) -> None:
        """Apply queued commands one by one, forever (cancel it to stop): the listener
        never dies of a command."""
        while True:
            self.apply_now(await self._commands.get())

    def apply_now(self, command: Command) -> None:
        """Apply ``command`` at once, not through the queue (the signal handlers'
        path: SIGTERM stops the engine even if a command before it misbehaved). An
        exception of the command is reported as one error line, never raised."""
        try:
            if isinstance(command, (AcceptProgram, Resume)):
                self._accept_program(command)
            if isinstance(command, SwitchAgent):
                self._switch_agent(command.name)
            elif not isinstance(command, AcceptProgram):
                self.actions.apply(command)
        except Exception as exc:  # noqa: BLE001 - one bad command must not take the controls down
            self.emit(EngineMessage(f"the command {type(command).__name__} failed and was ignored: "
                                    f"{type(exc).__name__}: {exc}", "error"))
            if isinstance(command, Stop):
                self.control.apply(command)

    def _switch_agent(self, name: str) -> None:
        """SwitchAgent: the next proposal is asked of agent ``name`` (AgentChanged and a
        line); an unknown name, or the agent already chosen, gets a warning."""
        if name == self.desk.chosen:
            self.emit(EngineMessage(f"agent: {name} already proposes", "warning"))
            return
        try:
            agent = self.desk.switch(name)
        except ValueError as exc:
            self.emit(EngineMessage(f"agent: {exc}", "warning"))
            return
        self.emit(AgentChanged(name, agent.name, list(self.desk.names)))
        self.emit(EngineMessage(f"agent: {agent.name} ({name}) proposes from the next proposal on"))

    def _accept_program(self, command: Command) -> None:
        """AcceptProgram (its sha256) or Resume (the file as it is): release a held
        program change; one line when one was released."""
        line = self.program().accept(command.sha256 if isinstance(command, AcceptProgram) else None)
        if line:
            self.emit(EngineMessage(line))
