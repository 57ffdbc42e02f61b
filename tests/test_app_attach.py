"""The cockpit attached to an engine over the wire: replayed history, keys as command lines, detach."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from cockpit.app.widgets.results_table import FIXED_COLUMNS
from app_harness import until
from cockpit.serve import wire
from cockpit.app import CockpitApp
from cockpit.app.widgets import ResultsTable, StatusBar, TrainLog
from cockpit.serve.attach import AttachedEngine
from cockpit.commands import Resume
from cockpit.events import ActionApplied, SessionEnded
from cockpit.store.rundir import RunDir
from scripted_engine import ScriptedEngine


async def recorded_session(**options) -> list:
    """The events of a whole ScriptedEngine session."""
    events: list = []
    await ScriptedEngine(events.append, **options).run()
    return events


def statuses(app: CockpitApp) -> list[str]:
    table = app.query_one(ResultsTable)
    status = [label for label, _ in FIXED_COLUMNS].index("status")
    return [table.get_row_at(index)[status].plain for index in range(table.row_count)]


def status(app: CockpitApp) -> str:
    return app.query_one(StatusBar).render().plain


async def test_an_ended_session_is_rebuilt_from_its_log(tmp_path):
    events = await recorded_session()
    events[0] = dataclasses.replace(events[0], started_at=time.time() - 3600)  # as the daemon stamps it
    log = tmp_path / "session.jsonl"
    log.write_text("".join(wire.encode(event) + "\n" for event in events))
    state = {"pid": 1, "socket": str(tmp_path / "gone.sock"), "events": str(log), "tag": "mar21"}
    app = CockpitApp(lambda emit: AttachedEngine(state, emit))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app._engine_done)
        assert statuses(app) == ["keep", "keep", "discard", "crash"]
        assert "ended: max-experiments · 4 experiments" in status(app)
        assert "4.0 exp/h" in status(app)  # over the session's hour, not over the replay's instant


async def test_a_log_without_an_end_says_the_engine_is_gone(tmp_path):
    events = [e for e in await recorded_session() if not isinstance(e, SessionEnded)]
    log = tmp_path / "session.jsonl"
    log.write_text("".join(wire.encode(event) + "\n" for event in events))
    state = {"pid": 4321, "socket": str(tmp_path / "gone.sock"), "events": str(log), "log": "logs/engine.log"}
    engines: list[AttachedEngine] = []
    app = CockpitApp(lambda emit: engines.append(AttachedEngine(state, emit)) or engines[-1])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app._engine_done)
        assert "engine gone · q to quit" in status(app)
        lines = [strip.text for strip in app.query_one(TrainLog).lines]
        assert any("the engine (pid 4321) is gone without ending the session" in line for line in lines)
    assert engines[0].gone and engines[0].ended is None


async def test_keys_go_over_the_socket_and_q_only_closes_the_connection(tmp_path):
    """A stand-in daemon: sends a session's start, then records the command lines until EOF."""
    events = await recorded_session(script=())
    received: list = []
    closed = asyncio.Event()

    async def daemon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pause = ActionApplied("pause", 0, "the loop waits after the running experiment")  # from another cockpit
        for event in [*events[:-1], pause]:  # everything but SessionEnded: the session runs
            writer.write((wire.encode(event) + "\n").encode())
        while line := await reader.readline():
            received.append(wire.decode_command(line))
        closed.set()

    socket = RunDir(tmp_path).socket_path()
    socket.parent.mkdir(exist_ok=True)
    server = await asyncio.start_unix_server(daemon, path=str(socket))
    state = {"pid": 1, "socket": str(socket), "events": "", "tag": "mar21"}
    app = CockpitApp(lambda emit: AttachedEngine(state, emit))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "pausing after this experiment" in status(app))
            await pilot.press("p")  # it is pausing: p resumes
            await until(pilot, lambda: received == [Resume()])
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running)
        await asyncio.wait_for(closed.wait(), 5)
        assert received == [Resume()]  # detaching sent no Stop
    finally:
        server.close()
