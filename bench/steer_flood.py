"""A flood of Steer commands against a real engine daemon: records written and step events held up.

Starts ``cockpit serve`` on a fresh workspace whose train.py is the tests' fake
(``--steps`` progress lines, one every ``FAKE_STEP_S`` = 5 ms), attaches a
client that reads every event and notes when each StepLogged arrives, and once
steps flow opens a second connection that writes ``--steers`` Steer lines at
once. Then it reads on for ``--watch`` seconds, sends Stop and prints:

- the longest gap between two step events before the flood (the run's own
  rhythm) and from the flood on, in seconds;
- the Steer commands the engine applied (its "steer" records in records.jsonl,
  each one fsynced) and the daemon's rate-limit log lines;
- the error lines the flooding client was sent.

    .venv/bin/python bench/steer_flood.py               # 20,000 Steer lines
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ["COCKPIT_PASS_ENV"] = "FAKE_*"  # the fake's knobs reach the run, as a user's own variables do
os.environ["FAKE_STEP_S"] = "0.005"

from engine_support import FAKES, make_workspace  # noqa: E402

from cockpit.serve import wire  # noqa: E402
from cockpit.serve.attach import attach_or_start, start_daemon  # noqa: E402
from cockpit.cli import build_parser  # noqa: E402
from cockpit.cli.session import serve_argv, typed_session_flags  # noqa: E402
from cockpit.commands import Steer, Stop
from cockpit.events import EngineMessage, StepLogged  # noqa: E402
from cockpit.store.rundir import RunDir  # noqa: E402


def longest_gap(times: list[float]) -> float:
    """The longest interval between consecutive times, in seconds (0 with fewer than two)."""
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


async def flood(state: dict, steers: int, watch_s: float) -> dict:
    reader, _ = await asyncio.open_unix_connection(state["socket"], limit=wire.MAX_LINE)
    arrivals: list[float] = []
    told: list[EngineMessage] = []

    async def read() -> None:
        while line := await reader.readline():
            event = wire.decode_event(line)
            if isinstance(event, StepLogged):
                arrivals.append(time.monotonic())

    reading = asyncio.ensure_future(read())
    while len(arrivals) < 200:
        await asyncio.sleep(0.05)
    flooder_in, flooder = await asyncio.open_unix_connection(state["socket"], limit=wire.MAX_LINE)
    payload = b"".join((wire.encode(Steer(f"flood note {i}")) + "\n").encode() for i in range(steers))
    started = time.monotonic()
    flooder.write(payload)
    await flooder.drain()
    written = time.monotonic() - started

    async def read_told() -> None:
        while line := await flooder_in.readline():
            event = wire.decode_event(line)
            if isinstance(event, EngineMessage) and event.level == "error":
                told.append(event)

    telling = asyncio.ensure_future(read_told())
    await asyncio.sleep(watch_s)
    before = [t for t in arrivals if started - 1.0 <= t < started]
    after = [t for t in arrivals if t >= started]
    flooder.write((wire.encode(Stop()) + "\n").encode())
    await flooder.drain()
    await asyncio.sleep(1.0)
    for task in (reading, telling):
        task.cancel()
    return {"before_gap_s": longest_gap(before), "after_gap_s": longest_gap([started] + after),
            "steps_after": len(after), "written_s": written, "told": len(told)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steers", type=int, default=20_000, help="Steer lines written at once")
    parser.add_argument("--watch", type=float, default=4.0, help="seconds the step events are watched after")
    parser.add_argument("--steps", type=int, default=4_000, help="progress lines of the fake run (5 ms each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = (FAKES / "train.py").read_text().replace("STEPS = 5  # progress lines printed",
                                                         f"STEPS = {args.steps}  # progress lines printed")
        ws = make_workspace(Path(tmp) / "ws", train_py=train)
        rundir = RunDir(ws.path)
        typed = build_parser().parse_args(["--workspace", str(ws.path), "--budget", "120", "--max-experiments", "1"])
        procs: list[subprocess.Popen] = []

        def start() -> subprocess.Popen:
            procs.append(start_daemon(rundir, serve_argv(typed, ws, "flood")))
            return procs[-1]

        attached = attach_or_start(rundir, start, typed_session_flags(typed))
        try:
            figures = asyncio.run(flood(attached.state, args.steers, args.watch))
            stopping = time.monotonic()
            try:
                procs[0].wait(timeout=120)
                figures["stop_s"] = f"{time.monotonic() - stopping + 1.0:.1f} s"
            except subprocess.TimeoutExpired:
                figures["stop_s"] = "over 120 s"
        finally:
            if procs and procs[0].poll() is None:
                procs[0].kill()
        records = [json.loads(line) for line in ws.records_jsonl.read_text().splitlines() if line.strip()]
        steered = sum(1 for r in records if r.get("kind") == "action" and r.get("action") == "steer")
        log = (ws.path / "logs" / "engine.log").read_text()
        limited = log.count("faster than")
        print(f"{args.steers:,} Steer lines written in {figures['written_s']:.2f} s; "
              f"steer records written (fsynced): {steered:,}; rate-limit log lines: {limited}; "
              f"error lines to the flooder: {figures['told']}")
        print(f"longest gap between step events: {figures['before_gap_s']:.3f} s in the second before the flood, "
              f"{figures['after_gap_s']:.3f} s in the {args.watch:g} s from it ({figures['steps_after']:,} steps); "
              f"the daemon exited {figures['stop_s']} after Stop was sent")


if __name__ == "__main__":
    main()
