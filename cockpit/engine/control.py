"""Pause / Resume / Stop / Steer: the session state that commands change.

The engine owns one ``SessionControl``; its command listener calls ``apply``.
Pause takes effect between experiments (``wait_if_paused``); the engine also
pauses by itself (``hold``) when the agent fails fatally or the program cannot
be read. Stop kills the running subprocess at once and makes the waiting
helpers raise ``Stopped``. Steer notes are kept, in order, for every following
proposal: the newest MAX_STEERING_NOTES of them, each at most MAX_NOTE_CHARS
characters (a longer one is refused with one warning: a cut note could say
something else; records.jsonl keeps every accepted note). A restart (``restart``) tells the experiment being prepared that the
branch moved under it or its proposal was vetoed: waits raise ``Restart`` and
the loop asks again from the new base.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Optional, TypeVar

from cockpit.commands import Command, Pause, Resume, Steer, Stop

from cockpit.events import EngineMessage, Emit, PhaseChanged
from cockpit.agents.base import MAX_NOTE_CHARS, MAX_STEERING_NOTES
from cockpit.training.runner import Run

T = TypeVar("T")



class Stopped(Exception):
    """Raised where the session notices a Stop command; the engine ends with "stopped"."""


class Restart(Exception):
    """The experiment in preparation ends without training (its proposal was vetoed,
    or ForceKeep / RevertLastKeep moved the branch under it); the loop starts over
    with a fresh proposal."""


class SessionControl:
    """Holds paused/stopped state and the run that Stop must kill."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.paused = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._restart = asyncio.Event()
        self._current: Optional[Run] = None
        self.steering: list[str] = []

    @property
    def stopped(self) -> bool:
        """True once Stop was received."""
        return self._stop.is_set()

    def apply(self, command: Command) -> bool:
        """Change the state for ``command`` (Pause, Resume, Stop or Steer) and say so
        in an EngineMessage. Returns False when it changed nothing (a blank note, or one
        over MAX_NOTE_CHARS: refused with a warning)."""
        if isinstance(command, Pause):
            self.paused = True
            self.emit(EngineMessage("pause requested: the loop waits after the running experiment"))
        elif isinstance(command, Resume):
            self.paused = False
            self._wake.set()
            self.emit(EngineMessage("resumed"))
        elif isinstance(command, Stop):
            self.emit(EngineMessage("stop requested: ending the session"))
            self._stop.set()
            self._wake.set()
            self.kill_current()
        elif isinstance(command, Steer):
            return self._steer(command.text)
        return True

    def _steer(self, text: str) -> bool:
        note = text.strip()
        if len(note) > MAX_NOTE_CHARS:
            self.emit(EngineMessage(f"steer: a note is at most {MAX_NOTE_CHARS:,} characters and this one has "
                                    f"{len(note):,}; it was not sent to the agent: shorten it and steer again",
                                    "warning"))
            return False
        if note:
            self.steering.append(note)
            self.emit(EngineMessage(f"steering note for the agent (from the next proposal on): {note}"))
            if len(self.steering) > MAX_STEERING_NOTES:
                oldest = " ".join(self.steering.pop(0).split())
                self.emit(EngineMessage(f"steer: the agent sees the newest {MAX_STEERING_NOTES} notes; the oldest "
                                        f"({oldest[:60]}) leaves its prompt (records.jsonl keeps every note)"))
        return bool(note)

    def restore_steering(self, notes: list[str]) -> None:
        """The notes of a resumed session (its newest MAX_STEERING_NOTES)."""
        self.steering[:] = notes[-MAX_STEERING_NOTES:]

    def restart(self) -> None:
        """Make the experiment in preparation start over (see ``Restart``)."""
        self._restart.set()

    def fresh(self) -> None:
        """A new experiment begins: forget earlier restarts."""
        self._restart.clear()

    def check_restart(self) -> None:
        """Raise Restart when a restart came since ``fresh``."""
        if self._restart.is_set():
            raise Restart

    def hold(self, why: str = "") -> None:
        """Enter the paused state without a Pause command; ``wait_if_paused`` then
        waits for Resume (or Stop). With ``why``, say so first in one error line,
        ending in what to do ("...; paused: fix it, then resume")."""
        if why:
            # a message may end with what to do already ("..., then resume")
            then = "paused" if why.rstrip().endswith("then resume") else "paused: fix it, then resume"
            self.emit(EngineMessage(f"{why}; {then}", "error"))
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
        """Await ``awaitable`` unless Stop or a restart comes first (then cancel it,
        raise Stopped or Restart). A result that arrives with a restart is dropped
        (Restart): it was built on the old base."""
        task = asyncio.ensure_future(awaitable)
        watchers = {asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._restart.wait())}
        await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        for watcher in watchers:
            watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise Stopped if self.stopped else Restart
        result = task.result()
        self.check_restart()
        return result

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
