"""Commands with wrong field types never wedge the engine (issue: one badly typed
command used to kill the listening task, after which neither Stop, SIGTERM nor
SIGINT stopped the daemon).

On a real daemon (fake train.py): every command type, sent with every wrong
field type and with an unknown field, is refused at the wire with one error
line to that client; a valid command still works afterwards; then SIGTERM ends
the daemon cleanly. In process: a command that raises inside the engine is
reported in one error line and the next command (Stop) still stops it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import typing

import pytest
from engine_support import ScriptedAgent, fast_config, make_workspace, process_alive, processes_in, run_session
from test_daemon import SLOW_TRAIN, _start, spawned  # noqa: F401 - the fixture

from cockpit.serve import wire
from cockpit.serve.attach import attach_or_start
from cockpit.cli import build_parser
from cockpit.cli.session import serve_argv, typed_session_flags
from cockpit.engine.actions import HumanActions
from cockpit.commands import Command, SetApprovalGate, Steer, Stop
from cockpit.events import EngineMessage, PhaseChanged
from cockpit.store.rundir import RunDir

WRONG = {str: [123, 1.5, True, None, ["x"], {"x": 1}], bool: ["no", "", 0, 1, None, [True], {"on": True}],
         typing.Optional[int]: ["3", 1.5, True, [3], {"n": 3}]}  # Veto / ForceKeep's experiment (a fleet's run)


def bad_lines() -> list[str]:
    """Every command type with each wrong value for each field, and with an unknown field."""
    lines = []
    for cls in typing.get_args(Command):
        name = cls.__name__
        lines.append(json.dumps({"type": name, "surprise": 1}))
        for field, hint in typing.get_type_hints(cls).items():
            for value in WRONG[hint]:
                lines.append(json.dumps({"type": name, field: value}))
    return lines


def test_every_wrong_type_is_refused_at_the_wire():
    for line in bad_lines():
        with pytest.raises(wire.WireError, match="bad fields for"):
            wire.decode_command(line)
    assert wire.decode_command('{"type": "SetApprovalGate", "on": false}').on is False


async def _read_events(reader, events, until, timeout=20.0):
    async def loop():
        while not until():
            line = await reader.readline()
            assert line, "the daemon closed the connection"
            events.append(wire.decode_event(line))
    await asyncio.wait_for(loop(), timeout)


async def test_a_daemon_refuses_each_bad_command_then_obeys_and_stops_on_sigterm(tmp_path, spawned):  # noqa: F811
    ws = make_workspace(tmp_path / "ws", train_py=SLOW_TRAIN)
    rundir = RunDir(ws.path)
    args = build_parser().parse_args(["--workspace", str(ws.path), "--budget", "1"])
    attached = attach_or_start(rundir, _start(rundir, spawned, serve_argv(args, ws, "hostile")),
                               typed_session_flags(args))
    pid = attached.state["pid"]
    reader, writer = await asyncio.open_unix_connection(attached.state["socket"])
    lines = bad_lines()
    for line in lines:
        writer.write(line.encode() + b"\n")
    writer.write(wire.encode(Steer("still listening")).encode() + b"\n")
    await writer.drain()
    events: list = []

    def refusals():
        return [e for e in events if isinstance(e, EngineMessage) and e.text.startswith("the daemon refused")]

    def steered():
        return any(isinstance(e, EngineMessage) and e.text.endswith(": still listening") for e in events)

    await _read_events(reader, events, lambda: len(refusals()) == len(lines) and steered())
    assert all("bad fields for" in e.text and e.level == "error" for e in refusals())
    assert process_alive(pid)
    spawned[0].send_signal(signal.SIGTERM)
    assert spawned[0].wait(timeout=30) == 0
    writer.close()
    state = rundir.read_state()
    assert (state["status"], state["reason"]) == ("ended", "stopped")
    assert processes_in(ws.path) == []


async def test_a_command_that_fails_inside_the_engine_does_not_stop_the_next(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")

    def broken(self, on):
        raise RuntimeError("boom")

    monkeypatch.setattr(HumanActions, "_set_gate", broken)

    def on_event(engine, event):
        if event == PhaseChanged(1, "proposing"):
            engine.send(SetApprovalGate(True))
            engine.send(Stop())

    agent = ScriptedAgent([None])
    reason, events = await run_session(ws, agent, fast_config(), on_event)
    assert reason == "stopped"
    errors = [e.text for e in events if isinstance(e, EngineMessage) and e.level == "error"]
    assert errors == ["the command SetApprovalGate failed and was ignored: RuntimeError: boom"]
