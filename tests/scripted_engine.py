"""A scripted engine for UI tests: real events from cockpit/events.py, no git, no training.

It implements the engine side of docs/CONTRACTS.md (``run()`` and ``send()``):
emits a session of experiments with small awaits, honours Pause (waits in
"paused" until Resume) and Stop (ends quickly: the running experiment is
logged as a crash), holds a proposal in "awaiting-approval" until Approve or
Veto when the experiment asks for it (or the gate is on), and records every
command it was sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional

from cockpit.commands import Approve, Command, Pause, Resume, SetApprovalGate, Stop, Veto

from cockpit.events import (ActionApplied, Emit, EngineMessage, Event, LogLine, PhaseChanged, ProposalReady,
                             ProposalRejected, RowLogged, RunFinished, RunStarted, SessionEnded, SessionStarted,
                             StepLogged)


@dataclass(frozen=True)
class Experiment:
    """One scripted experiment and the row it ends in.

    ``rejections``: reasons its proposal is rejected with (one ProposalRejected
    each) before it is accepted. ``diff``: its unified diff (made up if empty).
    ``needs_approval``: its proposal waits in "awaiting-approval" for Approve or
    Veto (as every proposal does while the gate is on). ``agent_usage``: what
    its RowLogged says the proposal cost.
    """

    status: str
    val_bpb: float
    description: str
    memory_gb: float = 12.3
    rejections: tuple[str, ...] = ()
    diff: str = ""
    needs_approval: bool = False
    agent_usage: Optional[dict] = None


def make_diff(number: int, description: str) -> str:
    """A small unified diff of train.py for experiment ``number``."""
    return (
        "--- a/train.py\n+++ b/train.py\n"
        f"@@ -40,7 +40,7 @@ MATRIX_LR = 0.04  # {description}\n"
        " DEPTH = 8\n"
        f"-WARMDOWN_RATIO = 0.{number}\n"
        f"+WARMDOWN_RATIO = 0.{number + 1}  # exp {number}\n"
        " EMBEDDING_LR = 0.6\n"
    )


USAGE = {"prompt_tokens": 1834, "completion_tokens": 212, "cost_usd": 0.0021, "latency_s": 3.4, "retries": 0,
         "calls": 1}

DEFAULT_SCRIPT = (
    Experiment("keep", 0.997900, "baseline"),
    Experiment("keep", 0.993200, "increase matrix LR to 0.04", agent_usage=USAGE),
    Experiment("discard", 0.995100, "swap ReLU² for GELU", memory_gb=12.1, agent_usage=USAGE),
    Experiment("crash", 0.0, "double the model width (OOM)", memory_gb=0.0, agent_usage=USAGE),
)


async def _first(*flags: asyncio.Event) -> None:
    """Wait until any of ``flags`` is set."""
    waiters = [asyncio.ensure_future(flag.wait()) for flag in flags]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class ScriptedEngine:
    """Plays ``script``.

    ``hold_in_training``: that experiment blocks mid-run until ``release`` is set
    (``holding`` is set meanwhile). ``hold_stop``: after a Stop, ``run()`` returns
    only once ``stop_release`` is set. ``end_when_done=False``: after the script,
    wait for Stop. ``fail_with``: ``run()`` raises it after SessionStarted. ``gate``:
    the approval gate starts on (SetApprovalGate turns it on and off).
    """

    def __init__(
        self,
        emit: Emit,
        script: tuple[Experiment, ...] = DEFAULT_SCRIPT,
        *,
        steps: int = 5,
        budget_s: float = 300.0,
        hold_in_training: Optional[int] = None,
        end_when_done: bool = True,
        hold_stop: bool = False,
        messages: tuple[EngineMessage, ...] = (),
        fail_with: Optional[Exception] = None,
        gate: bool = False,
    ) -> None:
        self._emit = emit
        self.script = script
        self.steps = steps
        self.budget_s = budget_s
        self.hold_in_training = hold_in_training
        self.end_when_done = end_when_done
        self.hold_stop = hold_stop
        self.messages = messages
        self.fail_with = fail_with
        self.commands: list[Command] = []
        self.events: list[Event] = []
        self.finished = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.stop_release = asyncio.Event()
        self.awaiting = asyncio.Event()
        self.gate = gate
        self._approved = asyncio.Event()
        self._vetoed = asyncio.Event()
        self._pause_requested = False
        self._resume = asyncio.Event()
        self._stop = asyncio.Event()

    # ------------------------------------------------------------ contract --

    def send(self, command: Command) -> None:
        self.commands.append(command)
        if isinstance(command, Pause):
            self._pause_requested = True
            self._resume.clear()
        elif isinstance(command, Resume):
            self._pause_requested = False
            self._resume.set()
        elif isinstance(command, Stop):
            self._stop.set()
        elif isinstance(command, Approve):
            self._approved.set()
        elif isinstance(command, Veto):
            self._vetoed.set()
        elif isinstance(command, SetApprovalGate) and command.on != self.gate:
            self.gate = command.on
            self._applied("gate-on" if command.on else "gate-off", 0, "proposals wait" if command.on else "they train")

    async def run(self) -> None:
        try:
            await self._session()
        finally:
            self.finished = True

    # ------------------------------------------------------------- session --

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self._emit(event)

    async def _session(self) -> None:
        self.emit(SessionStarted("mar21", "autoresearch/mar21", "cpu", self.budget_s, "/tmp/ws", "offline", self.gate))
        for message in self.messages:
            self.emit(message)
        if self.fail_with is not None:
            raise self.fail_with
        done = 0
        for number, experiment in enumerate(self.script):
            if await self._checkpoint(number):
                break
            await self._experiment(number, experiment)
            done += 1
        if not await self._checkpoint(done) and not self.end_when_done:
            await self._stop.wait()
        if self._stop.is_set():  # killing the process group takes a moment
            await (self.stop_release.wait() if self.hold_stop else asyncio.sleep(0.01))
        reason = "stopped" if self._stop.is_set() else "max-experiments"
        self.emit(SessionEnded(reason, done))

    async def _checkpoint(self, number: int) -> bool:
        """Between experiments: wait while paused. True when the session must stop."""
        if self._pause_requested and not self._stop.is_set():
            self.emit(PhaseChanged(number, "paused"))
            await _first(self._resume, self._stop)
            self._pause_requested = False
        return self._stop.is_set()

    def _applied(self, action: str, number: int, detail: str) -> None:
        """An ActionApplied and its echo, as the engine says an action took effect."""
        self.emit(ActionApplied(action, number, detail))
        self.emit(EngineMessage(f"{action}: {detail}"))

    async def _experiment(self, number: int, experiment: Experiment) -> None:
        commit = f"{number:03d}abcd"
        if number > 0:  # the baseline runs train.py as it is: no proposal
            await self._propose(number, experiment)
            if (experiment.needs_approval or self.gate) and not await self._approval(number, experiment):
                return
        self.emit(PhaseChanged(number, "training"))
        self.emit(RunStarted(number, commit, experiment.description, self.budget_s, f"logs/exp-{number:04d}.log"))
        self.emit(LogLine(number, "compiling the model..."))
        self._steps(number)
        await asyncio.sleep(0)
        if self.hold_in_training == number:
            self.holding.set()
            await _first(self.release, self._stop)
        if self._stop.is_set():
            self.emit(RunFinished(number, commit, returncode=-15, timed_out=False, wall_s=1.0))
            self.emit(RowLogged(number, commit, 0.0, 0.0, "crash", experiment.description, None))
            return
        self._finish(number, commit, experiment)
        await asyncio.sleep(0)

    async def _propose(self, number: int, experiment: Experiment) -> None:
        self.emit(PhaseChanged(number, "proposing"))
        for attempt, reason in enumerate(experiment.rejections, start=1):
            await asyncio.sleep(0)
            self.emit(ProposalRejected(number, reason, attempt))
        diff = experiment.diff or make_diff(number, experiment.description)
        self.emit(ProposalReady(number, experiment.description, diff))
        self.emit(PhaseChanged(number, "committing"))
        await asyncio.sleep(0)

    async def _approval(self, number: int, experiment: Experiment) -> bool:
        """Wait in "awaiting-approval": True when approved, False when vetoed (no row) or stopped."""
        self._approved.clear()
        self._vetoed.clear()
        self.emit(PhaseChanged(number, "awaiting-approval"))
        self.awaiting.set()
        await _first(self._approved, self._vetoed, self._stop)
        self.awaiting.clear()
        if self._stop.is_set():
            return False
        if self._vetoed.is_set():
            self._applied("veto", number, f"#{number} ({experiment.description}) is dropped without training")
            return False
        self._applied("approve", number, f"#{number} ({experiment.description}) trains")
        return True

    def _steps(self, number: int) -> None:
        """Emit all step events at once, with no await between them (a burst).

        A held experiment stops at half its budget; the others use all of it.
        Every run's loss ends at 3.0; later experiments start higher, run
        faster (tokens/s) and at a higher MFU, so their curves differ.
        """
        span = 0.5 if self.hold_in_training == number else 1.0
        for step in range(self.steps):
            fraction = span * (step + 1) / self.steps
            loss = 3.0 + (1.0 + 0.25 * number) * (1.0 - fraction) ** 2
            self.emit(
                StepLogged(
                    number, step, 100.0 * fraction, loss, 1.0, 312.0,
                    5_737.0 - 100.0 * number, 1.5 + 0.1 * number, 1, self.budget_s * (1.0 - fraction),
                )
            )

    def _finish(self, number: int, commit: str, experiment: Experiment) -> None:
        crashed = experiment.status == "crash"
        summary = {} if crashed else {"val_bpb": experiment.val_bpb, "peak_vram_mb": experiment.memory_gb * 1024}
        self.emit(RunFinished(number, commit, 1 if crashed else 0, False, summary, wall_s=305.0))
        self.emit(PhaseChanged(number, "deciding"))
        self.emit(
            RowLogged(
                number, commit, experiment.val_bpb, experiment.memory_gb,
                experiment.status, experiment.description, None, experiment.agent_usage,
            )
        )
