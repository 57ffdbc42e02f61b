"""The engine as a background process: ``cockpit serve`` (started by ``cockpit``).

``serve(workspace, config, agent)`` runs one Engine in this process and makes it
reachable (docs/CONTRACTS.md, "Detach and reattach"):

- it holds the workspace's engine lock (cockpit.rundir) for its whole life;
- every event is appended, as a cockpit.wire line (flushed), to the session's
  replay log ``.cockpit/sessions/<time>-<tag>.jsonl``, printed as a headless line
  on stdout (``logs/engine.log`` when ``cockpit`` starts it), and sent to every
  client connected to the Unix socket (``.cockpit/engine.sock``, mode 0600);
- a client that connects first gets the session so far (``wire.compact``: every
  event, steps only of the latest and the last kept run), then each new event;
  the lines it sends are commands (``wire.decode_command``) for the engine;
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

from cockpit import wire
from cockpit.agents.base import Agent
from cockpit.events import EngineMessage, Emit, Event, Resume, SessionStarted, Stop
from cockpit.headless import HeadlessPrinter
from cockpit.ratchet import Engine, SessionConfig
from cockpit.repo import GitRepo
from cockpit.clock import now_iso
from cockpit.rundir import DIRNAME, RunDir
from cockpit.workspace import Workspace

MAX_CLIENT_BUFFER = 64 * 1024 * 1024  # bytes queued for one client before it is dropped
CLOSE_GRACE_S = 2.0  # seconds a client gets to take the last lines


def _log(text: str) -> None:
    print(f"[daemon] {text}", file=sys.stderr, flush=True)


class Broadcaster:
    """The engine's ``emit`` in the daemon: replay log, headless line, every client."""

    def __init__(self, events_path: Path) -> None:
        self.events_path = events_path
        self._file = open(events_path, "x", encoding="utf-8")
        self.history: list[tuple[Event, bytes]] = []
        self.clients: set[asyncio.StreamWriter] = set()
        self.printer = HeadlessPrinter()
        self.engine: Optional[Engine] = None
        self._write_failed = False

    def emit(self, event: Event) -> None:
        if isinstance(event, SessionStarted) and event.started_at is None:
            event = dataclasses.replace(event, started_at=time.time())
        text = wire.encode(event) + "\n"
        line = text.encode("utf-8")
        self.history.append((event, line))
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

    def _write(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        if writer.is_closing():
            self.clients.discard(writer)
        elif writer.transport.get_write_buffer_size() > MAX_CLIENT_BUFFER:
            _log("a client reads too slowly; dropped")
            self.clients.discard(writer)
            writer.transport.abort()
        else:
            writer.write(line)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: the session so far, then live events; its lines are commands."""
        for _, line in wire.compact(self.history, lambda item: item[0]):  # no await until registered:
            writer.write(line)                                              # nothing is missed or doubled
        self.clients.add(writer)
        try:
            while line := await reader.readline():
                try:
                    command = wire.decode_command(line)
                except wire.WireError as exc:  # one log line; the client is told, nobody else
                    _log(f"ignored a client line: {exc}")
                    refusal = EngineMessage(f"the daemon refused a command line: {exc}", "error")
                    self._write(writer, (wire.encode(refusal) + "\n").encode("utf-8"))
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


async def serve(workspace: Workspace, config: SessionConfig, agent: Agent,
                program: Optional[Path] = None) -> str:
    """Run the session as described in the module docstring; returns its end reason.
    ``program`` is the program file the session reads (recorded for the cockpit's
    editor). Raises rundir.EngineBusy when an engine already runs on the workspace, rundir.RunDirError
    when .cockpit/ cannot be written."""
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
            reason = await _serve(rundir, state, socket, lambda emit: Engine(workspace, config, agent, emit))
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
