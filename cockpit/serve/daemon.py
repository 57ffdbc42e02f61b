"""The engine as a background process: ``cockpit serve`` (started by ``cockpit``).

``serve(workspace, config, agent)`` runs one Engine (or the FleetEngine it is given) in this process and makes it
reachable (docs/CONTRACTS.md, "Detach and reattach"):

- it holds the workspace's engine lock (cockpit.store.rundir) for its whole life;
- every event is appended, as a cockpit.serve.wire line (flushed), to the session's
  replay log ``.cockpit/sessions/<time>-<tag>.jsonl``, printed as a headless line
  on stdout (``logs/engine.log`` when ``cockpit`` starts it), and sent to every
  client connected to the Unix socket (``.cockpit/engine.sock``, mode 0600);
- a client that connects first gets the session so far (``wire.compact``: every
  event, steps only of the latest and the last kept run), then each new event;
  the lines it sends are commands (``wire.decode_command``) for the engine;
- it stays bounded however long the session and whatever its clients do: the
  session so far is held pruned (``wire.ReplayHistory``: at most REPLAY_STEPS
  steps a run, thinned evenly, REPLAY_LOG_LINES log lines an experiment; the
  replay log on disk has every event); a client's commands are rate-limited
  (``CommandBucket``: COMMAND_RATE a second, bursts of COMMAND_BURST; Stop is
  never limited); a client that does not read is dropped when its unsent lines
  pass MAX_CLIENT_BUFFER, and the one with the most when all of theirs pass
  MAX_TOTAL_BUFFER;
- SIGTERM and SIGINT stop the session cleanly (as the stop key does), SIGUSR1
  resumes a pause, SIGHUP is ignored (a closed terminal or SSH link);
- at the end it closes the clients after the SessionEnded line, removes the
  socket, marks ``state.json`` ended with the reason and releases the lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from cockpit.serve import wire
from cockpit.agents.base import Agent
from cockpit.engine.agent_desk import AgentDesk
from cockpit.commands import Resume, Stop
from cockpit.events import EngineMessage, Emit, Event, SessionStarted
from cockpit.serve.headless import HeadlessPrinter
from cockpit.engine.ratchet import Engine, SessionConfig
from cockpit.store.repo import GitRepo
from cockpit.clock import now_iso
from cockpit.store.rundir import DIRNAME, RunDir
from cockpit.store.workspace import Workspace

MAX_CLIENT_BUFFER = 64 * 1024 * 1024  # bytes queued for one client before it is dropped
MAX_TOTAL_BUFFER = 256 * 1024 * 1024  # bytes queued for all clients together: the biggest one is dropped
COMMAND_RATE = 20.0  # commands a second one client may send, sustained (Stop not counted)
COMMAND_BURST = 100  # commands one client may send at once before the rate applies
CLOSE_GRACE_S = 2.0  # seconds a client gets to take the last lines


def _log(text: str) -> None:
    print(f"[daemon] {text}", file=sys.stderr, flush=True)


class CommandBucket:
    """A token bucket: ``take()`` is True for at most ``burst`` commands at once and
    ``rate`` a second after that (``clock`` in seconds, time.monotonic by default).
    Raises ValueError for a rate or burst that is not positive."""

    def __init__(self, rate: float = COMMAND_RATE, burst: int = COMMAND_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or not burst >= 1:
            raise ValueError(f"a command bucket needs a positive rate and burst (got {rate}, {burst})")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> bool:
        """Spend a token: True when one was left (the command may go), else False."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self) -> bool:
        """Whether the whole burst is available again (the client slowed down)."""
        self._refill()
        return self.tokens >= self.burst


