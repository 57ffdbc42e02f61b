"""The fleet's pieces for the cockpit, without Ray: what each slot shows (FleetBoard), the
person's veto / force-keep of a run in flight (FleetHands, rules.fleet_rule.steered_verdict)
and a late cockpit's replay keeping every run in flight (wire.compact)."""

from dataclasses import dataclass

from cockpit.commands import ForceKeep, Veto
from cockpit.engine.fleet_board import FleetBoard
from cockpit.engine.fleet_hands import FleetHands
from cockpit.events import ActionApplied, EngineMessage, RowLogged, RunStarted, StepLogged, WorkerUpdated
from cockpit.rules.fleet_rule import FleetVerdict, steered_verdict
from cockpit.serve import wire


@dataclass
class Slot:
    index: int
    worker: str = ""
    node: str = "abcdef123456"
    host: str = "box"
    gpu: str = "0"

    def __post_init__(self):
        self.worker = f"gpu{self.index}"


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_the_board_shows_a_change_once_and_counts_runs_in_flight_as_busy():
    events, clock = [], Clock()
    slots = [Slot(0), Slot(1)]
    board = FleetBoard(slots, events.append, clock)
    board.show(slots[0], "training", 3, "x", 5.0)
    board.show(slots[0], "training", 3, "x", 5.0)  # the same again: no event
    board.measured(slots[0], 1.25)
    board.show(slots[0], "asking")
    assert [(e.phase, e.experiment, e.val_bpb) for e in events] == [("training", 3, None), ("asking", -1, 1.25)]
    board.begin()
    board.running(slots[0])
    clock.now += 30  # slot 0 busy 30 s of 40, in flight for the last 10 s too; slot 1 idle
    board.ran(slots[0])
    board.running(slots[0])
    clock.now += 10
    assert board.idle_share() == [0.0, 1.0]
    session = board.session(rows=4, budget_s=5.0)
    assert session["workers"] == 2 and session["ideal_per_hour"] == 2 * 3600 / 5.0
    assert session["experiments_per_hour"] == 4 * 3600 / 40 and session["idle_share"] == 0.5


class Run:
    killed = False

    def kill(self):
        self.killed = True


@dataclass
class Trial:
    n: int
    commit: str = "c" * 40
    description: str = "lr up"


class Book:
    class config:
        tag = "t"

    def __init__(self):
        self.records = []

    def append_record(self, record):
        self.records.append(record)


def test_veto_kills_the_run_it_names_and_force_keep_marks_it():
    events, book = [], Book()
    hands = FleetHands(book, events.append)
    runs = {3: Run(), 4: Run()}
    flying = {n: (runs[n], Trial(n), Slot(n - 3)) for n in runs}
    hands.apply(Veto(3), flying)
    hands.apply(ForceKeep(4), flying)
    assert runs[3].killed and not runs[4].killed
    assert hands.decision(3) == "veto" and hands.decision(4) == "force-keep" and hands.decision(4) == ""
    assert [(r["action"], r["experiment"]) for r in book.records] == [("veto", 3), ("force-keep", 4)]
    assert [e.action for e in events if isinstance(e, ActionApplied)] == ["veto", "force-keep"]


def test_a_command_naming_no_run_in_flight_is_one_warning_and_changes_nothing():
    events, book = [], Book()
    hands = FleetHands(book, events.append)
    runs = {3: Run(), 4: Run()}
    flying = {n: (runs[n], Trial(n), Slot(n - 3)) for n in runs}
    for command in (Veto(), Veto(9), ForceKeep(0)):
        hands.apply(command, flying)
    warnings = [e.text for e in events if isinstance(e, EngineMessage)]
    assert len(warnings) == 3 and all(e.level == "warning" for e in events)
    assert "2 runs are in flight" in warnings[0] and "#9 is not training" in warnings[1]
    assert book.records == [] and not any(r.killed for r in runs.values())


def test_a_forced_run_is_kept_only_on_the_incumbent_else_re_applied():
    discard = FleetVerdict("discard")
    assert steered_verdict(discard, "force-keep", 1.1, "p", "p") == FleetVerdict("keep", " [forced]")
    assert steered_verdict(discard, "force-keep", 1.1, "p", "q") == FleetVerdict("discard", " [stale]", rebase=True)
    assert steered_verdict(FleetVerdict("crash"), "force-keep", None, "p", "p") == FleetVerdict("crash")
    assert steered_verdict(FleetVerdict("keep"), "veto", None, "p", "p") == FleetVerdict("discard", " [vetoed]")
    assert steered_verdict(discard, "", 1.1, "p", "q") is discard


def test_a_late_cockpit_gets_the_steps_of_every_run_in_flight():
    def step(n):
        return StepLogged(n, 1, 10.0, 3.0, 1.0, 5.0, 100.0, 1.0, 0, 4.0)

    items = [RunStarted(n, "c", "d", 5.0, "log") for n in (1, 2, 3)] + [step(n) for n in (1, 2, 3)]
    items += [RowLogged(2, "c", 1.2, 0.1, "discard", "d", 1.0), RunStarted(4, "c", "d", 5.0, "log"), step(4)]
    kept = {e.experiment for e in wire.compact(items) if isinstance(e, StepLogged)}
    assert kept == {1, 3, 4}  # #2 ended (its row) and is not the latest: its steps go
    history = wire.ReplayHistory()
    for e in items:
        history.add(e, wire.encode(e).encode())
    assert {e.experiment for e, _ in history if isinstance(e, StepLogged)} >= {1, 3, 4}


def test_worker_updates_round_trip_on_the_wire():
    event = WorkerUpdated("gpu3", "abc", "box", "3", "training", 7, "lr up", 1.5, 300.0)
    assert wire.decode_event(wire.encode(event)) == event
