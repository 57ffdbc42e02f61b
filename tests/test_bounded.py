"""Bounded under abuse and over long sessions (issue 12, "Bounded").

- steering notes: one over MAX_NOTE_CHARS is refused with one warning; the agent
  sees the newest MAX_STEERING_NOTES; records.jsonl keeps every accepted note;
- the daemon rate-limits each client's commands (a token bucket) with one log
  line and one error line a burst, and never holds back Stop;
- the clients' unsent lines are capped in all: the client with the most goes;
- the daemon's replay history stays bounded over 100k steps, and a cockpit that
  attaches afterwards still gets every row, the newest step, the latest and the
  last kept run's curves (thinned evenly) and the newest log lines;
- the app's curve of a run holds a bounded number of points, its newest step last.
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from engine_support import DEPTH_COMMENT, ScriptedAgent, fast_config, idea, lr, make_workspace, run_session, set_line

from cockpit.serve import daemon, wire
from cockpit.agents.base import ProposalContext
from cockpit.app.widgets.live_curves import MAX_CURVE_STEPS, RunCurve, thin
from cockpit.serve.attach import AttachedEngine
from cockpit.agents.base import MAX_NOTE_CHARS, MAX_STEERING_NOTES
from cockpit.serve.daemon import COMMAND_BURST, COMMAND_RATE, Broadcaster, CommandBucket
from cockpit.commands import Steer, Stop
from cockpit.events import (EngineMessage, LogLine, PhaseChanged, RowLogged, RunFinished, RunStarted,
                            SessionStarted, StepLogged)
from cockpit.serve.headless import HeadlessPrinter
from cockpit.store.records import read_records
from cockpit.agents.prompt import build_messages, steering_section


def _step(n: int, i: int, count: int) -> StepLogged:
    return StepLogged(n, i, 100.0 * i / count, 3.0 - i / count, 1.0, 30.0, 5e4, 40.0, 1, 300.0 * (1 - i / count))


def _hub(tmp_path) -> Broadcaster:
    hub = Broadcaster(tmp_path / "session.jsonl")
    hub.printer = HeadlessPrinter(io.StringIO())
    return hub


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------- steering notes --


async def test_a_long_note_is_refused_and_the_agent_sees_the_newest_notes(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent({1: lr("0.04", "0.02"), 2: set_line("DEPTH", "4", "6", DEPTH_COMMENT)})  # by idea
    notes = [f"note {i}" for i in range(MAX_STEERING_NOTES + 5)]
    sent = []

    def steer(engine, event):
        if isinstance(event, StepLogged) and event.experiment == 1 and not sent:
            sent.append(True)
            engine.send(Steer("x" * (MAX_NOTE_CHARS + 1)))
            for note in notes:
                engine.send(Steer(note))

    reason, events = await run_session(ws, agent, fast_config(max_experiments=3), steer)
    assert reason == "max-experiments"
    # the ask #2 was made from (pipelined, one asked before the notes came is asked again)
    second = [c for c in agent.contexts if idea(c) == 2][-1]
    assert second.steering == tuple(notes[-MAX_STEERING_NOTES:])  # the newest 20, oldest first
    warnings = [e.text for e in events if isinstance(e, EngineMessage) and e.level == "warning"]
    assert warnings == [f"steer: a note is at most {MAX_NOTE_CHARS:,} characters and this one has "
                        f"{MAX_NOTE_CHARS + 1:,}; it was not sent to the agent: shorten it and steer again"]
    pushed = [e.text for e in events if isinstance(e, EngineMessage) and "leaves its prompt" in e.text]
    assert len(pushed) == 5 and "(note 0)" in pushed[0] and "(note 4)" in pushed[-1]
    steered = [r["detail"] for r in read_records(ws.records_jsonl) if r.get("action") == "steer"]
    assert steered == notes  # every accepted note is on disk; the long one was never accepted
    user = build_messages(second, max_input_tokens=None, count_tokens=len)[1]["content"]
    assert "- note 24" in user and "- note 5" in user and "- note 4\n" not in user and "xxxx" not in user


def test_the_prompt_shows_the_newest_notes_each_cut_at_the_cap():
    notes = [f"restored note {i}" for i in range(30)] + ["y" * (MAX_NOTE_CHARS + 500)]
    section = steering_section(notes)
    lines = section.splitlines()
    assert lines[1] == f"(11 older notes left out: only the newest {MAX_STEERING_NOTES} are shown)"
    assert lines[2:-1] == [f"- restored note {i}" for i in range(11, 30)]
    assert lines[-1] == "- " + "y" * MAX_NOTE_CHARS + " [note cut]"
    context = ProposalContext(train_py="x = 1\n", program_md="# p\n", steering=tuple(notes))
    assert section in build_messages(context, max_input_tokens=None, count_tokens=len)[1]["content"]
    assert steering_section([]) == "" and "older notes" not in steering_section(notes[:3])


# --------------------------------------------------------------- rate limit --


class _Engine:
    def __init__(self) -> None:
        self.commands: list = []

    def send(self, command) -> None:
        self.commands.append(command)


def test_the_command_bucket_gives_a_burst_then_the_rate():
    now = [0.0]
    bucket = CommandBucket(rate=20.0, burst=100, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(150)) == 100 and not bucket.full()
    now[0] += 1.0
    assert sum(bucket.take() for _ in range(50)) == 20
    now[0] += 10.0
    assert bucket.full() and sum(bucket.take() for _ in range(500)) == 100
    with pytest.raises(ValueError):
        CommandBucket(rate=0.0)


async def test_a_flood_of_commands_is_rate_limited_but_stop_passes(tmp_path, monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(daemon, "CommandBucket", lambda: CommandBucket(clock=lambda: now[0]))
    hub, engine = _hub(tmp_path), _Engine()
    hub.engine = engine
    path = str(tmp_path / "engine.sock")
    server = await asyncio.start_unix_server(hub.client, path=path, limit=wire.MAX_LINE)
    reader, writer = await asyncio.open_unix_connection(path, limit=wire.MAX_LINE)
    try:
        def flood(count: int, then=()) -> bytes:
            return b"".join((wire.encode(c) + "\n").encode() for c in [*(Steer(f"n{i}") for i in range(count)), *then])

        writer.write(flood(2000, then=[Stop()]))
        await writer.drain()
        await _until(lambda: any(isinstance(c, Stop) for c in engine.commands))
        assert len(engine.commands) == COMMAND_BURST + 1  # the burst, then only the Stop (the clock stood still)
        now[0] += 1.0  # a second later: the rate's worth passes
        writer.write(flood(100, then=[Stop()]))
        await _until(lambda: sum(isinstance(c, Stop) for c in engine.commands) == 2)
        assert len(engine.commands) == COMMAND_BURST + 1 + int(COMMAND_RATE) + 1
        now[0] += 60.0  # quiet long enough: a new burst, told again
        writer.write(flood(COMMAND_BURST + 50, then=[Stop()]))
        await _until(lambda: sum(isinstance(c, Stop) for c in engine.commands) == 3)
        assert len(engine.commands) == 2 * COMMAND_BURST + int(COMMAND_RATE) + 3
        hub.emit(EngineMessage("marker"))
        told: list = []
        while not told or told[-1] != EngineMessage("marker"):
            told.append(wire.decode_event(await asyncio.wait_for(reader.readline(), 10)))
    finally:
        writer.close()
        server.close()
        await hub.close_clients()
    refusals = [e for e in told if e.level == "error"]
    assert len(refusals) == 2 and refusals[0].text.startswith("the daemon is refusing your commands")
    logged = capsys.readouterr().err
    assert logged.count("faster than 20 a second") == 2  # one line a burst, not one per command


# --------------------------------------------------------- total buffer cap --


class _Transport:
    def __init__(self, size: int) -> None:
        self.size, self.aborted = size, False

    def get_write_buffer_size(self) -> int:
        return self.size

    def abort(self) -> None:
        self.aborted = True


class _Writer:
    """A client that never reads: what is written stays in its buffer."""

    def __init__(self, size: int) -> None:
        self.transport = _Transport(size)

    def is_closing(self) -> bool:
        return self.transport.aborted

    def write(self, data: bytes) -> None:
        self.transport.size += len(data)


def test_the_client_with_the_most_unsent_goes_when_all_pass_the_total(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(daemon, "MAX_CLIENT_BUFFER", 10_000)
    monkeypatch.setattr(daemon, "MAX_TOTAL_BUFFER", 20_000)
    hub = _hub(tmp_path)
    writers = [_Writer(size) for size in (8_000, 9_000, 2_000, 500)]
    hub.clients.update(writers)
    hub.emit(EngineMessage("x" * 1_000))  # each is still under its own cap; all are over 20,000 bytes
    assert [w.transport.aborted for w in writers] == [False, True, False, False]
    assert sum(w.transport.size for w in hub.clients) <= 20_000 and len(hub.clients) == 3
    hub.emit(EngineMessage("x" * 4_000))  # 12k + 7k + 5.5k: the one with 8,000 first goes
    assert [w.transport.aborted for w in writers] == [True, True, False, False]
    assert capsys.readouterr().err.count("in all: dropped the one with the most") == 2


async def test_clients_that_never_read_are_held_to_the_total(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(daemon, "MAX_TOTAL_BUFFER", 4 * 2**20)
    hub = _hub(tmp_path)
    path = str(tmp_path / "engine.sock")
    server = await asyncio.start_unix_server(hub.client, path=path, limit=wire.MAX_LINE)
    connections = [await asyncio.open_unix_connection(path) for _ in range(4)]
    try:
        await _until(lambda: len(hub.clients) == 4)
        line = EngineMessage("x" * 2**20)
        for _ in range(12):  # 4 x 12 MiB unsent without the total cap (each under its 64 MiB)
            hub.emit(line)
            assert sum(w.transport.get_write_buffer_size() for w in hub.clients) <= 4 * 2**20
        assert len(hub.clients) < 4
    finally:
        for _, writer in connections:
            writer.close()
        server.close()
        await hub.close_clients()
    assert "in all: dropped the one with the most" in capsys.readouterr().err


# ----------------------------------------------------------- replay history --


def _session(steps_per_run: int, log_every: int) -> list:
    """Four runs (keep, discard, keep, still training) of ``steps_per_run`` steps each."""
    events: list = [SessionStarted("b", "autoresearch/b", "cpu", 300.0, "/ws", "scripted")]
    for n, status in enumerate(["keep", "discard", "keep", None]):
        events += [PhaseChanged(n, "training"), RunStarted(n, f"c{n}", f"run {n}", 300.0, f"run{n}.log")]
        for i in range(steps_per_run):
            events.append(_step(n, i, steps_per_run))
            if i % log_every == 0:
                events.append(LogLine(n, f"run {n} line {i}"))
        if status:
            events += [RunFinished(n, f"c{n}", 0, False, {"val_bpb": 1.0}, 300.0),
                       RowLogged(n, f"c{n}", 1.0 - n / 100, 1.0, status, f"run {n}", 1.0 - n / 100)]
    return events


def _evenly_thinned(steps: list[StepLogged], total: int) -> None:
    numbers = [s.step for s in steps]
    assert numbers[0] == 0 and numbers[-1] == total - 1  # the first and the newest
    assert len(numbers) <= wire.REPLAY_STEPS + 1 and numbers == sorted(numbers)
    assert len({b - a for a, b in zip(numbers, numbers[1:-1])}) == 1  # one stride, but to the newest


def test_the_replay_history_is_a_bounded_superset_of_what_compact_sends():
    events = _session(5_000, 10)
    history = wire.ReplayHistory(steps=64, log_lines=20)
    for event in events:
        history.add(event, b"")
    assert len(history) <= 3 * 65 + 4 * 20 + 30
    full = wire.compact(events)
    sent = wire.compact(history, lambda item: item[0])
    def others(items):
        return [e for e in items if not isinstance(e, (StepLogged, LogLine))]
    assert others(e for e, _ in sent) == others(full)
    steps = [e for e, _ in sent if isinstance(e, StepLogged)]
    assert {s.experiment for s in steps} == {2, 3}  # the last kept and the latest run
    assert set(steps) <= {e for e in full if isinstance(e, StepLogged)}
    for n in (2, 3):
        assert len([s for s in steps if s.experiment == n]) <= 65
    for n in range(4):
        logs = [e for e, _ in sent if isinstance(e, LogLine) and e.experiment == n]
        assert logs == [e for e in events if isinstance(e, LogLine) and e.experiment == n][-20:]


async def test_a_cockpit_attaching_after_100k_steps_gets_rows_curves_and_the_newest_step(tmp_path):
    hub = _hub(tmp_path)
    path = str(tmp_path / "engine.sock")
    server = await asyncio.start_unix_server(hub.client, path=path, limit=wire.MAX_LINE)
    events = _session(25_000, 100)
    try:
        for event in events:
            hub.emit(event)
        bound = 3 * (wire.REPLAY_STEPS + 1) + 4 * wire.REPLAY_LOG_LINES + 30
        assert len(hub.history) <= bound  # 100,000 steps, 1,000 log lines, 20 other events emitted
        got: list = []
        attached = AttachedEngine({"socket": path, "pid": 0}, got.append)
        task = asyncio.ensure_future(attached.run())
        await _until(lambda: len(got) > 0)
        hub.emit(_step(3, 25_000, 25_001))  # the live ones come after the replay
        hub.emit(EngineMessage("marker"))
        await _until(lambda: EngineMessage("marker") in got)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        server.close()
        await hub.close_clients()
    events += [_step(3, 25_000, 25_001), EngineMessage("marker")]

    def others(items):
        return [e for e in items if not isinstance(e, (StepLogged, LogLine))]
    assert others(got)[1:] == others(events)[1:]  # every row, phase and message, in order: staircase, status
    assert got[0].tag == "b" and got[0].started_at is not None  # stamped by the daemon
    steps = [e for e in got if isinstance(e, StepLogged)]
    assert steps[-1] == events[-2]  # the status bar's newest step
    assert {s.experiment for s in steps} == {2, 3}
    _evenly_thinned([s for s in steps if s.experiment == 2], 25_000)
    _evenly_thinned([s for s in steps[:-1] if s.experiment == 3], 25_000)
    logs = [e for e in got if isinstance(e, LogLine) and e.experiment == 3]
    assert logs == [e for e in events if isinstance(e, LogLine) and e.experiment == 3][-wire.REPLAY_LOG_LINES:]
    curve = RunCurve(3, 300.0)  # the live curve drawn from what came: the whole run, to its newest step
    for step in steps:
        if step.experiment == 3:
            curve.add(step)
    assert curve.t[0] == 0.0 and curve.t[-1] == pytest.approx(300.0, abs=0.1) and curve.loss[-1] == events[-2].loss


# ---------------------------------------------------------------- app curve --


def test_a_run_curve_holds_a_bounded_number_of_points_the_newest_last():
    curve = RunCurve(1, 300.0)
    total = 300_001
    for i in range(total):
        curve.add(_step(1, i, total))
    assert len(curve) <= MAX_CURVE_STEPS + 1 and len(curve.loss) == len(curve.t) == len(curve.mfu)
    assert curve.seen == total and curve.t[0] == 0.0 and curve.t[-1] == pytest.approx(300.0 * (total - 1) / total)
    assert curve.loss[-1] == _step(1, total - 1, total).loss  # the title's value now
    gaps = [b - a for a, b in zip(curve.t, curve.t[1:-1])]
    assert max(gaps) - min(gaps) < 1e-9  # evenly thinned
    xs, ys = thin(curve.t, curve.loss, 400)
    assert len(xs) <= 401 and xs[-1] == curve.t[-1]
    assert curve.at("loss", 150.0) == pytest.approx(_step(1, total // 2, total).loss, abs=1e-2)


def test_a_strided_record_is_evenly_thinned_bounded_and_drops_each_item_once():
    from cockpit.strided import Strided

    for limit in (2, 3, 8):
        record, dropped = Strided(limit), []
        for i in range(300):
            dropped += record.append(i)
            items = list(record)
            on_stride = items if items[-1] % record.stride == 0 else items[:-1]
            assert items[-1] == i and len(items) <= limit + 1  # the newest last, bounded
            assert on_stride == list(range(0, i + 1, record.stride))  # every stride-th seen, from 0
            assert sorted(dropped + items) == list(range(i + 1))  # each item dropped once, none twice
    with pytest.raises(ValueError):
        Strided(1)