class Broadcaster:
    """The engine's ``emit`` in the daemon: replay log, headless line, every client."""

    def __init__(self, events_path: Path) -> None:
        self.events_path = events_path
        self._file = open(events_path, "x", encoding="utf-8")
        self.history = wire.ReplayHistory()  # what a client that attaches is sent (compacted)
        self.clients: set[asyncio.StreamWriter] = set()
        self.printer = HeadlessPrinter()
        self.engine: Optional[Engine] = None
        self._write_failed = False

    def emit(self, event: Event) -> None:
        if isinstance(event, SessionStarted) and event.started_at is None:
            event = dataclasses.replace(event, started_at=time.time())
        text = wire.encode(event) + "\n"
        line = text.encode("utf-8")
        self.history.add(event, line)
        try:  # a full disk must not take the engine down: the clients still get the event
            self._file.write(text)
            self._file.flush()
            self.printer(event)
        except OSError as exc:
            if not self._write_failed:
                _log(f"cannot write the replay log or engine.log: {exc}")
            self._write_failed = True
        for writer in list(self.clients):
            self._write(writer, line)
        self._cap_total()

    def _write(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        if writer.is_closing():
            self.clients.discard(writer)
        elif writer.transport.get_write_buffer_size() > MAX_CLIENT_BUFFER:
            _log("a client reads too slowly; dropped")
            self._drop(writer)
        else:
            writer.write(line)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self.clients.discard(writer)
        writer.transport.abort()

    def _cap_total(self) -> None:
        """While the clients' unsent lines pass MAX_TOTAL_BUFFER in all, drop the client
        with the most (one log line each)."""
        if len(self.clients) < 2 and MAX_CLIENT_BUFFER < MAX_TOTAL_BUFFER:
            return  # one client is held to its own, smaller cap
        sizes = {writer: writer.transport.get_write_buffer_size() for writer in self.clients}
        total = sum(sizes.values())
        while total > MAX_TOTAL_BUFFER and sizes:
            biggest = max(sizes, key=sizes.__getitem__)
            _log(f"the clients' unsent lines are over {MAX_TOTAL_BUFFER >> 20} MiB in all: dropped the one with "
                 f"the most ({sizes[biggest] / 2**20:.1f} MiB)")
            total -= sizes.pop(biggest)
            self._drop(biggest)

    def _tell(self, writer: asyncio.StreamWriter, text: str) -> None:
        """An error line to this client only."""
        self._write(writer, (wire.encode(EngineMessage(text, "error")) + "\n").encode("utf-8"))

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: the session so far, then live events; its lines are commands,
        at most COMMAND_BURST at once and COMMAND_RATE a second (Stop always passes):
        those over it are refused, with one log line and one error line to the client
        a burst. The loop yields after each line, so a flood of lines never holds up
        the engine's events."""
        for _, line in wire.compact(self.history, lambda item: item[0]):  # no await until registered:
            writer.write(line)                                              # nothing is missed or doubled
        self.clients.add(writer)
        self._cap_total()
        bucket, refusing = CommandBucket(), False
        try:
            while line := await reader.readline():
                await asyncio.sleep(0)  # the engine's steps and the other clients go first
                try:
                    command, problem = wire.decode_command(line), None
                except wire.WireError as exc:
                    command, problem = None, exc
                if refusing and bucket.full():
                    refusing = False  # it slowed down: a new burst is told again
                if not isinstance(command, Stop) and not bucket.take():
                    if not refusing:
                        refusing = True
                        _log(f"a client sends commands faster than {COMMAND_RATE:g} a second (bursts of "
                             f"{COMMAND_BURST}): refusing them until it slows down")
                        self._tell(writer, f"the daemon is refusing your commands: more than {COMMAND_RATE:g} a "
                                   f"second (bursts of {COMMAND_BURST}); the ones over it are dropped until you "
                                   "slow down (stop always passes)")
                    continue
                if problem is not None:  # one log line; the client is told, nobody else
                    _log(f"ignored a client line: {problem}")
                    self._tell(writer, f"the daemon refused a command line: {problem}")
                    continue
                if self.engine is not None:
                    self.engine.send(command)
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            _log(f"client dropped: {exc!r}")
        finally:
            self.clients.discard(writer)
            writer.close()

    async def close_clients(self) -> None:
        """Close every client after its buffered lines (SessionEnded last), up to CLOSE_GRACE_S."""
        writers = list(self.clients)
        self.clients.clear()
        for writer in writers:
            writer.close()
        if writers:
            await asyncio.wait([asyncio.ensure_future(w.wait_closed()) for w in writers], timeout=CLOSE_GRACE_S)
        self._file.close()


def session_state(rundir: RunDir, config: SessionConfig, socket: Path, events: Path,
                  program: Optional[Path]) -> dict:
    """The state file of a daemon session (status "starting")."""
    return {"pid": os.getpid(), "mode": "daemon", "tag": config.tag, "socket": str(socket),
            "events": str(events), "program": None if program is None else str(program),
            "log": str(rundir.engine_log), "started": now_iso(), "status": "starting", "reason": None}


async def serve(workspace: Workspace, config: SessionConfig, agent: "Agent | AgentDesk",
                program: Optional[Path] = None, make_engine: Optional[Callable[[Emit], Engine]] = None) -> str:
    """Run the session as described in the module docstring; returns its end reason.
    ``program`` is the program file the session reads (recorded for the cockpit's
    editor); ``make_engine(emit)`` builds the engine (default: the serial Engine; a
    ``--gpus N`` session's FleetEngine, cockpit.cli.session). Raises rundir.EngineBusy
    when an engine already runs on the workspace, rundir.RunDirError when .cockpit/
    cannot be written."""
    rundir = RunDir(workspace.path)
    lock = rundir.lock_engine()
    try:
        GitRepo(workspace.path).exclude([f"{DIRNAME}/"])
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        events = rundir.sessions / f"{stamp}-{config.tag}.jsonl"
        socket = rundir.socket_path()
        state = session_state(rundir, config, socket, events, program)
        rundir.write_state(state)
        reason = "error: the engine did not end (see logs/engine.log)"
        try:
            reason = await _serve(rundir, state, socket,
                                  make_engine or (lambda emit: Engine(workspace, config, agent, emit)))
        finally:
            rundir.mark_ended(state, reason)
            _log(f"session {config.tag} ended: {reason}")
        return reason
    finally:
        lock.release()


async def _serve(rundir: RunDir, state: dict, socket: Path, make_engine: Callable[[Emit], Engine]) -> str:
    """Listen, run the engine ``make_engine(emit)`` builds, close: ``serve`` between its state writes."""
    hub = Broadcaster(Path(state["events"]))
    hub.engine = engine = make_engine(hub.emit)
    socket.unlink(missing_ok=True)  # left by an engine that died (the lock says none runs)
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(hub.client, path=str(socket), limit=wire.MAX_LINE)
    finally:
        os.umask(old_umask)
    rundir.write_state({**state, "status": "running"})
    _log(f"pid {os.getpid()} serves session {state['tag']} on {socket}")
    try:
        return await _run(engine)
    finally:
        server.close()
        await hub.close_clients()
        socket.unlink(missing_ok=True)


async def _run(engine: Engine) -> str:
    """``engine.run()`` with the daemon's signals: TERM/INT stop, USR1 resumes, HUP ignored."""
    loop = asyncio.get_running_loop()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    for sig in handled[:2]:
        loop.add_signal_handler(sig, engine.command_now, Stop())
    loop.add_signal_handler(signal.SIGUSR1, engine.command_now, Resume())
    try:
        return await engine.run()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
