"""The cockpit under load: a flood of training steps, and how fast keys still act.

The real ``CockpitApp`` runs headless (``App.run_test``) at 160x48 and 80x24,
but with a driver that renders every frame to terminal bytes as a real
terminal's driver does (the stock headless driver skips that step), and takes
a flood of ``StepLogged`` events (one ``LogLine`` every ``--log-every`` lines,
as a training script's other output) at ``--rate`` lines per second, by two
paths:

- ``socket``: the path ``cockpit`` uses. A separate process runs the engine
  daemon's own server (``cockpit.serve.daemon._serve``: the replay log, the headless
  line, the Unix socket) around a flood engine; the app's engine is the real
  ``cockpit.serve.attach.AttachedEngine`` connected to that socket.
- ``inprocess``: the engine's ``run()`` in the app's event loop calling the
  app's ``emit`` (``messages.Relay``), as the tests' engines do; it emits in
  chunks, as the runner does for each read of the training output.

Measured per run: lines/s ingested, i.e. every line sent (plus a last marker
line) over the time from the first line sent to the moment the app's state
holds them all (the curves hold every step sent, the log ends with the
marker); and the latency of a pane key (``1``-``5``, cycled) pressed every
``--key-interval`` seconds from a thread through the driver, as a terminal's
input thread does: press -> the pane switched (state), and press -> the first
frame drawn with the pane shown and focused (what a person sees). The
engine's side is checked too (the rate it really sent at).

    .venv/bin/python bench/ui_load.py [--lines 150000] [--rate 30000] [--log-every 100]
                                       [--path socket|inprocess|both] [--size 160x48 --size 80x24]

``--rate 0`` sends as fast as the engine side can. The last line is
``ui ingest: N lines/s; key latency p50 X ms, p95 Y ms, max Z ms``: the lowest
ingest rate of all runs and the highest of each latency figure over the runs
(press -> state; the line before gives press -> frame the same way). Exit
status 1 when a line was lost. Targets (issue 6): >= 20,000 lines/s, key
latency p95 < 100 ms. Each run also prints the CPU seconds this process spent
(and the daemon's, on the socket path) and the load average: on a shared
2-core machine the figures move with the other load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COLORTERM", "truecolor")  # render colours as a modern terminal gets them
os.environ.setdefault("TERM", "xterm-256color")

from cockpit.commands import Stop  # noqa: E402
from cockpit.events import (LogLine, PhaseChanged, RunStarted, SessionEnded, SessionStarted,  # noqa: E402
                            StepLogged)

BUDGET_S = 300.0
END_MARK = "bench: end of the flood"
PANE_KEYS = ("2", "3", "4", "5", "1")  # pane keys cycled (not 6: the editor would take the digits as text)
PANE_OF_KEY = {"1": "results", "2": "curves", "3": "staircase", "4": "diff", "5": "agent"}
CHUNK_S = 0.002  # seconds between two chunks of lines the flood engine emits


class FloodEngine:
    """An engine that starts one run and emits ``lines`` lines (StepLogged, and a LogLine
    every ``log_every``) at ``rate`` lines/s (0: as fast as it can), then a marker LogLine;
    the session ends when it is sent Stop."""

    def __init__(self, emit: Callable, lines: int, rate: float, log_every: int,
                 ready: Optional[Callable[[], Awaitable[None]]] = None,
                 report: Optional[Path] = None) -> None:
        """``ready``: awaited before the flood (the daemon waits for a client);
        ``report``: a JSON file for the send times (monotonic seconds)."""
        self.emit, self.lines, self.rate, self.log_every = emit, lines, rate, log_every
        self.ready, self.report = ready, report
        self.first_sent: Optional[float] = None
        self.last_sent: Optional[float] = None
        self._stop: Optional[asyncio.Event] = None
        self._stop_early = False

    def send(self, command) -> None:
        """Stop ends the session (after the flood); other commands are ignored."""
        if isinstance(command, Stop):
            self._stop_early = True
            if self._stop is not None:
                self._stop.set()

    command_now = send  # the daemon's signal handlers apply a command at once (cockpit.serve.daemon)

    def _line(self, index: int, now: float):
        if self.log_every and index % self.log_every == self.log_every - 1:
            return LogLine(experiment=1, text=f"bench: raw output line {index}")
        # The steps spread over the run's x axis; the time left runs down in real time, as in a
        # run (the status bar shows whole seconds: it changes once a second, not once a step).
        return StepLogged(experiment=1, step=index, progress_pct=100.0 * index / self.lines,
                          loss=9.0 * math.exp(-index / 40000) + 1.0, lrm=1.0, dt_ms=12.5,
                          tok_per_s=524_288.0 + (index % 97), mfu=41.0 + (index % 13) / 10, epoch=0,
                          remaining_s=max(0.0, BUDGET_S - (now - self.first_sent)))

    async def run(self) -> str:
        """The session: start, the run's flood, the end marker, then wait for Stop."""
        self._stop = asyncio.Event()
        if self._stop_early:
            self._stop.set()
        self.emit(SessionStarted(tag="bench", branch="autoresearch/bench", profile="tiny", budget_s=BUDGET_S,
                                 workspace="bench", agent="offline"))
        self.emit(PhaseChanged(experiment=1, phase="training"))
        self.emit(RunStarted(experiment=1, commit="abcdef0", description="bench: a flood of steps",
                             budget_s=BUDGET_S, log_path="logs/bench.log"))
        if self.ready is not None:
            await self.ready()
        sent = 0
        self.first_sent = start = time.monotonic()
        while sent < self.lines:
            if self.rate > 0:
                due = min(self.lines, math.ceil((time.monotonic() - start) * self.rate) + 1)
            else:
                due = min(self.lines, sent + 500)
            now = time.monotonic()
            while sent < due:
                self.emit(self._line(sent, now))
                sent += 1
            await asyncio.sleep(CHUNK_S if self.rate > 0 else 0)
        self.emit(LogLine(experiment=1, text=END_MARK))
        self.last_sent = time.monotonic()
        if self.report is not None:
            self.report.write_text(json.dumps({"first_sent": self.first_sent, "last_sent": self.last_sent}))
        await self._stop.wait()
        self.emit(SessionEnded(reason="stopped", experiments=1))
        return "stopped"


