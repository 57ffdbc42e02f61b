"""The engine's events and commands as JSON lines: the daemon's socket and replay log.

Every event (``cockpit.events``) and command (``cockpit.commands``) is one JSON object on one line,
its class name under ``"type"`` and its fields by name::

    {"type": "RowLogged", "experiment": 3, "commit": "a1b2c3d", "val_bpb": 1.0415, ...}

Floats that are not finite are written as ``NaN`` / ``Infinity`` (Python's
``json`` reads them back). Lines are at most ``MAX_LINE`` bytes. Decoding is
strict about the type: ``decode_event`` accepts only events and
``decode_command`` only commands (a client cannot inject an event), and both
raise ``WireError`` for a line that is not one of them.

``compact(events)`` is what a cockpit that attaches late is sent: every event
but the training steps, and the steps of only the latest run and of the last
kept one (the live curves draw those two; see app/widgets/live_curves.py), and of
every run still in flight (a fleet session trains N at once).

``ReplayHistory`` is what the daemon keeps in memory for those late cockpits,
pruned as events come so that it stays flat over a session of millions of
steps: the steps of the two latest runs, of the runs in flight and of the last kept one, each run
thinned evenly to at most ``REPLAY_STEPS`` steps (its newest step always kept),
the last ``REPLAY_LOG_LINES`` LogLines of each experiment, and every other
event. The replay log on disk keeps every event.
"""

from __future__ import annotations

import json
import typing
from collections import deque
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from cockpit import commands, events
from cockpit.commands import Command
from cockpit.events import Event, LogLine, RowLogged, RunStarted, StepLogged
from cockpit.strided import Strided

MAX_LINE = 16 * 1024 * 1024  # bytes per line (a proposal's diff or a refused reply can be long)
REPLAY_STEPS = 4096  # steps of one run kept for a late cockpit (thinned evenly; the curves plot 400)
REPLAY_LOG_LINES = 200  # LogLines of one experiment kept for a late cockpit (the newest)
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(Event)}
COMMAND_TYPES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(Command)}

T = TypeVar("T")


class WireError(ValueError):
    """A line that is not valid JSON, or not an event (command) with valid fields."""


# One encoder for every line (json.dumps with options builds a new one per call) and the field
# names of each class looked up once: the daemon encodes every event, some 10,000 steps a second.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def to_dict(message: Any) -> dict:
    """``message`` (an event or a command) as a JSON-ready dict with its ``type``."""
    cls = type(message)
    name = cls.__name__
    if name not in EVENT_TYPES and name not in COMMAND_TYPES:
        raise WireError(f"{name} is not an event of cockpit.events or a command of cockpit.commands")
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(message))
    return {"type": name, **{field: getattr(message, field) for field in names}}


def encode(message: Any) -> str:
    """One JSON line for ``message`` (no trailing newline). Raises WireError for an
    object that is not an event or command."""
    return _ENCODER.encode(to_dict(message))


def _decode(line: str | bytes, types: dict[str, type], what: str) -> Any:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not a JSON line: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise WireError("a JSON object with a string \"type\" was expected")
    cls = types.get(data.pop("type"))
    if cls is None:
        raise WireError(f"unknown {what} type {line[:80]!r}")
    try:
        message = cls(**data)
    except TypeError as exc:
        raise WireError(f"bad fields for {cls.__name__}: {exc}") from None
    problem = _type_problem(cls, data)
    if problem:
        raise WireError(f"bad fields for {cls.__name__}: {problem}")
    return message


