"""The cockpit's side of the engine daemon: find or start it, then attach.

``attach_or_start`` is what ``cockpit`` (without ``--headless``) does on a
workspace: attach to the engine running there, else start ``cockpit serve`` in
the background (its own session, so a closed terminal or SSH link does not
reach it; output to ``logs/engine.log``) and wait for its socket.

``AttachedEngine`` is the app's engine (``run()`` and ``send()``, see
app/app.py): it connects to the daemon's socket, emits the session so far (the
daemon sends it first, compacted: see ``wire.compact``), then every new event
until the session ends or the connection closes; ``send`` writes a command line.
When the session has already ended it replays the session's log file instead.
Leaving the cockpit only closes the connection: the engine goes on.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from cockpit.serve import wire
from cockpit.commands import Command
from cockpit.events import Emit, EngineMessage, SessionEnded
from cockpit.clock import now_iso
from cockpit.store.rundir import EngineBusy, RunDir

READY_TIMEOUT_S = 30.0  # seconds a new engine gets to open its socket
READY_POLL_S = 0.01  # seconds between two looks at a starting engine's state (the cockpit's first frame waits)
READ_BYTES = 16 * 1024  # bytes read from the engine's socket at a time (about a hundred step lines)


class DaemonError(RuntimeError):
    """The engine daemon did not start, or died at once; one line naming its log."""


class AttachedEngine:
    """The engine daemon whose state file says ``state``, as the app's engine; events go to ``emit``."""

    def __init__(self, state: dict, emit: Emit) -> None:
        self.state = state
        self._emit = emit
        self._writer: Optional[asyncio.StreamWriter] = None
        self._pending: list[bytes] = []  # commands sent before the connection opened
        self.ended: Optional[SessionEnded] = None
        self.gone = False  # the connection closed (or the log ended) without a SessionEnded

    def send(self, command: Command) -> None:
        """Write ``command`` to the engine (queued until connected; dropped after the end)."""
        line = (wire.encode(command) + "\n").encode("utf-8")
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(line)
        elif self.ended is None:
            self._pending.append(line)

    async def run(self) -> str:
        """Relay the session's events until it ends or the engine goes; returns the end
        reason ("" when the engine went without one: an error EngineMessage says so)."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.state["socket"], limit=wire.MAX_LINE)
        except OSError:
            return self._replay_file()  # it ended (or died) since its state was read
        self._writer = writer
        for line in self._pending:
            writer.write(line)
        self._pending.clear()
        try:
            await self._relay(reader)
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            self._emit(EngineMessage(f"connection to the engine failed: {exc}", "warning"))
        finally:
            self._writer = None
            writer.close()
        return self._reason()

    async def _relay(self, reader: asyncio.StreamReader) -> None:
        """Emit the event of every line until EOF, reading up to READ_BYTES at a time (a line per
        await costs more than its decoding) and letting the event loop run between two reads,
        however much is buffered: keys and redraws are not held up by a backlog. Raises
        ValueError for a line over wire.MAX_LINE."""
        held: list[bytes] = []  # the start of an unfinished line
        held_bytes = 0
        while chunk := await reader.read(READ_BYTES):
            cut = chunk.rfind(b"\n")
            if cut < 0:
                held.append(chunk)
                held_bytes += len(chunk)
            else:
                block = b"".join([*held, chunk[:cut]]) if held else chunk[:cut]
                held, held_bytes = ([chunk[cut + 1:]], len(chunk) - cut - 1) if cut + 1 < len(chunk) else ([], 0)
                self._take_block(block)
            if held_bytes > wire.MAX_LINE:
                raise ValueError(f"a line from the engine is over {wire.MAX_LINE} bytes")
            await asyncio.sleep(0)
        if held:
            self._take(b"".join(held))

    def _take_block(self, block: bytes) -> None:
        """Take each line of ``block`` (complete lines, without the last newline)."""
        try:
            lines: list = block.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = block.split(b"\n")  # each line on its own: the bad one is reported, the others taken
        for line in lines:
            if line:
                self._take(line)

    def _take(self, line: bytes | str) -> None:
        try:
            event = wire.decode_event(line)
        except wire.WireError as exc:  # e.g. an engine of another cockpit version
            self._emit(EngineMessage(f"unreadable line from the engine: {exc}", "warning"))
            return
        if isinstance(event, SessionEnded):
            self.ended = event
        self._emit(event)

    def _replay_file(self) -> str:
        path = Path(self.state.get("events") or "")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            self._emit(EngineMessage(f"cannot read the session's log {path}: {exc.strerror}", "error"))
            return ""
        decoded = []
        for line in filter(None, lines):
            try:
                decoded.append(wire.decode_event(line))
            except wire.WireError as exc:
                self._emit(EngineMessage(f"{path}: unreadable line: {exc}", "warning"))
        for event in wire.compact(decoded):
            self.ended = event if isinstance(event, SessionEnded) else self.ended
            self._emit(event)
        return self._reason()

    def _reason(self) -> str:
        if self.ended is not None:
            return self.ended.reason
        self.gone = True
        self._emit(EngineMessage(f"the engine (pid {self.state.get('pid', '?')}) is gone without ending the "
                                 f"session; see {self.state.get('log', 'logs/engine.log')}", "error"))
        return ""


@dataclass
class Attachment:
    """What ``attach_or_start`` found: the engine's ``state``, whether it ``started`` it,
    and ``notes`` for the human (one line each)."""

    state: dict
    started: bool
    notes: list[str] = field(default_factory=list)


def attach_or_start(rundir: RunDir, start: Callable[[], subprocess.Popen], ignored: Sequence[str] = (),
                    timeout_s: float = READY_TIMEOUT_S) -> Attachment:
    """The engine to attach to: the one running on the workspace (``ignored`` names the
    typed session flags, noted as ignored), else the one ``start()`` launches, once its
    socket is open. Concurrent calls are serialized (the start lock): the second attaches.
    A stale state (its engine died) is cleaned up with a note. Raises EngineBusy (a
    headless session runs there) or DaemonError (the new engine failed to start)."""
    notes: list[str] = []
    lock = rundir.lock_start(timeout_s)
    try:
        stale = rundir.clean_stale()
        if stale:
            notes.append(stale)
        state = running_engine(rundir, timeout_s)
        if state is not None:
            if ignored:
                notes.append(f"attaching to the running session {state.get('tag')} (engine pid {state.get('pid')}); "
                             f"{', '.join(ignored)} ignored")
            return Attachment(state, False, notes)
        return Attachment(wait_ready(rundir, start(), timeout_s), True, notes)
    finally:
        lock.release()


def running_engine(rundir: RunDir, timeout_s: float) -> Optional[dict]:
    """The state of the daemon running on the workspace (waiting up to ``timeout_s`` for
    one that is starting), None when none runs. Raises EngineBusy for a headless session."""
    deadline = time.monotonic() + timeout_s
    while rundir.engine_running():
        state = rundir.read_state() or {}
        if state.get("mode") == "headless" and state.get("status") == "running":
            raise EngineBusy(rundir.describe_holder() + "; it has no cockpit to attach to")
        if state.get("mode") == "daemon" and state.get("status") == "running":
            return state
        if time.monotonic() > deadline:
            raise EngineBusy(rundir.describe_holder() + f"; it did not open its socket in {timeout_s:.0f}s")
        time.sleep(0.05)
    return None


def wait_ready(rundir: RunDir, proc: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S) -> dict:
    """The state of the engine ``proc`` once its socket is open (or its session already
    ended: the cockpit then replays it). Raises DaemonError when it exits first or does
    not get there in ``timeout_s`` (then it is terminated)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = rundir.read_state() or {}
        if state.get("pid") == proc.pid and state.get("status") in ("running", "ended"):
            return state
        code = proc.poll()
        if code is not None:
            raise DaemonError(f"the engine exited at once (status {code}): {last_line(rundir.engine_log)} "
                              f"(see {rundir.engine_log})")
        if time.monotonic() > deadline:
            proc.terminate()
            raise DaemonError(f"the engine did not open its socket within {timeout_s:.0f}s; "
                              f"see {rundir.engine_log}")
        time.sleep(READY_POLL_S)


def start_daemon(rundir: RunDir, argv: Sequence[str]) -> subprocess.Popen:
    """Launch ``argv`` (a ``cockpit serve`` command) in the workspace, in a session of its
    own (no terminal: SIGHUP does not reach it), appending its output to logs/engine.log."""
    rundir.engine_log.parent.mkdir(parents=True, exist_ok=True)
    with open(rundir.engine_log, "ab") as log:
        log.write(f"--- {now_iso()} cockpit serve: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(list(argv), cwd=rundir.workspace, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def last_line(path: Path) -> str:
    """The last non-empty line of the file at ``path`` ("" when there is none)."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