# ------------------------------------------------------------------ daemon side --

def serve(workspace: Path, lines: int, rate: float, log_every: int) -> int:
    """The daemon process: ``cockpit.serve.daemon._serve`` around a FloodEngine that waits for a client."""
    from cockpit.serve import daemon
    from cockpit.store.rundir import RunDir

    rundir = RunDir(workspace)
    rundir.ensure()
    state = {"pid": os.getpid(), "mode": "daemon", "tag": "bench", "socket": str(rundir.socket_path()),
             "events": str(rundir.sessions / "bench.jsonl"), "program": None,
             "log": str(rundir.engine_log), "status": "starting"}

    def make_engine(emit) -> FloodEngine:
        hub = emit.__self__  # the Broadcaster whose emit this is: the flood waits for its first client

        async def client_connected() -> None:
            while not hub.clients:
                await asyncio.sleep(0.01)

        return FloodEngine(emit, lines, rate, log_every, ready=client_connected,
                           report=workspace / "flood.json")

    reason = asyncio.run(daemon._serve(rundir, state, rundir.socket_path(), make_engine))
    rundir.mark_ended(state, reason)
    return 0


# --------------------------------------------------------------------- app side --

@dataclass
class Press:
    """One key press: when it was sent, when the app had switched the pane (state) and when a
    frame showed it (time.monotonic() seconds; None until then)."""

    key: str
    pane: str
    at: float
    state_at: Optional[float] = None
    frame_at: Optional[float] = None


