"""The cockpit's own overhead per experiment: the idle gap between two runs that
is neither the model, the human nor a pause (git, parsing the run, writing the
row, the record and the journal, the checks before a run, the events).

A real headless session through the `cockpit` command with the offline agent
(instant proposals, pipelined as by default) on bench/fixed_run.py runs of
``--budget`` seconds, ``--experiments`` rows. Reads each record's account
(cockpit.rules.timekeeping) and prints the median, p90 and max of ``overhead_s``
(and of ``git_s``, part of it), with and without the session's event stream
being printed (headless prints every event; the daemon also writes them to the
replay log and the socket, which costs about the same).

    .venv/bin/python bench/overhead.py [--budget 1] [--experiments 24]

Prints ``overhead: median X s, p90 Y s, max Z s per experiment (N experiments; git median G s)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from session_bench import experiments, make_workspace, median, run_headless  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds each run trains (default 1)")
    parser.add_argument("--experiments", type=int, default=24,
                        help="results rows, baseline included (default 24: about what the offline agent has)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cockpit-overhead-") as tmp:
        root = make_workspace(Path(tmp) / "ws")
        wall = run_headless(root, "--max-experiments", str(args.experiments), "--budget", str(args.budget),
                            "--tag", "overhead", "--noise-runs", "0")
        records = experiments(root)[1:]  # the baseline has no gap before it
    overhead = sorted(r["timings"]["overhead_s"] for r in records)
    git = [r["timings"]["git_s"] for r in records]
    waits = [r["timings"]["wait_model_s"] for r in records]
    p90 = overhead[min(len(overhead) - 1, int(0.9 * len(overhead)))]
    print(f"session: {len(records) + 1} rows in {wall:.1f} s (process wall)")
    print(f"model wait: median {median(waits):.3f} s (offline agent, pipelined)")
    print(f"overhead: median {median(overhead):.3f} s, p90 {p90:.3f} s, max {overhead[-1]:.3f} s per experiment "
          f"({len(records)} experiments; git median {median(git):.3f} s, mean {statistics.fmean(git):.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
