"""Pause / Resume / Stop / Steer: the session state that commands change.

The engine owns one ``SessionControl``; its command listener calls ``apply``.
Pause takes effect between experiments (``wait_if_paused``); the engine also
pauses by itself (``hold``) when the agent fails fatally or the program cannot
be read. Stop kills the running subprocess at once and makes the waiting
helpers raise ``Stopped``. Steer notes are kept, in order, for every following
proposal.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Optional, TypeVar

from cockpit.events import Command, EngineMessage, Emit, Pause, PhaseChanged, Resume, Steer, Stop
from cockpit.runner import Run

T = TypeVar("T")


class Stopped(Exception):
    """Raised where the session notices a Stop command; the engine ends with "stopped"."""


class SessionControl:
    """Holds paused/stopped state and the run that Stop must kill."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.paused = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._current: Optional[Run] = None
        self.steering: list[str] = []

    @property
    def stopped(self) -> bool:
        """True once Stop was received."""
        return self._stop.is_set()

    def apply(self, command: Command) -> None:
        """Change the state for ``command`` (Pause, Resume, Stop or Steer)."""
        if isinstance(command, Pause):
            self.paused = True
            self.emit(EngineMessage("pause requested: the loop waits after the running experiment"))
        elif isinstance(command, Resume):
            self.paused = False
            self._wake.set()
        elif isinstance(command, Stop):
            self._stop.set()
            self._wake.set()
            self.kill_current()
        elif isinstance(command, Steer):
            self._steer(command.text)

    def _steer(self, text: str) -> None:
        note = text.strip()
        if note:
            self.steering.append(note)
            self.emit(EngineMessage(f"steering note for the agent (from the next proposal on): {note}"))

    def hold(self) -> None:
        """Enter the paused state without a Pause command; ``wait_if_paused`` then
        waits for Resume (or Stop)."""
        self.paused = True

    def kill_current(self) -> None:
        """Kill the subprocess running now, if any."""
        if self._current is not None:
            self._current.kill()

    async def guarded(self, run: Run):
        """``await run.wait()`` with ``run`` as the one Stop kills (killed at once if
        Stop already came). Returns its RunResult."""
        self._current = run
        if self.stopped:
            run.kill()
        try:
            return await run.wait()
        finally:
            self._current = None

    async def until_stopped(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless Stop comes first (then cancel it, raise Stopped)."""
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise Stopped
        return task.result()

    async def wait_if_paused(self, experiment: int) -> None:
        """If paused, emit PhaseChanged(experiment, "paused") and wait for Resume.
        Raises Stopped when Stop came (before or while paused)."""
        if self.paused and not self.stopped:
            self.emit(PhaseChanged(experiment, "paused"))
        while self.paused and not self.stopped:
            self._wake.clear()
            await self._wake.wait()
        if self.stopped:
            raise Stopped