@dataclass
class Outcome:
    """One run's figures (seconds; rates in lines/s)."""

    path: str
    size: tuple[int, int]
    sent: int
    first_sent: float
    last_sent: float
    absorbed_at: float
    steps_held: int
    steps_sent: int
    presses: list[Press] = field(default_factory=list)
    frames: int = 0
    bytes_out: int = 0
    app_cpu_s: float = 0.0  # this process's CPU seconds from the first line sent to the last absorbed
    engine_cpu_s: Optional[float] = None  # the daemon process's CPU seconds, whole life (socket path)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)  # os.getloadavg() after the run

    @property
    def ingest(self) -> float:
        """Lines/s from the first line sent to the moment the app held them all."""
        return self.sent / (self.absorbed_at - self.first_sent)

    @property
    def send_rate(self) -> float:
        """Lines/s the engine side sent at (first to last line)."""
        return self.sent / max(self.last_sent - self.first_sent, 1e-9)

    def latencies(self, what: str) -> list[float]:
        """Milliseconds from press to ``what`` ("state" or "frame"); a press never seen counts as inf."""
        return [((getattr(p, f"{what}_at") or math.inf) - p.at) * 1000 for p in self.presses]


def worst_latencies(outcomes: list[Outcome], what: str) -> tuple[float, float, float]:
    """The highest p50, p95 and max (milliseconds) of the runs' latencies from press to ``what``."""
    runs = [outcome.latencies(what) for outcome in outcomes if outcome.presses]
    if not runs:
        return math.nan, math.nan, math.nan
    return (max(percentile(r, .5) for r in runs), max(percentile(r, .95) for r in runs), max(max(r) for r in runs))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def install_rendering_driver() -> None:
    """Make ``run_test``'s driver render each frame to terminal bytes (counted, not written),
    as a real terminal's driver does: the stock headless driver skips the rendering."""
    from textual.drivers import headless_driver

    if getattr(headless_driver.HeadlessDriver, "renders", False):
        return

    class RenderingDriver(headless_driver.HeadlessDriver):
        """The headless driver, but the app renders every frame to terminal bytes for it."""

        renders = True
        frames = 0
        bytes_out = 0

        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            self.bytes_out += len(data)

        def flush(self) -> None:
            self.frames += 1

    headless_driver.HeadlessDriver = RenderingDriver


class KeyPresser(threading.Thread):
    """Presses a pane key every ``interval`` seconds through the driver (as a terminal's input
    thread does), waiting up to 2 s for the previous press to show, until ``stop`` is set."""

    def __init__(self, app, interval: float) -> None:
        super().__init__(daemon=True)
        self.app, self.interval = app, interval
        self.presses: list[Press] = []
        self.stop = threading.Event()

    def run(self) -> None:
        """Cycle the pane keys 2, 3, 4, 5, 1 until ``stop``."""
        from textual import events

        index = 0
        while not self.stop.wait(self.interval):
            if self.presses and self.presses[-1].frame_at is None:
                deadline = time.monotonic() + 2.0
                while self.presses[-1].frame_at is None and time.monotonic() < deadline:
                    time.sleep(0.001)
            key = PANE_KEYS[index % len(PANE_KEYS)]
            index += 1
            press = Press(key, PANE_OF_KEY[key], time.monotonic())
            self.presses.append(press)
            self.app._driver.send_message(events.Key(key, key))


def watch(app, presser: KeyPresser) -> None:
    """Time each press: its pane switched (after the action ran) and its first frame showing it."""
    show_pane = app.action_show_pane

    def action_show_pane(pane: str) -> None:
        show_pane(pane)
        press = presser.presses[-1] if presser.presses else None
        if press is not None and press.pane == pane and press.state_at is None:
            press.state_at = time.monotonic()

    def post_display_hook() -> None:
        press = presser.presses[-1] if presser.presses else None
        if press is None or press.state_at is None or press.frame_at is not None:
            return
        widget = app.query_one(f"#{press.pane}")
        if app.focused is widget and widget.region.area > 0:
            press.frame_at = time.monotonic()

    app.action_show_pane = action_show_pane
    app.post_display_hook = post_display_hook


