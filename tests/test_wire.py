"""The JSON line codec of every event and command, and the compact replay."""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import pytest

from cockpit import commands, events

from cockpit.serve import wire
from cockpit.commands import Pause, SetApprovalGate, Steer, Stop
from cockpit.events import RowLogged, RunStarted, SessionEnded, StepLogged

SAMPLES = {str: "text ✓ \"quoted\"\nline", float: 1.25, int: 7, bool: True, dict: {"val_bpb": 0.99, "n": [1, 2]},
           list: [1.1, 1.09]}


def sample(cls: type):
    """An instance of ``cls`` with every field set to a non-default value of its type."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)  # Optional[X] -> X
        values[field.name] = SAMPLES[typing.get_origin(kind) or kind]
    return cls(**values)


@pytest.mark.parametrize("cls", wire.dataclasses_of(events, commands), ids=lambda cls: cls.__name__)
def test_every_event_and_command_round_trips(cls):
    message = sample(cls)
    line = wire.encode(message)
    assert "\n" not in line and json.loads(line)["type"] == cls.__name__
    decode = wire.decode_event if cls.__name__ in wire.EVENT_TYPES else wire.decode_command
    assert decode(line) == message and type(decode(line)) is cls
    assert decode(line.encode("utf-8")) == message


def test_every_dataclass_is_an_event_or_a_command():
    names = {cls.__name__ for cls in wire.dataclasses_of(events, commands)}
    assert names == set(wire.EVENT_TYPES) | set(wire.COMMAND_TYPES)
    assert not set(wire.EVENT_TYPES) & set(wire.COMMAND_TYPES)


def test_not_finite_floats_survive():
    row = wire.decode_event(wire.encode(RowLogged(1, "abc1234", math.nan, 0.0, "crash", "x", math.inf)))
    assert math.isnan(row.val_bpb) and row.best_val_bpb == math.inf


@pytest.mark.parametrize("line, decode", [
    ('{"type": "Stop"}', wire.decode_event),  # a command is not an event ...
    ('{"type": "SessionEnded", "reason": "x", "experiments": 1}', wire.decode_command),  # ... nor the reverse
    ('{"type": "Steer"}', wire.decode_command),
    ('{"type": "Steer", "text": "a", "extra": 1}', wire.decode_command),
    ('{"type": "Nope"}', wire.decode_command),
    ('["Stop"]', wire.decode_command),
    ("not json", wire.decode_command),
])
def test_bad_lines_raise_wire_error(line, decode):
    with pytest.raises(wire.WireError):
        decode(line)


def test_commands_decode():
    assert wire.decode_command('{"type": "Stop"}') == Stop()
    assert wire.decode_command(wire.encode(SetApprovalGate(True))) == SetApprovalGate(True)
    assert wire.decode_command(wire.encode(Steer("go"))) == Steer("go")
    with pytest.raises(wire.WireError):
        wire.encode(object())


def _step(n: int, step: int) -> StepLogged:
    return StepLogged(n, step, 50.0, 3.0, 1.0, 10.0, 1000.0, 1.0, 1, 1.0)


def test_compact_keeps_steps_of_the_latest_and_the_last_kept_run_only():
    history = []
    for n, status in enumerate(["keep", "keep", "discard", None]):
        history += [RunStarted(n, f"c{n}", "d", 1.0, "log"), _step(n, 0), _step(n, 1)]
        if status:
            history.append(RowLogged(n, f"c{n}", 1.0, 1.0, status, "d", 1.0))
    history.append(Pause())  # anything but a step is kept, in order
    kept = wire.compact(history)
    assert [(e.experiment, e.step) for e in kept if isinstance(e, StepLogged)] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert [e for e in kept if not isinstance(e, StepLogged)] == [e for e in history if not isinstance(e, StepLogged)]
    paired = wire.compact([(e, i) for i, e in enumerate(history)], lambda item: item[0])
    assert [e for e, _ in paired] == kept
    assert wire.compact([SessionEnded("stopped", 0)]) == [SessionEnded("stopped", 0)]