_HINTS: dict[type, dict[str, Any]] = {}


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` (from JSON) fits the field type ``hint``: bool is only
    bool (JSON true/false, never "no" or 1), int an int that is not a bool, float
    any number but a bool, str a str; Optional/Union any of theirs; list, tuple
    and dict by their container (a JSON array reads as a list); anything else is
    not checked."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_problem(cls: type, data: dict) -> str:
    """"" when every field of ``data`` fits ``cls``'s annotation, else what does not."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    for name, value in data.items():
        if name in hints and not _accepts(hints[name], value):
            return f"{name} must be {_name(hints[name])}, not {type(value).__name__} {str(value)[:40]!r}"
    return ""


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def decode_event(line: str | bytes) -> Event:
    """The event a line holds. Raises WireError (bad JSON, a command, unknown type, bad fields)."""
    return _decode(line, EVENT_TYPES, "event")


def decode_command(line: str | bytes) -> Command:
    """The command a line holds. Raises WireError (bad JSON, an event, unknown type, bad fields)."""
    return _decode(line, COMMAND_TYPES, "command")


def compact(items: Iterable[T], event_of: Callable[[T], Any] = lambda item: item) -> list[T]:
    """``items`` in order without the StepLogged of runs other than the latest one
    (the last RunStarted), the ones in flight (started, no row yet: a fleet's N) and
    the last kept one (the last "keep" RowLogged).
    ``event_of(item)`` gives an item's event (items may pair events with their lines)."""
    items = list(items)
    latest, kept, flying = None, None, set()
    for item in items:
        event = event_of(item)
        if isinstance(event, RunStarted):
            latest = event.experiment
            flying.add(event.experiment)
        elif isinstance(event, RowLogged):
            flying.discard(event.experiment)
            kept = event.experiment if event.status == "keep" else kept
    wanted = {latest, kept, *flying}
    return [item for item in items
            if not isinstance(event_of(item), StepLogged) or event_of(item).experiment in wanted]


class ReplayHistory:
    """The session's events as the daemon keeps them for a cockpit that attaches late:
    ``add(event, line)`` for each, in order; iterating gives the (event, line) pairs
    kept, in order. What is kept (see the module docstring) is a superset of what
    ``compact`` sends of it, but for the steps of a run past ``steps`` (``REPLAY_STEPS``),
    thinned evenly: every ``stride``-th step (the stride doubling each time the run
    reaches the cap) and the newest one. ``log_lines`` (``REPLAY_LOG_LINES``) LogLines
    of each experiment are kept, the newest. Memory is then bounded by the number of
    experiments, not of steps."""

    def __init__(self, steps: int = REPLAY_STEPS, log_lines: int = REPLAY_LOG_LINES) -> None:
        if steps < 2 or log_lines < 0:
            raise ValueError(f"steps must be >= 2 and log_lines >= 0 (got {steps}, {log_lines})")
        self.max_steps, self.max_log_lines = steps, log_lines
        self._items: dict[int, tuple[Event, bytes]] = {}  # insertion order is the events' order
        self._next = 0
        self._steps: dict[int, Strided[int]] = {}  # by experiment: keys of its steps kept
        self._logs: dict[int, deque] = {}  # by experiment: keys of its LogLines, oldest first
        self._started: deque = deque(maxlen=2)  # experiments of the two latest RunStarted
        self._kept: Optional[int] = None  # experiment of the last "keep" RowLogged
        self._flying: set[int] = set()  # experiments started with no row yet (a fleet's runs in flight)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[Event, bytes]]:
        return iter(list(self._items.values()))

    def add(self, event: Event, line: bytes) -> None:
        """Keep ``event`` (its wire ``line``) and drop what no late cockpit needs any more."""
        key = self._next
        self._next += 1
        self._items[key] = (event, line)
        if isinstance(event, StepLogged):
            self._step(event.experiment, key)
        elif isinstance(event, LogLine):
            keys = self._logs.setdefault(event.experiment, deque())
            keys.append(key)
            while len(keys) > self.max_log_lines:
                del self._items[keys.popleft()]
        elif isinstance(event, RunStarted):
            self._started.append(event.experiment)
            self._flying.add(event.experiment)
            self._forget_steps()
        elif isinstance(event, RowLogged):
            self._flying.discard(event.experiment)
            if event.status == "keep":
                self._kept = event.experiment
                self._forget_steps()

    def _step(self, experiment: int, key: int) -> None:
        run = self._steps.get(experiment)
        if run is None:
            run = self._steps[experiment] = Strided(self.max_steps)
        for old in run.append(key):
            del self._items[old]

    def _forget_steps(self) -> None:
        """Drop the steps of every experiment but the two latest started, the ones in flight
        and the last kept: ``compact`` sends only those of the latest, the ones in flight and
        the last kept (the one before the latest stays until a row says whether it was kept)."""
        wanted = {*self._started, self._kept, *self._flying}
        for experiment in [e for e in self._steps if e not in wanted]:
            for key in self._steps.pop(experiment):
                del self._items[key]


def dataclasses_of(*modules) -> list[type]:
    """Every dataclass defined in ``modules`` (default: cockpit.events and cockpit.commands;
    the round-trip test checks each has a codec)."""
    return [value for module in (modules or (events, commands)) for value in vars(module).values()
            if isinstance(value, type) and is_dataclass(value) and value.__module__ == module.__name__]