async def drive(app, size: tuple[int, int], flood_times: Callable[[], Optional[tuple[float, float]]],
                steps_sent: int, total: int, interval: float, path: str) -> Outcome:
    """Run ``app`` at ``size`` until the flood is absorbed, pressing keys; then stop its engine."""
    from cockpit.app.widgets import TrainLog

    presser = KeyPresser(app, interval)
    async with app.run_test(size=size) as pilot:
        watch(app, presser)
        presser.start()
        log = app.query_one(TrainLog)
        deadline = time.monotonic() + 600
        cpu_at_first: Optional[float] = None
        while True:
            if cpu_at_first is None and app.curves.running is not None and len(app.curves.running):
                cpu_at_first = time.process_time()
            running = app.curves.running
            held = len(running) if running is not None else 0
            if log.lines and log.lines[-1].text == END_MARK:
                absorbed_at = time.monotonic()
                app_cpu = time.process_time() - (cpu_at_first or time.process_time())
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{path} {size}: the flood was not absorbed in time ({held} steps held)")
            await asyncio.sleep(0.002)
        presser.stop.set()
        await asyncio.to_thread(presser.join, 5)
        await pilot.pause(0.3)  # the last press shows
        app._engine.send(Stop())
        end = time.monotonic() + 10
        while not app._engine_done and time.monotonic() < end:
            await asyncio.sleep(0.01)
        driver = app._driver
        frames, bytes_out = getattr(driver, "frames", 0), getattr(driver, "bytes_out", 0)
    times = flood_times()
    if times is None:
        raise SystemExit(f"{path}: the engine did not report its send times")
    return Outcome(path, size, total, times[0], times[1], absorbed_at, held, steps_sent,
                   [p for p in presser.presses if p.at <= absorbed_at], frames, bytes_out, app_cpu,
                   load=os.getloadavg())


def make_app(factory, program: Path):
    """The real CockpitApp on the engine ``factory`` builds, with a program editor pane."""
    from cockpit.app.app import CockpitApp

    return CockpitApp(factory, title="cockpit · bench", program_path=program)


async def run_inprocess(args, size, program: Path) -> Outcome:
    """One run with the flood engine in the app's event loop."""
    engines: list[FloodEngine] = []

    def factory(emit) -> FloodEngine:
        engines.append(FloodEngine(emit, args.lines, args.rate, args.log_every))
        return engines[-1]

    app = make_app(factory, program)
    engine_times = lambda: (engines[0].first_sent, engines[0].last_sent) if engines and engines[0].last_sent else None
    return await drive(app, size, engine_times, steps_sent(args), args.lines + 1, args.key_interval, "inprocess")


