"""Memory of the daemon's replay history over a long session: RSS at every quarter of a million steps.

Drives a real ``cockpit.serve.daemon.Broadcaster`` (replay log on disk, headless
printer to /dev/null, no client) with ``--steps`` StepLogged events spread
over ``--runs`` runs (a RunStarted before each, a LogLine every 1,000 steps, a
RunFinished and a RowLogged after each: keep, discard, keep, ...), and prints
at 0, 1/4, 1/2, 3/4 and all of the steps:

- ``rss_mb``: the process's resident set now (from /proc/self/statm), in MiB;
- ``held``: the (event, line) pairs the daemon keeps for a client that attaches;
- ``held_mb``: the bytes of their wire lines, in MiB;
- ``sent``: the events such a client would be sent (``wire.compact`` of them).

With ``--tracemalloc`` it also prints the Python heap traced now (much slower).
At the end: the replay log's size on disk (the full record: every event) and the
events per second the Broadcaster took.

    .venv/bin/python bench/replay_memory.py              # 1,000,000 steps over 4 runs
    .venv/bin/python bench/replay_memory.py --steps 200000 --runs 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.serve import wire  # noqa: E402
from cockpit.serve.daemon import Broadcaster  # noqa: E402
from cockpit.events import LogLine, RowLogged, RunFinished, RunStarted, SessionStarted, StepLogged  # noqa: E402
from cockpit.serve.headless import HeadlessPrinter  # noqa: E402

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb() -> float:
    """The resident set of this process now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def report(hub: Broadcaster, steps: int, traced: bool) -> None:
    held = list(hub.history)
    held_mb = sum(len(line) for _, line in held) / 2**20
    sent = len(wire.compact(held, lambda item: item[0]))
    line = f"{steps:>9,} steps  rss_mb {rss_mb():8.1f}  held {len(held):>9,}  held_mb {held_mb:7.1f}  sent {sent:>9,}"
    if traced:
        line += f"  traced_mb {tracemalloc.get_traced_memory()[0] / 2**20:8.1f}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="StepLogged events in all")
    parser.add_argument("--runs", type=int, default=4, help="runs they are spread over")
    parser.add_argument("--tracemalloc", action="store_true", help="also print the traced Python heap")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start()
    per_run = args.steps // args.runs
    marks = {args.steps * k // 4 for k in range(1, 5)}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        hub = Broadcaster(Path(tmp) / "session.jsonl")
        hub.printer = HeadlessPrinter(devnull)
        hub.emit(SessionStarted("bench", "autoresearch/bench", "cpu", 300.0, tmp, "bench"))
        print(f"python {sys.version.split()[0]}, {args.steps:,} steps over {args.runs} runs")
        report(hub, 0, args.tracemalloc)
        done, started = 0, time.perf_counter()
        for n in range(args.runs):
            hub.emit(RunStarted(n, f"c{n:06d}", f"run {n}", 300.0, f"{tmp}/run{n}.log"))
            count = per_run if n < args.runs - 1 else args.steps - done
            for i in range(count):
                left = 300.0 * (1 - i / count)
                hub.emit(StepLogged(n, i, 100.0 * i / count, 3.0 - i / count, 1.0, 30.0, 50_000.0, 40.0, 1, left))
                if i % 1000 == 999:
                    hub.emit(LogLine(n, f"run {n}: a warning at step {i}"))
                done += 1
                if done in marks:
                    report(hub, done, args.tracemalloc)
            hub.emit(RunFinished(n, f"c{n:06d}", 0, False, {"val_bpb": 1.0 - n / 1000}, 300.0))
            status = "keep" if n % 2 == 0 else "discard"
            hub.emit(RowLogged(n, f"c{n:06d}", 1.0 - n / 1000, 10.0, status, f"run {n}", 1.0 - n / 1000))
        elapsed = time.perf_counter() - started
        hub._file.close()
        size_mb = (Path(tmp) / "session.jsonl").stat().st_size / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"replay log on disk {size_mb:.1f} MiB (every event); peak rss {peak:.1f} MiB; "
              f"{done / elapsed:,.0f} steps/s through the Broadcaster")


if __name__ == "__main__":
    main()