async def run_socket(args, size, program: Path, workspace: Path) -> Outcome:
    """One run with the flood engine in a daemon process (``--serve``) and AttachedEngine."""
    from cockpit.serve.attach import AttachedEngine, wait_ready
    from cockpit.store.rundir import RunDir

    workspace.mkdir(parents=True)
    rundir = RunDir(workspace)
    log = open(workspace / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(workspace),
                             "--lines", str(args.lines), "--rate", str(args.rate), "--log-every", str(args.log_every)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        state = await asyncio.to_thread(wait_ready, rundir, proc, 30.0)
        app = make_app(lambda emit: AttachedEngine(state, emit), program)

        def flood_times():
            try:
                data = json.loads((workspace / "flood.json").read_text())
            except (OSError, ValueError):
                return None
            return data["first_sent"], data["last_sent"]

        outcome = await drive(app, size, flood_times, steps_sent(args), args.lines + 1, args.key_interval, "socket")
        outcome.engine_cpu_s = await reap(proc, 15.0)
        return outcome
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


async def reap(proc: subprocess.Popen, timeout_s: float) -> Optional[float]:
    """Wait up to ``timeout_s`` for ``proc`` to exit; its CPU seconds (None if it did not exit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        await asyncio.sleep(0.05)
    return None


def steps_sent(args) -> int:
    """How many of the ``--lines`` are steps (the others are LogLines)."""
    return args.lines - (args.lines // args.log_every if args.log_every else 0)


def report(outcome: Outcome) -> str:
    """The lines printed for one run: rates (lines/s), CPU (seconds), latencies (ms)."""
    frame, state = outcome.latencies("frame"), outcome.latencies("state")
    size = f"{outcome.size[0]}x{outcome.size[1]}"
    lost = "" if outcome.steps_held == outcome.steps_sent else f" LOST {outcome.steps_sent - outcome.steps_held} steps"
    text = (f"{outcome.path:9} {size:>6}: {outcome.sent:,} lines sent at {outcome.send_rate:,.0f} lines/s, "
            f"ingested {outcome.ingest:,.0f} lines/s (all in {outcome.absorbed_at - outcome.first_sent:.2f} s, "
            f"{(outcome.absorbed_at - outcome.last_sent) * 1000:.0f} ms after the last; "
            f"{outcome.steps_held:,}/{outcome.steps_sent:,} steps held{lost}); {outcome.frames} frames, "
            f"{outcome.bytes_out / 1e6:.1f} MB")
    engine = "" if outcome.engine_cpu_s is None else f", engine process {outcome.engine_cpu_s:.2f} s (its whole life)"
    text += (f"\n{'':17}CPU: app {outcome.app_cpu_s:.2f} s over {outcome.absorbed_at - outcome.first_sent:.2f} s "
             f"({outcome.app_cpu_s / outcome.sent * 1e6:.1f} us a line){engine}; load average "
             f"{outcome.load[0]:.2f} on {os.cpu_count()} CPUs")
    if frame:
        text += (f"\n{'':17}key -> frame p50 {percentile(frame, .5):.1f} ms, p95 {percentile(frame, .95):.1f} ms, "
                 f"max {max(frame):.1f} ms; key -> state p50 {percentile(state, .5):.1f} ms, "
                 f"p95 {percentile(state, .95):.1f} ms, max {max(state):.1f} ms (n={len(frame)})")
    return text


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` as (columns, rows)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


async def main_async(args) -> int:
    """Every path and size (``--repeat`` times); the summary lines; 1 if a line was lost."""
    install_rendering_driver()
    outcomes: list[Outcome] = []
    paths = ("socket", "inprocess") if args.path == "both" else (args.path,)
    with tempfile.TemporaryDirectory(prefix="cockpit-ui-load-") as tmp:
        program = Path(tmp) / "program.md"
        program.write_text("# program\nA bench program: try anything.\n")
        for repeat in range(args.repeat):
            for path in paths:
                for size in args.size or [(160, 48), (80, 24)]:
                    if path == "socket":
                        workspace = Path(tmp) / f"ws-{repeat}-{size[0]}x{size[1]}"
                        outcome = await run_socket(args, size, program, workspace)
                    else:
                        outcome = await run_inprocess(args, size, program)
                    print(report(outcome), flush=True)
                    outcomes.append(outcome)
    worst = min(outcome.ingest for outcome in outcomes)
    state_p50, state_p95, state_max = worst_latencies(outcomes, "state")
    frame_p50, frame_p95, frame_max = worst_latencies(outcomes, "frame")
    print(f"key to frame (the pane drawn): p50 {frame_p50:.1f} ms, p95 {frame_p95:.1f} ms, max {frame_max:.1f} ms")
    print(f"ui ingest: {worst:,.0f} lines/s; key latency p50 {state_p50:.1f} ms, p95 {state_p95:.1f} ms, "
          f"max {state_max:.1f} ms")
    lost = any(outcome.steps_held != outcome.steps_sent for outcome in outcomes)
    return 1 if lost else 0


def main() -> int:
    """Parse the flags; run the bench (or, with ``--serve``, the daemon side of one run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=150_000, help="lines per run (default 150000)")
    parser.add_argument("--rate", type=float, default=30_000, help="lines/s the engine sends (0: unpaced)")
    parser.add_argument("--log-every", type=int, default=100, help="every Nth line is a LogLine (0: none)")
    parser.add_argument("--path", choices=("socket", "inprocess", "both"), default="both")
    parser.add_argument("--size", type=parse_size, action="append", help="WxH (repeatable; default 160x48, 80x24)")
    parser.add_argument("--key-interval", type=float, default=0.2, help="seconds between key presses")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path and size")
    parser.add_argument("--serve", metavar="WORKSPACE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(Path(args.serve), args.lines, args.rate, args.log_every)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
